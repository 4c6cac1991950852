"""Command line: parse flags and environment variables, build settings, make one call into the core,
and decide the exit code (SPEC §7) — the only place that does."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import click

from graph_refresh import __version__, config, metrics, refresh
from graph_refresh.config import ClusterSettings, MetricsSettings, PlanSettings, Settings, StoreSettings
from graph_refresh.errors import ConfigError, GraphRefreshError
from graph_refresh.items import KINDS
from graph_refresh.report import RunReport
from graph_refresh.store.graphfile import read_graph_file
from graph_refresh.store.sqlite import SQLiteStore

logger = logging.getLogger("graph_refresh")

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PARTIAL = 0, 1, 2, 3
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")

T = TypeVar("T")
NON_NEGATIVE = click.IntRange(min=0)


class ConfigFailure(click.ClickException):
    """A configuration error found after parsing: ``Error: ...`` on stderr and exit 2."""

    exit_code = EXIT_USAGE


def _namespace(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not _DNS_LABEL.fullmatch(value):
        raise click.BadParameter(f"{value!r} is not a namespace name (a DNS-1123 label)")
    return value or None


def _url(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """An http(s) URL; empty means the option's default (a result URL) or unset (the Pushgateway)."""
    if not value:
        return param.default if isinstance(param.default, str) else None
    if not re.fullmatch(r"https?://\S+", value):
        raise click.BadParameter(f"{config.redact_url(value)!r} is not an http(s) URL")
    return value


