"""The owned Jobs (graph_refresh/owned.py), reading middletier as a namespace of OpenShift holds it: owned
Jobs and pods of realistic shape, listed page by page through the CLI against FakeKube; only the pods that
can tell why a Job failed are listed, and what is learned is what the Jobs and pods say. Answers of the wrong
shape fail the run clearly. A Job's state comes from its conditions alone."""

from __future__ import annotations

import gc
import json
import ssl
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from graph_refresh import kube
from graph_refresh.config import ClusterSettings
from graph_refresh.items import ANALYZER, SOLVER, Candidate, WorkItem
from graph_refresh.owned import OwnedJobs, job_state
from graph_refresh.refresh import read_cluster_view
from graph_refresh.retry.codec import to_data
from graph_refresh.retry.model import AttemptResources, Cause, ItemId, LedgerEntry
from graph_refresh.vocabulary import JobState

from .fakes import shapes
from .fakes.kube import FakeKube, Request
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
    pages = [page for page in cluster.fake.requests_for("GET", JOBS_PATH) if "as=Table" not in page.headers["accept"]]
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


# --- finished Jobs cost little: the Jobs that succeeded are listed as Tables ----------------------------------

FINISHED = ["analyzed", "retried", "forgotten", "legacy"]
NOT_ACCEPTED = "the Jobs that succeeded are listed as whole objects"


def add_item_job(fake: FakeKube, work: WorkItem, state: str, *, attempt_label: bool = True) -> Obj:
    job = shapes.openshift_job(shapes.base_job(work, namespace=MIDDLETIER), state=state, at=AT)
    if not attempt_label:
        for labels in (job["metadata"]["labels"], job["spec"]["template"]["metadata"]["labels"]):
            del labels["thoth-station.ninja/attempt"]
    fake.add({"apiVersion": "batch/v1", "kind": "Job", **job})
    return job


def finished_namespace(fake: FakeKube) -> None:
    """``openshift_namespace``, and Jobs that succeeded in each way the lists must tell apart: a first attempt
    of the analyzer; a retry (attempt 2) beside its failed first attempt; a retry whose first attempt is gone
    but in the ledger (its completion forgets the entry); a Job of an earlier release, without the attempt
    label."""
    openshift_namespace(fake)
    add_item_job(fake, WorkItem(ANALYZER, None, Candidate("analyzed", "1.0", PYPI)), "complete")
    add_item_job(fake, item("retried"), "failed")
    add_item_job(fake, item("retried", 2), "complete")
    add_item_job(fake, item("forgotten", 2), "complete")
    add_item_job(fake, item("legacy"), "complete", attempt_label=False)
    configmap = fake.get("configmaps", MIDDLETIER, LEDGER)
    assert configmap is not None
    entry = LedgerEntry(ItemId.of(item("forgotten")), 1, 1, Cause.ERROR, NOW - 7_200, AttemptResources())
    configmap["data"].update(to_data([entry]))
    fake.add(configmap)


def not_accepting_the_field_selector(fake: FakeKube) -> None:
    """An API server that selects Jobs by name and namespace only, as in its words."""
    message = 'field label "status.successful" not supported for batchv1.Job'
    body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "code": 400}
    fake.inject(method="GET", path=JOBS_PATH, status=400, body={**body, "reason": "BadRequest"})


SERVERS: dict[str, Callable[[FakeKube], object]] = {
    "tables": lambda fake: None,
    "tables with a status column": lambda fake: setattr(fake, "job_status_column", True),
    "406 not acceptable": lambda fake: setattr(fake, "representations", "refused"),
    "tables ignored": lambda fake: setattr(fake, "representations", "ignored"),
    "no status.successful": not_accepting_the_field_selector,
}
FALLBACKS = {"406 not acceptable", "tables ignored", "no status.successful"}


def comparable(report: Obj) -> Obj:
    return {key: value for key, value in report.items() if key != "duration_seconds"}


