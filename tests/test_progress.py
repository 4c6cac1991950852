"""Progress shows on a terminal only: never in logs, pipes or CI output."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

from .conftest import EXAMPLE_TEMPLATES, PYPI, ROOT, SAMPLE_GRAPH


def run_app(args: list[str], store: Path, *, terminal: bool) -> str:
    """Run app.py with stderr on a pseudo-terminal or a pipe; return what it wrote to stderr."""
    env = {**os.environ, "GRAPH_REFRESH_SQLITE_PATH": str(store)}
    cmd = [sys.executable, "app.py", *args]
    if not terminal:
        done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True)
        return done.stderr
    primary, secondary = pty.openpty()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=secondary)
    os.close(secondary)
    chunks = []
    while True:
        try:
            chunk = os.read(primary, 4096)
        except OSError:  # the terminal closes when the child exits
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(primary)
    assert proc.wait(timeout=60) == 0
    return b"".join(chunks).decode(errors="replace")


def run_import(tmp_path: Path, *, terminal: bool) -> str:
    return run_app(["import-graph", str(SAMPLE_GRAPH)], tmp_path / f"{terminal}.sqlite3", terminal=terminal)


def test_import_shows_a_progress_bar_on_a_terminal(tmp_path: Path) -> None:
    assert "Importing" in run_import(tmp_path, terminal=True)


def test_no_progress_bar_when_stderr_is_not_a_terminal(tmp_path: Path) -> None:
    assert "Importing" not in run_import(tmp_path, terminal=False)


def test_planning_counts_examined_candidates_on_a_terminal_only(tmp_path: Path) -> None:
    store = tmp_path / "big.sqlite3"
    versions = [{"package_name": f"p{i}", "package_version": "1", "index_url": PYPI} for i in range(300)]
    graph = tmp_path / "big.json"
    graph.write_text(json.dumps({"package_versions": versions}))
    run_app(["import-graph", str(graph)], store, terminal=False)
    args = ["--dry-run", "--template-dir", str(EXAMPLE_TEMPLATES), "--max-in-flight", "0"]
    assert "candidates examined: 1200" in run_app(args, store, terminal=True)  # 3 solvers + the analyzer
    assert "candidates examined" not in run_app(args, store, terminal=False)
