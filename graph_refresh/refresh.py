"""One run of graph-refresh, end to end (design: A run): store → Templates → cluster view → plan → render →
create (or write) → report. The CLI calls :func:`run` once and decides the exit code from the report."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from graph_refresh import compact, runtime
from graph_refresh.capacity import Capacity, Quota
from graph_refresh.config import DEFAULT_PROGRESS_EVERY_SECONDS, Settings, redact_url
from graph_refresh.errors import ClusterError, Interrupted, StoreError
from graph_refresh.fate import Planned, Skipped, decide
from graph_refresh.items import KINDS, LABEL_ITEM, SOLVER, Candidate, Kind, WorkItem
from graph_refresh.owned import OwnedJobs, build_view
from graph_refresh.planner import CandidateStream, Planner, order_streams
from graph_refresh.render import Renderer
from graph_refresh.report import QuarantinedItem, RunReport
from graph_refresh.retry import ledger_store
from graph_refresh.retry.model import expires_at
from graph_refresh.retry.policy import History
from graph_refresh.runtime import collector_paused
from graph_refresh.scheduler import Result, dry_run, submit
from graph_refresh.store import open_store
from graph_refresh.store.base import GraphStore
from graph_refresh.templates import JobTemplates, load_job_templates, read_template_dir
from graph_refresh.text import plural
from graph_refresh.times import format_time
from graph_refresh.vocabulary import JobState, Lane
from graph_refresh.waiting import predictions, requests_store
from graph_refresh.waiting import run as lane_run
from graph_refresh.waiting import state as lane_state
from graph_refresh.waiting.calibration import Calibration, accuracy_rows, eta_counts
from graph_refresh.waiting.eta import Pace
from graph_refresh.waiting.lanes import RequestOutcome, closure_counts, stream_name
from graph_refresh.waiting.state import LaneState
from graph_refresh.waiting.trust import TrustedIndexes

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


def read_cluster_view(
    cluster: kube.Cluster,
    namespace: str,
    now: float,
    *,
    keep_completed: bool = False,
    timed: frozenset[str] = frozenset(),
) -> OwnedJobs:
    """List the ResourceQuotas, the owned Jobs (paged; those that succeeded as Tables) and, when some failed,
    the owned pods of ``namespace``; ``keep_completed`` keeps the items of the completed Jobs (to pace against
    the graph sync), ``timed`` the durations of those items' completed Jobs."""
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
            timed=timed,
        )
    logger.info(
        "middletier %r: %s with owned Jobs (%d live, %d failed), %s",
        namespace,
        plural(len(view.latest), "item"),
        sum(view.live.values()),
        len(view.failures),
        plural(len(view.quotas), "ResourceQuota"),
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


def _count_backlog(
    store: GraphStore, templates: JobTemplates, streams: list[CandidateStream], report: RunReport
) -> None:
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
            "Quarantined %s %s %s after %s (last: %s) until %s",
            item.solver or item.kind,
            item.package,
            item.version,
            plural(entry.failures, "failure"),
            entry.cause,
            format_time(expires_at(entry, quarantine)),
        )
    runtime.warn_each(
        [f"Job {name} failed later than this run's clock: taken as failing now" for name in history.future],
        "Clock skew",
    )


def _report_quarantine(history: History, report: RunReport, streams: list[CandidateStream]) -> None:
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


def needs_cluster(settings: Settings) -> bool:
    """A dry run from a template folder stays off the cluster unless middletier is named (design: A run)."""
    c = settings.cluster
    return c.template_dir is None or not settings.plan.dry_run or c.middletier_namespace is not None


