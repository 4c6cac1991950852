"""One run of graph-refresh, end to end (design: A run): store → Templates → cluster view → plan → render →
create (or write) → report. The CLI calls :func:`run` once and decides the exit code from the report."""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from graph_refresh import compact, runtime
from graph_refresh.capacity import Capacity, Quota
from graph_refresh.config import DEFAULT_PROGRESS_EVERY_SECONDS, Settings, redact_url
from graph_refresh.errors import ClusterError, Interrupted, StoreError
from graph_refresh.items import (
    ANALYZER,
    KINDS,
    LABEL_ITEM,
    SOLVER,
    Candidate,
    SolverEnvironment,
    WorkItem,
    invalid_reason,
)
from graph_refresh.owned import OwnedJobs, build_view
from graph_refresh.planner import Arrivals, Lane, Planner, Stream, order_streams
from graph_refresh.render import Renderer
from graph_refresh.report import LANES, QuarantinedItem, RequestCounts, RunReport
from graph_refresh.retry import store as ledger_store
from graph_refresh.retry.codec import format_time
from graph_refresh.retry.model import RunRecord, expires_at
from graph_refresh.retry.policy import History, Policy
from graph_refresh.runtime import collector_paused
from graph_refresh.scheduler import dry_run, submit
from graph_refresh.store import open_store
from graph_refresh.store.base import GraphStore
from graph_refresh.templates import JobTemplates, load_job_templates, read_template_dir
from graph_refresh.waiting import store as requests_store
from graph_refresh.waiting.lanes import RequestOutcome, awaiting_sync, sort_requests, stream_name
from graph_refresh.waiting.requests import REQUESTS_NAME

if TYPE_CHECKING:  # the Kubernetes client loads only when a run needs the cluster
    from graph_refresh import kube

logger = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Externals:
    """What a run takes from outside itself, and a test replaces: how the cluster client is built, how a wait
    is slept, the wall clock and the monotonic clock, and how often progress is said."""

    connect: Callable[[], kube.Cluster] | None = None
    """Build the cluster client (only called when the run needs the cluster); None: from the settings."""
    sleep: Callable[[float], None] | None = None
    """Wait before a retry; None: a wait that a signal cuts short."""
    now: Callable[[], float] = time.time
    """Seconds since the epoch."""
    clock: Callable[[], float] = time.monotonic
    """Monotonic seconds: the create rate limit and the progress shown while a run works."""
    progress_every: float = DEFAULT_PROGRESS_EVERY_SECONDS
    """Seconds between progress lines when standard error is not a terminal."""


def read_cluster_view(cluster: kube.Cluster, namespace: str, now: float, *, keep_completed: bool = False) -> OwnedJobs:
    """List the ResourceQuotas, the owned Jobs (paged; those that succeeded as Tables) and, when some failed,
    the owned pods of ``namespace``; ``keep_completed`` keeps the items of the completed Jobs (to pace against
    the graph sync)."""
    quotas = [Quota.from_object(q) for q in cluster.list_quotas(namespace)]
    reduce_job = compact.job_keeping_completed if keep_completed else compact.job
    with collector_paused():  # not only while a page is parsed, while its records are read into the view
        view = build_view(
            cluster.list_owned_jobs(
                namespace, reduce=reduce_job, rows=compact.table_rows, with_metadata=keep_completed
            ),
            lambda selector: cluster.list_owned_pods(namespace, field_selector=selector, reduce=compact.pod),
            quotas,
            now=now,
            keep_completed=keep_completed,
        )
    logger.info(
        "middletier %r: %d items with owned Jobs (%d live, %d failed), %d ResourceQuotas",
        namespace,
        len(view.latest),
        sum(view.live.values()),
        len(view.failures),
        len(view.quotas),
    )
    return view


def load_templates(settings: Settings, cluster: kube.Cluster | None) -> JobTemplates:
    """The Templates of the kinds turned on, from ``--template-dir`` or from the infra namespace."""
    folder = settings.cluster.template_dir
    if folder is not None:
        found, where = read_template_dir(folder), f"folder {str(folder)!r}"
    else:
        namespace = settings.cluster.infra_namespace
        assert cluster is not None and namespace is not None, "checked by the CLI"
        found, where = cluster.list_templates(namespace), f"namespace {namespace!r}"
    return load_job_templates(
        found, where=where, solvers=not settings.plan.no_solvers, analyzer=not settings.plan.no_package_analyzers
    )


