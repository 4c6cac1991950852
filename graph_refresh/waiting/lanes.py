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
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from graph_refresh.config import redact_url
from graph_refresh.items import ANALYZER, SOLVER, Candidate, Kind, WorkItem, normal_index
from graph_refresh.text import cell
from graph_refresh.times import format_time
from graph_refresh.waiting.closure import MAX_MEMBERS, Closure, Dependencies, Member, closures
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
class MemberState:
    """One version of a request's closure and where it stands in the run's streams."""

    member: Member
    lacking: frozenset[str]
    """The streams that lack it: solvers (and for the requested item, the analyzer)."""
    quarantined: frozenset[str] = frozenset()
    """Those of ``lacking`` whose item is in quarantine: the request does not wait for them."""

    @property
    def candidate(self) -> Candidate:
        return self.member.candidate

    @property
    def waits(self) -> frozenset[str]:
        """The streams the request still waits for this version in."""
        return self.lacking - self.quarantined if self.member.counts else frozenset()

    def scheduled_in(self, name: str) -> bool:
        """Whether the requested lane of stream ``name`` takes it (quarantine is the planner's skip to count)."""
        return self.member.counts and name in self.lacking


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
    members: tuple[MemberState, ...] = ()
    """Its closure (docs/lanes.md, "A request brings what it needs"), the item first; empty: the item alone."""
    bounded: bool = False
    """The closure reached the bound on its versions: known dependencies were left out."""

    @property
    def requester(self) -> str:
        return self.first.requester

    @property
    def closure(self) -> tuple[MemberState, ...]:
        """The closure, the item first, in the order the requested lane takes it."""
        return self.members or (MemberState(Member(self.candidate, 0), self.lacking),)


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
    advisable: list[OpenRequest] = field(default_factory=list)
    """The requests done, as they would be were they open: what ``request --list`` and ``explain`` show of them
    until a real run removes them."""
    done_seconds: list[float] = field(default_factory=list)
    """For each item done this run, the seconds from its request to now."""

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

    def requested(self, name: str) -> list[tuple[Candidate, OpenRequest]]:
        """What the requested lane of stream ``name`` takes, in order, each version once with the request it
        serves: round-robin over requesters (by their oldest request), each requester's requests oldest first,
        each request's closure in its order (the item, then shallower before deeper)."""
        queues: dict[str, list[tuple[Candidate, OpenRequest]]] = defaultdict(list)
        for request in self.open:
            queues[request.requester] += [(m.candidate, request) for m in request.closure if m.scheduled_in(name)]
        seen: set[Candidate] = set()
        out = []
        for turn in itertools.zip_longest(*queues.values()):
            for pair in turn:
                if pair is not None and pair[0] not in seen:
                    seen.add(pair[0])
                    out.append(pair)
        return out


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
    dependencies: Dependencies | None = None,
    depth: int = 0,
    quarantined: Collection[str] = frozenset(),
) -> RequestOutcome:
    """What a run does with each request (docs/lanes.md, "Requests: who may ask for what"): an index the deployment does
    not trust drops it; a request without a time (or ahead of the run's clock) is taken as made now and stamped;
    an expired one is dropped; the version is matched to the store's spelling; one every stream has is done, one
    a stream's Jobs completed twice for while the store still lacks it is dropped; the rest are open, one per
    item (the oldest key counts). An open request grows into its closure (waiting/closure.py: ``dependencies``
    asked once per level, at most ``depth`` levels) and stays open until every solver has every member of it
    (or the member's item key is ``quarantined``) and the analyzer has the item. ``lookup`` and
    ``known_versions`` are called once each for the items and ``lookup`` once more for their dependencies (the
    store pages them); a StoreError from them propagates."""
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
    growing: list[tuple[Candidate, list[tuple[Request, float, Status]], frozenset[str]]] = []
    for candidate, keys in by_item.items():
        keys.sort(key=lambda found: (found[1], found[0].key))
        first, at, status = keys[0]
        missing = lacking(status, streams)
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
        growing.append((candidate, keys, missing))
    grown = _grown([c for c, _, _ in growing], dependencies, lookup, trusted, depth, streams, quarantined)
    for (candidate, keys, missing), (members, bounded) in zip(growing, grown, strict=True):
        first, at, status = keys[0]
        item = MemberState(members[0].member, missing, _quarantined(candidate, missing, streams, quarantined))
        members = (item, *members[1:])
        requests_of_item = tuple(r for r, _, _ in keys)
        known = status.arrival is not None
        grown_request = OpenRequest(candidate, first, at, missing, known, requests_of_item, members, bounded)
        if not any(member.waits for member in members):  # advisable: the analyzer's lack is never quarantined
            outcome.done += [Ended(r.key, r.value, "done", _done_warning(first, members)) for r, _, _ in keys]
            outcome.done_seconds.append(max(0.0, now - at))
            outcome.advisable.append(grown_request)
            continue
        outcome.open.append(grown_request)
    outcome.open.sort(key=lambda request: (request.requested_at, request.first.key))
    return outcome


