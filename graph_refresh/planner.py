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
from typing import Any

from graph_refresh.capacity import Capacity, JobCost
from graph_refresh.config import RetrySettings
from graph_refresh.fate import Planned, Skipped, decide
from graph_refresh.items import ANALYZER, Candidate, Kind, WorkItem
from graph_refresh.owned import OwnedJobs
from graph_refresh.report import Counts, RunReport
from graph_refresh.retry.model import AttemptResources
from graph_refresh.retry.policy import History
from graph_refresh.vocabulary import SYNC_LAG, Lane, SkipReason

logger = logging.getLogger(__name__)


class Arrivals:
    """A fresh lane's candidates, (arrival, candidate) in arrival order, and how far the lane got.

    The lane's next cursor (:meth:`cursor`) is the position up to which every candidate is settled: skipped for a
    reason of its own, or planned and its Job known to exist (:meth:`exists`, created or already there). A
    candidate counted under a cap, left unexamined, or planned but not created (refused, failed, interrupted)
    stays fresh for the next run, and so does every candidate after it."""

    def __init__(self, pairs: Iterator[tuple[int, Candidate]], start: int) -> None:
        self._pairs = pairs
        self.passed = self._last = self._before = start
        self._held: dict[str, int] = {}
        """Job name of a planned candidate → the cursor that keeps it fresh, until its Job is known to exist."""

    def __iter__(self) -> Iterator[Candidate]:
        for arrival, candidate in self._pairs:
            self.passed, self._before, self._last = self._last, self._last, arrival
            yield candidate
        self.passed = self._last

    def settle(self) -> None:
        """The candidate last yielded was settled too (the lane moves past it)."""
        self.passed = self._last

    def hold(self, job_name: str) -> None:
        """The candidate last yielded was planned as Job ``job_name``: the lane passes it once that Job exists."""
        self._held[job_name] = self._before

    def exists(self, job_name: str) -> None:
        """The Job ``job_name`` was created, or was there already."""
        self._held.pop(job_name, None)

    def cursor(self) -> int:
        """The arrival position the lane passed: what the next run's fresh lane starts after."""
        return min([self.passed, *self._held.values()])


@dataclass
class CandidateStream:
    """The candidates of one solver, or of the analyzer (``solver`` None), in one lane, and the cost of one of
    its Jobs."""

    kind: Kind
    solver: str | None
    candidates: Iterator[Candidate] | Arrivals
    cost: JobCost
    """What one Job of this stream costs as its Template renders (a retry's escalated Job may cost more)."""
    lane: Lane = Lane.BACKLOG


ROTATION_SECONDS = 3600  # ties in the stream order rotate once an hour: the CronJob's period


