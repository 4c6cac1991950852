"""The requests ConfigMap (``graph-refresh-requests``) in middletier: read by a run and by ``request --list``,
changed by ``app.py request`` and by a real run that removes what is done (docs/lanes.md)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from graph_refresh.configmaps import WRITE_ATTEMPTS, ConfigMaps
from graph_refresh.errors import AlreadyExists, Conflict
from graph_refresh.items import OWNED_LABELS
from graph_refresh.runtime import warn_each
from graph_refresh.waiting.requests import REQUESTS_NAME, Request
from graph_refresh.waiting.requests import from_data as requests_from_data

# --- the requests ConfigMap -----------------------------------------------------------------------------------


@dataclass
class Requests:
    """The open requests as read, and what a change must be guarded with."""

    requests: list[Request] = field(default_factory=list)
    data: dict[str, str] = field(default_factory=dict)
    """The ConfigMap's data as read (unreadable values included: a change writes them back untouched)."""
    resource_version: str | None = None
    """None when there is no ConfigMap."""


def read(cluster: ConfigMaps, namespace: str, *, warn: bool = True, now: float | None = None) -> Requests:
    """The requests of ``namespace`` as of ``now`` (see ``requests.from_data``); unreadable values are warnings
    naming their keys. Raises ClusterError."""
    found = cluster.read_configmap(namespace, REQUESTS_NAME)
    if found is None:
        return Requests()
    data, version = found
    requests, problems = requests_from_data(data, now=now)
    if warn:
        warn_each(problems, f"Requests {REQUESTS_NAME}")
    return Requests(requests, dict(data), version)


def change(cluster: ConfigMaps, namespace: str, edit: Callable[[Requests], dict[str, str] | None]) -> Requests:
    """Apply ``edit`` (the requests as read → the new data, or None for no change) under the resourceVersion;
    on a conflict read again and apply it again, so another writer's change is never lost. Returns what was
    read last. Raises ClusterError."""
    for attempt in range(WRITE_ATTEMPTS):
        current = read(cluster, namespace, warn=attempt == 0)
        data = edit(current)
        if data is None:
            return current
        try:
            if current.resource_version is None:
                cluster.create_configmap(namespace, REQUESTS_NAME, data, OWNED_LABELS)
            else:
                cluster.replace_configmap(namespace, REQUESTS_NAME, data, current.resource_version, labels=OWNED_LABELS)
            return current
        except (AlreadyExists, Conflict):
            continue
    raise Conflict(f"the ConfigMap {REQUESTS_NAME} kept changing ({WRITE_ATTEMPTS} conflicts): try again")
