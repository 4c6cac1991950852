"""The owned Jobs (graph_refresh/owned.py), reading middletier as a namespace of OpenShift holds it: owned
Jobs and pods of realistic shape, listed page by page through the CLI against FakeKube; only the pods that
can tell why a Job failed are listed, and what is learned is what the Jobs and pods say. Answers of the wrong
shape fail the run clearly. A Job's state comes from its conditions alone."""

from __future__ import annotations

import gc
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from graph_refresh import kube
from graph_refresh.config import ClusterSettings
from graph_refresh.items import SOLVER, Candidate, WorkItem
from graph_refresh.owned import job_state
from graph_refresh.vocabulary import JobState

from .fakes import shapes
from .fakes.kube import FakeKube
from .helpers import JOBS_PATH, MIDDLETIER, PYPI, SOLVERS, Harness

Obj = dict[str, Any]
RunCli = Callable[..., Result]
NOW = 1_800_000_000.0  # the run's clock
AT = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(NOW - 1_800))  # when the failed Jobs failed
PODS_PATH = rf"^/api/v1/namespaces/{MIDDLETIER}/pods$"
LEDGER = "graph-refresh-ledger"
OWNED = "app.kubernetes.io/managed-by=graph-refresh"
NOT_OBJECTS = "the answer's items are not a list of objects"
PACKAGES = ["oom", "evicted", "deadline", "error", "gone", "running", "done"]


@pytest.fixture
def fake() -> Iterator[FakeKube]:
    with FakeKube(tls="tls") as server:
        yield server
        assert server.server_errors == []


@pytest.fixture
def cluster(fake: FakeKube, run_cli: RunCli, tmp_path: Path, write_graph: Callable[[Obj], Path]) -> Harness:
    harness = Harness(fake, run_cli, tmp_path, write_graph)
    harness.env["GRAPH_REFRESH_NO_PACKAGE_ANALYZERS"] = "1"
    fake.add(  # earlier runs learned until an hour before these failures
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": LEDGER, "namespace": MIDDLETIER},
            "data": {"learned-until": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(NOW - 5_400))},
        }
    )
    return harness


def item(package: str, attempt: int = 1) -> WorkItem:
    return WorkItem(SOLVER, SOLVERS[0], Candidate(package, "1.0", PYPI), attempt)


def add_job(fake: FakeKube, package: str, state: str, *, reason: str = "BackoffLimitExceeded", **base: Any) -> Obj:
    job = shapes.openshift_job(
        shapes.base_job(item(package), namespace=MIDDLETIER, **base), state=state, reason=reason, at=AT
    )
    fake.add({"apiVersion": "batch/v1", "kind": "Job", **job})
    return job


def add_pod(fake: FakeKube, job: Obj, **status: Any) -> None:
    fake.add({"apiVersion": "v1", "kind": "Pod", **shapes.openshift_pod(job, **status)})


def openshift_namespace(fake: FakeKube, restart_policy: str = "Never") -> None:
    """One item of the first solver per package of PACKAGES, each Job and pod as OpenShift lists them."""
    oom = add_job(fake, "oom", "failed", containers=3)
    oom["spec"]["template"]["spec"]["initContainers"] = [{"name": "fetch", "resources": {"limits": {"memory": "64Mi"}}}]
    fake.add({"apiVersion": "batch/v1", "kind": "Job", **oom})
    add_pod(fake, oom, phase="Failed", suffix="first")
    add_pod(fake, oom, phase="Failed", last_states={"sidecar-2": shapes.terminated("OOMKilled", 137, AT)})
    add_pod(fake, add_job(fake, "evicted", "failed"), phase="Failed", reason="Evicted")
    add_pod(fake, add_job(fake, "deadline", "failed", reason="DeadlineExceeded", deadline=1800), phase="Failed")
    add_pod(fake, add_job(fake, "error", "failed"), phase="Failed")
    add_job(fake, "gone", "failed")
    add_pod(fake, add_job(fake, "running", "running"), phase="Running")
    add_pod(fake, add_job(fake, "done", "complete"), phase="Succeeded")
    if restart_policy != "Never":
        for job in fake.objects("jobs", MIDDLETIER):
            job["spec"]["template"]["spec"]["restartPolicy"] = restart_policy
            fake.add({"apiVersion": "batch/v1", "kind": "Job", **job})


def ledger(fake: FakeKube) -> dict[str, Obj]:
    configmap = fake.get("configmaps", MIDDLETIER, LEDGER)
    assert configmap is not None
    data = {key: value for key, value in configmap["data"].items() if key not in ("fresh-cursors", "runs")}
    return {json.loads(value)["package"]: json.loads(value) for value in data.values()}


def memory(job: Obj) -> dict[str, tuple[str, str]]:
    containers = job["spec"]["template"]["spec"]["containers"]
    return {c["name"]: (c["resources"]["requests"]["memory"], c["resources"]["limits"]["memory"]) for c in containers}