def test_the_same_report_and_ledger_with_every_representation_and_with_the_fallback(
    run_cli: RunCli, tmp_path: Path, write_graph: Callable[[Obj], Path]
) -> None:
    """Each way an API server may answer: Tables (1.15's columns, 1.30's Status column), a 406, Tables ignored
    (the Jobs themselves), and no field selector on status.successful. The fallbacks say so once."""
    runs: dict[str, tuple[Obj, dict[str, Obj], set[str]]] = {}
    for server, configure in SERVERS.items():
        folder = tmp_path / server.replace(" ", "-")
        folder.mkdir()
        with FakeKube(tls="tls") as fake:
            harness = Harness(fake, run_cli, folder, write_graph)
            harness.env["GRAPH_REFRESH_NO_PACKAGE_ANALYZERS"] = "1"
            fake.add(
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": LEDGER, "namespace": MIDDLETIER},
                    "data": {"learned-until": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(NOW - 5_400))},
                }
            )
            if not runs:
                harness.graph(PACKAGES + FINISHED)
            finished_namespace(fake)
            configure(fake)
            result, report = harness.run(now=lambda: NOW)
            assert result.exit_code == 0, result.stderr
            assert result.stderr.count(NOT_ACCEPTED) == (1 if server in FALLBACKS else 0), result.stderr
            runs[server] = comparable(report), ledger(fake), set(harness.jobs())
            assert fake.server_errors == []
    reference = runs["tables ignored"]
    for server, seen in runs.items():
        assert seen == reference, server
    counts = reference[0]["solvers"][SOLVERS[0]]
    assert counts["skipped"] == {"failed-recently": 2, "in-flight": 1, "awaiting-sync": 4}
    assert "forgotten" not in reference[1], "its retry completed: the ledger forgets it"


def view_of(fake: FakeKube, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, keep_completed: bool) -> OwnedJobs:
    monkeypatch.setenv("KUBECONFIG", str(fake.kubeconfig(tmp_path / "kubeconfig")))
    client = kube.Cluster(ClusterSettings(), page_size=2)
    view = read_cluster_view(client, MIDDLETIER, NOW, keep_completed=keep_completed)
    view.completed.sort(key=lambda item: item.key)  # in the order listed: whole Jobs first, then the Tables
    return view


@pytest.mark.parametrize("keep_completed", [False, True], ids=["", "pacing"])
def test_the_same_view_of_the_owned_jobs_with_every_representation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, keep_completed: bool
) -> None:
    views = {}
    for server, configure in SERVERS.items():
        with FakeKube(tls="tls") as fake:
            fake.add(
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": LEDGER, "namespace": MIDDLETIER},
                    "data": {},
                }
            )
            finished_namespace(fake)
            configure(fake)
            views[server] = view_of(fake, tmp_path, monkeypatch, keep_completed=keep_completed)
            tables = [r for r in fake.requests_for("GET", JOBS_PATH) if "as=Table" in r.headers["accept"]]
            if server.startswith("tables") and server != "tables ignored":
                expected = [["None", "Metadata"], ["Metadata"]][keep_completed]
                assert [r.query["includeObject"] for r in tables if "continue" not in r.query] == [
                    [include] for include in expected
                ]
    reference = views["tables ignored"]
    assert reference.latest[item("retried").key] == (2, JobState.COMPLETE)
    assert reference.latest[item("legacy").key] == (1, JobState.COMPLETE)
    assert len(reference.completed) == (5 if keep_completed else 0)
    for server, view in views.items():
        assert view == reference, server


def test_the_lists_of_jobs_that_succeeded_are_pinned_to_the_first_lists_version(cluster: Harness) -> None:
    """Those that did not succeed first, whole; then the Tables, at exactly the version the first list answered
    at: first attempts by name alone, the others with their metadata."""
    cluster.graph(PACKAGES + FINISHED)
    finished_namespace(cluster.fake)
    version = listed_version(cluster.fake)
    cluster.fake.clear_requests()

    result, _ = cluster.run(now=lambda: NOW)

    assert result.exit_code == 0, result.stderr
    unsucceeded, first_attempts, retries = cluster.fake.requests_for("GET", JOBS_PATH)
    assert unsucceeded.query["fieldSelector"] == ["status.successful!=1"]
    assert unsucceeded.query["labelSelector"] == [OWNED]
    assert "as=Table" not in unsucceeded.headers["accept"]
    for table, selector, include in (
        (first_attempts, f"{OWNED},thoth-station.ninja/attempt=1", "None"),
        (retries, f"{OWNED},thoth-station.ninja/attempt!=1", "Metadata"),
    ):
        assert table.headers["accept"] == "application/json;as=Table;v=v1;g=meta.k8s.io, application/json"
        assert table.query["fieldSelector"] == ["status.successful=1"]
        assert table.query["labelSelector"] == [selector]
        assert table.query["includeObject"] == [include]
        assert (table.query["resourceVersion"], table.query["resourceVersionMatch"]) == ([version], ["Exact"])


