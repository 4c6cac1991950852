"""The process around a run: logging, signals and progress on a terminal.

Nothing here decides what a run does; the CLI sets these up, then calls the core.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import re
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal, TextIO

import click

from graph_refresh import thothlog
from graph_refresh.config import DEFAULT_PROGRESS_EVERY_SECONDS
from graph_refresh.errors import ConfigError, Interrupted
from graph_refresh.options import LOG_LEVELS
from graph_refresh.secrets import MaskingFilter
from graph_refresh.text import MIN_COLUMNS, columns, plural, shown, tamed, wrapped

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
            raise ConfigError(f"{name}={shown(value)} is not a log level ({', '.join(LOG_LEVELS)})")


def init_logging() -> None:
    """thoth-common's logging, every record masked for secrets. Our loggers log at INFO;
    ``THOTH_LOG_GRAPH_REFRESH=DEBUG`` (all of them) or ``THOTH_LOG_GRAPH_REFRESH__PLANNER=DEBUG`` (one module)
    change that, as ``THOTH_ADJUST_LOGGING`` does.

    (thoth-common maps ``THOTH_LOG_<X>`` to the logger ``thoth.<x>``; ours are ``graph_refresh.*``.)
    """
    check_log_levels()
    levels = {"graph_refresh": "INFO"}  # and its modules inherit it, unless set below
    levels.update((name, "NOTSET") for name in logging.root.manager.loggerDict if name.startswith("graph_refresh."))
    for name, value in sorted(os.environ.items()):
        if name == OUR_LOG_VARIABLE or name.startswith(f"{OUR_LOG_VARIABLE}__"):
            levels["graph_refresh" + name[len(OUR_LOG_VARIABLE) :].lower().replace("__", ".")] = value
    thothlog.init_logging(levels)  # thoth-common's, without the modules its set-up does not use
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, MaskingFilter) for f in handler.filters):
            handler.addFilter(MaskingFilter())
            handler.addFilter(TamingFilter())
        # daiquiri binds sys.stderr as it was at import; log to the stderr of now (tests, redirections).
        if type(handler) is not logging.FileHandler and isinstance(handler, logging.StreamHandler):
            handler.setStream(sys.stderr)
            plain = not type(handler.formatter).__module__.startswith("jsonformatter")  # JSON lines stay whole
            if plain and handler.formatter is not None and not isinstance(handler.formatter, FittingFormatter):
                handler.setFormatter(FittingFormatter(handler.formatter, handler))


class TamingFilter(logging.Filter):
    """A handler filter: the record's message, whatever it echoes from outside, made safe for a terminal
    (``text.tamed``: characters a terminal acts on escaped, overlong words cut)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = tamed(record.getMessage())
        record.args = None
        return True


_COLOUR_AT_END = re.compile(r"(?:\x1b\[[0-9;]*m)+$")  # a plain line's colour stop (on a terminal)


class FittingFormatter(logging.Formatter):
    """A plain log line, as ``inner`` formats it, fitted to the width of the stream ``handler`` writes to
    (``text.columns``, at least ``text.MIN_COLUMNS``): a longer line goes on, indented, on the lines below
    (design: Lines a person reads)."""

    def __init__(self, inner: logging.Formatter, handler: logging.StreamHandler[TextIO]) -> None:
        super().__init__()
        self.inner = inner
        self.handler = handler

    def format(self, record: logging.LogRecord) -> str:
        line = self.inner.format(record)
        stop = _COLOUR_AT_END.search(line)
        end = "" if stop is None else stop.group()
        return wrapped(line[: len(line) - len(end)], max(columns(self.handler.stream), MIN_COLUMNS)) + end


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


REDRAW_SECONDS = 0.2  # on a terminal, the live line is redrawn this often


@contextlib.contextmanager
def signals_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM or SIGINT raises :class:`Interrupted` in the main thread, so that the work in
    hand is undone on the way out (an import rolls back). A second signal ends the process at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    numbers = (signal.SIGTERM, signal.SIGINT)

    def handle(signum: int, frame: object) -> None:
        for number in numbers:
            signal.signal(number, signal.SIG_DFL)
        raise Interrupted(f"{signal.Signals(signum).name} received")

    previous = {number: signal.signal(number, handle) for number in numbers}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


