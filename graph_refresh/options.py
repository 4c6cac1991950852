"""Every setting's flag and environment variable, declared once (design: A run).

:data:`OPTIONS` has one row per setting: where it lands in :class:`~graph_refresh.config.Settings`, its
flag, its environment variable and how its value is read. The default comes from the settings field and
the help text is the field's docstring in ``config.py``, so neither is written twice. The rows drive the
click options, :func:`build_settings`, the flag/env parity test and the README's configuration check.

Values are read strictly: whole numbers in ASCII digits within a range that can work (a Job TTL must fit
the API's int32, a worker count must not exhaust the machine), URLs with a scheme and a host, booleans
that are not blank. A value that cannot work is a usage error (exit 2) naming the flag and the variable.
Secrets are registered with :mod:`graph_refresh.secrets` as they are read, before any message could
show them.
"""

from __future__ import annotations

import ast
import difflib
import functools
import inspect
import math
import os
import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import click

from graph_refresh import config, secrets
from graph_refresh.config import Settings
from graph_refresh.errors import ConfigError
from graph_refresh.items import INDEX_URL_RULE
from graph_refresh.quantity import Cap
from graph_refresh.text import shown

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
INT32_MAX = 2**31 - 1  # the API's int32 fields (ttlSecondsAfterFinished, activeDeadlineSeconds)
MAX_WORKERS = 64  # concurrent creates: beyond this the API server's own limits dominate
MAX_BURST = 10_000
MAX_REQUEST_DEPTH = 100  # levels below a requested version: a closure is bounded by 2,000 versions long before
MAX_STORE_TIMEOUT_SECONDS = 3_600  # an hour-long Dgraph query would outlive the hourly CronJob's run
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_ASCII_INT = re.compile(r"[+]?[0-9]+")
_ASCII_FLOAT = re.compile(r"[+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?")
_SHELL_WORD = re.compile(r"[^\s'\"\\$`;&|<>()]+")  # a value a shell reads as it is written (else it is quoted)
_HOST_PORT = re.compile(r"([A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?):([0-9]{1,5})")


class Number(click.ParamType[Any]):
    """A whole or decimal number written in ASCII digits, within ``[low, high]``.

    (Python's int() also reads other scripts' digits, such as the full-width "１２".)
    """

    def __init__(self, low: float, high: float, *, whole: bool = True) -> None:
        self.low, self.high, self.whole = low, high, whole
        self.name = "integer" if whole else "number"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        text = value.strip()
        if not (_ASCII_INT if self.whole else _ASCII_FLOAT).fullmatch(text):
            kind = "a whole number" if self.whole else "a number"
            self.fail(f"{shown(value)} is not {kind} written in ASCII digits", param, ctx)
        number = int(text) if self.whole else float(text)
        if not (math.isfinite(number) and self.low <= number <= self.high):
            self.fail(f"{shown(value)} is not in the range {_plain(self.low)} to {_plain(self.high)}", param, ctx)
        return number


def _plain(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)


class StrictBool(click.types.BoolParamType):
    """click's boolean, except that a blank value is an error rather than false.

    (A ConfigMap value of " " must not quietly turn ``KUBERNETES_VERIFY_TLS`` off; an empty variable is
    unset and keeps the default.)
    """

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> bool:
        state = None if isinstance(value, str) and not value.strip() else self.str_to_bool(value)
        if state is None:
            self.fail(f"{shown(value)} is not a boolean; use 1 or 0 (or true/false, yes/no, on/off)", param, ctx)
        return state


Check = Callable[[click.Context, click.Parameter, Any], Any]


