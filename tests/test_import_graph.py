"""``import-graph`` leaves a store that is complete or as it was: interrupted by a real signal in a child
process, or found incomplete by a later run (exit 1 naming the file)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bench.bench_import import write_graph
from graph_refresh.store.sqlite import SQLiteStore

from .helpers import EXAMPLE_TEMPLATES, ROOT, SAMPLE_GRAPH, unwrapped

BIG_GRAPH_RECORDS = 400_000  # several seconds of importing: a signal sent once it has started lands mid-import


@pytest.fixture(scope="module")
def big_graph(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("graph") / "big.json"
    write_graph(path, BIG_GRAPH_RECORDS)
    return path


def app(*args: str, store: Path) -> subprocess.CompletedProcess[str]:
    """app.py in a child process; its log lines come back unwrapped."""
    env = {**os.environ, "GRAPH_REFRESH_SQLITE_PATH": str(store), "GRPC_VERBOSITY": "NONE"}
    done = subprocess.run(
        [sys.executable, "app.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    return subprocess.CompletedProcess(done.args, done.returncode, done.stdout, unwrapped(done.stderr))


def dry_run_report(store: Path) -> dict[str, Any]:
    done = app("--dry-run", "--template-dir", str(EXAMPLE_TEMPLATES), "--report", "-", store=store)
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return {kind: report["totals"][kind]["examined"] for kind in report["totals"]} | {"solvers": report["solvers"]}


def interrupted_import(graph: Path, store: Path, started: Callable[[], bool], number: signal.Signals) -> str:
    """Import ``graph`` in a child process, send it ``number`` once ``started()``; return its stderr, unwrapped
    (exit 1)."""
    env = {**os.environ, "GRAPH_REFRESH_SQLITE_PATH": str(store), "GRPC_VERBOSITY": "NONE"}
    command = [sys.executable, "app.py", "import-graph", str(graph)]
    with subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True) as process:
        try:
            deadline = time.monotonic() + 60
            while not started() and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            assert process.poll() is None, "the import ended before it could be interrupted"
            process.send_signal(number)
            _, stderr = process.communicate(timeout=60)
        except BaseException:
            process.kill()
            raise
    assert process.returncode == 1, stderr
    assert "Traceback" not in stderr
    return unwrapped(stderr)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM])
def test_an_import_interrupted_into_a_new_store_leaves_no_store(
    number: signal.Signals, big_graph: Path, tmp_path: Path
) -> None:
    store = tmp_path / "graph.sqlite3"

    def hidden() -> list[Path]:
        return [p for p in tmp_path.iterdir() if p.name.startswith(".graph.sqlite3.")]

    def started() -> bool:  # the store is being built beside its path, and rows are going in (its journal is open)
        return any(p.name.endswith("-journal") for p in hidden())

    stderr = interrupted_import(big_graph, store, started, number)

    assert f"Import interrupted ({number.name} received): nothing was imported, {str(store)!r} was not created" in (
        stderr
    )
    assert not store.exists()
    assert hidden() == [], "complete or absent, and nothing left beside it"
    run = app("--dry-run", "--template-dir", str(EXAMPLE_TEMPLATES), store=store)
    assert run.returncode == 1
    assert f"{str(store)!r} does not exist: import a graph first" in run.stderr


@pytest.mark.timeout(120)
def test_an_import_interrupted_into_an_existing_store_leaves_it_as_it_was(big_graph: Path, tmp_path: Path) -> None:
    store = tmp_path / "graph.sqlite3"
    assert app("import-graph", str(SAMPLE_GRAPH), store=store).returncode == 0
    before = dry_run_report(store)
    journal = store.with_name(store.name + "-journal")

    stderr = interrupted_import(big_graph, store, journal.exists, signal.SIGINT)

    assert f"nothing was imported, {str(store)!r} is unchanged" in stderr
    assert dry_run_report(store) == before
    again = app("import-graph", str(SAMPLE_GRAPH), store=store)
    assert again.returncode == 0
    assert "new rows: package_version=0, solved=0, analyzed=0" in again.stdout


def test_a_store_no_import_has_completed_fails_the_run_naming_it_until_imported_again(tmp_path: Path) -> None:
    store = tmp_path / "graph.sqlite3"
    SQLiteStore(store, create=True).close()  # tables, no committed import: what an interrupted import left before

    run = app("--dry-run", "--template-dir", str(EXAMPLE_TEMPLATES), store=store)

    assert run.returncode == 1, run.stderr
    assert f"SQLite store {str(store)!r} is not complete: no import into it has finished" in run.stderr
    assert "nothing to do" not in run.stderr
    assert "Traceback" not in run.stderr
    assert app("import-graph", str(SAMPLE_GRAPH), store=store).returncode == 0
    assert dry_run_report(store)["solver"] == 411


def test_a_graph_with_nothing_in_it_imported_is_a_complete_store_with_nothing_to_do(tmp_path: Path) -> None:
    store, graph = tmp_path / "graph.sqlite3", tmp_path / "empty.json"
    graph.write_text('{"package_versions": []}')
    assert app("import-graph", str(graph), store=store).returncode == 0
    report = dry_run_report(store)
    assert (report["solver"], report["package-analyzer"]) == (0, 0)
