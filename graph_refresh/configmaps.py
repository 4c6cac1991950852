"""What graph-refresh's ConfigMaps in middletier (the ledger, the requests) need of the cluster client, and how
often a write that lost a race to another writer is tried again. Every change is a read, then an update
guarded by the ``resourceVersion`` read: a concurrent writer's change is never lost."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

WRITE_ATTEMPTS = 5  # writes that lost a race to another writer, then give up until the next run


class ConfigMaps(Protocol):
    """What the ledger needs of the cluster client (``kube.Cluster``)."""

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
