"""The store under test: every contract test runs once per implementation.

``dgraph`` talks gRPC to the stand-in alpha of tests/fakes/dgraph.py; ``dgraph-live`` (opt-in, set
``DGRAPH_TEST_URL=host:port`` of a disposable Dgraph: its data is dropped) loads the same documents into
a real Dgraph with the schema of docs/dgraph.md.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from graph_refresh.config import StoreSettings
from graph_refresh.errors import TemplateError
from graph_refresh.items import Candidate, normalize_name, parse_solver_name
from graph_refresh.store.base import GraphStore
from graph_refresh.store.dgraph import DgraphStore
from graph_refresh.store.graphfile import GraphFile, parse_graph
from graph_refresh.store.sqlite import SQLiteStore
from tests.fakes.dgraph import FakeDgraph

LIVE_URL = os.environ.get("DGRAPH_TEST_URL", "").removeprefix("dgraph://").rstrip("/")
LIVE_SCHEMA = """
python_package_version_entity_label: string @index(exact) .
python_package_version_label: string @index(exact) .
python_package_index_label: string @index(exact) .
package_analyzer_run_label: string @index(exact) .
ecosystem: string @index(exact) .
package_name: string @index(exact) .
package_version: string @index(exact) .
index_url: string @index(exact) .
os_name: string @index(exact) .
os_version: string @index(exact) .
python_version: string @index(exact) .
url: string @index(exact) .
solver_error: bool @index(bool) .
installed_from: [uid] @reverse @count .
package_analyzer_input: [uid] @reverse @count .
provided_by: [uid] @reverse @count .
depends_on: [uid] @reverse @count .
"""


def dgraph_nodes(
    graph: GraphFile, known: Mapping[str, str] | None = None
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The graph as Thoth's writers lay it out in Dgraph: one JSON mutation of blank-node objects.

    ``known`` maps entity and index keys (see below) of nodes an earlier mutation wrote to their uids:
    those are referred to, not written again. Returns the nodes and each new key's blank-node name.
    """
    known = known or {}
    blanks: dict[str, str] = {}
    nodes: dict[str, dict[str, Any]] = {}

    def node(key: str, make: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
        if key not in nodes:
            if key in known:
                nodes[key] = {"uid": known[key]}
            else:
                blanks[key] = f"n{len(blanks)}"
                nodes[key] = make(f"_:{blanks[key]}")
        return nodes[key]

    def entity(candidate: Candidate) -> dict[str, Any]:
        name = normalize_name(candidate.package_name)
        index = node(f"index {candidate.index_url}", lambda uid: {"uid": uid, "python_package_index_label": "index"})
        index.setdefault("url", candidate.index_url)
        return node(
            f"entity {name} {candidate.package_version} {candidate.index_url}",
            lambda uid: {
                "uid": uid,
                "python_package_version_entity_label": "entity",
                "ecosystem": "python",
                "package_name": name,
                "package_version": candidate.package_version,
                "index_url": candidate.index_url,
                "provided_by": [{"uid": index["uid"]}],
            },
        )

    for candidate in graph.package_versions:
        entity(candidate)
    for record in graph.solved:
        try:
            env = parse_solver_name(record.solver, template="graph file")
            os_fields = {"os_name": env.os_name, "os_version": env.os_version, "python_version": env.python_version}
        except TemplateError:
            os_fields = {"os_name": record.solver, "os_version": "?", "python_version": "?"}
        solved = {"python_package_version_label": "solved", "solver_error": record.error, **os_fields}
        if record.depends_on:
            solved["depends_on"] = [{"uid": entity(dependency)["uid"]} for dependency in record.depends_on]
        entity(record.candidate).setdefault("installed_from", []).append(solved)
    for candidate in graph.analyzed:
        entity(candidate).setdefault("package_analyzer_input", []).append({"package_analyzer_run_label": "run"})
    return list(nodes.values()), blanks


def load_live(document: dict[str, Any], known: dict[str, str], *, fresh: bool = False) -> StoreSettings:
    """Write a graph document into the live Dgraph, from scratch (schema included) when ``fresh``. ``known``
    maps the entity and index keys written so far to their uids: a later load refers to those nodes instead
    of writing them twice (a later import), and adds the uids it writes."""
    import pydgraph

    stub = pydgraph.DgraphClientStub(LIVE_URL)
    try:
        client = pydgraph.DgraphClient(stub)
        if fresh:
            client.alter(pydgraph.Operation(drop_all=True), timeout=60)
            client.alter(pydgraph.Operation(schema=LIVE_SCHEMA), timeout=60)
        nodes, blanks = dgraph_nodes(parse_graph(document, source="test"), known)
        if nodes:
            response = client.txn().mutate(set_obj=nodes, commit_now=True, timeout=60)
            known.update({key: response.uids[blank] for key, blank in blanks.items()})
    finally:
        stub.close()
    return StoreSettings(graph_service_host=LIVE_URL)


class MakeStore:
    """``make_store(document)``: a store holding a graph document (import-graph's format), with a small page size to
    exercise paging. ``make_store.add(store, document)``: import a later document into that store, the way
    its graph grows in production (an ``import-graph`` of SQLite; Thoth's writers syncing into Dgraph)."""

    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.kind = kind
        self._tmp_path = tmp_path
        self.stores: list[GraphStore] = []
        self._fakes: dict[int, FakeDgraph] = {}
        self._live_uids: dict[str, str] = {}

    def __call__(self, document: dict[str, Any], *, page_size: int = 3) -> GraphStore:
        store: GraphStore
        if self.kind == "dgraph":
            fake = FakeDgraph(document).start()
            store = DgraphStore(fake.settings(), page_size=page_size)
            self._fakes[id(store)] = fake
        elif self.kind == "dgraph-live":
            self._live_uids = {}
            store = DgraphStore(load_live(document, self._live_uids, fresh=True), page_size=page_size)
        else:
            path = self._tmp_path / f"store-{len(self.stores)}.sqlite3"
            sqlite = SQLiteStore(path, page_size=page_size, create=True)
            sqlite.import_graph(parse_graph(document, source="test"))
            store = sqlite
        self.stores.append(store)
        return store

    def add(self, store: GraphStore, document: dict[str, Any]) -> None:
        """Import ``document`` into ``store`` (made by this factory) on top of what it holds."""
        graph = parse_graph(document, source="test")
        if isinstance(store, SQLiteStore):
            store.import_graph(graph)
        elif self.kind == "dgraph":
            self._fakes[id(store)].add_graph(graph)
        else:
            load_live(document, self._live_uids)

    def close(self) -> None:
        for store in self.stores:
            store.close()
        for fake in self._fakes.values():
            fake.stop()


@pytest.fixture(
    params=[
        "sqlite",
        "dgraph",
        pytest.param(
            "dgraph-live",
            marks=[
                pytest.mark.live,
                pytest.mark.skipif(not LIVE_URL, reason="set DGRAPH_TEST_URL=host:port of a disposable Dgraph"),
            ],
        ),
    ]
)
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MakeStore]:
    """Build stores of one implementation from graph documents (see MakeStore)."""
    factory = MakeStore(request.param, tmp_path)
    yield factory
    factory.close()
