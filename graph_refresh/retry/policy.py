"""What an item does next, from how its Jobs ended (docs/learning.md). Pure: no I/O, no clock (the run's
time is passed in as epoch seconds).

A run starts from the ledger (what earlier runs learned) and folds in every failed owned Job it sees
(:class:`History`). A failed Job is charged only when its attempt number is above the highest attempt its
item's entry learned (:func:`learn`), so a failed Job seen by several hourly runs is charged once and no clock
decides what was learned. The planner then asks :meth:`History.next_for` for each candidate: a
:class:`Schedule` (then :func:`apply` writes its resources into the rendered Job) or a :class:`Skip`
(``failed-recently``, ``quarantined``).

Deadlines: a Job fails with reason ``DeadlineExceeded`` when its own ``spec.activeDeadlineSeconds`` runs out,
so that is the deadline read, doubled and written. A pod template's ``spec.activeDeadlineSeconds`` (which
fails only the pod) is kept and doubled alongside when set, so it cannot undo the Job's longer deadline.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from graph_refresh.config import RetrySettings, redact_url
from graph_refresh.items import ANALYZER, SOLVER, WorkItem, is_package_name, is_version, normalize_name
from graph_refresh.quantity import Cap, double_quantity, parse_quantity
from graph_refresh.retry.failures import SECTIONS, FailedAttempt, FailedJob, containers_of, get, quantity_text, seconds
from graph_refresh.retry.model import (
    CHARGED,
    AttemptResources,
    Cause,
    ContainerMemory,
    ItemId,
    LedgerEntry,
    expires_at,
    is_item_key,
)
from graph_refresh.text import shown
from graph_refresh.vocabulary import JobState, SkipReason

_MAX_BACKOFF_EXPONENT = 64  # 2^64 back-offs outlast any quarantine; the cap only keeps floats finite


def quarantines(policy: RetrySettings, entry: LedgerEntry | None) -> bool:
    """Whether ``entry``'s charged failures put its item in quarantine (until ``quarantine_seconds`` after its
    last failure)."""
    return bool(policy.max_attempts) and entry is not None and entry.failures >= policy.max_attempts


@dataclass(frozen=True)
class Schedule:
    """Schedule the item's next attempt."""

    attempt: int
    """The attempt number: 1 for a first attempt, whose Job name says so (design: Items); n >= 2 for a retry."""
    resources: AttemptResources | None
    """What to ``apply`` to the rendered Job; None for a first attempt (the Template as it renders)."""
    retries: Cause | None = None
    """The cause of the failure this attempt retries (the report's ``retried`` counts); None for attempt 1."""
    capped: bool = False
    """The escalation reached the cap: ``--max-memory`` for the OOM-killed container (any container when it is
    not known), ``--max-deadline`` for a deadline."""


FIRST_ATTEMPT = Schedule(1, None)
"""An item's first attempt: the Template's resources, the usual Job name."""


@dataclass(frozen=True)
class Skip:
    """Do not schedule the item before ``until`` (epoch seconds)."""

    reason: SkipReason
    """``failed-recently`` or ``quarantined``."""
    until: float


@dataclass(frozen=True)
class Forget:
    """The entry's time is over: drop it from the ledger and schedule a first attempt."""

    schedule: Schedule = FIRST_ATTEMPT


Decision = Schedule | Skip | Forget


def _larger(current: object, learned: str) -> str:
    """``learned`` unless ``current`` is a readable quantity that is larger."""
    text = quantity_text(current)
    return text if text is not None and parse_quantity(text) > parse_quantity(learned) else learned


