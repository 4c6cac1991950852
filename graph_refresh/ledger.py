"""The failure ledger: what runs learned about failed Jobs, kept after the Jobs are gone (SPEC §11).

Pure code: the data of the ``graph-refresh-ledger`` ConfigMap in middletier, its format, the merge of two
writers and the size bound. Reading and writing the ConfigMap belong to ``kube.py``; deciding what an entry
means for the next attempt belongs to ``outcomes.py``.

Format (for operators)
----------------------
One ``data`` key per item: the item key (10 lower-case hex characters, the ``thoth-station.ninja/item``
label of its Jobs). The value is one compact JSON object::

    {"kind":"solver","solver":"solver-fedora-31-py38","package":"flask","version":"1.1.2",
     "index":"https://pypi.org/simple","failures":2,"attempt":2,"cause":"oom",
     "failed":"2024-05-01T10:00:00Z","memory":{"solver":{"request":"2Gi","limit":"2Gi"}},"deadline":3600}

- ``kind``, ``solver`` (absent for the package-analyzer), ``package``, ``version``, ``index``: the item;
- ``failures``: charged failures so far (``oom``, ``deadline``, ``error``; ``disrupted`` is not charged);
- ``attempt``: the number of the last attempt seen failing (its Job's ``thoth-station.ninja/attempt``);
- ``cause``: why that attempt failed: ``disrupted``, ``oom``, ``deadline`` or ``error``;
- ``failed``: when it failed, RFC 3339 in UTC, whole seconds;
- the resources that attempt ran with: ``memory`` per container name (init containers included) with its
  ``request`` and ``limit`` when set, ``deadline`` (the Job's ``spec.activeDeadlineSeconds``) and
  ``pod_deadline`` (the pod template's ``spec.activeDeadlineSeconds``) when set.

Clearing: remove one item's memory with
``oc patch configmap graph-refresh-ledger -n middletier --type=json -p '[{"op":"remove","path":"/data/<key>"}]'``;
delete the ConfigMap to clear all. A value that cannot be read is dropped with a warning naming its key, and
the next real run writes the ledger without it.

Size: a ConfigMap holds at most 1 MiB of data. ``bound`` drops entries whose last failure is older than the
quarantine period first, then the oldest failures, until the data fits under ``MAX_DATA_BYTES``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from graph_refresh.items import KINDS, SOLVER, Kind, WorkItem
from graph_refresh.quantity import parse_quantity

LEDGER_NAME = "graph-refresh-ledger"
CONFIGMAP_LIMIT_BYTES = 1024 * 1024  # the API server refuses a ConfigMap whose data keys + values exceed 1 MiB
HEADROOM_BYTES = 32 * 1024  # left for metadata and for entries learned by a concurrent run's merge
MAX_DATA_BYTES = CONFIGMAP_LIMIT_BYTES - HEADROOM_BYTES

_KEY_RE = re.compile(r"[0-9a-f]{10}")


class Cause(StrEnum):
    """Why an owned Job failed (SPEC §11), in the order the rules are tried."""

    DISRUPTED = "disrupted"
    OOM = "oom"
    DEADLINE = "deadline"
    ERROR = "error"


CHARGED: frozenset[Cause] = frozenset({Cause.OOM, Cause.DEADLINE, Cause.ERROR})
"""Causes that count against the item; a disruption is not the item's fault."""


@dataclass(frozen=True)
class ContainerMemory:
    """One container's memory request and limit as Kubernetes quantities (``"2Gi"``); None when unset."""

    request: str | None = None
    limit: str | None = None


@dataclass(frozen=True)
class AttemptResources:
    """What one attempt ran with: the part of a Job that a retry may change."""

    memory: Mapping[str, ContainerMemory] = field(default_factory=dict)
    """Per container name, containers and init containers alike (names are unique across both in a pod)."""
    deadline_seconds: int | None = None
    """The Job's ``spec.activeDeadlineSeconds``: the deadline a ``DeadlineExceeded`` failure is about."""
    pod_deadline_seconds: int | None = None
    """The pod template's ``spec.activeDeadlineSeconds``, kept so a retry can lengthen it alongside the Job's."""


@dataclass(frozen=True)
class ItemId:
    """Who an entry is about: an item's key and the fields the report shows for it."""

    key: str
    kind: Kind
    solver: str | None
    package: str
    version: str
    index: str

    @classmethod
    def of(cls, item: WorkItem) -> ItemId:
        """The identity of a planned work item."""
        package, version, index = item.candidate
        return cls(item.key, item.kind, item.solver, package, version, index)


