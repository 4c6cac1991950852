"""Decide which candidates become Jobs (SPEC §2 step 5, §4). Pure: no I/O, no clock.

Candidate streams (one per solver, one for the analyzer) are served round-robin: each turn a
stream examines candidates until one is schedulable, yields it and goes to the back of the queue.
Candidates that are invalid or already owned are skipped with their reason and do not use a
slot. From a store that may repeat an item, a candidate met again in its stream is dropped uncounted
(a bounded memory of fingerprints).
When a cap governs a stream (eager stop for its kind, or no free capacity), the stream counts its
next candidate under that reason and stops; later candidates are backlog, not skips.
"""

from __future__ import annotations

import enum
import logging
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from graph_refresh.capacity import Capacity, JobCost
from graph_refresh.items import Candidate, Kind, WorkItem, invalid_reason
from graph_refresh.report import RunReport

logger = logging.getLogger(__name__)


class JobState(enum.Enum):
    """What the cluster says about an owned Job, and the skip reason it gives its item."""

    IN_FLIGHT = "in-flight"
    FAILED = "failed-recently"
    COMPLETE = "awaiting-sync"


def job_state(job: Mapping[str, Any]) -> JobState:
    """In flight until a ``Complete`` or ``Failed`` condition is true (a Job without status is in flight)."""
    status = job.get("status")
    conditions = status.get("conditions") if isinstance(status, dict) else None
    for condition in conditions if isinstance(conditions, list) else []:
        if not isinstance(condition, dict):
            continue
        if condition.get("status") == "True" and condition.get("type") == "Failed":
            return JobState.FAILED
        if condition.get("status") == "True" and condition.get("type") == "Complete":
            return JobState.COMPLETE
    return JobState.IN_FLIGHT


@dataclass
class Stream:
    """The candidates of one solver, or of the analyzer (``solver`` None), and the cost of one of its Jobs."""

    kind: Kind
    solver: str | None
    candidates: Iterator[Candidate]
    cost: JobCost


def plan(
    streams: list[Stream],
    *,
    report: RunReport,
    owned: Mapping[str, JobState],
    capacity: Capacity,
    eager_stop: int = 0,
    drop_repeats: bool = True,
    on_examined: Callable[[], None] = lambda: None,
    stopping: Callable[[], bool] = lambda: False,
) -> Iterator[WorkItem]:
    """Yield the items to schedule, round-robin over ``streams``, counting every skip in ``report``.

    ``owned`` maps Job names graph-refresh already owns in the cluster to their state.
    ``eager_stop`` caps the items yielded per kind (0 = no cap). ``capacity`` is taken from for each
    item yielded and may be exhausted from outside (a quota refusal at create time). ``drop_repeats``
    drops a candidate met again in its stream (see :class:`_Repeats`); a store that never repeats an item
    needs no such memory. Once ``stopping()`` is true (the run was interrupted), nothing more is
    examined: what is left is backlog.
    """
    planned: Counter[str] = Counter()
    repeats = _Repeats() if drop_repeats else None
    queue = deque(streams)
    while queue:
        stream = queue.popleft()
        counts = report.counts(stream.kind, stream.solver)
        for candidate in stream.candidates:
            if stopping():
                return
            if repeats is not None and repeats.met_before(stream, candidate):
                logger.debug("Dropping a repeated %s candidate %r", stream.kind, candidate)
                continue  # the same item again (a graph can hold two nodes of it): never examined twice
            counts.examined += 1
            on_examined()
            stop = _cap_reached(stream, planned, capacity, eager_stop)
            if stop:
                counts.skipped[stop] += 1
                report.stopped_by[stream.kind] = report.stopped_by[stream.kind] or stop
                break
            reason = invalid_reason(candidate)
            if reason:
                logger.debug("Skipping invalid %s candidate %r: %s", stream.kind, candidate, reason)
                counts.skipped["invalid"] += 1
                continue
            item = WorkItem(stream.kind, stream.solver, candidate)
            state = owned.get(item.job_name)
            if state is not None:
                counts.skipped[state.value] += 1
                continue
            capacity.take(stream.cost)
            planned[stream.kind] += 1
            yield item
            queue.append(stream)
            break


MAX_REMEMBERED = 100_000  # candidates remembered to drop repeats: a few MiB, whatever the backlog


class _Repeats:
    """The candidates examined so far, per stream, to drop one met again.

    Only a fingerprint of each is kept (Python's 64-bit hash of the stream and the candidate: a false
    match among 100,000 is about one chance in a billion), and at most ``MAX_REMEMBERED`` of them, so
    memory stays bounded. Past that, a repeat is examined again; were it planned twice, the second
    create would be answered 409 and counted as already scheduled.
    """

    def __init__(self) -> None:
        self._seen: set[int] = set()

    def met_before(self, stream: Stream, candidate: Candidate) -> bool:
        """Whether ``candidate`` was met before in ``stream``; remembers it if not."""
        fingerprint = hash((stream.kind, stream.solver, candidate))
        if fingerprint in self._seen:
            return True
        if len(self._seen) < MAX_REMEMBERED:
            self._seen.add(fingerprint)
        return False


def _cap_reached(stream: Stream, planned: Counter[str], capacity: Capacity, eager_stop: int) -> str | None:
    if eager_stop and planned[stream.kind] >= eager_stop:
        return "eager-stop"
    if not capacity.admits(stream.cost):
        return "capacity"
    return None
