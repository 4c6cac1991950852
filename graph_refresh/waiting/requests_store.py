"""The requests ConfigMap (``graph-refresh-requests``) in middletier: read by a run, ``explain`` and ``request
--list``, changed by ``app.py request`` and by a real run that removes what ended (docs/lanes.md)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from graph_refresh import configmaps
from graph_refresh.configmaps import ConfigMaps
from graph_refresh.waiting.requests import REQUESTS_NAME, Request, Unreadable, from_data


@dataclass
class Requests:
    """The requests as read, the values that could not be read, and the data they were read from."""

    requests: list[Request] = field(default_factory=list)
    unreadable: list[Unreadable] = field(default_factory=list)
    data: dict[str, str] = field(default_factory=dict)
    """The ConfigMap's data as read (unreadable values included: a change writes them back untouched)."""


def read(cluster: ConfigMaps, namespace: str) -> Requests:
    """The requests of ``namespace``. Raises ClusterError."""
    found = cluster.read_configmap(namespace, REQUESTS_NAME)
    return Requests() if found is None else _parsed(found[0])


def _parsed(data: dict[str, str]) -> Requests:
    requests, unreadable = from_data(data)
    return Requests(requests, unreadable, dict(data))


def change(cluster: ConfigMaps, namespace: str, edit: Callable[[Requests], dict[str, str] | None]) -> Requests:
    """Apply ``edit`` (the requests as read → the new data, or None for no change) under the resourceVersion;
    on a conflict read again and apply it again, so another writer's change is never lost. Returns what was
    read last. Raises ClusterError."""
    read_last = Requests()

    def apply(data: dict[str, str] | None) -> dict[str, str] | None:
        nonlocal read_last
        read_last = Requests() if data is None else _parsed(data)
        return edit(read_last)

    configmaps.change(cluster, namespace, REQUESTS_NAME, apply)
    return read_last


def compare_and_set(
    cluster: ConfigMaps, namespace: str, *, remove: Iterable[tuple[str, str]], rewrite: Mapping[str, tuple[str, str]]
) -> int:
    """Remove each (key, value) of ``remove`` and rewrite each key of ``rewrite`` (value read → new value), only
    where the key still holds the value this run read: a key someone changed or added meanwhile is kept as they
    left it. Returns how many keys were kept that way. Raises ClusterError."""
    gone = dict(remove)
    kept = 0

    def edit(current: dict[str, str] | None) -> dict[str, str] | None:  # the values as stored: none is parsed
        nonlocal kept
        data, kept = dict(current or {}), 0
        for key, value in gone.items():
            if key in data and data[key] == value:
                del data[key]
            elif key in data:
                kept += 1
        for key, (read, new) in rewrite.items():
            if key in gone:
                continue
            if data.get(key) == read:
                data[key] = new
            elif key in data:
                kept += 1
        return None if current is None or data == current else data

    configmaps.change(cluster, namespace, REQUESTS_NAME, edit)
    return kept