def _pushgateway(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A URL, or ``host[:port]`` as Thoth's ConfigMaps have it (``pushgateway:80``): http is then assumed."""
    match = re.fullmatch(r"[A-Za-z0-9.-]+(?::([0-9]{1,5}))?", value or "")
    if match:
        if match.group(1) and not 0 < int(match.group(1)) < 65536:
            raise click.BadParameter(f"{value!r}: the port must be 1 to 65535")
        value = f"http://{value}"
    return _url(ctx, param, value)


def _finite(ctx: click.Context, param: click.Parameter, value: float) -> float:
    if not math.isfinite(value):
        raise click.BadParameter(f"{value} is not a finite number")
    return value


def _empty_is_none(ctx: click.Context, param: click.Parameter, value: T | None) -> T | None:
    return value or None


class _StrictBool(click.types.BoolParamType):
    """click's boolean, except that a blank value is an error rather than false.

    (A ConfigMap value of " " must not quietly turn ``KUBERNETES_VERIFY_TLS`` off; an empty variable is
    unset and keeps the default.)
    """

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> bool:
        state = None if isinstance(value, str) and not value.strip() else self.str_to_bool(value)
        if state is None:
            self.fail(f"{value!r} is not a boolean; use 1 or 0 (or true/false, yes/no, on/off)", param, ctx)
        return state


def _option(*decls: str, env: str, help: str, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A click option that always has its environment variable, shown with its default in --help.

    A boolean's default shows as the environment variable's value, 0 or 1.
    """
    default = kwargs.get("default")
    show_default: bool | str = True
    if isinstance(default, bool):
        show_default, kwargs["type"] = ("1" if default else "0"), _StrictBool()
    return click.option(*decls, envvar=env, show_envvar=True, show_default=show_default, help=help, **kwargs)


OPTIONS = [
    _option(
        "--infra-namespace",
        env="THOTH_INFRA_NAMESPACE",
        callback=_namespace,
        help="Namespace holding the solver and package-analyzer Templates (required unless --template-dir).",
    ),
    _option(
        "--middletier-namespace",
        env="THOTH_MIDDLETIER_NAMESPACE",
        callback=_namespace,
        help="Namespace where Jobs are created (required unless --dry-run).",
    ),
    _option(
        "--verify-tls/--no-verify-tls",
        env="KUBERNETES_VERIFY_TLS",
        default=True,
        help="Verify the Kubernetes API server's certificate (0 disables it, with a warning).",
    ),
    _option(
        "--template-dir",
        env="THOTH_GRAPH_REFRESH_TEMPLATE_DIR",
        callback=_empty_is_none,
        type=click.Path(exists=True, file_okay=False, path_type=Path),
        help="Read Templates from the YAML files of this folder instead of the infra namespace.",
    ),
    _option(
        "--graph-service-host",
        env="GRAPH_SERVICE_HOST",
        callback=_empty_is_none,
        help="Dgraph alpha host[:port] (port 9080 by default); unset selects the embedded SQLite store.",
    ),
    _option(
        "--graph-tls-path",
        env="GRAPH_TLS_PATH",
        callback=_empty_is_none,
        type=click.Path(path_type=Path),
        help="Folder with ca.crt, client.user.crt and client.user.key for Dgraph; unset means plaintext.",
    ),
    _option(
        "--dgraph-user",
        env="GRAPH_REFRESH_DGRAPH_USER",
        callback=_empty_is_none,
        help="Dgraph ACL user to log in as; unset means no login.",
    ),
    _option(
        "--dgraph-password",
        env="GRAPH_REFRESH_DGRAPH_PASSWORD",
        callback=_empty_is_none,
        help="Dgraph ACL password (secret; prefer the environment variable).",
    ),
    _option(
        "--dgraph-timeout",
        env="GRAPH_REFRESH_DGRAPH_TIMEOUT",
        default=config.DEFAULT_STORE_TIMEOUT_SECONDS,
        type=click.IntRange(min=1),
        help="Seconds one Dgraph query may take (the unsolved query's first page grows with the graph).",
    ),
    _option(
        "--sqlite-path",
        env="GRAPH_REFRESH_SQLITE_PATH",
        default=config.DEFAULT_SQLITE_PATH,
        type=click.Path(dir_okay=False, path_type=Path),
        help="Embedded graph store file.",
    ),
    _option(
        "--eager-stop",
        env="THOTH_GRAPH_REFRESH_EAGER_STOP",
        default=config.DEFAULT_EAGER_STOP,
        type=NON_NEGATIVE,
        help="Max Jobs scheduled per kind per run; 0 means no cap.",
    ),
    _option(
        "--no-solvers/--solvers",
        env="GRAPH_REFRESH_NO_SOLVERS",
        default=False,
        help="Do not schedule solver Jobs (no solver Template is needed).",
    ),
    _option(
        "--no-package-analyzers/--package-analyzers",
        env="GRAPH_REFRESH_NO_PACKAGE_ANALYZERS",
        default=False,
        help="Do not schedule package-analyzer Jobs (no package-analyzer Template is needed).",
    ),
    _option(
        "--solver-output",
        env="THOTH_SOLVER_OUTPUT",
        default=config.DEFAULT_SOLVER_OUTPUT,
        callback=_url,
        help="Where solvers post their results.",
    ),
    _option(
        "--package-analyzer-output",
        env="THOTH_PACKAGE_ANALYZER_OUTPUT",
        default=config.DEFAULT_PACKAGE_ANALYZER_OUTPUT,
        callback=_url,
        help="Where package-analyzers post their results.",
    ),
    _option(
        "--subgraph-check-api",
        env="THOTH_SUBGRAPH_CHECK_API",
        default=config.DEFAULT_SUBGRAPH_CHECK_API,
        callback=_url,
        help="The solvers' subgraph check endpoint.",
    ),
    _option(
        "--log-solver",
        env="THOTH_LOG_SOLVER",
        callback=_empty_is_none,
        type=click.Choice(LOG_LEVELS, case_sensitive=False),
        help="Solver log level passed to the Template (DEBUG also turns on package-analyzer debug); "
        "unset keeps the Template's default.",
    ),
    _option(
        "--pushgateway-url",
        env="PROMETHEUS_PUSHGATEWAY_URL",
        callback=_pushgateway,
        help="Push metrics to this Prometheus Pushgateway (URL or host:port) at the end of the run; unset: no push.",
    ),
    _option(
        "--deployment-name",
        env="NAMESPACE",
        default=config.DEFAULT_DEPLOYMENT_NAME,
        help="Deployment name, the env label of the info metric.",
    ),
    _option(
        "--dry-run/--no-dry-run",
        env="THOTH_DRY_RUN",
        default=False,
        help="Plan and render, print the plan, create nothing.",
    ),
    _option(
        "--output-dir",
        env="THOTH_GRAPH_REFRESH_OUTPUT_DIR",
        callback=_empty_is_none,
        type=click.Path(file_okay=False, path_type=Path),
        help="Dry run: write one YAML manifest per planned Job into this folder.",
    ),
    _option(
        "--report",
        "report_path",
        env="THOTH_GRAPH_REFRESH_REPORT",
        callback=_empty_is_none,
        type=click.Path(dir_okay=False, path_type=Path),
        help="Write the JSON run report to this file.",
    ),
    _option(
        "--max-in-flight",
        env="THOTH_GRAPH_REFRESH_MAX_IN_FLIGHT",
        default=config.DEFAULT_MAX_IN_FLIGHT,
        type=NON_NEGATIVE,
        help="Cap on live owned Jobs in middletier; 0 means no cap.",
    ),
    _option(
        "--qps",
        env="THOTH_GRAPH_REFRESH_QPS",
        default=config.DEFAULT_QPS,
        type=click.FloatRange(min=0),
        callback=_finite,
        help="Client-side API request rate limit, requests per second; 0 means no limit.",
    ),
    _option(
        "--burst",
        env="THOTH_GRAPH_REFRESH_BURST",
        default=config.DEFAULT_BURST,
        type=click.IntRange(min=1),
        help="API requests allowed in a burst above --qps.",
    ),
    _option(
        "--workers",
        env="THOTH_GRAPH_REFRESH_WORKERS",
        default=config.DEFAULT_WORKERS,
        type=click.IntRange(min=1),
        help="Concurrent Job create requests.",
    ),
    _option(
        "--job-ttl",
        env="THOTH_GRAPH_REFRESH_JOB_TTL",
        default=config.DEFAULT_JOB_TTL_SECONDS,
        type=NON_NEGATIVE,
        help="Seconds: ttlSecondsAfterFinished for Jobs whose Template has none; also the failure back-off.",
    ),
]


def _with_options(function: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(OPTIONS):
        function = option(function)
    return function


def _check_writable(path: Path, variable: str) -> None:
    """A file the run writes at its end must be writable now, before any work is done."""
    if path.is_dir():
        raise ConfigError(f"{variable}: {str(path)!r} is a folder, not a file")
    folder = path.absolute().parent
    while not folder.exists():  # missing folders are created when the file is written
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(f"{variable}: {str(path)!r} cannot be written: {str(folder)!r} is not a writable folder")


def build_settings(params: dict[str, Any]) -> Settings:
    """Settings from parsed parameters; cross-field checks raise ConfigError naming the variable."""
    p = params
    if p["template_dir"] is None and p["infra_namespace"] is None:
        raise ConfigError("THOTH_INFRA_NAMESPACE (--infra-namespace) is required unless --template-dir is given")
    if not p["dry_run"] and p["middletier_namespace"] is None:
        raise ConfigError("THOTH_MIDDLETIER_NAMESPACE (--middletier-namespace) is required unless --dry-run")
    if bool(p["dgraph_user"]) != bool(p["dgraph_password"]):
        raise ConfigError("GRAPH_REFRESH_DGRAPH_USER and GRAPH_REFRESH_DGRAPH_PASSWORD must be set together")
    if p["report_path"] is not None:
        _check_writable(p["report_path"], "THOTH_GRAPH_REFRESH_REPORT (--report)")
    if p["output_dir"] is not None and not p["dry_run"]:
        logger.warning("THOTH_GRAPH_REFRESH_OUTPUT_DIR (--output-dir) is for a dry run: no manifests are written")
    if p["graph_tls_path"] is not None and not p["graph_service_host"]:
        logger.warning("GRAPH_TLS_PATH is set but GRAPH_SERVICE_HOST is not: using the embedded SQLite store")
    return Settings(
        store=StoreSettings(
            graph_service_host=p["graph_service_host"],
            graph_tls_path=p["graph_tls_path"],
            dgraph_user=p["dgraph_user"],
            dgraph_password=p["dgraph_password"],
            sqlite_path=p["sqlite_path"],
            timeout_seconds=p["dgraph_timeout"],
        ),
        cluster=ClusterSettings(
            infra_namespace=p["infra_namespace"],
            middletier_namespace=p["middletier_namespace"],
            verify_tls=p["verify_tls"],
            template_dir=p["template_dir"],
            qps=p["qps"],
            burst=p["burst"],
            workers=p["workers"],
        ),
        plan=PlanSettings(
            eager_stop=p["eager_stop"],
            max_in_flight=p["max_in_flight"],
            no_solvers=p["no_solvers"],
            no_package_analyzers=p["no_package_analyzers"],
            dry_run=p["dry_run"],
            output_dir=p["output_dir"],
            job_ttl_seconds=p["job_ttl"],
            solver_output=p["solver_output"],
            package_analyzer_output=p["package_analyzer_output"],
            subgraph_check_api=p["subgraph_check_api"],
            log_solver=p["log_solver"].upper() if p["log_solver"] else None,
        ),
        metrics=MetricsSettings(
            pushgateway_url=p["pushgateway_url"],
            deployment_name=p["deployment_name"],
            report_path=p["report_path"],
        ),
    )


def _exit_code_from_counts(report: RunReport) -> int:
    """For a run that went through (SPEC §7): 0 nothing failed (or nothing to do), 3 some creates failed,
    1 every create failed. Systemic failures, interrupts and an unwritable report are decided in
    ``_run_once``."""
    failed = sum(report.totals(kind).failed for kind in KINDS)
    done = sum(report.totals(kind).scheduled + report.totals(kind).already_scheduled for kind in KINDS)
    if failed and not done:
        return EXIT_FAILED
    return EXIT_PARTIAL if failed else EXIT_OK


def _log_per_stream(report: RunReport) -> None:
    """One INFO line per solver and one for the analyzer, from the report: scheduled and skipped by reason."""
    streams = [(f"solver {name}", counts) for name, counts in sorted(report.solvers.items())]
    if report.analyzer.examined:
        streams.append(("package-analyzer", report.analyzer))
    for label, counts in streams:
        logger.info("%s: %s", label, counts.describe())


class _Progress:
    """A counter on stderr while long work runs, only when stderr is a terminal (never in logs or CI)."""

    EVERY = 1000

    def __init__(self, label: str) -> None:
        self.enabled = sys.stderr.isatty()
        self.label = label
        self.count = 0

    def tick(self) -> None:
        self.count += 1
        if self.enabled and self.count % self.EVERY == 0:
            click.echo(f"\r{self.label}: {self.count}", err=True, nl=False)

    def done(self) -> None:
        if self.enabled and self.count >= self.EVERY:
            click.echo(f"\r{self.label}: {self.count}", err=True)


def _progress_bar(items: Iterable[T], label: str) -> Iterable[T]:
    """``items`` with a progress bar on stderr while they are consumed, when stderr is a terminal."""
    if not sys.stderr.isatty():
        return items
    return _bar(list(items), label)


def _bar(items: list[T], label: str) -> Iterator[T]:
    with click.progressbar(items, label=label, file=sys.stderr) as bar:
        yield from bar


def _check_log_levels() -> None:
    """thoth-common reads every ``THOTH_LOG_<NAME>`` as a log level (THOTH_LOG_SOLVER too) and crashes on a bad one.

    Empty means unset; any case is accepted (upper-cased here); anything else is a usage error naming it.
    """
    for name, value in list(os.environ.items()):
        if not name.startswith("THOTH_LOG_"):
            continue
        if not value.strip():
            del os.environ[name]
        elif value.strip().upper() in logging.getLevelNamesMapping():
            os.environ[name] = value.strip().upper()
        else:
            raise ConfigFailure(f"{name}={value!r} is not a log level ({', '.join(LOG_LEVELS)})")


_OUR_LOG_VARIABLE = "THOTH_LOG_GRAPH_REFRESH"


def _init_logging() -> None:
    """thoth-common's logging. Our loggers log at INFO; ``THOTH_LOG_GRAPH_REFRESH=DEBUG`` (all of them) or
    ``THOTH_LOG_GRAPH_REFRESH__PLANNER=DEBUG`` (one module) change that, as ``THOTH_ADJUST_LOGGING`` does.

    (thoth-common maps ``THOTH_LOG_<X>`` to the logger ``thoth.<x>``; ours are ``graph_refresh.*``.)
    """
    from thoth.common import init_logging

    _check_log_levels()
    levels = {"graph_refresh": "INFO"}  # and its modules inherit it, unless set below
    levels.update((name, "NOTSET") for name in logging.root.manager.loggerDict if name.startswith("graph_refresh."))
    for name, value in sorted(os.environ.items()):
        if name == _OUR_LOG_VARIABLE or name.startswith(f"{_OUR_LOG_VARIABLE}__"):
            levels["graph_refresh" + name[len(_OUR_LOG_VARIABLE) :].lower().replace("__", ".")] = value
    init_logging(levels)
    # daiquiri binds sys.stderr as it was at import; log to the stderr of now (tests, redirections).
    for handler in logging.getLogger().handlers:
        if type(handler) is not logging.FileHandler and isinstance(handler, logging.StreamHandler):
            handler.setStream(sys.stderr)


@dataclass
class _Signals:
    """SIGTERM and SIGINT while graph-refresh runs: the first sets ``event``; ``received`` names them."""

    event: threading.Event = field(default_factory=threading.Event)
    received: list[str] = field(default_factory=list)


@contextlib.contextmanager
def _handled_signals() -> Iterator[_Signals]:
    """Until the process exits, SIGTERM (the CronJob's deadline, a pod deletion) or SIGINT sets an Event
    instead of killing the process: the run stops creating, counts what it did, reports and pushes.
    A second signal of either kind ends the process at once.
    """
    signals = _Signals()
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield signals
        return

    numbers = (signal.SIGTERM, signal.SIGINT)

    def handle(signum: int, frame: object) -> None:
        for number in numbers:
            signal.signal(number, signal.SIG_DFL)
        signals.received.append(signal.Signals(signum).name)
        signals.event.set()
        logger.warning(
            "%s received: no more Jobs are created; finishing the creates in flight, then reporting",
            signals.received[-1],
        )

    previous = {number: signal.signal(number, handle) for number in numbers}
    try:
        yield signals
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


@click.group(
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 120, "terminal_width": 120},
)
@_with_options
@click.version_option(__version__, prog_name="graph-refresh")
@click.pass_context
def main(ctx: click.Context, /, **params: Any) -> None:
    """Schedule solver and package-analyzer Jobs for package versions the knowledge graph lacks.

    With no command, runs one refresh. Every option can also be set by the environment variable shown.
    """
    ctx.ensure_object(dict)
    ctx.obj["params"] = params
    if ctx.invoked_subcommand is not None:
        return
    _init_logging()
    try:
        settings = build_settings(params)
    except ConfigError as error:
        raise ConfigFailure(str(error)) from error
    logger.info("graph-refresh %s starting with %s", __version__, json.dumps(config.redacted(settings)))
    with _handled_signals() as signals:
        code = _run_once(ctx.obj, settings, signals)
    ctx.exit(code)


def _run_once(seams: dict[str, Any], settings: Settings, signals: _Signals) -> int:
    """One refresh, then its report, summary, metrics; returns the exit code."""
    report = RunReport(dry_run=settings.plan.dry_run, store=settings.store.kind)
    progress = _Progress("candidates examined")
    started = time.monotonic()
    try:
        refresh.run(
            settings=settings,
            report=report,
            connect=seams.get("connect"),
            sleep=seams.get("sleep"),
            now=seams.get("now", time.time),
            on_examined=progress.tick,
            interrupt=signals.event,
        )
        report.exit_code = _exit_code_from_counts(report)
    except ConfigError as error:
        raise ConfigFailure(str(error)) from error
    except (GraphRefreshError, OSError) as error:  # OSError: a manifest or a file that cannot be written
        logger.error("Run failed: %s", error)
        report.error = str(error)
        report.exit_code = EXIT_FAILED
    except Exception as error:  # a bug: say so with its traceback, and still report how far the run got
        logger.exception("Run failed unexpectedly")
        report.error = f"unexpected {type(error).__name__}: {error}"
        report.exit_code = EXIT_FAILED
    finally:
        progress.done()
    if signals.received:  # the run stopped early; what it did is counted
        report.error = f"interrupted by {signals.received[0]}: " + (report.error or "the run stopped early")
        report.exit_code = EXIT_FAILED
    report.duration_seconds = time.monotonic() - started
    click.echo(report.plan_table())
    logger.info("%s", report.summary_line())
    _log_per_stream(report)
    if settings.metrics.report_path is not None:
        try:
            report.write(settings.metrics.report_path)
        except OSError as error:
            logger.error("Could not write the run report to %s: %s", settings.metrics.report_path, error)
            report.exit_code = report.exit_code or EXIT_FAILED
    if settings.metrics.pushgateway_url and settings.plan.dry_run:
        logger.info("Dry run: metrics are not pushed")
    elif settings.metrics.pushgateway_url:
        metrics.push(report, url=settings.metrics.pushgateway_url, deployment_name=settings.metrics.deployment_name)
    return report.exit_code


@main.command("import-graph")
@click.argument("graph_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--sqlite-path",
    "import_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Embedded graph store file to load into (default: the main command's --sqlite-path, "
    "GRAPH_REFRESH_SQLITE_PATH, or graph-refresh.sqlite3).",
)
@click.pass_context
def import_graph(ctx: click.Context, graph_file: Path, import_path: Path | None) -> None:
    """Load GRAPH_FILE (JSON, see README) into the embedded SQLite store, idempotently, in one transaction."""
    params = ctx.obj["params"]
    if params["graph_service_host"]:
        raise click.UsageError(
            "GRAPH_SERVICE_HOST is set: import-graph only writes the embedded SQLite store "
            "(graph-refresh never writes to the production graph); unset it to import"
        )
    _init_logging()
    path: Path = import_path or params["sqlite_path"]
    new_store = not path.exists()
    try:
        store = SQLiteStore(path, create=True)
        try:
            with contextlib.ExitStack() as stack:
                on_read = None
                if sys.stderr.isatty():  # a bar over the bytes read: the file is streamed, never held
                    bar = click.progressbar(length=graph_file.stat().st_size, label="Importing", file=sys.stderr)
                    on_read = stack.enter_context(bar).update
                result = store.import_records(read_graph_file(graph_file, on_read=on_read))
        finally:
            store.close()
    except GraphRefreshError as error:
        if new_store:  # a failed import leaves no empty store behind (a run would plan from nothing)
            with contextlib.suppress(OSError):
                path.unlink()
        if isinstance(error, ConfigError):
            raise ConfigFailure(str(error)) from error
        logger.error("Import failed: %s", error)
        ctx.exit(EXIT_FAILED)
    click.echo(
        f"Imported {graph_file} into {path}: {result.records} records; new rows: "
        + ", ".join(f"{table}={count}" for table, count in result.added.items())
    )
