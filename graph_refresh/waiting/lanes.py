"""Who waits comes first (docs/lanes.md): what a run does with each request, and pacing against the graph sync.
Pure: the store's answers come in through the functions a run passes.

A run fills its capacity lane by lane (``planner.Planner.fill``): ``requested`` (the open requests, round-robin
over requesters, for every stream that lacks them), ``fresh`` (versions that entered the store since the
previous real run, in arrival order, up to ``--fresh-share``), ``backlog`` (the rest, in the store's order).
This module decides the first lane's content: which requests a run may act on (a trusted index, the store's
spelling of the version), which are done, and which end without being done.
"""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from graph_refresh.items import ANALYZER, Candidate, Kind, WorkItem, normal_index
from graph_refresh.text import cell
from graph_refresh.times import format_time
from graph_refresh.waiting.requests import Request, Unreadable, expired, stamped
from graph_refresh.waiting.state import Completions
from graph_refresh.waiting.trust import TrustedIndexes, store_spelling

COMPLETIONS_TO_GIVE_UP = 2  # Jobs of one stream that completed while the store still lacks the item


class Status(Protocol):
    """What the store says of one item (``store.base.ItemStatus``)."""

    @property
    def arrival(self) -> int | None: ...

    @property
    def solved_by(self) -> frozenset[str]: ...

    @property
    def analyzed(self) -> bool: ...


Lookup = Callable[[Sequence[Candidate]], Sequence[Status]]
"""The store's statuses of a batch of items, in order (``GraphStore.statuses`` for the run's solvers)."""
KnownVersions = Callable[[Sequence[tuple[str, str]]], Mapping[tuple[str, str], Sequence[str]]]
"""The store's versions of a batch of (package, index) (``GraphStore.known_versions``)."""


def stream_name(kind: Kind, solver: str | None) -> str:
    """How a stream is named in the ledger's cursors and runs, and in metrics: the solver, or the analyzer."""
    return solver or ANALYZER


def lacking(status: Status, streams: Iterable[tuple[Kind, str | None]]) -> frozenset[str]:
    """The streams among ``streams`` whose result the store does not have for an item of this status."""
    return frozenset(
        stream_name(kind, solver)
        for kind, solver in streams
        if (not status.analyzed if kind == ANALYZER else solver not in status.solved_by)
    )


@dataclass(frozen=True)
class OpenRequest:
    """A request a run acts on: the item as the store spells it, who asked first and when, and what lacks it."""

    candidate: Candidate
    """The store's spelling of the version and of the index (credentials included): what a Job gets."""
    first: Request
    """The oldest of the keys asking for the item: its requester and time are the request's."""
    requested_at: float
    lacking: frozenset[str]
    """The streams of the run that still lack the item."""
    known: bool
    """Whether the store holds the version (a version it does not know yet is scheduled as asked)."""
    keys: tuple[Request, ...] = ()
    """Every key asking for the item: a real run removes them all once it is done."""

    @property
    def requester(self) -> str:
        return self.first.requester


@dataclass(frozen=True)
class Ended:
    """A key a real run removes (if its value is still the one read), and why; ``warning`` when it is said."""

    key: str
    value: str
    why: str
    warning: str | None = None


@dataclass
class RequestOutcome:
    """The requests sorted by what a run does with them."""

    open: list[OpenRequest] = field(default_factory=list)
    """Each open request, oldest first."""
    done: list[Ended] = field(default_factory=list)
    """Keys of items every stream of the run has."""
    expired: list[Ended] = field(default_factory=list)
    """Keys open longer than ``--request-ttl``."""
    dropped: list[Ended] = field(default_factory=list)
    """Keys a run may not act on (unreadable, untrusted index) or gave up on (graph sync losing results)."""
    stamps: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Key → (value read, value to write): the run's time for a value without one (or with one ahead of the
    run), the index in its normal form for one that names it otherwise (credentials, a query)."""
    said: list[str] = field(default_factory=list)
    """What a run tells of the values it reads (a time ahead of its clock)."""
    skipped: str | None = None
    """Why the requested lane does not run this time (a store read failed): the requests keep their place."""

    @property
    def ended(self) -> list[Ended]:
        return [*self.done, *self.expired, *self.dropped]

    def by_requester(self) -> list[OpenRequest]:
        """The open requests in the order the requested lane serves them: round-robin over requesters (by their
        oldest request), each requester's oldest first."""
        queues: dict[str, list[OpenRequest]] = defaultdict(list)
        for request in self.open:  # oldest first: so are the queues, and so is the order of requesters
            queues[request.requester].append(request)
        rounds = itertools.zip_longest(*queues.values())
        return [request for turn in rounds for request in turn if request is not None]


