"""How many more Jobs the cluster admits (SPEC §4, capacity). Pure: quotas and Jobs come in as data.

Two limits apply together: ``--max-in-flight`` minus the live owned Jobs, and every
ResourceQuota in middletier. A quota is compared per resource name: ``requests.*`` (and the bare
``cpu``/``memory``/``ephemeral-storage``, which mean requests) with the Job's requests,
``limits.*`` with its limits, ``pods`` and ``count/jobs.batch`` with one each.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from graph_refresh.kube import parse_quantity

Cost = Mapping[str, Decimal]
_BARE_MEANS_REQUESTS = ("cpu", "memory", "ephemeral-storage")


@dataclass(frozen=True)
class Quota:
    """One ResourceQuota: its hard limits and what is used of them, parsed."""

    name: str
    hard: Mapping[str, Decimal]
    used: Mapping[str, Decimal]

    @classmethod
    def from_object(cls, quota: Mapping[str, Any]) -> Quota:
        """Parse a ResourceQuota object; ``status.hard`` is what is enforced, ``spec.hard`` until it is set."""
        status = quota.get("status") or {}
        hard = status.get("hard") or (quota.get("spec") or {}).get("hard") or {}
        used = status.get("used") or {}
        return cls(
            name=str((quota.get("metadata") or {}).get("name", "")),
            hard={name: parse_quantity(value) for name, value in hard.items()},
            used={name: parse_quantity(value) for name, value in used.items()},
        )


def _pod_resources(pod_spec: Mapping[str, Any], section: str) -> dict[str, Decimal]:
    """Sum of the containers' ``requests`` or ``limits``, at least the largest init container's.

    A container with a limit and no request gets the limit as its request, as the API server does.
    """

    def of(container: Mapping[str, Any]) -> dict[str, Decimal]:
        resources = container.get("resources") or {}
        values = dict(resources.get("limits") or {}) if section == "requests" else {}
        values.update(resources.get(section) or {})
        return {name: parse_quantity(value) for name, value in values.items()}

    total: dict[str, Decimal] = {}
    for container in pod_spec.get("containers") or []:
        for name, value in of(container).items():
            total[name] = total.get(name, Decimal(0)) + value
    for container in pod_spec.get("initContainers") or []:
        for name, value in of(container).items():
            total[name] = max(total.get(name, Decimal(0)), value)
    return total


def job_cost(job: Mapping[str, Any]) -> dict[str, Decimal]:
    """What one rendered Job takes from a ResourceQuota while it runs (one pod at a time)."""
    pod_spec = ((job.get("spec") or {}).get("template") or {}).get("spec") or {}
    cost = {"count/jobs.batch": Decimal(1), "pods": Decimal(1), "count/pods": Decimal(1)}
    for section in ("requests", "limits"):
        for name, value in _pod_resources(pod_spec, section).items():
            cost[f"{section}.{name}"] = value
            if section == "requests" and name in _BARE_MEANS_REQUESTS:
                cost[name] = value
    return cost


@dataclass
class Capacity:
    """Free room for new Jobs: slots under ``--max-in-flight`` (None = no cap) and quota headroom."""

    slots: int | None = None
    headroom: dict[str, Decimal] = field(default_factory=dict)
    exhausted: bool = False

    @classmethod
    def from_cluster(cls, *, max_in_flight: int, live_jobs: int, quotas: Iterable[Quota]) -> Capacity:
        """Combine the in-flight cap and every quota: per resource, the tightest quota wins."""
        headroom: dict[str, Decimal] = {}
        for quota in quotas:
            for name, hard in quota.hard.items():
                free = hard - quota.used.get(name, Decimal(0))
                headroom[name] = min(free, headroom.get(name, free))
        slots = max(max_in_flight - live_jobs, 0) if max_in_flight else None
        return cls(slots, headroom)

    def admits(self, cost: Cost) -> bool:
        """Whether one more Job of this cost fits."""
        if self.exhausted or (self.slots is not None and self.slots < 1):
            return False
        # Only what the Job uses is compared: an unrelated resource over its quota blocks nothing.
        return all(cost[name] <= free for name, free in self.headroom.items() if cost.get(name))

    def take(self, cost: Cost) -> None:
        """Account for one Job of this cost."""
        if self.slots is not None:
            self.slots -= 1
        for name in self.headroom:
            self.headroom[name] -= cost.get(name, Decimal(0))

    def exhaust(self) -> None:
        """The API refused a create for quota: admit nothing more this run."""
        self.exhausted = True
