"""Command line: parse flags and environment variables, build settings, make one call into the core,
and decide the exit code (design: Exit codes) — the only place that does.

The options themselves are declared once, in :mod:`graph_refresh.options`; logging, signals and progress
live in :mod:`graph_refresh.runtime`.
"""

from __future__ import annotations

import difflib
import enum
import json
import logging
import math
import os
import sys
import time
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import click

from graph_refresh import __version__, config, options, output, runtime, secrets
from graph_refresh.config import Settings
from graph_refresh.errors import ConfigError, GraphRefreshError, Interrupted, advised
from graph_refresh.items import ANALYZER, KINDS, SOLVER
from graph_refresh.report import PLAN_TABLE_COLUMNS, RunReport
from graph_refresh.text import cell, columns, one_line, plural, tamed, wrapped
from graph_refresh.times import format_time

if TYPE_CHECKING:
    from graph_refresh import kube
    from graph_refresh.config import RetrySettings
    from graph_refresh.refresh import Externals
    from graph_refresh.retry import ledger_store
    from graph_refresh.waiting.state import LaneState

logger = logging.getLogger("graph_refresh")
summary_logger = logging.getLogger(runtime.SUMMARY_LOGGER)  # still logs with --quiet


class ExitCode(enum.IntEnum):
    """What the CronJob and monitoring act on (design: Exit codes)."""

    OK = 0
    """Every planned Job was created or already present, or there was nothing to do."""
    FAILED = 1
    """Store unreachable, cluster refusal, Templates missing or invalid, every create failed, interrupted."""
    USAGE = 2
    """Usage or configuration error: nothing was done."""
    PARTIAL = 3
    """Some creates failed after retries; they are retried next run."""


MIN_LEARNING_TTL_SECONDS = 3_600  # a failed Job must outlive one CronJob period to be learned from (design: Learning)
build_settings = options.build_settings


class ConfigFailure(click.ClickException):
    """A configuration error found after parsing: ``Error: ...`` on stderr and exit 2, secrets masked."""

    exit_code = ExitCode.USAGE

    def __init__(self, message: str) -> None:
        super().__init__(secrets.mask(message))


class NotFound(click.ClickException):
    """What a command was asked about does not exist: ``Error: ...`` on stderr and exit 1, as kubectl's NotFound."""

    exit_code = ExitCode.FAILED

    def __init__(self, message: str) -> None:
        super().__init__(secrets.mask(message))


def _settings(ctx: click.Context, purpose: Literal["run", "middletier", "explain", "request"]) -> Settings:
    """Logging set up, then the settings of the root command's parameters for ``purpose`` (a usage error, exit 2,
    when they cannot work); ``--quiet`` applies to every command."""
    _start_logging()
    try:
        settings = build_settings(ctx.find_root().params, purpose=purpose)
    except ConfigError as error:
        raise ConfigFailure(str(error)) from error
    if settings.metrics.quiet:
        runtime.quiet_logging()
    return settings


def _start_logging() -> None:
    """Logging set up (a usage error when a log level cannot be read), then a warning for each variable named like
    ours that nothing reads."""
    try:
        runtime.init_logging()
    except ConfigError as error:
        raise ConfigFailure(str(error)) from error
    for warning in options.unknown_variables(os.environ):
        logger.warning("%s", warning)


def _externals(ctx: click.Context) -> Externals:
    """What the run takes from outside: a test's replacements, carried as the context object, or the real ones."""
    from graph_refresh.refresh import Externals

    found = ctx.find_root().obj
    return found if isinstance(found, Externals) else Externals()


def _exit_code_from_counts(report: RunReport) -> int:
    """For a run that went through (design: Exit codes): 0 nothing failed (or nothing to do), 3 some creates failed,
    1 every create failed. Systemic failures, interrupts and an unwritable report are decided in
    ``_run_once``."""
    failed = sum(report.totals(kind).failed for kind in KINDS)
    done = sum(report.totals(kind).scheduled + report.totals(kind).already_scheduled for kind in KINDS)
    if failed and not done:
        return ExitCode.FAILED
    return ExitCode.PARTIAL if failed else ExitCode.OK


