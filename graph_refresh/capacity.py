"""How many more Jobs the cluster admits (design: Capacity). Pure: quotas and Jobs come in as data.

Two limits apply together: ``--max-in-flight`` minus the live owned Jobs, and every
ResourceQuota in middletier whose scope covers the Job's pod. A quota is compared per resource
name: ``requests.*`` (and the bare ``cpu``/``memory``/``ephemeral-storage``, which mean requests)
with the Job's requests, ``limits.*`` with its limits, ``count/jobs.batch`` with one, ``pods`` and
``count/pods`` with the Job's ``parallelism`` (its resources are multiplied by it too).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from graph_refresh.errors import ClusterError
from graph_refresh.quantity import parse_quantity

_BARE_MEANS_REQUESTS = ("cpu", "memory", "ephemeral-storage")
_COMPUTE = ("cpu", "memory")  # a pod with no requests or limits of these is BestEffort


@dataclass(frozen=True)
class JobCost:
    """What one Job takes from a quota while it runs, and what its pod is, for quota scopes."""

    resources: Mapping[str, Decimal]
    best_effort: bool = False
    terminating: bool = False  # the pod spec has activeDeadlineSeconds
    priority_class: str | None = None


@dataclass(frozen=True)
class Quota:
    """One ResourceQuota: hard limits, what is used of them, and which pods it covers (its scopes)."""

    name: str
    hard: Mapping[str, Decimal]
    used: Mapping[str, Decimal]
    scopes: tuple[tuple[str, str, tuple[str, ...]], ...] = ()  # (scope name, operator, values)

    @classmethod
    def from_object(cls, quota: Mapping[str, Any]) -> Quota:
        """Parse a ResourceQuota object; ``status.hard`` is what is enforced, ``spec.hard`` until it is set."""
        name = str(_object(quota.get("metadata")).get("name", ""))
        spec, status = _object(quota.get("spec")), _object(quota.get("status"))
        hard = _object(status.get("hard")) or _object(spec.get("hard"))
        used = _object(status.get("used"))
        scopes: list[tuple[str, str, tuple[str, ...]]] = [(str(s), "Exists", ()) for s in _list(spec.get("scopes"))]
        for expression in map(_object, _list(_object(spec.get("scopeSelector")).get("matchExpressions"))):
            values = tuple(str(v) for v in _list(expression.get("values")))
            scopes.append((str(expression.get("scopeName")), str(expression.get("operator")), values))
        return cls(
            name=name,
            hard={resource: _quantity(name, resource, value) for resource, value in hard.items()},
            used={resource: _quantity(name, resource, value) for resource, value in used.items()},
            scopes=tuple(scopes),
        )

    def covers(self, cost: JobCost) -> bool:
        """Whether this quota counts the Job's pod: every scope must match (an unknown scope does)."""
        return all(_scope_matches(name, operator, values, cost) for name, operator, values in self.scopes)


def _scope_matches(name: str, operator: str, values: tuple[str, ...], cost: JobCost) -> bool:
    if name == "PriorityClass":
        present = cost.priority_class is not None
        return {
            "Exists": present,
            "DoesNotExist": not present,
            "In": cost.priority_class in values,
            "NotIn": cost.priority_class not in values,
        }.get(operator, True)
    matched = {
        "BestEffort": cost.best_effort,
        "NotBestEffort": not cost.best_effort,
        "Terminating": cost.terminating,
        "NotTerminating": not cost.terminating,
        "CrossNamespacePodAffinity": False,  # our pods have no affinity terms
    }.get(name, True)  # a scope this code does not know: count the quota, to be safe
    return not matched if operator == "DoesNotExist" else matched


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


