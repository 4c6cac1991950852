"""Where one item stands, per solver and for the analyzer (``app.py explain``; docs/lanes.md). Pure: the run's
own decision for the item (``fate.decide``, computed by the caller from what it read as a run reads it) and
what the store says of it become one row per stream, in words an operator reads."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from graph_refresh.fate import Fate, Planned, Skipped
from graph_refresh.items import ANALYZER, Kind
from graph_refresh.retry.model import Cause, LedgerEntry
from graph_refresh.text import one_line
from graph_refresh.times import format_time
from graph_refresh.vocabulary import SkipReason
from graph_refresh.waiting.eta import Forecast
from graph_refresh.waiting.lanes import OpenRequest


@dataclass(frozen=True)
class JobSeen:
    """The item's latest owned Job in one stream."""

    name: str
    created: str | None
    """The Job's creationTimestamp, as the API gave it."""
    attempt: int
    state: str
    """``in-flight``, ``complete`` or ``failed``."""
    memory: str | None = None
    """The first container's memory limit (else request), as the Job has it."""
    deadline: int | None = None
    """The Job's ``spec.activeDeadlineSeconds``."""


@dataclass(frozen=True)
class StreamFacts:
    """What is known of the item in one stream, and what the next run decides for it."""

    kind: Kind
    solver: str | None
    done: bool
    """Solved by this solver (an error record included), or analyzed."""
    fate: Fate
    """What the next run does with the item in this stream, should it reach it (``fate.decide``)."""
    jobs: tuple[JobSeen, ...]
    """The item's owned Jobs in this stream, lowest attempt first (the last is its latest)."""
    entry: LedgerEntry | None
    """The item's ledger entry after the run's learning (failed Jobs present included)."""
    request: OpenRequest | None
    """The open request the next run serves this stream from, if any."""
    paused: bool
    """The next run schedules requests only (the graph sync is behind)."""
    lane: str | None
    """``fresh`` or ``backlog`` when the store lists it as a candidate; None when it does not know the version."""
    ahead: int | None
    """Candidates of the stream's lane before it that take a slot (requests, when it is requested); None when not
    counted."""
    forecast: Forecast | None = None
    """Its windows (docs/eta.md), when it waits in a lane."""


def explain(facts: Sequence[StreamFacts]) -> list[dict[str, Any]]:
    """Per stream: ``stream``, ``state`` (one word) and the details that state has, JSON-ready."""
    return [_one(f) for f in facts]


_SKIPPED_STATES = {
    SkipReason.INVALID: "invalid",
    SkipReason.IN_FLIGHT: "in-flight",
    SkipReason.AWAITING_SYNC: "awaiting-sync",
    SkipReason.FAILED_RECENTLY: "failed",
    SkipReason.QUARANTINED: "quarantined",
}


def _one(facts: StreamFacts) -> dict[str, Any]:
    """One stream's row, with the item's Jobs in that stream (``jobs``) after what the state says."""
    row = _state(facts)
    jobs = [
        {
            "name": j.name,
            "attempt": j.attempt,
            "state": j.state,
            "memory": j.memory,
            "deadline": j.deadline,
            "created": j.created,
        }
        for j in facts.jobs
    ]
    return {**row, "jobs": jobs}


def _state(facts: StreamFacts) -> dict[str, Any]:
    stream = facts.solver or ANALYZER
    out: dict[str, Any] = {"stream": stream, "kind": facts.kind}
    if facts.done:
        return {**out, "state": "analyzed" if facts.kind == ANALYZER else "solved"}
    fate, entry = facts.fate, facts.entry
    job = facts.jobs[-1] if facts.jobs else None
    if isinstance(fate, Skipped) and fate.reason in _SKIPPED_STATES:
        state = _SKIPPED_STATES[fate.reason]
        out["state"] = state
        if state == "invalid":
            return {**out, "reason": fate.detail}
        if state in ("in-flight", "awaiting-sync") and job is not None:
            return {**out, "job": job.name, "since": job.created} if state == "in-flight" else {**out, "job": job.name}
        failed = {} if entry is None else {"cause": _cause(entry), "attempt": entry.attempt, "failures": entry.failures}
        when = format_time(fate.until) if fate.until is not None else None
        return {**out, **failed, "until" if state == "quarantined" else "retry_at": when}
    next_job = _next_job(fate)
    if facts.request is not None:
        request = facts.request
        by = None if request.first.by is None else one_line(request.first.by)
        since = format_time(request.requested_at)
        key = one_line(request.first.key)
        ahead = facts.ahead  # how many requests the requested lane serves first in this stream
        requested = {**out, "state": "requested", "since": since, "by": by, "key": key, "ahead": ahead, **next_job}
        return {**requested, **_windows(facts.forecast)}
    if facts.paused:
        return {**out, "state": "paused", "reason": "sync-lag: the graph sync is behind, requests only", **next_job}
    if facts.lane is None:
        return {**out, "state": "unknown", "reason": "the graph does not hold this version: request it"}
    if isinstance(fate, Skipped):  # capacity: a retry bigger than what is free now waits for room
        next_job["needs"] = fate.detail
    waiting: dict[str, Any] = {**out, "state": "waiting", "lane": facts.lane, "ahead": facts.ahead, **next_job}
    return {**waiting, **_windows(facts.forecast)}


def _windows(forecast: Forecast | None) -> dict[str, Any]:
    if forecast is None:
        return {"start": None, "solved": None, "eta_note": "what comes before it could not be counted"}
    return forecast.to_json()


def _cause(entry: LedgerEntry) -> str | None:
    return None if entry.cause is None else str(entry.cause)


def _next_job(fate: Fate) -> dict[str, Any]:
    """What the next Job of the item is, when it is a retry: its attempt, the cause it retries, what grows."""
    if not isinstance(fate, Planned) or fate.item.attempt == 1:
        return {}
    out: dict[str, Any] = {"attempt": fate.item.attempt}
    if fate.retries is not None:
        out["retries"] = str(fate.retries)
    if fate.retries is Cause.OOM and fate.resources is not None:
        out["memory"] = ", ".join(
            f"{name}={memory.limit or memory.request}" for name, memory in sorted(fate.resources.memory.items())
        )
    if fate.retries is Cause.DEADLINE and fate.resources is not None:
        out["deadline"] = fate.resources.deadline_seconds
    return out
