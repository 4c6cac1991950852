"""Why an owned Job failed, read from the Job and its pods as the API lists them (docs/learning.md).

Pure code: the inputs are raw JSON objects (or their compact records, ``compact.py``), so every reader here
tolerates missing or odd fields instead of raising. First match wins: ``disrupted`` (a pod with a true
``DisruptionTarget`` condition, or evicted, preempted, shut down), ``oom`` (a container ``OOMKilled``),
``deadline`` (the Job's ``Failed`` condition says ``DeadlineExceeded``), else ``error``.
"""

from __future__ import annotations

import math
from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from graph_refresh.items import LABEL_ATTEMPT
from graph_refresh.quantity import parse_quantity
from graph_refresh.retry.model import MAX_NUMBER, AttemptResources, Cause, ContainerMemory, ItemId
from graph_refresh.times import parse_time

JOB_NAME_LABELS = ("batch.kubernetes.io/job-name", "job-name")  # the Job controller sets both (1.27+) or the old one

DISRUPTED_POD_REASONS = frozenset({"Evicted", "Preempted", "Shutdown", "NodeShutdown"})

OOM_REASON = "OOMKilled"

DEADLINE_REASON = "DeadlineExceeded"


@dataclass(frozen=True)
class FailedJob:
    """A Job with a true ``Failed`` condition, classified."""

    name: str
    cause: Cause
    failed_at: float
    """The Failed condition's lastTransitionTime (else the run's time), epoch seconds, whole."""
    detail: str
    """What decided the cause, for a log line: the pod and container, or the condition's reason."""
    container: str | None = None
    """For ``oom``: the container that was OOM-killed (its memory is what must grow)."""


@dataclass(frozen=True)
class FailedAttempt:
    """One failed owned Job, classified: what a run learns from."""

    failed: FailedJob
    attempt: int
    resources: AttemptResources
    item: ItemId | None
    """Who failed, from the Job's labels and annotations; None for a Job that lacks them (made by an earlier
    release, or its item label was removed by hand): it is learned when the item's candidate is met."""


# --- reading raw API objects -------------------------------------------------------------------------------


def get(obj: object, *path: str) -> Any:
    """``obj[path[0]][path[1]]...``, or None when a step is missing or not a mapping."""
    for name in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(name)
    return obj


def _mappings(value: object) -> list[Mapping[str, Any]]:
    """The mappings in ``value`` when it is a list; anything else reads as empty."""
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def _true_condition(obj: object, kind: str) -> Mapping[str, Any] | None:
    for condition in _mappings(get(obj, "status", "conditions")):
        if condition.get("type") == kind and condition.get("status") == "True":
            return condition
    return None


def _name(obj: object) -> str:
    name = get(obj, "metadata", "name")
    return name if isinstance(name, str) else "?"


def pods_by_job(pods: Iterable[object], *, only: Container[str] | None = None) -> dict[str, list[Mapping[str, Any]]]:
    """Pods grouped by the name of the Job that made them (label ``batch.kubernetes.io/job-name`` or ``job-name``).

    Pods without either label, or that are not objects, are left out; so are those of Jobs not in ``only``
    (when given).
    """
    grouped: dict[str, list[Mapping[str, Any]]] = {}
    for pod in pods:
        labels = get(pod, "metadata", "labels")
        if not isinstance(pod, Mapping) or not isinstance(labels, Mapping):
            continue
        job = next((labels[label] for label in JOB_NAME_LABELS if isinstance(labels.get(label), str)), None)
        if job and (only is None or job in only):
            grouped.setdefault(job, []).append(pod)
    return grouped


def attempt_of(job: object) -> int:
    """The Job's attempt number from its ``thoth-station.ninja/attempt`` label; 1 when absent or not a number
    from 1 to ``MAX_NUMBER``."""
    text = get(job, "metadata", "labels", LABEL_ATTEMPT)
    if isinstance(text, str) and 0 < len(text) <= 16 and text.isascii() and text.isdigit():
        number = int(text)
        return number if 1 <= number <= MAX_NUMBER else 1
    return 1


def cause_of(job: Mapping[str, Any], pods: Sequence[object], *, now: float) -> FailedJob | None:
    """Why ``job`` failed (first match wins; design: Learning), or None when it has no true ``Failed`` condition.

    ``pods`` are this Job's pods (see ``pods_by_job``); they may be gone. Never raises on malformed objects:
    a field that is missing or of the wrong type simply does not match, so an unreadable failed Job is an
    ``error`` and the failure time falls back to ``now`` when lastTransitionTime is missing or not RFC 3339.
    """
    failed = _true_condition(job, "Failed")
    if failed is None:
        return None
    failed_at = parse_time(failed.get("lastTransitionTime"))
    when = float(math.floor(now if failed_at is None else failed_at))
    name = _name(job)
    for pod in pods:
        reason = get(pod, "status", "reason")
        if _true_condition(pod, "DisruptionTarget") is not None:
            return FailedJob(name, Cause.DISRUPTED, when, f"pod {_name(pod)} has condition DisruptionTarget")
        if isinstance(reason, str) and reason in DISRUPTED_POD_REASONS:
            return FailedJob(name, Cause.DISRUPTED, when, f"pod {_name(pod)} {reason}")
    for pod in pods:
        for statuses in ("initContainerStatuses", "containerStatuses", "ephemeralContainerStatuses"):
            for status in _mappings(get(pod, "status", statuses)):
                for state in ("state", "lastState"):
                    if get(status, state, "terminated", "reason") == OOM_REASON:
                        container = status.get("name")
                        detail = f"pod {_name(pod)} container {container} {OOM_REASON}"
                        return FailedJob(
                            name, Cause.OOM, when, detail, container if isinstance(container, str) else None
                        )
    reason = failed.get("reason")
    if reason == DEADLINE_REASON:
        return FailedJob(name, Cause.DEADLINE, when, DEADLINE_REASON)
    detail = f"Failed: {reason}" if isinstance(reason, str) and reason else "Failed"
    return FailedJob(name, Cause.ERROR, when, detail if pods else f"{detail} (pods gone)")


# --- resources of an attempt ---------------------------------------------------------------------------------

SECTIONS = (("request", "requests"), ("limit", "limits"))


def quantity_text(value: object) -> str | None:
    """A memory value as quantity text, or None when it is not a quantity (or a bool, or not finite)."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    try:
        parse_quantity(value)
    except ValueError:
        return None
    return value.strip() if isinstance(value, str) else str(value)


def seconds(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def containers_of(job: object) -> list[Mapping[str, Any]]:
    pod_spec = get(job, "spec", "template", "spec")
    return _mappings(get(pod_spec, "initContainers")) + _mappings(get(pod_spec, "containers"))


def resources_of(job: Mapping[str, Any]) -> AttemptResources:
    """What a rendered or listed Job runs with: memory per container (init containers too) and deadlines.

    A container without a string name, or without any memory request or limit, is left out; a value that is
    not a quantity, or a deadline that is not a positive whole number, reads as unset.
    """
    memory: dict[str, ContainerMemory] = {}
    for container in containers_of(job):
        name = container.get("name")
        request, limit = (quantity_text(get(container, "resources", section, "memory")) for _, section in SECTIONS)
        if isinstance(name, str) and (request or limit):
            memory[name] = ContainerMemory(request, limit)
    return AttemptResources(
        memory=memory,
        deadline_seconds=seconds(get(job, "spec", "activeDeadlineSeconds")),
        pod_deadline_seconds=seconds(get(job, "spec", "template", "spec", "activeDeadlineSeconds")),
    )