def _quarantined(
    candidate: Candidate, missing: frozenset[str], streams: Sequence[tuple[Kind, str | None]], keys: Collection[str]
) -> frozenset[str]:
    """The solver streams of ``missing`` whose item of ``candidate`` is in quarantine (the analyzer's never
    counts: a request waits for the analysis of its item)."""
    return frozenset(
        stream_name(kind, solver)
        for kind, solver in streams
        if kind == SOLVER and stream_name(kind, solver) in missing and WorkItem(kind, solver, candidate).key in keys
    )


def _grown(
    items: Sequence[Candidate],
    dependencies: Dependencies | None,
    lookup: Lookup,
    trusted: TrustedIndexes,
    depth: int,
    streams: Sequence[tuple[Kind, str | None]],
    quarantined: Collection[str],
) -> list[tuple[tuple[MemberState, ...], bool]]:
    """Each item's closure with what the solver streams lack of each member (the item's own state is the
    caller's); the members' statuses looked up in one batch."""
    if dependencies is None or depth <= 0 or not items:
        found = [Closure((Member(item, 0),)) for item in items]
    else:
        found = closures(items, dependencies, trusted=trusted, depth=depth)
    solvers = [(kind, solver) for kind, solver in streams if kind == SOLVER]
    asked = list(dict.fromkeys(m.candidate for c in found for m in c.members[1:] if m.counts))
    statuses = dict(zip(asked, lookup(asked), strict=True)) if asked else {}
    out = []
    for closure in found:
        states = [MemberState(closure.members[0], frozenset())]
        for member in closure.members[1:]:
            if not member.counts:
                states.append(MemberState(member, frozenset()))
                continue
            missing = lacking(statuses[member.candidate], solvers)
            states.append(MemberState(member, missing, _quarantined(member.candidate, missing, solvers, quarantined)))
        out.append((tuple(states), closure.bounded))
    return out


def _done_warning(first: Request, members: Sequence[MemberState]) -> str | None:
    """What a run says of a request done with members in quarantine: which, and where."""
    held = [m for m in members if m.quarantined]
    if not held:
        return None
    named = ", ".join(
        f"{m.candidate.package_name}=={m.candidate.package_version} ({', '.join(sorted(m.quarantined))})"
        for m in held[:20]
    )
    more = f" and {len(held) - 20} more" if len(held) > 20 else ""
    return (
        f"request '{cell(first.key, 60)}' for {first.package}=={first.version} done with quarantined members: "
        f"{named}{more}"
    )


def closure_counts(
    request: OpenRequest, solvers: Sequence[str], has_job: Callable[[str, Candidate], bool]
) -> dict[str, dict[str, Any]]:
    """Per solver, how far the request is from advisable (``request --list``, ``explain``): of the ``members``
    it waits for, how many are ``solved``, ``in_flight`` (``has_job``: a Job in flight, or complete while the
    graph does not have its result yet), ``quarantined`` (named) and ``waiting``; and the members never
    scheduled because their index is not trusted (named)."""
    counted = [m for m in request.closure if m.member.counts]
    untrusted = [_named(m.candidate, redact=True) for m in request.closure if m.member.untrusted]
    out = {}
    for solver in solvers:
        solved = [m for m in counted if solver not in m.lacking]
        held = [m for m in counted if solver in m.quarantined]
        flying = [m for m in counted if solver in m.waits and has_job(solver, m.candidate)]
        out[solver] = {
            "members": len(counted),
            "solved": len(solved),
            "in_flight": len(flying),
            "quarantined": len(held),
            "waiting": len(counted) - len(solved) - len(flying) - len(held),
            "quarantined_members": [_named(m.candidate) for m in held],
            "untrusted_members": untrusted,
            "bounded": request.bounded,
        }
    return out


def closure_line(solver: str, counts: Mapping[str, Any]) -> str:
    """``advisable on SOLVER: N of M solved, K in flight, Q quarantined`` and the members it names."""
    line = (
        f"advisable on {solver}: {counts['solved']} of {counts['members']} solved, {counts['in_flight']} in flight, "
        f"{counts['quarantined']} quarantined"
    )
    if counts["quarantined_members"]:
        line += f" ({', '.join(counts['quarantined_members'])})"
    if counts["untrusted_members"]:
        line += f"; never scheduled, index not trusted: {', '.join(counts['untrusted_members'])}"
    if counts["bounded"]:
        line += f"; bounded at {MAX_MEMBERS} versions"
    return line


def _named(candidate: Candidate, *, redact: bool = False) -> str:
    name = f"{cell(candidate.package_name, 80)}=={cell(candidate.package_version, 40)}"
    return f"{name} ({cell(redact_url(candidate.index_url), 80)})" if redact else name


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