def _warn_about(settings: Settings) -> None:
    """Settings that work but are probably not what the operator meant."""
    if settings.store.graph_tls_path is not None and not settings.store.graph_service_host:
        logger.warning("GRAPH_TLS_PATH is set but GRAPH_SERVICE_HOST is not: using the embedded SQLite store")
    if settings.plan.job_ttl_seconds < MIN_LEARNING_TTL_SECONDS:
        logger.warning(
            "THOTH_GRAPH_REFRESH_JOB_TTL (--job-ttl) is %ds: failed Jobs may be gone before the next hourly run "
            "learns why they failed; keep it above %ds",
            settings.plan.job_ttl_seconds,
            MIN_LEARNING_TTL_SECONDS,
        )


class _Context(click.Context):
    """Help fits the width of the stream it is written to (``text.columns``: the terminal's, else 100)."""

    def make_formatter(self) -> click.HelpFormatter:
        width = columns(sys.stdout)
        return self.formatter_class(width=width, max_width=width)


class _Command(click.Command):
    context_class = _Context


class _Group(click.Group):
    """Commands whose help fits the terminal, and whose usage errors are made safe for it and fit it: what they
    echo from the command line is escaped and cut (``text.tamed``), and the line is wrapped."""

    context_class = _Context
    command_class = _Command
    group_class = type  # a group's groups are of its class

    def make_context(
        self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: Any
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.ClickException as error:
            raise _tamed(error) from error

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.ClickException as error:
            raise _tamed(error) from error


ERROR_PREFIX = "Error: "  # how click starts the line of a usage or configuration error


def _tamed(error: click.ClickException) -> click.ClickException:
    """``error`` as click would print it, its message escaped, cut (``text.tamed``) and wrapped to stderr's width;
    the same exit code."""
    message = wrapped(ERROR_PREFIX + tamed(error.format_message()), columns(sys.stderr))[len(ERROR_PREFIX) :]
    if message == error.format_message():
        return error
    if isinstance(error, click.UsageError):
        return click.UsageError(message, error.ctx)
    return ConfigFailure(message) if error.exit_code == ExitCode.USAGE else click.ClickException(message)


@click.group(
    cls=_Group,
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@options.with_options
@click.version_option(__version__, prog_name="graph-refresh")
@click.pass_context
def main(ctx: click.Context, /, **params: Any) -> None:
    """Schedule solver and package-analyzer Jobs for package versions the knowledge graph lacks.

    With no command, runs one refresh. Every option can also be set by the environment variable shown.
    """
    if ctx.invoked_subcommand is not None:
        return
    settings = _settings(ctx, "run")
    _warn_about(settings)
    _say_starting(settings)
    externals = _externals(ctx)  # the core and its clients load only for a run, not for --help
    with runtime.handled_signals() as signals:
        code = _run_once(externals, settings, signals)
    ctx.exit(code)


def _say_starting(settings: Settings) -> None:
    """The start-up log line: the version, what kind of run, and the settings not at their defaults (secrets
    redacted), which with the defaults in ``--help`` is the effective configuration."""
    plan = settings.plan
    mode = "server dry run" if plan.server_dry_run else "dry run" if plan.dry_run else "run"
    changed = options.not_defaults(settings)
    logger.info(
        "graph-refresh %s starting a %s; %s",
        __version__,
        mode,
        f"not at their defaults: {' '.join(changed)}" if changed else "every setting at its default",
    )


def _run_once(externals: Externals, settings: Settings, signals: runtime.Signals) -> int:
    """One refresh, then its report, summary, metrics; returns the exit code."""
    from graph_refresh import refresh

    plan = settings.plan
    off = {kind for kind, no in ((SOLVER, plan.no_solvers), (ANALYZER, plan.no_package_analyzers)) if no}
    report = RunReport(
        dry_run=plan.dry_run or plan.server_dry_run,
        server_dry_run=plan.server_dry_run,
        store=settings.store.kind,
        off=frozenset(off),
    )
    mode: runtime.Mode = "server dry run" if plan.server_dry_run else "dry run" if plan.dry_run else "run"
    progress = runtime.Progress(
        mode=mode, every=externals.progress_every, clock=externals.clock, enabled=not settings.metrics.quiet
    )
    started = time.monotonic()
    progress.start()
    try:
        refresh.run(
            settings=settings,
            report=report,
            externals=externals,
            on_examined=progress.examined,
            on_planned=progress.planned,
            on_answered=progress.answered,
            interrupt=signals.event,
        )
        report.exit_code = _exit_code_from_counts(report)
    except ConfigError as error:
        raise ConfigFailure(str(error)) from error
    except (GraphRefreshError, OSError) as error:  # OSError: a manifest or a file that cannot be written
        logger.error("Run failed: %s", advised(error))
        report.error = secrets.mask(str(error))
        report.exit_code = ExitCode.FAILED
    except Exception as error:  # a bug: say so with its traceback, and still report how far the run got
        logger.exception("Run failed unexpectedly")
        report.error = secrets.mask(f"unexpected {type(error).__name__}: {error}")
        report.exit_code = ExitCode.FAILED
    finally:
        progress.done()
    if signals.received:  # the run stopped early; what it did is counted
        report.error = f"interrupted by {signals.received[0]}: " + (report.error or "the run stopped early")
        report.exit_code = ExitCode.FAILED
    report.duration_seconds = time.monotonic() - started
    _emit(report, settings)
    return report.exit_code


def _emit(report: RunReport, settings: Settings) -> None:
    """The plan table, the summary line and what the table does not say of each stream, the report file and the
    metrics push."""
    report_path = settings.metrics.report_path
    to_stdout = report_path is not None and str(report_path) == "-"
    # A run that failed before examining anything has no plan: no table and no summary of zeros after the error.
    if report.error is None or any(report.totals(kind).examined for kind in KINDS):
        if not settings.metrics.quiet:
            table = sys.stderr if to_stdout else sys.stdout  # stdout carries the JSON report alone when asked
            click.echo(report.plan_table(min(columns(table), PLAN_TABLE_COLUMNS)), err=to_stdout)
        summary_logger.info("%s", report.summary_line())
        for name, counts in [*sorted(report.solvers.items()), (ANALYZER, report.analyzer)]:
            if untabled := counts.untabled():
                logger.info("%s: %s", name, untabled)
    if report_path is not None:
        try:
            output.write_output(report_path, report.to_json())
        except OSError as error:
            logger.error("Could not write the run report to %s: %s", report_path, error)
            report.exit_code = report.exit_code or ExitCode.FAILED
    url = settings.metrics.pushgateway_url
    if url and report.dry_run:
        logger.info("Dry run: metrics are not pushed")
    elif url:
        from graph_refresh import metrics  # prometheus_client loads only when metrics are pushed

        metrics.push(report, url=url, deployment_name=settings.metrics.deployment_name)


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
    """Load GRAPH_FILE (JSON, see README) into the embedded SQLite store, idempotently, in one transaction: the
    store is complete or as it was, even when the import is interrupted."""
    from graph_refresh.store.graphfile import read_graph_file
    from graph_refresh.store.sqlite import SQLiteStore

    params = ctx.find_root().params
    if params["graph_service_host"]:
        raise click.UsageError(
            "GRAPH_SERVICE_HOST is set: import-graph only writes the embedded SQLite store "
            "(graph-refresh never writes to the production graph); unset it to import"
        )
    _start_logging()
    if params["quiet"]:
        runtime.quiet_logging()
    path: Path = import_path or params["sqlite_path"]
    folder = path.absolute().parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        problem = "does not exist" if not folder.exists() else "is not a writable folder"
        raise ConfigFailure(f"the embedded store {str(path)!r} cannot be written: {str(folder)!r} {problem}")
    existed = path.exists()
    try:
        with (
            runtime.signals_interrupt(),
            runtime.bytes_progress(graph_file.stat().st_size, "Importing", quiet=params["quiet"]) as on_read,
        ):
            result = SQLiteStore.import_into(path, read_graph_file(graph_file, on_read=on_read))
    except GraphRefreshError as error:
        if isinstance(error, ConfigError):
            raise ConfigFailure(str(error)) from error
        unchanged = f"{str(path)!r} is unchanged" if existed else f"{str(path)!r} was not created"
        if isinstance(error, Interrupted):
            logger.error("Import interrupted (%s): nothing was imported, %s", error, unchanged)
        else:
            logger.error("Import failed: %s", error)
        ctx.exit(ExitCode.FAILED)
    _echo(f"Imported {graph_file} into {path}:")
    added = ", ".join(f"{table}={count}" for table, count in result.added.items())
    _echo(f"{plural(result.records, 'record')}; new rows: {added}")


@main.group("ledger")
def ledger_group() -> None:
    """Read or change the failure ledger (ConfigMap graph-refresh-ledger in THOTH_MIDDLETIER_NAMESPACE).

    It uses the run's cluster settings (KUBECONFIG or the service account, THOTH_MIDDLETIER_NAMESPACE).
    """


def _connect(ctx: click.Context, settings: Settings) -> kube.Cluster:
    from graph_refresh.refresh import connect

    return connect(settings, _externals(ctx))


def _now(ctx: click.Context) -> float:
    return _externals(ctx).now()


@ledger_group.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print the entries as a JSON list instead of a table.")
@click.pass_context
def ledger_show(ctx: click.Context, as_json: bool) -> None:
    """List the ledger's entries with what each means for its item's next run."""
    from graph_refresh.retry import ledger_store
    from graph_refresh.retry.codec import LEDGER_NAME, encode
    from graph_refresh.retry.policy import entry_state
    from graph_refresh.waiting import state as lane_state
    from graph_refresh.waiting.state import LaneState

    settings = _settings(ctx, "middletier")
    namespace = settings.cluster.middletier_namespace
    assert namespace is not None, "checked by build_settings"
    try:
        ledger = ledger_store.read(
            _connect(ctx, settings), namespace, now=math.floor(_now(ctx)), strict=True, other_keys=lane_state.KEYS
        )
    except GraphRefreshError as error:
        logger.error("Could not read the ledger %s in namespace %r: %s", LEDGER_NAME, namespace, advised(error))
        ctx.exit(ExitCode.FAILED)
    now = math.floor(_now(ctx))
    policy, under = _last_run_settings(LaneState.read(ledger.other)[0], settings.retry)
    rows = []
    for key, entry in sorted(ledger.entries.items(), key=lambda pair: (pair[1].failed_at, pair[0])):
        state, until = entry_state(entry, now, policy)
        value = json.loads(encode(entry))
        row = {"key": key, **value, "state": state, "until": None if until is None else format_time(until)}
        rows.append({**row, "settings": under})
    if not as_json and rows:
        click.echo(f"States under {under}.", err=True)
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    if not rows:
        click.echo(f"The ledger {LEDGER_NAME} in namespace {namespace!r} has no entries.")
        return
    table = [["ITEM", "STREAM", "PACKAGE", "FAILS", "CAUSE", "STATE"]]
    for row in rows:
        state = row["state"] if row["until"] is None else f"{row['state']} {row['until']}"
        package = f"{row['package']}=={row['version']}"
        stream = row.get("solver") or row["kind"]
        table.append([row["key"], stream, package, str(row["failures"]), row["cause"] or "-", state])
    _echo_table(table, shrink=[(1, 2), (5,)])  # the package and the stream first (--json has them whole)


def _last_run_settings(kept: LaneState, shell: RetrySettings) -> tuple[RetrySettings, str]:
    """The retry settings an entry's state is told under: those the last real run recorded (the CronJob's), else
    this shell's, and which."""
    from graph_refresh.config import RetrySettings
    from graph_refresh.quantity import Cap

    last = next((run for run in reversed(kept.runs) if run.retry is not None), None)
    if last is None or last.retry is None:
        return shell, "this shell's settings (no run has recorded its own yet)"
    retry = last.retry
    try:
        settings = RetrySettings(
            max_memory=Cap.parse(retry["max_memory"]),
            max_deadline_seconds=retry["max_deadline_seconds"],
            retry_backoff_seconds=retry["retry_backoff_seconds"],
            max_attempts=retry["max_attempts"],
            quarantine_seconds=retry["quarantine_seconds"],
        )
    except ValueError:
        return shell, "this shell's settings (the last run's could not be read)"
    said = (
        f"the settings of the last run, {format_time(last.at)}: --max-attempts {settings.max_attempts}, "
        f"--retry-backoff {settings.retry_backoff_seconds}, --quarantine {settings.quarantine_seconds}"
    )
    return settings, said


def _fit(text: str, width: int) -> str:
    """``text`` escaped and cut to ``width`` characters for a table cell (the whole value is in ``--json``)."""
    return cell(text, width)


MIN_CELL = 6  # characters a cut table cell keeps, its ellipsis included


def _echo_table(table: list[list[str]], *, shrink: Sequence[Collection[int]] = ()) -> None:
    """Print ``table`` (its first row the header) in columns two spaces apart, cells escaped (``text.one_line``),
    fitted to the width of standard output: while a line would be too wide, the widest column of the first group
    in ``shrink`` that can lose a character loses one (its cells are cut with an ellipsis), down to its header's
    width or MIN_CELL; then the next group's. Columns in no group are never cut."""
    lines = [[one_line(value) for value in row] for row in table]
    widths = [max(len(row[i]) for row in lines) for i in range(len(lines[0]))]
    floors = [max(len(header), MIN_CELL) for header in lines[0]]
    room = columns(sys.stdout) - 2 * (len(widths) - 1)
    for group in shrink:
        while sum(widths) > room:
            cuttable = [i for i in group if widths[i] > floors[i]]
            if not cuttable:
                break
            widths[max(cuttable, key=lambda i: widths[i])] -= 1
    for row in lines:
        cells = (cell(value, width).ljust(width) for value, width in zip(row, widths, strict=True))
        click.echo("  ".join(cells).rstrip())


def _echo(message: str) -> None:
    """A line for standard output, made safe for a terminal and wrapped to its width."""
    click.echo(wrapped(tamed(message), columns(sys.stdout)))


@ledger_group.command("forget")
@click.argument("target", required=False, metavar="[ITEM-KEY | PKG==VER | PKG]")
@click.option("--index", "index_url", help="Only the entries of this index URL (with PKG==VER or PKG).")
@click.option("--solver", "solver", help="Only the entries of this solver (alone: all of its entries).")
@click.option("--analyzer", is_flag=True, help="Only the package-analyzer's entries (alone: all of them).")
@click.option("--all", "everything", is_flag=True, help="Every entry.")
@click.pass_context
def ledger_forget(
    ctx: click.Context, target: str | None, index_url: str | None, solver: str | None, analyzer: bool, everything: bool
) -> None:
    """Forget the failures of the matching entries: their items start again from the Template's resources.

    The highest attempt learned is kept, so failed Jobs still in the cluster are not learned again; the next
    attempt takes the next number. Deleting the ConfigMap instead forgets everything, and the failed Jobs still
    present are then learned again.
    """
    from graph_refresh.retry import ledger_store
    from graph_refresh.retry.codec import LEDGER_NAME
    from graph_refresh.retry.policy import forget_matcher
    from graph_refresh.waiting import state as lane_state

    try:
        matches = forget_matcher(target, index=index_url, solver=solver, analyzer=analyzer, everything=everything)
    except ValueError as error:
        raise click.UsageError(str(error)) from error
    settings = _settings(ctx, "middletier")
    namespace = settings.cluster.middletier_namespace
    assert namespace is not None, "checked by build_settings"
    try:
        found = ledger_store.forget(_connect(ctx, settings), namespace, matches, other_keys=lane_state.KEYS)
    except GraphRefreshError as error:
        logger.error("Could not change the ledger %s in namespace %r: %s", LEDGER_NAME, namespace, advised(error))
        ctx.exit(ExitCode.FAILED)
    if found.unreadable == 1:
        logger.warning("1 unreadable value was left as it is; the next real run drops it")
    elif found.unreadable:
        logger.warning("%d unreadable values were left as they are; the next real run drops them", found.unreadable)
    ledger = f"{LEDGER_NAME} in namespace {namespace!r}"
    if not found.matched:
        raise NotFound(_nothing_matched(ledger, found, target, index_url, solver, analyzer))
    changed, unchanged = found.changed, found.matched - len(found.changed)
    if not changed:  # what was asked for already holds: forgetting twice is no mistake
        _echo(f"{_entries(unchanged, 'matching')} of {ledger} had no failures to forget: nothing changed.")
        return
    for entry in changed[:20]:
        item = entry.item
        _echo(f"forgot {entry.key}: {item.solver or item.kind} {item.package}=={item.version} {item.index}")
    more = f" ({len(changed) - 20} not listed)" if len(changed) > 20 else ""
    _echo(f"{_entries(len(changed))} of {ledger} forgotten{more}.")
    if unchanged:
        _echo(f"{_entries(unchanged, 'more matching')} had no failures to forget.")


def _entries(count: int, adjective: str = "") -> str:
    """``1 entry``, ``2 matching entries``."""
    return " ".join(filter(None, (str(count), adjective, "entry" if count == 1 else "entries")))


def _nothing_matched(
    ledger: str,
    found: ledger_store.Forgotten,
    target: str | None,
    index_url: str | None,
    solver: str | None,
    analyzer: bool,
) -> str:
    """Why ``ledger forget`` changed nothing, in one line: what was asked, and what the ledger holds instead."""
    if not found.exists:
        return f"there is no ledger {ledger}: nothing to forget"
    if not found.entries:
        return f"the ledger {ledger} has no entries: nothing to forget"
    asked = " ".join(
        part
        for part in (
            target,
            f"--index {config.redact_url(index_url)}" if index_url else None,
            f"--solver {solver}" if solver else None,
            "--analyzer" if analyzer else None,
        )
        if part
    )
    hint = "ledger show lists them"
    solvers = sorted({entry.item.solver for entry in found.entries.values() if entry.item.solver})
    if solver and solver not in solvers:
        close = difflib.get_close_matches(solver, solvers, n=1)
        hint = f"did you mean --solver {close[0]}?" if close else f"its solvers: {', '.join(solvers) or 'none'}"
    return f"no entry of the ledger {ledger} matches {asked} ({_entries(len(found.entries))}; {hint})"


@main.command("request")
@click.argument("target", required=False, metavar="PKG==VER")
@click.option("--index", "index_url", help="Package index URL of the version (default: https://pypi.org/simple).")
@click.option("--by", help="Who asks (free text, kept with the request).")
@click.option("--cancel", is_flag=True, help="Remove the request for PKG==VER (with --index), or the one of key KEY.")
@click.option("--list", "listing", is_flag=True, help="List the requests instead of adding one.")
@click.option("--json", "as_json", is_flag=True, help="With --list: print a JSON list.")
@click.pass_context
def request(
    ctx: click.Context,
    target: str | None,
    index_url: str | None,
    by: str | None,
    cancel: bool,
    listing: bool,
    as_json: bool,
) -> None:
    """Ask for PKG==VER to be solved by every solver and analyzed, ahead of the backlog, by the next runs.

    The version must be on an index the deployment trusts (one the graph lists, or --allowed-index); a version
    spelled otherwise than in the graph (1.0.0 for 1.0) is matched to the graph's. The request is kept in the
    ConfigMap graph-refresh-requests in THOTH_MIDDLETIER_NAMESPACE until every solver and analyzer this
    deployment runs has the version (or --request-ttl passes). Asking again changes nothing.
    """
    from graph_refresh.waiting import requests_store
    from graph_refresh.waiting.requests import REQUESTS_NAME

    if listing and (target or index_url or by or cancel):
        raise click.UsageError("--list lists the requests: give it without PKG==VER, --index, --by or --cancel")
    if as_json and not listing:
        raise click.UsageError("--json goes with --list")
    if cancel and by:
        raise click.UsageError("--cancel takes PKG==VER (with --index) or a request's KEY, not --by")
    if not listing and not target:
        raise click.UsageError("say what to request as PKG==VER (for example flask==1.1.2), or --list")
    settings = _settings(ctx, "middletier" if listing or cancel else "request")
    namespace = settings.cluster.middletier_namespace
    assert namespace is not None, "checked by build_settings"
    now = math.floor(_now(ctx))
    try:
        cluster = _connect(ctx, settings)
        if listing:
            _list_requests(requests_store.read(cluster, namespace), settings, now, as_json=as_json)
        elif cancel:
            assert target is not None
            _cancel_request(ctx, cluster, namespace, target, index_url)
        else:
            assert target is not None
            _add_request(ctx, cluster, settings, _requirement(target), index_url, by, now)
    except GraphRefreshError as error:
        what = "list the requests" if listing else "cancel the request" if cancel else "file the request"
        logger.error("Could not %s (%s in namespace %r): %s", what, REQUESTS_NAME, namespace, error)
        ctx.exit(ExitCode.FAILED)


def _requirement(text: str) -> tuple[str, str]:
    """PKG and VER of ``PKG==VER``; a usage error naming the text (escaped, cut) when it is not that."""

    package, separator, version = text.partition("==")
    if not separator or not package.strip() or not version.strip():
        raise click.UsageError(f"'{cell(text, 80)}' is not PKG==VER (for example flask==1.1.2)")
    return package.strip(), version.strip()


def _add_request(
    ctx: click.Context,
    cluster: kube.Cluster,
    settings: Settings,
    asked: tuple[str, str],
    index_url: str | None,
    by: str | None,
    now: float,
) -> None:
    """File a request, once the graph says the deployment would do the work anyway (docs/lanes.md)."""
    from graph_refresh.items import Candidate, normal_index, normalize_name
    from graph_refresh.refresh import load_templates
    from graph_refresh.store import open_store
    from graph_refresh.waiting import requests_store
    from graph_refresh.waiting.lanes import lacking
    from graph_refresh.waiting.requests import DEFAULT_INDEX, encode, new_request
    from graph_refresh.waiting.trust import TrustedIndexes, same_version, store_spelling

    package, version = asked
    index = (index_url or DEFAULT_INDEX).strip()
    try:  # what can never be scheduled is a usage error before anything is read
        new_request(Candidate(normalize_name(package), version, DEFAULT_INDEX), now=now, by=by)
    except ValueError as error:
        raise click.UsageError(str(error)) from error
    store = open_store(settings.store)
    try:
        templates = load_templates(settings, cluster)
        trusted = TrustedIndexes.of(store.index_urls(), settings.lanes.allowed_indexes)
        spelling = trusted.spelling(index)
        if spelling is None:
            raise click.UsageError(
                f"'{one_line(config.redact_url(index))}' is not an index this deployment trusts; it trusts "
                f"{trusted.described()} (add one with --allowed-index)"
            )
        candidate = Candidate(normalize_name(package), version, spelling)
        environments = list(templates.solver_environments())
        (status,) = store.statuses([candidate], environments)
        if status.arrival is None:
            versions = store.known_versions([(candidate.package_name, spelling)])
            matched = store_spelling(version, versions.get((candidate.package_name, spelling), ()))
            if matched is not None and matched != version:
                candidate = candidate._replace(package_version=matched)
                (status,) = store.statuses([candidate], environments)
    finally:
        store.close()
    streams = [(kind, None if env is None else env.name) for kind, env in templates.streams()]
    missing = lacking(status, streams)
    shown = f"{candidate.package_name}=={candidate.package_version} ({config.redact_url(spelling)})"
    if not missing:
        click.echo(f"Nothing to do: every solver and analyzer of this deployment has {shown}; not requested.")
        return
    normal = normal_index(spelling)
    assert normal is not None, "a trusted index has a normal form"
    try:
        wanted = new_request(candidate._replace(index_url=normal), now=now, by=by)
    except ValueError as error:
        raise click.UsageError(str(error)) from error

    def same_item(request: Any) -> bool:
        return (
            request.package == wanted.package
            and normal_index(request.candidate.index_url) == normal
            and same_version(request.version, wanted.version)
        )

    def add(current: Any) -> dict[str, str] | None:
        if any(same_item(request) for request in current.requests):
            return None
        return {**current.data, wanted.key: encode(wanted)}

    current = requests_store.change(cluster, settings.cluster.middletier_namespace or "", add)
    filed = next((request for request in current.requests if same_item(request)), None)
    if filed is not None:
        when = "" if filed.requested_at is None else f" at {format_time(filed.requested_at)}"
        who = "" if filed.by is None else f" by {one_line(filed.by)}"
        click.echo(f"{shown} was already requested{when}{who} (key {one_line(filed.key)}): nothing changed.")
        return
    unknown = (
        "" if status.arrival is not None else " The graph does not know this version yet: it is scheduled as asked."
    )
    click.echo(
        f"Requested {shown} as key {wanted.key}: the next run schedules it for {', '.join(sorted(missing))}, "
        f"ahead of the backlog.{unknown}"
    )


def _cancel_request(
    ctx: click.Context, cluster: kube.Cluster, namespace: str, target: str, index_url: str | None
) -> None:
    """Remove the keys of one request: the key ``target``, or every key asking for ``target`` as PKG==VER."""
    from graph_refresh.items import normal_index, normalize_name
    from graph_refresh.waiting import requests_store
    from graph_refresh.waiting.requests import DEFAULT_INDEX
    from graph_refresh.waiting.trust import same_version

    by_key = "==" not in target
    if by_key and index_url:
        raise click.UsageError("--index goes with PKG==VER, not with a request's KEY")
    package, version = ("", "") if by_key else _requirement(target)
    normal = normal_index(index_url or DEFAULT_INDEX)
    removed: list[str] = []

    def remove(current: Any) -> dict[str, str] | None:
        removed.clear()
        if by_key:
            removed.extend(key for key in current.data if key == target)
        else:
            removed.extend(
                request.key
                for request in current.requests
                if request.package == normalize_name(package)
                and normal_index(request.candidate.index_url) == normal
                and same_version(request.version, version)
            )
        return {key: value for key, value in current.data.items() if key not in removed} if removed else None

    requests_store.change(cluster, namespace, remove)
    if not removed:
        what = f"key '{cell(target, 60)}'" if by_key else f"{cell(target, 80)}"
        raise NotFound(f"no request for {what} in namespace {namespace!r}: nothing to cancel")
    keys = "key" if len(removed) == 1 else "keys"
    click.echo(f"Cancelled: removed {len(removed)} {keys} ({', '.join(cell(key, 40) for key in removed)}).")


def _list_requests(read: Any, settings: Settings, now: float, *, as_json: bool) -> None:
    """The requests as a table (cells escaped and cut to fit 100 columns) or a JSON list (escaped)."""
    from graph_refresh.waiting.requests import REQUESTS_NAME, expired

    ttl = settings.lanes.request_ttl_seconds
    rows = []
    for r in read.requests:
        at = r.requested_at
        state = "open" if at is None or not expired(at, now, ttl) else "expired"
        rows.append(
            {
                "key": one_line(r.key),
                "package": r.package,
                "version": r.version,
                "index": one_line(config.redact_url(r.candidate.index_url)),
                "requested_at": None if at is None else format_time(at),
                "by": None if r.by is None else one_line(r.by),
                "age_seconds": None if at is None else max(0, int(now - at)),
                "state": state,
                "expires_at": None if at is None else format_time(at + ttl),
            }
        )
    for u in read.unreadable:
        rows.append({"key": one_line(u.key), "state": f"unreadable: {one_line(u.reason)}"})
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    if not rows:
        click.echo(f"No requests in {REQUESTS_NAME} (namespace {settings.cluster.middletier_namespace!r}).")
        return
    table = [["KEY", "PACKAGE", "INDEX", "BY", "AGE", "STATE"]]
    for row in rows:
        package = f"{row['package']}=={row['version']}" if "package" in row else "-"
        age = "-" if row.get("age_seconds") is None else _age(row["age_seconds"])
        cells = [row["key"], package, row.get("index") or "-", row.get("by") or "-", age, row["state"]]
        table.append([cell(value, width) for value, width in zip(cells, (12, 28, 29, 10, 4, 100), strict=True)])
    widths = [max(len(line[i]) for line in table) for i in range(5)]
    for line in table:
        click.echo(_fit("  ".join([*(c.ljust(w) for c, w in zip(line, widths, strict=False)), line[5]]), 100))


def _age(seconds: int) -> str:
    """An age as kubectl shows one: 45s, 12m, 5h, 3d."""
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@main.command("explain")
@click.argument("requirement", metavar="PKG==VER")
@click.option("--index", "index_url", help="Package index URL of the version (default: https://pypi.org/simple).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list, one object per solver and the analyzer.")
@click.pass_context
def explain_command(ctx: click.Context, requirement: str, index_url: str | None, as_json: bool) -> None:
    """Say where PKG==VER stands for every solver and the analyzer, and when it is likely to be scheduled.

    It reads the graph, the Templates and (with THOTH_MIDDLETIER_NAMESPACE) the item's Jobs, the ledger and the
    requests, as a run would; it never writes.
    """
    from graph_refresh.items import Candidate, normalize_name
    from graph_refresh.refresh import explain_item
    from graph_refresh.waiting.requests import DEFAULT_INDEX

    package, separator, version = requirement.partition("==")
    if not separator or not package.strip() or not version.strip():
        raise click.UsageError(f"{requirement!r} is not PKG==VER (for example flask==1.1.2)")
    candidate = Candidate(normalize_name(package.strip()), version.strip(), (index_url or DEFAULT_INDEX).strip())
    settings = _settings(ctx, "explain")
    externals = _externals(ctx)
    try:
        rows = explain_item(settings, externals, candidate)
    except GraphRefreshError as error:
        logger.error("Could not explain %s==%s: %s", candidate.package_name, candidate.package_version, error)
        ctx.exit(ExitCode.FAILED)
    # Not found, as kubectl says of an object it cannot find: no stream knows the item (design: Exit codes).
    unknown = bool(rows) and all(row["state"] == "unknown" for row in rows)
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        ctx.exit(ExitCode.FAILED if unknown else ExitCode.OK)
    asked = f"{candidate.package_name}=={candidate.package_version} ({config.redact_url(candidate.index_url)})"
    click.echo(_fit(asked, 100))
    width = max(len(row["stream"]) for row in rows) if rows else 0
    for row in rows:
        details = ", ".join(
            f"{key}={value}"
            for key, value in row.items()
            if key not in ("stream", "kind", "state", "jobs") and value is not None
        )
        _echo(f"  {row['stream'].ljust(width)}  {row['state']}{': ' + details if details else ''}")
        for job in row["jobs"]:
            said = ", ".join(f"{key}={job[key]}" for key in ("attempt", "state", "memory", "deadline") if job[key])
            _echo(f"  {''.ljust(width)}    job {job['name']}: {said}")
    if unknown:
        ctx.exit(ExitCode.FAILED)