def run(
    *,
    settings: Settings,
    report: RunReport,
    externals: Externals = Externals(),
    on_examined: Callable[[], None] = lambda: None,
    on_planned: Callable[[], None] = lambda: None,
    on_answered: Callable[[str], None] = lambda result: None,
    interrupt: threading.Event | None = None,
) -> None:
    """Do one run, filling ``report`` as it goes; raise a GraphRefreshError on a systemic failure.

    Nothing is created before the Templates, the cluster view and the first page of every candidate
    stream have been read; a store failure on a later page stops the run with what was created counted.
    ``externals`` are what tests replace (the cluster client, sleeping, the clock). Once ``interrupt`` is set,
    no more candidates are examined and no more creates are sent; the run then ends with what it did counted.
    ``on_examined``, ``on_planned`` and ``on_answered`` follow its progress (see :func:`submit`).
    """
    interrupt = interrupt or threading.Event()
    sleep, now = externals.sleep, externals.now

    def pause(seconds: float) -> None:
        """A read's wait before its retry: cut short by an interrupt, which then ends the run."""
        (sleep or interrupt.wait)(seconds)
        if interrupt.is_set():
            raise Interrupted("the run was interrupted while it waited to retry a read")

    cluster = connect(settings, externals, sleep=pause) if needs_cluster(settings) else None
    store = open_store(settings.store, sleep=pause)
    try:
        templates = load_templates(settings, cluster)
        namespace = settings.cluster.middletier_namespace
        view, ledger, kept = OwnedJobs(), ledger_store.Ledger(), LaneState()
        trusted, untrusted = _trusted(store, settings)
        started = math.floor(now())  # the run's one clock reading for learning, back-off and quarantine
        if cluster is not None and namespace:
            pacing = settings.lanes.max_awaiting_sync > 0
            ledger, kept = lane_run.read_ledger(cluster, namespace, now=started)
            timed = frozenset(predictions.item_keys(kept.calibration, templates, trusted).values())
            view = read_cluster_view(cluster, namespace, started, keep_completed=pacing, timed=timed)
        if not namespace:
            logger.warning(
                "Dry run without THOTH_MIDDLETIER_NAMESPACE: Jobs in flight, failures, the ledger and ResourceQuotas "
                "are not read; the plan applies --max-in-flight and --eager-stop only, so it may hold more than a "
                "real run would create"
            )
        policy = settings.retry
        history = History.of(ledger.entries, view, policy, started)
        for kind in KINDS:
            report.in_flight[kind] = view.live[kind]
        renderer = Renderer(templates, settings.plan, namespace)
        capacity = Capacity.from_cluster(
            max_in_flight=settings.plan.max_in_flight, live_jobs=sum(view.live.values()), quotas=view.quotas
        )
        read_requests = lane_run.read_requests(cluster, namespace)
        quarantined = lane_run.quarantined_keys(ledger.entries, policy, started)
        requests = lane_run.sorted_requests(
            read_requests, store, templates, settings.lanes, started, kept.completions, quarantined
        )
        if read_requests is not None and requests.skipped is None:
            report.requests = lane_run.request_counts(requests, started)
        lanes = lane_run.candidate_lanes(
            store, templates, renderer, settings.lanes, cursors=kept.cursors, requests=requests
        )
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
            untrusted=untrusted,
        )
        items = planner.fill(
            requested=order_streams(lanes.requested, view.per_stream, started),
            fresh=order_streams(lanes.fresh, view.per_stream, started),
            backlog=order_streams(lanes.backlog, view.per_stream, started),
            request_share=settings.lanes.request_share,
            fresh_share=settings.lanes.fresh_share,
            credits=kept.credits,
            sync_lag=lambda: lane_run.sync_lag(view, store, settings.lanes, templates),
        )

        created: set[str] = set()  # the items whose Job this run created (or found already there)

        def on_outcome(planned: Planned, result: Result) -> None:
            """A fresh item's Job exists: its lane may move its cursor past it."""
            if result in (Result.CREATED, Result.ALREADY):
                created.add(planned.item.key)
            arrivals = lanes.arrivals.get(stream_name(planned.item.kind, planned.item.solver))
            if planned.lane is Lane.FRESH and arrivals is not None and result in (Result.CREATED, Result.ALREADY):
                arrivals.exists(planned.item.job_name)

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
                        clock=externals.clock,
                        interrupt=interrupt,
                        server_dry_run=settings.plan.server_dry_run,
                        on_planned=on_planned,
                        on_answered=on_answered,
                        on_outcome=on_outcome,
                    )
                finally:  # what was learned is kept however the run ends; a server dry run stores nothing
                    if not settings.plan.server_dry_run:
                        cursors = {name: arrivals.cursor() for name, arrivals in lanes.arrivals.items()}
                        record = lane_run.run_record(report, kept.next_seq, started, settings.retry)
                        calibration, backlog_fronts = kept.calibration, kept.fronts
                        if not interrupt.is_set():
                            held = _holds_no_slot(view, history, renderer, created, untrusted)
                            record, calibration, backlog_fronts = _foresee(
                                settings,
                                store,
                                templates,
                                report,
                                kept,
                                record,
                                requests,
                                view,
                                created,
                                cursors,
                                held,
                                trusted,
                            )
                        ours = LaneState(
                            cursors=cursors,
                            runs=(*kept.runs, record),
                            credits={**kept.credits, **planner.credits},
                            completions=lane_run.completions_seen(requests, view, templates, kept.completions),
                            calibration=calibration,
                            fronts=backlog_fronts,
                        )
                        names = frozenset(lanes.arrivals)
                        written = ledger_store.write(
                            cluster,
                            namespace,
                            ledger,
                            history.entries,
                            now=started,
                            expire_after=policy.quarantine_seconds,
                            others=lambda stored: ours.merged(
                                LaneState.read(stored, now=started)[0], streams=names
                            ).to_data(),
                            other_keys=lane_state.KEYS,
                        )
                        report.ledger_written, report.ledger_reason = written.written, written.reason
                        lane_run.settle_requests(cluster, namespace, requests)
        finally:  # the report holds both however far the run got; the first Job never waits for the counts
            _say_learned(history)
            _report_quarantine(history, report, streams)
            if not interrupt.is_set():
                _count_backlog(store, templates, streams, report)
    finally:
        store.close()


