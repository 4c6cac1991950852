"""The lanes of a run (docs/lanes.md): what they read of the store and the cluster (the requests, the fresh
cursors, pacing), the candidate streams of each lane, and what a real run writes back of them. ``refresh.run`` and
``refresh.explain_item`` call these; the decisions themselves are pure (``waiting/lanes.py``, ``planner.py``)."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from graph_refresh import runtime
from graph_refresh.config import LaneSettings, RetrySettings
from graph_refresh.errors import ClusterError, StoreError
from graph_refresh.items import ANALYZER, SOLVER, Candidate, SolverEnvironment, WorkItem
from graph_refresh.owned import OwnedJobs
from graph_refresh.planner import Arrivals, CandidateStream
from graph_refresh.render import Renderer
from graph_refresh.report import RequestCounts, RunReport
from graph_refresh.retry import ledger_store
from graph_refresh.retry.codec import LEDGER_NAME
from graph_refresh.retry.model import LedgerEntry, expires_at
from graph_refresh.retry.policy import quarantines
from graph_refresh.store.base import PAGE_SIZE, GraphStore
from graph_refresh.templates import JobTemplates
from graph_refresh.vocabulary import LANES, JobState, Lane
from graph_refresh.waiting import requests_store
from graph_refresh.waiting import state as lane_state
from graph_refresh.waiting.lanes import RequestOutcome, awaiting_sync, sort_requests, stream_name
from graph_refresh.waiting.requests import REQUESTS_NAME
from graph_refresh.waiting.state import Completions, LaneState, RunRecord
from graph_refresh.waiting.trust import TrustedIndexes

if TYPE_CHECKING:
    from graph_refresh import kube
    from graph_refresh.configmaps import ConfigMaps

logger = logging.getLogger(__name__)
T = TypeVar("T")


def _primed(candidates: Iterator[T]) -> Iterator[T]:
    """Read a stream's first page now: a store that cannot be read fails the run before anything is created."""
    first = next(candidates, None)
    return candidates if first is None else itertools.chain([first], candidates)


@dataclass
class Lanes:
    """The run's candidate streams, lane by lane, and where each fresh stream started."""

    requested: list[CandidateStream]
    fresh: list[CandidateStream]
    backlog: list[CandidateStream]
    arrivals: dict[str, Arrivals]
    """Stream name → the fresh lane's candidates: how far the lane got is the stream's next cursor."""


def candidate_lanes(
    store: GraphStore,
    templates: JobTemplates,
    renderer: Renderer,
    settings: LaneSettings,
    *,
    cursors: Mapping[str, int],
    requests: RequestOutcome,
) -> Lanes:
    """Per lane, one stream per solver (in Template order) and one for the analyzer; the first page of each
    fresh and backlog stream is read now. A stream without a cursor (the first run after the upgrade, a new
    solver) starts at the store's end: what it holds already is backlog, not fresh. With ``--fresh-share 0`` the
    fresh lane is off: every stream's cursor is the store's end, so what arrived since the previous run waits in
    the store's order with the rest instead of in a lane that never takes anything."""
    kinds = templates.streams()
    end = store.arrival_end() if kinds else 0  # nothing arrived past it: a fresh lane there is not queried
    lanes = Lanes([], [], [], {})
    for kind, environment in kinds:
        solver = None if environment is None else environment.name
        name, cost = stream_name(kind, solver), renderer.probe_cost(kind, solver)
        cursor = fresh_cursor(name, cursors, end, settings)
        wanted = [candidate for candidate, _ in requests.requested(name)]
        if wanted:
            lanes.requested.append(CandidateStream(kind, solver, iter(wanted), cost, Lane.REQUESTED))
        fresh: Iterator[tuple[int, Candidate]] = iter(())
        if environment is None:
            if cursor < end:
                fresh = store.fresh_analyzer_candidates(after=cursor)
            backlog = store.analyzer_candidates(up_to=cursor)
        else:
            if cursor < end:
                fresh = store.fresh_solver_candidates(environment, after=cursor)
            backlog = store.solver_candidates(environment, up_to=cursor)
        lanes.arrivals[name] = arrivals = Arrivals(_primed(fresh), cursor)
        if cursor < end:  # nothing arrived past the cursor: no fresh stream, so its share is not even asked
            lanes.fresh.append(CandidateStream(kind, solver, arrivals, cost, Lane.FRESH))
        lanes.backlog.append(CandidateStream(kind, solver, _primed(backlog), cost, Lane.BACKLOG))
    return lanes


