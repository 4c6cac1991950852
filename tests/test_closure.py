"""A request brings what it needs (docs/lanes.md, "A request brings what it needs"): each open request grows
into its dependency closure run by run, as solver results (with what they depend on) reach the graph, and is
done once advisable. Through the CLI against the Kubernetes stand-in, with the embedded store and with the
Dgraph stand-in."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from graph_refresh.items import ANALYZER

from .fakes.dgraph import FakeDgraph
from .helpers import HOUR, MIDDLETIER, SOLVERS, T0, Harness, names, version
from .test_lanes import Graph, lanes, requests_data

Obj = dict[str, Any]
Tree = Mapping[tuple[str, str], list[tuple[str, ...]]]
PACKAGE, VERSION = "thoth-station.ninja/package", "thoth-station.ninja/version"

# app 1.0 needs lib-a (two versions) and lib-b; each of them needs base, and base needs app again: a cycle.
TREE: Tree = {
    ("app", "1.0"): [("lib-a", "1.0"), ("lib-a", "2.0"), ("lib-b", "1.0")],
    ("lib-a", "2.0"): [("base", "1.0")],
    ("lib-a", "1.0"): [("base", "1.0")],
    ("lib-b", "1.0"): [("base", "1.0")],
    ("base", "1.0"): [("app", "1.0")],
}


def depends_on(tree: Tree, package: str, version_: str) -> list[Obj]:
    return [version(*dependency) for dependency in tree.get((package, version_), [])]


def solved(tree: Tree, package: str, version_: str, solver: str) -> Obj:
    """A solver's result as graph sync records it: the version, the solver, what resolution found it needs."""
    return {**version(package, version_), "solver": solver, "depends_on": depends_on(tree, package, version_)}


def sync(cluster: Harness, graph: Graph, tree: Tree, *, keep: frozenset[str] = frozenset()) -> list[str]:
    """Every Job completes, graph sync records its result (with ``depends_on``), the TTL removes it; Jobs of the
    packages in ``keep`` stay in flight. Returns the synced items as ``solver package==version``."""
    records, analyzed, done = [], [], []
    for name, job in cluster.jobs().items():
        package, version_ = job["metadata"]["annotations"][PACKAGE], job["metadata"]["annotations"][VERSION]
        if package in keep:
            continue
        solver = job["metadata"]["labels"].get("thoth-station.ninja/solver")
        if solver:
            records.append(solved(tree, package, version_, solver))
        else:
            analyzed.append(version(package, version_))
        done.append(f"{solver or ANALYZER} {package}=={version_}")
        cluster.fake.delete("jobs", MIDDLETIER, name)
    graph.add_graph({"solved": records, "analyzed": analyzed})
    return sorted(done)


def explain(
    cluster: Harness, graph: Graph, requirement: str, at: float, env: dict[str, str] | None = None
) -> dict[str, Obj]:
    result = cluster.cli("explain", requirement, "--json", at=at, env={**graph.env, **(env or {})})
    assert result.exit_code == 0, result.stderr
    return {row["stream"]: row for row in json.loads(result.stdout)}


def listed(cluster: Harness, graph: Graph, at: float) -> list[Obj]:
    result = cluster.cli("request", "--list", "--json", at=at, env=graph.env)
    assert result.exit_code == 0, result.stderr
    rows: list[Obj] = json.loads(result.stdout)
    return rows


def flat(text: str) -> str:
    """``text`` with its lines, as wrapped to the terminal's width, joined: what is said, not its layout."""
    return " ".join(text.split())


def counts(closure: Obj) -> tuple[int, int, int, int]:
    return closure["members"], closure["solved"], closure["in_flight"], closure["quarantined"]


@pytest.fixture(params=["sqlite", "dgraph"])
def graph(request: pytest.FixtureRequest, cluster: Harness) -> Iterator[Graph]:
    with FakeDgraph({}) as dgraph:
        graph = Graph(request.param, cluster, dgraph)
        graph.add_graph({"package_versions": [version(p, "1.0") for p in ["app", *names(20, "old")]]})
        yield graph


def run(cluster: Harness, graph: Graph, at: float, *args: str, env: dict[str, str] | None = None) -> Obj:
    result, report = cluster.run("--max-in-flight", "40", *args, now=lambda: at, env={**graph.env, **(env or {})})
    assert result.exit_code == 0, result.stderr
    return report


