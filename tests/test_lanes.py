"""Who waits comes first: requests, the fresh lane and pacing, run after run through the CLI against
the Kubernetes stand-in, with the embedded store and with the Dgraph stand-in. (``explain``:
tests/waiting/test_explain.py.)"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from graph_refresh.items import ANALYZER

from .fakes.dgraph import FakeDgraph
from .fakes.kube import FakeKube
from .helpers import HOUR, MIDDLETIER, SOLVERS, T0, Harness, RunCli, another_writer_first, names, version

Obj = dict[str, Any]
STREAMS = [*SOLVERS, ANALYZER]


@pytest.fixture
def cluster(run_cli: RunCli, tmp_path: Path, write_graph: Callable[[Obj], Path]) -> Iterator[Harness]:
    with FakeKube(tls="tls") as fake:
        yield Harness(fake, run_cli, tmp_path, write_graph)


def lanes(report: Obj, kind: str = "solver") -> Obj:
    return dict(report["totals"][kind]["lanes"])


def item_jobs(cluster: Harness, package: str, version_: str = "1.0") -> set[str]:
    """The streams whose Job for ``package==version_`` exists."""
    found = set()
    for job in cluster.jobs().values():
        annotations = job["metadata"].get("annotations") or {}
        if (annotations.get("thoth-station.ninja/package"), annotations.get("thoth-station.ninja/version")) == (
            package,
            version_,
        ):
            labels = job["metadata"]["labels"]
            found.add(labels.get("thoth-station.ninja/solver") or ANALYZER)
    return found


def requests_data(cluster: Harness) -> dict[str, str]:
    configmap = cluster.fake.get("configmaps", MIDDLETIER, "graph-refresh-requests")
    assert configmap is not None
    return dict(configmap.get("data") or {})


def complete_and_sync(cluster: Harness) -> Obj:
    """Every Job completes and the TTL removes it; returns what graph sync records of them (a graph file)."""
    solved, analyzed = [], []
    for name, job in cluster.jobs().items():
        annotations = job["metadata"]["annotations"]
        record = version(annotations["thoth-station.ninja/package"], annotations["thoth-station.ninja/version"])
        solver = job["metadata"]["labels"].get("thoth-station.ninja/solver")
        if solver:
            solved.append({**record, "solver": solver})
        else:
            analyzed.append(record)
        cluster.fake.delete("jobs", MIDDLETIER, name)
    return {"solved": solved, "analyzed": analyzed}


class Graph:
    """The graph a run reads: the embedded store (imports) or the Dgraph stand-in (later graphs added)."""

    def __init__(self, store: str, cluster: Harness, dgraph: FakeDgraph) -> None:
        self.store, self.cluster, self.dgraph = store, cluster, dgraph
        self.env = {"GRAPH_SERVICE_HOST": dgraph.host} if store == "dgraph" else {}

    def add(self, packages: list[str]) -> None:
        self.add_graph({"package_versions": [version(p, "1.0") for p in packages]})

    def add_graph(self, document: Obj) -> None:
        """New versions or results enter the graph (a result of a version not in it adds the version)."""
        if self.store == "dgraph":
            self.dgraph.add_graph(document)
        else:
            self.cluster.import_graph(document)


@pytest.mark.parametrize(("store", "backlog"), [("sqlite", 100_000), ("dgraph", 2_000)])
def test_a_request_comes_first_even_behind_100k_candidates_a_stream_with_room_for_10(
    cluster: Harness, run_cli: RunCli, write_graph: Callable[[Obj], Path], store: str, backlog: int
) -> None:
    last = f"p{backlog - 1:06d}"
    with FakeDgraph({}) as dgraph:
        graph = Graph(store, cluster, dgraph)
        graph.add(names(backlog))
        for wanted in (f"{last}==1.0", "brand-new==2.0"):
            filed = cluster.cli("request", wanted, "--by", "adviser", at=T0 - 60)
            assert filed.exit_code == 0, filed.stderr
        result, report = cluster.run("--max-in-flight", "10", now=lambda: T0, env=graph.env)
        assert result.exit_code == 0, result.stderr
        assert item_jobs(cluster, last) == set(STREAMS)
        assert item_jobs(cluster, "brand-new", "2.0") == set(STREAMS), "a version the graph does not know yet"
        assert lanes(report) == {"requested": 6, "fresh": 0, "backlog": 2}
        assert lanes(report, ANALYZER) == {"requested": 2, "fresh": 0, "backlog": 0}
        assert report["requests"] == {"open": 2, "oldest_age_seconds": 60.0, "done": 0, "expired": 0}

        graph.add_graph(complete_and_sync(cluster))  # graph sync records the results
        _, report = cluster.run("--max-in-flight", "10", now=lambda: T0 + HOUR, env=graph.env)
        assert report["requests"] == {"open": 0, "oldest_age_seconds": None, "done": 2, "expired": 0}
        assert lanes(report)["requested"] == 0
        assert requests_data(cluster) == {}, "removed once done"


def ledger_key(cluster: Harness, key: str) -> Any:
    configmap = cluster.fake.get("configmaps", MIDDLETIER, "graph-refresh-ledger")
    assert configmap is not None
    return json.loads(configmap["data"][key])


def scheduled_packages(report: Obj, cluster: Harness, before: set[str]) -> set[str]:
    return {
        job["metadata"]["annotations"]["thoth-station.ninja/package"]
        for n, job in cluster.jobs().items()
        if n not in before
    }


@pytest.mark.parametrize("store", ["sqlite", "dgraph"])
def test_fresh_releases_take_their_share_in_arrival_order_and_the_backlog_the_rest(
    cluster: Harness, store: str
) -> None:
    with FakeDgraph({}) as dgraph:
        graph = Graph(store, cluster, dgraph)
        graph.add(names(50, "old"))
        env = {**graph.env, "GRAPH_REFRESH_NO_PACKAGE_ANALYZERS": "1"}
        result, report = cluster.run("--max-in-flight", "6", now=lambda: T0, env=env)
        assert result.exit_code == 0, result.stderr
        assert lanes(report) == {"requested": 0, "fresh": 0, "backlog": 6}, "the first run: nothing is fresh"
        cursors = ledger_key(cluster, "fresh-cursors")
        assert set(cursors) == set(SOLVERS)
        assert len(set(cursors.values())) == 1

        for name in list(cluster.jobs()):
            cluster.fake.delete("jobs", MIDDLETIER, name)  # done and gone: room again
        graph.add(["zz-new3", "aa-new1", "mm-new2"])  # they arrive in this order, whatever their names
        graph.add(["new4", "new5"])
        _, report = cluster.run("--max-in-flight", "6", now=lambda: T0 + HOUR, env=env)
        assert lanes(report) == {"requested": 0, "fresh": 3, "backlog": 3}, "half of the 6 slots"
        packages = [job["metadata"]["annotations"]["thoth-station.ninja/package"] for job in cluster.jobs().values()]
        assert sorted(p for p in packages if "new" in p) == ["zz-new3"] * 3, "the oldest arrival first, every stream"
        assert sorted(p for p in packages if "new" not in p) == ["old000000"] * 3, "gone, not synced: again first"

        for name in list(cluster.jobs()):
            cluster.fake.delete("jobs", MIDDLETIER, name)
        _, report = cluster.run("--max-in-flight", "6", "--fresh-share", "1", now=lambda: T0 + 2 * HOUR, env=env)
        assert lanes(report) == {"requested": 0, "fresh": 6, "backlog": 0}
        packages = sorted(
            job["metadata"]["annotations"]["thoth-station.ninja/package"] for job in cluster.jobs().values()
        )
        assert packages == ["aa-new1"] * 3 + ["mm-new2"] * 3, "the next ones in arrival order; none twice"
        runs = ledger_key(cluster, "runs")
        assert [run["scheduled"][SOLVERS[0]] for run in runs] == [
            {"requested": 0, "fresh": 0, "backlog": 2},
            {"requested": 0, "fresh": 1, "backlog": 1},
            {"requested": 0, "fresh": 2, "backlog": 0},
        ]


def test_requests_that_expire_or_cannot_be_read_are_dropped_by_a_real_run_with_a_warning(cluster: Harness) -> None:
    cluster.graph(["flask"])
    cluster.cli("request", "flask==1.0", at=T0 - 8 * 24 * HOUR)
    cluster.fake.add(
        {
            **(cluster.fake.get("configmaps", MIDDLETIER, "graph-refresh-requests") or {}),
        }
    )
    configmap = cluster.fake.get("configmaps", MIDDLETIER, "graph-refresh-requests")
    assert configmap is not None
    configmap["data"]["broken"] = '{"package": "flask"'
    configmap["data"]["hostile"] = json.dumps(
        {"package": "x", "version": "1 2", "requested_at": "2027-01-15T07:00:00Z"}
    )
    cluster.fake.add(configmap)
    result, report = cluster.run("--dry-run", now=lambda: T0)
    assert result.exit_code == 0
    assert "Traceback" not in result.stderr
    assert "request 'broken' dropped: not JSON" in result.stderr
    assert "request 'hostile' dropped" in result.stderr
    assert "expired after --request-ttl" in result.stderr
    assert report["requests"] == {"open": 0, "oldest_age_seconds": None, "done": 0, "expired": 1}
    assert len(requests_data(cluster)) == 3, "a dry run changes nothing"
    result, report = cluster.run(now=lambda: T0)
    assert requests_data(cluster) == {}, "a real run removes them"
    assert lanes(report)["requested"] == 0


def test_a_request_added_while_a_run_removes_others_is_kept(cluster: Harness) -> None:
    cluster.graph(["flask"])
    cluster.cli("request", "flask==1.0", at=T0 - 8 * 24 * HOUR)  # expired by the run

    value = {"package": "numpy", "version": "2.0", "requested_at": "2027-01-15T07:59:00Z"}
    another_writer_first(cluster.fake, "graph-refresh-requests", "adviser-7", json.dumps(value))
    result, _ = cluster.run(now=lambda: T0)
    assert result.exit_code == 0, result.stderr
    assert set(requests_data(cluster)) == {"adviser-7"}


def test_with_the_graph_sync_behind_a_run_schedules_requests_only(cluster: Harness) -> None:
    cluster.graph(["a", "b", "c"])
    env = {"THOTH_GRAPH_REFRESH_MAX_AWAITING_SYNC": "2"}
    cluster.run("--max-in-flight", "2", now=lambda: T0, env=env)
    for name in cluster.jobs():
        cluster.fake.set_job_status(MIDDLETIER, name, "Complete")  # completed; the graph has not caught up
    cluster.cli("request", "d==1.0", at=T0)
    result, report = cluster.run(now=lambda: T0 + HOUR, env=env)
    assert "the graph sync is behind" in result.stderr
    assert report["totals"]["solver"]["stopped_by"] == "sync-lag" == report["totals"][ANALYZER]["stopped_by"]
    (summary,) = [line for line in result.stderr.splitlines() if "run finished in" in line]
    assert summary.count("stopped by sync-lag;") == 1
    assert summary.endswith("stopped by sync-lag")
    assert "None" not in summary
    assert lanes(report) == {"requested": 3, "fresh": 0, "backlog": 0}
    _, report = cluster.run(now=lambda: T0 + HOUR, env={"THOTH_GRAPH_REFRESH_MAX_AWAITING_SYNC": "3"})
    assert report["totals"]["solver"]["stopped_by"] != "sync-lag", "under the threshold: every lane"
    assert lanes(report)["backlog"] > 0
