"""Times as graph-refresh's ConfigMaps keep them: RFC 3339 in UTC, whole seconds, within the years 1970-9999 so
that every time read can be written back, and added to, without overflowing. Pure."""

from __future__ import annotations

from datetime import UTC, datetime

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC).timestamp()

LATEST = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()


def parse_time(text: object) -> float | None:
    """Epoch seconds of an RFC 3339 time (``Z`` or an offset; a time without offset is taken as UTC).

    None for anything else: not a string, not a date, or outside the years 1970-9999 in UTC (so that every
    time read can be written back, and added to, without overflowing).
    """
    if not isinstance(text, str) or len(text) > 64:
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        epoch = moment.timestamp()
    except (OverflowError, ValueError):
        return None
    return epoch if EARLIEST <= epoch <= LATEST else None


def format_time(epoch: float) -> str:
    """RFC 3339 UTC with whole seconds (a fraction is dropped): ``2024-05-01T10:00:00Z``; a time past the year
    9999 (a quarantine end of a far-future failure) is written as the last second of 9999."""
    return datetime.fromtimestamp(int(min(max(epoch, EARLIEST), LATEST)), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
