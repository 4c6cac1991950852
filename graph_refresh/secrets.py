"""The secrets this process knows, masked wherever text leaves it (design: Outputs and data from outside).

A secret is registered as soon as it is read (the bearer token of a loaded kubeconfig or service
account, the Dgraph password, a Pushgateway URL's password). :func:`mask` then replaces every
occurrence in any text, so a server that echoes the request back in an error body cannot carry the
token into a log line, the run report or an error message. :class:`MaskingFilter` applies it to
every log record, tracebacks included.
"""

from __future__ import annotations

import logging
import threading
from urllib.parse import quote, unquote

MASK = "***"
MIN_SECRET_CHARS = 3  # shorter values would mask ordinary text; such a secret is no protection anyway

_lock = threading.Lock()
_known: tuple[str, ...] = ()  # longest first, so a secret containing another is masked whole


def register(*values: str | None) -> None:
    """Remember secrets to mask from now on, with their URL-encoded and -decoded spellings."""
    global _known
    found = set()
    for value in values:
        if not value:
            continue
        for spelling in (value, value.strip(), quote(value, safe=""), unquote(value)):
            if len(spelling) >= MIN_SECRET_CHARS:
                found.add(spelling)
    if not found:
        return
    with _lock:
        _known = tuple(sorted(set(_known) | found, key=len, reverse=True))


def forget_all() -> None:
    """Forget every registered secret (a new run in the same process, as in tests)."""
    global _known
    with _lock:
        _known = ()


def mask(text: str) -> str:
    """``text`` with every registered secret replaced by ``***``."""
    for secret in _known:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class MaskingFilter(logging.Filter):
    """A handler filter: the record's message and traceback are formatted, then masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not _known:
            return True
        record.msg = mask(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask(record.exc_text)
        if record.stack_info:
            record.stack_info = mask(record.stack_info)
        return True
