"""Who waits comes first (docs/lanes.md): which streams still lack a request, and when one ends. Pure.

A run fills its capacity lane by lane (``planner.Planner.fill``): ``requested`` (the open requests, oldest
first, for every stream that lacks them), ``fresh`` (versions that entered the store since the previous real
run, in arrival order, up to ``--fresh-share``), ``backlog`` (the rest, in the store's order). This module
decides the first lane's content and the pacing against the graph sync.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from graph_refresh.items import ANALYZER, Kind
from graph_refresh.waiting.requests import Request, expired


class Status(Protocol):
    """What the store says of one item (``store.base.ItemStatus``)."""

    @property
    def arrival(self) -> int | None: ...

    @property
    def solved_by(self) -> frozenset[str]: ...

    @property
    def analyzed(self) -> bool: ...


def stream_name(kind: Kind, solver: str | None) -> str:
    """How a stream is named in the ledger's cursors and runs, and in metrics: the solver, or the analyzer."""
    return solver or ANALYZER


@dataclass
class RequestOutcome:
    """The requests sorted by what a run does with them."""

    open: list[tuple[Request, frozenset[str]]] = field(default_factory=list)
    """Each open request, oldest first, with the streams that still lack it."""
    done: list[Request] = field(default_factory=list)
    """Solved by every stream of the run and analyzed: a real run removes them."""
    expired: list[Request] = field(default_factory=list)
    """Open longer than ``--request-ttl``: a real run drops them with a warning."""


def sort_requests(
    requests: Iterable[Request],
    status_of: Callable[[Request], Status],
    streams: Sequence[tuple[Kind, str | None]],
    *,
    now: float,
    ttl_seconds: float,
) -> RequestOutcome:
    """Which streams still lack each request (asking the store only for requests that have not expired)."""
    outcome = RequestOutcome()
    for request in requests:
        if expired(request, now, ttl_seconds):
            outcome.expired.append(request)
            continue
        status = status_of(request)
        lacking = frozenset(
            stream_name(kind, solver)
            for kind, solver in streams
            if (not status.analyzed if kind == ANALYZER else solver not in status.solved_by)
        )
        if lacking:
            outcome.open.append((request, lacking))
        else:
            outcome.done.append(request)
    return outcome


def awaiting_sync(completed: Iterable[tuple[Kind, str | None, Status]], enough: int) -> int:
    """How many completed owned Jobs the store still lists as lacking their result (a version it does not know
    is not listed), counting no further than ``enough``; each element is the Job's kind and solver and its
    item's status."""
    found = 0
    for kind, solver, status in completed:
        lacking = not status.analyzed if kind == ANALYZER else solver not in status.solved_by
        if status.arrival is not None and lacking:
            found += 1
            if found >= enough:
                break
    return found
