"""Decide which candidates become Jobs (design: A run, Items). Pure: no I/O, no clock.

Candidate streams (one per solver, one for the analyzer) are served round-robin: each turn a
stream examines candidates until one is schedulable, yields it and goes to the back of the queue.
Candidates that are invalid or already owned are skipped with their reason and do not use a
slot. From a store that may repeat an item, a candidate met again in its stream is dropped uncounted
(a bounded memory of fingerprints).
When a cap governs a stream (eager stop for its kind, or no free capacity), the stream counts its
next candidate under that reason and stops; later candidates are backlog, not skips.

An item whose latest owned Job is in flight or complete is skipped as such; otherwise its history
(design: Learning) decides: a first attempt, a retry (with escalated resources, costing what its own Job costs),
or a skip as ``failed-recently`` or ``quarantined``.
"""

from __future__ import annotations

import logging
import math
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from graph_refresh.capacity import Capacity, JobCost
from graph_refresh.items import ANALYZER, Candidate, Kind, WorkItem, invalid_reason
from graph_refresh.owned import JobState, OwnedJobs
from graph_refresh.report import SYNC_LAG, Counts, RunReport, SkipReason
from graph_refresh.retry.model import AttemptResources, Cause
from graph_refresh.retry.policy import History, Policy, Skip

logger = logging.getLogger(__name__)


class Lane(StrEnum):
    """Where a Job's slot came from (docs/lanes.md), in the order lanes are filled."""

    REQUESTED = "requested"
    FRESH = "fresh"
    BACKLOG = "backlog"


LANES = tuple(Lane)


class Arrivals:
    """A fresh lane's candidates, (arrival, candidate) in arrival order, and how far the lane got.

    ``passed`` is the arrival position of the last candidate the lane settled (planned or skipped for a reason
    of its own); a candidate counted under a cap, or left unexamined, stays fresh for the next run."""

    def __init__(self, pairs: Iterator[tuple[int, Candidate]], start: int) -> None:
        self._pairs = pairs
        self.passed = self._last = start

    def __iter__(self) -> Iterator[Candidate]:
        for arrival, candidate in self._pairs:
            self.passed, self._last = self._last, arrival
            yield candidate
        self.passed = self._last

    def settle(self) -> None:
        """The candidate last yielded was settled too (the lane moves past it)."""
        self.passed = self._last


@dataclass
class Stream:
    """The candidates of one solver, or of the analyzer (``solver`` None), in one lane, and the cost of one of
    its Jobs."""

    kind: Kind
    solver: str | None
    candidates: Iterator[Candidate] | Arrivals
    cost: JobCost
    """What one Job of this stream costs as its Template renders (a retry's escalated Job may cost more)."""
    lane: Lane = Lane.BACKLOG


ROTATION_SECONDS = 3600  # ties in the stream order rotate once an hour: the CronJob's period


