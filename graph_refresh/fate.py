"""What happens to one item in one stream this run, and why (design: One decision). Pure: no I/O, no clock.

The planner asks :func:`decide` for every candidate it examines once no cap stops the stream; ``explain``
asks it for the item it explains, from what it read as a run reads it (the item's Jobs, the ledger with their
failures learned, the quotas). So ``explain`` tells what the next run does because it runs this code. The
order of the rules, first match wins: an invalid item; an item whose latest Job is in flight or complete;
what its failures decide (a back-off, quarantine, or the attempt to create and its resources: see
docs/learning.md); an escalated retry that no quota can ever admit (it counts as at the cap); a retry too big for
what is free now.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from graph_refresh.capacity import Capacity, JobCost
from graph_refresh.items import Candidate, Kind, WorkItem, invalid_reason
from graph_refresh.owned import OwnedJobs
from graph_refresh.retry.model import AttemptResources, Cause
from graph_refresh.retry.policy import History, Skip
from graph_refresh.vocabulary import JobState, Lane, SkipReason

logger = logging.getLogger(__name__)


NO_COST = JobCost({})  # an item planned where nothing prices its Job


@dataclass(frozen=True, init=False)
class Planned:
    """Create the item's Job: which attempt (in ``item``), with which resources, what it costs, and the lane whose
    slot it takes."""

    item: WorkItem
    resources: AttemptResources | None = None
    """What to write over the rendered Job (escalated memory, a longer deadline); None for the Template's."""
    retries: Cause | None = None
    """The cause of the failure this attempt retries; None for a first attempt (or one an operator forgot)."""
    capped: bool = False
    """The escalation reached its cap (``--max-memory``, ``--max-deadline``)."""
    lane: Lane = Lane.BACKLOG
    cost: JobCost = NO_COST
    """What the Job takes from a ResourceQuota."""

    def __init__(
        self,
        item: WorkItem,
        resources: AttemptResources | None = None,
        retries: Cause | None = None,
        capped: bool = False,
        lane: Lane = Lane.BACKLOG,
        cost: JobCost = NO_COST,
    ) -> None:
        # One per item the planner plans: the instance's dict filled at once, as WorkItem's (frozen all the same).
        fields = self.__dict__
        fields["item"], fields["resources"], fields["retries"] = item, resources, retries
        fields["capped"], fields["lane"], fields["cost"] = capped, lane, cost


@dataclass(frozen=True)
class Skipped:
    """Skip the item this run, for ``reason``; ``until`` when the skip ends by itself (a back-off, quarantine)."""

    reason: SkipReason
    until: float | None = None
    detail: str | None = None
    """Why it is invalid, or the limit an escalated retry does not fit under."""
    stops_stream: bool = False
    """The stream's first attempts no longer fit either: the stream stops (``capacity``)."""


Fate = Planned | Skipped


def decide(
    kind: Kind,
    solver: str | None,
    candidate: Candidate,
    view: OwnedJobs,
    history: History,
    capacity: Capacity,
    first_cost: JobCost,
    cost: Callable[[WorkItem, AttemptResources], JobCost] | None = None,
    lane: Lane = Lane.BACKLOG,
    *,
    untrusted: Callable[[str], str | None] | None = None,
) -> Fate:
    """The fate of ``candidate`` in the stream of ``kind`` and ``solver``, given the run's ``view`` of its Jobs,
    its ``history`` (learning a pending failure or forgetting an expired entry on the way), what the run's
    ``capacity`` still admits and what a first attempt costs (``first_cost``; ``cost`` prices a retry's
    resources; ``lane`` is where the slot comes from; ``untrusted`` says why an index URL is not one the
    deployment trusts, None when it is: such an item is invalid). Nothing is taken from ``capacity``: the caller takes
    ``Planned.cost`` when it creates. (Positional arguments: the planner calls it for every candidate.)"""
    reason = invalid_reason(candidate) or (untrusted(candidate.index_url) if untrusted is not None else None)
    if reason:
        return Skipped(SkipReason.INVALID, detail=reason)
    item = WorkItem(kind, solver, candidate)
    state = view.state(item)  # most items have no Job: None
    if state is not None and state is not JobState.FAILED:  # in flight, or complete and awaiting the sync
        return Skipped(state.value)
    decision = history.next_for(item)
    if isinstance(decision, Skip):
        return Skipped(decision.reason, decision.until)
    attempt = decision.attempt
    if state is not None:  # failed
        # A fresh start (quarantine over, memory cleared) takes a number past every Job the item still has: the
        # name of a failed Job that the TTL has not removed yet would only meet a 409.
        attempt = max(attempt, view.latest_attempt(item) + 1)
    if attempt != 1:
        item = WorkItem(kind, solver, candidate, attempt)
    if decision.resources is None or cost is None:
        return Planned(item, decision.resources, decision.retries, decision.capped, lane, first_cost)
    job_cost = cost(item, decision.resources)
    never = capacity.never_admits(job_cost)
    if never is not None and decision.retries in (Cause.OOM, Cause.DEADLINE):
        logger.warning(
            "%s %s %s: the %s retry (attempt %d) would need more than %s can ever admit; its failure counts as "
            "at the cap (an error): it is retried as it ran, after the back-off",
            solver or kind,
            candidate.package_name,
            candidate.package_version,
            decision.retries,
            attempt,
            never,
        )
        decision = history.at_cap(item)
        if isinstance(decision, Skip):
            return Skipped(decision.reason, decision.until)
        job_cost = first_cost if decision.resources is None else cost(item, decision.resources)
    limit = capacity.blocking_limit(job_cost)
    if limit is not None:  # an escalated retry may not fit where a first attempt does
        stops = capacity.blocking_limit(first_cost) is not None
        return Skipped(SkipReason.CAPACITY, detail=limit, stops_stream=stops)
    return Planned(item, decision.resources, decision.retries, decision.capped, lane, job_cost)
