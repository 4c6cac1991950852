"""The ledger ConfigMap's data: what runs learned about failed Jobs, kept after the Jobs are gone
(docs/learning.md).

Pure code: the data of the ``graph-refresh-ledger`` ConfigMap in middletier, its format, the merge of two
writers and the size bound. Reading and writing the ConfigMap belong to ``retry/ledger_store.py``; deciding what an
entry means for the next attempt belongs to ``retry/policy.py``.

Format (for operators)
----------------------
One ``data`` key per item: the item key (10 lower-case hex characters, the ``thoth-station.ninja/item``
label of its Jobs). The value is one compact JSON object::

    {"kind":"solver","solver":"solver-fedora-31-py38","package":"flask","version":"1.1.2",
     "index":"https://pypi.org/simple","failures":2,"attempt":2,"cause":"oom",
     "failed":"2024-05-01T10:00:00Z","memory":{"solver":{"request":"2Gi","limit":"2Gi"}},"deadline":3600}

- ``kind``, ``solver`` (absent for the package-analyzer), ``package``, ``version``, ``index``: the item;
- ``failures``: charged failures so far (``oom``, ``deadline``, ``error``; ``disrupted`` is not charged);
- ``attempt``: the highest attempt number learned (its Job's ``thoth-station.ninja/attempt``): a failed Job is
  charged only when its attempt is above it, so the ~24 hourly runs that see one failed Job charge it once,
  whatever the clocks of the Job controller and of the runs say;
- ``cause``: why that attempt failed: ``disrupted``, ``oom``, ``deadline`` or ``error``; ``null`` once an
  operator forgot the entry (``app.py ledger forget``): the item starts again from its Template's resources,
  with the next attempt number;
- ``container``: for ``oom``, the container that was OOM-killed, when known;
- ``failed``: when it failed, RFC 3339 in UTC, whole seconds;
- the resources that attempt ran with: ``memory`` per container name (init containers included) with its
  ``request`` and ``limit`` when set, ``deadline`` (the Job's ``spec.activeDeadlineSeconds``) and
  ``pod_deadline`` (the pod template's ``spec.activeDeadlineSeconds``) when set.

Values come from outside (anyone allowed to update the ConfigMap may write one), so reading is bounded: a
time outside the years 1970-9999, a count or attempt number above ``MAX_NUMBER``, a quantity or deadline out
of range, or anything else that cannot be read drops the entry with a warning naming its key (the warning
shows at most ``text.SHOWN_CHARACTERS`` of any value), and the next real run writes the ledger without it.

Size: a ConfigMap holds at most 1 MiB of data. ``bound`` drops entries whose last failure is older than the
quarantine period first, then the oldest failures, until the data fits under ``MAX_DATA_BYTES``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from graph_refresh.config import redact_url
from graph_refresh.items import KINDS, SOLVER, Candidate, invalid_reason
from graph_refresh.quantity import parse_quantity
from graph_refresh.retry.model import (
    MAX_NUMBER,
    AttemptResources,
    Cause,
    ContainerMemory,
    ItemId,
    LedgerEntry,
    expires_at,
    is_item_key,
)
from graph_refresh.text import SHOWN_CHARACTERS, cut, shown
from graph_refresh.times import format_time, parse_time

LEDGER_NAME = "graph-refresh-ledger"
_SOLVER_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,44}[a-z0-9])?")  # a solver's name is part of a Job's

CONFIGMAP_LIMIT_BYTES = 1024 * 1024  # the API server refuses a ConfigMap whose data keys + values exceed 1 MiB

HEADROOM_BYTES = 32 * 1024  # left for metadata and for entries learned by a concurrent run's merge

MAX_DATA_BYTES = CONFIGMAP_LIMIT_BYTES - HEADROOM_BYTES

MAX_SECONDS = 2**31 - 1  # the largest deadline read (Kubernetes keeps activeDeadlineSeconds as an int64)

MAX_MEMORY_BYTES = 2**63 - 1  # the largest memory quantity read: what Kubernetes can hold

# A key the learning release wrote (learning now goes by attempt number): read as nothing, dropped on write.
RETIRED_KEYS = frozenset({"learned-until"})


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
        "cause": None if entry.cause is None else str(entry.cause),
    }
    if entry.container is not None:
        value["container"] = entry.container
    value["failed"] = format_time(entry.failed_at)
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
    if not is_item_key(key):
        raise _Unreadable("the key is not an item key (10 lower-case hex characters)")
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as error:
        raise _Unreadable(f"not JSON ({cut(str(error), SHOWN_CHARACTERS)})") from None
    if not isinstance(value, dict):
        raise _Unreadable("not a JSON object")
    kind = value.get("kind")
    if kind not in KINDS:
        raise _Unreadable(f"kind {shown(kind)} is not one of {', '.join(KINDS)}")
    solver = value.get("solver")
    if (kind == SOLVER) != isinstance(solver, str):
        raise _Unreadable("solver must be a name for a solver item and absent otherwise")
    if isinstance(solver, str) and not _SOLVER_NAME.fullmatch(solver):
        raise _Unreadable(f"solver {shown(solver)} is not a solver name")
    package, version, index = (_string(value, name) for name in ("package", "version", "index"))
    reason = invalid_reason(Candidate(package, version, index))
    if reason:  # a run only ever writes items it could schedule: this one was written by someone else
        raise _Unreadable(f"{shown(package)} {shown(version)}: {reason}")
    index = redact_url(index)
    failures = _whole(value, "failures", minimum=0, maximum=MAX_NUMBER)
    attempt = _whole(value, "attempt", minimum=1, maximum=MAX_NUMBER)
    cause: Cause | None = None
    if value.get("cause") is not None or failures:
        try:
            cause = Cause(str(value.get("cause")))
        except ValueError:
            raise _Unreadable(f"cause {shown(value.get('cause'))} is not one of {', '.join(Cause)}") from None
    container = value.get("container")
    if container is not None and not (isinstance(container, str) and 0 < len(container) <= 253):
        raise _Unreadable(f"container {shown(container)} is not a container name")
    failed_at = parse_time(value.get("failed"))
    if failed_at is None:
        raise _Unreadable(f"failed {shown(value.get('failed'))} is not an RFC 3339 time in the years 1970-9999")
    resources = AttemptResources(
        memory=_memory(value.get("memory", {})),
        deadline_seconds=_whole(value, "deadline", minimum=1, maximum=MAX_SECONDS) if "deadline" in value else None,
        pod_deadline_seconds=(
            _whole(value, "pod_deadline", minimum=1, maximum=MAX_SECONDS) if "pod_deadline" in value else None
        ),
    )
    return LedgerEntry(
        ItemId(key, kind, solver, package, version, index), failures, attempt, cause, failed_at, resources, container
    )


def _string(value: Mapping[str, Any], name: str) -> str:
    text = value.get(name)
    if not isinstance(text, str) or not text or len(text) > 4096:
        raise _Unreadable(f"{name} is not a string of 1 to 4096 characters")
    return text


def _whole(value: Mapping[str, Any], name: str, *, minimum: int, maximum: int) -> int:
    number = value.get(name)
    if isinstance(number, bool) or not isinstance(number, int) or not minimum <= number <= maximum:
        raise _Unreadable(f"{name} {shown(number)} is not a whole number from {minimum} to {maximum}")
    return number


def _memory(value: object) -> dict[str, ContainerMemory]:
    if not isinstance(value, dict):
        raise _Unreadable("memory is not an object of containers")
    memory = {}
    for name, container in value.items():
        if not isinstance(container, dict) or set(container) - {"request", "limit"}:
            raise _Unreadable(f"memory of container {shown(name)} is not an object of request and limit")
        for part, text in container.items():
            try:
                if not isinstance(text, str) or len(text) > 64 or not 0 <= parse_quantity(text) <= MAX_MEMORY_BYTES:
                    raise ValueError("not a quantity")
            except ValueError:
                raise _Unreadable(
                    f"memory {part} of container {shown(name)} is not a quantity of at most 8Ei: {shown(text)}"
                ) from None
        memory[name] = ContainerMemory(container.get("request"), container.get("limit"))
    return memory


def to_data(entries: Iterable[LedgerEntry]) -> dict[str, str]:
    """The ConfigMap ``data`` of these entries, sorted by key (the last of two entries with one key wins)."""
    data = {entry.key: encode(entry) for entry in entries}
    return dict(sorted(data.items()))


def from_data(data: object, *, other_keys: frozenset[str] = frozenset()) -> tuple[dict[str, LedgerEntry], list[str]]:
    """The entries of a ConfigMap's ``data``, and a warning for each value that could not be read.

    ``other_keys`` are keys someone else keeps in the same ConfigMap (the lanes): not entries, and no warning.
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
        if key in other_keys or key in RETIRED_KEYS:
            continue
        try:
            if not isinstance(key, str) or not isinstance(text, str):
                raise _Unreadable("not a string")
            entries[key] = decode(key, text)
        except _Unreadable as error:
            warnings.append(f"ledger entry {shown(key)} dropped: {error}")
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


def clamp_future(entries: Mapping[str, LedgerEntry], now: float) -> tuple[dict[str, LedgerEntry], list[str]]:
    """Entries whose failure time is later than ``now`` (a clock ahead wrote them) taken as failing at ``now``;
    returns the entries and the keys so changed."""
    changed = sorted(key for key, entry in entries.items() if entry.failed_at > now)
    late = set(changed)
    return {key: replace(entry, failed_at=now) if key in late else entry for key, entry in entries.items()}, changed
