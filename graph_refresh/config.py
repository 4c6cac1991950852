"""Settings of one run, grouped by concern (design: A run).

The CLI builds these from flags and environment variables; everything else receives them ready-made.
Secrets are held in fields marked ``repr=False`` and :func:`redacted` never shows them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from graph_refresh.quantity import Cap

DEFAULT_SQLITE_PATH = Path("graph-refresh.sqlite3")  # beside the caller, like the 2019 job's local runs
DEFAULT_DGRAPH_PORT = 9080  # Dgraph alpha's gRPC port
DEFAULT_STORE_TIMEOUT_SECONDS = 30  # one Dgraph query; a page of 500 rows answers in well under a second
DEFAULT_EAGER_STOP = 0  # 0 = no per-kind cap, as in 2019
DEFAULT_MAX_IN_FLIGHT = 1000  # live owned Jobs in middletier; keeps a backlog from flooding the cluster
DEFAULT_QPS = 5.0  # client-go's default request rate
DEFAULT_BURST = 10  # client-go's default burst
DEFAULT_WORKERS = 4  # concurrent create requests
DEFAULT_JOB_TTL_SECONDS = 86_400  # finished Jobs go after a day: long past the next hourly run, which learns from them
DEFAULT_SOLVER_OUTPUT = "http://result-api/api/v1/solver-result"
DEFAULT_PACKAGE_ANALYZER_OUTPUT = "http://result-api/api/v1/package-analysis-result"
DEFAULT_SUBGRAPH_CHECK_API = "http://result-api/api/v1/subgraph-check"
DEFAULT_DEPLOYMENT_NAME = "thoth-test-core"
DEFAULT_MAX_MEMORY = "8Gi"  # an OOM-killed Job's memory doubles up to this (design: Learning)
DEFAULT_MAX_DEADLINE_SECONDS = 86_400  # a deadline-killed Job's activeDeadlineSeconds doubles up to a day
DEFAULT_RETRY_BACKOFF_SECONDS = 3_600  # a failing item waits an hour, then 2 h, 4 h, ... (one CronJob period first)
DEFAULT_MAX_ATTEMPTS = 3  # charged failures before an item is quarantined
DEFAULT_PROGRESS_EVERY_SECONDS = 30.0  # without a terminal, a run logs its progress this often while it works
DEFAULT_QUARANTINE_SECONDS = 2_592_000  # 30 days: long enough for a fix to land, short enough to try again
DEFAULT_REQUEST_TTL_SECONDS = 604_800  # 7 days: a request not done by then is dropped with a warning
DEFAULT_FRESH_SHARE = 0.5  # of the slots left after requests, what new releases may take
DEFAULT_REQUEST_DEPTH = 10  # levels of dependencies below a requested version that its request brings
DEFAULT_REQUEST_SHARE = 0.8  # of the free slots, what requests may take while other lanes have work: a flood waits
DEFAULT_MAX_AWAITING_SYNC = 0  # 0 = no pacing against the graph sync


@dataclass(frozen=True)
class StoreSettings:
    """Where the knowledge graph is read from."""

    graph_service_host: str | None = None
    """Dgraph alpha host[:port] (port 9080 by default); unset selects the embedded SQLite store."""
    graph_tls_path: Path | None = None
    """Folder with ca.crt, client.user.crt and client.user.key for Dgraph (both client files: mutual TLS);
    unset means plaintext."""
    dgraph_user: str | None = None
    """Dgraph ACL user to log in as; unset means no login."""
    dgraph_password: str | None = field(default=None, repr=False)
    """Dgraph ACL password (secret; prefer the environment variable)."""
    sqlite_path: Path = DEFAULT_SQLITE_PATH
    """Embedded graph store file (only import-graph creates it)."""
    timeout_seconds: int = DEFAULT_STORE_TIMEOUT_SECONDS
    """Seconds one Dgraph query or login may take (the unsolved query's first page grows with the graph)."""

    @property
    def kind(self) -> str:
        """``dgraph`` when a Dgraph host is configured, else ``sqlite``."""
        return "dgraph" if self.graph_service_host else "sqlite"


@dataclass(frozen=True)
class ClusterSettings:
    """Where Templates come from and where Jobs go."""

    infra_namespace: str | None = None
    """Namespace holding the solver and package-analyzer Templates (required unless --template-dir)."""
    middletier_namespace: str | None = None
    """Namespace where Jobs are created (required unless --dry-run)."""
    verify_tls: bool = True
    """Verify the Kubernetes API server's certificate (0 disables it, with a warning)."""
    template_dir: Path | None = None
    """Read Templates from the YAML files of this folder instead of the infra namespace."""
    qps: float = DEFAULT_QPS
    """Client-side API request rate limit, requests per second; 0 means no limit."""
    burst: int = DEFAULT_BURST
    """API requests allowed in a burst above --qps."""
    workers: int = DEFAULT_WORKERS
    """Concurrent Job create requests."""
    kubeconfig: Path | None = None
    """The kubeconfig file (--kubeconfig); None: KUBECONFIG, else ~/.kube/config. Named, it is used even in a
    cluster, instead of the service account."""
    context: str | None = None
    """The kubeconfig's context (--context); None: its current context. Named, the kubeconfig is used even in a
    cluster."""


@dataclass(frozen=True)
class PlanSettings:
    """What to schedule and how much."""

    eager_stop: int = DEFAULT_EAGER_STOP
    """Max Jobs scheduled per kind per run; 0 means no cap."""
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    """Cap on live owned Jobs in middletier; 0 means no cap."""
    no_solvers: bool = False
    """Do not schedule solver Jobs (no solver Template is needed)."""
    no_package_analyzers: bool = False
    """Do not schedule package-analyzer Jobs (no package-analyzer Template is needed)."""
    dry_run: bool = False
    """Plan, print the plan, create nothing (with an output folder, render each Job and write it there)."""
    server_dry_run: bool = False
    """Send a real run's creates with dryRun=All: the API server validates, admits and quota-checks every Job
    and stores none (counted as a dry run; no ledger write, no metrics push)."""
    output_dir: Path | None = None
    """Dry run: write one YAML manifest per planned Job into this folder."""
    job_ttl_seconds: int = DEFAULT_JOB_TTL_SECONDS
    """Seconds: ttlSecondsAfterFinished for Jobs whose Template has none; failures are learned from the failed
    Jobs a run sees, so keep it above the CronJob's period (an hour)."""
    solver_output: str = DEFAULT_SOLVER_OUTPUT
    """Where solvers post their results."""
    package_analyzer_output: str = DEFAULT_PACKAGE_ANALYZER_OUTPUT
    """Where package-analyzers post their results."""
    subgraph_check_api: str = DEFAULT_SUBGRAPH_CHECK_API
    """The solvers' subgraph check endpoint."""
    log_solver: str | None = None
    """Solver log level passed to the Template (DEBUG also turns on package-analyzer debug); unset keeps the
    Template's default."""


@dataclass(frozen=True)
class RetrySettings:
    """How failed items come back (design: Learning): escalation by cause, back-off and quarantine. What the
    retry rules read (``retry/policy.py``), parsed once."""

    max_memory: Cap = field(default_factory=lambda: Cap.parse(DEFAULT_MAX_MEMORY))
    """An OOM-killed Job comes back with every container's memory request and limit doubled, up to this
    Kubernetes quantity."""
    max_deadline_seconds: int = DEFAULT_MAX_DEADLINE_SECONDS
    """Seconds: a Job killed by its deadline comes back with activeDeadlineSeconds doubled, up to this."""
    retry_backoff_seconds: int = DEFAULT_RETRY_BACKOFF_SECONDS
    """Seconds a failing item waits after its first failure, doubled after each further one."""
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    """Charged failures (oom, deadline, error) before an item is quarantined; 0 means never."""
    quarantine_seconds: int = DEFAULT_QUARANTINE_SECONDS
    """Seconds a quarantined item is left alone after its last failure; then it starts again at attempt 1."""


@dataclass(frozen=True)
class MetricsSettings:
    """Where the run's metrics and report go, and how much it says while it works."""

    pushgateway_url: str | None = field(default=None, repr=False)
    """Push metrics to this Prometheus Pushgateway (http(s) URL, or host:port) at the end of a real run;
    unset: no push."""
    deployment_name: str = DEFAULT_DEPLOYMENT_NAME
    """Deployment name, the env label of the info metric."""
    report_path: Path | None = None
    """Write the JSON run report to this file (- for standard output)."""
    quiet: bool = False
    """Log only warnings, errors and the summary line: no progress, no plan table."""


@dataclass(frozen=True)
class LaneSettings:
    """Who waiting comes first: requests, fresh releases, pacing against the graph sync (docs/lanes.md)."""

    request_ttl_seconds: int = DEFAULT_REQUEST_TTL_SECONDS
    """Seconds a request (ConfigMap graph-refresh-requests) stays open; then a run drops it with a warning."""
    request_share: float = DEFAULT_REQUEST_SHARE
    """Share (0 to 1) of the free slots requests may take while the other lanes have candidates, over time (a
    fraction left over is carried to the next run); a flood of requests cannot stop the rest."""
    request_depth: int = DEFAULT_REQUEST_DEPTH
    """Levels of dependencies below a requested version that its request brings (0: the version alone)."""
    allowed_indexes: tuple[str, ...] = ()
    """Package indexes a request may name besides those the graph lists (comma-separated URLs)."""
    fresh_share: float = DEFAULT_FRESH_SHARE
    """Share (0 to 1) of the free slots left after requests that versions new since the previous real run may
    take, over time (a fraction left over is carried to the next run); the rest drains the backlog."""
    max_awaiting_sync: int = DEFAULT_MAX_AWAITING_SYNC
    """When this many owned Jobs have completed while the graph still lists their items, schedule requests
    only (stopped_by sync-lag); 0 means off."""


@dataclass(frozen=True)
class Settings:
    """All settings of one run."""

    store: StoreSettings = field(default_factory=StoreSettings)
    cluster: ClusterSettings = field(default_factory=ClusterSettings)
    plan: PlanSettings = field(default_factory=PlanSettings)
    retry: RetrySettings = field(default_factory=RetrySettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    lanes: LaneSettings = field(default_factory=LaneSettings)


def redact_url(url: str) -> str:
    """Hide ``user:password@`` and the values of query parameters in a URL.

    Everything up to the last ``@`` is hidden: a password may hold ``@``, ``/``, ``?`` or ``#`` unencoded.
    """
    scheme, separator, rest = url.partition("://")
    if separator and "@" in rest:  # up to the last "@": a password may hold "/", "?", "#" or "@" unencoded
        url = f"{scheme}://***@{rest.rpartition('@')[2]}"
    base, mark, query = url.partition("?")
    if not mark:
        return url
    parameters = query.partition("#")[0].split("&")
    return base + "?" + "&".join(f"{p.partition('=')[0]}=***" if "=" in p else "***" for p in parameters if p)


def redacted(settings: Settings) -> dict[str, dict[str, Any]]:
    """The effective configuration as plain data, secrets replaced by ``***`` and URLs redacted (the start-up
    log line shows what of it differs from the defaults: ``options.not_defaults``)."""
    out: dict[str, dict[str, Any]] = {}
    for group in fields(settings):
        section = getattr(settings, group.name)
        values: dict[str, Any] = {}
        for f in fields(section):
            value = getattr(section, f.name)
            if isinstance(value, str) and "://" in value:
                value = redact_url(value)  # any URL may carry user:password@
            elif value is not None and not f.repr:
                value = "***"
            values[f.name] = str(value) if isinstance(value, Path | Cap) else value
        out[group.name] = values
    return out


def url_password(url: str) -> str | None:
    """The password of ``user:password@`` in a URL, read as :func:`redact_url` reads it (up to the last ``@``),
    so that it can be masked even in a URL that cannot be parsed."""
    rest = url.partition("://")[2]
    if "@" not in rest:
        return None
    return rest.rpartition("@")[0].partition(":")[2] or None