def apply(job: dict[str, Any], resources: AttemptResources) -> None:
    """Write an attempt's resources into a rendered Job, in place; never lowering what the Job already has.

    For each container named in ``resources.memory``: its memory request and limit (a value given as None
    leaves the Job's own); the Job's ``spec.activeDeadlineSeconds`` and the pod template's, when given.
    Where the rendered Job already has a larger value (an operator raised the Template after the failure),
    it is kept; a limit below the request is raised to the request. Containers not named keep theirs; a
    Job without the expected structure is left unchanged where the structure is missing.
    """
    for container in containers_of(job):
        name = container.get("name")
        learned = resources.memory.get(name) if isinstance(name, str) else None
        if learned is None or not isinstance(container, dict):
            continue
        if not isinstance(container.get("resources"), dict):
            container["resources"] = {}
        for part, section in SECTIONS:
            value = getattr(learned, part)
            if value is None:
                continue
            if not isinstance(container["resources"].get(section), dict):
                container["resources"][section] = {}
            memory = container["resources"][section]
            memory["memory"] = _larger(memory.get("memory"), value)
        request = quantity_text(get(container, "resources", "requests", "memory"))
        limits = get(container, "resources", "limits")
        limit = quantity_text(get(limits, "memory"))
        if request is not None and limit is not None:
            limits["memory"] = _larger(request, limit)
    spec = job.get("spec")
    if isinstance(spec, dict) and resources.deadline_seconds is not None:
        spec["activeDeadlineSeconds"] = max(seconds(spec.get("activeDeadlineSeconds")) or 0, resources.deadline_seconds)
    pod_spec = get(job, "spec", "template", "spec")
    if isinstance(pod_spec, dict) and resources.pod_deadline_seconds is not None:
        current = seconds(pod_spec.get("activeDeadlineSeconds")) or 0
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
    cause: Cause | None, resources: AttemptResources, policy: RetrySettings, killed: str | None = None
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
    policy: RetrySettings,
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


def next_attempt(entry: LedgerEntry | None, now: float, policy: RetrySettings) -> Decision:
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
        return FIRST_ATTEMPT
    if now >= expires_at(entry, policy.quarantine_seconds):
        return Forget()
    if quarantines(policy, entry):
        return Skip(SkipReason.QUARANTINED, expires_at(entry, policy.quarantine_seconds))
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
        return Skip(SkipReason.FAILED_RECENTLY, until)
    return Schedule(following, entry.resources, Cause.ERROR)


class SeenJobs(Protocol):
    """What a run saw of its owned Jobs that its history learns from (``owned.OwnedJobs``)."""

    @property
    def failures(self) -> Mapping[str, list[FailedAttempt]]: ...

    @property
    def latest(self) -> Mapping[str, tuple[int, JobState]]: ...


@dataclass
class History:
    """Every item's failure history for this run, and the policy that turns it into a decision."""

    entries: dict[str, LedgerEntry]
    """Item key → ledger entry: what the run writes back."""
    policy: RetrySettings
    now: float
    pending: dict[str, list[FailedAttempt]] = field(default_factory=dict)
    """Failed Jobs whose item is not on the Job (an earlier release made them): learned when met."""
    future: list[str] = field(default_factory=list)
    """Failed Jobs learned with a failure time later than the run's clock (taken as the run's time)."""
    quarantined_now: list[LedgerEntry] = field(default_factory=list)
    """Entries whose item this run's learning put into quarantine."""

    @classmethod
    def of(cls, ledger: Mapping[str, LedgerEntry], view: SeenJobs, policy: RetrySettings, now: float) -> History:
        """The ledger as read, with the view's failed Jobs learned and the items that completed forgotten."""
        history = cls(dict(ledger), policy, now)
        for key, failures in view.failures.items():
            for failure in failures:
                if failure.item is None:
                    history.pending.setdefault(key, []).append(failure)
                else:
                    history._learn(failure.item, failure)
        for key, (_, state) in view.latest.items():
            if state is JobState.COMPLETE:
                history.entries.pop(key, None)
        return history

    def _learn(self, item: ItemId, failure: FailedAttempt) -> None:
        entry = self.entries.get(item.key)
        if entry is not None and failure.attempt <= entry.attempt:
            return  # learned before (or forgotten by an operator after it failed)
        failed = failure.failed
        if failed.failed_at > self.now:
            self.future.append(failed.name)
            failed = FailedJob(failed.name, failed.cause, self.now, failed.detail, failed.container)
        learned = learn(entry, item, failed, failure.attempt, failure.resources, self.policy)
        self.entries[item.key] = learned
        if quarantines(self.policy, learned) and not quarantines(self.policy, entry):
            self.quarantined_now.append(learned)

    def next_for(self, item: WorkItem) -> Schedule | Skip:
        """What ``item`` does this run; an entry whose time is over is dropped (the item starts again)."""
        if not self.pending and (not self.entries or item.key not in self.entries):
            return FIRST_ATTEMPT  # most items: nothing known, nothing to learn
        found = self.pending.pop(item.key, []) + self.pending.pop(item.job_name, [])
        for failure in sorted(found, key=lambda failure: failure.attempt):
            self._learn(ItemId.of(item), failure)
        return self._decided(item.key, next_attempt(self.entries.get(item.key), self.now, self.policy))

    def _decided(self, key: str, decision: Decision) -> Schedule | Skip:
        if isinstance(decision, Forget):
            self.entries.pop(key, None)
            return decision.schedule
        return decision

    def at_cap(self, item: WorkItem) -> Schedule | Skip:
        """Count the item's last failure as an error, its escalation being too big for a ResourceQuota ever to
        admit; returns what the item does now (a back-off, quarantine, or a retry as it was)."""
        self.entries[item.key] = capped = at_cap(self.entries[item.key])
        return self._decided(item.key, next_attempt(capped, self.now, self.policy))

    def quarantined(self) -> Iterator[LedgerEntry]:
        """The entries whose items are in quarantine now."""
        for entry in self.entries.values():
            if quarantines(self.policy, entry) and self.now < expires_at(entry, self.policy.quarantine_seconds):
                yield entry