def test_a_request_grows_into_its_closure_run_by_run_and_ends_once_advisable(cluster: Harness, graph: Graph) -> None:
    filed = cluster.cli("request", "app==1.0", "--by", "adviser", at=T0 - 60, env=graph.env)
    assert filed.exit_code == 0, filed.stderr

    report = run(cluster, graph, T0)
    assert lanes(report)["requested"] == 3, "nothing known of what app needs yet"
    assert lanes(report, ANALYZER)["requested"] == 1
    assert report["requests"]["closure_members"] == 1
    assert {f"{s} app==1.0" for s in (*SOLVERS, ANALYZER)} <= set(sync(cluster, graph, TREE))

    # app's results name what it needs: its request now brings lib-a 2.0, lib-a 1.0 and lib-b 1.0
    at = T0 + HOUR
    rows = explain(cluster, graph, "app==1.0", at)
    for solver in SOLVERS:
        assert rows[solver]["state"] == "solved"
        assert counts(rows[solver]["closure"]) == (4, 1, 0, 0)
    assert "closure" not in rows[ANALYZER]
    text = flat(cluster.cli("explain", "app==1.0", at=at, env=graph.env).stdout)
    assert f"advisable on {SOLVERS[0]}: 1 of 4 solved, 0 in flight, 0 quarantined" in text
    for requirement, ahead in (("lib-a==2.0", 0), ("lib-a==1.0", 1), ("lib-b==1.0", 2)):
        rows = explain(cluster, graph, requirement, at)
        for solver in SOLVERS:
            assert (rows[solver]["state"], rows[solver]["ahead"], rows[solver]["by"]) == ("requested", ahead, "adviser")
        assert rows[ANALYZER]["state"] != "requested", "the analyzer gets the requested item only"

    report = run(cluster, graph, at)
    assert lanes(report)["requested"] == 9
    assert lanes(report, ANALYZER)["requested"] == 0
    assert report["requests"]["open"] == 1
    assert report["requests"]["closure_members"] == 4
    (row,) = listed(cluster, graph, at)
    assert {solver: counts(row["closure"][solver]) for solver in SOLVERS} == {s: (4, 1, 3, 0) for s in SOLVERS}
    text = flat(cluster.cli("request", "--list", at=at, env=graph.env).stdout)
    assert f"advisable on {SOLVERS[1]}: 1 of 4 solved, 3 in flight, 0 quarantined" in text
    sync(cluster, graph, TREE)

    # their results name base 1.0 (one level deeper), and base's name app again: a cycle, each version once
    report = run(cluster, graph, T0 + 2 * HOUR)
    assert lanes(report)["requested"] == 3
    assert report["requests"]["closure_members"] == 5
    sync(cluster, graph, TREE)

    report = run(cluster, graph, T0 + 3 * HOUR)
    assert report["requests"]["done"] == 1
    assert lanes(report)["requested"] == 0
    assert requests_data(cluster) == {}, "advisable: removed"


def test_a_quarantined_member_ends_the_request_named(cluster: Harness, graph: Graph) -> None:
    env = {"THOTH_GRAPH_REFRESH_MAX_ATTEMPTS": "1", "GRAPH_REFRESH_NO_PACKAGE_ANALYZERS": "1"}
    tree: Tree = {("app", "1.0"): [("broken", "1.0"), ("fine", "1.0")]}
    graph.add_graph({"solved": [solved(tree, "app", "1.0", SOLVERS[0])]})
    cluster.cli("request", "app==1.0", at=T0, env=graph.env)
    report = run(cluster, graph, T0, env=env)
    assert lanes(report)["requested"] == 2 + 3 + 3, "app for two solvers, broken and fine for three"
    for name, job in cluster.jobs().items():
        if job["metadata"]["annotations"][PACKAGE] == "broken" and SOLVERS[2] in name:
            cluster.fail(job, at=T0 + 600)
    sync(cluster, graph, tree, keep=frozenset({"broken"}))
    for name, job in list(cluster.jobs().items()):
        if job["metadata"]["annotations"][PACKAGE] == "broken" and SOLVERS[2] not in name:
            cluster.fake.delete("jobs", MIDDLETIER, name)
            graph.add_graph(
                {"solved": [solved(tree, "broken", "1.0", job["metadata"]["labels"]["thoth-station.ninja/solver"])]}
            )

    result, report = cluster.run("--max-in-flight", "40", now=lambda: T0 + HOUR, env={**graph.env, **env})
    assert result.exit_code == 0, result.stderr
    assert report["solvers"][SOLVERS[2]]["skipped"]["quarantined"] == 1, "the planner's own decision"
    assert report["requests"]["open"] == 1, "learned this run: the ledger as read did not hold it yet"
    rows = explain(cluster, graph, "app==1.0", T0 + HOUR + 60, env)
    assert counts(rows[SOLVERS[2]]["closure"]) == (3, 2, 0, 1)
    assert rows[SOLVERS[2]]["closure"]["quarantined_members"] == ["broken==1.0"]
    text = flat(cluster.cli("request", "--list", at=T0 + HOUR + 60, env={**graph.env, **env}).stdout)
    assert f"advisable on {SOLVERS[2]}: 2 of 3 solved, 0 in flight, 1 quarantined (broken==1.0)" in text

    result, report = cluster.run("--max-in-flight", "40", now=lambda: T0 + 2 * HOUR, env={**graph.env, **env})
    assert report["requests"]["done"] == 1
    assert "done with quarantined members: broken==1.0 (solver-rhel-9-py311)" in result.stderr
    assert requests_data(cluster) == {}


