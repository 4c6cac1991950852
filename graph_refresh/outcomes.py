"""Learning from how Jobs end (SPEC §11): why a Job failed, and what the item's next attempt runs with.

Pure code: no I/O, no clock (the run's time is passed in as epoch seconds). The inputs are raw JSON objects
as the API lists them, so every reader here tolerates missing or odd fields instead of raising.

The flow of one run, per item:

1. ``classify(job, pods, now=...)`` for each owned failed Job (its pods grouped by ``pods_by_job``);
2. ``learn(entry, item, failed, attempt_of(job), resources_of(job), policy)`` folds it into the item's
   ledger entry; idempotent, so the ~24 hourly runs that see one failed Job before its TTL charge it once;
3. ``decide(entry, now, policy)`` says whether and how the item runs next: ``Schedule`` (then
   ``apply(job, decision.resources)`` on the rendered Job), ``Skip`` (``failed-recently``, ``quarantined``)
   or ``Forget`` (drop the entry and schedule a first attempt).

Deadlines: a Job fails with reason ``DeadlineExceeded`` when its own ``spec.activeDeadlineSeconds`` runs out,
so that is the deadline read, doubled and written. A pod template's ``spec.activeDeadlineSeconds`` (which
fails only the pod) is kept and doubled alongside when set, so it cannot undo the Job's longer deadline.
"""

from __future__ import annotations

import math
from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from graph_refresh.config import (
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_MAX_DEADLINE_SECONDS,
    DEFAULT_MAX_MEMORY,
    DEFAULT_QUARANTINE_SECONDS,
    DEFAULT_RETRY_BACKOFF_SECONDS,
    RetrySettings,
)
from graph_refresh.items import LABEL_ATTEMPT
from graph_refresh.ledger import (
    CHARGED,
    MAX_NUMBER,
    AttemptResources,
    Cause,
    ContainerMemory,
    ItemId,
    LedgerEntry,
    expires_at,
    parse_time,
)
from graph_refresh.quantity import Cap, double_quantity, parse_quantity

__all__ = [
    "CHARGED",
    "LABEL_ATTEMPT",
    "AttemptResources",
    "Cause",
    "ContainerMemory",
    "Decision",
    "FailedJob",
    "Forget",
    "Policy",
    "Schedule",
    "Skip",
    "apply",
    "at_cap",
    "attempt_of",
    "classify",
    "decide",
    "learn",
    "pods_by_job",
    "resources_of",
]

JOB_NAME_LABELS = ("batch.kubernetes.io/job-name", "job-name")  # the Job controller sets both (1.27+) or the old one
DISRUPTED_POD_REASONS = frozenset({"Evicted", "Preempted", "Shutdown", "NodeShutdown"})
OOM_REASON = "OOMKilled"
DEADLINE_REASON = "DeadlineExceeded"

_MAX_BACKOFF_EXPONENT = 64  # 2^64 back-offs outlast any quarantine; the cap only keeps floats finite


@dataclass(frozen=True)
class Policy:
    """The retry tunables of SPEC §11 (``--max-memory``, ``--max-deadline``, ...)."""

    max_memory: Cap = field(default_factory=lambda: Cap.parse(DEFAULT_MAX_MEMORY))
    """Memory an OOM retry never exceeds; a Job that already had it counts as an error."""
    max_deadline_seconds: int = DEFAULT_MAX_DEADLINE_SECONDS
    """activeDeadlineSeconds a deadline retry never exceeds; a Job that already had it counts as an error."""
    retry_backoff_seconds: int = DEFAULT_RETRY_BACKOFF_SECONDS
    """Wait after an error failure, times 2^(f-1) for the item's f-th charged failure."""
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    """Charged failures after which the item is quarantined; 0 never quarantines."""
    quarantine_seconds: int = DEFAULT_QUARANTINE_SECONDS
    """How long after its last failure an entry is kept: then the item starts again at attempt 1."""

    @classmethod
    def of(cls, settings: RetrySettings) -> Policy:
        """The policy of the run's settings (``max_memory`` was checked when it was read)."""
        return cls(
            max_memory=Cap.parse(settings.max_memory),
            max_deadline_seconds=settings.max_deadline_seconds,
            retry_backoff_seconds=settings.retry_backoff_seconds,
            max_attempts=settings.max_attempts,
            quarantine_seconds=settings.quarantine_seconds,
        )


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
class Schedule:
    """Schedule the item's next attempt."""

    attempt: int
    """The attempt number: 1 for a first attempt (the §4 Job name), n >= 2 for a retry."""
    resources: AttemptResources | None
    """What to ``apply`` to the rendered Job; None for a first attempt (the Template as it renders)."""
    retries: Cause | None = None
    """The cause of the failure this attempt retries (the report's ``retried`` counts); None for attempt 1."""
    capped: bool = False
    """The escalation reached the cap: ``--max-memory`` for the OOM-killed container (any container when it is
    not known), ``--max-deadline`` for a deadline."""


