"""What runs learn from how Jobs end, and what each item does next (docs/learning.md). Pure: no I/O, no clock.

A run starts from the ledger (what earlier runs learned, read from its ConfigMap) and folds in every
failed owned Job it sees. A failed Job is charged only when its attempt number is above the highest attempt
its item's entry learned (:func:`graph_refresh.outcomes.learn`), so a failed Job seen by several hourly runs is
charged once, and no clock (the Job controller's, the run's) decides what was learned. An item whose latest
Job completed is forgotten: it succeeded. The planner then asks :meth:`History.decide` for each candidate; the
run writes :attr:`History.entries` back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from graph_refresh.config import redact_url
from graph_refresh.items import ANALYZER, SOLVER, WorkItem, normalize_name
from graph_refresh.ledger import ItemId, LedgerEntry, expires_at, is_item_key
from graph_refresh.outcomes import Decision, FailedJob, Forget, Policy, Schedule, Skip, at_cap, decide, learn
from graph_refresh.view import ClusterView, Failure, JobState

FIRST_ATTEMPT = Schedule(1, None)


@dataclass
class History:
    """Every item's failure history for this run, and the policy that turns it into a decision."""

    entries: dict[str, LedgerEntry]
    """Item key → ledger entry: what the run writes back."""
    policy: Policy
    now: float
    pending: dict[str, list[Failure]] = field(default_factory=dict)
    """Failed Jobs whose item is not on the Job (an earlier release made them): learned when met."""
    future: list[str] = field(default_factory=list)
    """Failed Jobs learned with a failure time later than the run's clock (taken as the run's time)."""
    quarantined_now: list[LedgerEntry] = field(default_factory=list)
    """Entries whose item this run's learning put into quarantine."""

    @classmethod
    def of(cls, ledger: Mapping[str, LedgerEntry], view: ClusterView, policy: Policy, now: float) -> History:
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

    def _learn(self, item: ItemId, failure: Failure) -> None:
        entry = self.entries.get(item.key)
        if entry is not None and failure.attempt <= entry.attempt:
            return  # learned before (or forgotten by an operator after it failed)
        failed = failure.failed
        if failed.failed_at > self.now:
            self.future.append(failed.name)
            failed = FailedJob(failed.name, failed.cause, self.now, failed.detail, failed.container)
        learned = learn(entry, item, failed, failure.attempt, failure.resources, self.policy)
        self.entries[item.key] = learned
        limit = self.policy.max_attempts
        if limit and learned.failures >= limit > (entry.failures if entry is not None else 0):
            self.quarantined_now.append(learned)

    def decide(self, item: WorkItem) -> Schedule | Skip:
        """What ``item`` does this run; an entry whose time is over is dropped (the item starts again)."""
        if item.key not in self.entries and not self.pending:
            return FIRST_ATTEMPT  # most items: nothing known, nothing to learn
        found = self.pending.pop(item.key, []) + self.pending.pop(item.job_name, [])
        for failure in sorted(found, key=lambda failure: failure.attempt):
            self._learn(ItemId.of(item), failure)
        return self._decided(item.key, decide(self.entries.get(item.key), self.now, self.policy))

    def _decided(self, key: str, decision: Decision) -> Schedule | Skip:
        if isinstance(decision, Forget):
            self.entries.pop(key, None)
            return decision.schedule
        return decision

    def at_cap(self, item: WorkItem) -> Schedule | Skip:
        """Count the item's last failure as an error, its escalation being too big for a ResourceQuota ever to
        admit; returns what the item does now (a back-off, quarantine, or a retry as it was)."""
        self.entries[item.key] = capped = at_cap(self.entries[item.key])
        return self._decided(item.key, decide(capped, self.now, self.policy))

    def quarantined(self) -> Iterator[LedgerEntry]:
        """The entries whose items are in quarantine now."""
        limit = self.policy.max_attempts
        for entry in self.entries.values():
            if limit and entry.failures >= limit and self.now < expires_at(entry, self.policy.quarantine_seconds):
                yield entry


def entry_state(entry: LedgerEntry, now: float, policy: Policy) -> tuple[str, float | None]:
    """What an entry means for its item's next run at ``now``, in words, and until when (None: no end)."""
    decision = decide(entry, now, policy)
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
    """Which entries ``ledger forget`` resets: an item key, ``PKG==VER`` or ``PKG`` (names compared in PEP 503
    form), narrowed by an index URL, a solver or the analyzer; or every entry. ValueError says what is wrong
    with a combination."""
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
    if target is not None and is_item_key(target):
        if index or solver or analyzer:
            raise ValueError(f"{target} is an item key, which names one item: give it alone")
        return lambda entry: entry.key == target
    package, version = None, None
    if target is not None:
        name, separator, version_text = target.partition("==")
        if not name.strip() or (separator and not version_text.strip()):
            raise ValueError(f"{target!r} is neither an item key (10 hex characters), PKG==VER nor PKG")
        package, version = normalize_name(name.strip()), version_text.strip() if separator else None
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
