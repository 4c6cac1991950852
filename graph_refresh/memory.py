"""The ledger ConfigMap in middletier: read once at the start of a run, written once at its end (SPEC §11).

Writes use optimistic concurrency: the update carries the ``resourceVersion`` that was read; when another
run wrote in between (409), the ledger is read again, the two are merged against what this run first read
(:func:`graph_refresh.ledger.merge`), and the write is tried again. Neither a ledger that cannot be read nor
one that cannot be written fails the run: the first is a warning and the run goes on as if it were empty
(and replaces it at the end); the second is a warning, and the failed Jobs still in the cluster are learned
from again by the next run.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from graph_refresh.errors import AlreadyExists, ClusterError, Conflict
from graph_refresh.items import LABEL_MANAGED_BY, MANAGER
from graph_refresh.ledger import LEDGER_NAME, LedgerEntry, bound, from_data, merge, to_data

logger = logging.getLogger(__name__)

LEDGER_LABELS = {LABEL_MANAGED_BY: MANAGER}
WRITE_ATTEMPTS = 5  # writes that lost a race to another run, then give up until the next run


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


@dataclass
class Ledger:
    """The ledger as this run read it."""

    entries: dict[str, LedgerEntry] = field(default_factory=dict)
    resource_version: str | None = None
    """None when there was no ConfigMap (or it could not be read): the write creates it."""


def read(cluster: ConfigMaps, namespace: str) -> Ledger:
    """The ledger of ``namespace``; empty, with a warning, when it cannot be read. Entries that cannot be
    read are dropped, each with a warning naming its key."""
    try:
        found = cluster.read_configmap(namespace, LEDGER_NAME)
    except ClusterError as error:
        logger.warning("The ledger %s could not be read, the run goes on without it: %s", LEDGER_NAME, error)
        return Ledger()
    if found is None:
        return Ledger()
    data, resource_version = found
    entries, problems = from_data(data)
    for problem in problems:
        logger.warning("Ledger %s: %s", LEDGER_NAME, problem)
    logger.info("Ledger %s: %d items with failures", LEDGER_NAME, len(entries))
    return Ledger(entries, resource_version)


def write(
    cluster: ConfigMaps,
    namespace: str,
    read_at_start: Ledger,
    entries: Mapping[str, LedgerEntry],
    *,
    now: float,
    expire_after: float,
) -> bool:
    """Write ``entries`` (the read ledger with this run's changes), merging with whatever another run wrote
    meanwhile; returns whether the ledger was written. Entries past their quarantine are dropped first,
    then the oldest (with a warning) to stay under the ConfigMap limit."""
    ours, base, version = dict(entries), dict(read_at_start.entries), read_at_start.resource_version
    for _ in range(WRITE_ATTEMPTS):
        kept, _expired, oldest = bound(ours, now, expire_after=expire_after)
        if oldest:
            logger.warning("Ledger %s is full: the %d oldest entries were dropped", LEDGER_NAME, len(oldest))
        if version is None and not kept:
            return True  # nothing learned, nothing to keep: no ConfigMap is needed
        data = to_data(kept.values())
        try:
            if version is None:
                cluster.create_configmap(namespace, LEDGER_NAME, data, LEDGER_LABELS)
            else:
                cluster.replace_configmap(namespace, LEDGER_NAME, data, version, labels=LEDGER_LABELS)
            logger.info("Ledger %s written: %d items with failures", LEDGER_NAME, len(kept))
            return True
        except (AlreadyExists, Conflict):
            logger.info("Ledger %s changed since it was read: merging", LEDGER_NAME)
        except ClusterError as error:
            logger.warning("The ledger %s could not be written: %s", LEDGER_NAME, error)
            return False
        try:
            again = _reread(cluster, namespace)
        except ClusterError as error:
            logger.warning("The ledger %s could not be read again: %s", LEDGER_NAME, error)
            return False
        ours = merge(ours, again.entries, base=base)
        base, version = again.entries, again.resource_version
    logger.warning("The ledger %s kept changing under this run: not written this time", LEDGER_NAME)
    return False


def _reread(cluster: ConfigMaps, namespace: str) -> Ledger:
    """Read the ledger again after a conflict; a read failure propagates (the write then gives up)."""
    found = cluster.read_configmap(namespace, LEDGER_NAME)
    if found is None:
        return Ledger()
    entries, _ = from_data(found[0])
    return Ledger(entries, found[1])
