"""Prometheus metrics of one run (design: The report and metrics), derived from the run report and pushed once,
at the end.

The 2019 metric names are kept. A failed push is logged and never changes the exit code.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from urllib.parse import urlsplit, urlunsplit

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, push_to_gateway
from prometheus_client.exposition import basic_auth_handler, default_handler

from graph_refresh import __version__
from graph_refresh.config import redact_url
from graph_refresh.items import ANALYZER, KINDS, SOLVER
from graph_refresh.report import CAP_CAUSES, RETRY_CAUSES, Counts, RequestCounts, RunReport
from graph_refresh.vocabulary import LANES

logger = logging.getLogger(__name__)

JOB = "graph-refresh"  # the Pushgateway grouping key, as in 2019
PUSH_TIMEOUT_SECONDS = 10  # a slow Pushgateway must not hold the CronJob


def registry_from(report: RunReport, *, deployment_name: str) -> CollectorRegistry:
    """A fresh registry holding this run's metrics."""
    registry = CollectorRegistry()
    Gauge("graph_refresh_job_runtime_seconds", "Runtime of graph refresh job in seconds.", registry=registry).set(
        report.duration_seconds
    )
    Gauge(
        "thoth_graph_refresh_job_info", "Thoth Graph Refresh Job information", ["env", "version"], registry=registry
    ).labels(deployment_name, __version__).set(1)
    Counter(
        "graph_refresh_job_packages_added", "Unsolved or unanalyzed package versions examined.", registry=registry
    ).inc(sum(report.totals(kind).examined for kind in KINDS))
    scheduled = Counter(
        "graph_refresh_job_solvers_scheduled", "Number of Solvers scheduled.", ["solver"], registry=registry
    )
    unscheduled = Counter(
        "graph_refresh_job_solvers_unscheduled", "Number of Solvers failed to schedule.", ["solver"], registry=registry
    )
    for solver, counts in report.solvers.items():
        scheduled.labels(solver).inc(counts.scheduled)
        unscheduled.labels(solver).inc(counts.failed)
    Counter(
        "graph_refresh_job_package_analyzers_scheduled", "Number of Package Analyzers scheduled.", registry=registry
    ).inc(report.analyzer.scheduled)
    Counter(
        "graph_refresh_job_package_analyzers_unscheduled",
        "Number of Package Analyzers failed to schedule.",
        registry=registry,
    ).inc(report.analyzer.failed)
    skipped = Counter(
        "graph_refresh_job_items_skipped",
        "Candidates skipped, by kind, solver and reason.",
        ["kind", "solver", "reason"],
        registry=registry,
    )
    streams = [(SOLVER, name, counts) for name, counts in report.solvers.items()] + [(ANALYZER, "", report.analyzer)]
    for kind, solver, counts in streams:
        for reason, count in counts.skipped.items():
            skipped.labels(kind, solver, reason).inc(count)
    in_flight = Gauge("graph_refresh_job_in_flight", "Live Jobs graph-refresh owns.", ["kind"], registry=registry)
    for kind in KINDS:
        in_flight.labels(kind).set(report.in_flight.get(kind, 0))
    _add_outcome_metrics(registry, streams)
    if report.requests is not None:
        _add_request_metrics(registry, report.requests)
    if report.eta is not None:
        scored = Counter(
            "graph_refresh_job_eta_scored",
            "Solved windows scored this run, by lane and result: inside, early or late.",
            ["lane", "result"],
            registry=registry,
        )
        for lane in LANES:
            for result in ETA_RESULTS:
                scored.labels(lane, result).inc(report.eta.by_lane.get(lane, {}).get(result, 0))
        last_day = Gauge(
            "graph_refresh_job_eta_scored_last_day",
            "Solved windows scored in the last 24 hours (the ledger keeps them), by result: inside, early or late.",
            ["result"],
            registry=registry,
        )
        for result in ETA_RESULTS:
            last_day.labels(result).set(report.eta.last_day.get(result, 0))
    if report.ledger_written is not None:
        Gauge(
            "graph_refresh_job_ledger_written",
            "1 when the run wrote the failure ledger ConfigMap, 0 when it could not.",
            registry=registry,
        ).set(int(report.ledger_written))
    return registry


