"""Command line: parse flags and environment variables, build settings, make one call into the core,
and decide the exit code (design: Exit codes) — the only place that does.

The options themselves are declared once, in :mod:`graph_refresh.options`; logging, signals and progress
live in :mod:`graph_refresh.runtime`.
"""

from __future__ import annotations

import enum
import json
import logging
import math
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

if TYPE_CHECKING:
    from graph_refresh import kube
    from graph_refresh.refresh import Externals

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


def _settings(ctx: click.Context, purpose: Literal["run", "middletier", "explain"]) -> Settings:
    """Logging set up, then the settings of the root command's parameters for ``purpose`` (a usage error, exit 2,
    when they cannot work); ``--quiet`` applies to every command."""
    try:
        runtime.init_logging()
        settings = build_settings(ctx.find_root().params, purpose=purpose)
    except ConfigError as error:
        raise ConfigFailure(str(error)) from error
    if settings.metrics.quiet:
        runtime.quiet_logging()
    return settings


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
    if settings.plan.output_dir is not None and not settings.plan.dry_run:
        logger.warning("THOTH_GRAPH_REFRESH_OUTPUT_DIR (--output-dir) is for a dry run: no manifests are written")
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
    seams = _externals(ctx)  # the core and its clients load only for a run, not for --help
    with runtime.handled_signals() as signals:
        code = _run_once(seams, settings, signals)
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


