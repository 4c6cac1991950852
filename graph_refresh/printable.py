"""Text from outside, made safe to print (design: Outputs and data from outside). Pure.

Anyone allowed to update a ConfigMap graph-refresh reads can write any text into it. Printed as it is, an escape
sequence could clear an operator's screen or forge a line, a newline could add a row to a table, and a
right-to-left override could make one name read as another. Such text is shown escaped, in text and JSON alike.
"""

from __future__ import annotations

import unicodedata

# Bidirectional controls: they reorder what follows them on screen (CVE-2021-42574, "Trojan Source").
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _escaped_char(char: str) -> str:
    if char == "\\":
        return "\\\\"
    if char in _BIDI or unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"):
        code = ord(char)
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
    return char


def escaped(text: str) -> str:
    """``text`` with control, format (bidirectional included), separator and unassigned characters written as
    ``\\xNN`` / ``\\uNNNN`` and a backslash doubled, so what is printed is what is stored, one line."""
    if text.isprintable() and "\\" not in text:
        return text
    return "".join(map(_escaped_char, text))


def cut(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, the last one an ellipsis when it was longer."""
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def shown(text: str, width: int) -> str:
    """Escaped, then cut to ``width``: how a table cell or a message quotes text from outside."""
    return cut(escaped(text), width)