def sort_requests(
    requests: Sequence[Request],
    unreadable: Sequence[Unreadable],
    *,
    trusted: TrustedIndexes,
    lookup: Lookup,
    known_versions: KnownVersions,
    streams: Sequence[tuple[Kind, str | None]],
    now: float,
    ttl_seconds: float,
    completions: Completions | None = None,
) -> RequestOutcome:
    """What a run does with each request (docs/lanes.md, "Requests: who may ask for what"): an index the deployment does
    not trust drops it; a request without a time (or ahead of the run's clock) is taken as made now and stamped;
    an expired one is dropped; the version is matched to the store's spelling; one every stream has is done, one
    a stream's Jobs completed twice for while the store still lacks it is dropped; the rest are open, one per
    item (the oldest key counts). ``lookup`` and ``known_versions`` are called once each, with every item at
    once (the store pages them); a StoreError from them propagates."""
    outcome, completions = RequestOutcome(), completions or Completions()
    outcome.dropped += [Ended(u.key, u.value, "unreadable", u.warning) for u in unreadable]
    asked: list[tuple[Request, float, Candidate]] = []
    for request in requests:
        spelling = trusted.spelling(request.candidate.index_url)
        if spelling is None:
            warning = (
                f"request '{cell(request.key, 60)}' dropped: its index is not one this deployment trusts "
                f"(trusted: {trusted.described()}; add one with --allowed-index)"
            )
            outcome.dropped.append(Ended(request.key, request.value, "untrusted index", warning))
            continue
        at, normal = request.requested_at, normal_index(request.candidate.index_url)
        rewrite: dict[str, Any] = {}
        if at is None or at > now:
            if at is not None:
                outcome.said.append(
                    f"request '{cell(request.key, 60)}' was made at {format_time(at)}, later than this run's clock: "
                    "taken as made now"
                )
            at = rewrite["at"] = float(int(now))
        if "index" in json.loads(request.value) and normal != request.candidate.index_url:
            rewrite["index"] = normal  # in its normal form the value holds no credential (a run never writes one)
        if rewrite:
            outcome.stamps[request.key] = (request.value, stamped(request.value, **rewrite))
        if expired(at, now, ttl_seconds):
            what = f"request '{cell(request.key, 60)}' for {request.package}=={request.version}"
            warning = f"{what} expired after --request-ttl: dropped, not done"
            outcome.expired.append(Ended(request.key, request.value, "expired", warning))
            continue
        asked.append((request, at, request.candidate._replace(index_url=spelling)))
    statuses = list(lookup([candidate for _, _, candidate in asked]))
    unknown = sorted(
        {(c.package_name, c.index_url) for (_, _, c), s in zip(asked, statuses, strict=True) if s.arrival is None}
    )
    if unknown:
        versions = known_versions(unknown)
        respelled = {}
        for index, ((_, _, candidate), status) in enumerate(zip(asked, statuses, strict=True)):
            if status.arrival is None:
                spelling = store_spelling(
                    candidate.package_version, versions.get((candidate.package_name, candidate.index_url), ())
                )
                if spelling is not None and spelling != candidate.package_version:
                    respelled[index] = candidate._replace(package_version=spelling)
        if respelled:
            for index, status in zip(respelled, lookup(list(respelled.values())), strict=True):
                asked[index] = (asked[index][0], asked[index][1], respelled[index])
                statuses[index] = status
    by_item: dict[Candidate, list[tuple[Request, float, Status]]] = {}
    for (request, at, candidate), status in zip(asked, statuses, strict=True):
        by_item.setdefault(candidate, []).append((request, at, status))
    for candidate, keys in by_item.items():
        keys.sort(key=lambda found: (found[1], found[0].key))
        first, at, status = keys[0]
        missing = lacking(status, streams)
        if not missing:
            outcome.done += [Ended(r.key, r.value, "done") for r, _, _ in keys]
            continue
        lost = sorted(
            stream_name(kind, solver)
            for kind, solver in streams
            if stream_name(kind, solver) in missing
            and completions.count(WorkItem(kind, solver, candidate).key) >= COMPLETIONS_TO_GIVE_UP
        )
        if lost:
            warning = (
                f"request '{cell(first.key, 60)}' for {candidate.package_name}=={candidate.package_version} dropped: "
                f"{COMPLETIONS_TO_GIVE_UP} Jobs of {', '.join(lost)} completed but the graph still lacks the result "
                "(graph sync is losing results: check it)"
            )
            outcome.dropped += [
                Ended(r.key, r.value, "not synced", warning if r is first else None) for r, _, _ in keys
            ]
            continue
        requests_of_item = tuple(r for r, _, _ in keys)
        outcome.open.append(OpenRequest(candidate, first, at, missing, status.arrival is not None, requests_of_item))
    outcome.open.sort(key=lambda request: (request.requested_at, request.first.key))
    return outcome


def awaiting_sync(
    completed: Sequence[tuple[Kind, str | None, Candidate]], lookup: Lookup, enough: int, *, page: int
) -> int:
    """How many completed owned Jobs (each its kind, solver and item) the store still lists as lacking their
    result (a version it does not know is not listed), counting no further than ``enough``: ``lookup`` is asked
    one page of items at a time, and no more pages once ``enough`` are found."""
    found = 0
    for start in range(0, len(completed), page):
        batch = completed[start : start + page]
        for (kind, solver, _), status in zip(batch, lookup([c for _, _, c in batch]), strict=True):
            if status.arrival is not None and lacking(status, [(kind, solver)]):
                found += 1
                if found >= enough:
                    return found
    return found
