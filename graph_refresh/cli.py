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
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import click

from graph_refresh import __version__, config, listing, options, output, runtime, secrets
from graph_refresh.config import Settings
from graph_refresh.errors import ConfigError, GraphRefreshError, Interrupted, advised
from graph_refresh.items import ANALYZER, INDEX_URL_RULE, KINDS, SOLVER
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


# --- options every command takes, before or after its name (README: Operating graph-refresh) ---------------------
#
# ``--quiet`` is a setting (options.OPTIONS); ``--kubeconfig`` and ``--context`` say where this shell's
# credentials are, as kubectl's do, and have no variable of their own (KUBECONFIG is kubectl's, read where the
# kubeconfig is loaded). Each is an option of the main command; a command or group below it takes them too, and
# what it is given there lands in the main command's parameters, which every command builds its settings from.

SHELL_OPTIONS = ("kubeconfig", "context")  # the main command's options that are no setting of options.OPTIONS
KUBECONFIG_HELP = "The kubeconfig file to use, as kubectl's --kubeconfig (default: KUBECONFIG, else ~/.kube/config)."
CONTEXT_HELP = "The kubeconfig context to use, as kubectl's --context (default: the kubeconfig's current context)."


def _kubeconfig_option(**extra: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option(
        "--kubeconfig",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        metavar="PATH",
        help=KUBECONFIG_HELP,
        **extra,
    )


def _context_option(**extra: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option("--context", metavar="NAME", help=CONTEXT_HELP, **extra)


def _to_root(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """A shell option given after a command's name: its value as the main command's."""
    if value is not None and value is not False and param.name is not None:
        ctx.find_root().params[param.name] = value
    return value


def _anywhere(function: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a command or group below the main command with ``--quiet``, ``--kubeconfig`` and ``--context``."""
    quiet = click.option(
        "--quiet",
        is_flag=True,
        expose_value=False,
        callback=_to_root,
        help="Only warnings and errors, as the main command's --quiet (THOTH_GRAPH_REFRESH_QUIET).",
    )
    for option in (
        _context_option(expose_value=False, callback=_to_root),
        _kubeconfig_option(expose_value=False, callback=_to_root),
        quiet,
    ):
        function = option(function)
    return function


@click.group(
    cls=_Group,
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@options.with_options
@_kubeconfig_option()
@_context_option()
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
@_anywhere
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
@_anywhere
def ledger_group() -> None:
    """Read or change the failure ledger (ConfigMap graph-refresh-ledger in THOTH_MIDDLETIER_NAMESPACE).

    It uses the run's cluster settings (KUBECONFIG or the service account, THOTH_MIDDLETIER_NAMESPACE).
    """


def _connect(ctx: click.Context, settings: Settings) -> kube.Cluster:
    from graph_refresh.refresh import connect

    return connect(settings, _externals(ctx))


def _now(ctx: click.Context) -> float:
    return _externals(ctx).now()


def _output_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a reading command with ``-o/--output`` and its alias ``--json`` (``_output`` reads them)."""
    function = click.option("--json", "as_json", is_flag=True, help="The same as -o json.")(function)
    return click.option(
        "-o",
        "--output",
        type=click.Choice(listing.OUTPUTS),
        help="How to print: table (the default), wide (more columns, nothing cut), json, yaml, or name (one "
        "name a line).",
    )(function)


def _output(output: str | None, as_json: bool) -> str:
    """The output format ``-o`` and ``--json`` ask for together (a usage error when they disagree)."""
    if as_json and output not in (None, "json"):
        raise click.UsageError(f"--json is -o json: give -o {output} or --json, not both")
    return "json" if as_json else output or "table"


def _echo_rows(rows: Sequence[dict[str, Any]], output: str, *, jobs: bool = False) -> bool:
    """``rows`` on standard output as ``-o json``, ``yaml`` or ``name`` asks (``listing``; ``jobs``: the names are
    the rows' Jobs); False, having printed nothing, for a table, which the caller lays out."""
    if output in ("json", "yaml"):
        click.echo(listing.serialized(rows, output))
    elif output == "name":
        for name in listing.names(rows, jobs=jobs):
            click.echo(name)
    else:
        return False
    return True


LEDGER_STATE_HELP = "Only the entries in this state (the first words of STATE): " + ", ".join(listing.LEDGER_STATES)


@ledger_group.command("show")
@_output_options
@click.option("--package", metavar="PKG", help="Only the entries of this package (names compared in PEP 503 form).")
@click.option("--solver", metavar="NAME", help="Only the entries of this solver.")
@click.option("--analyzer", is_flag=True, help="Only the package-analyzer's entries.")
@click.option("--state", type=click.Choice(tuple(listing.LEDGER_STATES)), help=LEDGER_STATE_HELP)
@_anywhere
@click.pass_context
def ledger_show(
    ctx: click.Context,
    output: str | None,
    as_json: bool,
    package: str | None,
    solver: str | None,
    analyzer: bool,
    state: str | None,
) -> None:
    """List the ledger's entries with what each means for its item's next run; exit 1 when a filter matches
    none."""
    from graph_refresh.retry import ledger_store
    from graph_refresh.retry.codec import LEDGER_NAME, encode
    from graph_refresh.retry.policy import entry_state
    from graph_refresh.waiting import state as lane_state
    from graph_refresh.waiting.state import LaneState

    shown_as = _output(output, as_json)
    if solver and analyzer:
        raise click.UsageError("--solver and --analyzer exclude each other")
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
    every = []
    for key, entry in sorted(ledger.entries.items(), key=lambda pair: (pair[1].failed_at, pair[0])):
        said, until = entry_state(entry, now, policy)
        value = json.loads(encode(entry))
        row = {"key": key, **value, "state": said, "until": None if until is None else format_time(until)}
        every.append({**row, "settings": under})
    rows = [row for row in every if _shown_entry(row, package, solver, analyzer, state)]
    if not rows and (package or solver or analyzer or state):  # nothing matched is no answer (design: Exit codes)
        solvers = sorted({row["solver"] for row in every if row.get("solver")})
        asked = (("--package", package), ("--solver", solver), ("--analyzer", analyzer), ("--state", state))
        raise NotFound(_no_entry(f"{LEDGER_NAME} in namespace {namespace!r}", asked, len(every), solver, solvers))
    if _echo_rows(rows, shown_as):
        return
    if not rows:
        click.echo(f"The ledger {LEDGER_NAME} in namespace {namespace!r} has no entries.")
        return
    click.echo(wrapped(tamed(f"States under {under}."), columns(sys.stderr)), err=True)
    table, shrink = listing.ledger_table(rows, wide=shown_as == "wide")
    _echo_table(table, shrink=shrink)


def _shown_entry(
    row: dict[str, Any], package: str | None, solver: str | None, analyzer: bool, state: str | None
) -> bool:
    """Whether ``ledger show``'s filters keep the entry of ``row``."""
    from graph_refresh.items import normalize_name

    return (
        (package is None or normalize_name(row["package"]) == normalize_name(package.strip()))
        and (solver is None or row.get("solver") == solver)
        and (not analyzer or row["kind"] == ANALYZER)
        and (state is None or listing.ledger_state_word(row["state"]) == state)
    )


def _no_entry(
    ledger: str, asked: Sequence[tuple[str, str | bool | None]], entries: int, solver: str | None, solvers: list[str]
) -> str:
    """Why a ledger command found nothing, in one line: what was asked, how many entries the ledger holds and a
    hint (the solver meant, when one was misspelt)."""
    if not entries:
        return f"the ledger {ledger} has no entries"
    flags = " ".join(flag if value is True else f"{flag} {value}" for flag, value in asked if value)
    return f"no entry of the ledger {ledger} matches {flags} ({_entries(entries)}; {_solver_hint(solver, solvers)})"


def _solver_hint(solver: str | None, solvers: list[str]) -> str:
    """What to do when nothing matched: the closest solver to a misspelt ``solver``, else where to look."""
    if solver and solver not in solvers:
        close = difflib.get_close_matches(solver, solvers, n=1)
        return f"did you mean --solver {close[0]}?" if close else f"its solvers: {', '.join(solvers) or 'none'}"
    return "ledger show lists them"


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


def _echo_table(table: list[list[str]], *, shrink: Sequence[Collection[int]] = ()) -> None:
    """Print ``table`` (its first row the header) fitted to the width of standard output (``listing.fitted``)."""
    for line in listing.fitted(table, columns(sys.stdout), shrink=shrink):
        click.echo(line)


def _echo(message: str) -> None:
    """A line for standard output, made safe for a terminal and wrapped to its width."""
    click.echo(wrapped(tamed(message), columns(sys.stdout)))


@ledger_group.command("forget")
@click.argument("target", required=False, metavar="[ITEM-KEY | PKG==VER | PKG]")
@click.option("--index", "index_url", help="Only the entries of this index URL (with PKG==VER or PKG).")
@click.option("--solver", "solver", help="Only the entries of this solver (alone: all of its entries).")
@click.option("--analyzer", is_flag=True, help="Only the package-analyzer's entries (alone: all of them).")
@click.option("--all", "everything", is_flag=True, help="Every entry.")
@_anywhere
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
    solvers = sorted({entry.item.solver for entry in found.entries.values() if entry.item.solver})
    hint = _solver_hint(solver, solvers)
    return f"no entry of the ledger {ledger} matches {asked} ({_entries(len(found.entries))}; {hint})"


@main.command("request")
@click.argument("target", required=False, metavar="PKG==VER")
@click.option("--index", "index_url", help="Package index URL of the version (default: https://pypi.org/simple).")
@click.option("--by", help="Who asks (free text, kept with the request).")
@click.option("--cancel", is_flag=True, help="Remove the request for PKG==VER (with --index), or the one of key KEY.")
@click.option("--list", "listing_asked", is_flag=True, help="List the requests instead of adding one.")
@_output_options
@_anywhere
@click.pass_context
def request(
    ctx: click.Context,
    target: str | None,
    index_url: str | None,
    by: str | None,
    cancel: bool,
    listing_asked: bool,
    output: str | None,
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

    if listing_asked and (target or index_url or by or cancel):
        raise click.UsageError("--list lists the requests: give it without PKG==VER, --index, --by or --cancel")
    if (as_json or output) and not listing_asked:
        raise click.UsageError(f"{'--json' if as_json else '-o'} goes with --list")
    shown_as = _output(output, as_json)
    if cancel and by:
        raise click.UsageError("--cancel takes PKG==VER (with --index) or a request's KEY, not --by")
    if not listing_asked and not target:
        if cancel:
            raise click.UsageError("say what to cancel: PKG==VER (with --index) or a request's KEY")
        raise click.UsageError("say what to request as PKG==VER (for example flask==1.1.2), or --list")
    settings = _settings(ctx, "middletier" if listing_asked or cancel else "request")
    namespace = settings.cluster.middletier_namespace
    assert namespace is not None, "checked by build_settings"
    now = math.floor(_now(ctx))
    try:
        cluster = _connect(ctx, settings)
        if listing_asked:
            _list_requests(cluster, requests_store.read(cluster, namespace), settings, now, shown_as)
        elif cancel:
            assert target is not None
            _cancel_request(ctx, cluster, namespace, target, index_url)
        else:
            assert target is not None
            _add_request(ctx, cluster, settings, _requirement(target), index_url, by, now)
    except GraphRefreshError as error:
        what = "list the requests" if listing_asked else "cancel the request" if cancel else "file the request"
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
        if normal_index(index) is None:  # no deployment may trust it
            raise click.UsageError(f"'{one_line(config.redact_url(index))}' is not {INDEX_URL_RULE}")
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


def _list_requests(cluster: Any, read: Any, settings: Settings, now: float, shown_as: str) -> None:
    """The requests in the output format ``shown_as`` (``listing``), their text from outside escaped, each open
    one with its closure per solver (``closure``: None when the graph, the Templates or the Jobs could not be
    read, which a warning says)."""
    from graph_refresh.refresh import request_closures
    from graph_refresh.waiting.lanes import closure_line
    from graph_refresh.waiting.requests import REQUESTS_NAME, expired

    ttl = settings.lanes.request_ttl_seconds
    closures: dict[str, Any] = {}
    if read.requests:
        try:
            closures = request_closures(settings, cluster, read, now)
        except GraphRefreshError as error:
            logger.warning("The requests' closures are not shown: %s", error)
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
                "closure": closures.get(r.key),
            }
        )
    for u in read.unreadable:
        rows.append({"key": one_line(u.key), "state": f"unreadable: {one_line(u.reason)}"})
    if _echo_rows(rows, shown_as):
        return
    if not rows:
        click.echo(f"No requests in {REQUESTS_NAME} (namespace {settings.cluster.middletier_namespace!r}).")
    else:
        table, shrink = listing.requests_table(rows, wide=shown_as == "wide")
        _echo_table(table, shrink=shrink)
        for row in rows:
            for solver, counts in (row.get("closure") or {}).items():
                _echo(f"  {row['key']}: {closure_line(solver, counts)}")  # indented: not a row of the table


@main.command("explain")
@click.argument("requirement", metavar="PKG==VER", required=False)
@click.option("--index", "index_url", help="Package index URL of the version (default: https://pypi.org/simple).")
@click.option(
    "--accuracy",
    is_flag=True,
    help="Instead of an item: how the solved windows the recent runs gave held, per lane (docs/eta.md).",
)
@_output_options
@_anywhere
@click.pass_context
def explain_command(
    ctx: click.Context,
    requirement: str | None,
    index_url: str | None,
    accuracy: bool,
    output: str | None,
    as_json: bool,
) -> None:
    """Say where PKG==VER stands for every solver and the analyzer, and when it is likely to be scheduled and
    solved (windows: p10 to p90); list its Jobs (-o wide: as a table; -o name: as kubectl names them). Exit 1
    when the graph does not know it. With --accuracy, how those windows held.

    It reads the graph, the Templates and (with THOTH_MIDDLETIER_NAMESPACE) the item's Jobs, the ledger and the
    requests, as a run would; it never writes. -o json and -o yaml give one object per solver and the analyzer.
    """
    from graph_refresh.items import Candidate, normalize_name
    from graph_refresh.refresh import explain_item
    from graph_refresh.waiting.requests import DEFAULT_INDEX

    shown_as = _output(output, as_json)
    if accuracy:
        if requirement is not None or index_url is not None:
            raise click.UsageError("--accuracy takes no PKG==VER and no --index: it tells how every window held")
        _explain_accuracy(ctx, shown_as)
        return
    if requirement is None:
        raise click.UsageError("Missing argument 'PKG==VER' (or --accuracy)")
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
    if not _echo_rows(rows, shown_as, jobs=True):
        asked = f"{candidate.package_name}=={candidate.package_version} ({config.redact_url(candidate.index_url)})"
        click.echo(cell(asked, columns(sys.stdout)))
        for line in listing.explain_lines(rows, jobs=shown_as == "table"):
            _echo(line)
        table, shrink = listing.jobs_table(rows)
        if shown_as == "wide" and len(table) > 1:
            click.echo()
            _echo_table(table, shrink=shrink)
    if unknown:
        ctx.exit(ExitCode.FAILED)


def _explain_accuracy(ctx: click.Context, shown_as: str) -> None:
    """``explain --accuracy``: per lane, then over all, how the kept scores held; exit 1 when the ledger cannot
    be read."""
    from graph_refresh.refresh import window_accuracy

    if shown_as == "name":
        raise click.UsageError("-o name: --accuracy has no names; give -o table, wide, json or yaml")
    settings = _settings(ctx, "explain")
    try:
        rows = window_accuracy(settings, _externals(ctx))
    except GraphRefreshError as error:
        logger.error("Could not read how the windows held: %s", error)
        ctx.exit(ExitCode.FAILED)
    if not _echo_rows(rows, shown_as):
        _echo_table(listing.accuracy_table(rows), shrink=[])


PLUGIN_NAME = "kubectl graph-refresh"  # kubectl and oc run the executable kubectl-graph_refresh for it


def plugin() -> None:
    """The kubectl/oc plugin's entry point (README: Operating graph-refresh): the main command, its usage lines
    naming it as it was typed."""
    main(prog_name=PLUGIN_NAME)