def fresh_cursor(name: str, cursors: Mapping[str, int], end: int, settings: LaneSettings) -> int:
    """Where stream ``name``'s fresh lane starts: its kept cursor, or the store's ``end`` when it has none (or
    ``--fresh-share 0`` turns the fresh lane off); never past the end (a store imported anew may be shorter)."""
    return end if settings.fresh_share == 0 else min(cursors.get(name, end), end)


def read_requests(cluster: kube.Cluster | None, namespace: str | None) -> requests_store.Requests | None:
    """The requests ConfigMap; None without middletier, or (with a warning) when it cannot be read."""
    if cluster is None or not namespace:
        return None
    try:
        return requests_store.read(cluster, namespace)
    except ClusterError as error:
        logger.warning("The requests %s could not be read, the run goes on without them: %s", REQUESTS_NAME, error)
        return None


def sorted_requests(
    read: requests_store.Requests | None,
    store: GraphStore,
    templates: JobTemplates,
    settings: LaneSettings,
    now: float,
    completions: Completions,
    quarantined: Collection[str] = frozenset(),
    *,
    say: bool = True,
) -> RequestOutcome:
    """What the run does with each request (waiting/lanes.py), the store asked in batches, each request grown
    into its closure (``--request-depth`` levels; ``quarantined``: the item keys in quarantine, which a request
    does not wait for). A store read that fails is a warning: the requested lane waits this run, and every
    request keeps its place. ``say``: warn of what a run drops (not when the requests are only listed)."""
    if read is None:
        return RequestOutcome(skipped="the requests were not read")
    if not read.requests and not read.unreadable:
        return RequestOutcome()  # most runs: nothing to ask the store
    environments = list(templates.solver_environments())
    try:
        outcome = sort_requests(
            read.requests,
            read.unreadable,
            trusted=TrustedIndexes.of(store.index_urls(), settings.allowed_indexes),
            lookup=lambda candidates: store.statuses(candidates, environments),
            known_versions=store.known_versions,
            streams=[(kind, solver_of(environment)) for kind, environment in templates.streams()],
            now=now,
            ttl_seconds=settings.request_ttl_seconds,
            completions=completions,
            dependencies=store.dependencies,
            depth=settings.request_depth,
            quarantined=quarantined,
        )
    except StoreError as error:
        if say:
            logger.warning("The requests could not be looked up in the graph: the requested lane waits (%s)", error)
        return RequestOutcome(skipped=str(error))
    said = [ended.warning for ended in outcome.ended if ended.warning] + outcome.said
    if say:
        runtime.warn_each(said, f"Requests {REQUESTS_NAME}")
    return outcome


def completions_seen(
    outcome: RequestOutcome, view: OwnedJobs, templates: JobTemplates, seen: Completions
) -> Completions:
    """The completions kept for the open requests' items after this run looked at their Jobs (waiting/state.py);
    those read, when the requests were not sorted this run."""
    if outcome.skipped is not None:
        return seen
    states = {}
    for request in outcome.open:
        for kind, environment in templates.streams():
            if stream_name(kind, solver_of(environment)) in request.lacking:
                item = WorkItem(kind, solver_of(environment), request.candidate)
                states[item.key] = view.state(item) is JobState.COMPLETE
    return seen.seen(states)


def sync_lag(
    view: OwnedJobs, store: GraphStore, settings: LaneSettings, templates: JobTemplates, *, strict: bool = False
) -> bool:
    """Whether --max-awaiting-sync owned Jobs or more have completed while the store still lists their items,
    counted a page of items at a time. A store read that fails is a warning, and the run goes on unpaced
    (``strict``: the StoreError is raised)."""
    enough = settings.max_awaiting_sync
    if not enough or len(view.completed) < enough:
        return False
    environments = list(templates.solver_environments())
    names = {stream_name(kind, solver_of(environment)) for kind, environment in templates.streams()}
    completed = [
        (item.kind, item.solver, Candidate(item.package, item.version, item.index))
        for item in view.completed
        if stream_name(item.kind, item.solver) in names
    ]
    try:
        found = awaiting_sync(completed, lambda page: store.statuses(page, environments), enough, page=PAGE_SIZE)
    except StoreError as error:
        if strict:
            raise
        logger.warning("Pacing could not ask the graph about the completed Jobs, the run goes on unpaced: %s", error)
        return False
    if found >= enough:
        logger.warning(
            "%d owned Jobs or more have completed while the graph still lists their items (--max-awaiting-sync "
            "%d): the graph sync is behind, so this run schedules requests only",
            found,
            enough,
        )
    return found >= enough


