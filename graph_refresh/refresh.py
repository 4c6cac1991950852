"""One run of graph-refresh, end to end (SPEC §2): store → Templates → cluster view → plan → render →
create (or write) → report. The CLI calls :func:`run` once and decides the exit code from the report."""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from graph_refresh import compact, memory
from graph_refresh.capacity import Capacity, Quota
from graph_refresh.config import Settings, redact_url
from graph_refresh.errors import Interrupted, StoreError
from graph_refresh.items import ANALYZER, KINDS, SOLVER, Candidate
from graph_refresh.learning import History
from graph_refresh.ledger import expires_at, format_time
from graph_refresh.outcomes import Policy
from graph_refresh.planner import Stream, order_streams, plan
from graph_refresh.render import Renderer
from graph_refresh.report import QuarantinedItem, RunReport
from graph_refresh.runtime import collector_paused
from graph_refresh.scheduler import dry_run, submit
from graph_refresh.store import open_store
from graph_refresh.store.base import GraphStore
from graph_refresh.templates import JobTemplates, load_job_templates, read_template_dir
from graph_refresh.view import ClusterView, build_view

if TYPE_CHECKING:  # the Kubernetes client loads only when a run needs the cluster
    from graph_refresh import kube

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Seams:
    """What a test replaces: how the cluster client is built, how a wait is slept, and the wall clock."""

    connect: Callable[[], kube.Cluster] | None = None
    """Build the cluster client (only called when the run needs the cluster); None: from the settings."""
    sleep: Callable[[float], None] | None = None
    """Wait before a retry; None: a wait that a signal cuts short."""
    now: Callable[[], float] = time.time
    """Seconds since the epoch."""


# Failure times come from the Job controller's clock and reach the API a little after it: a Job that failed
# this long before the listing may still be missing from it. Learning again is harmless (it is idempotent).
LEARNING_MARGIN_SECONDS = 300


def read_cluster_view(cluster: kube.Cluster, namespace: str, now: float) -> ClusterView:
    """List the ResourceQuotas, the owned Jobs (paged) and, when some failed, the owned pods of ``namespace``."""
    quotas = [Quota.from_object(q) for q in cluster.list_quotas(namespace)]
    with collector_paused():  # not only while a page is parsed, while its records are read into the view
        view = build_view(
            cluster.list_owned_jobs(namespace, reduce=compact.job),
            lambda selector: cluster.list_owned_pods(namespace, field_selector=selector, reduce=compact.pod),
            quotas,
            now=now,
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


def _primed(candidates: Iterator[Candidate]) -> Iterator[Candidate]:
    """Read a stream's first page now: a store that cannot be read fails the run before anything is created."""
    first = next(candidates, None)
    return candidates if first is None else itertools.chain([first], candidates)


def _streams(store: GraphStore, templates: JobTemplates, renderer: Renderer, settings: Settings) -> list[Stream]:
    """One stream per solver (in Template order) and one for the analyzer, each with its first page read."""
    streams = []
    if not settings.plan.no_solvers:
        for environment in templates.solver_environments():
            cost = renderer.probe_cost(SOLVER, environment.name)
            streams.append(Stream(SOLVER, environment.name, _primed(store.solver_candidates(environment)), cost))
    if not settings.plan.no_package_analyzers:
        cost = renderer.probe_cost(ANALYZER, None)
        streams.append(Stream(ANALYZER, None, _primed(store.analyzer_candidates()), cost))
    return streams


def _count_backlog(store: GraphStore, templates: JobTemplates, streams: list[Stream], report: RunReport) -> None:
    """Each stream's backlog, counted by the store (SPEC §12); a count that fails is None and a warning."""
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


def needs_cluster(settings: Settings) -> bool:
    """A dry run from a template folder stays off the cluster unless middletier is named (SPEC §2.4)."""
    c = settings.cluster
    return c.template_dir is None or not settings.plan.dry_run or c.middletier_namespace is not None


def run(
    *,
    settings: Settings,
    report: RunReport,
    seams: Seams = Seams(),
    on_examined: Callable[[], None] = lambda: None,
    interrupt: threading.Event | None = None,
) -> None:
    """Do one run, filling ``report`` as it goes; raise a GraphRefreshError on a systemic failure.

    Nothing is created before the Templates, the cluster view and the first page of every candidate
    stream have been read; a store failure on a later page stops the run with what was created counted.
    ``seams`` are what tests replace (the cluster client, sleeping, the clock). Once ``interrupt`` is set,
    no more candidates are examined and no more creates are sent; the run then ends with what it did counted.
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
        view, ledger = ClusterView(), memory.Ledger()
        listed_at = math.floor(now()) - LEARNING_MARGIN_SECONDS
        if cluster is not None and namespace:
            view = read_cluster_view(cluster, namespace, now())
            ledger = memory.read(cluster, namespace, now=listed_at)
        if not namespace:
            logger.warning(
                "Dry run without THOTH_MIDDLETIER_NAMESPACE: Jobs in flight, failures, the ledger and ResourceQuotas "
                "are not read; the plan applies --max-in-flight and --eager-stop only, so it may hold more than a "
                "real run would create"
            )
        policy = Policy.of(settings.retry)
        history = History.of(ledger.entries, view, policy, now(), learned_until=ledger.learned_until)
        for kind in KINDS:
            report.in_flight[kind] = view.live[kind]
        renderer = Renderer(templates, settings.plan, namespace)
        capacity = Capacity.from_cluster(
            max_in_flight=settings.plan.max_in_flight, live_jobs=sum(view.live.values()), quotas=view.quotas
        )
        streams = _streams(store, templates, renderer, settings)
        items = plan(
            order_streams(streams, view.per_stream, now()),
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
        try:
            if settings.plan.dry_run:
                dry_run(items, renderer=renderer, report=report, output_dir=settings.plan.output_dir)
            else:
                assert cluster is not None and namespace is not None, "checked by the CLI"
                try:
                    submit(
                        items,
                        renderer=renderer,
                        report=report,
                        cluster=cluster,
                        namespace=namespace,
                        capacity=capacity,
                        settings=settings.cluster,
                        sleep=sleep,
                        interrupt=interrupt,
                        server_dry_run=settings.plan.server_dry_run,
                    )
                finally:  # what was learned is kept however the run ends; a server dry run stores nothing
                    if not settings.plan.server_dry_run:
                        memory.write(
                            cluster,
                            namespace,
                            ledger,
                            history.entries,
                            now=now(),
                            expire_after=policy.quarantine_seconds,
                            learned_until=history.learned_until(listed_at),
                        )
        finally:  # the report holds both however far the run got; the first Job never waits for the counts
            _report_quarantine(history, report, streams)
            if not interrupt.is_set():
                _count_backlog(store, templates, streams, report)
    finally:
        store.close()