def _run_once(seams: Externals, settings: Settings, signals: runtime.Signals) -> int:
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
        mode=mode, every=seams.progress_every, clock=seams.clock, enabled=not settings.metrics.quiet
    )
    started = time.monotonic()
    progress.start()
    try:
        refresh.run(
            settings=settings,
            report=report,
            seams=seams,
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
    try:
        runtime.init_logging()
    except ConfigError as error:
        raise ConfigFailure(str(error)) from error
    if params["quiet"]:
        runtime.quiet_logging()
    path: Path = import_path or params["sqlite_path"]
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
    from graph_refresh import kube

    connect = _externals(ctx).connect
    return connect() if connect is not None else kube.Cluster(settings.cluster)


def _now(ctx: click.Context) -> float:
    return _externals(ctx).now()


@ledger_group.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print the entries as a JSON list instead of a table.")
@click.pass_context
def ledger_show(ctx: click.Context, as_json: bool) -> None:
    """List the ledger's entries with what each means for its item's next run."""
    from graph_refresh.retry import store as ledger_store
    from graph_refresh.retry.codec import LEDGER_NAME, encode, format_time
    from graph_refresh.retry.policy import Policy, entry_state

    settings = _settings(ctx, "middletier")
    namespace = settings.cluster.middletier_namespace
    assert namespace is not None, "checked by build_settings"
    try:
        ledger = ledger_store.read(_connect(ctx, settings), namespace, now=math.floor(_now(ctx)), strict=True)
    except GraphRefreshError as error:
        logger.error("Could not read the ledger %s in namespace %r: %s", LEDGER_NAME, namespace, advised(error))
        ctx.exit(ExitCode.FAILED)
    now, policy = math.floor(_now(ctx)), Policy.of(settings.retry)
    rows = []
    for key, entry in sorted(ledger.entries.items(), key=lambda pair: (pair[1].failed_at, pair[0])):
        state, until = entry_state(entry, now, policy)
        value = json.loads(encode(entry))
        rows.append({"key": key, **value, "state": state, "until": None if until is None else format_time(until)})
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
    from graph_refresh.retry import store as ledger_store
    from graph_refresh.retry.codec import LEDGER_NAME
    from graph_refresh.retry.policy import forget_matcher

    try:
        matches = forget_matcher(target, index=index_url, solver=solver, analyzer=analyzer, everything=everything)
    except ValueError as error:
        raise click.UsageError(str(error)) from error
    settings = _settings(ctx, "middletier")
    namespace = settings.cluster.middletier_namespace
    assert namespace is not None, "checked by build_settings"
    try:
        changed, unreadable = ledger_store.forget(_connect(ctx, settings), namespace, matches)
    except GraphRefreshError as error:
        logger.error("Could not change the ledger %s in namespace %r: %s", LEDGER_NAME, namespace, advised(error))
        ctx.exit(ExitCode.FAILED)
    for entry in changed[:20]:
        item = entry.item
        _echo(f"forgot {entry.key}: {item.solver or item.kind} {item.package}=={item.version} {item.index}")
    more = f" ({len(changed) - 20} not listed)" if len(changed) > 20 else ""
    _echo(f"{plural(len(changed), 'entry')} of {LEDGER_NAME} in namespace {namespace!r} forgotten{more}.")
    if unreadable:
        said = (
            "1 unreadable value was left as it is; the next real run drops it"
            if unreadable == 1
            else f"{unreadable} unreadable values were left as they are; the next real run drops them"
        )
        logger.warning("%s", said)


@main.command("request")
@click.argument("requirement", required=False, metavar="PKG==VER")
@click.option("--index", "index_url", help="Package index URL of the version (default: https://pypi.org/simple).")
@click.option("--by", help="Who asks (free text, kept with the request).")
@click.option("--list", "listing", is_flag=True, help="List the open requests instead of adding one.")
@click.option("--json", "as_json", is_flag=True, help="With --list: print a JSON list.")
@click.pass_context
def request(
    ctx: click.Context, requirement: str | None, index_url: str | None, by: str | None, listing: bool, as_json: bool
) -> None:
    """Ask for PKG==VER to be solved by every solver and analyzed, ahead of the backlog, by the next run.

    The request is kept in the ConfigMap graph-refresh-requests in THOTH_MIDDLETIER_NAMESPACE until the graph
    has the version solved and analyzed everywhere (or --request-ttl passes). Asking again changes nothing.
    """
    from graph_refresh.retry.codec import format_time
    from graph_refresh.waiting import store as requests_store
    from graph_refresh.waiting.requests import REQUESTS_NAME, encode, expired, new_request

    if listing and (requirement or index_url or by):
        raise click.UsageError("--list lists the requests: give it without PKG==VER, --index or --by")
    if as_json and not listing:
        raise click.UsageError("--json goes with --list")
    if not listing:
        package, separator, version = (requirement or "").partition("==")
        if not separator or not package.strip() or not version.strip():
            raise click.UsageError("say what to request as PKG==VER (for example flask==1.1.2), or --list")
    settings = _settings(ctx, "middletier")
    namespace = settings.cluster.middletier_namespace
    assert namespace is not None, "checked by build_settings"
    now = math.floor(_now(ctx))
    try:
        cluster = _connect(ctx, settings)
        if listing:
            requests = requests_store.read(cluster, namespace, now=now).requests
        else:
            try:
                wanted = new_request(package, version, index_url, now=now, by=by)
            except ValueError as error:
                raise click.UsageError(str(error)) from error

            def add(current: requests_store.Requests) -> dict[str, str] | None:
                if any(r.candidate == wanted.candidate for r in current.requests):
                    return None
                return {**current.data, wanted.key: encode(wanted)}

            current = requests_store.change(cluster, namespace, add)
    except GraphRefreshError as error:
        logger.error(
            "Could not %s the requests %s in namespace %r: %s",
            "read" if listing else "change",
            REQUESTS_NAME,
            namespace,
            error,
        )
        ctx.exit(ExitCode.FAILED)
    if not listing:
        known = next((r for r in current.requests if r.candidate == wanted.candidate), None)
        if known is not None:
            click.echo(
                f"{wanted.package}=={wanted.version} was already requested at {format_time(known.requested_at)}"
                f"{f' by {known.by}' if known.by else ''}: nothing changed."
            )
        else:
            click.echo(
                f"Requested {wanted.package}=={wanted.version} ({config.redact_url(wanted.candidate.index_url)}): "
                "the next run schedules it for every solver that lacks it, ahead of the backlog."
            )
        return
    ttl = settings.lanes.request_ttl_seconds
    rows = [
        {
            "key": r.key,
            "package": r.package,
            "version": r.version,
            "index": config.redact_url(r.candidate.index_url),
            "requested_at": format_time(r.requested_at),
            "by": r.by,
            "age_seconds": max(0, int(now - r.requested_at)),
            "state": "expired: the next run drops it" if expired(r, now, ttl) else "open",
            "expires_at": format_time(r.requested_at + ttl),
        }
        for r in requests
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
    elif not rows:
        click.echo(f"No open requests in {REQUESTS_NAME} (namespace {namespace!r}).")
    else:
        table = [["PACKAGE", "REQUESTED", "BY", "STATE"]]
        table += [
            [
                _fit(f"{r['package']}=={r['version']}", 28),
                str(r["requested_at"]),
                _fit(str(r["by"] or "-"), 16),
                f"{r['state']} (until {r['expires_at']})" if r["state"] == "open" else str(r["state"]),
            ]
            for r in rows
        ]
        widths = [max(len(line[i]) for line in table) for i in range(3)]
        for line in table:
            click.echo("  ".join([*(cell.ljust(width) for cell, width in zip(line, widths, strict=False)), line[3]]))


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
    seams = _externals(ctx)
    try:
        rows = explain_item(settings, seams, candidate)
    except GraphRefreshError as error:
        logger.error("Could not explain %s==%s: %s", candidate.package_name, candidate.package_version, error)
        ctx.exit(ExitCode.FAILED)
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    asked = f"{candidate.package_name}=={candidate.package_version} ({config.redact_url(candidate.index_url)})"
    click.echo(_fit(asked, 100))
    width = max(len(row["stream"]) for row in rows) if rows else 0
    for row in rows:
        details = ", ".join(
            f"{key}={value}"
            for key, value in row.items()
            if key not in ("stream", "kind", "state") and value is not None
        )
        click.echo(f"  {row['stream'].ljust(width)}  {row['state']}{': ' + details if details else ''}")
