"""The requests ConfigMap (``graph-refresh-requests``) in middletier: read by a run and by ``request --list``,
changed by ``app.py request`` and by a real run that removes what is done (docs/lanes.md)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from graph_refresh import configmaps
from graph_refresh.configmaps import ConfigMaps
from graph_refresh.runtime import warn_each
from graph_refresh.waiting.requests import REQUESTS_NAME, Request
from graph_refresh.waiting.requests import from_data as requests_from_data

# --- the requests ConfigMap -----------------------------------------------------------------------------------


@dataclass
class Requests:
    """The open requests as read, and the data they were read from."""

    requests: list[Request] = field(default_factory=list)
    data: dict[str, str] = field(default_factory=dict)
    """The ConfigMap's data as read (unreadable values included: a change writes them back untouched)."""


def read(cluster: ConfigMaps, namespace: str, *, now: float | None = None) -> Requests:
    """The requests of ``namespace`` as of ``now`` (see ``requests.from_data``); unreadable values are warnings
    naming their keys. Raises ClusterError."""
    found = cluster.read_configmap(namespace, REQUESTS_NAME)
    return Requests() if found is None else _parsed(found[0], now=now, warn=True)


def _parsed(data: dict[str, str], *, now: float | None, warn: bool) -> Requests:
    requests, problems = requests_from_data(data, now=now)
    if warn:
        warn_each(problems, f"Requests {REQUESTS_NAME}")
    return Requests(requests, dict(data))


def change(cluster: ConfigMaps, namespace: str, edit: Callable[[Requests], dict[str, str] | None]) -> Requests:
    """Apply ``edit`` (the requests as read → the new data, or None for no change) under the resourceVersion;
    on a conflict read again and apply it again, so another writer's change is never lost. Returns what was
    read last. Raises ClusterError."""
    read_last, reads = Requests(), 0

    def apply(data: dict[str, str] | None) -> dict[str, str] | None:
        nonlocal read_last, reads
        read_last = Requests() if data is None else _parsed(data, now=None, warn=reads == 0)
        reads += 1
        return edit(read_last)

    configmaps.change(cluster, namespace, REQUESTS_NAME, apply)
    return read_last