def order_streams(
    streams: list[CandidateStream], owned_per_stream: Mapping[str, int], now: float
) -> list[CandidateStream]:
    """The round-robin order: the streams that own the fewest Jobs in middletier first.

    So when caps leave few slots, the solvers that got none last time go first this time. Ties (as when
    finished Jobs are already gone) rotate every ``ROTATION_SECONDS`` of ``now``: nobody starves from run to
    run. Within an hour the order depends only on the cluster's state, so a dry run plans what the real run
    then creates.
    """
    turn = int(now // ROTATION_SECONDS) % len(streams) if streams else 0
    rotated = streams[turn:] + streams[:turn]
    return sorted(rotated, key=lambda stream: owned_per_stream.get(stream.solver or ANALYZER, 0))


def plan(streams: list[CandidateStream], **planner: Any) -> Iterator[Planned]:
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
        untrusted: Callable[[str], str | None] | None = None,
    ) -> None:
        self.report, self.capacity = report, capacity
        self.untrusted = untrusted
        self.view = view or OwnedJobs()
        self.history = history or History({}, RetrySettings(), 0.0)
        self.cost, self.eager_stop = cost, eager_stop
        self.on_examined, self.stopping = on_examined, stopping
        self.planned: Counter[str] = Counter()
        self.credits: dict[str, float] = {}
        """Per lane, the fraction of a slot its share gave it this run that it could not use (see :meth:`fill`)."""
        self.requested: set[tuple[str, str | None, Candidate]] = set()
        self._drop_repeats, self._remember = drop_repeats, MAX_REMEMBERED if remember is None else remember

    def lane(self, streams: list[CandidateStream], *, limit: int | None = None) -> Iterator[Planned]:
        """Yield the items to schedule from ``streams``, round-robin, at most ``limit`` of them (None: no
        limit of the lane's own; reaching it stops the lane without counting anything)."""
        return self._lane(streams, limit, self._repeats(), None)

    def _repeats(self) -> _Repeats | None:
        return _Repeats(self._remember) if self._drop_repeats else None

    def _lane(
        self,
        streams: list[CandidateStream],
        limit: int | None,
        repeats: _Repeats | None,
        cut: list[CandidateStream] | None,
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
        requested: list[CandidateStream],
        fresh: list[CandidateStream],
        backlog: list[CandidateStream],
        request_share: float,
        fresh_share: float,
        credits: Mapping[str, float] | None = None,
        sync_lag: bool | Callable[[], bool] = False,
    ) -> Iterator[Planned]:
        """Fill the run's capacity lane by lane (docs/lanes.md): requested items, at most ``request_share`` of the
        Jobs that fit; fresh candidates, at most ``fresh_share`` of the Jobs that still fit; the backlog; then, if
        room is left (the backlog ran out), the requested and fresh candidates beyond their shares. A share is a
        long-run fraction: ``credits`` holds, per lane, the fraction of a slot it was given and could not use, and
        :attr:`credits` gets what this run leaves for the next. With ``sync_lag`` (the graph sync is the
        bottleneck; a callable is asked once the requested lane took its share) only the requested lane runs, and
        the kinds of the other lanes say ``sync-lag``."""
        carried = credits or {}
        shares = []
        for lane, streams, share in ((Lane.REQUESTED, requested, request_share), (Lane.FRESH, fresh, fresh_share)):
            slots = self._slots(streams)
            taken = _Share(None if slots is None else share * slots + carried.get(lane, 0.0))
            repeats = self._repeats()
            yield from taken.count(self._lane(streams, taken.limit, repeats, taken.cut))
            taken.limited = bool(taken.cut)
            for stream in [stream for stream in taken.cut if not self._has_room(stream)]:
                self._next(stream, repeats)  # the share ended where a cap does: the cap stopped it, and counts
                taken.cut.remove(stream)
            shares.append((lane, taken, repeats))
            if lane is Lane.REQUESTED and (sync_lag() if callable(sync_lag) else sync_lag):
                # The graph sync is the bottleneck: requests only, beyond their share (asked only now, so the
                # first requested Jobs need not wait for it).
                yield from taken.count(self._lane(taken.cut, None, repeats, None))
                for stream in [*fresh, *backlog]:
                    self.report.stop(stream.kind, SYNC_LAG)
                return
        yield from self.lane(backlog)
        # The shares keep the backlog moving; slots the backlog could not use would otherwise stay idle while
        # requested and fresh candidates wait. Only streams with room go on, so a backlog stopped by a cap counts
        # nothing more.
        for lane, taken, repeats in shares:
            rest = [stream for stream in taken.cut if self._has_room(stream)]
            yield from taken.count(self._lane(rest, None, repeats, None))
            self.credits[lane] = taken.left

    def _slots(self, streams: list[CandidateStream]) -> int | None:
        """How many Jobs of ``streams``, taken in turn, still fit: capacity and eager stop (None: no limit)."""
        if not streams:
            return 0
        slots = self.capacity.count_admitted([stream.cost for stream in streams])
        if self.eager_stop:
            kinds = {stream.kind for stream in streams}
            left = sum(max(self.eager_stop - self.planned[kind], 0) for kind in kinds)
            slots = left if slots is None else min(slots, left)
        return slots

    def _has_room(self, stream: CandidateStream) -> bool:
        """Whether no cap would stop ``stream`` now (nothing is counted)."""
        return _cap_reached(stream, self.planned, self.capacity, self.eager_stop) is None

    def _next(self, stream: CandidateStream, repeats: _Repeats | None) -> Planned | None:
        """Examine ``stream``'s candidates until one is schedulable and return it; None when the stream ends,
        stops at a cap or the run is interrupted."""
        report, counts = self.report, self.report.counts(stream.kind, stream.solver)
        arrivals = stream.candidates if isinstance(stream.candidates, Arrivals) else None
        # Run for every candidate: what does not change while the stream is read is looked up once.
        stopping, on_examined, requested = self.stopping, self.on_examined, self.requested
        eager_stop, per_kind, capacity = self.eager_stop, self.planned, self.capacity
        kind, cost = stream.kind, stream.cost
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
                continue  # the requested lane planned or skipped it already
            counts.examined += 1
            on_examined()
            if (eager_stop and per_kind[kind] >= eager_stop) or capacity.blocking_limit(cost) is not None:
                stop = _cap_reached(stream, per_kind, capacity, eager_stop)  # which cap, and its limit
                assert stop is not None, "a cap stops the stream"
                reason, limit = stop
                counts.skipped[reason] += 1
                report.stop(kind, reason, limit)
                return None
            if arrivals is not None:
                arrivals.settle()
            planned = self._decide(stream, candidate, counts)
            if planned is _STOP:
                return None
            if stream.lane is Lane.REQUESTED:  # settled: the lanes after it pass it over, uncounted
                self.requested.add((stream.kind, stream.solver, candidate))
            if isinstance(planned, Planned):
                if arrivals is not None:
                    arrivals.hold(planned.item.job_name)
                return planned
        return None

    def _decide(self, stream: CandidateStream, candidate: Candidate, counts: Counts) -> Planned | object | None:
        """What one examined candidate becomes (``fate.decide``): a Planned item, None (skipped, counted) or
        ``_STOP`` (the stream stops: its first attempts no longer fit)."""
        fate = decide(
            stream.kind,
            stream.solver,
            candidate,
            self.view,
            self.history,
            self.capacity,
            stream.cost,
            self.cost,
            stream.lane,
            untrusted=self.untrusted,
        )
        if isinstance(fate, Skipped):
            logger.debug("Skipping %s candidate %r: %s %s", stream.kind, candidate, fate.reason, fate.detail or "")
            counts.skipped[fate.reason] += 1
            if fate.stops_stream:
                self.report.stop(stream.kind, SkipReason.CAPACITY, fate.detail)
                return _STOP
            return None
        self.capacity.take(fate.cost)
        self.planned[stream.kind] += 1
        return fate


