"""Synthetic knowledge graphs for the benchmarks, written fast and the same way every time.

A graph of ``n`` package versions has a realistic mix: eight versions per package, every twentieth
package also on a second index, each solver has resolved about one version in ten (one in ten of those
recorded a solver error, which counts as solved), the analyzer has seen one in five, and one version in a
thousand has a version string the planner must skip as invalid. So a version yields about 3.5 candidates
with three solvers, and ``versions_for_pairs`` picks ``n`` for a wanted number of candidates; the runner
still reports the candidates a run examined from its report, not this estimate.

Two writers produce the same graph: ``write_graph_json`` streams the graph file of ``app.py import-graph``
to disk record by record (never holding the graph in memory), and ``build_sqlite`` writes the SQLite store
directly with the schema of ``graph_refresh/store/sqlite.py`` (for sizes where importing a JSON file that
the importer reads whole would take too long or too much memory). ``build_store`` picks one of the two for
a benchmark and runs the real ``app.py import-graph`` where it takes the graph file.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import yaml

from bench.baseline import ROOT, Code
from bench.measure import run_child

PYPI = "https://pypi.org/simple"
SECOND_INDEX = "https://download.pytorch.org/whl"  # sorts before PYPI, as SQLite orders the rows
VERSIONS_PER_PACKAGE = 8
SECOND_INDEX_EVERY = 20  # packages: one in twenty is also published on a second index
SOLVED_EVERY = 10  # versions: each solver has resolved one in ten ...
SOLVER_ERROR_EVERY = 10  # ... and one in ten of those recorded an error (still solved)
ANALYZED_EVERY = 5  # versions: the analyzer has seen one in five
INVALID_EVERY = 1_000  # versions: one in a thousand has a version the planner skips as invalid
INVALID_VERSION = "1.0 ; echo"  # a space and a semicolon: fails the version pattern (design: Items)
CANDIDATES_PER_VERSION_3_SOLVERS = 3 * (1 - 1 / SOLVED_EVERY) + (1 - 1 / ANALYZED_EVERY)  # 3.5
STORE_COMPLETE = 1  # PRAGMA user_version a committed import gives a store (COMPLETE in graph_refresh/store/sqlite.py)
INSERT_BATCH_ROWS = 50_000  # rows per executemany: bounded memory while building the store directly

# The store's schema, kept equal to graph_refresh/store/sqlite.py (tests/test_bench.py compares the two
# builds row by row, so a schema change there fails the test rather than the benchmark).
_SCHEMA = """
CREATE TABLE package_version (
    id INTEGER PRIMARY KEY,
    package_name TEXT NOT NULL,
    package_version TEXT NOT NULL,
    index_url TEXT NOT NULL,
    UNIQUE (package_name, package_version, index_url)
);
CREATE TABLE solved (
    package_version_id INTEGER NOT NULL REFERENCES package_version (id),
    solver TEXT NOT NULL,
    error INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (package_version_id, solver)
) WITHOUT ROWID;
CREATE TABLE analyzed (
    package_version_id INTEGER PRIMARY KEY REFERENCES package_version (id)
);
CREATE TABLE depends_on (
    package_version_id INTEGER NOT NULL REFERENCES package_version (id),
    solver TEXT NOT NULL,
    dependency_id INTEGER NOT NULL REFERENCES package_version (id),
    PRIMARY KEY (package_version_id, solver, dependency_id)
) WITHOUT ROWID;
"""


@dataclass(frozen=True)
class Version:
    """One generated package version; ``number`` is its 0-based position (and SQLite id minus one)."""

    number: int
    package_name: str
    package_version: str
    index_url: str


def solver_names(template_dir: Path) -> list[str]:
    """The solver names of the Template folder (``solver-type`` labels of the solver Template's Jobs)."""
    names: list[str] = []
    for path in sorted(template_dir.glob("*.y*ml")):
        for document in yaml.safe_load_all(path.read_text()):
            if not isinstance(document, dict) or document.get("metadata", {}).get("labels", {}).get("template") != (
                "solver"
            ):
                continue
            for obj in document.get("objects", []):
                labels = obj.get("metadata", {}).get("labels", {})
                names.append(labels.get("solver-type") or labels["component"])
    if not names:
        raise ValueError(f"no solver Template with solver names in {template_dir}")
    return names


def versions_for_pairs(pairs: int, solvers: int = 3) -> int:
    """Versions whose graph yields about ``pairs`` candidates with ``solvers`` solvers and the analyzer."""
    per_version = solvers * (1 - 1 / SOLVED_EVERY) + (1 - 1 / ANALYZED_EVERY)
    return max(1, math.ceil(pairs / per_version))


def versions(n: int) -> Iterator[Version]:
    """``n`` versions in the store's order (name, version, index), so ids follow the unique key."""
    number = 0
    package = 0
    while number < n:
        name = f"pkg-{package:07d}"
        indexes = (SECOND_INDEX, PYPI) if package % SECOND_INDEX_EVERY == 0 else (PYPI,)
        for minor in range(VERSIONS_PER_PACKAGE):
            for index_url in indexes:
                if number >= n:
                    return
                version = INVALID_VERSION if number % INVALID_EVERY == INVALID_EVERY - 1 else f"1.{minor}.0"
                yield Version(number, name, version, index_url)
                number += 1
        package += 1


def solved_by(version: Version, solvers: Sequence[str]) -> Iterator[tuple[str, bool]]:
    """(solver, error) for each solver that has resolved this version."""
    for position, solver in enumerate(solvers):
        # Shifted per solver, so a version solved by one is usually unsolved by the others.
        if (version.number + 3 * position) % SOLVED_EVERY == 0:
            yield solver, (version.number // SOLVED_EVERY) % SOLVER_ERROR_EVERY == 0


def is_analyzed(version: Version) -> bool:
    return version.number % ANALYZED_EVERY == 1


def _record(version: Version, **extra: Any) -> str:
    return json.dumps(
        {
            "package_name": version.package_name,
            "package_version": version.package_version,
            "index_url": version.index_url,
            **extra,
        }
    )


def _write_list(out: TextIO, key: str, records: Iterator[str], *, first: bool) -> None:
    out.write(("" if first else ",\n") + json.dumps(key) + ": [")
    for position, record in enumerate(records):
        out.write(("\n" if position == 0 else ",\n") + record)
    out.write("]")


def write_graph_json(path: Path, n: int, solvers: Sequence[str]) -> None:
    """Stream the graph file of ``n`` versions to ``path`` (three passes over the generator, no list)."""
    with path.open("w", encoding="utf-8") as out:
        out.write("{")
        _write_list(out, "package_versions", (_record(v) for v in versions(n)), first=True)
        solved = (_record(v, solver=s, error=e) for v in versions(n) for s, e in solved_by(v, solvers))
        _write_list(out, "solved", solved, first=False)
        _write_list(out, "analyzed", (_record(v) for v in versions(n) if is_analyzed(v)), first=False)
        out.write("}\n")


def _batches(rows: Iterator[tuple[Any, ...]]) -> Iterator[list[tuple[Any, ...]]]:
    batch: list[tuple[Any, ...]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == INSERT_BATCH_ROWS:
            yield batch
            batch = []
    if batch:
        yield batch


def build_sqlite(path: Path, n: int, solvers: Sequence[str]) -> None:
    """Write the store of ``n`` versions directly: one transaction, rows in key order, no journal."""
    if path.exists():
        raise FileExistsError(f"{path} exists; build_sqlite writes a new store")
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode = OFF")
        db.execute("PRAGMA synchronous = OFF")
        db.executescript(_SCHEMA)
        db.execute("BEGIN")
        insert = "INSERT INTO package_version (id, package_name, package_version, index_url) VALUES (?, ?, ?, ?)"
        for batch in _batches((v.number + 1, v.package_name, v.package_version, v.index_url) for v in versions(n)):
            db.executemany(insert, batch)
        solved = ((v.number + 1, s, int(e)) for v in versions(n) for s, e in solved_by(v, solvers))
        for batch in _batches(solved):
            db.executemany("INSERT INTO solved (package_version_id, solver, error) VALUES (?, ?, ?)", batch)
        analyzed = ((v.number + 1,) for v in versions(n) if is_analyzed(v))
        for batch in _batches(analyzed):
            db.executemany("INSERT INTO analyzed (package_version_id) VALUES (?)", batch)
        db.execute(f"PRAGMA user_version = {STORE_COMPLETE}")  # what a committed import marks a store with
        db.execute("COMMIT")
    finally:
        db.close()


def build_store(
    folder: Path, pairs: int, *, template_dir: Path, json_max_pairs: int, importer: Code, env: dict[str, str]
) -> tuple[Path, str, str | None]:
    """A store in ``folder`` with about ``pairs`` candidates: its path, its label for the tables (its number of
    versions) and how it was built (None when the store of that size was already there).

    Up to ``json_max_pairs`` the graph file is streamed to disk and loaded with ``importer``'s
    ``app.py import-graph`` (timed, the file removed afterwards); larger graphs are written into SQLite directly.
    """
    solvers = solver_names(template_dir)
    n = versions_for_pairs(pairs, len(solvers))
    store = folder / f"graph-{pairs}.sqlite3"
    label = f"{n:,} versions"
    if store.exists():
        return store, label, None
    started = time.perf_counter()
    if pairs > json_max_pairs:  # too big to import from one JSON document today: the store is written directly
        build_sqlite(store, n, solvers)
        return store, label, f"{label}: SQLite store written directly in {time.perf_counter() - started:.1f} s"
    document = folder / f"graph-{pairs}.json"
    write_graph_json(document, n, solvers)
    written = time.perf_counter() - started
    sample, _ = run_child(importer.app("--sqlite-path", str(store), "import-graph", str(document)), cwd=ROOT, env=env)
    document.unlink()
    return (
        store,
        label,
        f"{label}: graph file streamed in {written:.1f} s, loaded by `app.py import-graph` in "
        f"{sample.wall:.1f} s wall, {sample.cpu:.1f} s CPU, {sample.rss_mib:.0f} MiB peak",
    )