def test_a_dependency_on_an_index_the_deployment_does_not_trust_is_named_never_scheduled(
    cluster: Harness, graph: Graph
) -> None:
    evil = "https://evil.example/simple"
    tree: Tree = {("app", "1.0"): [("lib-b", "1.0"), ("payload", "6.6", evil)], ("payload", "6.6"): [("deeper", "1.0")]}
    env = {"GRAPH_REFRESH_NO_PACKAGE_ANALYZERS": "1"}
    graph.add_graph({"solved": [solved(tree, "app", "1.0", solver) for solver in SOLVERS]})
    cluster.cli("request", "app==1.0", at=T0, env=graph.env)
    (row,) = listed(cluster, graph, T0)
    assert row["closure"][SOLVERS[0]]["untrusted_members"] == [f"payload==6.6 ({evil})"]
    assert counts(row["closure"][SOLVERS[0]]) == (2, 1, 0, 0), "app and lib-b: the untrusted one is not waited for"
    text = flat(cluster.cli("explain", "app==1.0", at=T0, env=graph.env).stdout)
    assert f"never scheduled, index not trusted: payload==6.6 ({evil})" in text
    report = run(cluster, graph, T0, "--request-share", "1", env=env)
    assert lanes(report)["requested"] == 3, "lib-b for each solver; payload never, nor what it needs"
    assert not [job for job in cluster.jobs().values() if job["metadata"]["annotations"][PACKAGE] == "payload"]
    sync(cluster, graph, tree)
    report = run(cluster, graph, T0 + HOUR, env=env)
    assert report["requests"]["done"] == 1


def test_a_solver_only_deployment_waits_for_the_closure_not_the_analyzer(cluster: Harness, graph: Graph) -> None:
    env = {"GRAPH_REFRESH_NO_PACKAGE_ANALYZERS": "1"}
    cluster.cli("request", "app==1.0", at=T0, env=graph.env)
    for hour in range(3):
        report = run(cluster, graph, T0 + hour * HOUR, env=env)
        assert report["requests"]["open"] == 1
        assert lanes(report, ANALYZER) == {"requested": 0, "fresh": 0, "backlog": 0}
        sync(cluster, graph, TREE)
    report = run(cluster, graph, T0 + 3 * HOUR, env=env)
    assert report["requests"]["done"] == 1, "never analyzed: done once the solvers have the closure"


@pytest.mark.parametrize(("depth", "runs"), [(0, 2), (1, 3)])
def test_request_depth_bounds_the_levels_a_request_brings(
    cluster: Harness, graph: Graph, depth: int, runs: int
) -> None:
    env = {"THOTH_GRAPH_REFRESH_REQUEST_DEPTH": str(depth), "GRAPH_REFRESH_NO_PACKAGE_ANALYZERS": "1"}
    cluster.cli("request", "app==1.0", at=T0, env=graph.env)
    requested = []
    for hour in range(runs):
        report = run(cluster, graph, T0 + hour * HOUR, env=env)
        requested.append(lanes(report)["requested"])
        sync(cluster, graph, TREE)
    assert requested == [3, 9, 0][:runs] if depth == 1 else requested == [3, 0]
    assert requests_data(cluster) == {}, f"done once {depth} levels below app are solved"


def test_ordering_item_first_then_shallower_then_each_packages_newest(cluster: Harness, graph: Graph) -> None:
    """app is solved by one solver only (so what it needs is known for all), lib 3.0 too."""
    tree: Tree = {
        ("app", "1.0"): [("zlib", "1.0"), ("lib", "1.0"), ("lib", "3.0"), ("lib", "10.0"), ("lib", "1.x")],
        ("lib", "10.0"): [("deep", "1.0")],
    }
    graph.add_graph({"solved": [solved(tree, "app", "1.0", SOLVERS[0]), solved(tree, "lib", "10.0", SOLVERS[0])]})
    cluster.cli("request", "app==1.0", at=T0, env=graph.env)
    # packages in the order their dependents name them (the store's: by name), each newest first, 1.x (not PEP
    # 440) last; deep, one level further, after them all
    order = ["app==1.0", "lib==10.0", "lib==3.0", "lib==1.0", "lib==1.x", "zlib==1.0", "deep==1.0"]
    for requirement in order:
        rows = explain(cluster, graph, requirement, T0)
        assert rows[SOLVERS[1]]["state"] == "requested"
        assert rows[SOLVERS[1]]["ahead"] == order.index(requirement), requirement
    assert explain(cluster, graph, "lib==3.0", T0)[SOLVERS[0]]["ahead"] == 0, "app and lib 10.0 it has solved"