def test_a_namespace_as_openshift_lists_it_is_learned_from_as_its_jobs_and_pods_say(cluster: Harness) -> None:
    cluster.graph(PACKAGES)
    openshift_namespace(cluster.fake)

    result, report = cluster.run(now=lambda: NOW)

    assert result.exit_code == 0, result.stderr
    assert gc.isenabled(), "the garbage collector, paused while middletier was read, is on again"
    counts = report["solvers"][SOLVERS[0]]
    assert counts["retried"] == {"oom": 1, "disrupted": 1, "deadline": 1, "error": 0}
    assert counts["skipped"] == {"failed-recently": 2, "in-flight": 1, "awaiting-sync": 1}
    assert counts["scheduled"] == 3
    assert counts["failed"] == 0
    assert report["in_flight"] == {"solver": 1, "package-analyzer": 0}
    jobs = cluster.jobs()
    assert memory(jobs[item("oom", 2).job_name]) == {"solver": ("2Gi", "2Gi")}, "OOM-killed: memory doubled"
    assert memory(jobs[item("evicted", 2).job_name]) == {"solver": ("1Gi", "1Gi")}, "evicted: the same"
    assert jobs[item("deadline", 2).job_name]["spec"]["activeDeadlineSeconds"] == 3600, "deadline: doubled"
    assert item("error", 2).job_name not in jobs
    assert item("gone", 2).job_name not in jobs

    learned = ledger(cluster.fake)
    assert {package: (e["cause"], e["failures"], e["attempt"]) for package, e in learned.items()} == {
        "oom": ("oom", 1, 1),
        "evicted": ("disrupted", 0, 1),
        "deadline": ("deadline", 1, 1),
        "error": ("error", 1, 1),
        "gone": ("error", 1, 1),
    }
    assert learned["oom"]["memory"] == {
        name: {"request": "1Gi", "limit": "1Gi"} for name in ("solver", "sidecar-1", "sidecar-2")
    } | {"fetch": {"limit": "64Mi"}}
    assert learned["oom"]["failed"] == AT
    assert learned["deadline"]["deadline"] == 1800


def test_only_the_failed_pods_are_listed_when_no_failed_job_restarts_its_pods(cluster: Harness) -> None:
    cluster.graph(PACKAGES)
    openshift_namespace(cluster.fake)

    cluster.run(now=lambda: NOW)

    (pods,) = cluster.fake.requests_for("GET", PODS_PATH)
    assert pods.query["fieldSelector"] == ["status.phase=Failed"]
    assert pods.query["labelSelector"] == [OWNED]


def test_with_pods_restarting_in_place_every_pod_but_the_succeeded_is_listed(cluster: Harness) -> None:
    """restartPolicy OnFailure: the kubelet restarts an OOM-killed container in its pod, which stays Running
    (lastState OOMKilled) until the Job controller gives up and deletes it: a Failed selector would miss it."""
    cluster.graph(["oom"])
    job = add_job(cluster.fake, "oom", "failed")
    job["spec"]["template"]["spec"]["restartPolicy"] = "OnFailure"
    cluster.fake.add({"apiVersion": "batch/v1", "kind": "Job", **job})
    add_pod(cluster.fake, job, phase="Running", last_states={"solver": shapes.terminated("OOMKilled", 137, AT)})

    result, report = cluster.run(now=lambda: NOW)

    assert result.exit_code == 0, result.stderr
    (pods,) = cluster.fake.requests_for("GET", PODS_PATH)
    assert pods.query["fieldSelector"] == ["status.phase!=Succeeded"]
    assert pods.query["labelSelector"] == [OWNED]
    assert report["solvers"][SOLVERS[0]]["retried"]["oom"] == 1
    assert memory(cluster.jobs()[item("oom", 2).job_name]) == {"solver": ("2Gi", "2Gi")}


def test_no_pod_is_listed_when_no_owned_job_failed(cluster: Harness) -> None:
    cluster.graph(["running", "done"])
    add_pod(cluster.fake, add_job(cluster.fake, "running", "running"), phase="Running")
    add_pod(cluster.fake, add_job(cluster.fake, "done", "complete"), phase="Succeeded")
    result, _ = cluster.run(now=lambda: NOW)
    assert result.exit_code == 0
    assert cluster.fake.requests_for("GET", PODS_PATH) == []


def test_pages_are_followed_when_the_answer_puts_its_metadata_after_its_items(cluster: Harness) -> None:
    cluster.graph(["running", "done"])
    running, done = add_job(cluster.fake, "running", "running"), add_job(cluster.fake, "done", "complete")
    first = {"kind": "JobList", "apiVersion": "batch/v1", "items": [running], "metadata": {"continue": "page-2"}}
    last = {"kind": "JobList", "apiVersion": "batch/v1", "items": [done], "metadata": {"resourceVersion": "9"}}
    cluster.fake.inject(method="GET", path=JOBS_PATH, status=200, body=first)
    cluster.fake.inject(method="GET", path=JOBS_PATH, status=200, body=last)

    result, report = cluster.run(now=lambda: NOW)

    assert result.exit_code == 0, result.stderr
    pages = cluster.fake.requests_for("GET", JOBS_PATH)
    assert [page.query.get("continue") for page in pages] == [None, ["page-2"]]
    assert report["solvers"][SOLVERS[0]]["skipped"] == {"in-flight": 1, "awaiting-sync": 1}