Mode = Literal["run", "server dry run", "dry run"]  # what a run's progress counts
ANSWERS = ("created", "already", "capacity", "failed")  # how a create can end
SUMMARY_LOGGER = "graph_refresh.summary"  # the run's summary line: logged even with --quiet
_CLEAR_LINE = "\r\x1b[K"  # back to the start of the line, and erase it


def quiet_logging() -> None:
    """``--quiet``: our loggers keep warnings and errors only, but for the summary line. (A module given
    its own level by ``THOTH_LOG_GRAPH_REFRESH__<MODULE>`` keeps it.)"""
    ours = logging.getLogger("graph_refresh")
    if ours.getEffectiveLevel() < logging.WARNING:
        ours.setLevel(logging.WARNING)
    logging.getLogger(SUMMARY_LOGGER).setLevel(logging.INFO)


class Progress:
    """What a run has done so far, shown while it works: on a terminal, a live line on stderr redrawn in place
    (and erased at the end); otherwise a log line every ``every`` seconds, from the start of the run to its
    end, whatever it is doing (reading, planning, waiting for the rate limit or an answer).

    The core reports each candidate examined, each item planned (handed over to be created or, in a dry
    run, written) and each create answered. Items keep being planned while the first are created, so what
    is left is only known as "planned so far and not answered yet". ``clock`` gives monotonic seconds.
    """

    def __init__(
        self,
        *,
        mode: Mode,
        every: float = DEFAULT_PROGRESS_EVERY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        enabled: bool = True,
        stream: TextIO | None = None,
    ) -> None:
        self.mode = mode
        self.every = every
        self.clock = clock
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.terminal = enabled and self.stream.isatty()
        self.examined_count = 0
        self.planned_count = 0
        self.answers: Counter[str] = Counter(dict.fromkeys(ANSWERS, 0))  # every key now: read from another thread
        self.started = clock()
        self._first_examined: float | None = None
        self._first_planned: float | None = None
        self._last_line = self.started
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._shown = False  # the live line is on the terminal
        self._eraser = _EraseLiveLine(self)
        self._handlers: list[logging.Handler] = []

    # --- what the core calls, from the thread that plans ---------------------------------------------

    def examined(self) -> None:
        """One more candidate examined. Only counted: called for every candidate, it leaves the lines to the
        thread that shows them (and to each create answered)."""
        self.examined_count += 1
        if self._first_examined is None:
            self._first_examined = self.clock()

    def planned(self) -> None:
        """One more item planned: handed over to be created, or in a dry run, to be written. Only counted, as
        :meth:`examined`."""
        self.planned_count += 1
        if self._first_planned is None:
            self._first_planned = self.clock()

    def answered(self, result: str) -> None:
        """A create is over: ``created``, ``already`` (present), ``capacity`` (a quota refused it) or ``failed``."""
        self.answers[result] += 1
        self._log_when_due()

    # --- showing it ----------------------------------------------------------------------------------

    def start(self) -> None:
        """Start showing: a thread redraws the live line, or logs a line whenever one is due."""
        if not self.enabled:
            return
        if self.terminal:  # a log record first erases the live line; the next redraw brings it back
            self._handlers = [h for h in logging.getLogger().handlers if _writes_to(h, self.stream)]
            for handler in self._handlers:
                handler.addFilter(self._eraser)
        self._thread = threading.Thread(target=self._show, name="progress", daemon=True)
        self._thread.start()

    def done(self) -> None:
        """Stop showing; the live line is erased."""
        self._stopped.set()
        if self._thread is not None:
            self._thread.join()
        for handler in self._handlers:
            handler.removeFilter(self._eraser)
        self.erase()

    def describe(self, now: float, *, short: bool = False) -> str:
        """``created …, already present …, failed …, n of m planned so far not answered yet (answered r/s) |
        examined N (r/s)``; a dry run: ``examined N (r/s) | n Jobs planned``. ``short`` for a terminal line."""
        examining = _per_second(self.examined_count, self._first_examined, now)
        examined = f"examined {self.examined_count:,}" + (f" ({examining})" if examining else "")
        if self.mode == "dry run":
            return f"{examined} | {self.planned_count:,} Jobs planned"
        a = self.answers
        answered = sum(a.values())
        waiting = f"{self.planned_count - answered:,} of {self.planned_count:,} planned"
        created = f"{'admitted' if self.mode == 'server dry run' else 'created'} {a['created']:,}"
        refused = f", refused by a quota {a['capacity']:,}" if a["capacity"] else ""
        rate = _per_second(answered, self._first_planned, now)
        if short:
            done = f"{created}, present {a['already']:,}, failed {a['failed']:,}{refused}, {waiting} unanswered"
            return f"{done}{f', {rate}' if rate else ''} | {examined}"
        done = f"{created}, already present {a['already']:,}, failed {a['failed']:,}{refused}"
        return f"{done}, {waiting} so far not answered yet{f' (answered {rate})' if rate else ''} | {examined}"

    def erase(self) -> None:
        """Erase the live line, if it is shown."""
        with self._lock:
            if self._shown:
                self.stream.write(_CLEAR_LINE)
                self.stream.flush()
                self._shown = False

    def _show(self) -> None:
        if self.terminal:
            while not self._stopped.wait(REDRAW_SECONDS):
                self._draw()
            return
        while not self._stopped.wait(max(0.0, self._last_line + self.every - self.clock())):
            self._log_when_due()

    def _draw(self) -> None:
        now = self.clock()
        text = f"[{now - self.started:.0f}s] {self.describe(now, short=True)}"
        width = columns(self.stream) - 1  # a line as wide as the terminal would wrap, and then not be erased
        with self._lock:
            self.stream.write(_CLEAR_LINE + text[:width])
            self.stream.flush()
            self._shown = True

    def _log_when_due(self) -> None:
        """Without a terminal: the progress line, when ``every`` seconds have passed since the last one (or
        since the start). Cheap when not due: called by the showing thread, and for every create answered (so that a
        run whose clock only moves as it waits, as a test's does, says its progress too)."""
        if self.terminal or not self.enabled:
            return
        now = self.clock()
        if now - self._last_line < self.every:
            return
        with self._lock:
            if now - self._last_line < self.every:  # another thread has just logged it
                return
            self._last_line = now
        logger.info("Progress after %.1fs: %s", now - self.started, self.describe(now))


