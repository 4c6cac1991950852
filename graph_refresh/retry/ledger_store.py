"""The ledger ConfigMap in middletier: read once at the start of a run, written once at its end, and changed
by an operator's ``ledger forget`` (docs/learning.md).

Writes use optimistic concurrency: the update carries the ``resourceVersion`` that was read; when another
writer changed it in between (409), the ledger is read again, the two are merged against what this run first
read (:func:`graph_refresh.ledger.merge`), and the write is tried again. Neither a ledger that cannot be read
nor one that cannot be written fails the run: the first is a warning and the run goes on as if it were empty
(and replaces it at the end); the second is one warning and a report entry, and the failed Jobs still in the
cluster are learned from again by the next run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from graph_refresh import configmaps
from graph_refresh.configmaps import WRITE_ATTEMPTS, ConfigMaps
from graph_refresh.errors import AlreadyExists, ClusterError, Conflict
from graph_refresh.items import OWNED_LABELS
from graph_refresh.retry.codec import (
    LEDGER_NAME,
    MAX_DATA_BYTES,
    bound,
    clamp_future,
    data_size,
    encode,
    from_data,
    merge,
    to_data,
)
from graph_refresh.retry.model import LedgerEntry
from graph_refresh.runtime import warn_each
from graph_refresh.text import plural, shown

logger = logging.getLogger(__name__)


@dataclass
class Ledger:
    """The ledger as this run read it."""

    entries: dict[str, LedgerEntry] = field(default_factory=dict)
    resource_version: str | None = None
    """None when there was no ConfigMap (or it could not be read): the write creates it."""
    other: dict[str, str] = field(default_factory=dict)
    """The values of the keys someone else keeps in the ConfigMap (the lanes: ``waiting/state.py``), as read."""


Others = Callable[[Mapping[str, str]], dict[str, str]]
"""Given the other keys' values as stored (as read, or as another writer left them), those to write."""


@dataclass(frozen=True)
class Written:
    """Whether the run wrote the ledger, and why not."""

    written: bool
    reason: str | None = None


def read(
    cluster: ConfigMaps, namespace: str, *, now: float, strict: bool = False, other_keys: frozenset[str] = frozenset()
) -> Ledger:
    """The ledger of ``namespace`` as the run at time ``now`` finds it.

    No ConfigMap means no memory (an operator deleting it clears everything): the failed Jobs still present
    are learned again. A ledger that cannot be read is a warning, and the run goes on as if it were empty
    (``strict``: the ClusterError is raised).
    Entries that cannot be read are dropped, and failure times later than ``now`` are taken as ``now``, with
    warnings naming the keys (the first few; the rest are counted). ``other_keys`` are kept apart, as read.
    """
    try:
        found = cluster.read_configmap(namespace, LEDGER_NAME)
    except ClusterError as error:
        if strict:
            raise
        logger.warning("The ledger %s could not be read, the run goes on without it: %s", LEDGER_NAME, error)
        return Ledger()
    if found is None:
        return Ledger()
    ledger, problems = _parsed(*found, other_keys=other_keys)
    entries, future = clamp_future(ledger.entries, now)
    problems += [
        f"ledger entry {shown(key)} failed later than this run's clock: taken as failing now" for key in future
    ]
    warn_each(problems, f"Ledger {LEDGER_NAME}")
    failing = sum(1 for entry in entries.values() if entry.failures)
    logger.info("Ledger %s: %s, %d with charged failures", LEDGER_NAME, plural(len(entries), "entry"), failing)
    return replace(ledger, entries=entries)


def _parsed(data: Mapping[str, str], version: str, *, other_keys: frozenset[str]) -> tuple[Ledger, list[str]]:
    entries, problems = from_data(data, other_keys=other_keys)
    other = {key: value for key, value in data.items() if key in other_keys}
    return Ledger(entries, version, other), problems


