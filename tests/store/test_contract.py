"""The graph store contract (graph_refresh/store/base.py): the same cases and expectations for every implementation."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from graph_refresh.items import Candidate, SolverEnvironment, parse_solver_name
from graph_refresh.store.base import GraphStore, ItemStatus
from tests.helpers import PYPI, version

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
    assert list(store.analyzer_candidates()) == []
    assert list(store.solver_candidates(F31)) == []


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
    assert store.analyzer_backlog() == 0
    assert store.solver_backlog(F31) == 0


def test_backlog_of_a_fully_done_graph_is_zero(make_store: MakeStore) -> None:
    store = make_store(
        {
            "solved": [{**version("a", "1"), "solver": F31.name, "error": True}],
            "analyzed": [version("a", "1")],
        }
    )
    assert store.analyzer_backlog() == 0
    assert store.solver_backlog(F31) == 0
    assert store.solver_backlog(RHEL) == len(list(store.solver_candidates(RHEL))) == 1


AGAIN: dict[str, list[dict[str, Any]]] = {
    "solved": [
        {**version("flask", "1.1.2"), "solver": F31.name, "error": True},  # solved again, an error this time
        {**version("Flask", "1.1.2"), "solver": F31.name},  # and again under another spelling
        {**version("numpy", "1.19.0", OTHER), "solver": UBI.name, "error": True},
        {**version("numpy", "1.19.0", OTHER), "solver": UBI.name},
        {**version("solved-again", "1.0"), "solver": UBI.name},  # a new version, named only by its results
        {**version("solved-again", "1.0"), "solver": UBI.name, "error": True},
    ],
    "analyzed": [version("flask", "2.0.0"), version("Flask", "2.0.0"), version("analyzed-again", "1.0")],
}


def test_a_whole_backlog_counts_each_version_once_whatever_its_records_say(make_store: MakeStore) -> None:
    # Each result recorded twice in one document, then all of them again in a later import: the count without
    # a window agrees with the count over a window holding everything (the candidate query's filter, version by
    # version) and with the stream.
    twice = {key: [*GRAPH.get(key, []), *AGAIN.get(key, [])] for key in ("package_versions", "solved", "analyzed")}
    store = make_store(twice)
    make_store.add(store, AGAIN)
    end = store.arrival_end()
    items = len(ALL) + 2  # solved-again, analyzed-again
    done = {F31: 2, RHEL: 1, UBI: 3, UNKNOWN_SOLVER: 0, None: 3}
    for stream in streams(store):
        assert stream.backlog() == stream.backlog(up_to=end) == len(stream.all()) == items - done[stream.solver]


# -- arrival order: the fresh lane reads after a cursor, the backlog lane up to it --------------------

LATER: dict[str, list[dict[str, Any]]] = {
    "package_versions": [
        version("flask", "2.0.0"),  # already there: no new arrival
        version("aaa-first-by-name", "0.1"),  # sorts first by name, arrives last
        version("Zope.Interface", "5.0"),
        *(version(f"new-{i:02d}", "1.0") for i in range(5)),
    ],
    "solved": [
        {**version("pkg-03", "1.0"), "solver": F31.name},  # an old version solved later
        {**version("solved-later", "1.0"), "solver": RHEL.name},  # a new version named only here
    ],
    "analyzed": [version("analyzed-later", "2.0", OTHER)],
}
NEW = {
    Candidate("aaa-first-by-name", "0.1", PYPI),
    Candidate("zope-interface", "5.0", PYPI),
    *(Candidate(f"new-{i:02d}", "1.0", PYPI) for i in range(5)),
    Candidate("solved-later", "1.0", PYPI),
    Candidate("analyzed-later", "2.0", OTHER),
}
UNKNOWN_SOLVER = parse_solver_name("solver-debian-12-py312", template="t")
SOLVERS = (F31, RHEL, UBI)


@dataclass(frozen=True)
class Stream:
    """One candidate stream of a store, called the same way for a solver and for the analyzer."""

    store: GraphStore
    solver: SolverEnvironment | None

    def all(self, up_to: int | None = None) -> list[Candidate]:
        if self.solver is None:
            return list(self.store.analyzer_candidates(up_to=up_to))
        return list(self.store.solver_candidates(self.solver, up_to=up_to))

    def fresh(self, after: int) -> list[tuple[int, Candidate]]:
        if self.solver is None:
            return list(self.store.fresh_analyzer_candidates(after=after))
        return list(self.store.fresh_solver_candidates(self.solver, after=after))

    def backlog(self, up_to: int | None = None, before: tuple[int, Candidate] | None = None) -> int:
        if self.solver is None:
            return self.store.analyzer_backlog(up_to=up_to, before=before)
        return self.store.solver_backlog(self.solver, up_to=up_to, before=before)

    def fresh_ahead(self, after: int, before: int) -> int:
        if self.solver is None:
            return self.store.analyzer_fresh_ahead(after=after, before=before)
        return self.store.solver_fresh_ahead(self.solver, after=after, before=before)


def streams(store: GraphStore) -> list[Stream]:
    return [Stream(store, solver) for solver in (*SOLVERS, UNKNOWN_SOLVER, None)]


def arrivals(store: GraphStore, items: Iterable[Candidate]) -> dict[Candidate, int | None]:
    return {item: store.status(item, SOLVERS).arrival for item in items}


def grown(make_store: MakeStore) -> tuple[GraphStore, int]:
    """A store holding GRAPH, then LATER imported on top; and the arrival end between the two imports."""
    store = make_store(GRAPH)
    cursor = store.arrival_end()
    make_store.add(store, LATER)
    return store, cursor


def test_an_empty_store_ends_at_zero(make_store: MakeStore) -> None:
    store = make_store({})
    assert store.arrival_end() == 0
    assert list(store.fresh_analyzer_candidates(after=0)) == []
    assert store.analyzer_fresh_ahead(after=0, before=1) == 0
    assert store.analyzer_backlog(up_to=0) == 0


def test_a_later_import_arrives_later_and_a_repeat_changes_nothing(make_store: MakeStore) -> None:
    store = make_store(GRAPH)
    first_end = store.arrival_end()
    before = arrivals(store, ALL)
    positions = list(before.values())
    assert all(isinstance(p, int) and 0 < p <= first_end for p in positions)
    assert len(set(positions)) == len(positions)
    assert first_end in positions

    make_store.add(store, LATER)
    end = store.arrival_end()
    after = arrivals(store, ALL | NEW)
    assert {item: after[item] for item in ALL} == before  # old versions keep their positions
    new_positions = [after[item] for item in NEW]
    # every new version arrives after every old one, whichever record named it first
    assert all(isinstance(p, int) and first_end < p <= end for p in new_positions)
    assert len(set(new_positions)) == len(NEW)
    assert end in new_positions

    snapshot = [(s.fresh(0), s.all()) for s in streams(store)]
    make_store.add(store, LATER)
    make_store.add(store, GRAPH)
    assert store.arrival_end() == end
    assert arrivals(store, ALL | NEW) == after
    assert [(s.fresh(0), s.all()) for s in streams(store)] == snapshot


def test_fresh_streams_are_in_arrival_order_with_each_position(make_store: MakeStore) -> None:
    store, _ = grown(make_store)
    for stream in streams(store):
        fresh = stream.fresh(0)
        positions = [p for p, _ in fresh]
        assert positions == sorted(positions)
        assert len(set(positions)) == len(positions)
        assert {c: p for p, c in fresh} == arrivals(store, (c for _, c in fresh))
        assert sorted(c for _, c in fresh) == sorted(stream.all())  # from 0: the whole stream, once


def test_fresh_after_a_cursor_and_backlog_up_to_it_partition_every_stream(make_store: MakeStore) -> None:
    store, between = grown(make_store)
    end = store.arrival_end()
    for stream in streams(store):
        everything = stream.all()
        positions = [p for p, _ in stream.fresh(0)]
        for cursor in sorted({0, 1, positions[2], positions[len(positions) // 2], between, end - 1, end}):
            fresh = stream.fresh(cursor)
            backlog = stream.all(up_to=cursor)
            assert all(p > cursor for p, _ in fresh)
            assert set(backlog).isdisjoint(c for _, c in fresh)
            assert len(fresh) + len(backlog) == len(everything)
            assert set(backlog) | {c for _, c in fresh} == set(everything)
            assert backlog == [c for c in everything if c in set(backlog)]  # the stream's usual order
        assert {c for _, c in stream.fresh(between)} == NEW & set(everything)
        assert stream.fresh(end) == []
        assert stream.all(up_to=end) == everything


def test_counts_equal_what_the_windows_yield(make_store: MakeStore) -> None:
    store, between = grown(make_store)
    end = store.arrival_end()
    for stream in streams(store):
        assert stream.backlog() == len(stream.all())
        for cursor in (0, between, end):
            backlog = stream.all(up_to=cursor)
            assert stream.backlog(up_to=cursor) == len(backlog)
            # ahead of each item in the backlog lane: the candidates the lane yields before it
            for ahead, item in enumerate(backlog):
                arrival = store.status(item, SOLVERS).arrival
                assert arrival is not None
                assert stream.backlog(up_to=cursor, before=(arrival, item)) == ahead
            fresh = stream.fresh(cursor)
            for ahead, (position, _) in enumerate(fresh):
                assert stream.fresh_ahead(after=cursor, before=position) == ahead
            assert stream.fresh_ahead(after=cursor, before=end + 1) == len(fresh)
        everything = stream.all()
        last = everything[-1]
        arrival = store.status(last, SOLVERS).arrival
        assert arrival is not None
        assert stream.backlog(before=(arrival, last)) == len(everything) - 1
        assert stream.fresh_ahead(after=end, before=end + 1) == 0 == stream.fresh_ahead(after=5, before=3)


def test_fresh_streams_page_across_page_boundaries(make_store: MakeStore) -> None:
    document = {"package_versions": [version(f"p{i:02d}", "1") for i in range(7)]}
    expected = [c for _, c in make_store(document, page_size=100).fresh_analyzer_candidates(after=0)]
    assert len(expected) == 7
    for page_size in (1, 2, 3, 7):
        store = make_store(document, page_size=page_size)
        assert [c for _, c in store.fresh_analyzer_candidates(after=0)] == expected
        after = store.status(expected[1], SOLVERS).arrival
        assert after is not None
        assert [c for _, c in store.fresh_solver_candidates(F31, after=after)] == expected[2:]
        assert list(store.analyzer_candidates(up_to=after)) == sorted(
            expected[:2], key=list(store.analyzer_candidates()).index
        )
        first_three = list(itertools.islice(store.fresh_analyzer_candidates(after=0), 3))
        assert [c for _, c in first_three] == expected[:3]


def test_status_of_known_unknown_and_respelled_items(make_store: MakeStore) -> None:
    store = make_store(GRAPH)
    flask = store.status(Candidate("flask", "1.1.2", PYPI), SOLVERS)
    assert flask.solved_by == frozenset({F31.name})
    assert not flask.analyzed
    assert flask.arrival is not None
    assert store.status(Candidate("FlAsK", "1.1.2", PYPI), SOLVERS) == flask  # found by its normalised name
    assert store.status(Candidate("numpy", "1.19.0", PYPI), SOLVERS).solved_by == {F31.name}  # an error record
    assert store.status(Candidate("numpy", "1.19.0", OTHER), SOLVERS).solved_by == frozenset()
    analyzed = store.status(Candidate("flask", "2.0.0", PYPI), SOLVERS)
    assert analyzed.analyzed
    assert analyzed.solved_by == frozenset()
    solved_only = Candidate("solved-only", "0.1", PYPI)
    assert store.status(solved_only, SOLVERS).solved_by == {UBI.name}
    assert store.status(solved_only, [F31]).solved_by == frozenset()  # only the solvers asked about
    analyzed_only = store.status(Candidate("analyzed-only", "3.0", OTHER), [])
    assert analyzed_only.analyzed
    assert analyzed_only.arrival is not None
    for unknown in (
        Candidate("nope", "1.0", PYPI),
        Candidate("flask", "1.1.2", OTHER),  # a known version, not on this index
        Candidate("flask", "9.9", PYPI),
    ):
        assert store.status(unknown, SOLVERS) == ItemStatus(None, frozenset(), analyzed=False)


def test_statuses_of_a_batch_equal_the_status_of_each_item_in_pages(make_store: MakeStore) -> None:
    store = make_store(GRAPH)  # a page of 3 items (page_size) per query
    asked = [
        Candidate("flask", "1.1.2", PYPI),
        Candidate("FlAsK", "1.1.2", PYPI),
        Candidate("numpy", "1.19.0", OTHER),
        Candidate("nope", "1.0", PYPI),
        Candidate("flask", "2.0.0", PYPI),
        Candidate("solved-only", "0.1", PYPI),
        Candidate("flask", "1.1.2", OTHER),
        *sorted(c for c in ALL if c.package_name.startswith("pkg-")),
    ]
    assert store.statuses(asked, SOLVERS) == [store.status(candidate, SOLVERS) for candidate in asked]
    assert store.statuses([], SOLVERS) == []


def test_known_versions_are_the_stored_versions_of_a_package_on_an_index(make_store: MakeStore) -> None:
    store = make_store(
        {
            "package_versions": [
                version("flask", "1.0"),
                version("flask", "1.0.0"),
                version("flask", "2.0"),
                version("flask", "3.0", OTHER),
                version("numpy", "1.19.0"),
                *(version(f"pkg-{i:02d}", "1.0") for i in range(5)),
            ]
        }
    )
    pairs = [
        ("Flask", PYPI),
        ("flask", OTHER),
        ("numpy", OTHER),
        ("nope", PYPI),
        *((f"pkg-{i:02d}", PYPI) for i in range(5)),
    ]
    assert store.known_versions(pairs) == {
        ("flask", PYPI): ["1.0", "1.0.0", "2.0"],
        ("flask", OTHER): ["3.0"],
        **{(f"pkg-{i:02d}", PYPI): ["1.0"] for i in range(5)},
    }


def solved(name: str, ver: str, solver: str, *depends_on: dict[str, str], index: str = PYPI) -> dict[str, Any]:
    """A ``solved`` entry of a graph file, with what that resolution depends on."""
    return {**version(name, ver, index), "solver": solver, "depends_on": list(depends_on)}


def test_dependencies_of_an_item_solved_in_one_environment_whoever_asks(make_store: MakeStore) -> None:
    store = make_store(
        {
            "package_versions": [version("flask", "2.0.0")],
            "solved": [solved("Flask", "2.0.0", F31.name, version("Jinja2", "3.0.1"), version("click", "8.0.1"))],
        }
    )
    deps = [Candidate("click", "8.0.1", PYPI), Candidate("jinja2", "3.0.1", PYPI)]  # normalised, sorted
    assert store.dependencies([Candidate("flask", "2.0.0", PYPI)]) == [deps]
    assert store.dependencies([Candidate("FLASK", "2.0.0", PYPI)]) == [deps]  # found by the normalised name
    # A dependency is a version of the graph like any other: known, and a candidate of every stream.
    jinja2 = Candidate("jinja2", "3.0.1", PYPI)
    assert store.status(jinja2, SOLVERS).arrival is not None
    assert jinja2 in set(store.solver_candidates(RHEL))
    assert jinja2 in set(store.solver_candidates(F31))  # solving flask there did not solve what it depends on
    assert jinja2 in set(store.analyzer_candidates())


def test_dependencies_are_deduplicated_across_solved_records(make_store: MakeStore) -> None:
    six, numpy_old, numpy_new = version("six", "1.16.0"), version("numpy", "1.19.0"), version("numpy", "1.21.0")
    store = make_store(
        {
            "solved": [
                solved("scipy", "1.7.0", F31.name, numpy_new, six, version("Six", "1.16.0")),
                solved("scipy", "1.7.0", RHEL.name, numpy_old, numpy_new),
                {**solved("scipy", "1.7.0", UBI.name, six), "error": True},  # an error record names some too
                solved("scipy", "1.6.0", F31.name, numpy_old),
            ]
        }
    )
    assert store.dependencies([Candidate("scipy", "1.7.0", PYPI), Candidate("scipy", "1.6.0", PYPI)]) == [
        [Candidate("numpy", "1.19.0", PYPI), Candidate("numpy", "1.21.0", PYPI), Candidate("six", "1.16.0", PYPI)],
        [Candidate("numpy", "1.19.0", PYPI)],
    ]


def test_dependencies_of_a_cycle_each_name_the_other(make_store: MakeStore) -> None:
    store = make_store(
        {
            "solved": [
                solved("a", "1", F31.name, version("b", "1")),
                solved("b", "1", RHEL.name, version("a", "1"), version("a", "2")),
            ]
        }
    )
    a, b = Candidate("a", "1", PYPI), Candidate("b", "1", PYPI)
    assert store.dependencies([a, b, Candidate("a", "2", PYPI)]) == [[b], [a, Candidate("a", "2", PYPI)], []]


def test_a_dependency_on_another_index_is_returned_with_that_index(make_store: MakeStore) -> None:
    untrusted = "https://packages.example.invalid/simple"
    store = make_store(
        {"solved": [solved("tensorflow", "2.5.0", F31.name, version("numpy", "1.19.5", untrusted), index=OTHER)]}
    )
    assert store.dependencies([Candidate("tensorflow", "2.5.0", OTHER)]) == [[Candidate("numpy", "1.19.5", untrusted)]]
    assert store.dependencies([Candidate("tensorflow", "2.5.0", PYPI)]) == [[]]  # the same version on another index


def test_a_dependency_never_makes_its_index_one_the_store_lists(make_store: MakeStore) -> None:
    untrusted = "https://packages.example.invalid/simple"
    store = make_store(
        {
            "solved": [
                solved("tensorflow", "2.5.0", F31.name, version("numpy", "1.19.5", untrusted), version("six", "1"))
            ]
        }
    )
    assert store.index_urls() == [PYPI], "numpy's index is named only by what tensorflow depends on"


def test_an_item_without_solved_dependencies_has_none(make_store: MakeStore) -> None:
    store = make_store({**GRAPH, "solved": [*GRAPH["solved"], solved("pkg-00", "1.0", F31.name)]})
    asked = [
        Candidate("flask", "2.0.0", PYPI),  # no solved record
        Candidate("flask", "1.1.2", PYPI),  # solved, without dependencies
        Candidate("pkg-00", "1.0", PYPI),  # solved, with an empty list
        Candidate("nope", "1.0", PYPI),  # not in the store
    ]
    assert store.dependencies(asked) == [[], [], [], []]
    assert store.dependencies([]) == []


def test_dependencies_of_a_batch_larger_than_a_page(make_store: MakeStore) -> None:
    count = 8  # pages of 3 items (page_size)
    store = make_store(
        {
            "solved": [
                solved(f"pkg-{i}", "1", F31.name, version("base", str(i)), version("base", "0")) for i in range(count)
            ]
        }
    )
    asked = [Candidate(f"pkg-{i}", "1", PYPI) for i in reversed(range(count))]
    asked.insert(3, asked[0])  # an item asked twice has its answer twice
    expected = [sorted({Candidate("base", "0", PYPI), Candidate("base", c.package_name[4:], PYPI)}) for c in asked]
    assert store.dependencies(asked) == expected
    assert store.dependencies(asked) == [store.dependencies([candidate])[0] for candidate in asked]


def test_a_later_import_adds_dependencies_and_a_repeat_changes_nothing(make_store: MakeStore) -> None:
    first = {"solved": [solved("a", "1", F31.name, version("b", "1"))]}
    store = make_store(first)
    make_store.add(store, {"solved": [solved("a", "1", F31.name, version("b", "2")), solved("a", "1", RHEL.name)]})
    make_store.add(store, first)
    assert store.dependencies([Candidate("a", "1", PYPI)]) == [[Candidate("b", "1", PYPI), Candidate("b", "2", PYPI)]]
