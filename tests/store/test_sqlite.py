"""The embedded SQLite store: import and keyset paging."""

from __future__ import annotations

import itertools
import sqlite3
from pathlib import Path

import pytest

from graph_refresh.errors import StoreError
from graph_refresh.items import Candidate, parse_solver_name
from graph_refresh.store.graphfile import parse_graph
from graph_refresh.store.sqlite import SQLiteStore
from tests.helpers import version


def test_store_file_is_created_on_first_use(tmp_path: Path) -> None:
    path = tmp_path / "new.sqlite3"
    SQLiteStore(path, create=True).close()
    tables = {row[0] for row in sqlite3.connect(path).execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"package_version", "solved", "analyzed"} <= tables


def test_only_create_makes_a_store_a_missing_file_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "missing.sqlite3"
    with pytest.raises(StoreError, match=f"{path}.* does not exist: import a graph first"):
        SQLiteStore(path)
    assert not path.exists()
    with pytest.raises(StoreError, match=f"{tmp_path}.* is not a file"):
        SQLiteStore(tmp_path)


def test_pages_by_keyset_without_offset_and_stops_when_the_consumer_stops(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.sqlite3", page_size=4, create=True)
    store.import_graph(parse_graph({"package_versions": [version(f"p{i:03d}", "1") for i in range(10)]}, source="t"))
    statements: list[str] = []
    store._db.set_trace_callback(statements.append)
    names = [c.package_name for c in store.analyzer_candidates()]
    assert names == [f"p{i:03d}" for i in range(10)]
    assert len(statements) == 3  # 4 + 4 + 2 rows; a short page ends the stream
    assert not any("OFFSET" in s.upper() for s in statements)
    statements.clear()
    assert len(list(itertools.islice(store.analyzer_candidates(), 3))) == 3
    assert len(statements) == 1


def test_a_version_only_named_by_solved_or_analyzed_is_added(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.sqlite3", create=True)
    added = store.import_graph(
        parse_graph(
            {"solved": [{**version("a", "1"), "solver": "solver-x-1-py38"}], "analyzed": [version("b", "2")]},
            source="t",
        )
    )
    assert added == {"package_version": 2, "solved": 1, "analyzed": 1, "depends_on": 0}


def test_backlog_is_one_count_query_with_the_candidate_filter(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.sqlite3", page_size=4, create=True)
    store.import_graph(
        parse_graph(
            {
                "package_versions": [version(f"p{i:03d}", "1") for i in range(10)],
                "solved": [{**version("p001", "1"), "solver": "solver-x-1-py38", "error": True}],
                "analyzed": [version("p002", "1"), version("p003", "1")],
            },
            source="t",
        )
    )
    statements: list[str] = []
    store._db.set_trace_callback(statements.append)
    assert store.analyzer_backlog() == 8
    assert len(statements) == 1
    assert "count(*)" in statements[0]
    assert "LIMIT" not in statements[0]
    assert store.solver_backlog(parse_solver_name("solver-x-1-py38", template="t")) == 9


def test_arrival_windows_are_keyset_pages_and_index_ranges(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.sqlite3", page_size=4, create=True)
    store.import_graph(parse_graph({"package_versions": [version(f"p{i:03d}", "1") for i in range(10)]}, source="t"))
    statements: list[str] = []
    store._db.set_trace_callback(statements.append)
    fresh = list(store.fresh_analyzer_candidates(after=2))
    assert [position for position, _ in fresh] == list(range(3, 11))
    assert len(statements) == 3
    assert not any("OFFSET" in s.upper() for s in statements)  # 4 + 4 + an empty page
    solver = parse_solver_name("solver-x-1-py38", template="t")
    key = Candidate("p005", "1", "https://pypi.org/simple")
    statements.clear()
    store.status(key, [solver])
    store.solver_backlog(solver, up_to=8, before=(6, key))
    store.analyzer_backlog(up_to=8)
    store.solver_fresh_ahead(solver, after=2, before=9)
    list(store.analyzer_candidates(up_to=5))
    list(store.fresh_solver_candidates(solver, after=4))
    store._db.set_trace_callback(None)
    for statement in statements:  # every read is a search of an index or of the id b-tree, never a scan
        plan = [row[-1] for row in store._db.execute(f"EXPLAIN QUERY PLAN {statement}")]
        assert not [step for step in plan if step.startswith("SCAN")], (statement, plan)


def test_dependencies_are_one_query_a_page_through_the_index(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.sqlite3", page_size=4, create=True)
    solved = [
        {**version(f"p{i}", "1"), "solver": "solver-x-1-py38", "depends_on": [version("b", str(i))]} for i in range(10)
    ]
    store.import_graph(parse_graph({"solved": solved}, source="t"))
    statements: list[str] = []
    store._db.set_trace_callback(statements.append)
    asked = [Candidate(f"p{i}", "1", "https://pypi.org/simple") for i in range(10)]
    assert store.dependencies(asked) == [[Candidate("b", str(i), "https://pypi.org/simple")] for i in range(10)]
    assert len(statements) == 3  # 4 + 4 + 2 items
    store._db.set_trace_callback(None)
    for statement in statements:
        plan = [row[-1] for row in store._db.execute(f"EXPLAIN QUERY PLAN {statement}")]
        scans = [step for step in plan if step.startswith("SCAN")]
        assert scans == ["SCAN 4 CONSTANT ROWS", "SCAN asked"] or scans == ["SCAN 2 CONSTANT ROWS", "SCAN asked"], plan
        assert any(step.startswith("SEARCH depends_on USING PRIMARY KEY") for step in plan), plan  # items asked only


def test_a_store_imported_before_dependencies_were_kept_says_to_import_again(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    SQLiteStore.import_into(path, parse_graph({"package_versions": [version("a", "1")]}, source="t").records())
    db = sqlite3.connect(path)
    db.execute("DROP TABLE depends_on")  # the shape of a store an earlier graph-refresh imported
    db.commit()
    db.close()
    store = SQLiteStore(path)
    assert list(store.analyzer_candidates()) == [Candidate("a", "1", "https://pypi.org/simple")]  # still plans
    with pytest.raises(StoreError, match=r"made before graph-refresh kept dependencies .*import the graph again"):
        store.dependencies([Candidate("a", "1", "https://pypi.org/simple")])
    store.close()
    SQLiteStore.import_into(path, [])  # the next import adds the table
    again = SQLiteStore(path)
    assert again.dependencies([Candidate("a", "1", "https://pypi.org/simple")]) == [[]]
    again.close()