@dataclass(frozen=True)
class LedgerEntry:
    """An item's failure history: charged failures, and its last failed attempt with what that ran with."""

    item: ItemId
    failures: int
    """Charged failures so far (oom, deadline, error)."""
    attempt: int
    """Number of the last attempt seen failing (1 for the first Job)."""
    cause: Cause
    """Cause of that attempt's failure."""
    failed_at: float
    """When that attempt failed, epoch seconds (whole seconds: that is what the ledger keeps)."""
    resources: AttemptResources
    """What that attempt ran with."""

    @property
    def key(self) -> str:
        """The item key, also the entry's ConfigMap data key."""
        return self.item.key


def format_time(epoch: float) -> str:
    """RFC 3339 UTC with whole seconds (a fraction is dropped): ``2024-05-01T10:00:00Z``."""
    return datetime.fromtimestamp(int(epoch), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: object) -> float | None:
    """Epoch seconds of an RFC 3339 time (``Z`` or an offset; a time without offset is taken as UTC).

    None for anything else: not a string, not a date, out of range.
    """
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.timestamp()
    except (OverflowError, ValueError):
        return None


def encode(entry: LedgerEntry) -> str:
    """An entry's ConfigMap value: compact JSON, fields in a fixed order, containers sorted by name."""
    item = entry.item
    value: dict[str, Any] = {"kind": item.kind}
    if item.solver is not None:
        value["solver"] = item.solver
    value |= {
        "package": item.package,
        "version": item.version,
        "index": item.index,
        "failures": entry.failures,
        "attempt": entry.attempt,
        "cause": str(entry.cause),
        "failed": format_time(entry.failed_at),
    }
    resources = entry.resources
    memory = {}
    for name in sorted(resources.memory):
        container = resources.memory[name]
        memory[name] = {
            part: text for part, text in (("request", container.request), ("limit", container.limit)) if text
        }
    if memory:
        value["memory"] = memory
    if resources.deadline_seconds is not None:
        value["deadline"] = resources.deadline_seconds
    if resources.pod_deadline_seconds is not None:
        value["pod_deadline"] = resources.pod_deadline_seconds
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class _Unreadable(ValueError):
    """A ledger value that is not an entry; the message says which field."""


def decode(key: str, text: str) -> LedgerEntry:
    """The entry stored under ``key``; ValueError saying which field is wrong when it is not one."""
    if not _KEY_RE.fullmatch(key):
        raise _Unreadable("the key is not an item key (10 lower-case hex characters)")
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as error:
        raise _Unreadable(f"not JSON ({error})") from None
    if not isinstance(value, dict):
        raise _Unreadable("not a JSON object")
    kind = value.get("kind")
    if kind not in KINDS:
        raise _Unreadable(f"kind {kind!r} is not one of {', '.join(KINDS)}")
    solver = value.get("solver")
    if (kind == SOLVER) != isinstance(solver, str):
        raise _Unreadable("solver must be a name for a solver item and absent otherwise")
    package, version, index = (_string(value, name) for name in ("package", "version", "index"))
    failures = _whole(value, "failures", minimum=0)
    attempt = _whole(value, "attempt", minimum=1)
    try:
        cause = Cause(str(value.get("cause")))
    except ValueError:
        raise _Unreadable(f"cause {value.get('cause')!r} is not one of {', '.join(Cause)}") from None
    failed_at = parse_time(value.get("failed"))
    if failed_at is None:
        raise _Unreadable(f"failed {value.get('failed')!r} is not an RFC 3339 time")
    resources = AttemptResources(
        memory=_memory(value.get("memory", {})),
        deadline_seconds=_whole(value, "deadline", minimum=1) if "deadline" in value else None,
        pod_deadline_seconds=_whole(value, "pod_deadline", minimum=1) if "pod_deadline" in value else None,
    )
    return LedgerEntry(
        ItemId(key, kind, solver, package, version, index), failures, attempt, cause, failed_at, resources
    )


def _string(value: Mapping[str, Any], name: str) -> str:
    text = value.get(name)
    if not isinstance(text, str) or not text:
        raise _Unreadable(f"{name} is not a non-empty string")
    return text


def _whole(value: Mapping[str, Any], name: str, *, minimum: int) -> int:
    number = value.get(name)
    if isinstance(number, bool) or not isinstance(number, int) or number < minimum:
        raise _Unreadable(f"{name} {number!r} is not a whole number of at least {minimum}")
    return number


def _memory(value: object) -> dict[str, ContainerMemory]:
    if not isinstance(value, dict):
        raise _Unreadable("memory is not an object of containers")
    memory = {}
    for name, container in value.items():
        if not isinstance(container, dict) or set(container) - {"request", "limit"}:
            raise _Unreadable(f"memory of container {name!r} is not an object of request and limit")
        for part, text in container.items():
            try:
                if not isinstance(text, str):
                    raise ValueError("not a string")
                parse_quantity(text)
            except ValueError:
                raise _Unreadable(f"memory {part} of container {name!r} is not a quantity: {text!r}") from None
        memory[name] = ContainerMemory(container.get("request"), container.get("limit"))
    return memory


