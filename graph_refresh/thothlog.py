"""thoth-common's logging set-up, run unchanged, without importing what the run's set-up does not use.

thoth-common's ``logging.py`` imports sentry_sdk, jsonformatter and daiquiri at its top whatever the set-up
(about 0.2 s of CPU in a new process: most of the time to a short dry run's first Job), though each serves one case:

- sentry_sdk: only with ``SENTRY_DSN`` (or ``THOTH_SENTRY_IGNORE_LOGGER``) set;
- jsonformatter: only for JSON log lines (in an s2i image: ``STI_SCRIPTS_PATH`` set);
- daiquiri: the plain log lines, of which thoth-common uses three small parts (``setup``,
  ``formatter.ColorFormatter``, ``output.Stream``).

:func:`load` executes thoth-common's file with :func:`standalone.standing_in`: the functions it imports from
sentry_sdk and jsonformatter import their module when first called, and daiquiri's three parts are the
equivalents below, which write the same lines (colours on a terminal only), capture Python warnings and log
an uncaught exception the way daiquiri does. A module some other code has imported already is used as it is.

Also, thoth-common says "Logging to a Sentry instance is turned off" at WARNING on every start without a DSN:
before every usage error, too. :func:`init_logging` drops that line; with a DSN its Sentry lines are kept. And
its set-up imports urllib3 only to turn urllib3's warnings off (about 50 ms of CPU, with http.client, email and
ssl): a run from a Template folder never uses urllib3, so they are turned off when the cluster client imports it.
"""

from __future__ import annotations

import functools
import logging
import sys
import traceback
from collections.abc import Iterable
from types import ModuleType, TracebackType
from typing import IO, Any

from graph_refresh import standalone

# Only called in the set-up that needs them (see the module's docstring).
DEFERRED = ("sentry_sdk", "sentry_sdk.integrations", "sentry_sdk.integrations.logging", "jsonformatter")
SENTRY_OFF = "Logging to a Sentry instance is turned off"

# Terminal colours of the plain log lines, by level, as daiquiri draws them.
LEVEL_COLOURS = {
    logging.DEBUG: "\033[00;32m",  # green
    logging.INFO: "\033[00;36m",  # cyan
    logging.WARNING: "\033[01;33m",  # bold yellow
    logging.ERROR: "\033[01;31m",  # bold red
    logging.CRITICAL: "\033[01;31m",
}
COLOUR_STOP = "\033[0m"
_TTY = "_graph_refresh_stream_is_a_tty"


class ColorFormatter(logging.Formatter):
    """Fills ``%(color)s`` and ``%(color_stop)s``: the level's colour when the handler writes to a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        coloured = getattr(record, _TTY, False)
        colour = LEVEL_COLOURS.get(record.levelno, "") if coloured else ""
        record.__dict__.update(color=colour, color_stop=COLOUR_STOP if coloured else "")
        try:
            return super().format(record)
        finally:
            del record.__dict__["color"], record.__dict__["color_stop"]


class TerminalAwareHandler(logging.StreamHandler[IO[str]]):
    """A stream handler that tells its formatter whether the stream is a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        try:
            setattr(record, _TTY, bool(self.stream.isatty()))
        except (AttributeError, ValueError):  # no isatty, or a stream closed at interpreter exit
            setattr(record, _TTY, False)
        try:
            return super().format(record)
        finally:
            delattr(record, _TTY)


class Stream:
    """A handler on ``stream`` (stderr by default) with ``formatter``, to give to :func:`setup`."""

    def __init__(self, stream: IO[str] | None = None, formatter: logging.Formatter | None = None) -> None:
        self.handler = TerminalAwareHandler(sys.stderr if stream is None else stream)
        if formatter is not None:
            self.handler.setFormatter(formatter)


def setup(level: int | str = logging.WARNING, outputs: Iterable[Stream] = ()) -> None:
    """The root logger writes to ``outputs`` alone at ``level``; Python warnings become log records; an
    uncaught exception is logged at CRITICAL with its traceback, then handled as before."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for output in outputs:
        root.addHandler(output.handler)
    root.setLevel(level)
    previous = sys.excepthook

    def log_uncaught(kind: type[BaseException], error: BaseException, trace: TracebackType | None) -> None:
        root.critical("".join(traceback.format_exception(kind, error, trace)))
        previous(kind, error, trace)

    sys.excepthook = log_uncaught
    logging.captureWarnings(True)


def _module(name: str, **attributes: Any) -> ModuleType:
    module = ModuleType(name, f"graph-refresh's equivalent of what thoth-common uses of {name}")
    module.__dict__.update(attributes)
    return module


URLLIB3 = "urllib3"


def _daiquiri() -> dict[str, ModuleType]:
    return {
        "daiquiri": _module("daiquiri", setup=setup),
        "daiquiri.formatter": _module("daiquiri.formatter", ColorFormatter=ColorFormatter),
        "daiquiri.output": _module("daiquiri.output", Stream=Stream),
    }


def load(imports: dict[str, ModuleType] | None = None) -> ModuleType:
    """thoth-common's ``logging.py`` as a module of its own (without ``thoth/common/__init__.py``, which
    imports its cluster clients), its unused imports deferred or replaced; its own ``import`` statements get
    ``imports`` instead of the real modules."""
    with standalone.standing_in(DEFERRED, _daiquiri()):
        return standalone.load("thoth.common", "logging.py", "graph_refresh._thoth_logging", imports=imports)


def init_logging(levels: dict[str, str]) -> None:
    """thoth-common's ``init_logging(levels)``, saying nothing about Sentry unless a DSN is configured."""
    # What the set-up asks of urllib3 (turning its warnings off) is done once something else imports urllib3.
    asked: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    urllib3 = _module(URLLIB3, disable_warnings=lambda *args, **kwargs: asked.append((args, kwargs)))
    thoth_init_logging = load({URLLIB3: urllib3}).init_logging
    thoth_logger = logging.getLogger("thoth.common")

    def warning(message: object, *args: object, **kwargs: Any) -> None:
        if message != SENTRY_OFF:
            kwargs["stacklevel"] = kwargs.get("stacklevel", 1) + 1  # the line is thoth-common's, not this one's
            logging.Logger.warning(thoth_logger, message, *args, **kwargs)

    # The logger's own method for the call's duration (JSON logging clears every logger's filters first).
    thoth_logger.__dict__["warning"] = warning
    try:
        thoth_init_logging(levels)
    finally:
        del thoth_logger.__dict__["warning"]
    for args, kwargs in asked:
        standalone.when_imported(URLLIB3, functools.partial(_disable_warnings, args, kwargs))


def _disable_warnings(args: tuple[Any, ...], kwargs: dict[str, Any], urllib3: ModuleType) -> None:
    urllib3.disable_warnings(*args, **kwargs)