def _primed(candidates: Iterator[T]) -> Iterator[T]:
    """Read a stream's first page now: a store that cannot be read fails the run before anything is created."""
    first = next(candidates, None)
    return candidates if first is None else itertools.chain([first], candidates)


@dataclass
class Lanes:
    """The run's candidate streams, lane by lane, and where each fresh stream started."""

    requested: list[Stream]
    fresh: list[Stream]
    backlog: list[Stream]
    arrivals: dict[str, Arrivals]
    """Stream name → the fresh lane's candidates: how far the lane got is the stream's next cursor."""


def _lanes(
    store: GraphStore,
    templates: JobTemplates,
    renderer: Renderer,
    settings: Settings,
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
        cursor = _cursor(name, cursors, end, settings)
        wanted = [request.candidate for request, lacking in requests.open if name in lacking]
        lanes.requested.append(Stream(kind, solver, iter(wanted), cost, Lane.REQUESTED))
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
        lanes.fresh.append(Stream(kind, solver, arrivals, cost, Lane.FRESH))
        lanes.backlog.append(Stream(kind, solver, _primed(backlog), cost, Lane.BACKLOG))
    return lanes


def _cursor(name: str, cursors: Mapping[str, int], end: int, settings: Settings) -> int:
    """Where stream ``name``'s fresh lane starts: its kept cursor, or the store's ``end`` when it has none (or
    ``--fresh-share 0`` turns the fresh lane off); never past the end (a store imported anew may be shorter)."""
    return end if settings.lanes.fresh_share == 0 else min(cursors.get(name, end), end)


def _read_requests(cluster: kube.Cluster | None, namespace: str | None, now: float) -> requests_store.Requests | None:
    """The requests ConfigMap as of ``now``; None without middletier, or (with a warning) when it cannot be
    read."""
    if cluster is None or not namespace:
        return None
    try:
        return requests_store.read(cluster, namespace, now=now)
    except ClusterError as error:
        logger.warning("The requests %s could not be read, the run goes on without them: %s", REQUESTS_NAME, error)
        return None


def _sorted_requests(
    read: requests_store.Requests | None, store: GraphStore, templates: JobTemplates, settings: Settings, now: float
) -> RequestOutcome:
    """Which streams lack each open request; the expired ones are warned about."""
    if read is None:
        return RequestOutcome()
    environments = list(templates.solver_environments())
    outcome = sort_requests(
        read.requests,
        lambda request: store.status(request.candidate, environments),
        [(kind, _name(environment)) for kind, environment in templates.streams()],
        now=now,
        ttl_seconds=settings.lanes.request_ttl_seconds,
    )
    runtime.warn_each(
        [
            f"request {r.key!r} for {r.package}=={r.version} expired after --request-ttl: dropped, not done"
            for r in outcome.expired
        ],
        f"Requests {REQUESTS_NAME}",
    )
    return outcome


def _sync_lag(view: OwnedJobs, store: GraphStore, settings: Settings, templates: JobTemplates) -> bool:
    """Whether --max-awaiting-sync owned Jobs or more have completed while the store still lists their items."""
    enough = settings.lanes.max_awaiting_sync
    if not enough or len(view.completed) < enough:
        return False
    environments = list(templates.solver_environments())
    names = {stream_name(kind, _name(environment)) for kind, environment in templates.streams()}
    completed = (
        (item.kind, item.solver, store.status(Candidate(item.package, item.version, item.index), environments))
        for item in view.completed
        if stream_name(item.kind, item.solver) in names
    )
    found = awaiting_sync(completed, enough)
    if found >= enough:
        logger.warning(
            "%d owned Jobs or more have completed while the graph still lists their items (--max-awaiting-sync "
            "%d): the graph sync is behind, so this run schedules requests only",
            found,
            enough,
        )
    return found >= enough


def _settle_requests(
    cluster: kube.Cluster, namespace: str, outcome: RequestOutcome, read: requests_store.Requests
) -> None:
    """Remove the requests a real run found done or expired, and the values that cannot be read."""
    readable = {request.key for request in read.requests}
    gone = {r.key for r in [*outcome.done, *outcome.expired]} | {key for key in read.data if key not in readable}
    if not gone:
        return

    def remove(current: requests_store.Requests) -> dict[str, str] | None:
        kept = {key: value for key, value in current.data.items() if key not in gone}
        return None if len(kept) == len(current.data) else kept

    try:
        requests_store.change(cluster, namespace, remove)
    except ClusterError as error:
        logger.warning("The requests %s could not be updated: %s", REQUESTS_NAME, error)


def _request_counts(outcome: RequestOutcome, now: float) -> RequestCounts:
    oldest = min((request.requested_at for request, _ in outcome.open), default=None)
    return RequestCounts(
        open=len(outcome.open),
        oldest_age_seconds=None if oldest is None else max(0.0, now - oldest),
        done=len(outcome.done),
        expired=len(outcome.expired),
    )


def _count_backlog(store: GraphStore, templates: JobTemplates, streams: list[Stream], report: RunReport) -> None:
    """Each stream's backlog, counted by the store (design: Backlog); a count that fails is None and a warning."""
    for stream in streams:
        what = stream.solver or stream.kind
        try:
            if stream.solver is None:
                backlog: int | None = store.analyzer_backlog()
            else:
                backlog = store.solver_backlog(templates.solvers[stream.solver][0])
        except StoreError as error:
            logger.warning("The backlog of %s could not be counted: %s", what, error)
            backlog = None
        report.counts(stream.kind, stream.solver).backlog = backlog


def _say_learned(history: History) -> None:
    """Log what this run's learning decided that an operator must hear of: items put into quarantine, and failed
    Jobs whose failure time was later than the run's clock."""
    quarantine = history.policy.quarantine_seconds
    for entry in history.quarantined_now:
        item = entry.item
        logger.warning(
            "Quarantined %s%s %s %s after %d failures (last: %s) until %s",
            item.kind,
            f" {item.solver}" if item.solver else "",
            item.package,
            item.version,
            entry.failures,
            entry.cause,
            format_time(expires_at(entry, quarantine)),
        )
    runtime.warn_each(
        [f"Job {name} failed later than this run's clock: taken as failing now" for name in history.future],
        "Clock skew",
    )


def _report_quarantine(history: History, report: RunReport, streams: list[Stream]) -> None:
    """The items in quarantine now, of the streams of this run, per stream and listed (index URLs redacted)."""
    running = {(stream.kind, stream.solver) for stream in streams}
    for entry in history.quarantined():
        item = entry.item
        if (item.kind, item.solver) not in running:
            continue
        report.counts(item.kind, item.solver).quarantined += 1
        until = expires_at(entry, history.policy.quarantine_seconds)
        report.quarantined.append(
            QuarantinedItem(
                item.key,
                item.kind,
                item.solver,
                item.package,
                item.version,
                redact_url(item.index),
                entry.failures,
                str(entry.cause),
                format_time(until),
            )
        )


def _run_record(report: RunReport, at: float) -> RunRecord:
    """What this run scheduled per stream and lane, for the ledger's recent runs (explain's throughput)."""
    streams = [(SOLVER, name, counts) for name, counts in report.solvers.items()] + [(ANALYZER, None, report.analyzer)]
    return RunRecord(
        at,
        {stream_name(kind, solver): {lane: counts.lanes[lane] for lane in LANES} for kind, solver, counts in streams},
    )


def needs_cluster(settings: Settings) -> bool:
    """A dry run from a template folder stays off the cluster unless middletier is named (design: A run)."""
    c = settings.cluster
    return c.template_dir is None or not settings.plan.dry_run or c.middletier_namespace is not None


def run(
    *,
    settings: Settings,
    report: RunReport,
    seams: Externals = Externals(),
    on_examined: Callable[[], None] = lambda: None,
    on_planned: Callable[[], None] = lambda: None,
    on_answered: Callable[[str], None] = lambda result: None,
    interrupt: threading.Event | None = None,
) -> None:
    """Do one run, filling ``report`` as it goes; raise a GraphRefreshError on a systemic failure.

    Nothing is created before the Templates, the cluster view and the first page of every candidate
    stream have been read; a store failure on a later page stops the run with what was created counted.
    ``seams`` are what tests replace (the cluster client, sleeping, the clock). Once ``interrupt`` is set,
    no more candidates are examined and no more creates are sent; the run then ends with what it did counted.
    ``on_examined``, ``on_planned`` and ``on_answered`` follow its progress (see :func:`submit`).
    """
    interrupt = interrupt or threading.Event()
    sleep, now = seams.sleep, seams.now

    def pause(seconds: float) -> None:
        """A read's wait before its retry: cut short by an interrupt, which then ends the run."""
        (sleep or interrupt.wait)(seconds)
        if interrupt.is_set():
            raise Interrupted("the run was interrupted while it waited to retry a read")

    def default_connect() -> kube.Cluster:
        from graph_refresh import kube

        return kube.Cluster(settings.cluster, sleep=pause)

    cluster = (seams.connect or default_connect)() if needs_cluster(settings) else None
    store = open_store(settings.store, sleep=pause)
    try:
        templates = load_templates(settings, cluster)
        namespace = settings.cluster.middletier_namespace
        view, ledger = OwnedJobs(), ledger_store.Ledger()
        started = math.floor(now())  # the run's one clock reading for learning, back-off and quarantine
        if cluster is not None and namespace:
            pacing = settings.lanes.max_awaiting_sync > 0
            view = read_cluster_view(cluster, namespace, started, keep_completed=pacing)
            ledger = ledger_store.read(cluster, namespace, now=started)
        if not namespace:
            logger.warning(
                "Dry run without THOTH_MIDDLETIER_NAMESPACE: Jobs in flight, failures, the ledger and ResourceQuotas "
                "are not read; the plan applies --max-in-flight and --eager-stop only, so it may hold more than a "
                "real run would create"
            )
        policy = Policy.of(settings.retry)
        history = History.of(ledger.entries, view, policy, started)
        for kind in KINDS:
            report.in_flight[kind] = view.live[kind]
        renderer = Renderer(templates, settings.plan, namespace)
        capacity = Capacity.from_cluster(
            max_in_flight=settings.plan.max_in_flight, live_jobs=sum(view.live.values()), quotas=view.quotas
        )
        read_requests = _read_requests(cluster, namespace, started)
        requests = _sorted_requests(read_requests, store, templates, settings, started)
        if read_requests is not None:
            report.requests = _request_counts(requests, started)
        lanes = _lanes(store, templates, renderer, settings, cursors=ledger.cursors, requests=requests)
        streams = lanes.backlog
        planner = Planner(
            report=report,
            view=view,
            history=history,
            cost=renderer.cost,
            capacity=capacity,
            eager_stop=settings.plan.eager_stop,
            drop_repeats=store.may_repeat_items,
            on_examined=on_examined,
            stopping=interrupt.is_set,
        )
        items = planner.fill(
            requested=order_streams(lanes.requested, view.per_stream, started),
            fresh=order_streams(lanes.fresh, view.per_stream, started),
            backlog=order_streams(lanes.backlog, view.per_stream, started),
            fresh_share=settings.lanes.fresh_share,
            sync_lag=_sync_lag(view, store, settings, templates),
        )
        try:
            if settings.plan.dry_run:
                dry_run(
                    items,
                    renderer=renderer,
                    report=report,
                    output_dir=settings.plan.output_dir,
                    on_planned=on_planned,
                )
            else:
                assert cluster is not None and namespace is not None, "checked by the CLI"
                try:
                    submit(
                        items,
                        renderer=renderer,
                        report=report,
                        cluster=cluster,
                        namespace=namespace,
                        on_quota_refused=capacity.exhaust,  # the planner admits nothing more this run
                        settings=settings.cluster,
                        sleep=sleep,
                        clock=seams.clock,
                        interrupt=interrupt,
                        server_dry_run=settings.plan.server_dry_run,
                        on_planned=on_planned,
                        on_answered=on_answered,
                    )
                finally:  # what was learned is kept however the run ends; a server dry run stores nothing
                    if not settings.plan.server_dry_run:
                        written = ledger_store.write(
                            cluster,
                            namespace,
                            ledger,
                            history.entries,
                            now=started,
                            expire_after=policy.quarantine_seconds,
                            cursors={name: arrivals.passed for name, arrivals in lanes.arrivals.items()},
                            run=_run_record(report, started),
                        )
                        report.ledger_written, report.ledger_reason = written.written, written.reason
                        if read_requests is not None:
                            _settle_requests(cluster, namespace, requests, read_requests)
        finally:  # the report holds both however far the run got; the first Job never waits for the counts
            _say_learned(history)
            _report_quarantine(history, report, streams)
            if not interrupt.is_set():
                _count_backlog(store, templates, streams, report)
    finally:
        store.close()


def explain_item(settings: Settings, seams: Externals, candidate: Candidate) -> list[dict[str, Any]]:
    """Where ``candidate`` stands in every stream of the run ``settings`` describe (``app.py explain``). Reads
    the store, the Templates and, when middletier is named, the item's Jobs, the ledger and the requests;
    writes nothing. Raises GraphRefreshError when one cannot be read."""
    from graph_refresh.waiting.explain import JobSeen, StreamFacts, explain

    namespace = settings.cluster.middletier_namespace
    reads_cluster = settings.cluster.template_dir is None or namespace is not None
    if namespace is None:
        logger.warning(
            "THOTH_MIDDLETIER_NAMESPACE is not set: the item's Jobs, the ledger and the requests are not read, so "
            "this says only what the graph holds (in flight, failed or requested shows as waiting)"
        )
    cluster = (seams.connect or (lambda: _connect(settings)))() if reads_cluster else None
    now = math.floor(seams.now())
    store = open_store(settings.store)
    try:
        templates = load_templates(settings, cluster)
        streams = templates.streams()
        items = {stream_name(k, _name(e)): WorkItem(k, _name(e), candidate) for k, e in streams}
        jobs: dict[str, JobSeen] = {}
        ledger, request = ledger_store.Ledger(), None
        if cluster is not None and namespace:
            jobs = _latest_jobs(cluster.list_item_jobs(namespace, [item.key for item in items.values()]))
            ledger = ledger_store.read(cluster, namespace, now=now)
            read = _read_requests(cluster, namespace, now)
            request = next((r for r in read.requests if r.candidate == candidate), None) if read else None
        status = store.status(candidate, list(templates.solver_environments()))
        end = store.arrival_end()
        facts = []
        for kind, environment in streams:
            name = stream_name(kind, _name(environment))
            item = items[name]
            done = status.analyzed if environment is None else name in status.solved_by
            cursor = _cursor(name, ledger.cursors, end, settings)
            lane, ahead = None, None
            if status.arrival is not None and not done:
                lane = "fresh" if status.arrival > cursor else "backlog"
                ahead = _ahead(store, environment, lane, cursor, status.arrival, candidate)
            facts.append(
                StreamFacts(kind, item.solver, done, jobs.get(item.key), ledger.entries.get(item.key), lane, ahead)
            )
        policy = Policy.of(settings.retry)
        return explain(
            facts, invalid=invalid_reason(candidate), request=request, runs=ledger.runs, now=now, policy=policy
        )
    finally:
        store.close()


def _name(environment: SolverEnvironment | None) -> str | None:
    return None if environment is None else environment.name


def _connect(settings: Settings) -> kube.Cluster:
    from graph_refresh import kube

    return kube.Cluster(settings.cluster)


def _latest_jobs(jobs: list[dict[str, Any]]) -> dict[str, Any]:
    """Item key → the latest (highest attempt) of its Jobs, as explain shows it."""
    from graph_refresh.owned import job_state
    from graph_refresh.retry.failures import attempt_of
    from graph_refresh.waiting.explain import JobSeen

    latest: dict[str, tuple[int, JobSeen]] = {}
    for job in jobs:
        metadata = job.get("metadata") or {}
        key = (metadata.get("labels") or {}).get(LABEL_ITEM)
        attempt = attempt_of(job)
        if isinstance(key, str) and (key not in latest or latest[key][0] < attempt):
            created = metadata.get("creationTimestamp")
            seen = JobSeen(str(metadata.get("name")), job_state(job), created if isinstance(created, str) else None)
            latest[key] = (attempt, seen)
    return {key: seen for key, (_, seen) in latest.items()}


def _ahead(
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
