"""What runs learn from how Jobs end, and what each item does next (SPEC §11). Pure: no I/O, no clock.

A run starts from the ledger (what earlier runs learned, read from its ConfigMap) and folds in every
failed owned Job it sees (:func:`graph_refresh.outcomes.learn` is idempotent, so a failed Job seen by
several hourly runs is charged once). An item whose latest Job completed is forgotten: it succeeded. The
planner then asks :meth:`History.decide` for each candidate; the run writes :attr:`History.entries` back.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from graph_refresh.items import WorkItem
from graph_refresh.ledger import ItemId, LedgerEntry, expires_at
from graph_refresh.outcomes import Decision, Forget, Policy, Schedule, decide, learn
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

    @classmethod
    def of(
        cls,
        ledger: Mapping[str, LedgerEntry],
        view: ClusterView,
        policy: Policy,
        now: float,
        *,
        learned_until: float | None = None,
    ) -> History:
        """The ledger as read, with the view's failed Jobs learned and the items that completed forgotten.

        Failed Jobs that ended by ``learned_until`` were learned by an earlier run (their entries are in the
        ledger, or an operator cleared them): they are not learned again, except those the first release made,
        which no run learned before.
        """
        history = cls(dict(ledger), policy, now)
        for key, failures in view.failures.items():
            for failure in failures:
                if learned_until is not None and not failure.legacy and failure.failed.failed_at <= learned_until:
                    continue
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
        self.entries[item.key] = learn(entry, item, failure.failed, failure.attempt, failure.resources, self.policy)

    def decide(self, item: WorkItem) -> Decision:
        """What ``item`` does this run; an entry whose time is over is dropped (the item starts again)."""
        if item.key not in self.entries and not self.pending:
            return FIRST_ATTEMPT  # most items: nothing known, nothing to learn
        found = self.pending.pop(item.key, []) + self.pending.pop(item.job_name, [])
        for failure in sorted(found, key=lambda failure: failure.attempt):
            self._learn(ItemId.of(item), failure)
        decision = decide(self.entries.get(item.key), self.now, self.policy)
        if isinstance(decision, Forget):
            self.entries.pop(item.key, None)
        return decision

    def learned_until(self, listed_at: float) -> float:
        """Until when this run learned every failed Job: when the Jobs were listed, but before any failure
        still waiting for its item to be met (it is learned by a later run)."""
        waiting = [failure.failed.failed_at for failures in self.pending.values() for failure in failures]
        return min([listed_at, *(at - 1 for at in waiting)])

    def quarantined(self) -> Iterator[LedgerEntry]:
        """The entries whose items are in quarantine now."""
        limit = self.policy.max_attempts
        for entry in self.entries.values():
            if limit and entry.failures >= limit and self.now < expires_at(entry, self.policy.quarantine_seconds):
                yield entry
