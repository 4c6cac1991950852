"""What graph-refresh's ConfigMaps in middletier (the ledger, the requests) need of the cluster client, and how
often a write that lost a race to another writer is tried again. Every change is a read, then an update
guarded by the ``resourceVersion`` read: a concurrent writer's change is never lost."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

from graph_refresh.errors import AlreadyExists, Conflict
from graph_refresh.items import OWNED_LABELS

WRITE_ATTEMPTS = 5  # writes that lost a race to another writer, then give up until the next run


class ConfigMaps(Protocol):
    """What the ledger and the requests need of the cluster client (``kube.Cluster``)."""

    def read_configmap(self, namespace: str, name: str) -> tuple[dict[str, str], str] | None: ...

    def create_configmap(
        self, namespace: str, name: str, data: Mapping[str, str], labels: Mapping[str, str]
    ) -> str: ...

    def replace_configmap(
        self,
        namespace: str,
        name: str,
        data: Mapping[str, str],
        resource_version: str,
        *,
        labels: Mapping[str, str],
    ) -> str: ...


def change(
    cluster: ConfigMaps, namespace: str, name: str, edit: Callable[[dict[str, str] | None], dict[str, str] | None]
) -> None:
    """Change ConfigMap ``name``: ``edit`` gets its data as read (None when it does not exist) and returns the
    new data, or None for no change. The write is guarded by what was read (create when it did not exist, else
    an update with its resourceVersion); when another writer came first, the ConfigMap is read and ``edit``
    applied again, so their change is never lost. Raises ClusterError, Conflict when it kept changing."""
    for _ in range(WRITE_ATTEMPTS):
        found = cluster.read_configmap(namespace, name)
        data = edit(None if found is None else found[0])
        if data is None:
            return
        try:
            if found is None:
                cluster.create_configmap(namespace, name, data, OWNED_LABELS)
            else:
                cluster.replace_configmap(namespace, name, data, found[1], labels=OWNED_LABELS)
            return
        except (AlreadyExists, Conflict):
            continue
    raise Conflict(f"the ConfigMap {name} kept changing ({WRITE_ATTEMPTS} conflicts): try again")