ETA_RESULTS = ("inside", "early", "late")  # how a scored window held (docs/eta.md)


def _add_outcome_metrics(registry: CollectorRegistry, streams: Sequence[tuple[str, str, Counts]]) -> None:
    """Backlog, retries and quarantine per stream (design: Learning, Backlog). A backlog that was not counted is
    not set, so an alert never mistakes a failed count for an empty backlog."""
    labels = ["kind", "solver"]
    backlog = Gauge(
        "graph_refresh_job_backlog", "Candidates waiting in the graph store, per stream.", labels, registry=registry
    )
    retries = Counter(
        "graph_refresh_job_retries",
        "Jobs scheduled that retry a failed one, by the cause of that failure.",
        [*labels, "cause"],
        registry=registry,
    )
    at_cap = Counter(
        "graph_refresh_job_retries_at_cap",
        "Retries scheduled with memory (oom) or activeDeadlineSeconds (deadline) at its cap.",
        [*labels, "cause"],
        registry=registry,
    )
    quarantined = Gauge(
        "graph_refresh_job_quarantined", "Items in quarantine per the ledger, per stream.", labels, registry=registry
    )
    for kind, solver, counts in streams:
        if counts.backlog is not None:
            backlog.labels(kind, solver).set(counts.backlog)
        for cause in RETRY_CAUSES:
            retries.labels(kind, solver, cause).inc(counts.retried[cause])
        for cause in CAP_CAUSES:
            at_cap.labels(kind, solver, cause).inc(counts.at_cap[cause])
        quarantined.labels(kind, solver).set(counts.quarantined)
    by_lane = Counter(
        "graph_refresh_job_scheduled_by_lane",
        "Jobs scheduled, by the lane their slot came from: requested, fresh, backlog.",
        [*labels, "lane"],
        registry=registry,
    )
    for kind, solver, counts in streams:
        for lane in LANES:
            by_lane.labels(kind, solver, lane).inc(counts.lanes[lane])


HOUR = 3600.0
REQUEST_DONE_BUCKETS = (*(HOUR * hours for hours in (1, 2, 3, 4, 6, 8, 12, 24, 48, 72, 168)), float("inf"))
"""Hourly runs: a request is done a whole number of runs after it was made; a week is --request-ttl's default."""


def _add_request_metrics(registry: CollectorRegistry, requests: RequestCounts) -> None:
    """The requests still open and how long the oldest has waited (0 when none is open)."""
    Gauge("graph_refresh_job_requests_open", "Requests not yet solved and analyzed everywhere.", registry=registry).set(
        requests.open
    )
    Gauge(
        "graph_refresh_job_request_oldest_age_seconds",
        "Seconds the oldest open request has waited; 0 when none is open.",
        registry=registry,
    ).set(requests.oldest_age_seconds or 0)
    done = Histogram(
        "graph_refresh_job_request_done_seconds",
        "Seconds from a request's requested_at to the run that found it advisable (done), for the requests this "
        "run found done.",
        buckets=REQUEST_DONE_BUCKETS,
        registry=registry,
    )
    for seconds in requests.done_seconds:
        done.observe(seconds)


def push(report: RunReport, *, url: str, deployment_name: str) -> bool:
    """Push the run's metrics to the Pushgateway at ``url``; log and return False when that fails.

    Credentials in the URL (``https://user:pass@host``) are sent as basic auth, never logged.
    """
    parts = urlsplit(url)
    handler = default_handler
    if parts.username is not None:
        username, password = parts.username, parts.password or ""

        def handler(url, method, timeout, headers, data):  # type: ignore[no-untyped-def]
            return basic_auth_handler(url, method, timeout, headers, data, username, password)

        netloc = parts.hostname or ""
        url = urlunsplit(parts._replace(netloc=f"{netloc}:{parts.port}" if parts.port else netloc))
    try:
        push_to_gateway(
            url,
            job=JOB,
            registry=registry_from(report, deployment_name=deployment_name),
            timeout=PUSH_TIMEOUT_SECONDS,
            handler=handler,
        )
    except Exception as error:  # any push failure is only logged (design: The report and metrics)
        logger.warning("Could not push metrics to %s: %s", redact_url(url), error)
        return False
    logger.info("Pushed metrics to %s", redact_url(url))
    return True
