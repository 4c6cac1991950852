"""What a run says while it works: a live line on a terminal, a progress log line every interval otherwise,
and with --quiet only warnings, errors and the summary. (Creating against the cluster: tests/test_refresh.py.)"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

from .helpers import EXAMPLE_TEMPLATES, PYPI, SAMPLE_GRAPH, run_app, unwrapped

RunCli = Callable[..., Result]
ERASE = "\r\x1b[K"  # back to the start of the line, and erase it
LIVE_LINE = re.compile(r"\r\x1b\[K\[\d+s\] examined ")


def run_import(tmp_path: Path, *, terminal: bool) -> str:
    store = {"GRAPH_REFRESH_SQLITE_PATH": str(tmp_path / f"{terminal}.sqlite3")}
    return run_app(["import-graph", str(SAMPLE_GRAPH)], store, terminal=terminal)


def test_import_shows_a_progress_bar_on_a_terminal(tmp_path: Path) -> None:
    assert "Importing" in run_import(tmp_path, terminal=True)


def test_no_progress_bar_when_stderr_is_not_a_terminal(tmp_path: Path) -> None:
    assert "Importing" not in run_import(tmp_path, terminal=False)


def test_planning_shows_a_live_line_with_a_rate_on_a_terminal_only(tmp_path: Path) -> None:
    env = {"GRAPH_REFRESH_SQLITE_PATH": str(tmp_path / "big.sqlite3")}
    versions = [{"package_name": f"p{i}", "package_version": "1", "index_url": PYPI} for i in range(20_000)]
    graph = tmp_path / "big.json"
    graph.write_text(json.dumps({"package_versions": versions}))
    run_app(["import-graph", str(graph)], env, terminal=False)
    args = ["--dry-run", "--template-dir", str(EXAMPLE_TEMPLATES), "--max-in-flight", "0"]

    shown = unwrapped(run_app(args, env, terminal=True))  # 80,000 candidates: 3 solvers and the analyzer

    live = re.findall(r"\r\x1b\[K\[(\d+)s\] examined ([\d,]+) \(([\d,.]+)/s\) \| ([\d,]+) Jobs planned", shown)
    assert live, shown
    assert all(0 < int(examined.replace(",", "")) <= 80_000 for _, examined, _, _ in live)
    summary = shown.index("dry run finished")
    assert shown.rindex(ERASE, 0, summary) > shown.rindex("examined", 0, summary), "erased before the summary"
    assert "Progress after" not in shown, "no log lines on a terminal: the live line says it"
    narrow = run_app(args, {**env, "COLUMNS": "30"}, terminal=True)
    assert max(len(line) for line in narrow.split(ERASE)[1:-1]) == 29, "a live line never wraps: it would not erase"
    logged = run_app(args, env, terminal=False)
    assert "\r" not in logged
    assert "examined 8" not in logged
    assert "Progress after" not in logged, "a short run"


@pytest.mark.parametrize("how", ["--quiet", "THOTH_GRAPH_REFRESH_QUIET=1"])
def test_quiet_leaves_only_warnings_errors_and_the_summary(how: str, run_cli: RunCli, sample_store: None) -> None:
    args = ["--dry-run", "--template-dir", str(EXAMPLE_TEMPLATES)]
    name, _, value = how.partition("=")
    flag, env = ([how], None) if how.startswith("--") else ([], {name: value})

    result = run_cli([*args, *flag], env=env)

    assert result.exit_code == 0, result.stderr
    assert result.stdout == "", "no plan table"
    lines = result.stderr.splitlines()
    assert any("WARNING" in line and "Dry run without THOTH_MIDDLETIER_NAMESPACE" in line for line in lines)
    (info,) = [line for line in lines if " INFO " in line]
    assert "graph-refresh dry run finished in" in info
    assert "solver: 411 examined, 396 scheduled, 15 skipped, backlog 411;" in info
    loud = run_cli(args)
    assert "graph-refresh 0.1.0 starting a dry run" in loud.stderr
    assert "(all solvers)" in loud.stdout


def test_a_quiet_import_shows_no_progress_bar_on_a_terminal(tmp_path: Path) -> None:
    env = {"GRAPH_REFRESH_SQLITE_PATH": str(tmp_path / "q.sqlite3")}
    assert "Importing" not in run_app(["--quiet", "import-graph", str(SAMPLE_GRAPH)], env, terminal=True)