def to_data(entries: Iterable[LedgerEntry]) -> dict[str, str]:
    """The ConfigMap ``data`` of these entries, sorted by key (the last of two entries with one key wins)."""
    data = {entry.key: encode(entry) for entry in entries}
    return dict(sorted(data.items()))


def from_data(data: object) -> tuple[dict[str, LedgerEntry], list[str]]:
    """The entries of a ConfigMap's ``data``, and a warning for each value that could not be read.

    Never raises: a value that is not an entry (bad key, not JSON, a missing or wrong field) is dropped and
    its warning names the key; ``data`` that is not a mapping of strings (or None, for a ConfigMap without
    data) reads as no entries, with a warning unless it is None.
    """
    if data is None:
        return {}, []
    if not isinstance(data, Mapping):
        return {}, [f"ledger data is not a mapping but {type(data).__name__}; read as empty"]
    entries: dict[str, LedgerEntry] = {}
    warnings: list[str] = []
    for key in sorted(data, key=str):
        text = data[key]
        try:
            if not isinstance(key, str) or not isinstance(text, str):
                raise _Unreadable("not a string")
            entries[key] = decode(key, text)
        except _Unreadable as error:
            warnings.append(f"ledger entry {str(key)[:64]!r} dropped: {error}")
    return entries, warnings


def data_size(data: Mapping[str, str]) -> int:
    """Bytes the API server counts against the 1 MiB ConfigMap limit: every key and value, UTF-8."""
    return sum(len(key.encode()) + len(value.encode()) for key, value in data.items())


def _rank(entry: LedgerEntry) -> tuple[int, int, float, str]:
    """Total order of entries for one key: later attempt, then more failures, then later failure wins.

    The encoded value breaks remaining ties, so the winner never depends on argument order.
    """
    return (entry.attempt, entry.failures, entry.failed_at, encode(entry))


def merge(
    ours: Mapping[str, LedgerEntry],
    theirs: Mapping[str, LedgerEntry],
    *,
    base: Mapping[str, LedgerEntry] | None = None,
) -> dict[str, LedgerEntry]:
    """Combine our ledger with one another writer stored meanwhile (after a 409 on update).

    Without ``base``: every key of either side is kept; where both have a key, the entry with the later
    attempt, then more failures, then the later failure time wins (ties broken by the encoded value).

    With ``base`` (the data both sides started from, i.e. what this run read): a key only one side changed
    takes that side's state, deletion included, so an operator's ``oc patch ... remove`` or a run's
    forgetting of an expired entry survives; a key both sides changed keeps the winner above, and a key one
    side deleted while the other changed it keeps the changed entry.

    Both forms are commutative and idempotent (``merge(a, a) == a``). A retry loop: merge, then update with
    the resourceVersion just read, using what was just read as the next ``base``.
    """
    merged: dict[str, LedgerEntry] = {}
    for key in sorted(set(ours) | set(theirs)):
        mine, other = ours.get(key), theirs.get(key)
        if base is not None:
            before = base.get(key)
            if mine == before:
                mine = other
            elif other == before:
                other = mine
        candidates = [entry for entry in (mine, other) if entry is not None]
        if candidates:
            merged[key] = max(candidates, key=_rank)
    return merged


def expires_at(entry: LedgerEntry, expire_after: float) -> float:
    """When an entry is forgotten: ``expire_after`` (the quarantine period) after its last failure."""
    return entry.failed_at + expire_after


def bound(
    entries: Mapping[str, LedgerEntry],
    now: float,
    *,
    expire_after: float,
    max_bytes: int = MAX_DATA_BYTES,
) -> tuple[dict[str, LedgerEntry], list[LedgerEntry], list[LedgerEntry]]:
    """Keep the ledger within ``max_bytes`` of ConfigMap data.

    Returns (kept, dropped as expired, dropped as oldest). First every entry whose last failure is at least
    ``expire_after`` seconds (the quarantine period) before ``now`` is dropped: its item starts again at
    attempt 1 anyway. Then, while the data is larger than ``max_bytes``, the entry with the oldest failure
    (ties: smallest key) is dropped; the caller warns about those. Deterministic for given arguments.
    """
    kept: dict[str, LedgerEntry] = {}
    expired: list[LedgerEntry] = []
    for key in sorted(entries):
        entry = entries[key]
        if now >= expires_at(entry, expire_after):
            expired.append(entry)
        else:
            kept[key] = entry
    sizes = {key: len(key.encode()) + len(encode(entry).encode()) for key, entry in kept.items()}
    total = sum(sizes.values())
    oldest: list[LedgerEntry] = []
    for key in sorted(kept, key=lambda key: (kept[key].failed_at, key)):
        if total <= max_bytes:
            break
        total -= sizes[key]
        oldest.append(kept.pop(key))
    return kept, expired, oldest