def write(
    cluster: ConfigMaps,
    namespace: str,
    read_at_start: Ledger,
    entries: Mapping[str, LedgerEntry],
    *,
    now: float,
    expire_after: float,
    others: Others | None = None,
    other_keys: frozenset[str] = frozenset(),
    max_bytes: int = MAX_DATA_BYTES,
) -> Written:
    """Write ``entries`` (the read ledger with this run's changes) and the other keys ``others`` makes from
    what is stored of them (None: those as read), merging with whatever another writer stored meanwhile.
    Entries past their quarantine are dropped first, then the oldest (with a warning) to stay under the
    ConfigMap limit. A ledger that cannot be written is one warning, and the reason is returned."""
    ours, base, version = dict(entries), dict(read_at_start.entries), read_at_start.resource_version
    stored_other = read_at_start.other
    for _ in range(WRITE_ATTEMPTS):
        extra = others(stored_other) if others is not None else dict(stored_other)
        room = max_bytes - data_size(extra)
        kept, _expired, oldest = bound(ours, now, expire_after=expire_after, max_bytes=room)
        if oldest:
            named = ", ".join(
                f"{e.key} ({e.item.package} {e.item.version}, {plural(e.failures, 'failure')})" for e in oldest[:10]
            )
            logger.warning(
                "Ledger %s is full: %s dropped (their items start again): %s%s",
                LEDGER_NAME,
                "the oldest entry was" if len(oldest) == 1 else f"the {len(oldest)} oldest entries were",
                named,
                ", ..." if len(oldest) > 10 else "",
            )
        data = {**to_data(kept.values()), **extra}
        try:
            if version is None:
                cluster.create_configmap(namespace, LEDGER_NAME, data, OWNED_LABELS)
            else:
                cluster.replace_configmap(namespace, LEDGER_NAME, data, version, labels=OWNED_LABELS)
            logger.info("Ledger %s written: %s", LEDGER_NAME, plural(len(kept), "entry"))
            return Written(True)
        except (AlreadyExists, Conflict):
            logger.info("Ledger %s changed since it was read: merging", LEDGER_NAME)
        except ClusterError as error:
            return _not_written(str(error))
        try:
            again = _reread(cluster, namespace, other_keys)
        except ClusterError as error:
            return _not_written(f"it changed and could not be read again: {error}")
        ours = merge(ours, again.entries, base=base)
        base, version, stored_other = again.entries, again.resource_version, again.other
    return _not_written(f"it kept changing under this run ({WRITE_ATTEMPTS} conflicts)")


def _not_written(reason: str) -> Written:
    logger.warning(
        "The ledger %s could not be written: %s. What this run learned is learned again from the failed Jobs "
        "still present, until a run can write it",
        LEDGER_NAME,
        reason,
    )
    return Written(False, reason)


def _reread(cluster: ConfigMaps, namespace: str, other_keys: frozenset[str]) -> Ledger:
    """Read the ledger again after a conflict; a read failure propagates (the write then gives up)."""
    found = cluster.read_configmap(namespace, LEDGER_NAME)
    return Ledger() if found is None else _parsed(*found, other_keys=other_keys)[0]


@dataclass(frozen=True)
class Forgotten:
    """What ``forget`` found and did, so the command can say why nothing changed."""

    changed: list[LedgerEntry]
    """The matching entries that had failures: reset now."""
    matched: int
    """Every matching entry, those without failures to forget included."""
    entries: dict[str, LedgerEntry]
    """Every readable entry of the ledger as read (empty when there is no ledger)."""
    unreadable: int
    """Values that could not be read, left as they were."""
    exists: bool
    """Whether the ledger ConfigMap exists."""


def forget(
    cluster: ConfigMaps,
    namespace: str,
    matches: Callable[[LedgerEntry], bool],
    *,
    other_keys: frozenset[str] = frozenset(),
) -> Forgotten:
    """Reset the failures and resources of the entries that ``matches`` (keeping their highest attempt, so the
    failed Jobs still present are not learned again). Every other value is written back exactly as it was
    read; a concurrent writer's change is never lost (the update carries the resourceVersion; on a conflict the
    ledger is read again). Raises ClusterError when the ledger cannot be read or written."""
    found = Forgotten([], 0, {}, 0, exists=False)

    def reset(data: dict[str, str] | None) -> dict[str, str] | None:
        nonlocal found
        entries, problems = from_data(data, other_keys=other_keys)
        matching = [entry for entry in entries.values() if matches(entry)]
        changed = [entry for entry in matching if entry.cause is not None]
        found = Forgotten(changed, len(matching), entries, len(problems), exists=data is not None)
        if data is None or not changed:
            return None
        return {**data, **{entry.key: encode(entry.forgotten()) for entry in changed}}

    configmaps.change(cluster, namespace, LEDGER_NAME, reset)
    return found
