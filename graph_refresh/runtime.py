"""The process around a run: logging, signals and progress on a terminal.

Nothing here decides what a run does; the CLI sets these up, then calls the core.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import click

from graph_refresh import standalone
from graph_refresh.errors import ConfigError
from graph_refresh.options import LOG_LEVELS
from graph_refresh.secrets import MaskingFilter

logger = logging.getLogger("graph_refresh")

OUR_LOG_VARIABLE = "THOTH_LOG_GRAPH_REFRESH"


def check_log_levels() -> None:
    """thoth-common reads every ``THOTH_LOG_<NAME>`` as a log level (THOTH_LOG_SOLVER too) and crashes on a bad one.

    Empty means unset; any case is accepted (upper-cased here, in the environment thoth-common reads);
    anything else is a ConfigError naming the variable.
    """
    for name, value in list(os.environ.items()):
        if not name.startswith("THOTH_LOG_"):
            continue
        if not value.strip():
            del os.environ[name]
        elif value.strip().upper() in logging.getLevelNamesMapping():
            os.environ[name] = value.strip().upper()
        else:
            raise ConfigError(f"{name}={value!r} is not a log level ({', '.join(LOG_LEVELS)})")


def init_logging() -> None:
    """thoth-common's logging, every record masked for secrets. Our loggers log at INFO;
    ``THOTH_LOG_GRAPH_REFRESH=DEBUG`` (all of them) or ``THOTH_LOG_GRAPH_REFRESH__PLANNER=DEBUG`` (one module)
    change that, as ``THOTH_ADJUST_LOGGING`` does.

    (thoth-common maps ``THOTH_LOG_<X>`` to the logger ``thoth.<x>``; ours are ``graph_refresh.*``.)
    """
    # thoth-common's own logging setup, without thoth/common/__init__.py (which imports its cluster clients).
    thoth_init_logging = standalone.load("thoth.common", "logging.py", "graph_refresh._thoth_logging").init_logging

    check_log_levels()
    levels = {"graph_refresh": "INFO"}  # and its modules inherit it, unless set below
    levels.update((name, "NOTSET") for name in logging.root.manager.loggerDict if name.startswith("graph_refresh."))
    for name, value in sorted(os.environ.items()):
        if name == OUR_LOG_VARIABLE or name.startswith(f"{OUR_LOG_VARIABLE}__"):
            levels["graph_refresh" + name[len(OUR_LOG_VARIABLE) :].lower().replace("__", ".")] = value
    thoth_init_logging(levels)
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, MaskingFilter) for f in handler.filters):
            handler.addFilter(MaskingFilter())
        # daiquiri binds sys.stderr as it was at import; log to the stderr of now (tests, redirections).
        if type(handler) is not logging.FileHandler and isinstance(handler, logging.StreamHandler):
            handler.setStream(sys.stderr)


@dataclass
class Signals:
    """SIGTERM and SIGINT while graph-refresh runs: the first sets ``event``; ``received`` names them."""

    event: threading.Event = field(default_factory=threading.Event)
    received: list[str] = field(default_factory=list)


@contextlib.contextmanager
def handled_signals() -> Iterator[Signals]:
    """Until the process exits, SIGTERM (the CronJob's deadline, a pod deletion) or SIGINT sets an Event
    instead of killing the process: the run stops creating, counts what it did, reports and pushes.
    A second signal of either kind ends the process at once.
    """
    signals = Signals()
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield signals
        return

    numbers = (signal.SIGTERM, signal.SIGINT)

    def handle(signum: int, frame: object) -> None:
        for number in numbers:
            signal.signal(number, signal.SIG_DFL)
        signals.received.append(signal.Signals(signum).name)
        signals.event.set()
        logger.warning(
            "%s received: no more Jobs are created; finishing the creates in flight, then reporting",
            signals.received[-1],
        )

    previous = {number: signal.signal(number, handle) for number in numbers}
    try:
        yield signals
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


class Progress:
    """A counter on stderr while long work runs, only when stderr is a terminal (never in logs or CI)."""

    EVERY = 1000

    def __init__(self, label: str) -> None:
        self.enabled = sys.stderr.isatty()
        self.label = label
        self.count = 0

    def tick(self) -> None:
        self.count += 1
        if self.enabled and self.count % self.EVERY == 0:
            click.echo(f"\r{self.label}: {self.count}", err=True, nl=False)

    def done(self) -> None:
        if self.enabled and self.count >= self.EVERY:
            click.echo(f"\r{self.label}: {self.count}", err=True)


@contextlib.contextmanager
def bytes_progress(total: int, label: str) -> Iterator[Callable[[int], None] | None]:
    """A progress bar over ``total`` bytes on stderr when it is a terminal: yields what to call with each
    number of bytes read, or None (no terminal, no bar)."""
    if not sys.stderr.isatty():
        yield None
        return
    with click.progressbar(length=total, label=label, file=sys.stderr) as bar:
        yield bar.update


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off, then as it was, however the block ends.

    For reading a namespace's owned Jobs: parsing allocates thousands of containers per object, each burst
    starting a collection that, every so often, walks every record the run has kept. What is parsed and
    kept there is never cyclic (JSON cannot be), so reference counting frees it all the same."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