def job_cost(job: Mapping[str, Any]) -> JobCost:
    """What one rendered Job takes from a ResourceQuota while it runs (``parallelism`` pods at a time)."""
    spec = job.get("spec") or {}
    pod_spec = (spec.get("template") or {}).get("spec") or {}
    pods = Decimal(int(spec.get("parallelism", 1) or 1))
    resources = {"count/jobs.batch": Decimal(1), "pods": pods, "count/pods": pods}
    compute = False
    for section in ("requests", "limits"):
        for name, value in _pod_resources(pod_spec, section).items():
            resources[f"{section}.{name}"] = value * pods
            if section == "requests" and name in _BARE_MEANS_REQUESTS:
                resources[name] = value * pods
            compute = compute or name in _COMPUTE
    return JobCost(
        resources=resources,
        best_effort=not compute,
        terminating=pod_spec.get("activeDeadlineSeconds") is not None,
        priority_class=pod_spec.get("priorityClassName") or None,  # "" means no class, as in Kubernetes
    )


@dataclass
class Capacity:
    """Free room for new Jobs: slots under ``--max-in-flight`` (None = no cap) and each quota's headroom."""

    slots: int | None = None
    quotas: list[tuple[Quota, dict[str, Decimal]]] = field(default_factory=list)
    exhausted: bool = False

    @classmethod
    def from_cluster(cls, *, max_in_flight: int, live_jobs: int, quotas: Iterable[Quota]) -> Capacity:
        """Combine the in-flight cap and every quota."""
        rooms = [
            (quota, {name: hard - quota.used.get(name, Decimal(0)) for name, hard in quota.hard.items()})
            for quota in quotas
        ]
        slots = max(max_in_flight - live_jobs, 0) if max_in_flight else None
        return cls(slots, rooms)

    def admits(self, cost: JobCost) -> bool:
        """Whether one more Job of this cost fits under the cap and every quota that covers it."""
        return self.blocking_limit(cost) is None

    def blocking_limit(self, cost: JobCost) -> str | None:
        """Which limit refuses one more Job of this cost (``--max-in-flight``, or a quota and the resource it
        has too little of), or None when the Job fits.

        Only what the Job uses is compared: an unrelated resource over its quota blocks nothing.
        """
        if self.exhausted:
            return "a ResourceQuota refused a create"
        if self.slots is not None and self.slots < 1:
            return "--max-in-flight"
        for quota, room in self.quotas:
            if quota.covers(cost):
                for name, free in room.items():
                    if cost.resources.get(name) and cost.resources[name] > free:
                        return f"ResourceQuota {quota.name!r}: {name}"
        return None

    def never_admits(self, cost: JobCost) -> str | None:
        """The quota and resource whose hard limit is below what one Job of this cost takes, so no amount of
        waiting lets it run; None when every quota could admit it once its room is free."""
        for quota, _ in self.quotas:
            if quota.covers(cost):
                for name, hard in quota.hard.items():
                    if cost.resources.get(name) and cost.resources[name] > hard:
                        return f"ResourceQuota {quota.name!r}: {name} (hard limit {hard})"
        return None

    def count_admitted(self, costs: list[JobCost], *, at_most: int = 1_000_000) -> int | None:
        """How many more Jobs fit, taking ``costs`` in turn; None when nothing limits them (no --max-in-flight,
        no quota covering them). Nothing is taken from this capacity."""
        if not costs:
            return 0
        trial = Capacity(self.slots, [(quota, dict(room)) for quota, room in self.quotas], self.exhausted)
        limited = self.slots is not None or any(quota.covers(cost) for quota, _ in self.quotas for cost in costs)
        if not limited:
            return None
        admitted = 0
        while admitted < at_most and trial.admits(costs[admitted % len(costs)]):
            trial.take(costs[admitted % len(costs)])
            admitted += 1
        return admitted

    def take(self, cost: JobCost) -> None:
        """Account for one Job of this cost."""
        if self.slots is not None:
            self.slots -= 1
        for quota, room in self.quotas:
            if quota.covers(cost):
                for name in room:
                    room[name] -= cost.resources.get(name, Decimal(0))

    def exhaust(self) -> None:
        """The API refused a create for quota: admit nothing more this run."""
        self.exhausted = True


def _object(value: Any) -> Mapping[str, Any]:
    """A field of an API object that should be an object; anything else reads as empty."""
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _quantity(quota: str, resource: str, value: Any) -> Decimal:
    try:
        return parse_quantity(value)
    except (ValueError, ArithmeticError, TypeError) as error:
        raise ClusterError(f"ResourceQuota {quota!r}: {resource}={value!r} is not a quantity") from error
