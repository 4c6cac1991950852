"""Requests: package versions someone waits for, kept in the ConfigMap ``graph-refresh-requests`` in middletier
(docs/lanes.md). Pure: the format, reading values written by anyone, and when a request ends.

Format (for operators and the adviser)
--------------------------------------
One ``data`` key per request, any ConfigMap key (``app.py request`` uses a hash of the item, so asking twice
changes nothing); the value one JSON object::

    {"package": "flask", "version": "1.1.2", "index": "https://pypi.org/simple",
     "requested_at": "2027-01-15T08:00:00Z", "by": "adviser"}

``index`` defaults to ``DEFAULT_INDEX`` and ``by`` (who asked, free text) may be absent. A value that cannot be
read, or whose package, version or index would be skipped as invalid by a run, is dropped with a warning naming
its key. Two keys asking for the same item are one request (the older counts).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from graph_refresh.config import redact_url
from graph_refresh.items import Candidate, invalid_reason, normalize_name
from graph_refresh.retry.codec import format_time, parse_time, shown

REQUESTS_NAME = "graph-refresh-requests"
DEFAULT_INDEX = "https://pypi.org/simple"
MAX_BY = 200  # characters of "by" kept: who asked, not a document


@dataclass(frozen=True)
class Request:
    """One open request: the item someone waits for, since when, and who asked."""

    key: str
    candidate: Candidate
    """Package name in PEP 503 form, version and index URL as asked."""
    requested_at: float
    """Epoch seconds, whole."""
    by: str | None = None

    @property
    def package(self) -> str:
        return self.candidate.package_name

    @property
    def version(self) -> str:
        return self.candidate.package_version


def request_key(candidate: Candidate) -> str:
    """The key ``app.py request`` stores a request under: ``r-`` and 10 hex characters of a hash of the item."""
    canonical = json.dumps(list(candidate), ensure_ascii=True)
    return "r-" + hashlib.sha256(canonical.encode()).hexdigest()[:10]


def new_request(package: str, version: str, index: str | None, *, now: float, by: str | None) -> Request:
    """A request for ``package==version`` asked at ``now``; ValueError says what would make a run skip it."""
    candidate = Candidate(normalize_name(package.strip()), version.strip(), (index or DEFAULT_INDEX).strip())
    reason = invalid_reason(candidate)
    if reason:
        raise ValueError(f"{package}=={version} at {redact_url(candidate.index_url)} cannot be scheduled: {reason}")
    if by is not None and (len(by) > MAX_BY or not by.isprintable()):
        raise ValueError(f"--by must be printable text of at most {MAX_BY} characters")
    return Request(request_key(candidate), candidate, float(int(now)), by or None)


def encode(request: Request) -> str:
    """A request's ConfigMap value: compact JSON, fields in a fixed order."""
    value: dict[str, Any] = {
        "package": request.package,
        "version": request.version,
        "index": request.candidate.index_url,
        "requested_at": format_time(request.requested_at),
    }
    if request.by is not None:
        value["by"] = request.by
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def decode(key: str, text: str) -> Request:
    """The request stored under ``key``; ValueError saying what is wrong when it is not one."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        raise ValueError("not JSON") from None
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    fields = {}
    for name in ("package", "version"):
        field = value.get(name)
        if not isinstance(field, str) or not field.strip():
            raise ValueError(f"{name} {shown(field)} is not a non-empty string")
        fields[name] = field.strip()
    index = value.get("index", DEFAULT_INDEX)
    if not isinstance(index, str):
        raise ValueError(f"index {shown(index)} is not a string")
    candidate = Candidate(normalize_name(fields["package"]), fields["version"], index.strip())
    reason = invalid_reason(candidate)
    if reason:
        raise ValueError(f"it would be skipped as invalid: {reason}")
    requested_at = parse_time(value.get("requested_at"))
    if requested_at is None:
        raise ValueError(f"requested_at {shown(value.get('requested_at'))} is not an RFC 3339 time in 1970-9999")
    by = value.get("by")
    if by is not None and not isinstance(by, str):
        raise ValueError(f"by {shown(by)} is not a string")
    return Request(key, candidate, float(int(requested_at)), by[:MAX_BY] if by else None)


FUTURE_SLACK_SECONDS = 86_400  # a requester's clock may be ahead by this much; later is not a time, it is a typo


def from_data(data: Mapping[str, str], *, now: float | None = None) -> tuple[list[Request], list[str]]:
    """The open requests of a ConfigMap's data, oldest first (one per item: the oldest key wins), and a warning
    for each value that could not be read, naming its key. With ``now``, a request made later than ``now`` is
    taken as made at ``now``, and one more than ``FUTURE_SLACK_SECONDS`` later cannot be read (it would never
    expire)."""
    requests: dict[Candidate, Request] = {}
    problems = []
    for key in sorted(data):
        try:
            request = decode(key, data[key])
            if now is not None and request.requested_at > now:
                if request.requested_at > now + FUTURE_SLACK_SECONDS:
                    raise ValueError(f"requested_at {format_time(request.requested_at)} is more than a day ahead")
                request = replace(request, requested_at=float(int(now)))
        except ValueError as error:
            problems.append(f"request {shown(key)} dropped: {error}")
            continue
        known = requests.get(request.candidate)
        if known is None or (request.requested_at, request.key) < (known.requested_at, known.key):
            requests[request.candidate] = request
    return sorted(requests.values(), key=lambda r: (r.requested_at, r.key)), problems


def expired(request: Request, now: float, ttl_seconds: float) -> bool:
    """Whether the request has waited longer than ``ttl_seconds`` (the run then drops it with a warning)."""
    return now >= request.requested_at + ttl_seconds
