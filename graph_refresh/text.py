"""Lines a person reads (design: Lines a person reads): how wide they may be, text wrapped to that width, counts
with their noun, and text from outside shown escaped and cut.

Everything but :func:`columns` is a pure function of its arguments; :func:`columns` asks the stream and the
environment. It imports nothing of graph-refresh's, so any module can use it.
"""

from __future__ import annotations

import os
import re
import textwrap
from typing import IO

NOT_A_TERMINAL_COLUMNS = 100  # lines written to a file, a pipe or a log collector fit this width
MIN_COLUMNS = 40  # log lines are wrapped no narrower: their prefix (time, process, level) takes 30
CONTINUATION = "    "  # how a wrapped line's further lines start
SHOWN_CHARACTERS = 60  # of a value from outside quoted in a message: a 500 kB value is not a log line
LONGEST_WORD = 160  # characters without a space in a message; longer runs (a pasted blob) are cut
ELLIPSIS = "…"


def columns(stream: IO[str]) -> int:
    """How wide the lines written to ``stream`` may be: on a terminal, ``COLUMNS`` when set, else the terminal's
    width; anywhere else NOT_A_TERMINAL_COLUMNS."""
    try:
        terminal = stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return NOT_A_TERMINAL_COLUMNS
    if not terminal:
        return NOT_A_TERMINAL_COLUMNS
    variable = os.environ.get("COLUMNS", "").strip()
    if variable.isascii() and variable.isdigit() and int(variable) > 0:
        return int(variable)
    try:
        width = os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):
        return NOT_A_TERMINAL_COLUMNS
    return width if width > 0 else NOT_A_TERMINAL_COLUMNS  # 0: the terminal does not say


def escaped(text: str) -> str:
    """``text`` with every character a terminal would not print as itself written as Python writes it in a
    string literal (``\\x1b``, ``\\u202e``): control characters, bidirectional overrides, zero-width and
    other format characters. Newlines are kept."""
    if text.isprintable():
        return text
    return "".join(c if c == "\n" or c.isprintable() else repr(c)[1:-1] for c in text)


def cut(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, the last one an ellipsis when anything was cut."""
    return text if len(text) <= width else text[: max(width - 1, 0)] + ELLIPSIS


def shown(value: object, limit: int = SHOWN_CHARACTERS) -> str:
    """A value from outside (a name a user typed, a ConfigMap value) for a message: quoted and escaped as
    ``repr`` writes it, cut to ``limit`` characters with an ellipsis."""
    return cut(repr(value), limit)


def one_line(value: str) -> str:
    """Text from outside for a table cell, without quotes: escaped, newlines too."""
    return escaped(value).replace("\n", "\\n")


def cell(value: str, width: int) -> str:
    """Text from outside for a table cell: escaped, without quotes, cut to ``width`` characters."""
    return cut(one_line(value), width)


def tamed(message: str, longest: int = LONGEST_WORD) -> str:
    """A whole message made safe to write to a terminal, whatever it echoes: characters a terminal would act on
    escaped (newlines kept), and any run of more than ``longest`` characters without a space cut."""
    text = escaped(message)
    if len(text) <= longest:
        return text
    return re.sub(rf"\S{{{longest + 1},}}", lambda word: cut(word.group(), longest), text)


def wrapped(text: str, width: int, *, indent: str = CONTINUATION) -> str:
    """``text`` with each line longer than ``width`` broken at spaces (a word longer than a line is broken too);
    the further lines of a broken line start with ``indent``."""
    if all(len(line) <= width for line in text.split("\n")):
        return text
    lines: list[str] = []
    for line in text.split("\n"):
        if len(line) <= width:
            lines.append(line)
            continue
        lines += textwrap.wrap(
            line,
            width,
            subsequent_indent=indent,
            break_on_hyphens=False,
            replace_whitespace=False,
            drop_whitespace=True,
        ) or [line[:width]]
    return "\n".join(lines)


def plural(count: int, noun: str, plural_noun: str | None = None) -> str:
    """``1 entry``, ``2 entries``, ``1,000 Jobs``: ``count`` with ``noun`` in the number it takes. The plural is
    ``plural_noun`` when given, else ``noun`` with ``-ies`` for a consonant and ``y``, else ``-s``."""
    if count == 1:
        return f"1 {noun}"
    if plural_noun is None:
        consonant_y = noun.endswith("y") and len(noun) > 1 and noun[-2].lower() not in "aeiou"
        plural_noun = noun[:-1] + "ies" if consonant_y else noun + "s"
    return f"{count:,} {plural_noun}"
