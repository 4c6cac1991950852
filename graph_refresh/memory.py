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
from graph_refresh.items import OWNED_LABELS
from graph_refresh.ledger import (
    LEDGER_NAME,
    MAX_DATA_BYTES,
    LedgerEntry,
    bound,
    format_time,
    from_data,
    merge,
    parse_time,
    to_data,
)

logger = logging.getLogger(__name__)

LEARNED_UNTIL_KEY = "learned-until"  # failed Jobs that ended by then are in the entries, or were cleared from them
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
    learned_until: float | None = None
    """Failed Jobs that ended by then were learned by an earlier run: learning them again would undo an
    operator's clearing of an item (or of everything). None: learn from every failed Job."""


def read(cluster: ConfigMaps, namespace: str, *, now: float) -> Ledger:
    """The ledger of ``namespace`` as the run at time ``now`` finds it.

    No ConfigMap means no memory (an operator deleting it clears everything): the failed Jobs that ended
    before ``now`` are not learned again. A ledger that cannot be read is a warning, and the run learns
    from every failed Job it sees. Entries that cannot be read are dropped, each with a warning naming it.
    """
    try:
        found = cluster.read_configmap(namespace, LEDGER_NAME)
    except ClusterError as error:
        logger.warning("The ledger %s could not be read, the run goes on without it: %s", LEDGER_NAME, error)
        return Ledger()
    if found is None:
        return Ledger(learned_until=now)
    ledger = _parsed(*found, warn=True)
    logger.info("Ledger %s: %d items with failures", LEDGER_NAME, len(ledger.entries))
    return ledger


def _parsed(data: Mapping[str, str], resource_version: str, *, warn: bool) -> Ledger:
    data = dict(data) if isinstance(data, Mapping) else {}
    learned_until = parse_time(data.pop(LEARNED_UNTIL_KEY, None))
    entries, problems = from_data(data)
    for problem in problems if warn else ():
        logger.warning("Ledger %s: %s", LEDGER_NAME, problem)
    return Ledger(entries, resource_version, learned_until)


def write(
    cluster: ConfigMaps,
    namespace: str,
    read_at_start: Ledger,
    entries: Mapping[str, LedgerEntry],
    *,
    now: float,
    expire_after: float,
    learned_until: float,
    max_bytes: int = MAX_DATA_BYTES,
) -> bool:
    """Write ``entries`` (the read ledger with this run's changes) and ``learned_until`` (this run saw every
    failed Job that ended by then), merging with whatever another run wrote meanwhile; returns whether the
    ledger was written. Entries past their quarantine are dropped first, then the oldest (with a warning)
    to stay under the ConfigMap limit."""
    ours, base, version = dict(entries), dict(read_at_start.entries), read_at_start.resource_version
    for _ in range(WRITE_ATTEMPTS):
        kept, _expired, oldest = bound(ours, now, expire_after=expire_after, max_bytes=max_bytes)
        if oldest:
            named = ", ".join(
                f"{e.key} ({e.item.package} {e.item.version}, {e.failures} failures)" for e in oldest[:10]
            )
            logger.warning(
                "Ledger %s is full: the %d oldest entries were dropped (their items start again): %s%s",
                LEDGER_NAME,
                len(oldest),
                named,
                ", ..." if len(oldest) > 10 else "",
            )
        data = {**to_data(kept.values()), LEARNED_UNTIL_KEY: format_time(learned_until)}
        try:
            if version is None:
                cluster.create_configmap(namespace, LEDGER_NAME, data, OWNED_LABELS)
            else:
                cluster.replace_configmap(namespace, LEDGER_NAME, data, version, labels=OWNED_LABELS)
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
        learned_until = max(learned_until, again.learned_until or learned_until)
    logger.warning("The ledger %s kept changing under this run: not written this time", LEDGER_NAME)
    return False


def _reread(cluster: ConfigMaps, namespace: str) -> Ledger:
    """Read the ledger again after a conflict; a read failure propagates (the write then gives up)."""
    found = cluster.read_configmap(namespace, LEDGER_NAME)
    return Ledger() if found is None else _parsed(*found, warn=False)
