"""What the retry state is made of: why a Job failed, what an attempt ran with, and an item's entry in the
ledger (docs/learning.md). Pure data; reading it from the API is ``failures``, deciding from it ``policy``,
writing it down ``codec`` and ``store``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from graph_refresh.config import redact_url
from graph_refresh.items import Kind, WorkItem

_KEY_RE = re.compile(r"[0-9a-f]{10}")

MAX_NUMBER = 1_000_000  # the largest attempt number or failure count read: more is not a history, it is noise


class Cause(StrEnum):
    """Why an owned Job failed (design: Learning), in the order the rules are tried."""

    DISRUPTED = "disrupted"
    OOM = "oom"
    DEADLINE = "deadline"
    ERROR = "error"


CHARGED: frozenset[Cause] = frozenset({Cause.OOM, Cause.DEADLINE, Cause.ERROR})
"""Causes that count against the item; a disruption is not the item's fault."""

ESCALATING: tuple[Cause, ...] = (Cause.OOM, Cause.DEADLINE)
"""Causes whose retry grows a resource (memory, the deadline) up to a cap."""


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
        """The identity of a planned work item (its index URL with credentials masked: the key comes from the
        whole URL, and a ledger, a report or a log keeps no password)."""
        package, version, index = item.candidate
        return cls(item.key, item.kind, item.solver, package, version, redact_url(index))


def is_item_key(text: object) -> bool:
    """Whether ``text`` is an item key: 10 lower-case hex characters."""
    return isinstance(text, str) and _KEY_RE.fullmatch(text) is not None


@dataclass(frozen=True)
class LedgerEntry:
    """An item's failure history: charged failures, and its last failed attempt with what that ran with."""

    item: ItemId
    failures: int
    """Charged failures so far (oom, deadline, error)."""
    attempt: int
    """The highest attempt number learned (1 for the first Job): a failed Job of no higher attempt is not
    charged again."""
    cause: Cause | None
    """Cause of that attempt's failure; None once an operator forgot the entry (nothing to act on)."""
    failed_at: float
    """When that attempt failed, epoch seconds (whole seconds: that is what the ledger keeps)."""
    resources: AttemptResources
    """What that attempt ran with (nothing once forgotten: the Template's resources)."""
    container: str | None = None
    """For ``oom``: the container that was OOM-killed, when known."""

    def forgotten(self) -> LedgerEntry:
        """This entry as an operator's ``ledger forget`` leaves it: no failures, no cause, no resources, and
        the same highest attempt, so the failed Jobs still present are not learned again."""
        return LedgerEntry(self.item, 0, self.attempt, None, self.failed_at, AttemptResources())

    @property
    def key(self) -> str:
        """The item key, also the entry's ConfigMap data key."""
        return self.item.key


def expires_at(entry: LedgerEntry, expire_after: float) -> float:
    """When an entry is forgotten: ``expire_after`` (the quarantine period) after its last failure."""
    return entry.failed_at + expire_after