@dataclass(frozen=True)
class Skip:
    """Do not schedule the item before ``until`` (epoch seconds)."""

    reason: Literal["failed-recently", "quarantined"]
    until: float


@dataclass(frozen=True)
class Forget:
    """The entry's time is over: drop it from the ledger and schedule a first attempt."""

    schedule: Schedule = field(default_factory=lambda: Schedule(1, None))


Decision = Schedule | Skip | Forget


# --- reading raw API objects -------------------------------------------------------------------------------


def _get(obj: object, *path: str) -> Any:
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
    for condition in _mappings(_get(obj, "status", "conditions")):
        if condition.get("type") == kind and condition.get("status") == "True":
            return condition
    return None


def _name(obj: object) -> str:
    name = _get(obj, "metadata", "name")
    return name if isinstance(name, str) else "?"


def pods_by_job(pods: Iterable[object], *, only: Container[str] | None = None) -> dict[str, list[Mapping[str, Any]]]:
    """Pods grouped by the name of the Job that made them (label ``batch.kubernetes.io/job-name`` or ``job-name``).

    Pods without either label, or that are not objects, are left out; so are those of Jobs not in ``only``
    (when given).
    """
    grouped: dict[str, list[Mapping[str, Any]]] = {}
    for pod in pods:
        labels = _get(pod, "metadata", "labels")
        if not isinstance(pod, Mapping) or not isinstance(labels, Mapping):
            continue
        job = next((labels[label] for label in JOB_NAME_LABELS if isinstance(labels.get(label), str)), None)
        if job and (only is None or job in only):
            grouped.setdefault(job, []).append(pod)
    return grouped


def attempt_of(job: object) -> int:
    """The Job's attempt number from its ``thoth-station.ninja/attempt`` label; 1 when absent or not a number
    from 1 to ``MAX_NUMBER``."""
    text = _get(job, "metadata", "labels", LABEL_ATTEMPT)
    if isinstance(text, str) and 0 < len(text) <= 16 and text.isascii() and text.isdigit():
        number = int(text)
        return number if 1 <= number <= MAX_NUMBER else 1
    return 1


def classify(job: Mapping[str, Any], pods: Sequence[object], *, now: float) -> FailedJob | None:
    """Why ``job`` failed (SPEC §11, first match wins), or None when it has no true ``Failed`` condition.

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
        reason = _get(pod, "status", "reason")
        if _true_condition(pod, "DisruptionTarget") is not None:
            return FailedJob(name, Cause.DISRUPTED, when, f"pod {_name(pod)} has condition DisruptionTarget")
        if isinstance(reason, str) and reason in DISRUPTED_POD_REASONS:
            return FailedJob(name, Cause.DISRUPTED, when, f"pod {_name(pod)} {reason}")
    for pod in pods:
        for statuses in ("initContainerStatuses", "containerStatuses", "ephemeralContainerStatuses"):
            for status in _mappings(_get(pod, "status", statuses)):
                for state in ("state", "lastState"):
                    if _get(status, state, "terminated", "reason") == OOM_REASON:
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

_SECTIONS = (("request", "requests"), ("limit", "limits"))


def _quantity_text(value: object) -> str | None:
    """A memory value as quantity text, or None when it is not a quantity (or a bool, or not finite)."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    try:
        parse_quantity(value)
    except ValueError:
        return None
    return value.strip() if isinstance(value, str) else str(value)


