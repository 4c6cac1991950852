"""The graph store interface both implementations satisfy (SPEC §6)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, runtime_checkable

from graph_refresh.items import Candidate, SolverEnvironment

PAGE_SIZE = 500  # candidates per store round trip: small enough to bound memory, large enough to amortise latency


@runtime_checkable
class GraphStore(Protocol):
    """Read-only view of the knowledge graph that graph-refresh plans from.

    Streams are lazy and paged by cursor: a consumer that stops iterating stops the queries, and
    memory does not grow with the backlog. For a given graph the order is deterministic.
    Each (normalised name, version, index) is yielded once per stream, unless ``may_repeat_items``.
    """

    name: str
    """Short store name for the run report: "sqlite" or "dgraph"."""
    may_repeat_items: bool
    """Whether a stream may yield one (normalised name, version, index) twice, far apart: a graph without
    uniqueness constraints can hold two nodes of one item. The planner then drops the repeats."""

    def solver_candidates(self, solver: SolverEnvironment) -> Iterator[Candidate]:
        """Package versions no solved record of ``solver``'s environment exists for (error records count as solved)."""
        ...

    def analyzer_candidates(self) -> Iterator[Candidate]:
        """Package versions with no package-analyzer run."""
        ...

    def solver_backlog(self, solver: SolverEnvironment) -> int:
        """How many candidates :meth:`solver_candidates` has for ``solver`` (SPEC §12): one count query, same filter.

        What the graph lacks, not what a run can schedule: invalid items and items in flight count too.
        Raise StoreError when the count fails or exceeds the store's per-query timeout.
        """
        ...

    def analyzer_backlog(self) -> int:
        """How many candidates :meth:`analyzer_candidates` has (SPEC §12); as :meth:`solver_backlog`."""
        ...

    def index_urls(self) -> list[str]:
        """Every package index URL the graph knows, sorted."""
        ...

    def close(self) -> None:
        """Release connections; the store is unusable afterwards."""
        ...
