"""The command line: settings from flags and environment alike, exit codes, and the dry run end to end."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from graph_refresh import cli, options
from graph_refresh.config import Settings
from graph_refresh.items import Candidate
from graph_refresh.quantity import Cap
from graph_refresh.store.sqlite import SQLiteStore

from .helpers import (
    EXAMPLE_TEMPLATES,
    PYPI,
    ROOT,
    SAMPLE_GRAPH,
    SHARED_2019,
    assert_balanced,
    env_of,
    manifests,
    version,
)

RunCli = Callable[..., Result]
ANALYZER_KIND = "package-analyzer"
BASE_ENV = {"THOTH_INFRA_NAMESPACE": "base-infra", "THOTH_MIDDLETIER_NAMESPACE": "base-mid"}

# One value per environment variable, and the setting it must give (flags and settings paths come from
# graph_refresh.options.OPTIONS, where each is declared once).
PARITY: dict[str, tuple[str, Any]] = {
    "THOTH_INFRA_NAMESPACE": ("infra", "infra"),
    "THOTH_MIDDLETIER_NAMESPACE": ("mt", "mt"),
    "KUBERNETES_VERIFY_TLS": ("0", False),
    "THOTH_GRAPH_REFRESH_TEMPLATE_DIR": (str(EXAMPLE_TEMPLATES), EXAMPLE_TEMPLATES),
    "GRAPH_SERVICE_HOST": ("alpha:9080", "alpha:9080"),
    "GRAPH_TLS_PATH": ("/tls", Path("/tls")),
    "GRAPH_REFRESH_DGRAPH_USER": ("u", "u"),
    "GRAPH_REFRESH_DGRAPH_PASSWORD": ("p", "p"),
    "GRAPH_REFRESH_SQLITE_PATH": ("/x.db", Path("/x.db")),
    "GRAPH_REFRESH_DGRAPH_TIMEOUT": ("90", 90),
    "THOTH_GRAPH_REFRESH_EAGER_STOP": ("3", 3),
    "GRAPH_REFRESH_NO_SOLVERS": ("1", True),
    "GRAPH_REFRESH_NO_PACKAGE_ANALYZERS": ("1", True),
    "THOTH_SOLVER_OUTPUT": ("http://s/x", "http://s/x"),
    "THOTH_PACKAGE_ANALYZER_OUTPUT": ("https://a/x", "https://a/x"),
    "THOTH_SUBGRAPH_CHECK_API": ("http://c/x", "http://c/x"),
    "THOTH_LOG_SOLVER": ("debug", "DEBUG"),
    "PROMETHEUS_PUSHGATEWAY_URL": ("http://pg:9091", "http://pg:9091"),
    "NAMESPACE": ("thoth-prod", "thoth-prod"),
    "THOTH_DRY_RUN": ("1", True),
    "THOTH_GRAPH_REFRESH_SERVER_DRY_RUN": ("1", True),
    "THOTH_GRAPH_REFRESH_OUTPUT_DIR": (str(ROOT / "out"), ROOT / "out"),
    "THOTH_GRAPH_REFRESH_REPORT": ("/r.json", Path("/r.json")),
    "THOTH_GRAPH_REFRESH_QUIET": ("1", True),
    "THOTH_GRAPH_REFRESH_MAX_IN_FLIGHT": ("7", 7),
    "THOTH_GRAPH_REFRESH_QPS": ("2.5", 2.5),
    "THOTH_GRAPH_REFRESH_BURST": ("3", 3),
    "THOTH_GRAPH_REFRESH_WORKERS": ("9", 9),
    "THOTH_GRAPH_REFRESH_JOB_TTL": ("7200", 7200),
    "THOTH_GRAPH_REFRESH_MAX_MEMORY": ("16Gi", Cap.parse("16Gi")),
    "THOTH_GRAPH_REFRESH_MAX_DEADLINE": ("600", 600),
    "THOTH_GRAPH_REFRESH_RETRY_BACKOFF": ("60", 60),
    "THOTH_GRAPH_REFRESH_MAX_ATTEMPTS": ("0", 0),
    "THOTH_GRAPH_REFRESH_QUARANTINE": ("86400", 86400),
    "THOTH_GRAPH_REFRESH_REQUEST_TTL": ("3600", 3600),
    "THOTH_GRAPH_REFRESH_FRESH_SHARE": ("0.25", 0.25),
    "THOTH_GRAPH_REFRESH_REQUEST_SHARE": ("0.5", 0.5),
    "THOTH_GRAPH_REFRESH_REQUEST_DEPTH": ("3", 3),
    "THOTH_GRAPH_REFRESH_ALLOWED_INDEXES": (
        "https://a.example/simple, http://b.example:8080/pypi",
        ("https://a.example/simple", "http://b.example:8080/pypi"),
    ),
    "THOTH_GRAPH_REFRESH_MAX_AWAITING_SYNC": ("50", 50),
}
# Settings that only work in pairs or that exclude the default of another: what else the case sets.
PAIRED = {
    "GRAPH_REFRESH_DGRAPH_USER": {"GRAPH_REFRESH_DGRAPH_PASSWORD": "p"},
    "GRAPH_REFRESH_DGRAPH_PASSWORD": {"GRAPH_REFRESH_DGRAPH_USER": "u"},
    "THOTH_GRAPH_REFRESH_SERVER_DRY_RUN": {"THOTH_DRY_RUN": "0"},
    "THOTH_GRAPH_REFRESH_OUTPUT_DIR": {"THOTH_DRY_RUN": "1"},
}


def settings_from(args: list[str], env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name, value in {**BASE_ENV, **env}.items():
        monkeypatch.setenv(name, value)
    with cli.main.make_context("graph-refresh", list(args)) as ctx:
        return cli.build_settings(ctx.params)


def attribute(settings: Settings, path: str) -> Any:
    group, name = path.split(".")
    return getattr(getattr(settings, group), name)


def flag_arguments(option: options.Option, value: str) -> list[str]:
    on, _, off = option.flag.partition("/")
    if off:  # a boolean: --x/--no-x
        return [on if value == "1" else off]
    return [on, value]


@pytest.mark.parametrize("option", options.OPTIONS, ids=[o.env for o in options.OPTIONS])
def test_flag_and_environment_variable_set_the_same_setting(
    option: options.Option, monkeypatch: pytest.MonkeyPatch
) -> None:
    value, expected = PARITY[option.env]
    paired = PAIRED.get(option.env, {})
    paired_args = [
        a for env, v in paired.items() for a in flag_arguments(next(o for o in options.OPTIONS if o.env == env), v)
    ]
    default = attribute(settings_from([], {}, monkeypatch), option.setting)
    assert default != expected, "the case must change the default"
    assert (
        attribute(settings_from(flag_arguments(option, value) + paired_args, {}, monkeypatch), option.setting)
        == expected
    )
    assert attribute(settings_from([], {option.env: value, **paired}, monkeypatch), option.setting) == expected


def test_every_option_is_declared_once_and_has_a_parity_case() -> None:
    declared = [o.env for o in options.OPTIONS]
    assert len(declared) == len(set(declared))
    assert set(declared) == set(PARITY)
    params = [p for p in cli.main.params if p.name not in ("version", "help", *cli.SHELL_OPTIONS)]
    assert [p.envvar for p in params] == declared
    for param in params:
        assert param.help == options.field_docs()[next(o.setting for o in options.OPTIONS if o.env == param.envvar)]


def test_help_shows_each_flag_with_its_variable_and_default(run_cli: RunCli) -> None:
    text = re.sub(r"-\s+", "-", " ".join(run_cli(["--help"]).output.split()))  # undo wrapping at hyphens
    for option in cli.main.params:
        if option.name in ("version", "help", *cli.SHELL_OPTIONS):
            continue
        assert option.opts[0] in text
        assert f"env var: {option.envvar}" in text.replace("[", " ").replace(";", " ")
    assert "default: 1000" in text
    assert "default: 86400" in text
    assert "default: graph-refresh.sqlite3" in text


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("THOTH_GRAPH_REFRESH_EAGER_STOP", "-1"),
        ("THOTH_GRAPH_REFRESH_MAX_IN_FLIGHT", "-5"),
        ("THOTH_GRAPH_REFRESH_QPS", "-1"),
        ("THOTH_GRAPH_REFRESH_BURST", "0"),
        ("THOTH_GRAPH_REFRESH_WORKERS", "0"),
        ("THOTH_GRAPH_REFRESH_JOB_TTL", "a day"),
        ("THOTH_DRY_RUN", "maybe"),
        ("KUBERNETES_VERIFY_TLS", "perhaps"),
        ("KUBERNETES_VERIFY_TLS", " "),
        ("THOTH_DRY_RUN", "\t"),
        ("GRAPH_REFRESH_NO_SOLVERS", "2"),
        ("THOTH_LOG_SOLVER", "LOUD"),
        ("THOTH_SOLVER_OUTPUT", "result-api/solver"),
        ("THOTH_INFRA_NAMESPACE", "Bad_Namespace"),
        ("THOTH_GRAPH_REFRESH_TEMPLATE_DIR", "/does/not/exist"),
        ("THOTH_GRAPH_REFRESH_WORKERS", "100000000"),
        ("THOTH_GRAPH_REFRESH_JOB_TTL", "2147483648"),
        ("GRAPH_REFRESH_DGRAPH_TIMEOUT", "99999999"),
        ("GRAPH_REFRESH_DGRAPH_TIMEOUT", "0"),
        ("PROMETHEUS_PUSHGATEWAY_URL", "-1"),
        ("PROMETHEUS_PUSHGATEWAY_URL", "NaN"),
        ("PROMETHEUS_PUSHGATEWAY_URL", "pushgateway"),
        ("PROMETHEUS_PUSHGATEWAY_URL", "http://"),
        ("PROMETHEUS_PUSHGATEWAY_URL", "ftp://pg:21"),
        ("PROMETHEUS_PUSHGATEWAY_URL", "http://pg:99999"),
        ("THOTH_SOLVER_OUTPUT", "http:///path-only"),
        ("THOTH_GRAPH_REFRESH_EAGER_STOP", "１２"),
        ("THOTH_GRAPH_REFRESH_MAX_IN_FLIGHT", "٣"),
        ("THOTH_GRAPH_REFRESH_QPS", "１.5"),
        ("THOTH_GRAPH_REFRESH_QPS", "1e999"),
        ("THOTH_GRAPH_REFRESH_MAX_MEMORY", "lots"),
        ("THOTH_GRAPH_REFRESH_MAX_MEMORY", "0Gi"),
        ("THOTH_GRAPH_REFRESH_MAX_MEMORY", "NaN"),
        ("THOTH_GRAPH_REFRESH_MAX_DEADLINE", "0"),
        ("THOTH_GRAPH_REFRESH_MAX_ATTEMPTS", "-1"),
        ("THOTH_GRAPH_REFRESH_QUARANTINE", "30d"),
        ("THOTH_GRAPH_REFRESH_REQUEST_TTL", "0"),
        ("THOTH_GRAPH_REFRESH_FRESH_SHARE", "1.5"),
        ("THOTH_GRAPH_REFRESH_FRESH_SHARE", "-0.1"),
        ("THOTH_GRAPH_REFRESH_REQUEST_SHARE", "2"),
        ("THOTH_GRAPH_REFRESH_REQUEST_DEPTH", "-1"),
        ("THOTH_GRAPH_REFRESH_REQUEST_DEPTH", "101"),
        ("THOTH_GRAPH_REFRESH_ALLOWED_INDEXES", "https://a.example/$(X)"),
        ("THOTH_GRAPH_REFRESH_ALLOWED_INDEXES", "ftp://a.example/simple"),
        ("THOTH_GRAPH_REFRESH_MAX_AWAITING_SYNC", "many"),
    ],
)
def test_invalid_values_exit_2_naming_the_variable(variable: str, value: str, run_cli: RunCli) -> None:
    result = run_cli([], env={**BASE_ENV, "THOTH_DRY_RUN": "1", variable: value})
    assert result.exit_code == 2
    assert variable in result.stderr


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"THOTH_DRY_RUN": "0", "THOTH_INFRA_NAMESPACE": "infra"}, "THOTH_MIDDLETIER_NAMESPACE"),
        ({"THOTH_DRY_RUN": "1"}, "THOTH_INFRA_NAMESPACE"),
        ({**BASE_ENV, "GRAPH_REFRESH_DGRAPH_USER": "u"}, "GRAPH_REFRESH_DGRAPH_PASSWORD"),
        (
            {**BASE_ENV, "THOTH_DRY_RUN": "1", "THOTH_GRAPH_REFRESH_SERVER_DRY_RUN": "1"},
            "THOTH_GRAPH_REFRESH_SERVER_DRY_RUN",
        ),
    ],
)
def test_missing_required_settings_exit_2_naming_the_variable(
    env: dict[str, str], variable: str, run_cli: RunCli, tmp_path: Path
) -> None:
    result = run_cli(["--report", str(tmp_path / "r.json")], env=env)
    assert result.exit_code == 2
    assert variable in result.stderr
    assert not (tmp_path / "r.json").exists(), "no report for a configuration error"


@pytest.mark.parametrize(
    ("variable", "value", "password"),
    [
        ("PROMETHEUS_PUSHGATEWAY_URL", "https://bob:p@ss word@pg.example:9091", "p@ss word"),
        ("PROMETHEUS_PUSHGATEWAY_URL", "https://bob:s3cr3t@pg.example:0", "s3cr3t"),
        ("THOTH_SOLVER_OUTPUT", "https://svc:hunter22@ solver", "hunter22"),
        ("PROMETHEUS_PUSHGATEWAY_URL", "http://admin:Tr0ub4dor/3@pushgw:9091", "Tr0ub4dor/3"),
        ("PROMETHEUS_PUSHGATEWAY_URL", "http://admin:Tr0ub4dor?3@pushgw:9091x", "Tr0ub4dor?3"),
        ("PROMETHEUS_PUSHGATEWAY_URL", "http://admin:Tr0#ub/4@pushgw:0", "Tr0#ub/4"),
    ],
)
def test_a_rejected_url_never_shows_its_password(variable: str, value: str, password: str, run_cli: RunCli) -> None:
    result = run_cli([], env={**BASE_ENV, "THOTH_DRY_RUN": "1", variable: value})
    assert result.exit_code == 2
    assert variable in result.stderr
    assert password not in result.output + result.stderr
    assert password[:6] not in result.output + result.stderr, "not even a piece of it"


def test_a_password_holding_an_at_sign_is_masked_whole(run_cli: RunCli, sample_store: None) -> None:
    env = {"PROMETHEUS_PUSHGATEWAY_URL": "https://bob:pa@ss@pg.example:9091"}
    result = run_cli(["--dry-run", "--template-dir", str(EXAMPLE_TEMPLATES), "--eager-stop", "1"], env=env)
    assert result.exit_code == 0
    assert "pa@ss" not in result.stderr
    assert "ss@pg" not in result.stderr
    assert "***@pg.example:9091" in result.stderr


def test_an_empty_result_url_flag_means_its_default(run_cli: RunCli, tmp_path: Path, sample_store: None) -> None:
    result, _, out = dry_run(run_cli, tmp_path, "--solver-output", "", "--no-package-analyzers", "--eager-stop", "1")
    assert result.exit_code == 0, result.stderr
    (job,) = manifests(out).values()
    assert env_of(job)["THOTH_SOLVER_OUTPUT"] == "http://result-api/api/v1/solver-result"


def test_secrets_never_reach_the_log(run_cli: RunCli, sample_store: None) -> None:
    env = {
        "GRAPH_REFRESH_DGRAPH_PASSWORD": "hunter2-secret",
        "GRAPH_REFRESH_DGRAPH_USER": "groot",
        "PROMETHEUS_PUSHGATEWAY_URL": "https://bob:pushpass@pg.example:9091",
        "THOTH_SOLVER_OUTPUT": "https://svc:outputpass@result-api.example/api/v1/solver-result",
        "THOTH_PACKAGE_ANALYZER_OUTPUT": "https://result-api.example/analysis?access_token=querypass&x=1#frag",
        "THOTH_SUBGRAPH_CHECK_API": "https://result-api.example/check?barepass",
    }
    result = run_cli(["--dry-run", "--template-dir", str(EXAMPLE_TEMPLATES), "--eager-stop", "1"], env=env)
    for secret in ("hunter2-secret", "pushpass", "outputpass", "querypass", "barepass"):
        assert secret not in result.output + result.stderr
    assert "pg.example" in result.stderr, "the effective configuration is logged, redacted"
    assert "/analysis?access_token=***&x=***" in result.stderr


def test_a_report_path_that_cannot_be_written_exits_2_before_any_work(
    run_cli: RunCli, tmp_path: Path, sample_store: None
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result, _, out = dry_run(run_cli, tmp_path, "--report", str(blocker / "sub" / "report.json"))
    assert result.exit_code == 2
    assert "THOTH_GRAPH_REFRESH_REPORT" in result.stderr
    assert "a-file" in result.stderr
    assert not out.exists()
    result, _, out = dry_run(run_cli, tmp_path, "--report", "")
    assert result.exit_code == 2
    assert "is a folder, not a file" in result.stderr
    assert not out.exists()
    # import-graph writes no report: the setting does not concern it
    imported = run_cli(["import-graph", str(SAMPLE_GRAPH)], env={"THOTH_GRAPH_REFRESH_REPORT": str(blocker / "r")})
    assert imported.exit_code == 0, imported.stderr


def test_a_report_in_a_folder_that_does_not_exist_exits_2_and_creates_nothing(
    run_cli: RunCli, tmp_path: Path, sample_store: None
) -> None:
    report = tmp_path / "nonexistent" / "r.json"
    result, _, out = dry_run(run_cli, tmp_path, "--report", str(report))
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"Error: THOTH_GRAPH_REFRESH_REPORT (--report): {str(report)!r} cannot be written: "
        f"no folder {str(report.parent)!r}"
    ]
    assert not report.parent.exists()
    assert not out.exists()


def test_nothing_to_do_by_configuration_exits_2(run_cli: RunCli, tmp_path: Path, sample_store: None) -> None:
    env = {"GRAPH_REFRESH_NO_SOLVERS": "1", "GRAPH_REFRESH_NO_PACKAGE_ANALYZERS": "1"}
    result, report, out = dry_run(run_cli, tmp_path, env=env)
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "Error: GRAPH_REFRESH_NO_SOLVERS (--no-solvers) and GRAPH_REFRESH_NO_PACKAGE_ANALYZERS "
        "(--no-package-analyzers) are both set: nothing is left to schedule; unset one of them"
    ]
    assert report == {}
    assert not out.exists()


@pytest.mark.parametrize(
    ("name", "meant"),
    [
        ("THOTH_GRAPH_REFRESH_EAGERSTOP", "did you mean THOTH_GRAPH_REFRESH_EAGER_STOP?"),
        ("GRAPH_REFRESH_NO_SOLVER", "did you mean GRAPH_REFRESH_NO_SOLVERS?"),
        ("THOTH_GRAPH_REFRESH_DRY_RUN", "did you mean THOTH_DRY_RUN?"),
        ("GRAPH_REFRESH_XYZZY", "--help lists the ones it reads"),
    ],
)
def test_an_unknown_variable_named_like_ours_is_warned_about_naming_the_closest(
    name: str, meant: str, run_cli: RunCli, tmp_path: Path, sample_store: None
) -> None:
    env = {name: "5", "GRAPH_REFRESH_TEST_INFRA": "x", "THOTH_LOG_GRAPH_REFRESH__PLANNER": "INFO"}  # both are known
    result, report, _ = dry_run(run_cli, tmp_path, "--eager-stop", "1", env=env)
    assert result.exit_code == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "is not a graph-refresh variable" in line]
    assert len(warnings) == 1, warnings
    assert re.search(
        f" WARNING .*: {name} is not a graph-refresh variable and is ignored: {re.escape(meant)}$", warnings[0]
    )
    assert report["totals"]["solver"]["scheduled"] == 1
    for command in (["ledger", "show"], ["import-graph", str(SAMPLE_GRAPH)]):  # every command warns
        other = run_cli(command, env={name: "5"})
        assert f"{name} is not a graph-refresh variable" in other.stderr, command


def test_a_report_that_fails_to_write_at_the_end_is_logged_and_fails_the_run(
    run_cli: RunCli, tmp_path: Path, sample_store: None
) -> None:
    folder = tmp_path / "reports"
    folder.mkdir()

    def now() -> float:  # the run has started: the report folder turns into a file under its feet
        if folder.is_dir():
            folder.rmdir()
            folder.write_text("")
        return 0.0

    args = ["--dry-run", "--template-dir", str(EXAMPLE_TEMPLATES), "--output-dir", str(tmp_path / "out")]
    result = run_cli([*args, "--report", str(folder / "report.json")], now=now)
    assert result.exit_code == 1
    assert re.search(r"ERROR .*Could not write the run report to .*reports/report\.json", result.stderr)
    assert "Traceback" not in result.stderr
    assert "(all solvers)" in result.stdout, "the plan is still printed"
    assert len(list((tmp_path / "out").glob("*.yaml"))) > 0


@pytest.mark.parametrize(
    ("variable", "debug_from"),
    [
        ("THOTH_LOG_GRAPH_REFRESH", {"graph_refresh.planner", "graph_refresh.scheduler"}),
        ("THOTH_LOG_GRAPH_REFRESH__PLANNER", {"graph_refresh.planner"}),
        ("THOTH_ADJUST_LOGGING", {"graph_refresh.planner", "graph_refresh.scheduler"}),
    ],
)
def test_debug_logging_is_switched_on_by_environment_without_showing_index_credentials(
    run_cli: RunCli,
    tmp_path: Path,
    write_graph: Callable[[dict[str, Any]], Path],
    variable: str,
    debug_from: set[str],
) -> None:
    private = "https://reader:idx-s3cret@pypi.example/simple?token=tok-s3cret"
    graph = {"package_versions": [version("flask", "1.0", private), version("bad name", "1.0", private)]}
    run_cli(["import-graph", str(write_graph(graph))])
    value = "graph_refresh:DEBUG" if variable == "THOTH_ADJUST_LOGGING" else "debug"
    result, _, _ = dry_run(run_cli, tmp_path, "--no-solvers", env={variable: value})
    assert result.exit_code == 0, result.stderr
    assert set(re.findall(r"DEBUG +(graph_refresh\.\w+):", result.stderr)) == debug_from
    assert "s3cret" not in result.stderr
    assert "pypi.example" in result.stderr
    quiet, _, _ = dry_run(run_cli, tmp_path, "--no-solvers", name="quiet")
    assert "DEBUG" not in quiet.stderr, "levels come from this run's environment only"


@pytest.mark.parametrize("value", ["debug", "Info", "warning"])
def test_log_levels_in_any_case_reach_thoth_common_safely(
    value: str, run_cli: RunCli, tmp_path: Path, sample_store: None
) -> None:
    result, report, _ = dry_run(run_cli, tmp_path, "--eager-stop", "1", env={"THOTH_LOG_SOLVER": value})
    assert result.exit_code == 0
    assert "Traceback" not in result.stderr
    assert report["exit_code"] == 0


@pytest.mark.parametrize(
    ("variable", "value"),
    [("THOTH_LOG_SOLVER", "LOUDLY"), ("THOTH_LOG_GRAPH_REFRESH", "chatty"), ("PROMETHEUS_PUSHGATEWAY_URL", "pg:99999")],
)
def test_a_bad_log_level_exits_2_naming_the_variable(variable: str, value: str, run_cli: RunCli) -> None:
    result = run_cli(["--dry-run", "--template-dir", str(EXAMPLE_TEMPLATES)], env={variable: value})
    assert result.exit_code == 2
    assert variable in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("value", ["WARN", "notset", "fatal"])
def test_every_python_log_level_name_is_accepted_for_other_modules(
    value: str, run_cli: RunCli, tmp_path: Path, sample_store: None
) -> None:
    result, _, _ = dry_run(run_cli, tmp_path, "--eager-stop", "1", env={"THOTH_LOG_ADVISER": value})
    assert result.exit_code == 0, result.stderr


def test_an_empty_log_level_means_unset(run_cli: RunCli, tmp_path: Path, sample_store: None) -> None:
    result, _, out = dry_run(run_cli, tmp_path, "--eager-stop", "1", env={"THOTH_LOG_SOLVER": ""})
    assert result.exit_code == 0
    solver_job = next(job for name, job in manifests(out).items() if name.startswith("solver-"))
    assert env_of(solver_job)["THOTH_LOG_SOLVER"] == "INFO"  # the Template's default


@pytest.mark.parametrize(
    ("value", "expected"), [("pushgateway:80", "http://pushgateway:80"), ("https://pg:9091", "https://pg:9091")]
)
def test_pushgateway_as_host_port_like_thoths_configmaps(
    value: str, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert settings_from([], {"PROMETHEUS_PUSHGATEWAY_URL": value}, monkeypatch).metrics.pushgateway_url == expected


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_qps_must_be_finite(value: str, run_cli: RunCli) -> None:
    result = run_cli([], env={**BASE_ENV, "THOTH_DRY_RUN": "1", "THOTH_GRAPH_REFRESH_QPS": value})
    assert result.exit_code == 2
    assert "THOTH_GRAPH_REFRESH_QPS" in result.stderr


def test_a_usage_error_is_one_line_on_stderr_without_a_word_about_sentry(run_cli: RunCli) -> None:
    result = run_cli(["--dry-run"])  # neither --template-dir nor the infra namespace: a configuration error
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "Error: THOTH_INFRA_NAMESPACE (--infra-namespace) is required unless --template-dir is given"
    ]


def test_a_run_error_is_one_line_on_stderr_without_a_word_about_sentry(run_cli: RunCli) -> None:
    # No store imported: the run fails. Only our INFO lines are turned off.
    result = run_cli(
        ["--dry-run", "--template-dir", str(EXAMPLE_TEMPLATES)], env={"THOTH_LOG_GRAPH_REFRESH": "WARNING"}
    )
    assert result.exit_code == 1
    [line] = result.stderr.splitlines()
    assert re.search(r" ERROR +graph_refresh:\d+: Run failed: SQLite store '.*' does not exist", line), line


# --- dry run, end to end -------------------------------------------------------------------------


def dry_run(
    run_cli: RunCli,
    tmp_path: Path,
    *args: str,
    templates: Path = EXAMPLE_TEMPLATES,
    name: str = "out",
    env: dict[str, str] | None = None,
) -> tuple[Result, dict[str, Any], Path]:
    out, report = tmp_path / name, tmp_path / f"{name}.json"
    result = run_cli(
        ["--dry-run", "--template-dir", str(templates), "--output-dir", str(out), "--report", str(report), *args],
        env=env,
    )
    data = json.loads(report.read_text()) if report.exists() else {}
    return result, data, out


def test_sample_dry_run_plans_every_solver_and_the_analyzer(
    run_cli: RunCli, tmp_path: Path, sample_store: None
) -> None:
    result, report, out = dry_run(run_cli, tmp_path)
    assert result.exit_code == 0, result.stderr
    assert set(report["solvers"]) == {"solver-fedora-34-py39", "solver-ubi-8-py38", "solver-rhel-9-py311"}
    for key in ("version", "dry_run", "exit_code", "duration_seconds", "store", "in_flight", "totals", "failures"):
        assert key in report
    assert report["dry_run"] is True
    assert report["store"] == "sqlite"
    assert report["exit_code"] == 0
    assert all(counts["scheduled"] > 0 for counts in report["solvers"].values())
    assert report["totals"]["package-analyzer"]["scheduled"] > 0
    assert report["totals"]["solver"]["skipped"]["invalid"] > 0
    assert_balanced(report)
    jobs = manifests(out)
    planned = sum(report["totals"][kind]["scheduled"] for kind in report["totals"])
    assert len(jobs) == planned
    for name, job in jobs.items():
        assert job["metadata"]["name"] == name
        assert len(name) <= 57
        assert job["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "graph-refresh"
        assert job["spec"]["ttlSecondsAfterFinished"] == 86400
        assert "${" not in json.dumps(job)
    assert "solver-ubi-8-py38" in result.output
    assert "package-analyzer" in result.output  # the plan table
    assert "invalid" in result.output


def test_dry_run_is_deterministic_to_the_byte(run_cli: RunCli, tmp_path: Path, sample_store: None) -> None:
    _, first, out1 = dry_run(run_cli, tmp_path, name="one")
    _, second, out2 = dry_run(run_cli, tmp_path, name="two")
    assert first["totals"] == second["totals"]
    files1, files2 = sorted(p.name for p in out1.iterdir()), sorted(p.name for p in out2.iterdir())
    assert files1 == files2
    assert all((out1 / f).read_bytes() == (out2 / f).read_bytes() for f in files1)


def test_a_dry_run_replaces_the_manifests_of_an_earlier_plan_and_keeps_other_files(
    run_cli: RunCli, tmp_path: Path, write_graph: Callable[[dict[str, Any]], Path]
) -> None:
    run_cli(["import-graph", str(write_graph({"package_versions": [version("a", "1")]}))])
    _, _, out = dry_run(run_cli, tmp_path)
    first = set(manifests(out))
    (out / "kustomization.yaml").write_text("resources: []\n")
    solved = [{**version("a", "1"), "solver": s} for s in ("solver-fedora-34-py39", "solver-ubi-8-py38")]
    run_cli(["import-graph", str(write_graph({"package_versions": [version("b", "1")], "solved": solved}))])
    _, report, out = dry_run(run_cli, tmp_path)
    now = set(manifests(out)) - {"kustomization"}
    assert len(now) == sum(report["totals"][kind]["scheduled"] for kind in report["totals"]) == 6
    assert len(first - now) == 2, "the two Jobs no longer planned are gone"
    assert (out / "kustomization.yaml").exists()


def test_hostile_records_are_skipped_as_invalid_and_reach_no_manifest(
    run_cli: RunCli, tmp_path: Path, write_graph: Callable[[dict[str, Any]], Path]
) -> None:
    hostile = [
        version("evil\nname", "1.0"),
        version("inject${THOTH_SOLVER_OUTPUT}", "1.0"),
        version("spacey", "1.0 ; rm -rf /"),
        version("ftp-only", "0.1", "ftp://mirror.example.com/simple"),
        version("\u212aeras", "2.0"),  # a Kelvin sign, not a K: must not become "keras"
    ]
    graph = write_graph({"package_versions": [*hostile, version("good", "1.0")]})
    assert run_cli(["import-graph", str(graph)]).exit_code == 0
    result, report, out = dry_run(run_cli, tmp_path)
    assert result.exit_code == 0
    assert report["totals"]["package-analyzer"]["skipped"] == {"invalid": 5}
    for counts in report["solvers"].values():
        assert counts["skipped"] == {"invalid": 5}
        assert counts["scheduled"] == 1
    text = "".join(p.read_text() for p in out.iterdir())
    for marker in ("evil", "inject", "spacey", "rm -rf", "ftp-only", "ftp://", "eras"):
        assert marker not in text


def test_two_spellings_of_a_name_are_one_item(
    run_cli: RunCli, tmp_path: Path, write_graph: Callable[[dict[str, Any]], Path]
) -> None:
    graph = write_graph({"package_versions": [version("Flask", "1.1.2"), version("flask", "1.1.2")]})
    run_cli(["import-graph", str(graph)])
    _, report, out = dry_run(run_cli, tmp_path, "--no-solvers")
    assert report["totals"]["package-analyzer"]["examined"] == 1
    (job,) = manifests(out).values()
    assert env_of(job)["THOTH_PACKAGE_ANALYZER_PACKAGE_NAME"] == "flask"


def test_eager_stop_one_plans_exactly_the_first_solver_job_in_round_robin_order(
    run_cli: RunCli, tmp_path: Path, write_graph: Callable[[dict[str, Any]], Path]
) -> None:
    graph = write_graph({"package_versions": [version("a", "1"), version("b", "1"), version("c", "1")]})
    run_cli(["import-graph", str(graph)])
    result, report, out = dry_run(run_cli, tmp_path, "--eager-stop", "1", "--no-package-analyzers")
    assert result.exit_code == 0
    jobs = manifests(out)
    assert len(jobs) == 1
    (job,) = jobs.values()
    # The first solver of the Template, with its first candidate.
    assert job["metadata"]["labels"]["thoth-station.ninja/solver"] == "solver-fedora-34-py39"
    assert env_of(job)["THOTH_SOLVER_PACKAGES"] == "a===1"
    assert report["totals"]["solver"]["stopped_by"] == "eager-stop"
    assert report["totals"]["solver"]["scheduled"] == 1
    assert report["totals"]["solver"]["skipped"] == {"eager-stop": 3}  # each solver's next candidate
    assert_balanced(report)


def test_eager_stop_caps_each_kind_and_solvers_share_it_round_robin(
    run_cli: RunCli, tmp_path: Path, write_graph: Callable[[dict[str, Any]], Path]
) -> None:
    graph = write_graph({"package_versions": [version(f"p{i}", "1") for i in range(10)]})
    run_cli(["import-graph", str(graph)])
    _, report, _ = dry_run(run_cli, tmp_path, "--eager-stop", "5")
    assert report["totals"]["solver"]["scheduled"] == 5
    assert sorted(c["scheduled"] for c in report["solvers"].values()) == [1, 2, 2]
    assert report["totals"]["package-analyzer"]["scheduled"] == 5
    assert report["totals"]["package-analyzer"]["stopped_by"] == "eager-stop"
    assert_balanced(report)


def test_kinds_can_be_turned_off(run_cli: RunCli, tmp_path: Path, sample_store: None) -> None:
    _, report, out = dry_run(run_cli, tmp_path, env_off := "--no-solvers")
    assert env_off
    assert report["totals"]["solver"]["examined"] == 0
    assert report["solvers"] == {}
    assert all(name.startswith("package-analyzer-") for name in manifests(out))


def test_max_in_flight_caps_a_dry_run_too(run_cli: RunCli, tmp_path: Path, sample_store: None) -> None:
    _, report, out = dry_run(run_cli, tmp_path, "--max-in-flight", "4")
    assert len(list(out.iterdir())) == 4
    assert {kind: report["totals"][kind]["scheduled"] for kind in report["totals"]} == {
        "solver": 3,
        "package-analyzer": 1,
    }
    assert report["totals"]["solver"]["stopped_by"] == "capacity"
    assert_balanced(report)


def test_ambiguous_templates_exit_1_saying_what_was_found_where(
    run_cli: RunCli, tmp_path: Path, template_dir: Callable[..., Path], sample_store: None
) -> None:
    def duplicate(docs: dict[str, dict[str, Any]]) -> None:
        copy = json.loads(json.dumps(docs["solver.yaml"]))
        copy["metadata"]["name"] = "solver-copy"
        docs["solver-copy.yaml"] = copy

    folder = template_dir(duplicate)
    result, report, out = dry_run(run_cli, tmp_path, templates=folder)
    assert result.exit_code == 1
    assert str(folder) in result.stderr
    assert "found 2" in result.stderr
    assert "solver-copy" in result.stderr
    assert report["exit_code"] == 1
    assert not out.exists()


def test_missing_template_exits_1(
    run_cli: RunCli, tmp_path: Path, template_dir: Callable[..., Path], sample_store: None
) -> None:
    folder = template_dir(lambda docs: docs.pop("package-analyzer.yaml"))
    result, _, _ = dry_run(run_cli, tmp_path, templates=folder)
    assert result.exit_code == 1
    assert "template=package-analyzer" in result.stderr
    assert "found 0" in result.stderr


@pytest.mark.parametrize(
    ("kept", "turned_off", "planned"),
    [
        ("package-analyzer.yaml", "--no-solvers", "package-analyzer"),
        ("solver.yaml", "--no-package-analyzers", "solver"),
    ],
)
def test_a_kind_turned_off_needs_no_template(
    run_cli: RunCli,
    tmp_path: Path,
    template_dir: Callable[..., Path],
    sample_store: None,
    kept: str,
    turned_off: str,
    planned: str,
) -> None:
    folder = template_dir(lambda docs: [docs.pop(name) for name in list(docs) if name != kept])
    result, report, out = dry_run(run_cli, tmp_path, turned_off, templates=folder)
    assert result.exit_code == 0, result.stderr
    totals = {kind: counts["scheduled"] for kind, counts in report["totals"].items()}
    assert totals[planned] > 0
    assert sum(totals.values()) == totals[planned] == len(manifests(out))


def test_badly_named_solver_exits_1_naming_it(
    run_cli: RunCli, tmp_path: Path, template_dir: Callable[..., Path], sample_store: None
) -> None:
    def rename(docs: dict[str, dict[str, Any]]) -> None:
        docs["solver.yaml"]["objects"][2]["metadata"]["labels"]["solver-type"] = "solver-rhel9-python3"

    result, _, _ = dry_run(run_cli, tmp_path, templates=template_dir(rename))
    assert result.exit_code == 1
    assert "solver-rhel9-python3" in result.stderr
    assert "'solver'" in result.stderr


def test_the_plan_table_of_solvers_with_46_character_names_fits_100_columns(
    run_cli: RunCli, tmp_path: Path, template_dir: Callable[..., Path], sample_store: None
) -> None:
    names = [f"solver-{os_name * 29}-{n}.{n}-py311" for n, os_name in enumerate("abc")]  # 46 characters each

    def rename(docs: dict[str, dict[str, Any]]) -> None:
        for solver, name in zip(docs["solver.yaml"]["objects"], names, strict=True):
            solver["metadata"]["labels"]["solver-type"] = name

    result, report, _ = dry_run(run_cli, tmp_path, templates=template_dir(rename))
    assert result.exit_code == 0, result.stderr
    assert {len(name) for name in names} == {46}
    assert sorted(report["solvers"]) == names
    table = result.stdout.splitlines()
    assert table[0].startswith("stream ")
    assert all(name in result.stdout for name in names)
    assert max(map(len, table)) <= 100, result.stdout


@pytest.mark.parametrize("snapshot", ["2019-09", "2019-11"])
def test_thoth_2019_templates_render_every_solver_and_the_analyzer(
    snapshot: str, run_cli: RunCli, tmp_path: Path, sample_store: None
) -> None:
    folder = SHARED_2019 / snapshot
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent: the 2019 Templates live in the shared folder beside the repository")
    result, _, out = dry_run(run_cli, tmp_path, "--eager-stop", "20", templates=folder)
    assert result.exit_code == 0, result.stderr
    jobs = manifests(out)
    solvers = {job["metadata"]["labels"].get("thoth-station.ninja/solver") for job in jobs.values()} - {None}
    expected = {"2019-09": {"solver-fedora-28-py36", "solver-ubi-8-py36"}, "2019-11": {"solver-rhel-8.0-py36"}}
    assert solvers == expected[snapshot]
    assert any(name.startswith("package-analyzer-") for name in jobs)
    for name, job in jobs.items():
        assert "${" not in json.dumps(job), name
        env = env_of(job)
        if name.startswith("package-analyzer-"):
            assert env["THOTH_PACKAGE_ANALYZER_OUTPUT"] == "http://result-api/api/v1/package-analysis-result"
            assert env["THOTH_PACKAGE_ANALYZER_PACKAGE_NAME"]
            assert env["THOTH_PACKAGE_ANALYZER_INDEX_URL"]
        else:
            assert env["THOTH_SOLVER_PACKAGES"].count("===") == 1
            assert env["THOTH_SOLVER_NO_TRANSITIVE"] == "0"
            assert env["THOTH_SOLVER_OUTPUT"] == "http://result-api/api/v1/solver-result"
            assert env["THOTH_LOG_SOLVER"] == "INFO"  # unset: the Template's default stays
        if snapshot == "2019-11":
            assert env["THOTH_DOCUMENT_ID"] == name


def test_log_solver_reaches_the_template(run_cli: RunCli, tmp_path: Path, sample_store: None) -> None:
    _, _, out = dry_run(run_cli, tmp_path, "--log-solver", "DEBUG", "--eager-stop", "1")
    for name, job in manifests(out).items():
        key = "THOTH_PACKAGE_ANALYZER_DEBUG" if name.startswith("package-analyzer") else "THOTH_LOG_SOLVER"
        assert env_of(job)[key] in ("DEBUG", "1")


def test_an_item_whose_own_values_break_the_template_is_counted_and_fails_the_run(
    run_cli: RunCli, tmp_path: Path, template_dir: Callable[..., Path], write_graph: Callable[[dict[str, Any]], Path]
) -> None:
    def clash_on_flask(docs: dict[str, dict[str, Any]]) -> None:
        job = docs["package-analyzer.yaml"]["objects"][0]
        job["metadata"]["annotations"] = {"${THOTH_PACKAGE_ANALYZER_PACKAGE_NAME}": "a", "flask": "b"}

    run_cli(["import-graph", str(write_graph({"package_versions": [version("flask", "1.0")]}))])
    result, report, _ = dry_run(run_cli, tmp_path, "--no-solvers", templates=template_dir(clash_on_flask))
    assert result.exit_code == 1
    assert "flask" in result.stderr
    assert_balanced(report)
    assert report["totals"]["package-analyzer"]["failed"] == 1
    assert report["failures"][0]["kind"] == ANALYZER_KIND


@pytest.mark.parametrize(
    "break_it",
    [
        lambda docs: docs["solver.yaml"]["metadata"].__setitem__("labels", ["template", "solver"]),
        lambda docs: docs["solver.yaml"].__setitem__("labels", ["team"]),
        lambda docs: docs["package-analyzer.yaml"]["objects"][0].__setitem__("spec", ["not", "a", "mapping"]),
        lambda docs: docs["solver.yaml"]["objects"][0]["metadata"].__setitem__("labels", "solver-type"),
    ],
)
def test_malformed_templates_exit_1_with_a_message_and_a_report(
    break_it: Callable[[dict[str, Any]], None],
    run_cli: RunCli,
    tmp_path: Path,
    template_dir: Callable[..., Path],
    sample_store: None,
) -> None:
    result, report, _ = dry_run(run_cli, tmp_path, templates=template_dir(break_it))
    assert result.exit_code == 1
    assert report["exit_code"] == 1
    assert "Traceback" not in result.stderr
    assert "must be a mapping" in result.stderr


def test_a_null_ttl_in_the_template_gets_the_configured_one(
    run_cli: RunCli, tmp_path: Path, template_dir: Callable[..., Path], sample_store: None
) -> None:
    def null_ttl(docs: dict[str, dict[str, Any]]) -> None:
        docs["package-analyzer.yaml"]["objects"][0]["spec"]["ttlSecondsAfterFinished"] = None

    _, _, out = dry_run(run_cli, tmp_path, "--no-solvers", "--job-ttl", "77", templates=template_dir(null_ttl))
    assert {job["spec"]["ttlSecondsAfterFinished"] for job in manifests(out).values()} == {77}


def test_a_run_whose_sqlite_store_does_not_exist_fails_naming_it(run_cli: RunCli, tmp_path: Path) -> None:
    # Only import-graph creates a store: a run against a missing one (a ConfigMap's empty
    # graph-service-host, a mistyped path) must not plan from an empty graph and exit 0.
    missing = tmp_path / "nowhere" / "missing.sqlite3"
    result, report, _ = dry_run(run_cli, tmp_path, "--sqlite-path", str(missing))
    assert result.exit_code == 1
    assert report["exit_code"] == 1
    assert str(missing) in result.stderr
    assert "does not exist" in result.stderr
    assert "Traceback" not in result.stderr
    assert not missing.exists()
    assert not missing.parent.exists()


def test_a_run_whose_sqlite_file_is_not_a_store_fails_naming_it(run_cli: RunCli, tmp_path: Path) -> None:
    empty = tmp_path / "empty.sqlite3"
    empty.write_bytes(b"")  # SQLite reads an empty file as a database without tables
    result, report, _ = dry_run(run_cli, tmp_path, "--sqlite-path", str(empty))
    assert result.exit_code == 1
    assert report["exit_code"] == 1
    assert str(empty) in result.stderr
    assert "not a graph-refresh store" in result.stderr
    assert empty.read_bytes() == b"", "a run writes nothing into the store"


def test_report_dash_puts_the_json_alone_on_stdout_and_the_plan_table_on_stderr(tmp_path: Path) -> None:
    """Through a real process: ``--report -`` makes stdout one JSON document a pipe can read."""
    store = tmp_path / "store.sqlite3"
    env = {**os.environ, "GRAPH_REFRESH_SQLITE_PATH": str(store), "GRPC_VERBOSITY": "NONE"}
    subprocess.run([sys.executable, "app.py", "import-graph", str(SAMPLE_GRAPH)], cwd=ROOT, env=env, check=True)
    args = ["--dry-run", "--template-dir", str(EXAMPLE_TEMPLATES), "--eager-stop", "2", "--report", "-"]
    done = subprocess.run([sys.executable, "app.py", *args], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["totals"]["solver"]["scheduled"] == 2
    assert report["exit_code"] == 0
    header = next(line for line in done.stderr.splitlines() if line.startswith("stream "))
    assert "examined" in header
    assert "scheduled" in header
    assert "planned" not in header
    assert not (ROOT / "-").exists()


# --- import-graph --------------------------------------------------------------------------------


def test_import_twice_changes_nothing(run_cli: RunCli, tmp_path: Path) -> None:
    first = run_cli(["import-graph", str(SAMPLE_GRAPH)])
    db = Path(tmp_path / "graph.sqlite3")
    before = db.read_bytes()
    second = run_cli(["import-graph", str(SAMPLE_GRAPH)])
    assert first.exit_code == second.exit_code == 0
    assert "package_version=0, solved=0, analyzed=0" in second.output
    _, report1, _ = dry_run(run_cli, tmp_path, name="a")
    assert before[:16] == db.read_bytes()[:16]
    assert report1["totals"]["package-analyzer"]["examined"] > 0


@pytest.mark.parametrize(
    ("content", "where"),
    [
        ("{not json", "not valid UTF-8 JSON"),
        ("[]", "must hold a JSON object"),
        ('{"package_versions": {}}', "'package_versions' must be a list"),
        (
            '{"package_versions": [{"package_name": "a", "package_version": "1"}]}',
            "package_versions[0]: missing field 'index_url'",
        ),
        (
            '{"solved": [{"package_name": "a", "package_version": "1", "index_url": "https://x/simple"}]}',
            "solved[0]: missing field 'solver'",
        ),
        (
            '{"solved": [{"package_name": "a", "package_version": "1", "index_url": "https://x/simple", "solver": "s",'
            ' "error": "yes"}]}',
            "solved[0]: field 'error'",
        ),
        (
            '{"analyzed": [{"package_name": 1, "package_version": "1", "index_url": "https://x/simple"}]}',
            "analyzed[0]: field 'package_name' must be a string",
        ),
        (
            '{"package_versions": [{"package_name": "a\\ud800", "package_version": "1", "index_url": "https://x/"}]}',
            "package_versions[0]: field 'package_name' is not valid Unicode",
        ),
    ],
)
def test_malformed_graph_file_exits_2_naming_the_record_and_imports_nothing(
    content: str, where: str, run_cli: RunCli, tmp_path: Path
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    result = run_cli(["import-graph", str(path)])
    assert result.exit_code == 2
    assert where in result.stderr
    assert "Traceback" not in result.stderr
    _, report, _ = dry_run(run_cli, tmp_path)
    assert report["totals"]["package-analyzer"]["examined"] == 0, "nothing was imported"


def test_a_bad_record_late_in_a_file_rolls_back_everything(run_cli: RunCli, tmp_path: Path) -> None:
    records = [version(f"p{i}", "1") for i in range(50)] + [{"package_name": "x"}]
    path = tmp_path / "late.json"
    path.write_text(json.dumps({"package_versions": records}))
    result = run_cli(["import-graph", str(path)])
    assert result.exit_code == 2
    assert "package_versions[50]" in result.stderr
    _, report, _ = dry_run(run_cli, tmp_path)
    assert report["totals"]["package-analyzer"]["examined"] == 0


@pytest.mark.parametrize(("folder", "problem"), [("a-file", "is not a writable folder"), ("no/dir", "does not exist")])
def test_an_unusable_store_path_fails_the_import_naming_it(
    folder: str, problem: str, run_cli: RunCli, tmp_path: Path
) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    store = tmp_path / folder / "x.db"
    for args, env in (
        (["import-graph", str(SAMPLE_GRAPH)], {"GRAPH_REFRESH_SQLITE_PATH": str(store)}),
        (["import-graph", str(SAMPLE_GRAPH), "--sqlite-path", str(store)], {}),
    ):
        result = run_cli(args, env=env)
        assert result.exit_code == 2
        assert result.stderr.splitlines() == [
            f"Error: the embedded store {str(store)!r} cannot be written: {str(store.parent)!r} {problem}"
        ]
    assert not (tmp_path / "no").exists()


@pytest.mark.parametrize("where", ["a-file/out", "missing/missing/out"])
def test_an_output_dir_that_cannot_be_made_exits_2_before_any_work(
    where: str, run_cli: RunCli, tmp_path: Path, sample_store: None
) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    args = ["--dry-run", "--template-dir", str(EXAMPLE_TEMPLATES), "--output-dir", str(tmp_path / where)]
    result = run_cli([*args, "--report", str(tmp_path / "r.json")])
    assert result.exit_code == 2
    assert "THOTH_GRAPH_REFRESH_OUTPUT_DIR" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "r.json").exists()
    assert not (tmp_path / "missing").exists(), "no folder tree is invented"


def test_an_output_dir_is_created_below_a_folder_that_exists(
    run_cli: RunCli, tmp_path: Path, sample_store: None
) -> None:
    args = ["--dry-run", "--template-dir", str(EXAMPLE_TEMPLATES), "--output-dir", str(tmp_path / "new")]
    assert run_cli([*args, "--eager-stop", "1"]).exit_code == 0
    assert len(list((tmp_path / "new").glob("*.yaml"))) == 2


def test_import_refuses_the_production_graph(run_cli: RunCli) -> None:
    result = run_cli(["import-graph", str(SAMPLE_GRAPH)], env={"GRAPH_SERVICE_HOST": "alpha:9080"})
    assert result.exit_code == 2
    assert "GRAPH_SERVICE_HOST" in result.stderr


def test_unknown_keys_are_ignored_and_missing_or_null_optional_fields_take_their_defaults(
    run_cli: RunCli, tmp_path: Path, write_graph: Callable[[dict[str, Any]], Path]
) -> None:
    graph = write_graph(
        {
            "comment": "x",
            "package_versions": [{**version("a", "1"), "extra": True}],
            "solved": [
                {**version("a", "1"), "solver": "solver-ubi-8-py38"},
                {**version("a", "1"), "solver": "solver-rhel-9-py311", "error": None},
            ],
            "analyzed": None,
        }
    )
    assert run_cli(["import-graph", str(graph)]).exit_code == 0
    _, report, _ = dry_run(run_cli, tmp_path)
    assert report["solvers"]["solver-ubi-8-py38"]["examined"] == 0
    assert report["solvers"]["solver-rhel-9-py311"]["examined"] == 0
    assert report["totals"]["package-analyzer"]["scheduled"] == 1
    assert report["solvers"]["solver-fedora-34-py39"]["scheduled"] == 1


def test_a_graph_file_that_is_not_utf8_exits_2(run_cli: RunCli, tmp_path: Path) -> None:
    path = tmp_path / "utf16.json"
    path.write_text(json.dumps({"package_versions": [version("a", "1")]}), encoding="utf-16")
    result = run_cli(["import-graph", str(path)])
    assert result.exit_code == 2
    assert "UTF-8" in result.stderr


def test_import_graph_takes_the_store_path_after_the_subcommand_too(run_cli: RunCli, tmp_path: Path) -> None:
    store = tmp_path / "elsewhere.sqlite3"
    assert run_cli(["import-graph", "--sqlite-path", str(store), str(SAMPLE_GRAPH)]).exit_code == 0
    assert store.exists()
    assert not (tmp_path / "graph.sqlite3").exists()


def test_import_reads_the_lists_in_any_order_and_counts_as_it_streams(run_cli: RunCli, tmp_path: Path) -> None:
    path = tmp_path / "reordered.json"
    solved = [{**version("b", "2"), "solver": "solver-fedora-31-py38"}, {**version("a", "1"), "solver": "s"}]
    path.write_text(
        json.dumps({"analyzed": [version("c", "3")], "solved": solved, "package_versions": [version("a", "1")]})
    )
    result = run_cli(["import-graph", str(path)])
    assert result.exit_code == 0, result.stderr
    assert f"{path}" in result.output
    assert "4 records; new rows: package_version=3, solved=2, analyzed=1" in result.output
    again = run_cli(["import-graph", str(path)])
    assert "4 records; new rows: package_version=0, solved=0, analyzed=0" in again.output


def test_import_keeps_what_solved_versions_depend_on(run_cli: RunCli, tmp_path: Path) -> None:
    path, store = tmp_path / "deps.json", tmp_path / "deps.sqlite3"
    other = "https://packages.example.invalid/simple"
    solved = [
        {**version("Flask", "2.0.0"), "solver": "solver-fedora-31-py38", "depends_on": [version("Jinja2", "3.0.1")]},
        {
            **version("flask", "2.0.0"),
            "solver": "solver-rhel-8.6-py38",
            "depends_on": [version("click", "8.0.1", other)],
        },
    ]
    path.write_text(json.dumps({"solved": solved}))
    result = run_cli(["import-graph", "--sqlite-path", str(store), str(path)])
    assert result.exit_code == 0, result.stderr
    assert "2 records; new rows: package_version=3, solved=2, analyzed=0, depends_on=2" in result.output
    again = run_cli(["import-graph", "--sqlite-path", str(store), str(path)])
    assert "new rows: package_version=0, solved=0, analyzed=0, depends_on=0" in again.output
    reader = SQLiteStore(store)
    try:
        flask, jinja2 = Candidate("flask", "2.0.0", PYPI), Candidate("jinja2", "3.0.1", PYPI)
        assert reader.dependencies([flask, jinja2]) == [[Candidate("click", "8.0.1", other), jinja2], []]
        assert reader.status(jinja2, []).arrival is not None  # the dependency is a version of the graph
    finally:
        reader.close()


@pytest.mark.parametrize(
    ("depends_on", "message"),
    [
        ("click", "solved[1]: field 'depends_on' must be a list, not str"),
        ([version("click", "8"), 8], "solved[1]: depends_on[1]: must be an object, not int"),
        ([{"package_name": "click", "index_url": PYPI}], "solved[1]: depends_on[0]: missing field 'package_version'"),
    ],
)
def test_a_bad_dependency_list_exits_2_naming_it_and_imports_nothing(
    depends_on: Any, message: str, run_cli: RunCli, tmp_path: Path
) -> None:
    path, store = tmp_path / "bad.json", tmp_path / "bad.sqlite3"
    solved = [{**version("a", "1"), "solver": "s"}, {**version("b", "1"), "solver": "s", "depends_on": depends_on}]
    path.write_text(json.dumps({"solved": solved}))
    result = run_cli(["import-graph", "--sqlite-path", str(store), str(path)])
    assert result.exit_code == 2
    assert f"{path}: {message}" in result.stderr
    assert "Traceback" not in result.stderr
    assert not store.exists()


def test_a_failed_import_into_a_new_store_leaves_no_store_behind(run_cli: RunCli, tmp_path: Path) -> None:
    path = tmp_path / "late.json"
    path.write_text(json.dumps({"package_versions": [version(f"p{i}", "1") for i in range(30)] + [[]]}))
    result = run_cli(["import-graph", str(path)])
    assert result.exit_code == 2
    assert "package_versions[30]: must be an object, not list" in result.stderr
    assert not (tmp_path / "graph.sqlite3").exists(), "a later run fails naming the missing store, not 'nothing to do'"
