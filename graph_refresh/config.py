"""Settings of one run, grouped by concern (SPEC §3).

The CLI builds these from flags and environment variables; everything else receives them ready-made.
Secrets are held in fields marked ``repr=False`` and :func:`redacted` never shows them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

DEFAULT_SQLITE_PATH = Path("graph-refresh.sqlite3")  # beside the caller, like the 2019 job's local runs
DEFAULT_DGRAPH_PORT = 9080  # Dgraph alpha's gRPC port
DEFAULT_STORE_TIMEOUT_SECONDS = 30  # one Dgraph query; a page of 500 rows answers in well under a second
DEFAULT_EAGER_STOP = 0  # 0 = no per-kind cap, as in 2019
DEFAULT_MAX_IN_FLIGHT = 1000  # live owned Jobs in middletier; keeps a backlog from flooding the cluster
DEFAULT_QPS = 5.0  # client-go's default request rate
DEFAULT_BURST = 10  # client-go's default burst
DEFAULT_WORKERS = 4  # concurrent create requests
DEFAULT_JOB_TTL_SECONDS = 86_400  # finished Jobs go after a day; a failed item therefore backs off one day
DEFAULT_SOLVER_OUTPUT = "http://result-api/api/v1/solver-result"
DEFAULT_PACKAGE_ANALYZER_OUTPUT = "http://result-api/api/v1/package-analysis-result"
DEFAULT_SUBGRAPH_CHECK_API = "http://result-api/api/v1/subgraph-check"
DEFAULT_DEPLOYMENT_NAME = "thoth-test-core"


@dataclass(frozen=True)
class StoreSettings:
    """Where the knowledge graph is read from."""

    graph_service_host: str | None = None
    """Dgraph alpha ``host[:port]``; None selects the embedded SQLite store."""
    graph_tls_path: Path | None = None
    """Directory with ca.crt (and client.user.crt + client.user.key for mutual TLS); None = plaintext."""
    dgraph_user: str | None = None
    """Dgraph ACL user; None = no login."""
    dgraph_password: str | None = field(default=None, repr=False)
    """Dgraph ACL password (secret)."""
    sqlite_path: Path = DEFAULT_SQLITE_PATH
    """The embedded store's file, created on first use."""
    timeout_seconds: int = DEFAULT_STORE_TIMEOUT_SECONDS
    """Deadline of one Dgraph query or login, in seconds (the SQLite store has none)."""

    @property
    def kind(self) -> str:
        """``dgraph`` when a Dgraph host is configured, else ``sqlite``."""
        return "dgraph" if self.graph_service_host else "sqlite"


@dataclass(frozen=True)
class ClusterSettings:
    """Where Templates come from and where Jobs go."""

    infra_namespace: str | None = None
    """Namespace holding the solver and package-analyzer Templates."""
    middletier_namespace: str | None = None
    """Namespace the Jobs are created in."""
    verify_tls: bool = True
    """Verify the API server's certificate; off only with a loud warning."""
    template_dir: Path | None = None
    """Read Templates from YAML files here instead of the infra namespace."""
    qps: float = DEFAULT_QPS
    """Client-side request rate limit toward the API, requests per second (0 = unlimited)."""
    burst: int = DEFAULT_BURST
    """Requests allowed at once before the rate limit applies."""
    workers: int = DEFAULT_WORKERS
    """Create requests in flight at once."""


@dataclass(frozen=True)
class PlanSettings:
    """What to schedule and how much."""

    eager_stop: int = DEFAULT_EAGER_STOP
    """Max Jobs scheduled per kind per run; 0 = no cap."""
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    """Cap on live owned Jobs in middletier; 0 = no cap."""
    no_solvers: bool = False
    """Do not schedule solver Jobs."""
    no_package_analyzers: bool = False
    """Do not schedule package-analyzer Jobs."""
    dry_run: bool = False
    """Plan and render, create nothing."""
    output_dir: Path | None = None
    """Dry run: write one YAML manifest per planned Job here."""
    job_ttl_seconds: int = DEFAULT_JOB_TTL_SECONDS
    """ttlSecondsAfterFinished for Jobs whose Template sets none; also the failure back-off."""
    solver_output: str = DEFAULT_SOLVER_OUTPUT
    """Where solvers post their results."""
    package_analyzer_output: str = DEFAULT_PACKAGE_ANALYZER_OUTPUT
    """Where package-analyzers post their results."""
    subgraph_check_api: str = DEFAULT_SUBGRAPH_CHECK_API
    """The solver's subgraph check endpoint."""
    log_solver: str | None = None
    """Solver log level passed to the Template; None keeps the Template's default. DEBUG also turns on
    package-analyzer debug (``THOTH_PACKAGE_ANALYZER_DEBUG=1``)."""


@dataclass(frozen=True)
class MetricsSettings:
    """Where the run's metrics and report go."""

    pushgateway_url: str | None = field(default=None, repr=False)
    """Prometheus Pushgateway URL (may embed credentials); None = no push."""
    deployment_name: str = DEFAULT_DEPLOYMENT_NAME
    """``env`` label of the info metric."""
    report_path: Path | None = None
    """Write the JSON run report here."""


@dataclass(frozen=True)
class Settings:
    """All settings of one run."""

    store: StoreSettings = field(default_factory=StoreSettings)
    cluster: ClusterSettings = field(default_factory=ClusterSettings)
    plan: PlanSettings = field(default_factory=PlanSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)


_URL_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]+@")


def redact_url(url: str) -> str:
    """Hide ``user:password@`` and the values of query parameters (``?token=...``) in a URL."""
    url = _URL_CREDENTIALS.sub("***@", url)
    base, mark, query = url.partition("?")
    if not mark:
        return url
    parameters = query.partition("#")[0].split("&")
    return base + "?" + "&".join(f"{p.partition('=')[0]}=***" if "=" in p else "***" for p in parameters if p)


def redacted(settings: Settings) -> dict[str, dict[str, Any]]:
    """The effective configuration as plain data, secrets replaced by ``***``, for the start-up log line."""
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
            values[f.name] = str(value) if isinstance(value, Path) else value
        out[group.name] = values
    return out