def _empty_is_none(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    return value or None


def _namespace(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value and not _DNS_LABEL.fullmatch(value):
        raise click.BadParameter(f"{shown(value)} is not a namespace name (a DNS-1123 label)")
    return value or None


def _secret(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    secrets.register(value)
    return value or None


def _checked_url(value: str) -> str:
    """An http(s) URL with a host; its password is registered as a secret before anything is said of it."""
    secrets.register(config.url_password(value))
    try:
        parts = urlsplit(value)
        secrets.register(parts.password)
        port = parts.port
    except ValueError:  # a port that is not a number or out of range (its message quotes the URL's parts)
        raise click.BadParameter(
            f"{shown(secrets.mask(config.redact_url(value)))} is not a usable URL (its host or port cannot be read)"
        ) from None
    if parts.scheme not in ("http", "https") or not parts.hostname or re.search(r"\s", value):
        raise click.BadParameter(
            f"{shown(secrets.mask(config.redact_url(value)))} is not an http(s) URL with a host and no whitespace"
        )
    if port == 0:
        raise click.BadParameter(f"{shown(secrets.mask(config.redact_url(value)))}: the port must be 1 to 65535")
    return value


def _url(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """An http(s) URL; empty means the option's default."""
    if not value:
        return param.default if isinstance(param.default, str) else None
    return _checked_url(value)


def _pushgateway(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A URL, or ``host:port`` as Thoth's ConfigMaps have it (``pushgateway:80``): http is then assumed."""
    if not value:
        return None
    if "://" not in value:
        match = _HOST_PORT.fullmatch(value)
        if not match or not 0 < int(match.group(3)) < 65536:
            raise click.BadParameter(
                f"{shown(secrets.mask(value))} is neither an http(s) URL nor host:port with a port from 1 to 65535"
            )
        value = f"http://{value}"
    return _checked_url(value)


def _indexes(ctx: click.Context, param: click.Parameter, value: str | tuple[str, ...] | None) -> tuple[str, ...]:
    """Comma-separated http(s) index URLs; each must be one a Job may fetch from (no ``$``, quotes, spaces)."""
    from graph_refresh.items import normal_index

    if not value:
        return ()
    urls = []
    for url in (value if isinstance(value, str) else ",".join(value)).split(","):
        if not url.strip():
            continue
        secrets.register(config.url_password(url.strip()))
        if normal_index(url) is None:
            raise click.BadParameter(f"{secrets.mask(config.redact_url(url.strip()))!r} is not {INDEX_URL_RULE}")
        urls.append(url.strip())
    return tuple(urls)


def _log_level(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    return value.upper() if value else None


def _quantity(ctx: click.Context, param: click.Parameter, value: str | Cap) -> Cap:
    if isinstance(value, Cap):  # the default
        return value
    try:
        return Cap.parse(value.strip())
    except ValueError:
        raise click.BadParameter(
            f"{shown(value)} is not a positive Kubernetes memory quantity (such as 8Gi or 1500Mi)"
        ) from None


def check_output_path(path: Path, *, folder: bool, variable: str) -> None:
    """A file (or, with ``folder``, a folder) a run writes must be writable now, before any work is done: a
    file's folder must exist (a mistyped path creates nothing); a folder must exist or be creatable just below
    one that does; ``-`` is standard output."""
    if str(path) == "-" and not folder:
        return
    if not folder and path.is_dir():
        raise ConfigError(f"{described(variable)}: {str(path)!r} is a folder, not a file")
    parent = path.absolute() if folder else path.absolute().parent
    if not folder and not parent.exists():
        raise ConfigError(f"{described(variable)}: {str(path)!r} cannot be written: no folder {str(parent)!r}")
    if not parent.exists():
        parent = parent.parent  # created when the first file is written, only when its own parent exists
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(
            f"{described(variable)}: {str(path)!r} cannot be written: {str(parent)!r} is not a writable folder"
        )


@dataclass(frozen=True)
class Option:
    """One setting as the command line knows it."""

    setting: str
    """Where the value lands: ``<group>.<field>`` of :class:`Settings`."""
    flag: str
    """The flag, or ``--on/--off`` for a boolean."""
    env: str
    """The environment variable (the 2019 name where one existed)."""
    type: click.ParamType[Any] | None = None
    check: Check | None = None

    @property
    def group(self) -> str:
        return self.setting.partition(".")[0]

    @property
    def name(self) -> str:
        """The click parameter name: the settings field's name."""
        return self.setting.partition(".")[2]


def _count(high: int = INT32_MAX, low: int = 0) -> Number:
    return Number(low, high)


OPTIONS: tuple[Option, ...] = (
    Option("cluster.infra_namespace", "--infra-namespace", "THOTH_INFRA_NAMESPACE", check=_namespace),
    Option("cluster.middletier_namespace", "--middletier-namespace", "THOTH_MIDDLETIER_NAMESPACE", check=_namespace),
    Option("cluster.verify_tls", "--verify-tls/--no-verify-tls", "KUBERNETES_VERIFY_TLS"),
    Option(
        "cluster.template_dir",
        "--template-dir",
        "THOTH_GRAPH_REFRESH_TEMPLATE_DIR",
        click.Path(exists=True, file_okay=False, path_type=Path),
        _empty_is_none,
    ),
    Option("store.graph_service_host", "--graph-service-host", "GRAPH_SERVICE_HOST", check=_empty_is_none),
    Option("store.graph_tls_path", "--graph-tls-path", "GRAPH_TLS_PATH", click.Path(path_type=Path), _empty_is_none),
    Option("store.dgraph_user", "--dgraph-user", "GRAPH_REFRESH_DGRAPH_USER", check=_empty_is_none),
    Option("store.dgraph_password", "--dgraph-password", "GRAPH_REFRESH_DGRAPH_PASSWORD", check=_secret),
    Option(
        "store.timeout_seconds",
        "--dgraph-timeout",
        "GRAPH_REFRESH_DGRAPH_TIMEOUT",
        _count(MAX_STORE_TIMEOUT_SECONDS, 1),
    ),
    Option(
        "store.sqlite_path", "--sqlite-path", "GRAPH_REFRESH_SQLITE_PATH", click.Path(dir_okay=False, path_type=Path)
    ),
    Option("plan.eager_stop", "--eager-stop", "THOTH_GRAPH_REFRESH_EAGER_STOP", _count()),
    Option("plan.no_solvers", "--no-solvers/--solvers", "GRAPH_REFRESH_NO_SOLVERS"),
    Option(
        "plan.no_package_analyzers", "--no-package-analyzers/--package-analyzers", "GRAPH_REFRESH_NO_PACKAGE_ANALYZERS"
    ),
    Option("plan.solver_output", "--solver-output", "THOTH_SOLVER_OUTPUT", check=_url),
    Option("plan.package_analyzer_output", "--package-analyzer-output", "THOTH_PACKAGE_ANALYZER_OUTPUT", check=_url),
    Option("plan.subgraph_check_api", "--subgraph-check-api", "THOTH_SUBGRAPH_CHECK_API", check=_url),
    Option(
        "plan.log_solver",
        "--log-solver",
        "THOTH_LOG_SOLVER",
        click.Choice(LOG_LEVELS, case_sensitive=False),
        _log_level,
    ),
    Option("metrics.pushgateway_url", "--pushgateway-url", "PROMETHEUS_PUSHGATEWAY_URL", check=_pushgateway),
    Option("metrics.deployment_name", "--deployment-name", "NAMESPACE"),
    Option("plan.dry_run", "--dry-run/--no-dry-run", "THOTH_DRY_RUN"),
    Option("plan.server_dry_run", "--server-dry-run/--no-server-dry-run", "THOTH_GRAPH_REFRESH_SERVER_DRY_RUN"),
    Option(
        "plan.output_dir",
        "--output-dir",
        "THOTH_GRAPH_REFRESH_OUTPUT_DIR",
        click.Path(file_okay=False, path_type=Path),
        _empty_is_none,
    ),
    Option(
        "metrics.report_path",
        "--report",
        "THOTH_GRAPH_REFRESH_REPORT",
        click.Path(dir_okay=False, allow_dash=True, path_type=Path),
        _empty_is_none,
    ),
    Option("metrics.quiet", "--quiet/--no-quiet", "THOTH_GRAPH_REFRESH_QUIET"),
    Option("plan.max_in_flight", "--max-in-flight", "THOTH_GRAPH_REFRESH_MAX_IN_FLIGHT", _count()),
    Option("cluster.qps", "--qps", "THOTH_GRAPH_REFRESH_QPS", Number(0, 100_000, whole=False)),
    Option("cluster.burst", "--burst", "THOTH_GRAPH_REFRESH_BURST", _count(MAX_BURST, 1)),
    Option("cluster.workers", "--workers", "THOTH_GRAPH_REFRESH_WORKERS", _count(MAX_WORKERS, 1)),
    Option("plan.job_ttl_seconds", "--job-ttl", "THOTH_GRAPH_REFRESH_JOB_TTL", _count()),
    Option("retry.max_memory", "--max-memory", "THOTH_GRAPH_REFRESH_MAX_MEMORY", check=_quantity),
    Option("retry.max_deadline_seconds", "--max-deadline", "THOTH_GRAPH_REFRESH_MAX_DEADLINE", _count(low=1)),
    Option("retry.retry_backoff_seconds", "--retry-backoff", "THOTH_GRAPH_REFRESH_RETRY_BACKOFF", _count()),
    Option("retry.max_attempts", "--max-attempts", "THOTH_GRAPH_REFRESH_MAX_ATTEMPTS", _count(1000)),
    Option("retry.quarantine_seconds", "--quarantine", "THOTH_GRAPH_REFRESH_QUARANTINE", _count()),
    Option("lanes.request_ttl_seconds", "--request-ttl", "THOTH_GRAPH_REFRESH_REQUEST_TTL", _count(low=1)),
    Option("lanes.request_depth", "--request-depth", "THOTH_GRAPH_REFRESH_REQUEST_DEPTH", _count(MAX_REQUEST_DEPTH)),
    Option("lanes.request_share", "--request-share", "THOTH_GRAPH_REFRESH_REQUEST_SHARE", Number(0, 1, whole=False)),
    Option("lanes.allowed_indexes", "--allowed-index", "THOTH_GRAPH_REFRESH_ALLOWED_INDEXES", check=_indexes),
    Option("lanes.fresh_share", "--fresh-share", "THOTH_GRAPH_REFRESH_FRESH_SHARE", Number(0, 1, whole=False)),
    Option("lanes.max_awaiting_sync", "--max-awaiting-sync", "THOTH_GRAPH_REFRESH_MAX_AWAITING_SYNC", _count()),
)


@functools.cache
def field_docs() -> dict[str, str]:
    """``<group>.<field>`` → the field's docstring in ``config.py``, joined into one line."""
    groups = {f.name: f.type if isinstance(f.type, str) else f.type.__name__ for f in fields(Settings)}
    docs: dict[str, dict[str, str]] = {}
    for node in ast.parse(inspect.getsource(config)).body:
        if not isinstance(node, ast.ClassDef):
            continue
        section = docs.setdefault(node.name, {})
        for statement, following in zip(node.body, node.body[1:], strict=False):
            if (
                isinstance(statement, ast.AnnAssign)
                and isinstance(statement.target, ast.Name)
                and isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)
            ):
                section[statement.target.id] = " ".join(following.value.value.split())
    return {f"{group}.{name}": text for group, cls in groups.items() for name, text in docs.get(cls, {}).items()}


def default_of(option: Option) -> Any:
    """The settings field's default."""
    section = {f.name: f for f in fields(Settings)}[option.group]
    factory = section.default_factory
    assert factory is not MISSING
    return getattr(factory(), option.name)


def click_option(option: Option) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The click option of one row: its variable and default shown in --help (a boolean's as 0 or 1)."""
    default = default_of(option)
    kwargs: dict[str, Any] = {"type": option.type, "callback": option.check}
    show_default: bool | str = default is not None
    if isinstance(default, bool):
        show_default, kwargs["type"] = ("1" if default else "0"), StrictBool()
    if default == ():  # a list of values, given comma-separated: none by default
        default, show_default = None, False
    return click.option(
        option.flag,
        option.name,
        envvar=option.env,
        show_envvar=True,
        default=default,
        show_default=show_default,
        help=field_docs()[option.setting],
        **kwargs,
    )


def with_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a click command with every option of :data:`OPTIONS`, in table order."""
    for option in reversed(OPTIONS):
        function = click_option(option)(function)
    return function


OUR_PREFIXES = ("THOTH_GRAPH_REFRESH_", "GRAPH_REFRESH_")  # variables with these names are ours to check
OTHER_VARIABLES = (  # read elsewhere: by the opt-in test against a live cluster (README: Development)
    "GRAPH_REFRESH_TEST_KUBECONFIG",
    "GRAPH_REFRESH_TEST_INFRA",
    "GRAPH_REFRESH_TEST_MIDDLETIER",
)
SIMILAR_ENOUGH = 0.6  # difflib's ratio (of the names without prefix) from which a known name is offered
MAX_NAME_SHOWN = 80  # characters of an unknown variable's name echoed in its warning


def _stem(name: str) -> str:
    """A variable's name without the prefix many share, so that names are compared by what tells them apart."""
    for prefix in (*OUR_PREFIXES, "THOTH_"):
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """One warning for each set variable named like ours (``THOTH_GRAPH_REFRESH_*``, ``GRAPH_REFRESH_*``) that
    nothing reads, naming the closest setting's variable: a misspelt name would otherwise be silently ignored."""
    settings = {_stem(option.env): option.env for option in OPTIONS}
    warnings = []
    for name, value in sorted(environ.items()):
        if not value or not name.startswith(OUR_PREFIXES) or name in OTHER_VARIABLES or name in settings.values():
            continue
        said = name if name.isprintable() and name.isascii() else ascii(name)
        said = said if len(said) <= MAX_NAME_SHOWN else said[: MAX_NAME_SHOWN - 1] + "…"
        closest = difflib.get_close_matches(_stem(name), settings, n=1, cutoff=SIMILAR_ENOUGH)
        hint = f"did you mean {settings[closest[0]]}?" if closest else "--help lists the ones it reads"
        warnings.append(f"{said} is not a graph-refresh variable and is ignored: {hint}")
    return warnings


def not_defaults(settings: Settings) -> list[str]:
    """The settings that differ from their defaults as the flags that give them (``--dry-run``,
    ``--eager-stop=5``), in :data:`OPTIONS` order, secrets as ``***`` and URLs redacted (``config.redacted``):
    the effective configuration, short enough to read in the start-up log line."""
    redacted = config.redacted(settings)
    flags = []
    for option in OPTIONS:
        value = getattr(getattr(settings, option.group), option.name)
        if value == default_of(option):
            continue
        on, _, off = option.flag.partition("/")
        if isinstance(value, bool) and off:
            flags.append(on if value else off)
            continue
        found = redacted[option.group][option.name]
        text = ",".join(map(str, found)) if isinstance(found, list | tuple) else str(found)
        flags.append(f"{on}={text if _SHELL_WORD.fullmatch(text) else shlex.quote(text)}")
    return flags


def described(env: str) -> str:
    """``--flag (ENV)`` for a message about one setting."""
    option = next(o for o in OPTIONS if o.env == env)
    return f"{option.env} ({option.flag.partition('/')[0]})"


def build_settings(
    params: dict[str, Any], *, purpose: Literal["run", "middletier", "explain", "request"] = "run"
) -> Settings:
    """Settings from parsed parameters; cross-field checks raise ConfigError naming the variable.

    ``purpose``: a run; a command that only reads or changes middletier (``ledger``, ``request --list``), which
    needs no Templates; ``explain``, which needs the Templates (to know the solvers) and reads middletier if
    named; or ``request`` (filing one), which needs both.
    """
    p = params
    if purpose != "middletier" and p["template_dir"] is None and p["infra_namespace"] is None:
        raise ConfigError(f"{described('THOTH_INFRA_NAMESPACE')} is required unless --template-dir is given")
    if purpose == "run" and not p["dry_run"] and p["middletier_namespace"] is None:
        raise ConfigError(f"{described('THOTH_MIDDLETIER_NAMESPACE')} is required unless --dry-run")
    if purpose in ("middletier", "request") and p["middletier_namespace"] is None:
        raise ConfigError(f"{described('THOTH_MIDDLETIER_NAMESPACE')} is required: ledger and requests are kept there")
    if bool(p["dgraph_user"]) != bool(p["dgraph_password"]):
        raise ConfigError("GRAPH_REFRESH_DGRAPH_USER and GRAPH_REFRESH_DGRAPH_PASSWORD must be set together")
    if p["dry_run"] and p["server_dry_run"]:
        raise ConfigError(
            f"{described('THOTH_DRY_RUN')} and {described('THOTH_GRAPH_REFRESH_SERVER_DRY_RUN')} exclude each other: "
            "a dry run sends nothing, a server dry run sends every create with dryRun=All"
        )
    if purpose == "run" and p["no_solvers"] and p["no_package_analyzers"]:
        raise ConfigError(
            f"{described('GRAPH_REFRESH_NO_SOLVERS')} and {described('GRAPH_REFRESH_NO_PACKAGE_ANALYZERS')} are both "
            "set: nothing is left to schedule; unset one of them"
        )
    if purpose == "run" and p["output_dir"] is not None and not p["dry_run"]:
        raise ConfigError(
            f"{described('THOTH_GRAPH_REFRESH_OUTPUT_DIR')} is for a dry run (--dry-run), which writes manifests "
            "instead of creating Jobs: add --dry-run, or unset it"
        )
    if p["report_path"] is not None:
        check_output_path(p["report_path"], folder=False, variable="THOTH_GRAPH_REFRESH_REPORT")
    if p["output_dir"] is not None and p["dry_run"]:
        check_output_path(p["output_dir"], folder=True, variable="THOTH_GRAPH_REFRESH_OUTPUT_DIR")
    groups: dict[str, dict[str, Any]] = {}
    for option in OPTIONS:
        groups.setdefault(option.group, {})[option.name] = p[option.name]
    # Where this shell's credentials are (--kubeconfig, --context): the main command's, not settings of a run.
    groups["cluster"] |= {"kubeconfig": p.get("kubeconfig"), "context": p.get("context")}
    sections: dict[str, Any] = {f.name: f.default_factory for f in fields(Settings)}  # the group's class
    return Settings(**{group: sections[group](**values) for group, values in groups.items()})