def order_streams(streams: list[Stream], owned_per_stream: Mapping[str, int], now: float) -> list[Stream]:
    """The round-robin order: the streams that own the fewest Jobs in middletier first.

    So when caps leave few slots, the solvers that got none last time go first this time. Ties (as when
    finished Jobs are already gone) rotate every ``ROTATION_SECONDS`` of ``now``: nobody starves from run to
    run. Within an hour the order depends only on the cluster's state, so a dry run plans what the real run
    then creates.
    """
    turn = int(now // ROTATION_SECONDS) % len(streams) if streams else 0
    rotated = streams[turn:] + streams[:turn]
    return sorted(rotated, key=lambda stream: owned_per_stream.get(stream.solver or ANALYZER, 0))


@dataclass(frozen=True, init=False)
class Planned:
    """An item to schedule, the lane it came from, and for a retry what it retries and with which resources."""

    item: WorkItem
    resources: AttemptResources | None = None
    """What to write over the rendered Job (escalated memory, a longer deadline); None for a first attempt."""
    retries: Cause | None = None
    """The cause of the failure this attempt retries; None for a first attempt."""
    capped: bool = False
    """The escalation reached its cap (``--max-memory``, ``--max-deadline``)."""
    lane: Lane = Lane.BACKLOG

    def __init__(
        self,
        item: WorkItem,
        resources: AttemptResources | None = None,
        retries: Cause | None = None,
        capped: bool = False,
        lane: Lane = Lane.BACKLOG,
    ) -> None:
        # One per item planned: the instance's dict filled at once, as WorkItem's (frozen all the same).
        fields = self.__dict__
        fields["item"], fields["resources"], fields["retries"] = item, resources, retries
        fields["capped"], fields["lane"] = capped, lane


def plan(streams: list[Stream], **planner: Any) -> Iterator[Planned]:
    """Yield the items to schedule from one set of ``streams`` (one lane), round-robin, counting every skip:
    ``Planner(**planner).lane(streams)`` (see :class:`Planner` for the arguments; :meth:`Planner.fill` fills
    the lanes of a run)."""
    return Planner(**planner).lane(streams)


class Planner:
    """Decides which candidates become Jobs, lane after lane, within one run's caps.

    ``view`` holds the Jobs graph-refresh already owns (none when None); ``history`` decides what an item
    without a live or complete Job does (a first attempt when None); ``cost`` prices a retry's Job with its
    resources (default: the stream's cost). ``eager_stop`` caps the items yielded per kind (0 = no cap), across
    lanes. ``capacity`` is taken from for each item yielded and may be exhausted from outside (a quota refusal
    at create time). ``drop_repeats`` drops a candidate met again in its stream (see :class:`_Repeats`); a
    store that never repeats an item needs no such memory; ``remember`` bounds it (default
    ``MAX_REMEMBERED``). Once ``stopping()`` is true (the run was interrupted), nothing more is examined:
    what is left is backlog. An item planned by one lane is passed over, uncounted, by the lanes after it.
    """

    def __init__(
        self,
        *,
        report: RunReport,
        capacity: Capacity,
        view: OwnedJobs | None = None,
        history: History | None = None,
        cost: Callable[[WorkItem, AttemptResources], JobCost] | None = None,
        eager_stop: int = 0,
        drop_repeats: bool = True,
        remember: int | None = None,
        on_examined: Callable[[], None] = lambda: None,
        stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        self.report, self.capacity = report, capacity
        self.view = view or OwnedJobs()
        self.history = history or History({}, Policy(), 0.0)
        self.cost, self.eager_stop = cost, eager_stop
        self.on_examined, self.stopping = on_examined, stopping
        self.planned: Counter[str] = Counter()
        self.requested: set[tuple[str, str | None, Candidate]] = set()
        self._drop_repeats, self._remember = drop_repeats, MAX_REMEMBERED if remember is None else remember

    def lane(self, streams: list[Stream], *, limit: int | None = None) -> Iterator[Planned]:
        """Yield the items to schedule from ``streams``, round-robin, at most ``limit`` of them (None: no
        limit of the lane's own; reaching it stops the lane without counting anything)."""
        return self._lane(streams, limit, self._repeats(), None)

    def _repeats(self) -> _Repeats | None:
        return _Repeats(self._remember) if self._drop_repeats else None

    def _lane(
        self, streams: list[Stream], limit: int | None, repeats: _Repeats | None, cut: list[Stream] | None
    ) -> Iterator[Planned]:
        """:meth:`lane`; the streams its ``limit`` stopped (they neither ended nor met a cap) go into ``cut``."""
        queue = deque(streams)
        yielded = 0
        while queue and (limit is None or yielded < limit):
            stream = queue.popleft()
            planned = self._next(stream, repeats)
            if planned is not None:
                yielded += 1
                yield planned
                queue.append(stream)
        if cut is not None:
            cut.extend(queue)

    def fill(
        self,
        *,
        requested: list[Stream],
        fresh: list[Stream],
        backlog: list[Stream],
        fresh_share: float = 1.0,
        sync_lag: bool = False,
    ) -> Iterator[Planned]:
        """Fill the run's capacity lane by lane: every requested item first; then fresh candidates, at most
        ``fresh_share`` of the Jobs that still fit; then the backlog; then, if the backlog ended with room left,
        the fresh candidates beyond the share. With ``sync_lag`` (the graph sync is the bottleneck) only the
        requested lane runs, and the kinds of the other lanes say ``sync-lag``."""
        yield from self.lane(requested)
        if sync_lag:
            for stream in [*fresh, *backlog]:
                self.report.stop(stream.kind, SYNC_LAG)
            return
        slots = self.capacity.count_admitted([stream.cost for stream in fresh])
        repeats, beyond = self._repeats(), list[Stream]()
        yield from self._lane(fresh, None if slots is None else math.floor(fresh_share * slots), repeats, beyond)
        yield from self.lane(backlog)
        # The share keeps the backlog moving; slots the backlog could not use would otherwise stay idle while
        # fresh candidates wait. Only streams with room go on, so a backlog stopped by a cap counts nothing more.
        yield from self._lane([stream for stream in beyond if self._has_room(stream)], None, repeats, None)

    def _has_room(self, stream: Stream) -> bool:
        """Whether no cap would stop ``stream`` now (nothing is counted)."""
        return _cap_reached(stream, self.planned, self.capacity, self.eager_stop) is None

    def _next(self, stream: Stream, repeats: _Repeats | None) -> Planned | None:
        """Examine ``stream``'s candidates until one is schedulable and return it; None when the stream ends,
        stops at a cap or the run is interrupted."""
        report, counts = self.report, self.report.counts(stream.kind, stream.solver)
        arrivals = stream.candidates if isinstance(stream.candidates, Arrivals) else None
        # Run for every candidate: what does not change while the stream is read is looked up once.
        stopping, on_examined, requested = self.stopping, self.on_examined, self.requested
        passes_over = stream.lane is not Lane.REQUESTED
        for candidate in stream.candidates:
            if stopping():
                return None
            if repeats is not None and repeats.met_before(stream, candidate):
                logger.debug("Dropping a repeated %s candidate %r", stream.kind, candidate)
                continue  # the same item again (a graph can hold two nodes of it): never examined twice
            if (
                requested  # most runs have no request: no tuple to build per candidate
                and passes_over
                and (stream.kind, stream.solver, candidate) in requested
            ):
                if arrivals is not None:
                    arrivals.settle()
                continue  # planned by the requested lane already
            counts.examined += 1
            on_examined()
            stop = _cap_reached(stream, self.planned, self.capacity, self.eager_stop)
            if stop is not None:
                reason, limit = stop
                counts.skipped[reason] += 1
                report.stop(stream.kind, reason, limit)
                return None
            if arrivals is not None:
                arrivals.settle()
            planned = self._decide(stream, candidate, counts)
            if planned is _STOP:
                return None
            if isinstance(planned, Planned):
                if not passes_over:
                    requested.add((stream.kind, stream.solver, candidate))
                return planned
        return None

    def _decide(self, stream: Stream, candidate: Candidate, counts: Counts) -> Planned | object | None:
        """What one examined candidate becomes: a Planned item, None (skipped, counted) or ``_STOP`` (the
        stream stops: its first attempts no longer fit)."""
        report, capacity, history = self.report, self.capacity, self.history
        reason = invalid_reason(candidate)
        if reason:
            logger.debug("Skipping invalid %s candidate %r: %s", stream.kind, candidate, reason)
            counts.skipped[SkipReason.INVALID] += 1
            return None
        item = WorkItem(stream.kind, stream.solver, candidate)
        state = self.view.state(item)  # most items have no Job: None
        if state is not None and state is not JobState.FAILED:  # in flight, or complete and awaiting the sync
            counts.skipped[state.value] += 1
            return None
        decision = history.next_for(item)
        if isinstance(decision, Skip):
            counts.skipped[decision.reason] += 1
            return None
        job_cost = stream.cost
        attempt = decision.attempt
        if state is not None:  # failed
            # A fresh start (quarantine over, memory cleared) takes a number past every Job the item still has:
            # the name of a failed Job that the TTL has not removed yet would only meet a 409.
            attempt = max(attempt, self.view.latest_attempt(item) + 1)
        if attempt != 1:
            item = WorkItem(stream.kind, stream.solver, candidate, attempt)
        if decision.resources is not None and self.cost is not None:
            job_cost = self.cost(item, decision.resources)
            never = capacity.never_admits(job_cost)
            if never is not None and decision.retries in (Cause.OOM, Cause.DEADLINE):
                logger.warning(
                    "%s %s %s: the %s retry (attempt %d) would need more than %s can ever admit; its "
                    "failure counts as at the cap (an error): it is retried as it ran, after the back-off",
                    stream.solver or stream.kind,
                    candidate.package_name,
                    candidate.package_version,
                    decision.retries,
                    attempt,
                    never,
                )
                decision = history.at_cap(item)
                if isinstance(decision, Skip):
                    counts.skipped[decision.reason] += 1
                    return None
                job_cost = stream.cost if decision.resources is None else self.cost(item, decision.resources)
            limit = capacity.blocking_limit(job_cost)
            if limit is not None:  # an escalated retry may not fit where a first attempt does
                counts.skipped[SkipReason.CAPACITY] += 1
                if capacity.blocking_limit(stream.cost) is None:
                    return None  # only the escalation is too big: the stream's first attempts still fit
                report.stop(stream.kind, SkipReason.CAPACITY, limit)
                return _STOP
        capacity.take(job_cost)
        self.planned[stream.kind] += 1
        return Planned(item, decision.resources, decision.retries, decision.capped, stream.lane)


_STOP = object()  # what Planner._decide returns when the stream stops

MAX_REMEMBERED = 100_000  # candidates remembered to drop repeats: a few MiB, whatever the backlog


class _Repeats:
    """The candidates examined so far, per stream, to drop one met again.

    Only a fingerprint of each is kept (Python's 64-bit hash of the stream and the candidate: a false
    match among 100,000 is about one chance in a billion), and at most ``MAX_REMEMBERED`` of them, so
    memory stays bounded. Past that, a repeat is examined again; were it planned twice, the second
    create would be answered 409 and counted as already scheduled.
    """

    def __init__(self, limit: int) -> None:
        self._seen: set[int] = set()
        self._limit = limit

    def met_before(self, stream: Stream, candidate: Candidate) -> bool:
        """Whether ``candidate`` was met before in ``stream``; remembers it if not."""
        fingerprint = hash((stream.kind, stream.solver, candidate))
        if fingerprint in self._seen:
            return True
        if len(self._seen) < self._limit:
            self._seen.add(fingerprint)
        return False


def _cap_reached(
    stream: Stream, planned: Counter[str], capacity: Capacity, eager_stop: int
) -> tuple[SkipReason, str] | None:
    """The cap that stops ``stream`` now, and the limit behind it; None when none does."""
    if eager_stop and planned[stream.kind] >= eager_stop:
        return SkipReason.EAGER_STOP, "--eager-stop"
    limit = capacity.blocking_limit(stream.cost)
    if limit is not None:
        return SkipReason.CAPACITY, limit
    return None