def listed_version(fake: FakeKube) -> str:
    """The resourceVersion a list of middletier's Jobs answers at now."""
    return str(
        fetch(fake, f"/apis/batch/v1/namespaces/{MIDDLETIER}/jobs", {"limit": ["1"]})["metadata"]["resourceVersion"]
    )


def fetch(fake: FakeKube, path: str, query: dict[str, list[str]], accept: str = "application/json") -> Obj:
    """GET ``path`` from the fake over HTTPS, as a client of it."""
    context = ssl.create_default_context(cafile=str(fake.ca_pem))
    request = urllib.request.Request(
        f"{fake.url}{path}?{urllib.parse.urlencode(query, doseq=True)}",
        headers={"Authorization": f"Bearer {fake.token}", "Accept": accept},
    )
    with urllib.request.urlopen(request, context=context) as answer:
        body: Obj = json.loads(answer.read())
        return body


@pytest.mark.parametrize("pinned", [True, False], ids=["pin honoured", "pin ignored"])
def test_a_job_finishing_between_the_lists_is_counted_exactly_once(
    fake: FakeKube, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pinned: bool
) -> None:
    """``running`` completes after the first list saw it in flight, before the Tables are listed: it counts
    once, as the first list saw it, whether the server answers the Tables at the first list's version or at its
    latest (then the Table names it again, and that row is passed over)."""
    add_pod(fake, add_job(fake, "running", "running"), phase="Running")
    add_job(fake, "done", "complete")
    tables: list[Obj] = []

    def finish_then_answer(request: Request) -> Obj:
        fake.set_job_status(MIDDLETIER, item("running").job_name, "Complete")
        query = {k: v for k, v in request.query.items() if pinned or not k.startswith("resourceVersion")}
        tables.append(fetch(fake, request.path, query, request.headers["accept"]))
        return tables[-1]

    fake.inject(method="GET", path=JOBS_PATH, status=None)  # the first list, as it is
    fake.inject(method="GET", path=JOBS_PATH, status=200, body=finish_then_answer)  # the first Table

    view = view_of(fake, tmp_path, monkeypatch, keep_completed=False)

    named = sorted(row["cells"][0] for row in tables[0]["rows"])
    assert named == sorted([item("done").job_name, *([] if pinned else [item("running").job_name])])
    assert view.live == {SOLVER: 1}
    assert view.per_stream == {SOLVERS[0]: 2}
    assert view.latest[item("running").key] == (1, JobState.IN_FLIGHT)
    assert view.latest[item("done").key] == (1, JobState.COMPLETE)


def test_a_job_a_tables_status_says_failed_is_read_whole_and_learned_from(cluster: Harness) -> None:
    """Kubernetes 1.30 on prints a Status: a Job whose pod succeeded but which failed all the same (its deadline
    passed as the pod ended) is read whole, as the failure it is."""
    cluster.graph(["late"])
    job = add_job(cluster.fake, "late", "failed", reason="DeadlineExceeded", deadline=1800)
    job["status"]["succeeded"] = 1
    cluster.fake.add({"apiVersion": "batch/v1", "kind": "Job", **job})
    cluster.fake.job_status_column = True

    result, report = cluster.run(now=lambda: NOW)

    assert result.exit_code == 0, result.stderr
    assert cluster.fake.requests_for("GET", rf"{JOBS_PATH[:-1]}/{item('late').job_name}$")
    assert report["solvers"][SOLVERS[0]]["retried"]["deadline"] == 1
    assert ledger(cluster.fake)["late"]["cause"] == "deadline"
