"""The graph store interface both implementations satisfy (design: The graph store)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from graph_refresh.items import Candidate, SolverEnvironment

PAGE_SIZE = 500  # candidates per store round trip: small enough to bound memory, large enough to amortise latency


@dataclass(frozen=True)
class ItemStatus:
    """Where one (normalised name, version, index) stands in the store, as :meth:`GraphStore.status` reads it."""

    arrival: int | None
    """The version's arrival position (see :class:`GraphStore`); None: the store does not hold the version."""
    solved_by: frozenset[str]
    """Names of the solvers asked about (as given) that have a solved record of it, an error record included."""
    analyzed: bool
    """Whether a package-analyzer run of it exists."""


@runtime_checkable
class GraphStore(Protocol):
    """Read-only view of the knowledge graph that graph-refresh plans from.

    Streams are lazy and paged by cursor: a consumer that stops iterating stops the queries, and
    memory does not grow with the backlog. For a given graph the order is deterministic.
    Each (normalised name, version, index) is yielded once per stream, unless ``may_repeat_items``.

    Arrival order: the store gives every package version an *arrival position* when the version enters
    it, a positive integer larger than every position given before and never changed afterwards (an
    import that adds nothing new gives none). So "entered after position c" splits any stream in two:
    the versions a reader at cursor c has not seen yet (``after=c``, read in arrival order), and those it
    has (``up_to=c``, read in the stream's usual order). The two parts hold every candidate once.
    """

    name: str
    """Short store name for the run report: "sqlite" or "dgraph"."""
    may_repeat_items: bool
    """Whether a stream may yield one (normalised name, version, index) twice, far apart: a graph without
    uniqueness constraints can hold two nodes of one item. The planner then drops the repeats."""

    def arrival_end(self) -> int:
        """The highest arrival position given so far; 0 for an empty store. Raise StoreError on failure."""
        ...

    def solver_candidates(self, solver: SolverEnvironment, *, up_to: int | None = None) -> Iterator[Candidate]:
        """Package versions no solved record of ``solver``'s environment exists for (error records count as solved).

        ``up_to``: only versions whose arrival position is at most this, in the same order.
        """
        ...

    def analyzer_candidates(self, *, up_to: int | None = None) -> Iterator[Candidate]:
        """Package versions with no package-analyzer run; ``up_to`` as in :meth:`solver_candidates`."""
        ...

    def fresh_solver_candidates(self, solver: SolverEnvironment, *, after: int) -> Iterator[tuple[int, Candidate]]:
        """The candidates of :meth:`solver_candidates` whose arrival position is above ``after``, in arrival
        order, each with its position. Paged by position, lazy like every stream."""
        ...

    def fresh_analyzer_candidates(self, *, after: int) -> Iterator[tuple[int, Candidate]]:
        """The candidates of :meth:`analyzer_candidates` arrived after ``after``; as :meth:`fresh_solver_candidates`."""
        ...

    def status(self, candidate: Candidate, solvers: Sequence[SolverEnvironment]) -> ItemStatus:
        """One item, found by its PEP 503 normalised name (normalised here), version and index: a few point
        lookups, never a scan. An item the store does not hold has no arrival, no solver and no analysis.
        Raise StoreError on failure."""
        ...

    def statuses(self, candidates: Sequence[Candidate], solvers: Sequence[SolverEnvironment]) -> list[ItemStatus]:
        """:meth:`status` of each of ``candidates``, in order, in one query per page of ``PAGE_SIZE`` items (never
        one per item). Raise StoreError on failure."""
        ...

    def known_versions(self, packages: Sequence[tuple[str, str]]) -> dict[tuple[str, str], list[str]]:
        """The versions the store holds of each (PEP 503 name, index URL) of ``packages``, as stored, sorted; in
        one query per page of ``PAGE_SIZE`` packages. A pair it holds nothing of is left out. Raise StoreError
        on failure."""
        ...

    def dependencies(self, items: Sequence[Candidate]) -> list[list[Candidate]]:
        """What each of ``items`` depends on, in order: the versions that any solved record of the item (of any
        solver, an error record included) depends on, each once, names PEP 503 normalised, sorted by (name,
        version, index). Items are found as :meth:`status` finds them; one the store does not hold, or holds
        no solved record with dependencies of, has none. A dependency comes back as stored, whatever its index:
        which indexes to trust is the caller's decision. One query per page of ``PAGE_SIZE`` items (never one
        per item). Raise StoreError on failure."""
        ...

    def solver_backlog(
        self,
        solver: SolverEnvironment,
        *,
        up_to: int | None = None,
        before: tuple[int, Candidate] | None = None,
    ) -> int:
        """How many candidates :meth:`solver_candidates` has for ``solver`` (design: Backlog): one count query,
        same filter.

        ``up_to``: only those arrived at or before that position. ``before`` (an item's arrival position
        and its candidate): only those the stream yields before that item, so with ``up_to`` the count
        is how many candidates are ahead of the item in the stream restricted to ``up_to``.
        What the graph lacks, not what a run can schedule: invalid items and items in flight count too.
        Raise StoreError when the count fails or exceeds the store's per-query timeout.
        """
        ...

    def analyzer_backlog(self, *, up_to: int | None = None, before: tuple[int, Candidate] | None = None) -> int:
        """How many candidates :meth:`analyzer_candidates` has (design: Backlog); as :meth:`solver_backlog`."""
        ...

    def solver_fresh_ahead(self, solver: SolverEnvironment, *, after: int, before: int) -> int:
        """How many candidates of ``solver`` arrived strictly between positions ``after`` and ``before``: those
        :meth:`fresh_solver_candidates` yields before an item arrived at ``before``. One count query; errors
        as :meth:`solver_backlog`."""
        ...

    def analyzer_fresh_ahead(self, *, after: int, before: int) -> int:
        """As :meth:`solver_fresh_ahead`, for the analyzer's candidates."""
        ...

    def index_urls(self) -> list[str]:
        """Every package index URL the graph knows, sorted."""
        ...

    def close(self) -> None:
        """Release connections; the store is unusable afterwards."""
        ...