def _trusted(store: GraphStore, settings: Settings) -> tuple[TrustedIndexes, Callable[[str], str | None] | None]:
    """The indexes Jobs may fetch from (those the graph lists, and --allowed-index: docs/lanes.md), and what
    tells an untrusted one for the run's decision. When the graph cannot list them the run goes on as before
    indexes were checked (every candidate's own index), with a warning: a failing read never fails the run."""
    try:
        trusted = TrustedIndexes.of(store.index_urls(), settings.lanes.allowed_indexes)
    except StoreError as error:
        logger.warning("The graph's indexes could not be read: the candidates' own indexes are used: %s", error)
        return TrustedIndexes({}), None
    return trusted, trusted.refusal


def _holds_no_slot(
    view: OwnedJobs,
    history: History,
    renderer: Renderer,
    created: set[str],
    untrusted: Callable[[str], str | None] | None,
) -> predictions.Held:
    """Whether a candidate takes no slot of the next run: its Job exists (created by this run, or in flight,
    awaiting sync, failed and waiting) or it is invalid, as the run's own decision says."""
    capacity = Capacity.from_cluster(max_in_flight=0, live_jobs=0, quotas=[])  # room is not what is asked

    def held(kind: Kind, solver: str | None, candidate: Candidate) -> bool:
        if WorkItem(kind, solver, candidate).key in created:
            return True
        fate = decide(
            kind,
            solver,
            candidate,
            view=view,
            history=history,
            capacity=capacity,
            first_cost=renderer.probe_cost(kind, solver),
            cost=renderer.cost,
            untrusted=untrusted,
        )
        return isinstance(fate, Skipped) and fate.reason in predictions.HOLDING

    return held


def _foresee(
    settings: Settings,
    store: GraphStore,
    templates: JobTemplates,
    report: RunReport,
    kept: LaneState,
    record: lane_state.RunRecord,
    requests: RequestOutcome,
    view: OwnedJobs,
    created: set[str],
    cursors: dict[str, int],
    held: predictions.Held,
    trusted: TrustedIndexes,
) -> tuple[lane_state.RunRecord, Calibration, Mapping[str, tuple[int, Candidate]]]:
    """The run's windows and scores (docs/eta.md); a store that cannot be read leaves them as they were, with a
    warning: they never fail the run."""
    try:
        record, calibration, scores, backlog_fronts = predictions.after_run(
            kept.calibration,
            store=store,
            templates=templates,
            settings=settings.lanes,
            runs=kept.runs,
            record=record,
            requests=requests,
            had_job=view.latest.keys(),
            created=created,
            cursors=cursors,
            held=held,
            durations=view.durations,
            trusted=trusted,
        )
    except StoreError as error:
        logger.warning("No window was recorded or scored this run: %s", error)
        return record, kept.calibration, kept.fronts
    report.eta = eta_counts(scores, calibration.scores, record.at)
    return record, calibration, backlog_fronts


EXPLAIN_SECONDS = 8  # what explain may spend on the cluster in all: an answer, or its error, within 10 s