_STOP = object()  # what Planner._decide returns when the stream stops


class _Share:
    """What one lane may take this run: ``allowance`` slots (its share of the free slots plus the fraction carried
    from the previous run; None: no limit), of which the whole ones are its ``limit``."""

    def __init__(self, allowance: float | None) -> None:
        self.allowance = allowance
        self.limit = None if allowance is None else math.floor(allowance + 1e-9)
        self.used = 0
        self.cut: list[CandidateStream] = []
        """The lane's streams its limit stopped with candidates left, and no cap stops yet."""
        self.limited = False
        """Whether the limit stopped the lane while it had candidates left."""

    def count(self, items: Iterator[Planned]) -> Iterator[Planned]:
        for planned in items:
            self.used += 1
            yield planned

    @property
    def left(self) -> float:
        """The fraction of a slot carried to the next run: what the allowance gave and the lane could not take
        because its limit cut it; nothing when it had nothing more to take or took more (the backlog ran out)."""
        if self.allowance is None or not self.limited:
            return 0.0
        return min(max(self.allowance - self.used, 0.0), 0.999999)


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

    def met_before(self, stream: CandidateStream, candidate: Candidate) -> bool:
        """Whether ``candidate`` was met before in ``stream``; remembers it if not."""
        fingerprint = hash((stream.kind, stream.solver, candidate))
        if fingerprint in self._seen:
            return True
        if len(self._seen) < self._limit:
            self._seen.add(fingerprint)
        return False


def _cap_reached(
    stream: CandidateStream, planned: Counter[str], capacity: Capacity, eager_stop: int
) -> tuple[SkipReason, str] | None:
    """The cap that stops ``stream`` now, and the limit behind it; None when none does."""
    if eager_stop and planned[stream.kind] >= eager_stop:
        return SkipReason.EAGER_STOP, "--eager-stop"
    limit = capacity.blocking_limit(stream.cost)
    if limit is not None:
        return SkipReason.CAPACITY, limit
    return None
