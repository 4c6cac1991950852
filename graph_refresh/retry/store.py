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
    CURSORS_KEY,
    LEDGER_NAME,
    MAX_DATA_BYTES,
    RUNS_KEY,
    bound,
    clamp_future,
    data_size,
    decode_cursors,
    decode_runs,
    encode,
    encode_cursors,
    encode_runs,
    from_data,
    merge,
    to_data,
)
from graph_refresh.retry.model import LedgerEntry, RunRecord
from graph_refresh.runtime import warn_each
from graph_refresh.text import plural, shown

logger = logging.getLogger(__name__)


@dataclass
class Ledger:
    """The ledger as this run read it."""

    entries: dict[str, LedgerEntry] = field(default_factory=dict)
    resource_version: str | None = None
    """None when there was no ConfigMap (or it could not be read): the write creates it."""
    cursors: dict[str, int] = field(default_factory=dict)
    """The fresh lane's cursor per stream (solver name, or "package-analyzer")."""
    runs: list[RunRecord] = field(default_factory=list)
    """The recent real runs, oldest first."""


@dataclass(frozen=True)
class Written:
    """Whether the run wrote the ledger, and why not."""

    written: bool
    reason: str | None = None


def read(cluster: ConfigMaps, namespace: str, *, now: float, strict: bool = False) -> Ledger:
    """The ledger of ``namespace`` as the run at time ``now`` finds it.

    No ConfigMap means no memory (an operator deleting it clears everything): the failed Jobs still present
    are learned again. A ledger that cannot be read is a warning, and the run goes on as if it were empty
    (``strict``: the ClusterError is raised).
    Entries that cannot be read are dropped, and failure times later than ``now`` are taken as ``now``, with
    warnings naming the keys (the first few; the rest are counted).
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
    ledger, problems = _parsed(*found)
    entries, future = clamp_future(ledger.entries, now)
    problems += [
        f"ledger entry {shown(key)} failed later than this run's clock: taken as failing now" for key in future
    ]
    warn_each(problems, f"Ledger {LEDGER_NAME}")
    failing = sum(1 for entry in entries.values() if entry.failures)
    logger.info("Ledger %s: %s, %d with charged failures", LEDGER_NAME, plural(len(entries), "entry"), failing)
    return replace(ledger, entries=entries)


def _parsed(data: Mapping[str, str], version: str) -> tuple[Ledger, list[str]]:
    entries, problems = from_data(data)
    cursors, cursor_problems = decode_cursors(data.get(CURSORS_KEY))
    runs, run_problems = decode_runs(data.get(RUNS_KEY))
    return Ledger(entries, version, cursors, runs), problems + cursor_problems + run_problems


def write(
    cluster: ConfigMaps,
    namespace: str,
    read_at_start: Ledger,
    entries: Mapping[str, LedgerEntry],
    *,
    now: float,
    expire_after: float,
    cursors: Mapping[str, int] | None = None,
    run: RunRecord | None = None,
    max_bytes: int = MAX_DATA_BYTES,
) -> Written:
    """Write ``entries`` (the read ledger with this run's changes), the fresh lane's ``cursors`` and this
    ``run``'s record (None: those as read), merging with whatever another writer stored meanwhile (cursors
    never go back; runs are kept by time). Entries past their quarantine are dropped first, then the oldest
    (with a warning) to stay under the ConfigMap limit. A ledger that cannot be written is one warning, and the
    reason is returned."""
    ours, base, version = dict(entries), dict(read_at_start.entries), read_at_start.resource_version
    new_cursors = {**read_at_start.cursors, **(cursors or {})}
    runs = read_at_start.runs + ([run] if run is not None else [])
    for _ in range(WRITE_ATTEMPTS):
        extra = {CURSORS_KEY: encode_cursors(new_cursors)} if new_cursors else {}
        if runs:
            extra[RUNS_KEY] = encode_runs(runs)
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
            again = _reread(cluster, namespace)
        except ClusterError as error:
            return _not_written(f"it changed and could not be read again: {error}")
        ours = merge(ours, again.entries, base=base)
        base, version = again.entries, again.resource_version
        new_cursors = {
            stream: max(new_cursors.get(stream, 0), again.cursors.get(stream, 0))
            for stream in set(new_cursors) | set(again.cursors)
        }
        runs = list({record.at: record for record in [*again.runs, *runs]}.values())
    return _not_written(f"it kept changing under this run ({WRITE_ATTEMPTS} conflicts)")


def _not_written(reason: str) -> Written:
    logger.warning(
        "The ledger %s could not be written: %s. What this run learned is learned again from the failed Jobs "
        "still present, until a run can write it",
        LEDGER_NAME,
        reason,
    )
    return Written(False, reason)


def _reread(cluster: ConfigMaps, namespace: str) -> Ledger:
    """Read the ledger again after a conflict; a read failure propagates (the write then gives up)."""
    found = cluster.read_configmap(namespace, LEDGER_NAME)
    return Ledger() if found is None else _parsed(*found)[0]


def forget(
    cluster: ConfigMaps, namespace: str, matches: Callable[[LedgerEntry], bool]
) -> tuple[list[LedgerEntry], int]:
    """Reset the failures and resources of the entries that ``matches`` (keeping their highest attempt, so the
    failed Jobs still present are not learned again); returns the entries changed and the unreadable values
    left as they were. Every other value is written back exactly as it was read; a concurrent writer's change
    is never lost (the update carries the resourceVersion; on a conflict the ledger is read again). Raises
    ClusterError when the ledger cannot be read or written."""
    changed: list[LedgerEntry] = []
    unreadable = 0

    def reset(data: dict[str, str] | None) -> dict[str, str] | None:
        nonlocal changed, unreadable
        entries, problems = from_data(data)
        changed = [entry for entry in entries.values() if entry.cause is not None and matches(entry)]
        unreadable = len(problems)
        if data is None or not changed:
            return None
        return {**data, **{entry.key: encode(entry.forgotten()) for entry in changed}}

    configmaps.change(cluster, namespace, LEDGER_NAME, reset)
    return changed, unreadable