def explain_item(settings: Settings, externals: Externals, candidate: Candidate) -> list[dict[str, Any]]:
    """Where ``candidate`` stands in every stream of the run ``settings`` describe (``app.py explain``): the
    next run's own decision for it (``fate.decide``), from what a run reads: the store, the Templates and,
    when middletier is named, the item's Jobs and their failed pods, the quotas, the ledger (failed Jobs
    present learned as a run learns them), the requests, and with ``--max-awaiting-sync`` the completed Jobs.
    Writes nothing. Raises GraphRefreshError when one of them cannot be read: a guess is no answer."""
    from graph_refresh.waiting.explain import StreamFacts, explain

    namespace = settings.cluster.middletier_namespace
    reads_cluster = settings.cluster.template_dir is None or namespace is not None
    if namespace is None:
        logger.warning(
            "THOTH_MIDDLETIER_NAMESPACE is not set: the item's Jobs, the ledger and the requests are not read, so "
            "this says only what the graph holds (in flight, failed or requested shows as waiting)"
        )
    cluster = connect(settings, externals, budget=EXPLAIN_SECONDS) if reads_cluster else None
    now = math.floor(externals.now())
    store = open_store(settings.store)
    try:
        templates = load_templates(settings, cluster)
        streams = templates.streams()
        environments = list(templates.solver_environments())
        items = {
            stream_name(k, lane_run.solver_of(e)): WorkItem(k, lane_run.solver_of(e), candidate) for k, e in streams
        }
        view, ledger, kept = OwnedJobs(), ledger_store.Ledger(), LaneState()
        requests, paused = RequestOutcome(), False
        jobs: list[dict[str, Any]] = []
        if cluster is not None and namespace:
            keys = [item.key for item in items.values()]
            jobs = cluster.list_item_jobs(namespace, keys)
            quotas = [Quota.from_object(q) for q in cluster.list_quotas(namespace)]
            view = build_view(jobs, lambda selector: cluster.list_item_pods(namespace, keys, selector), quotas, now=now)
            ledger, kept = lane_run.read_ledger(cluster, namespace, now=now, strict=True)
            quarantined = lane_run.quarantined_keys(ledger.entries, settings.retry, now)
            requests = lane_run.sorted_requests(
                requests_store.read(cluster, namespace),
                store,
                templates,
                settings.lanes,
                now,
                kept.completions,
                quarantined,
            )
            if requests.skipped is not None:
                raise StoreError(f"the requests could not be looked up in the graph: {requests.skipped}")
            if settings.lanes.max_awaiting_sync:
                completed = read_cluster_view(cluster, namespace, now, keep_completed=True)
                paused = lane_run.sync_lag(completed, store, settings.lanes, templates, strict=True)
        history = History.of(ledger.entries, view, settings.retry, now)
        renderer = Renderer(templates, settings.plan, namespace)
        capacity = Capacity.from_cluster(max_in_flight=0, live_jobs=0, quotas=view.quotas)
        request = next((r for r in [*requests.open, *requests.advisable] if r.candidate == candidate), None)
        lanes_requested = {name: requests.requested(name) for name in items}
        (status,) = store.statuses([candidate], environments)
        end = store.arrival_end()
        item_jobs = _jobs_by_item(jobs)
        pace, shares = Pace.of(kept.runs, now), predictions.shares_of(settings.lanes)
        trusted = TrustedIndexes.of(store.index_urls(), settings.lanes.allowed_indexes)
        facts = []
        for kind, environment in streams:
            name = stream_name(kind, lane_run.solver_of(environment))
            item = items[name]
            done = status.analyzed if environment is None else name in status.solved_by
            cost = renderer.probe_cost(kind, item.solver)
            fate = decide(
                kind,
                item.solver,
                candidate,
                view=view,
                history=history,
                capacity=capacity,
                first_cost=cost,
                cost=renderer.cost,
                untrusted=trusted.refusal,
            )
            cursor = lane_run.fresh_cursor(name, kept.cursors, end, settings.lanes)
            lane, ahead = None, None
            if status.arrival is not None and not done:
                lane = "fresh" if status.arrival > cursor else "backlog"
                ahead = lane_run.ahead_in_lane(store, environment, lane, cursor, status.arrival, candidate)
            front = kept.fronts.get(name)
            if lane == "backlog" and ahead is not None and front is not None:  # what holds no slot comes first
                first = lane_run.ahead_in_lane(store, environment, lane, cursor, *front)
                ahead = None if first is None else max(0, ahead - first)
            # The request whose closure the stream's requested lane serves it for, and what that lane takes first
            place = next((n for n, (c, _) in enumerate(lanes_requested[name]) if c == candidate), None)
            asked = None if place is None else lanes_requested[name][place][1]
            if asked is not None:
                ahead = place
            waits_in = Lane.REQUESTED if asked is not None else None if lane is None else Lane(lane)
            forecast = None
            if waits_in is not None and ahead is not None:
                forecast = predictions.predict(pace, kept.calibration, item, waits_in, ahead, shares=shares)
            facts.append(
                StreamFacts(
                    kind,
                    item.solver,
                    done,
                    fate,
                    item_jobs.get(item.key, ()),
                    history.entries.get(item.key),
                    asked,
                    paused and asked is None,
                    lane,
                    ahead,
                    forecast,
                )
            )
        rows = explain(facts)
        if request is not None and cluster is not None and namespace:
            if len(request.closure) > 1:  # its members' Jobs: what a run reads
                view = read_cluster_view(cluster, namespace, now)
            solvers = [e.name for e in environments]
            counts = closure_counts(request, solvers, lambda solver, c: _has_job(view, solver, c))
            for row in rows:
                if row["stream"] in counts:
                    row["closure"] = counts[row["stream"]]
        return rows
    finally:
        store.close()