class _EraseLiveLine(logging.Filter):
    """On a handler writing to the terminal: erase the live line before a log record is written."""

    def __init__(self, progress: Progress) -> None:
        super().__init__()
        self.progress = progress

    def filter(self, record: logging.LogRecord) -> bool:
        self.progress.erase()
        return True


def _writes_to(handler: logging.Handler, stream: TextIO) -> bool:
    return isinstance(handler, logging.StreamHandler) and getattr(handler, "stream", None) is stream


def _per_second(count: int, since: float | None, now: float) -> str | None:
    """``12.3/s``: ``count`` over the seconds from ``since`` to ``now``; None before there is a rate."""
    if since is None or now - since <= 0:
        return None
    rate = count / (now - since)
    return f"{rate:.1f}/s" if rate < 100 else f"{rate:,.0f}/s"


@contextlib.contextmanager
def bytes_progress(total: int, label: str, *, quiet: bool = False) -> Iterator[Callable[[int], None] | None]:
    """A progress bar over ``total`` bytes on stderr when it is a terminal and not ``quiet``: yields what to call
    with each number of bytes read, or None (no bar)."""
    if quiet or not sys.stderr.isatty():
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


NAMED_WARNINGS = 20  # warnings about one source named one by one; the rest are counted


def warn_each(problems: list[str], source: str, *, limit: int = NAMED_WARNINGS) -> None:
    """One warning per problem about ``source``, the first ``limit`` of them, then one that counts the rest."""
    for problem in problems[:limit]:
        logger.warning("%s: %s", source, problem)
    if len(problems) > limit:
        logger.warning("%s: %s like these, not shown", source, plural(len(problems) - limit, "more problem"))