def _seconds(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _containers(job: object) -> list[Mapping[str, Any]]:
    pod_spec = _get(job, "spec", "template", "spec")
    return _mappings(_get(pod_spec, "initContainers")) + _mappings(_get(pod_spec, "containers"))


def resources_of(job: Mapping[str, Any]) -> AttemptResources:
    """What a rendered or listed Job runs with: memory per container (init containers too) and deadlines.

    A container without a string name, or without any memory request or limit, is left out; a value that is
    not a quantity, or a deadline that is not a positive whole number, reads as unset.
    """
    memory: dict[str, ContainerMemory] = {}
    for container in _containers(job):
        name = container.get("name")
        request, limit = (_quantity_text(_get(container, "resources", section, "memory")) for _, section in _SECTIONS)
        if isinstance(name, str) and (request or limit):
            memory[name] = ContainerMemory(request, limit)
    return AttemptResources(
        memory=memory,
        deadline_seconds=_seconds(_get(job, "spec", "activeDeadlineSeconds")),
        pod_deadline_seconds=_seconds(_get(job, "spec", "template", "spec", "activeDeadlineSeconds")),
    )


def _larger(current: object, learned: str) -> str:
    """``learned`` unless ``current`` is a readable quantity that is larger."""
    text = _quantity_text(current)
    return text if text is not None and parse_quantity(text) > parse_quantity(learned) else learned


def apply(job: dict[str, Any], resources: AttemptResources) -> None:
    """Write an attempt's resources into a rendered Job, in place; never lowering what the Job already has.

    For each container named in ``resources.memory``: its memory request and limit (a value given as None
    leaves the Job's own); the Job's ``spec.activeDeadlineSeconds`` and the pod template's, when given.
    Where the rendered Job already has a larger value (an operator raised the Template after the failure),
    it is kept; a limit below the request is raised to the request. Containers not named keep theirs; a
    Job without the expected structure is left unchanged where the structure is missing.
    """
    for container in _containers(job):
        name = container.get("name")
        learned = resources.memory.get(name) if isinstance(name, str) else None
        if learned is None or not isinstance(container, dict):
            continue
        if not isinstance(container.get("resources"), dict):
            container["resources"] = {}
        for part, section in _SECTIONS:
            value = getattr(learned, part)
            if value is None:
                continue
            if not isinstance(container["resources"].get(section), dict):
                container["resources"][section] = {}
            memory = container["resources"][section]
            memory["memory"] = _larger(memory.get("memory"), value)
        request = _quantity_text(_get(container, "resources", "requests", "memory"))
        limits = _get(container, "resources", "limits")
        limit = _quantity_text(_get(limits, "memory"))
        if request is not None and limit is not None:
            limits["memory"] = _larger(request, limit)
    spec = job.get("spec")
    if isinstance(spec, dict) and resources.deadline_seconds is not None:
        spec["activeDeadlineSeconds"] = max(
            _seconds(spec.get("activeDeadlineSeconds")) or 0, resources.deadline_seconds
        )
    pod_spec = _get(job, "spec", "template", "spec")
    if isinstance(pod_spec, dict) and resources.pod_deadline_seconds is not None:
        current = _seconds(pod_spec.get("activeDeadlineSeconds")) or 0
        pod_spec["activeDeadlineSeconds"] = max(current, resources.pod_deadline_seconds)


# --- escalation ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Escalation:
    resources: AttemptResources
    capped: bool


def _grow(text: str | None, cap: Cap) -> str | None:
    """The doubled (capped) memory, or None when it cannot grow (unset, at the cap, or not positive)."""
    if text is None:
        return None
    try:
        return double_quantity(text, cap)
    except ValueError:
        return None


def _grows(container: ContainerMemory, cap: Cap) -> bool:
    """Whether doubling gives the container more memory where the kernel OOM-kills: its limit, or its
    request when it has no limit."""
    if container.limit is not None:
        return _grow(container.limit, cap) is not None
    return _grow(container.request, cap) is not None


def _escalate_memory(resources: AttemptResources, cap: Cap, killed: str | None = None) -> _Escalation | None:
    """Every container's memory request and limit doubled, up to ``cap``; None when no container can grow.

    A container "grows" when its limit does, or its request when it has no limit (the limit is what the
    kernel OOM-kills at): raising only a request under a limit at the cap would retry the same failure.
    The escalation is capped when the OOM-killed container (``killed``; any container when None or unknown)
    now has the cap: a sidecar already at the cap beside a growing container does not make it so.
    """
    memory: dict[str, ContainerMemory] = {}
    for name, container in resources.memory.items():
        request, limit = _grow(container.request, cap), _grow(container.limit, cap)
        memory[name] = ContainerMemory(request or container.request, limit or container.limit)
    if not any(_grows(container, cap) for container in resources.memory.values()):
        return None
    watched = [memory[killed]] if killed in memory else list(memory.values())
    capped = any(
        text is not None and parse_quantity(text) >= cap.value
        for container in watched
        for text in (container.request, container.limit)
    )
    return _Escalation(replace(resources, memory=memory), capped)


def _escalate_deadline(resources: AttemptResources, maximum: int) -> _Escalation | None:
    """The Job's activeDeadlineSeconds doubled up to ``maximum`` (the pod's too when set); None at the cap."""
    deadline = resources.deadline_seconds
    if deadline is None or deadline >= maximum:
        return None
    pod = resources.pod_deadline_seconds
    escalated = replace(
        resources,
        deadline_seconds=min(2 * deadline, maximum),
        pod_deadline_seconds=pod if pod is None or pod >= maximum else min(2 * pod, maximum),
    )
    return _Escalation(escalated, escalated.deadline_seconds == maximum)


def _escalate(
    cause: Cause | None, resources: AttemptResources, policy: Policy, killed: str | None = None
) -> _Escalation | None:
    if cause is Cause.OOM:
        return _escalate_memory(resources, policy.max_memory, killed)
    if cause is Cause.DEADLINE:
        return _escalate_deadline(resources, policy.max_deadline_seconds)
    return None


# --- history --------------------------------------------------------------------------------------------------


def learn(
    entry: LedgerEntry | None,
    item: ItemId,
    failed: FailedJob,
    attempt: int,
    resources: AttemptResources,
    policy: Policy,
) -> LedgerEntry:
    """Fold one failed Job (attempt number ``attempt``, run with ``resources``) into the item's entry.

    Learned once, by attempt number and never by clock: a failed Job of the attempt the entry already knows
    (the same Job, seen again by a later run before its TTL removes it), or of an older attempt (an operator
    forgot the entry after it failed), returns ``entry`` unchanged. An entry whose time was
    over when this failure happened (``quarantine_seconds`` after its last failure) is replaced, not added to.
    An ``oom`` failure that no memory escalation can help (at ``max_memory``, or no memory set), and a
    ``deadline`` failure at ``max_deadline_seconds`` (or without a Job deadline), are recorded as ``error``.
    """
    if entry is not None and failed.failed_at >= expires_at(entry, policy.quarantine_seconds):
        entry = None
    if entry is not None and attempt <= entry.attempt:
        return entry
    cause = failed.cause
    if cause in (Cause.OOM, Cause.DEADLINE) and _escalate(cause, resources, policy) is None:
        cause = Cause.ERROR
    killed = resources.memory.get(failed.container) if cause is Cause.OOM and failed.container else None
    if killed is not None and not _grows(killed, policy.max_memory):
        cause = Cause.ERROR  # the container that ran out is at the cap: doubling the others cannot help
    failures = (entry.failures if entry is not None else 0) + int(cause in CHARGED)
    container = failed.container if cause is Cause.OOM else None
    return LedgerEntry(item, failures, attempt, cause, failed.failed_at, resources, container)


def at_cap(entry: LedgerEntry) -> LedgerEntry:
    """The entry with its last failure counted as an ``error``: its escalation can never run (it is above what
    a ResourceQuota can ever admit), so it is retried as it was, after the back-off, towards quarantine."""
    return replace(entry, cause=Cause.ERROR, container=None)


def decide(entry: LedgerEntry | None, now: float, policy: Policy) -> Decision:
    """What the item does this run, given its ledger entry (None: no failure known) and the run's time.

    In order: no entry → attempt 1 as rendered; entry older than the quarantine period → ``Forget``;
    ``max_attempts`` charged failures → ``Skip("quarantined")`` until the quarantine ends; then by the last
    cause: none (an operator forgot the entry) → next attempt as rendered; ``disrupted`` → next attempt, same
    resources; ``oom``/``deadline`` → next attempt escalated
    (when the cap leaves no room, e.g. after ``--max-memory`` was lowered, as ``error``); ``error`` →
    ``Skip("failed-recently")`` until retry_backoff × 2^(f−1) after the failure, then the next attempt with
    the same resources.
    """
    if entry is None:
        return Schedule(1, None)
    if now >= expires_at(entry, policy.quarantine_seconds):
        return Forget()
    if policy.max_attempts and entry.failures >= policy.max_attempts:
        return Skip("quarantined", expires_at(entry, policy.quarantine_seconds))
    following = entry.attempt + 1
    if entry.cause is None:
        return Schedule(following, None)
    if entry.cause is Cause.DISRUPTED:
        return Schedule(following, entry.resources, Cause.DISRUPTED)
    escalation = _escalate(entry.cause, entry.resources, policy, entry.container)
    if escalation is not None:
        return Schedule(following, escalation.resources, entry.cause, escalation.capped)
    exponent = min(max(entry.failures, 1) - 1, _MAX_BACKOFF_EXPONENT)
    until = entry.failed_at + policy.retry_backoff_seconds * 2**exponent
    if now < until:
        return Skip("failed-recently", until)
    return Schedule(following, entry.resources, Cause.ERROR)