def settle_requests(cluster: kube.Cluster, namespace: str, outcome: RequestOutcome) -> None:
    """Remove the keys a real run found ended (done, expired, dropped) and stamp the ones without a time, each
    only if it still holds the value the run read (compare-and-delete)."""
    ended = [(ended.key, ended.value) for ended in outcome.ended]
    if not ended and not outcome.stamps:
        return
    try:
        kept = requests_store.compare_and_set(cluster, namespace, remove=ended, rewrite=outcome.stamps)
    except ClusterError as error:
        logger.warning("The requests %s could not be updated: %s", REQUESTS_NAME, error)
        return
    if kept:
        logger.info("%d request keys changed while this run worked were left as they are now", kept)


def request_counts(outcome: RequestOutcome, now: float) -> RequestCounts:
    oldest = min((request.requested_at for request in outcome.open), default=None)
    return RequestCounts(
        open=len(outcome.open),
        oldest_age_seconds=None if oldest is None else max(0.0, now - oldest),
        done=len(outcome.done),
        expired=len(outcome.expired),
        dropped=len(outcome.dropped),
        closure_members=len({m.candidate for r in outcome.open for m in r.closure}),
        done_seconds=list(outcome.done_seconds),
    )


def quarantined_keys(entries: Mapping[str, LedgerEntry], policy: RetrySettings, now: float) -> frozenset[str]:
    """The item keys the ledger as read holds in quarantine at ``now``: what a request does not wait for (read
    before the run learns anything, so ``explain`` and the run agree)."""
    return frozenset(
        key
        for key, entry in entries.items()
        if quarantines(policy, entry) and now < expires_at(entry, policy.quarantine_seconds)
    )


def run_record(report: RunReport, seq: int, at: float, retry: RetrySettings) -> RunRecord:
    """What this run scheduled per stream and lane, for the ledger's recent runs (explain's throughput), and the
    retry settings it ran with (``ledger show`` tells states under them)."""
    streams = [(SOLVER, name, counts) for name, counts in report.solvers.items()] + [(ANALYZER, None, report.analyzer)]
    return RunRecord(
        seq,
        at,
        {stream_name(kind, solver): {lane: counts.lanes[lane] for lane in LANES} for kind, solver, counts in streams},
        {
            "max_memory": str(retry.max_memory),
            "max_deadline_seconds": retry.max_deadline_seconds,
            "retry_backoff_seconds": retry.retry_backoff_seconds,
            "max_attempts": retry.max_attempts,
            "quarantine_seconds": retry.quarantine_seconds,
        },
    )


def read_ledger(
    cluster: ConfigMaps, namespace: str, *, now: float, strict: bool = False
) -> tuple[ledger_store.Ledger, LaneState]:
    """The ledger ConfigMap: the ledger's entries and what the lanes keep beside them (warnings said)."""
    ledger = ledger_store.read(cluster, namespace, now=now, strict=strict, other_keys=lane_state.KEYS)
    lanes, problems = LaneState.read(ledger.other, now=now)
    runtime.warn_each(problems, f"Ledger {LEDGER_NAME}")
    return ledger, lanes


def solver_of(environment: SolverEnvironment | None) -> str | None:
    return None if environment is None else environment.name


def ahead_in_lane(
    store: GraphStore,
    environment: SolverEnvironment | None,
    lane: str,
    cursor: int,
    arrival: int,
    candidate: Candidate,
) -> int | None:
    """How many candidates of the stream's lane come before the item; None (with a warning) when the count
    fails."""
    try:
        if lane == "fresh":
            if environment is None:
                return store.analyzer_fresh_ahead(after=cursor, before=arrival)
            return store.solver_fresh_ahead(environment, after=cursor, before=arrival)
        if environment is None:
            return store.analyzer_backlog(up_to=cursor, before=(arrival, candidate))
        return store.solver_backlog(environment, up_to=cursor, before=(arrival, candidate))
    except StoreError as error:
        logger.warning("Could not count what comes before it in the %s lane: %s", lane, error)
        return None