def entry_state(entry: LedgerEntry, now: float, policy: RetrySettings) -> tuple[str, float | None]:
    """What an entry means for its item's next run at ``now``, in words, and until when (None: no end)."""
    decision = next_attempt(entry, now, policy)
    if isinstance(decision, Forget):
        return "expired: starts again at attempt 1", None
    if isinstance(decision, Skip):
        what = "quarantined" if decision.reason == "quarantined" else "backing off"
        return f"{what} until", decision.until
    if decision.resources is None:
        return f"forgotten: attempt {decision.attempt} from the Template next run", None
    return f"retry next run: attempt {decision.attempt}", None


def forget_matcher(
    target: str | None, *, index: str | None, solver: str | None, analyzer: bool, everything: bool
) -> Callable[[LedgerEntry], bool]:
    """Which entries ``ledger forget`` resets: an item key (in any case), ``PKG==VER`` or ``PKG`` (names compared
    in PEP 503 form), narrowed by an index URL, a solver or the analyzer; or every entry. ValueError says what
    is wrong with a combination or a value (quoted and escaped: it may hold anything a terminal acts on)."""
    for option, value in (("--index", index), ("--solver", solver)):
        if value is not None and (not value.strip() or not value.isprintable()):
            raise ValueError(f"{option} {shown(redact_url(value))} is not printable text")
    if everything:
        if target or index or solver or analyzer:
            raise ValueError("--all forgets every entry: give it alone")
        return lambda entry: True
    if solver and analyzer:
        raise ValueError("--solver and --analyzer exclude each other")
    if index and not target:
        raise ValueError("--index narrows PKG==VER or PKG: give one")
    if target is None and not (solver or analyzer):
        raise ValueError("say what to forget: ITEM-KEY, PKG==VER, PKG, --solver NAME, --analyzer or --all")
    if target is not None and is_item_key(target.lower()):
        if index or solver or analyzer:
            raise ValueError(f"{target} is an item key, which names one item: give it alone")
        key = target.lower()  # keys are hex digests: upper case names the same key
        return lambda entry: entry.key == key
    package, version = None, None
    if target is not None:
        name, separator, version_text = target.partition("==")
        name, version_text = name.strip(), version_text.strip()
        if not is_package_name(name) or (separator and not is_version(version_text)):
            hint = ": options go before --" if target.startswith("-") else ""
            raise ValueError(
                f"{shown(target)} is neither an item key (10 hex characters), PKG==VER nor a package name{hint}"
            )
        package, version = normalize_name(name), version_text if separator else None
    masked = None if index is None else redact_url(index)
    kind = ANALYZER if analyzer else SOLVER if solver else None

    def matches(entry: LedgerEntry) -> bool:
        item = entry.item
        return (
            (package is None or normalize_name(item.package) == package)
            and (version is None or item.version == version)
            and (masked is None or item.index == masked)
            and (kind is None or item.kind == kind)
            and (solver is None or item.solver == solver)
        )

    return matches
