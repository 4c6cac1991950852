"""The graph store contract (SPEC §6): the same cases and expectations for every implementation."""

from __future__ import annotations

import itertools
from typing import Any

from graph_refresh.items import Candidate, parse_solver_name
from graph_refresh.store.base import GraphStore

from ..conftest import PYPI, version
from .conftest import MakeStore

OTHER = "https://tensorflow.pypi.thoth-station.ninja/index/manylinux2010/AVX2/simple"
F31 = parse_solver_name("solver-fedora-31-py38", template="t")
RHEL = parse_solver_name("solver-rhel-8.6-py38", template="t")
UBI = parse_solver_name("solver-ubi-9-py311", template="t")

GRAPH: dict[str, list[dict[str, Any]]] = {
    "package_versions": [
        version("flask", "1.1.2"),
        version("Flask", "1.1.2"),  # second spelling: one item
        version("flask", "2.0.0"),
        version("numpy", "1.19.0"),
        version("numpy", "1.19.0", OTHER),
        version("pytz", "2004d"),
        *(version(f"pkg-{i:02d}", "1.0") for i in range(12)),
    ],
    "solved": [
        {**version("flask", "1.1.2"), "solver": "solver-fedora-31-py38"},
        {**version("numpy", "1.19.0"), "solver": "solver-fedora-31-py38", "error": True},
        {**version("pytz", "2004d"), "solver": "solver-rhel-8.6-py38"},
        {**version("solved-only", "0.1"), "solver": "solver-ubi-9-py311"},
    ],
    "analyzed": [version("flask", "2.0.0"), version("analyzed-only", "3.0", OTHER)],
}
ALL = {
    Candidate("flask", "1.1.2", PYPI),
    Candidate("flask", "2.0.0", PYPI),
    Candidate("numpy", "1.19.0", PYPI),
    Candidate("numpy", "1.19.0", OTHER),
    Candidate("pytz", "2004d", PYPI),
    Candidate("solved-only", "0.1", PYPI),
    Candidate("analyzed-only", "3.0", OTHER),
    *(Candidate(f"pkg-{i:02d}", "1.0", PYPI) for i in range(12)),
}


def test_implements_the_protocol(make_store: MakeStore) -> None:
    assert isinstance(make_store({}), GraphStore)


def test_solver_candidates_are_versions_its_environment_has_not_solved(make_store: MakeStore) -> None:
    store = make_store(GRAPH)
    f31 = list(store.solver_candidates(F31))
    # error: true still counts as solved
    assert set(f31) == ALL - {Candidate("flask", "1.1.2", PYPI), Candidate("numpy", "1.19.0", PYPI)}
    assert set(store.solver_candidates(RHEL)) == ALL - {Candidate("pytz", "2004d", PYPI)}
    assert set(store.solver_candidates(UBI)) == ALL - {Candidate("solved-only", "0.1", PYPI)}


def test_analyzer_candidates_are_versions_without_an_analysis(make_store: MakeStore) -> None:
    store = make_store(GRAPH)
    assert set(store.analyzer_candidates()) == ALL - {
        Candidate("flask", "2.0.0", PYPI),
        Candidate("analyzed-only", "3.0", OTHER),
    }


def test_each_item_is_yielded_once_across_pages_and_spellings(make_store: MakeStore) -> None:
    store = make_store(GRAPH)
    for stream in (store.analyzer_candidates(), store.solver_candidates(UBI)):
        items = list(stream)
        assert len(items) == len(set(items))


def test_order_is_deterministic(make_store: MakeStore) -> None:
    store = make_store(GRAPH)
    assert list(store.analyzer_candidates()) == list(store.analyzer_candidates())
    assert list(store.solver_candidates(F31)) == list(store.solver_candidates(F31))


def test_streams_are_lazy_and_can_stop_early(make_store: MakeStore) -> None:
    store = make_store(GRAPH)
    first = list(itertools.islice(store.analyzer_candidates(), 4))
    assert first == list(store.analyzer_candidates())[:4]


def test_index_urls(make_store: MakeStore) -> None:
    assert make_store(GRAPH).index_urls() == sorted({PYPI, OTHER})


def test_empty_graph(make_store: MakeStore) -> None:
    store = make_store({})
    assert list(store.analyzer_candidates()) == [] and list(store.solver_candidates(F31)) == []


def test_a_record_of_empty_strings_is_a_candidate_too(make_store: MakeStore) -> None:
    store = make_store({"package_versions": [version("", "", ""), version("a", "1")]})
    assert Candidate("", "", "") in set(store.analyzer_candidates())
    assert len(list(store.analyzer_candidates())) == 2


def test_backlog_is_the_number_of_candidates_each_stream_yields(make_store: MakeStore) -> None:
    # Solved (with and without error), analyzed, versions only named by solved/analyzed, two spellings
    # of one name, a record of empty strings: the count agrees with the stream, one count query each.
    store = make_store({**GRAPH, "package_versions": [*GRAPH["package_versions"], version("", "", "")]})
    assert store.analyzer_backlog() == len(list(store.analyzer_candidates())) == len(ALL) + 1 - 2
    for solver, done in ((F31, 2), (RHEL, 1), (UBI, 1)):
        assert store.solver_backlog(solver) == len(list(store.solver_candidates(solver))) == len(ALL) + 1 - done
    unknown = parse_solver_name("solver-debian-12-py312", template="t")
    assert store.solver_backlog(unknown) == len(list(store.solver_candidates(unknown))) == len(ALL) + 1


def test_backlog_of_an_empty_graph_is_zero(make_store: MakeStore) -> None:
    store = make_store({})
    assert store.analyzer_backlog() == 0 and store.solver_backlog(F31) == 0


def test_backlog_of_a_fully_done_graph_is_zero(make_store: MakeStore) -> None:
    store = make_store(
        {
            "solved": [{**version("a", "1"), "solver": F31.name, "error": True}],
            "analyzed": [version("a", "1")],
        }
    )
    assert store.analyzer_backlog() == 0 and store.solver_backlog(F31) == 0
    assert store.solver_backlog(RHEL) == len(list(store.solver_candidates(RHEL))) == 1
