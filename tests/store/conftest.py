"""The store under test: every contract test runs once per implementation."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from graph_refresh.store.base import GraphStore
from graph_refresh.store.dgraph import DgraphStore
from graph_refresh.store.graphfile import parse_graph
from graph_refresh.store.sqlite import SQLiteStore

from ..fakes.dgraph import FakeDgraph

MakeStore = Callable[[dict[str, Any]], GraphStore]


@pytest.fixture(params=["sqlite", "dgraph"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MakeStore]:
    """Build a store holding a graph document (SPEC §6 format), with a small page size to exercise paging.

    The Dgraph store talks gRPC to the stand-in alpha of tests/fakes/dgraph.py loaded with the same document.
    """
    stores: list[GraphStore] = []
    fakes: list[FakeDgraph] = []

    def make(document: dict[str, Any]) -> GraphStore:
        store: GraphStore
        if request.param == "dgraph":
            fakes.append(FakeDgraph(document).start())
            store = DgraphStore(fakes[-1].settings(), page_size=3)
        else:
            store = SQLiteStore(tmp_path / f"store-{len(stores)}.sqlite3", page_size=3)
            store.import_graph(parse_graph(document, source="test"))
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()
    for fake in fakes:
        fake.stop()
