"""waiting/closure.py on its own: breadth-first, each version once, bounded, newest first."""

from __future__ import annotations

from collections.abc import Sequence

from graph_refresh.items import Candidate
from graph_refresh.waiting.closure import closures, newest_first
from graph_refresh.waiting.trust import TrustedIndexes

PYPI = "https://pypi.org/simple"
TRUSTED = TrustedIndexes.of([PYPI])


def c(name: str, version: str = "1.0", index: str = PYPI) -> Candidate:
    return Candidate(name, version, index)


class Graph:
    def __init__(self, edges: dict[Candidate, list[Candidate]]) -> None:
        self.edges = edges
        self.asked: list[list[Candidate]] = []

    def __call__(self, items: Sequence[Candidate]) -> list[list[Candidate]]:
        self.asked.append(list(items))
        return [sorted(self.edges.get(item, [])) for item in items]


def test_breadth_first_each_version_once_through_a_cycle() -> None:
    graph = Graph({c("a"): [c("b"), c("c")], c("b"): [c("d"), c("a")], c("c"): [c("d")], c("d"): [c("a")]})
    (closure,) = closures([c("a")], graph, trusted=TRUSTED, depth=10)
    assert [(m.candidate.package_name, m.depth) for m in closure.members] == [("a", 0), ("b", 1), ("c", 1), ("d", 2)]
    assert len(graph.asked) == 3, "one question a level; the cycle ends it"


def test_depth_and_the_bound() -> None:
    graph = Graph({c("a"): [c(f"p{n:04d}") for n in range(2_500)], c("p0000"): [c("deep")]})
    (closure,) = closures([c("a")], graph, trusted=TRUSTED, depth=1)
    assert len(closure.members) == 2_000
    assert closure.bounded
    asked = len(graph.asked)
    (shallow,) = closures([c("a")], graph, trusted=TRUSTED, depth=0)
    assert [m.candidate for m in shallow.members] == [c("a")]
    assert len(graph.asked) == asked, "depth 0: the graph is not asked"


def test_newest_first_an_invalid_version_last() -> None:
    versions = [c("x", v) for v in ("1.0", "1.x", "10.0", "2.0rc1", "2.0")]
    assert [m.package_version for m in newest_first(versions)] == ["10.0", "2.0", "2.0rc1", "1.0", "1.x"]


def test_an_untrusted_dependency_is_a_member_not_followed() -> None:
    evil = "https://evil.example/simple"
    graph = Graph({c("a"): [c("x", index=evil), c("b")], c("x", index=evil): [c("y")]})
    (closure,) = closures([c("a")], graph, trusted=TRUSTED, depth=5)
    assert [(m.candidate.package_name, m.untrusted) for m in closure.members] == [
        ("a", False),
        ("b", False),
        ("x", True),
    ]
    assert all(c("x", index=evil) not in asked for asked in graph.asked)
