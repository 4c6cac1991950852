"""Graph stores: where candidates come from (design: The graph store)."""

from __future__ import annotations

import time
from collections.abc import Callable

from graph_refresh.config import StoreSettings
from graph_refresh.store.base import GraphStore


def open_store(settings: StoreSettings, *, sleep: Callable[[float], None] = time.sleep) -> GraphStore:
    """Dgraph when a host is configured, else the embedded SQLite store. ``sleep`` waits before a retry."""
    if settings.graph_service_host:
        from graph_refresh.store.dgraph import DgraphStore  # imports grpc only when used

        return DgraphStore(settings, sleep=sleep)
    from graph_refresh.store.sqlite import SQLiteStore

    return SQLiteStore(settings.sqlite_path)
