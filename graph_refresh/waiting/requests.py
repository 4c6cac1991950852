"""Requests: package versions someone waits for, kept in the ConfigMap ``graph-refresh-requests`` in middletier
(docs/lanes.md). Pure: the format, and reading values written by anyone.

Format (for operators and the adviser)
--------------------------------------
One ``data`` key per request, any ConfigMap key (``app.py request`` uses a hash of the item, so asking twice
changes nothing); the value one JSON object::

    {"package": "flask", "version": "1.1.2", "index": "https://pypi.org/simple",
     "requested_at": "2027-01-15T08:00:00Z", "by": "adviser"}

``index`` defaults to ``DEFAULT_INDEX``; ``by`` (who asked, free text) may be absent; ``requested_at`` may be
left out (or be ahead of the run's clock): the first real run that reads the value writes its own time into it.
A value that cannot be read is dropped with a warning naming its key. Whether a run may act on a readable
request (a trusted index, a known version) is decided by ``waiting/lanes.py``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from graph_refresh.items import Candidate, invalid_reason, normalize_name
from graph_refresh.text import SHOWN_CHARACTERS, cell, shown
from graph_refresh.times import format_time, parse_time

REQUESTS_NAME = "graph-refresh-requests"
DEFAULT_INDEX = "https://pypi.org/simple"
MAX_BY = 200  # characters of "by" kept: who asked, not a document


@dataclass(frozen=True)
class Request:
    """One request as read: the item someone waits for, since when, who asked, and the value it was read from."""

    key: str
    candidate: Candidate
    """Package name in PEP 503 form, version and index URL as the value has them."""
    requested_at: float | None
    """Epoch seconds, whole; None when the value has no time yet (a real run writes its own into it)."""
    by: str | None = None
    value: str = ""
    """The ConfigMap value as read: a real run changes or removes the key only while it still holds this."""

    @property
    def package(self) -> str:
        return self.candidate.package_name

    @property
    def version(self) -> str:
        return self.candidate.package_version

    @property
    def requester(self) -> str:
        """Who the requested lane takes turns between: ``by``, or one anonymous requester for all without."""
        return self.by or ""


@dataclass(frozen=True)
class Unreadable:
    """A value that is not a request, and why."""

    key: str
    value: str
    reason: str

    @property
    def warning(self) -> str:
        return f"request '{cell(self.key, SHOWN_CHARACTERS)}' dropped: {self.reason}"


def request_key(candidate: Candidate) -> str:
    """The key ``app.py request`` stores a request under: ``r-`` and 10 hex characters of a hash of the item."""
    canonical = json.dumps(list(candidate), ensure_ascii=True)
    return "r-" + hashlib.sha256(canonical.encode()).hexdigest()[:10]


def new_request(candidate: Candidate, *, now: float, by: str | None) -> Request:
    """A request for ``candidate`` (its index in the normal form a ConfigMap keeps) asked at ``now``; ValueError
    says what would make a run skip it."""
    reason = invalid_reason(candidate)
    if reason:
        raise ValueError(f"{cell(candidate.package_name, 80)}=={cell(candidate.package_version, 40)}: {reason}")
    if by is not None and (len(by) > MAX_BY or not by.isprintable()):
        raise ValueError(f"--by must be printable text of at most {MAX_BY} characters")
    request = Request(request_key(candidate), candidate, float(int(now)), by or None)
    return replace(request, value=encode(request))


def encode(request: Request, *, requested_at: float | None = None) -> str:
    """A request's ConfigMap value: compact JSON, fields in a fixed order; ``requested_at`` replaces its time."""
    at = request.requested_at if requested_at is None else requested_at
    value: dict[str, Any] = {"package": request.package, "version": request.version, "index": request.candidate[2]}
    if at is not None:
        value["requested_at"] = format_time(at)
    if request.by is not None:
        value["by"] = request.by
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def stamped(text: str, *, at: float | None = None, index: str | None = None) -> str:
    """The value ``text`` (a JSON object) with ``requested_at`` set to ``at`` and ``index`` replaced by ``index``
    (when given), every other field as it was."""
    value = json.loads(text)
    if at is not None:
        value["requested_at"] = format_time(at)
    if index is not None:
        value["index"] = index
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class _TwoValues(Exception):
    """A JSON object naming a field twice (JSON keeps the last; the writer may have meant the first)."""


def _one_value_a_name(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    names = [name for name, _ in pairs]
    if len(set(names)) != len(names):
        raise _TwoValues(next(repr(name) for name in names if names.count(name) > 1))
    return dict(pairs)


def decode(key: str, text: str) -> Request:
    """The request stored under ``key``; ValueError saying what is wrong when it is not one."""
    try:
        value = json.loads(text, object_pairs_hook=_one_value_a_name)
    except _TwoValues as twice:
        raise ValueError(f"it names {twice} twice: which one was meant?") from None
    except (ValueError, RecursionError):
        raise ValueError("not JSON") from None
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    fields = {}
    for name in ("package", "version"):
        field = value.get(name)
        if not isinstance(field, str) or not field.strip():
            raise ValueError(f"{name} {_quoted(field)} is not a non-empty string")
        fields[name] = field.strip()
    index = value.get("index", DEFAULT_INDEX)
    if not isinstance(index, str):
        raise ValueError(f"index {_quoted(index)} is not a string")
    candidate = Candidate(normalize_name(fields["package"]), fields["version"], index.strip())
    reason = invalid_reason(candidate)
    if reason:
        raise ValueError(f"it would be skipped as invalid: {reason}")
    requested_at = None
    if value.get("requested_at") is not None:
        requested_at = parse_time(value["requested_at"])
        if requested_at is None:
            raise ValueError(f"requested_at {_quoted(value['requested_at'])} is not an RFC 3339 time in 1970-9999")
        requested_at = float(int(requested_at))
    by = value.get("by")
    if by is not None and not isinstance(by, str):
        raise ValueError(f"by {_quoted(by)} is not a string")
    return Request(key, candidate, requested_at, by[:MAX_BY] if by else None, text)


def _quoted(value: object) -> str:
    return shown(value) if isinstance(value, str) else cell(json.dumps(value, ensure_ascii=False), SHOWN_CHARACTERS)


def from_data(data: Mapping[str, str]) -> tuple[list[Request], list[Unreadable]]:
    """Every readable request of a ConfigMap's data, in key order, and the values that cannot be read."""
    requests, unreadable = [], []
    for key in sorted(data):
        text = data[key]
        try:
            if not isinstance(text, str):
                raise ValueError("not a string")
            requests.append(decode(key, text))
        except ValueError as error:
            unreadable.append(Unreadable(key, text if isinstance(text, str) else "", str(error)))
    return requests, unreadable


def expired(requested_at: float, now: float, ttl_seconds: float) -> bool:
    """Whether a request made at ``requested_at`` has waited longer than ``ttl_seconds`` (a run then drops it)."""
    return now >= requested_at + ttl_seconds
