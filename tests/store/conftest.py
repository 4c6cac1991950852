"""The store under test: every contract test runs once per implementation.

``dgraph`` talks gRPC to the stand-in alpha of tests/fakes/dgraph.py; ``dgraph-live`` (opt-in, set
``DGRAPH_TEST_URL=host:port`` of a disposable Dgraph: its data is dropped) loads the same documents into
a real Dgraph with the DGRAPH.md schema.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
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

from ..fakes.dgraph import FakeDgraph

MakeStore = Callable[[dict[str, Any]], GraphStore]
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
"""


def dgraph_nodes(graph: GraphFile) -> list[dict[str, Any]]:
    """The graph as Thoth's writers lay it out in Dgraph: one JSON mutation of blank-node objects."""
    indexes: dict[str, dict[str, Any]] = {}
    entities: dict[tuple[str, str, str], dict[str, Any]] = {}

    def entity(candidate: Candidate) -> dict[str, Any]:
        key = (normalize_name(candidate.package_name), candidate.package_version, candidate.index_url)
        if key not in entities:
            index = indexes.setdefault(
                key[2], {"uid": f"_:i{len(indexes)}", "python_package_index_label": "index", "url": key[2]}
            )
            entities[key] = {
                "uid": f"_:e{len(entities)}",
                "python_package_version_entity_label": "entity",
                "ecosystem": "python",
                "package_name": key[0],
                "package_version": key[1],
                "index_url": key[2],
                "provided_by": [{"uid": index["uid"]}],
            }
        return entities[key]

    for candidate in graph.package_versions:
        entity(candidate)
    for record in graph.solved:
        try:
            env = parse_solver_name(record.solver, template="graph file")
            os_fields = {"os_name": env.os_name, "os_version": env.os_version, "python_version": env.python_version}
        except TemplateError:
            os_fields = {"os_name": record.solver, "os_version": "?", "python_version": "?"}
        solved = {"python_package_version_label": "solved", "solver_error": record.error, **os_fields}
        entity(record.candidate).setdefault("installed_from", []).append(solved)
    for candidate in graph.analyzed:
        entity(candidate).setdefault("package_analyzer_input", []).append({"package_analyzer_run_label": "run"})
    return [*indexes.values(), *entities.values()]


def load_live(document: dict[str, Any]) -> StoreSettings:
    import pydgraph

    stub = pydgraph.DgraphClientStub(LIVE_URL)
    try:
        client = pydgraph.DgraphClient(stub)
        client.alter(pydgraph.Operation(drop_all=True), timeout=60)
        client.alter(pydgraph.Operation(schema=LIVE_SCHEMA), timeout=60)
        nodes = dgraph_nodes(parse_graph(document, source="test"))
        if nodes:
            client.txn().mutate(set_obj=nodes, commit_now=True, timeout=60)
    finally:
        stub.close()
    return StoreSettings(graph_service_host=LIVE_URL)


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
    """Build a store holding a graph document (SPEC §6 format), with a small page size to exercise paging."""
    stores: list[GraphStore] = []
    fakes: list[FakeDgraph] = []

    def make(document: dict[str, Any]) -> GraphStore:
        store: GraphStore
        if request.param == "dgraph":
            fakes.append(FakeDgraph(document).start())
            store = DgraphStore(fakes[-1].settings(), page_size=3)
        elif request.param == "dgraph-live":
            store = DgraphStore(load_live(document), page_size=3)
        else:
            store = SQLiteStore(tmp_path / f"store-{len(stores)}.sqlite3", page_size=3, create=True)
            store.import_graph(parse_graph(document, source="test"))
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()
    for fake in fakes:
        fake.stop()
