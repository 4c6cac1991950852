"""The embedded graph store: stdlib sqlite3, one file, created only by ``import-graph`` (design: The graph
store).

Package names are stored PEP 503 normalised, so two spellings of a name are one row. Candidate
queries page by keyset on (package_name, package_version, index_url), the table's unique key:
each page is an index range scan, and a consumer that stops iterating stops the queries.

A version's arrival position is its ``package_version.id``. The column is the table's INTEGER PRIMARY
KEY, so SQLite gives each new row one more than the largest id in the table; rows are never deleted,
so ids only grow and are never reused, and ``INSERT OR IGNORE`` of a row already there gives none.
Arrival-order queries page by keyset on the id, a range of the table's own b-tree; the unique index
holds the id too, so a window on it costs no table lookup in the (name, version, index) order.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graph_refresh.errors import StoreError
from graph_refresh.items import Candidate, SolverEnvironment, normalize_name
from graph_refresh.store.base import PAGE_SIZE, ItemStatus

if TYPE_CHECKING:  # the graph file's reader (and ijson) load only for an import
    from graph_refresh.store.graphfile import GraphFile, GraphRecord

_SCHEMA = """
CREATE TABLE IF NOT EXISTS package_version (
    id INTEGER PRIMARY KEY,
    package_name TEXT NOT NULL,
    package_version TEXT NOT NULL,
    index_url TEXT NOT NULL,
    UNIQUE (package_name, package_version, index_url)
);
CREATE TABLE IF NOT EXISTS solved (
    package_version_id INTEGER NOT NULL REFERENCES package_version (id),
    solver TEXT NOT NULL,
    error INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (package_version_id, solver)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS analyzed (
    package_version_id INTEGER PRIMARY KEY REFERENCES package_version (id)
);
CREATE TABLE IF NOT EXISTS depends_on (
    package_version_id INTEGER NOT NULL REFERENCES package_version (id),
    solver TEXT NOT NULL,
    dependency_id INTEGER NOT NULL REFERENCES package_version (id),
    PRIMARY KEY (package_version_id, solver, dependency_id)
) WITHOUT ROWID;
"""

_REQUIRED_TABLES = ("package_version", "solved", "analyzed")  # what a run needs to plan
_DEPENDENCY_TABLE = "depends_on"  # added later: a store imported before it exists lacks it until its next import
_TABLES = (*_REQUIRED_TABLES, _DEPENDENCY_TABLE)
# A row of (name, version, index) as a Candidate, without the Python frame of Candidate._make: a candidate query
# reads a million rows at 1M candidates, each row of those three columns.
_candidate = functools.partial(tuple.__new__, Candidate)
COMPLETE = 1  # PRAGMA user_version of a store an import has committed into, set in that import's transaction
IMPORT_BATCH_RECORDS = 10_000  # records per executemany round: amortises the calls, holds ~2 MiB of tuples
IMPORT_NAME_CACHE_ENTRIES = 4096  # normalised package names remembered during an import (~1 MiB)

_PAGE = """
SELECT package_name, package_version, index_url FROM package_version AS pv
WHERE (package_name, package_version, index_url) {after} (?, ?, ?) {window} AND NOT EXISTS ({done})
ORDER BY package_name, package_version, index_url
LIMIT ?
"""
_UP_TO = "AND id <= ?"  # the backlog lane: versions arrived at or before a cursor
# Arrival order: keyset on the id, each page a range of the table's b-tree.
_FRESH_PAGE = """
SELECT id, package_name, package_version, index_url FROM package_version AS pv
WHERE id > ? AND NOT EXISTS ({done})
ORDER BY id
LIMIT ?
"""
# The candidate query's filter without the keyset and the limit: the page queries partition exactly
# these rows (each row once: the import merges spellings under the unique key), so the count is the
# number of candidates the stream yields. ``{window}`` narrows it to an arrival range and/or to the
# rows before a key in the stream's order, each a range of an index.
_COUNT = "SELECT count(*) FROM package_version AS pv WHERE {window} NOT EXISTS ({done})"
# A stream's whole backlog (no window): every version minus those done for it, two counts of whole tables or
# ranges and no probe per version. The same number as ``_COUNT``'s: a solved or analyzed row always names a
# stored version (the import inserts the version first; nothing is deleted), and its primary key makes it one row
# per version (and solver), whatever the records said (an error, a version solved twice, two spellings).
_WHOLE_BACKLOG = "SELECT (SELECT count(*) FROM package_version) - (SELECT count(*) FROM {done_table})"
_SOLVED_BY = "solved WHERE solver = ?"
_BEFORE_KEY = "(package_name, package_version, index_url) < (?, ?, ?) AND "
_ARRIVED_UP_TO = "id <= ? AND "
_ARRIVED_BETWEEN = "id > ? AND id < ? AND "
_SOLVED = "SELECT 1 FROM solved WHERE package_version_id = pv.id AND solver = ?"
_ANALYZED = "SELECT 1 FROM analyzed WHERE package_version_id = pv.id"
_VERSION_ID = "SELECT id FROM package_version WHERE package_name = ? AND package_version = ? AND index_url = ?"
_STATUS = (
    "SELECT id, EXISTS (SELECT 1 FROM analyzed WHERE package_version_id = package_version.id) FROM package_version"
    " WHERE package_name = ? AND package_version = ? AND index_url = ?"
)
_SOLVERS_OF = "SELECT solver FROM solved WHERE package_version_id = ?"
_SEPARATOR = "\x1f"  # between the solver names of one row in STATUSES: no solver name holds it
# A page of items by their unique key, each with whether it is analyzed and the solvers that solved it.
_STATUSES = (
    "WITH asked(package_name, package_version, index_url) AS (VALUES {rows})"
    " SELECT pv.package_name, pv.package_version, pv.index_url, pv.id,"
    " EXISTS (SELECT 1 FROM analyzed WHERE package_version_id = pv.id),"
    " (SELECT group_concat(solver, char(31)) FROM solved WHERE package_version_id = pv.id)"
    " FROM asked JOIN package_version AS pv USING (package_name, package_version, index_url)"
)
_VERSIONS = (
    "WITH asked(package_name, index_url) AS (VALUES {rows})"
    " SELECT pv.package_name, pv.index_url, pv.package_version"
    " FROM asked JOIN package_version AS pv USING (package_name, index_url)"
)
# A page of items by their unique key, each with the versions its solved records (any solver) depend on, once each.
_DEPENDENCIES = (
    "WITH asked(package_name, package_version, index_url) AS (VALUES {rows})"
    " SELECT DISTINCT pv.package_name, pv.package_version, pv.index_url,"
    " dependency.package_name, dependency.package_version, dependency.index_url"
    " FROM asked JOIN package_version AS pv USING (package_name, package_version, index_url)"
    " JOIN depends_on ON depends_on.package_version_id = pv.id"
    " JOIN package_version AS dependency ON dependency.id = depends_on.dependency_id"
)


@dataclass(frozen=True)
class ImportResult:
    """What an import did: records read, and rows added per table (0 everywhere for a repeat import)."""

    records: int
    added: dict[str, int]


class SQLiteStore:
    """GraphStore over one SQLite file; also the target of ``import-graph``."""

    name = "sqlite"
    may_repeat_items = False  # one row per item: the import merges spellings under a unique key

    def __init__(self, path: Path, *, page_size: int = PAGE_SIZE, create: bool = False) -> None:
        """Open the store at ``path``; ``create`` makes the file and its tables when missing (import only).

        Without ``create`` a missing file is a StoreError naming it: a run against a store nobody
        imported would otherwise plan from an empty graph and report "nothing to do". So is a file
        that is not a graph-refresh store.
        """
        self._path = path
        self._page_size = page_size
        if not create and not path.is_file():
            what = "does not exist" if not path.exists() else "is not a file"
            raise StoreError(
                f"SQLite store {str(path)!r} {what}: import a graph first (import-graph) "
                "or set GRAPH_SERVICE_HOST to read from Dgraph"
            )
        try:
            # mode=rw: a file removed after the check above is an error, never silently recreated.
            uri = path.absolute().as_uri() + ("?mode=rwc" if create else "?mode=rw")
            self._db = sqlite3.connect(uri, uri=True, isolation_level=None)  # explicit transactions only
            self._keeps_dependencies = create
            if create:
                self._db.executescript(_SCHEMA)
            else:
                self._check_schema()
        except sqlite3.Error as error:
            raise StoreError(f"cannot open SQLite store {str(path)!r}: {error}") from error

    def _check_schema(self) -> None:
        tables = {name for (name,) in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        self._keeps_dependencies = _DEPENDENCY_TABLE in tables
        if missing := sorted(set(_REQUIRED_TABLES) - tables):
            self._db.close()
            raise StoreError(
                f"SQLite store {str(self._path)!r} is not a graph-refresh store (no table {missing[0]!r}): "
                "import a graph into it first (import-graph)"
            )
        (version,) = self._db.execute("PRAGMA user_version").fetchone()
        if version != COMPLETE:  # made before any import committed into it: an empty graph is not "nothing to do"
            self._db.close()
            raise StoreError(
                f"SQLite store {str(self._path)!r} is not complete: no import into it has finished (one was "
                "interrupted, or the file comes from an older graph-refresh); import the graph again (import-graph)"
            )

    def _pages(self, done: str, params: tuple[Any, ...], up_to: int | None) -> Iterator[Candidate]:
        # One step of Python per page, none per row: chain walks each page's rows in C.
        return itertools.chain.from_iterable(self._page_by_page(done, params, up_to))

    def _page_by_page(self, done: str, params: tuple[Any, ...], up_to: int | None) -> Iterator[Iterator[Candidate]]:
        # The first page starts at the smallest key, inclusive (a record of three empty strings is a row
        # too); each later page strictly after the last row of the one before.
        cursor: tuple[str, str, str] = ("", "", "")
        window, window_params = ("", ()) if up_to is None else (_UP_TO, (up_to,))
        query = _PAGE.format(after=">=", window=window, done=done)
        while True:
            rows = self._read(query, (*cursor, *window_params, *params, self._page_size), "reading candidates")
            yield map(_candidate, rows)
            if len(rows) < self._page_size:
                return
            cursor = rows[-1]
            query = _PAGE.format(after=">", window=window, done=done)

    def _fresh_pages(self, done: str, params: tuple[Any, ...], after: int) -> Iterator[tuple[int, Candidate]]:
        query = _FRESH_PAGE.format(done=done)
        while True:
            rows = self._read(query, (after, *params, self._page_size), "reading fresh candidates")
            for position, *key in rows:
                yield position, Candidate._make(key)
            if len(rows) < self._page_size:
                return
            after = rows[-1][0]

    def _read(self, query: str, params: tuple[Any, ...], action: str) -> list[Any]:
        try:
            return self._db.execute(query, params).fetchall()
        except sqlite3.Error as error:
            raise StoreError(f"SQLite store {str(self._path)!r}: {action} failed: {error}") from error

    def arrival_end(self) -> int:
        """The largest ``package_version.id``: the rowid b-tree's last entry, no scan."""
        ((end,),) = self._read("SELECT coalesce(max(id), 0) FROM package_version", (), "reading the arrival end")
        return int(end)

    def solver_candidates(self, solver: SolverEnvironment, *, up_to: int | None = None) -> Iterator[Candidate]:
        """Versions with no solved record (error or not) by this solver, by (name, version, index)."""
        # Parameters go in the order they appear in the SQL text: cursor, window, solver, limit.
        return self._pages(_SOLVED, (solver.name,), up_to)

    def analyzer_candidates(self, *, up_to: int | None = None) -> Iterator[Candidate]:
        """Versions with no package-analyzer run, by (name, version, index)."""
        return self._pages(_ANALYZED, (), up_to)

    def fresh_solver_candidates(self, solver: SolverEnvironment, *, after: int) -> Iterator[tuple[int, Candidate]]:
        """Versions with an id above ``after`` not solved by this solver, by id."""
        return self._fresh_pages(_SOLVED, (solver.name,), after)

    def fresh_analyzer_candidates(self, *, after: int) -> Iterator[tuple[int, Candidate]]:
        """Versions with an id above ``after`` and no package-analyzer run, by id."""
        return self._fresh_pages(_ANALYZED, (), after)

    def status(self, candidate: Candidate, solvers: Sequence[SolverEnvironment]) -> ItemStatus:
        """Two point lookups: the row by its unique key (with whether it is analyzed), then its solved rows."""
        key = (normalize_name(candidate.package_name), candidate.package_version, candidate.index_url)
        rows = self._read(_STATUS, key, "looking up an item")
        if not rows:
            return ItemStatus(None, frozenset(), analyzed=False)
        ((position, analyzed),) = rows
        names = {name for (name,) in self._read(_SOLVERS_OF, (position,), "looking up an item")}
        return ItemStatus(int(position), frozenset(s.name for s in solvers if s.name in names), bool(analyzed))

    def statuses(self, candidates: Sequence[Candidate], solvers: Sequence[SolverEnvironment]) -> list[ItemStatus]:
        """One query per page of items: the rows by their unique key, each with its analysis and its solvers."""
        keys = [(normalize_name(name), version, index) for name, version, index in candidates]
        found: dict[tuple[str, str, str], ItemStatus] = {}
        for start in range(0, len(keys), self._page_size):
            page = list(dict.fromkeys(keys[start : start + self._page_size]))
            query = _STATUSES.format(rows=", ".join(["(?, ?, ?)"] * len(page)))
            params = tuple(value for key in page for value in key)
            for name, version, index, position, analyzed, solved in self._read(query, params, "looking up items"):
                names = set(solved.split(_SEPARATOR)) if solved else set()
                solved_by = frozenset(s.name for s in solvers if s.name in names)
                found[(name, version, index)] = ItemStatus(int(position), solved_by, bool(analyzed))
        unknown = ItemStatus(None, frozenset(), analyzed=False)
        return [found.get(key, unknown) for key in keys]

    def known_versions(self, packages: Sequence[tuple[str, str]]) -> dict[tuple[str, str], list[str]]:
        """One query per page of packages, on the (name, version, index) index."""
        found: dict[tuple[str, str], list[str]] = {}
        pairs = list(dict.fromkeys((normalize_name(name), index) for name, index in packages))
        for start in range(0, len(pairs), self._page_size):
            page = pairs[start : start + self._page_size]
            query = _VERSIONS.format(rows=", ".join(["(?, ?)"] * len(page)))
            params = tuple(value for pair in page for value in pair)
            for name, index, version in self._read(query, params, "looking up versions"):
                found.setdefault((name, index), []).append(version)
        return {pair: sorted(versions) for pair, versions in found.items()}

    def dependencies(self, items: Sequence[Candidate]) -> list[list[Candidate]]:
        """One query per page of items: each item's row by its unique key, joined through its dependency rows
        (every solver's) to the versions they name.

        A store imported before dependencies were kept has no table for them: a StoreError says to import again.
        """
        if not self._keeps_dependencies:
            raise StoreError(
                f"SQLite store {str(self._path)!r} was made before graph-refresh kept dependencies (no table "
                f"{_DEPENDENCY_TABLE!r}): import the graph again (import-graph)"
            )
        keys = [(normalize_name(name), version, index) for name, version, index in items]
        distinct = list(dict.fromkeys(keys))  # an item asked twice is read once
        found: dict[tuple[str, str, str], list[Candidate]] = {}
        for start in range(0, len(distinct), self._page_size):
            page = distinct[start : start + self._page_size]
            query = _DEPENDENCIES.format(rows=", ".join(["(?, ?, ?)"] * len(page)))
            params = tuple(value for key in page for value in key)
            for name, version, index, *dependency in self._read(query, params, "looking up dependencies"):
                found.setdefault((name, version, index), []).append(Candidate._make(dependency))
        return [sorted(found.get(key, ())) for key in keys]

    def solver_backlog(
        self,
        solver: SolverEnvironment,
        *,
        up_to: int | None = None,
        before: tuple[int, Candidate] | None = None,
    ) -> int:
        """Number of versions :meth:`solver_candidates` yields for ``solver``: one ``COUNT`` query (without a
        window, the versions minus the solver's solved rows)."""
        if up_to is None and before is None:
            return self._whole_backlog(_SOLVED_BY, (solver.name,))
        return self._count(_SOLVED, (solver.name,), *_backlog_window(up_to, before))

    def analyzer_backlog(self, *, up_to: int | None = None, before: tuple[int, Candidate] | None = None) -> int:
        """Number of versions :meth:`analyzer_candidates` yields: one ``COUNT`` query (without a window, the
        versions minus the analyzed rows)."""
        if up_to is None and before is None:
            return self._whole_backlog("analyzed", ())
        return self._count(_ANALYZED, (), *_backlog_window(up_to, before))

    def solver_fresh_ahead(self, solver: SolverEnvironment, *, after: int, before: int) -> int:
        """Versions with ``after < id < before`` not solved by this solver: one ``COUNT`` over an id range."""
        return self._count(_SOLVED, (solver.name,), _ARRIVED_BETWEEN, (after, before))

    def analyzer_fresh_ahead(self, *, after: int, before: int) -> int:
        """Versions with ``after < id < before`` and no package-analyzer run: one ``COUNT`` over an id range."""
        return self._count(_ANALYZED, (), _ARRIVED_BETWEEN, (after, before))

    def _count(self, done: str, params: tuple[Any, ...], window: str = "", window_params: tuple[Any, ...] = ()) -> int:
        query = _COUNT.format(window=window, done=done)
        ((count,),) = self._read(query, (*window_params, *params), "counting the backlog")
        return int(count)

    def _whole_backlog(self, done_table: str, params: tuple[Any, ...]) -> int:
        query = _WHOLE_BACKLOG.format(done_table=done_table)
        ((count,),) = self._read(query, params, "counting the backlog")
        return int(count)

    def index_urls(self) -> list[str]:
        """Distinct index URLs of the stored versions, leaving out an index whose every version is known only
        as what another depends on (never listed, solved or analyzed itself): a ``depends_on`` target never
        makes its index one the deployment trusts (docs/lanes.md, "A request brings what it needs")."""
        if not self._keeps_dependencies:
            rows = self._db.execute("SELECT DISTINCT index_url FROM package_version ORDER BY index_url")
        else:  # each subquery is read once into a temporary index: one pass over the versions
            rows = self._db.execute(
                "SELECT DISTINCT index_url FROM package_version"
                " WHERE id NOT IN (SELECT dependency_id FROM depends_on)"
                " OR id IN (SELECT package_version_id FROM solved)"
                " OR id IN (SELECT package_version_id FROM analyzed)"
                " ORDER BY index_url"
            )
        return [url for (url,) in rows]

    def close(self) -> None:
        self._db.close()

    @classmethod
    def import_into(
        cls, path: Path, records: Iterable[GraphRecord], *, batch_size: int = IMPORT_BATCH_RECORDS
    ) -> ImportResult:
        """Import ``records`` into the store at ``path`` so that it is complete or as it was (see
        :meth:`import_records`), whatever stops the import (an error, a signal raised as an exception, a
        crash).

        An existing store is imported into in place, in one transaction: SQLite's journal undoes an
        unfinished one, even after a crash, and nothing is copied. A new store is built beside ``path``
        under a hidden temporary name and renamed to ``path`` once its import has committed: until then
        ``path`` does not exist, and on failure the temporary file is removed (after a crash it stays,
        hidden, and ``path`` is still absent).
        """
        if path.exists():
            store = cls(path, create=True)
            try:
                return store.import_records(records, batch_size=batch_size)
            finally:
                store.close()
        building = path.with_name(f".{path.name}.{os.urandom(4).hex()}.tmp")
        try:
            store = cls(building, create=True)
            try:
                result = store.import_records(records, batch_size=batch_size)
            finally:
                store.close()
            os.replace(building, path)
        except BaseException:
            for leftover in (building, building.with_name(building.name + "-journal")):
                with contextlib.suppress(OSError):  # never there, or its folder is not one (the error says so)
                    leftover.unlink()
            raise
        return result

    def import_graph(self, graph: GraphFile) -> dict[str, int]:
        """Load a checked in-memory graph; as :meth:`import_records`. Returns rows added per table."""
        return self.import_records(graph.records()).added

    def import_records(self, records: Iterable[GraphRecord], *, batch_size: int = IMPORT_BATCH_RECORDS) -> ImportResult:
        """Load graph records in one transaction, ``batch_size`` at a time; idempotent.

        ``records`` may be a stream (:func:`read_graph_file`): it is consumed once, and memory holds
        one batch. Either everything is imported or, on any error (a bad record raising ConfigError
        from the stream included), nothing: the transaction is rolled back and the error re-raised.
        A solved or analyzed record adds its version when the graph lacks it, whatever the order, and so does
        each version a solved record depends on. Dependencies add up: a record seen again with other ones
        keeps those it had.
        """
        from graph_refresh.store.graphfile import SolvedRecord

        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        db = self._db
        count = 0
        try:
            db.execute("BEGIN IMMEDIATE")
            before = self._counts()
            versions: list[tuple[str, str, str]] = []
            solved: list[tuple[str, str, str, str, int]] = []
            analyzed: list[tuple[str, str, str]] = []
            depends_on: list[tuple[str, ...]] = []
            # A package has many versions: its name is normalised once while it stays in this cache.
            normalize = functools.lru_cache(maxsize=IMPORT_NAME_CACHE_ENTRIES)(normalize_name)
            for record in records:
                count += 1
                if isinstance(record, Candidate):
                    versions.append((normalize(record.package_name), record.package_version, record.index_url))
                    if len(versions) >= batch_size:
                        self._insert(versions, solved, analyzed, depends_on)
                    continue
                candidate = record.candidate
                key = (normalize(candidate.package_name), candidate.package_version, candidate.index_url)
                versions.append(key)
                if isinstance(record, SolvedRecord):
                    solved.append((*key, record.solver, int(record.error)))
                    for dependency in record.depends_on:  # each an entity too: its version is added when new
                        target = (normalize(dependency.package_name), dependency.package_version, dependency.index_url)
                        versions.append(target)
                        depends_on.append((*key, record.solver, *target))
                else:
                    analyzed.append(key)
                if len(versions) >= batch_size:  # a dependency counts as a version: the batch bounds both
                    self._insert(versions, solved, analyzed, depends_on)
            self._insert(versions, solved, analyzed, depends_on)
            added = {table: rows - before[table] for table, rows in self._counts().items()}
            db.execute(f"PRAGMA user_version = {COMPLETE}")  # in the transaction: complete once it commits
            db.execute("COMMIT")
        except BaseException as error:
            if db.in_transaction:
                db.execute("ROLLBACK")
            if isinstance(error, sqlite3.Error):
                raise StoreError(
                    f"import into SQLite store {str(self._path)!r} failed, nothing imported: {error}"
                ) from error
            raise
        return ImportResult(count, added)

    def _insert(
        self,
        versions: list[tuple[str, str, str]],
        solved: list[tuple[str, str, str, str, int]],
        analyzed: list[tuple[str, str, str]],
        depends_on: list[tuple[str, ...]],
    ) -> None:
        """Insert one batch (versions first: the other rows refer to them), then empty the lists."""
        db = self._db
        db.executemany(
            "INSERT OR IGNORE INTO package_version (package_name, package_version, index_url) VALUES (?, ?, ?)",
            versions,
        )
        db.executemany(
            f"INSERT INTO solved (package_version_id, solver, error) VALUES (({_VERSION_ID}), ?, ?)"
            " ON CONFLICT DO UPDATE SET error = excluded.error",
            solved,
        )
        db.executemany(f"INSERT OR IGNORE INTO analyzed (package_version_id) VALUES (({_VERSION_ID}))", analyzed)
        db.executemany(
            f"INSERT OR IGNORE INTO depends_on (package_version_id, solver, dependency_id)"
            f" VALUES (({_VERSION_ID}), ?, ({_VERSION_ID}))",
            depends_on,
        )
        versions.clear()
        solved.clear()
        analyzed.clear()
        depends_on.clear()

    def _counts(self) -> dict[str, int]:
        return {table: self._db.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in _TABLES}


def _backlog_window(up_to: int | None, before: tuple[int, Candidate] | None) -> tuple[str, tuple[Any, ...]]:
    """The count's window: arrived at or before ``up_to``, and ahead of ``before``'s key in the stream's order."""
    params: tuple[Any, ...]
    window, params = "", ()
    if up_to is not None:
        window, params = _ARRIVED_UP_TO, (up_to,)
    if before is not None:
        _, key = before
        window += _BEFORE_KEY
        params = (*params, normalize_name(key.package_name), key.package_version, key.index_url)
    return window, params