def _has_job(view: OwnedJobs, solver: str, candidate: Candidate) -> bool:
    """Whether the solver's item has a Job in flight, or complete while the graph lacks its result."""
    return view.state(WorkItem(SOLVER, solver, candidate)) in (JobState.IN_FLIGHT, JobState.COMPLETE)


def request_closures(
    settings: Settings, cluster: kube.Cluster, read: requests_store.Requests, now: float
) -> dict[str, dict[str, Any]]:
    """Per request key, per solver, how far its open request is from advisable (``request --list``), from what a
    run reads: the graph, the Templates, the ledger, the owned Jobs. Raises GraphRefreshError when one of them
    cannot be read."""
    namespace = settings.cluster.middletier_namespace
    assert namespace is not None, "checked by the CLI"
    store = open_store(settings.store)
    try:
        templates = load_templates(settings, cluster)
        ledger, kept = lane_run.read_ledger(cluster, namespace, now=now, strict=True)
        quarantined = lane_run.quarantined_keys(ledger.entries, settings.retry, now)
        requests = lane_run.sorted_requests(
            read, store, templates, settings.lanes, now, kept.completions, quarantined, say=False
        )
        if requests.skipped is not None:
            raise StoreError(f"the requests could not be looked up in the graph: {requests.skipped}")
        view = read_cluster_view(cluster, namespace, now)
        solvers = [environment.name for environment in templates.solver_environments()]
        out = {}
        for request in [*requests.open, *requests.advisable]:
            counts = closure_counts(request, solvers, lambda solver, c: _has_job(view, solver, c))
            out.update({key.key: counts for key in request.keys})
        return out
    finally:
        store.close()


def window_accuracy(settings: Settings, externals: Externals) -> list[dict[str, Any]]:
    """How the solved windows the kept scores name held, per lane and over all (``explain --accuracy``), from the
    ledger ConfigMap; raises GraphRefreshError when it cannot be read."""
    namespace = settings.cluster.middletier_namespace
    if not namespace:
        raise ClusterError("THOTH_MIDDLETIER_NAMESPACE is not set: the scores are kept in its ledger ConfigMap")
    cluster = connect(settings, externals, budget=EXPLAIN_SECONDS)
    now = math.floor(externals.now())
    _, kept = lane_run.read_ledger(cluster, namespace, now=now, strict=True)
    return accuracy_rows(kept.calibration)


def connect(
    settings: Settings,
    externals: Externals,
    *,
    sleep: Callable[[float], None] = time.sleep,
    budget: float | None = None,
) -> kube.Cluster:
    """The cluster client, the one place it is built: a test's (``externals.connect``), or one from the cluster
    settings, waiting through ``sleep`` before a retried read and spending at most ``budget`` seconds on all its
    requests (None: no bound)."""
    if externals.connect is not None:
        return externals.connect()
    from graph_refresh import kube

    return kube.Cluster(settings.cluster, sleep=sleep, budget_seconds=budget)


def _jobs_by_item(jobs: list[dict[str, Any]]) -> dict[str, tuple[Any, ...]]:
    """Item key → its Jobs as explain shows them, lowest attempt first."""
    from graph_refresh.owned import job_state
    from graph_refresh.retry.failures import attempt_of, resources_of
    from graph_refresh.waiting.explain import JobSeen

    found: dict[str, list[JobSeen]] = {}
    for job in jobs:
        metadata = job.get("metadata") or {}
        key = (metadata.get("labels") or {}).get(LABEL_ITEM)
        if not isinstance(key, str):
            continue
        created = metadata.get("creationTimestamp")
        resources = resources_of(job)
        memory = next(iter(resources.memory.values()), None)
        found.setdefault(key, []).append(
            JobSeen(
                str(metadata.get("name")),
                created if isinstance(created, str) else None,
                attempt_of(job),
                {"IN_FLIGHT": "in-flight", "FAILED": "failed", "COMPLETE": "complete"}[job_state(job).name],
                None if memory is None else memory.limit or memory.request,
                resources.deadline_seconds,
            )
        )
    return {key: tuple(sorted(seen, key=lambda job: (job.attempt, job.name))) for key, seen in found.items()}