@pytest.mark.parametrize(
    ("path", "body", "error"),
    [
        (
            PODS_PATH,
            {"kind": "PodList", "metadata": {}, "items": [None]},
            "the answer's items are not a list of objects",
        ),
        (PODS_PATH, {"kind": "PodList", "metadata": {}, "items": [{"metadata": {}}, "pod"]}, NOT_OBJECTS),
        (JOBS_PATH, {"kind": "JobList", "metadata": {}, "items": {"not": "a list"}}, NOT_OBJECTS),
        (JOBS_PATH, {"kind": "JobList", "metadata": {}, "items": "some"}, NOT_OBJECTS),
        (JOBS_PATH, [{"metadata": {"name": "a"}}], "the answer is not a JSON object"),
        (JOBS_PATH, '{"kind": "JobList", "items": [{"metadata": {', "the answer is not JSON"),
        (JOBS_PATH, "<html>Service Unavailable</html>", "the answer is not JSON"),
        (JOBS_PATH, '{"items": ' + "[" * 100_000 + "]" * 100_000 + "}", "the answer is nested too deep"),
    ],
)
def test_a_list_answer_of_the_wrong_shape_fails_the_run_clearly(
    cluster: Harness, path: str, body: Any, error: str
) -> None:
    cluster.graph(PACKAGES)
    openshift_namespace(cluster.fake)  # a failed Job: the pods are listed
    cluster.fake.inject(method="GET", path=path, status=200, body=body, times=None)

    result, report = cluster.run(now=lambda: NOW)

    assert result.exit_code == 1
    assert report["exit_code"] == 1
    resource = "pods" if path == PODS_PATH else "jobs.batch"
    assert f"list {resource} in namespace 'middletier': {error}" in report["error"]
    assert "Traceback" not in result.stderr
    assert cluster.created() == []
    assert gc.isenabled(), "the garbage collector is on again after a page that failed to parse"


@pytest.mark.parametrize("items", [None, {}, [], ""])
def test_a_list_answer_without_items_is_an_empty_page(cluster: Harness, items: Any) -> None:
    cluster.graph(["flask"])
    body = {"kind": "JobList", "apiVersion": "batch/v1", "metadata": {}, "items": items}
    cluster.fake.inject(method="GET", path=JOBS_PATH, status=200, body=body, times=None)
    result, report = cluster.run(now=lambda: NOW)
    assert result.exit_code == 0, result.stderr
    assert report["solvers"][SOLVERS[0]]["scheduled"] == 1


def test_a_page_is_cut_to_what_is_read_as_it_is_parsed(
    fake: FakeKube, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The client's own operation: each object passes through ``reduce`` as it is parsed; the answer's
    pages are followed and retried as before."""
    monkeypatch.setenv("KUBECONFIG", str(fake.kubeconfig(tmp_path / "kubeconfig")))
    for package in ("a", "b", "c"):
        add_job(fake, package, "running")
    fake.inject(method="GET", path=JOBS_PATH, status=503)  # a blip on the first page is retried
    seen: list[str] = []

    def reduce(obj: Obj) -> Obj:
        seen.append(obj["metadata"]["name"])
        assert obj["metadata"]["managedFields"], "the whole object, as listed"
        return {"name": obj["metadata"]["name"]}

    sleeps: list[float] = []
    client = kube.Cluster(ClusterSettings(), sleep=sleeps.append, page_size=2)
    listed = list(client.list_owned_jobs(MIDDLETIER, reduce=reduce))

    names = sorted(item(package).job_name for package in ("a", "b", "c"))
    assert listed == [{"name": name} for name in names]
    assert seen == names
    assert len(fake.requests_for("GET", JOBS_PATH)) == 3
    assert sleeps == [0.5]


def test_job_states_from_conditions() -> None:
    def job(*conditions: tuple[str, str]) -> dict[str, object]:
        return {"status": {"conditions": [{"type": t, "status": s} for t, s in conditions]}}

    assert job_state({}) is JobState.IN_FLIGHT
    assert job_state({"status": "x"}) is job_state({"status": {"conditions": ["x"]}}) is JobState.IN_FLIGHT
    assert job_state(job(("Failed", "False"))) is JobState.IN_FLIGHT
    assert job_state(job(("Complete", "True"))) is JobState.COMPLETE
    assert job_state(job(("Failed", "True"))) is JobState.FAILED
