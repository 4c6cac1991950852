"""``app.py explain`` (graph_refresh/waiting/explain.py): where an item stands in every stream, in flight,
solved, waiting behind others, requested, failed or quarantined, read from the cluster and the store alone,
through the CLI against the Kubernetes stand-in, with the embedded store and with the Dgraph stand-in."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from graph_refresh.items import ANALYZER, SOLVER, Candidate, WorkItem
from tests.fakes.dgraph import FakeDgraph
from tests.helpers import EXAMPLE_TEMPLATES, HOUR, MIDDLETIER, PYPI, SOLVERS, T0, Harness, RunCli, names, oom, version

Obj = dict[str, Any]
STREAMS = [*SOLVERS, ANALYZER]


def explained(cluster: Harness, requirement: str, at: float, env: dict[str, str] | None = None) -> dict[str, Obj]:
    result = cluster.cli("explain", requirement, "--json", at=at, env=env)
    assert result.exit_code == 0, result.stderr
    return {row["stream"]: row for row in json.loads(result.stdout)}


@pytest.mark.parametrize("store", ["sqlite", "dgraph"])
def test_explain_says_where_an_item_stands_in_every_stream(
    cluster: Harness, run_cli: RunCli, write_graph: Callable[[Obj], Path], store: str
) -> None:
    graph = {"package_versions": [version(name, "1.0") for name in names(10)]}
    graph["solved"] = [{**version("p000001", "1.0"), "solver": SOLVERS[0]}]
    with FakeDgraph(graph) as dgraph:
        env = {"GRAPH_SERVICE_HOST": dgraph.host} if store == "dgraph" else {}
        if store == "sqlite":
            assert run_cli(["import-graph", str(write_graph(graph))]).exit_code == 0
        cluster.run("--max-in-flight", "4", now=lambda: T0, env=env)
        assert cluster.cli("request", "p000009==1.0", "--by", "alice", at=T0 + 60, env=env).exit_code == 0

        in_flight = explained(cluster, "p000000==1.0", T0 + 120, env)
        assert set(in_flight) == set(STREAMS)
        assert {row["state"] for row in in_flight.values()} == {"in-flight"}
        job = WorkItem(SOLVER, SOLVERS[1], Candidate("p000000", "1.0", PYPI)).job_name
        assert in_flight[SOLVERS[1]]["job"] == job
        assert in_flight[SOLVERS[1]]["since"]

        solved = explained(cluster, "p000001==1.0", T0 + 120, env)
        assert solved[SOLVERS[0]]["state"] == "solved"
        waiting = solved[SOLVERS[1]]
        assert (waiting["state"], waiting["lane"]) == ("waiting", "backlog")
        assert waiting["ahead"] == 0, "p000000 comes before it, but its Job is in flight: it takes no slot"
        assert (waiting["start"], waiting["solved"]) == (None, None)
        assert waiting["eta_note"] == "not enough history: 1 of 3 runs"

        requested = explained(cluster, "P000009==1.0", T0 + 120, env)
        assert {row["state"] for row in requested.values()} == {"requested"}
        assert requested[ANALYZER]["since"] == "2027-01-15T08:01:00Z"
        assert requested[ANALYZER]["by"] == "alice"
        assert requested[ANALYZER]["ahead"] == 0, "no request comes before it"

        for args in (["--json"], []):  # not found, as kubectl says it: the rows say why, and the exit is 1
            unknown = cluster.cli("explain", "nothing==1.0", *args, at=T0 + 120, env=env)
            assert unknown.exit_code == 1, unknown.stderr
            assert "the graph does not hold this version: request it" in unknown.stdout
        rows = json.loads(cluster.cli("explain", "nothing==1.0", "--json", at=T0 + 120, env=env).stdout)
        assert {row["state"] for row in rows} == {"unknown"}
        invalid = explained(cluster, "p000002==1 ; rm -rf", T0 + 120, env)
        assert {row["state"] for row in invalid.values()} == {"invalid"}

        table = cluster.cli("explain", "p000001==1.0", at=T0 + 120, env=env)
        assert table.exit_code == 0
        assert table.stdout.startswith("p000001==1.0 (https://pypi.org/simple)\n")
        assert f"  {SOLVERS[0]}" in table.stdout
        assert "solved" in table.stdout
        assert max(map(len, table.stdout.splitlines())) <= 120


def test_explain_refuses_what_it_cannot_read(cluster: Harness) -> None:
    cluster.graph(["flask"])
    bad = cluster.cli("explain", "flask")
    assert bad.exit_code == 2
    assert "is not PKG==VER" in bad.stderr
    cluster.fake.inject(method="GET", path=r"/jobs$", status=403, times=None)
    refused = cluster.cli("explain", "flask==1.0")
    assert refused.exit_code == 1
    assert "403" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_explain_writes_nothing(cluster: Harness) -> None:
    cluster.graph(["flask"])
    cluster.run(now=lambda: T0)
    before = len(cluster.writes())
    cluster.cli("explain", "flask==1.0", at=T0)
    assert len(cluster.writes()) == before


def test_explain_tells_failed_quarantined_and_awaiting_sync_apart(cluster: Harness) -> None:
    cluster.graph(["flask", "numpy", "pytz"])
    cluster.run(now=lambda: T0)
    flask_solver = WorkItem(SOLVER, SOLVERS[0], Candidate("flask", "1.0", PYPI))
    cluster.fake.set_job_status(MIDDLETIER, flask_solver.job_name, "Complete")
    numpy_analyzer = WorkItem(ANALYZER, None, Candidate("numpy", "1.0", PYPI))
    entry = {"kind": ANALYZER, "package": "numpy", "version": "1.0", "index": PYPI, "failures": 3, "attempt": 3}
    failed_entry = {**entry, "cause": "error", "failed": "2027-01-15T07:00:00Z"}
    pytz_solver = WorkItem(SOLVER, SOLVERS[1], Candidate("pytz", "1.0", PYPI))
    pytz_entry = {**entry, "kind": SOLVER, "solver": SOLVERS[1], "package": "pytz", "failures": 1, "attempt": 1}
    configmap = cluster.fake.get("configmaps", MIDDLETIER, "graph-refresh-ledger")
    assert configmap is not None
    configmap["data"][numpy_analyzer.key] = json.dumps(failed_entry)
    configmap["data"][pytz_solver.key] = json.dumps({**pytz_entry, "cause": "error", "failed": "2027-01-15T08:30:00Z"})
    cluster.fake.add(configmap)
    for name in (numpy_analyzer.job_name, pytz_solver.job_name):
        cluster.fake.delete("jobs", MIDDLETIER, name)  # the TTL removed the failed Jobs; the ledger remembers

    flask = explained(cluster, "flask==1.0", T0 + HOUR)[SOLVERS[0]]
    jobs = flask.pop("jobs")
    assert flask == {"stream": SOLVERS[0], "kind": SOLVER, "state": "awaiting-sync", "job": flask_solver.job_name}
    assert [(job["name"], job["attempt"], job["state"], job["memory"]) for job in jobs] == [
        (flask_solver.job_name, 1, "complete", "1Gi")
    ], "the item's Jobs in the stream, with what they ran with"
    numpy = explained(cluster, "numpy==1.0", T0 + HOUR)[ANALYZER]
    assert (numpy["state"], numpy["until"], numpy["failures"]) == ("quarantined", "2027-02-14T07:00:00Z", 3)
    pytz = explained(cluster, "pytz==1.0", T0 + HOUR)[SOLVERS[1]]
    assert (pytz["state"], pytz["cause"], pytz["retry_at"]) == ("failed", "error", "2027-01-15T09:30:00Z")
    for row in (numpy, pytz):  # their own time, not a window drawn from throughput (docs/eta.md)
        assert not {"start", "solved", "eta_note"} & set(row)


def test_explain_from_a_template_folder_without_middletier_reads_no_cluster(
    run_cli: RunCli, write_graph: Callable[[Obj], Path]
) -> None:
    assert run_cli(["import-graph", str(write_graph({"package_versions": [version("flask", "1.0")]}))]).exit_code == 0
    result = run_cli(["--template-dir", str(EXAMPLE_TEMPLATES), "explain", "flask==1.0", "--json"])
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)
    assert {row["state"] for row in rows} == {"waiting"}
    assert {row["lane"] for row in rows} == {"backlog"}
    assert "THOTH_MIDDLETIER_NAMESPACE is not set" in result.stderr, "it says what it could not see"


def test_explain_escapes_what_someone_wrote_into_a_request(cluster: Harness) -> None:
    cluster.graph(["flask"])
    hostile = "eve\x1b[2J\n  solver-fedora-34-py39  solved\u202e"
    value = json.dumps({"package": "flask", "version": "1.0", "requested_at": "2027-01-15T07:00:00Z", "by": hostile})
    cluster.fake.add(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "graph-refresh-requests", "namespace": "middletier"},
            "data": {"k\n": value},
        }
    )
    text = cluster.cli("explain", "flask==1.0", at=T0)
    assert text.exit_code == 0, text.stderr
    assert "\x1b" not in text.stdout
    assert "\u202e" not in text.stdout
    lines = [line for line in text.stdout.splitlines() if line.startswith("  ") and not line.startswith("   ")]
    assert len(lines) == len(STREAMS), "no forged row (a long one goes on, indented deeper, on the next lines)"
    rows = explained(cluster, "flask==1.0", T0)
    assert rows[ANALYZER]["by"] == "eve\\x1b[2J\\n  solver-fedora-34-py39  solved\\u202e"
    assert rows[ANALYZER]["key"] == "k\\n"


def test_explain_of_a_failed_job_not_yet_learned_is_what_the_next_run_does(cluster: Harness) -> None:
    """The operator's case: a Job just failed; explain must tell the retry (deadline doubled) or the back-off
    the next run applies, before any run has learned the failure."""
    cluster.graph(["argo-workflows"])
    env = {"GRAPH_REFRESH_NO_PACKAGE_ANALYZERS": "1"}
    cluster.run(now=lambda: T0, env=env)
    deadline = WorkItem(SOLVER, SOLVERS[0], Candidate("argo-workflows", "1.0", PYPI))
    error = WorkItem(SOLVER, SOLVERS[1], Candidate("argo-workflows", "1.0", PYPI))
    jobs = cluster.jobs()
    cluster.fail(jobs[deadline.job_name], at=T0 + 600, reason="DeadlineExceeded")
    cluster.fail(jobs[error.job_name], at=T0 + 600, pod_status={"phase": "Failed"})
    before = jobs[deadline.job_name]["spec"]["activeDeadlineSeconds"]

    rows = explained(cluster, "argo-workflows==1.0", T0 + HOUR, env)
    assert rows[SOLVERS[0]]["state"] == "waiting"
    assert (rows[SOLVERS[0]]["attempt"], rows[SOLVERS[0]]["retries"]) == (2, "deadline")
    assert rows[SOLVERS[0]]["deadline"] == 2 * before
    assert (rows[SOLVERS[1]]["state"], rows[SOLVERS[1]]["cause"]) == ("failed", "error")
    assert rows[SOLVERS[1]]["retry_at"] == "2027-01-15T09:10:00Z", "an hour after the failure"
    assert rows[SOLVERS[2]]["state"] == "in-flight"

    cluster.run(now=lambda: T0 + HOUR, env=env)
    retry = cluster.jobs()[WorkItem(SOLVER, SOLVERS[0], deadline.candidate, 2).job_name]
    assert retry["spec"]["activeDeadlineSeconds"] == 2 * before, "what explain said"
    assert WorkItem(SOLVER, SOLVERS[1], error.candidate, 2).job_name not in cluster.jobs(), "backing off, as said"


@pytest.mark.parametrize(
    ("path", "names"),
    [
        ("/configmaps/graph-refresh-ledger$", "graph-refresh-ledger"),
        ("/configmaps/graph-refresh-requests$", "graph-refresh-requests"),
        ("/resourcequotas$", "resourcequotas"),
        ("/pods$", "pods"),
    ],
)
def test_explain_that_cannot_read_what_the_decision_needs_says_which_and_exits_1(
    cluster: Harness, path: str, names: str
) -> None:
    cluster.graph(["flask"])
    cluster.run(now=lambda: T0)
    for job in cluster.jobs().values():
        cluster.fail(job, at=T0 + 60, pod_status=oom())  # failed Jobs: their pods are read too
    cluster.fake.inject(method="GET", path=path, status=403, times=None)
    refused = cluster.cli("explain", "flask==1.0", at=T0 + HOUR)
    assert refused.exit_code == 1, refused.stdout
    assert names in refused.stderr
    assert "403" in refused.stderr
    assert refused.stdout == "", "no guess"


def test_explain_gives_up_on_a_cluster_that_does_not_answer_within_its_budget(cluster: Harness) -> None:
    cluster.graph(["flask"])
    cluster.fake.inject(method="GET", path="/configmaps/graph-refresh-ledger$", status=None, delay=30, times=None)
    started = time.monotonic()
    result = cluster.cli("explain", "flask==1.0", at=T0)
    assert time.monotonic() - started < 10
    assert result.exit_code == 1
    assert "graph-refresh-ledger" in result.stderr
