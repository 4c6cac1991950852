"""Where one item stands, per solver and for the analyzer (``app.py explain``; docs/lanes.md). Pure: the CLI
gathers the facts (the store's status and counts, the item's Jobs, the ledger and the requests) and this
module says what they mean, in the order a run would decide them."""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from graph_refresh.items import ANALYZER, Kind
from graph_refresh.owned import JobState
from graph_refresh.printable import escaped
from graph_refresh.retry.codec import format_time
from graph_refresh.retry.model import LedgerEntry, RunRecord
from graph_refresh.retry.policy import Policy, entry_state
from graph_refresh.waiting.lanes import OpenRequest

DEFAULT_PERIOD_SECONDS = 3600  # the CronJob's period, when the recent runs do not tell it


@dataclass(frozen=True)
class JobSeen:
    """The item's latest owned Job in one stream."""

    name: str
    state: JobState
    created: str | None
    """The Job's creationTimestamp, as the API gave it."""


@dataclass(frozen=True)
class StreamFacts:
    """What is known of the item in one stream."""

    kind: Kind
    solver: str | None
    done: bool
    """Solved by this solver (an error record included), or analyzed."""
    job: JobSeen | None
    entry: LedgerEntry | None
    lane: str | None
    """``fresh`` or ``backlog`` when the store lists it as a candidate; None when it does not know the version."""
    ahead: int | None
    """Candidates of the stream's lane before it; None when not counted."""


def explain(
    facts: Sequence[StreamFacts],
    *,
    invalid: str | None,
    request: OpenRequest | None,
    runs: Sequence[RunRecord],
    now: float,
    policy: Policy,
) -> list[dict[str, Any]]:
    """Per stream: ``stream``, ``state`` (one word) and the details that state has, JSON-ready."""
    return [_one(f, invalid=invalid, request=request, runs=runs, now=now, policy=policy) for f in facts]


def _one(
    facts: StreamFacts,
    *,
    invalid: str | None,
    request: OpenRequest | None,
    runs: Sequence[RunRecord],
    now: float,
    policy: Policy,
) -> dict[str, Any]:
    stream = facts.solver or ANALYZER
    out: dict[str, Any] = {"stream": stream, "kind": facts.kind}
    job = facts.job
    if facts.done:
        return {**out, "state": "analyzed" if facts.kind == ANALYZER else "solved"}
    if invalid:
        return {**out, "state": "invalid", "reason": invalid}
    if job is not None and job.state is JobState.IN_FLIGHT:
        return {**out, "state": "in-flight", "job": job.name, "since": job.created}
    if job is not None and job.state is JobState.COMPLETE:
        return {**out, "state": "awaiting-sync", "job": job.name}
    entry = facts.entry
    if entry is not None and entry.cause is not None:
        words, until = entry_state(entry, now, policy)
        failed = {"cause": str(entry.cause), "attempt": entry.attempt, "failures": entry.failures}
        if words.startswith("quarantined"):
            return {**out, "state": "quarantined", **failed, "until": format_time(until or now)}
        if words.startswith("backing off"):
            return {**out, "state": "failed", **failed, "retry_at": format_time(until or now)}
        if words.startswith("retry"):
            return {**out, "state": "failed", **failed, "retry_at": "next run"}
    if request is not None:
        by = None if request.first.by is None else escaped(request.first.by)
        return {
            **out,
            "state": "requested",
            "since": format_time(request.requested_at),
            "by": by,
            "key": escaped(request.first.key),
        }
    if facts.lane is None:
        return {**out, "state": "unknown", "reason": "the graph does not hold this version: request it"}
    waiting: dict[str, Any] = {**out, "state": "waiting", "lane": facts.lane, "ahead": facts.ahead}
    return {**waiting, **_likely_start(stream, facts.lane, facts.ahead, runs, now)}


def _likely_start(
    stream: str, lane: str, ahead: int | None, runs: Sequence[RunRecord], now: float
) -> Mapping[str, Any]:
    """When the item is likely to be scheduled: the Jobs ahead of it divided by what its stream's lane took
    per run in the recent real runs, at their usual interval."""
    taken = [run.scheduled.get(stream, {}).get(lane, 0) for run in runs]
    per_run = sum(taken) / len(taken) if taken else 0.0
    if ahead is None or per_run <= 0:
        return {"per_run": round(per_run, 2), "likely_at": None}
    times = [run.at for run in runs]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times) if later > earlier]
    period = statistics.median(gaps) if gaps else DEFAULT_PERIOD_SECONDS
    runs_needed = int(ahead // per_run)  # this many full runs go to the ones ahead; it is in the run after
    last = max(times[-1], now - period) if times else now
    return {"per_run": round(per_run, 2), "likely_at": format_time(last + (runs_needed + 1) * period)}
