"""Who waits comes first: requests, the fresh lane and pacing, run after run through the CLI against
the Kubernetes stand-in, with the embedded store and with the Dgraph stand-in. (``explain``:
tests/waiting/test_explain.py.)"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from graph_refresh.items import ANALYZER, SOLVER, Candidate, WorkItem

from .fakes.dgraph import FakeDgraph
from .helpers import (
    HOUR,
    MIDDLETIER,
    PYPI,
    SOLVERS,
    T0,
    Harness,
    RunCli,
    another_writer_first,
    names,
    unwrapped,
    version,
)

Obj = dict[str, Any]
STREAMS = [*SOLVERS, ANALYZER]


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
            filed = cluster.cli("request", wanted, "--by", "adviser", at=T0 - 60, env=graph.env)
            assert filed.exit_code == 0, filed.stderr
        result, report = cluster.run("--max-in-flight", "10", now=lambda: T0, env=graph.env)
        assert result.exit_code == 0, result.stderr
        assert item_jobs(cluster, last) == set(STREAMS)
        assert item_jobs(cluster, "brand-new", "2.0") == set(STREAMS), "a version the graph does not know yet"
        assert lanes(report) == {"requested": 6, "fresh": 0, "backlog": 2}
        assert lanes(report, ANALYZER) == {"requested": 2, "fresh": 0, "backlog": 0}
        assert report["requests"] == {
            "open": 2,
            "oldest_age_seconds": 60.0,
            "done": 0,
            "expired": 0,
            "dropped": 0,
            "closure_members": 2,
        }

        graph.add_graph(complete_and_sync(cluster))  # graph sync records the results
        _, report = cluster.run("--max-in-flight", "10", now=lambda: T0 + HOUR, env=graph.env)
        assert report["requests"] == {
            "open": 0,
            "oldest_age_seconds": None,
            "done": 2,
            "expired": 0,
            "dropped": 0,
            "closure_members": 0,
        }
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
    assert report["requests"] == {
        "open": 0,
        "oldest_age_seconds": None,
        "done": 0,
        "expired": 1,
        "dropped": 2,
        "closure_members": 0,
    }
    assert len(requests_data(cluster)) == 3, "a dry run changes nothing"
    result, report = cluster.run(now=lambda: T0)
    assert requests_data(cluster) == {}, "a real run removes them"
    assert lanes(report)["requested"] == 0
    assert result.stderr.count("request 'broken' dropped") == 1, "each warning once a run"


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


# -- who may ask for what, and nothing an operator writes is lost ---------------------------------------------


def put_requests(cluster: Harness, data: dict[str, str]) -> None:
    """Requests written by hand (``oc patch``), as anyone allowed to update the ConfigMap can."""
    cluster.fake.add(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "graph-refresh-requests", "namespace": MIDDLETIER},
            "data": data,
        }
    )


def job_indexes(cluster: Harness) -> set[str]:
    """Every index URL a Job of the cluster was given (solver and analyzer parameters)."""
    found = set()
    for job in cluster.jobs().values():
        for container in job["spec"]["template"]["spec"]["containers"]:
            for env in container.get("env") or []:
                if env["name"] in ("THOTH_SOLVER_INDEXES", "THOTH_PACKAGE_ANALYZER_INDEX_URL"):
                    found.add(env["value"])
    return found


@pytest.mark.parametrize(
    "index",
    [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "https://127.0.0.1:10250/pods",
        "https://kubernetes.default.svc/api/v1/secrets",
        "http://pypi.org/simple",
        "https://pypi.org/$(THOTH_SOLVER_PACKAGES)",
        "https://$(KUBERNETES_SERVICE_HOST)/simple",
    ],
)
def test_a_hand_written_request_never_points_a_job_somewhere_new(cluster: Harness, index: str) -> None:
    cluster.graph(["flask"])
    put_requests(cluster, {"attack": json.dumps({"package": "flask", "version": "1.0", "index": index})})
    result, report = cluster.run(now=lambda: T0)
    assert result.exit_code == 0, result.stderr
    assert job_indexes(cluster) == {PYPI}, "only the graph's own index reaches a Job"
    assert "request 'attack' dropped" in result.stderr
    assert report["requests"]["dropped"] == 1
    assert lanes(report)["requested"] == 0
    assert requests_data(cluster) == {}, "a real run removes it"


def test_a_requested_index_gets_the_graphs_spelling_with_its_credentials(cluster: Harness) -> None:
    private = "https://builder:s3cret@private.example:8443/simple/"
    cluster.import_graph({"package_versions": [version("private-pkg", "1.0", private), version("other", "1.0")]})
    filed = cluster.cli("request", "private-pkg==1.0", "--index", "HTTPS://private.example/simple:8443", at=T0)
    assert filed.exit_code == 2, "another path is another index"
    filed = cluster.cli("request", "private-pkg==1.0", "--index", "https://Private.Example:8443/simple", at=T0)
    assert filed.exit_code == 0, filed.stderr
    assert "s3cret" not in json.dumps(requests_data(cluster))
    _, report = cluster.run("--max-in-flight", "4", now=lambda: T0)
    assert lanes(report)["requested"] == 3
    assert item_jobs(cluster, "private-pkg") == set(SOLVERS)
    assert job_indexes(cluster) == {private, PYPI}, "the Job fetches from the graph's own spelling"


def test_a_graph_index_that_parsers_read_as_another_host_is_never_trusted(cluster: Harness) -> None:
    # urlsplit reads pypi.org as this URL's host, urllib3 (pip's) reads zzz.evil: trusted, it would take PyPI's place.
    lookalike = "https://zzz.evil\\@pypi.org/simple"
    cluster.import_graph(
        {"package_versions": [version("flask", "1.0"), version("six", "1.0"), version("decoy", "1.0", lookalike)]}
    )
    filed = cluster.cli("request", "six==1.0", at=T0)
    assert filed.exit_code == 0, filed.stderr
    put_requests(cluster, {**requests_data(cluster), "by-hand": json.dumps({"package": "flask", "version": "2.0"})})
    result, report = cluster.run("--max-in-flight", "10", "--request-share", "1", now=lambda: T0)
    assert result.exit_code == 0, result.stderr
    assert item_jobs(cluster, "six") == item_jobs(cluster, "flask", "2.0") == set(STREAMS)
    assert lanes(report)["requested"] == 2 * len(SOLVERS)
    assert job_indexes(cluster) == {PYPI}, "every Job fetches from PyPI, none from the lookalike"
    assert "decoy" not in {
        job["metadata"]["annotations"]["thoth-station.ninja/package"] for job in cluster.jobs().values()
    }


@pytest.mark.parametrize("store", ["sqlite", "dgraph"])
def test_another_spelling_of_a_solved_and_analyzed_item_is_done_without_a_job(cluster: Harness, store: str) -> None:
    done = {
        "package_versions": [version("jinja2", "3.1.6")],
        "solved": [{**version("jinja2", "3.1.6"), "solver": solver} for solver in SOLVERS],
        "analyzed": [version("jinja2", "3.1.6")],
    }
    with FakeDgraph({}) as dgraph:
        graph = Graph(store, cluster, dgraph)
        graph.add_graph(done)
        spellings = {
            "a": ("3.1.6.0", PYPI),
            "b": ("v3.1.6", PYPI),
            "c": ("3.1.6", PYPI + "/"),
            "d": ("3.1.6", "https://pypi.org:443/simple"),
        }
        put_requests(
            cluster,
            {
                key: json.dumps(
                    {"package": "Jinja2", "version": ver, "index": index, "requested_at": "2027-01-15T07:00:00Z"}
                )
                for key, (ver, index) in spellings.items()
            },
        )
        result, report = cluster.run(now=lambda: T0, env=graph.env)
        assert result.exit_code == 0, result.stderr
        assert cluster.jobs() == {}
        assert report["requests"] == {
            "open": 0,
            "oldest_age_seconds": None,
            "done": 4,
            "expired": 0,
            "dropped": 0,
            "closure_members": 0,
        }
        assert requests_data(cluster) == {}


def test_a_key_someone_changed_during_the_run_is_kept_and_duplicates_of_an_open_item_stay(cluster: Harness) -> None:
    cluster.graph(["flask", "numpy", "six"])
    value = {"package": "flask", "version": "1.0", "requested_at": "2027-01-15T07:00:00Z"}
    data = {f"dupe-{n:03d}": json.dumps(value) for n in range(299)}
    data["fixme"] = '{"package": "numpy"'  # unreadable: the run removes it, unless it was fixed meanwhile
    data["expired"] = json.dumps({**value, "package": "six", "requested_at": "2027-01-01T00:00:00Z"})
    put_requests(cluster, data)
    fixed = json.dumps({"package": "numpy", "version": "1.0"})
    another_writer_first(cluster.fake, "graph-refresh-requests", "fixme", fixed)
    repointed = json.dumps({**value, "package": "six"})
    another_writer_first(cluster.fake, "graph-refresh-requests", "expired", repointed)
    result, report = cluster.run(now=lambda: T0)
    assert result.exit_code == 0, result.stderr
    assert report["requests"]["open"] == 1, "299 keys, one item"
    assert lanes(report)["requested"] == 3
    after = requests_data(cluster)
    assert after["fixme"] == fixed, "fixed while the run worked: kept as the operator left it"
    assert after["expired"] == repointed, "re-pointed while the run worked: kept"
    assert sum(key.startswith("dupe-") for key in after) == 299, "keys of an open item are never removed"
    assert "2 request keys changed while this run worked were left as they are now" in result.stderr


def test_the_readmes_oc_patch_value_without_a_time_is_stamped_and_scheduled(cluster: Harness) -> None:
    cluster.graph(["flask"])
    put_requests(cluster, {"flask-1.0": '{"package": "flask", "version": "1.0"}'})
    result, report = cluster.run(now=lambda: T0)
    assert result.exit_code == 0, result.stderr
    assert lanes(report)["requested"] == 3
    assert json.loads(requests_data(cluster)["flask-1.0"]) == {
        "package": "flask",
        "version": "1.0",
        "requested_at": "2027-01-15T08:00:00Z",
    }
    ahead = {"package": "flask", "version": "1.0", "requested_at": "2099-01-01T00:00:00Z"}
    put_requests(cluster, {"ahead": json.dumps(ahead)})
    cluster.run(now=lambda: T0 + HOUR)
    assert json.loads(requests_data(cluster)["ahead"])["requested_at"] == "2027-01-15T09:00:00Z", "taken as now"


# -- floods, shares over time, and a request that cannot complete -------------------------------------------


def clear_jobs(cluster: Harness) -> None:
    for name in list(cluster.jobs()):
        cluster.fake.delete("jobs", MIDDLETIER, name)


def test_a_flood_of_requests_leaves_the_backlog_its_share_run_after_run(cluster: Harness) -> None:
    flood = names(10_000, "req")
    cluster.import_graph({"package_versions": [version(p, "1.0") for p in [*flood, *names(50, "old")]]})
    stamp = "2027-01-15T07:00:00Z"
    put_requests(
        cluster,
        {f"k{n:05d}": json.dumps({"package": p, "version": "1.0", "requested_at": stamp}) for n, p in enumerate(flood)},
    )
    env = {"GRAPH_REFRESH_NO_PACKAGE_ANALYZERS": "1"}
    taken = []
    for run in range(3):
        result, report = cluster.run("--max-in-flight", "10", now=lambda run=run: T0 + run * HOUR, env=env)
        assert result.exit_code == 0, result.stderr
        taken.append(lanes(report))
        clear_jobs(cluster)
    assert taken == [{"requested": 8, "fresh": 0, "backlog": 2}] * 3, "0.8 of the slots; the backlog moves"
    assert len(requests_data(cluster)) == 10_000, "none lost, none done yet"


def test_requests_take_turns_between_requesters(cluster: Harness) -> None:
    cluster.graph([*names(6, "bob"), "alice1", "alice2"])
    for n, package in enumerate(names(6, "bob")):
        cluster.cli("request", f"{package}==1.0", "--by", "bob", at=T0 - 600 + n)
    cluster.cli("request", "alice1==1.0", "--by", "alice", at=T0 - 60)
    cluster.cli("request", "alice2==1.0", "--by", "alice", at=T0 - 59)
    env = {"GRAPH_REFRESH_NO_PACKAGE_ANALYZERS": "1", "THOTH_GRAPH_REFRESH_REQUEST_SHARE": "1"}
    cluster.run("--max-in-flight", "12", now=lambda: T0, env=env)
    assert {p for p in ("bob000000", "alice1", "bob000001", "alice2") if item_jobs(cluster, p) == set(SOLVERS)} == {
        "bob000000",
        "alice1",
        "bob000001",
        "alice2",
    }, "bob's oldest, alice's oldest, bob's next, alice's next"
    assert item_jobs(cluster, "bob000002") == set()


def fresh_per_run(cluster: Harness, runs: int, *args: str, env: dict[str, str]) -> list[Obj]:
    """Run ``runs`` times an hour apart, new versions arriving before each and finished Jobs leaving after."""
    taken = []
    for run in range(runs):
        cluster.graph(names(3, f"new{run}-"))
        result, report = cluster.run(*args, now=lambda run=run: T0 + (run + 1) * HOUR, env=env)
        assert result.exit_code == 0, result.stderr
        taken.append(lanes(report))
        clear_jobs(cluster)
    return taken


def test_one_free_slot_at_a_share_of_a_half_gives_the_fresh_lane_every_second_slot(cluster: Harness) -> None:
    cluster.graph(names(40, "old"))
    env = {"GRAPH_REFRESH_NO_PACKAGE_ANALYZERS": "1"}
    cluster.run("--max-in-flight", "1", now=lambda: T0, env=env)  # the first run: nothing is fresh yet
    clear_jobs(cluster)
    taken = fresh_per_run(cluster, 6, "--max-in-flight", "1", env=env)
    assert [t["fresh"] for t in taken] == [0, 1, 0, 1, 0, 1]
    assert [t["backlog"] for t in taken] == [1, 0, 1, 0, 1, 0]
    configmap = cluster.fake.get("configmaps", MIDDLETIER, "graph-refresh-ledger")
    assert configmap is not None
    assert "lane-credits" not in configmap["data"], "the last run took its slot: nothing carried"


def test_a_share_counts_eager_stop_and_a_tenth_still_reaches_everything(cluster: Harness) -> None:
    cluster.graph(names(40, "old"))
    env = {"GRAPH_REFRESH_NO_PACKAGE_ANALYZERS": "1"}
    cluster.run("--eager-stop", "6", now=lambda: T0, env=env)
    clear_jobs(cluster)
    taken = fresh_per_run(cluster, 4, "--eager-stop", "6", env=env)
    assert taken == [{"requested": 0, "fresh": 3, "backlog": 3}] * 4, "half of the 6 Jobs eager stop allows"
    taken = fresh_per_run(cluster, 10, "--max-in-flight", "5", "--fresh-share", "0.1", env=env)
    assert sum(t["fresh"] for t in taken) == 5, "a tenth of 5 slots over 10 runs"
    assert all(t["fresh"] + t["backlog"] == 5 for t in taken)


@pytest.mark.parametrize("answer", ["quota", "500"])
def test_a_fresh_item_whose_create_was_refused_keeps_its_place(cluster: Harness, answer: str) -> None:
    cluster.graph(names(20, "old"))
    env = {"GRAPH_REFRESH_NO_PACKAGE_ANALYZERS": "1"}
    cluster.run("--max-in-flight", "3", now=lambda: T0, env=env)
    clear_jobs(cluster)
    cluster.graph(["new-a", "new-b"])
    refused = WorkItem(SOLVER, SOLVERS[0], Candidate("new-a", "1.0", PYPI)).job_name
    if answer == "quota":
        quota_full = {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "reason": "Forbidden",
            "code": 403,
            "message": f'jobs "{refused}" is forbidden: exceeded quota: jobs, requested: count/jobs.batch=1',
        }
        cluster.fake.inject(method="POST", path=r"/jobs$", status=403, body=quota_full, match_name=refused, times=1)
    else:  # every try of its create (5) answered 500: it failed after its retries
        cluster.fake.inject(method="POST", path=r"/jobs$", status=500, match_name=refused, times=5)
    result, _ = cluster.run("--max-in-flight", "6", "--fresh-share", "1", now=lambda: T0 + HOUR, env=env)
    assert result.exit_code == (0 if answer == "quota" else 3), result.stderr
    explained = cluster.cli("explain", "new-a==1.0", "--json", at=T0 + HOUR + 60, env=env)
    rows = {row["stream"]: row for row in json.loads(explained.stdout)}
    assert rows[SOLVERS[0]]["lane"] == "fresh", "not created: still fresh, not behind the backlog"
    clear_jobs(cluster)
    cluster.run("--max-in-flight", "6", "--fresh-share", "1", now=lambda: T0 + 2 * HOUR, env=env)
    assert refused in cluster.jobs(), "created by the next run's fresh lane"


def test_a_failing_lane_read_is_a_warning_and_the_rest_of_the_run_goes_on(cluster: Harness) -> None:
    with FakeDgraph({}) as dgraph:
        graph = Graph("dgraph", cluster, dgraph)
        graph.add(names(10))
        env = {**graph.env, "GRAPH_REFRESH_NO_PACKAGE_ANALYZERS": "1", "THOTH_GRAPH_REFRESH_MAX_AWAITING_SYNC": "1"}
        assert cluster.cli("request", "p000009==1.0", at=T0, env=env).exit_code == 0
        cluster.run("--max-in-flight", "3", now=lambda: T0, env=env)
        for name in cluster.jobs():
            cluster.fake.set_job_status(MIDDLETIER, name, "Complete")
        dgraph.inject(grpc.StatusCode.INVALID_ARGUMENT, times=10, match=lambda r: "query statuses" in r.query)
        result, report = cluster.run("--max-in-flight", "6", now=lambda: T0 + HOUR, env=env)
        assert result.exit_code == 0, result.stderr
        assert "the requested lane waits" in result.stderr
        assert "the run goes on unpaced" in result.stderr
        assert report["requests"] is None
        assert lanes(report)["backlog"] > 0, "the backlog still moves"
        assert len(requests_data(cluster)) == 1, "the request keeps its place"


def test_a_request_whose_results_never_reach_the_graph_ends_after_two_jobs(cluster: Harness) -> None:
    cluster.graph(["lost"])
    env = {"GRAPH_REFRESH_NO_PACKAGE_ANALYZERS": "1"}
    cluster.cli("request", "lost==1.0", at=T0, env=env)
    requested, warned = [], []
    for hour in range(6):
        result, report = cluster.run(now=lambda hour=hour: T0 + hour * HOUR, env=env)
        assert result.exit_code == 0, result.stderr
        requested.append(lanes(report)["requested"])
        warned.append("graph sync is losing results" in result.stderr)
        for name in cluster.jobs():
            cluster.fake.set_job_status(MIDDLETIER, name, "Complete")  # done; graph sync loses the result
        if hour % 2:
            clear_jobs(cluster)  # the Job TTL removes them
    assert requested == [3, 0, 3, 0, 0, 0], "two Jobs per stream completed, then the request ends"
    assert warned == [False, False, False, False, True, False]
    assert requests_data(cluster) == {}


def test_a_solver_only_deployment_ends_a_request_once_its_solvers_have_it(cluster: Harness) -> None:
    cluster.graph(["flask"])
    env = {"GRAPH_REFRESH_NO_PACKAGE_ANALYZERS": "1"}
    cluster.cli("request", "flask==1.0", at=T0)
    cluster.run(now=lambda: T0, env=env)
    cluster.import_graph(complete_and_sync(cluster))
    _, report = cluster.run(now=lambda: T0 + HOUR, env=env)
    assert report["requests"]["done"] == 1
    assert requests_data(cluster) == {}, "solved by every solver it runs: done, though never analyzed"


def test_unknown_streams_in_the_cursors_are_pruned_and_push_no_entry_out(cluster: Harness) -> None:
    cluster.graph(["flask"])
    env = {"GRAPH_REFRESH_NO_PACKAGE_ANALYZERS": "1"}
    cluster.run(now=lambda: T0, env=env)
    configmap = cluster.fake.get("configmaps", MIDDLETIER, "graph-refresh-ledger")
    assert configmap is not None
    junk = {f"solver-junk{n:06d}-1-py38": 1 for n in range(30_000)}
    junk["not a stream"] = 5
    configmap["data"]["fresh-cursors"] = json.dumps({**json.loads(configmap["data"]["fresh-cursors"]), **junk})
    cluster.fake.add(configmap)
    result, _ = cluster.run(now=lambda: T0 + HOUR, env=env)
    assert "Ledger graph-refresh-ledger is full" not in result.stderr
    cursors = ledger_key(cluster, "fresh-cursors")
    assert set(cursors) == set(SOLVERS)


def test_a_runs_store_queries_are_bounded_by_pages_not_by_items(cluster: Harness) -> None:
    """10k owned Jobs completed (pacing reads the graph for each), 1k open requests, a backlog: every store read
    is a page or a batch, so the queries stay a few dozen whatever the number of items."""
    requested = names(1_000, "req")
    synced = names(10_000, "done")
    graph = {
        "package_versions": [version(p, "1.0") for p in [*requested, *synced, *names(2_000, "old")]],
        "solved": [{**version(p, "1.0"), "solver": solver} for p in synced for solver in SOLVERS],
        "analyzed": [version(p, "1.0") for p in synced],
    }
    with FakeDgraph(graph) as dgraph:
        for n, package in enumerate(synced):
            item = WorkItem(SOLVER, SOLVERS[n % 3], Candidate(package, "1.0", PYPI))
            job = {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {
                    "name": item.job_name,
                    "namespace": MIDDLETIER,
                    "labels": item.labels,
                    "annotations": item.annotations,
                },
                "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": []}}},
            }
            cluster.fake.add(job)
            cluster.fake.set_job_status(MIDDLETIER, item.job_name, "Complete")
        stamp = "2027-01-15T07:00:00Z"
        put_requests(
            cluster,
            {
                f"k{n:04d}": json.dumps({"package": p, "version": "1.0", "requested_at": stamp})
                for n, p in enumerate(requested)
            },
        )
        env = {"GRAPH_SERVICE_HOST": dgraph.host, "THOTH_GRAPH_REFRESH_MAX_AWAITING_SYNC": "10000"}
        before = len(dgraph.calls())
        result, report = cluster.run("--max-in-flight", "50", now=lambda: T0, env=env)
        assert result.exit_code == 0, result.stderr
        queries = dgraph.calls()[before:]
        assert report["requests"]["open"] == 1_000
        assert lanes(report)["requested"] + lanes(report, ANALYZER)["requested"] == 40, "0.8 of the 50 slots"
        assert report["totals"]["solver"]["stopped_by"] != "sync-lag", "the sync is healthy: all 10,000 were asked"
        lookups = [q for q in queries if "query statuses" in q.query or "query versions" in q.query]
        # 1,000 requests and 10,000 completed Jobs in lookups of a page (500) each: by pages, never one an item;
        # and one for the backlog's first waiting item of every stream (docs/eta.md)
        assert len(lookups) <= 1_000 // 500 + 10_000 // 500 + 1, len(lookups)
        assert len(queries) <= 100, len(queries)


def test_a_run_record_stamped_later_than_the_run_counts_as_now_and_is_not_duplicated(cluster: Harness) -> None:
    cluster.graph(names(30))
    env = {"GRAPH_REFRESH_NO_PACKAGE_ANALYZERS": "1"}
    cluster.run("--max-in-flight", "3", now=lambda: T0, env=env)
    configmap = cluster.fake.get("configmaps", MIDDLETIER, "graph-refresh-ledger")
    assert configmap is not None
    runs = json.loads(configmap["data"]["runs"])
    runs[0]["at"] = "9999-12-31T23:59:59Z"  # a clock far ahead, or a hand
    configmap["data"]["runs"] = json.dumps(runs)
    cluster.fake.add(configmap)
    clear_jobs(cluster)
    result, _ = cluster.run("--max-in-flight", "3", now=lambda: T0 + HOUR, env=env)
    assert "stamped later than this run's clock: each taken as made between the runs around it" in result.stderr
    kept = ledger_key(cluster, "runs")
    assert [(run["seq"], run["at"]) for run in kept] == [(1, "2027-01-15T09:00:00Z"), (2, "2027-01-15T09:00:00Z")]
    rows = {
        row["stream"]: row
        for row in json.loads(cluster.cli("explain", "p000029==1.0", "--json", at=T0 + HOUR, env=env).stdout)
    }
    assert "9999" not in json.dumps(rows), "the future never comes from a record"


def test_a_run_keeps_no_credential_in_a_request_and_reads_no_value_naming_a_field_twice(cluster: Harness) -> None:
    cluster.graph(["flask", "click"])
    put_requests(
        cluster,
        {
            "credidx": json.dumps(
                {"package": "flask", "version": "1.0", "index": "https://bob:hunter2@pypi.org/simple"}
            ),
            "dupkeys": '{"package": "click", "version": "1.0", "package": "flask", "by": "dup"}',
            "ahead": json.dumps({"package": "click", "version": "1.0", "requested_at": "2999-01-01T00:00:00Z"}),
        },
    )
    result, _ = cluster.run(now=lambda: T0, env={"GRAPH_REFRESH_NO_PACKAGE_ANALYZERS": "1"})
    assert result.exit_code == 0, result.stderr
    data = requests_data(cluster)
    assert "hunter2" not in json.dumps(data), "a run writes the index in its normal form"
    assert json.loads(data["credidx"])["index"] == PYPI
    assert "dupkeys" not in data, "unreadable: dropped as written, never rewritten as one of its readings"
    assert "request 'dupkeys' dropped: it names 'package' twice" in unwrapped(result.stderr)
    assert "request 'ahead' was made at 2999-01-01T00:00:00Z, later than this run's clock" in unwrapped(result.stderr)
    assert json.loads(data["ahead"])["requested_at"] == "2027-01-15T08:00:00Z"