def test_the_closure_is_bounded_at_2000_versions_a_request(cluster: Harness, graph: Graph) -> None:
    tree: Tree = {("app", "1.0"): [(f"dep{n:04d}", "1.0") for n in range(2_500)]}
    graph.add_graph({"solved": [solved(tree, "app", "1.0", solver) for solver in SOLVERS]})
    cluster.cli("request", "app==1.0", at=T0, env=graph.env)
    env = {"GRAPH_REFRESH_NO_PACKAGE_ANALYZERS": "1"}
    report = run(cluster, graph, T0, env=env)
    assert report["requests"]["closure_members"] == 2_000
    (row,) = listed(cluster, graph, T0)
    assert row["closure"][SOLVERS[0]]["members"] == 2_000
    assert row["closure"][SOLVERS[0]]["bounded"] is True
    assert "bounded at 2000 versions" in flat(cluster.cli("request", "--list", at=T0, env=graph.env).stdout)


def test_the_graph_is_asked_once_a_level_for_every_request_together(cluster: Harness) -> None:
    tree: Tree = {
        ("app", "1.0"): [("lib-a", "1.0")],
        ("tool", "1.0"): [("lib-b", "1.0")],
        ("lib-a", "1.0"): [("base", "1.0")],
        ("lib-b", "1.0"): [("base", "1.0")],
    }
    with FakeDgraph({}) as dgraph:
        graph = Graph("dgraph", cluster, dgraph)
        records = [solved(tree, p, v, solver) for (p, v) in tree for solver in SOLVERS]
        graph.add_graph({"package_versions": [version("app", "1.0"), version("tool", "1.0")], "solved": records})
        for n, requirement in enumerate(["app==1.0", "tool==1.0"]):
            cluster.cli("request", requirement, "--by", f"user{n}", at=T0, env=graph.env)
        before = len(dgraph.calls())
        report = run(cluster, graph, T0)
        asked = [q for q in dgraph.calls()[before:] if "query dependencies" in q.query]
        assert len(asked) == 3, "levels 1 and 2, and level 3 finds nothing more (base has no record)"
        assert report["requests"]["closure_members"] == 5


def test_no_lane_schedules_a_version_known_only_as_a_dependency_on_an_untrusted_index(
    cluster: Harness, graph: Graph
) -> None:
    """A dependency entity enters the graph as a version; if only a depends_on names its index, the backlog and
    fresh lanes pass it over as invalid, as the requested lane does: no Job ever fetches from that index."""
    evil = "https://evil.example/simple"
    tree: Tree = {("app", "1.0"): [("payload", "6.6", evil)]}
    env = {"GRAPH_REFRESH_NO_PACKAGE_ANALYZERS": "1"}
    graph.add_graph({"solved": [solved(tree, "app", "1.0", solver) for solver in SOLVERS]})
    for hour, share in enumerate(("0", "0.5")):  # the backlog lane alone, then with the fresh lane
        report = run(cluster, graph, T0 + hour * HOUR, "--fresh-share", share, "--max-in-flight", "9999", env=env)
        assert not [job for job in cluster.jobs().values() if job["metadata"]["annotations"][PACKAGE] == "payload"]
        assert report["totals"]["solver"]["skipped"].get("invalid", 0) >= len(SOLVERS), report["totals"]
    result = cluster.cli("explain", "payload==6.6", "--index", evil, "--json", at=T0 + 2 * HOUR, env=graph.env)
    assert result.exit_code == 0, result.stderr
    rows = {row["stream"]: row for row in json.loads(result.stdout)}
    assert {row["state"] for row in rows.values()} == {"invalid"}
    assert all("not one the deployment trusts" in row["reason"] for row in rows.values())
    allowed = {**env, "THOTH_GRAPH_REFRESH_ALLOWED_INDEXES": evil}  # unless the operator says so
    run(cluster, graph, T0 + 3 * HOUR, "--max-in-flight", "9999", env=allowed)
    assert [job for job in cluster.jobs().values() if job["metadata"]["annotations"][PACKAGE] == "payload"]
