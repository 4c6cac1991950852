"""A run, end to end (graph_refresh/refresh.py): the CLI against FakeKube reached through a generated kubeconfig.

Templates come from ``infra``, Jobs go to ``middletier``, never twice. (How the client itself talks to the
API server, TLS, paging and typed errors, is in test_kube.py.) Every test reads the run report
and checks the accounting invariant; nothing really sleeps (the ``sleep`` seam records the waits).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml

from graph_refresh import backoff, kube
from graph_refresh.config import ClusterSettings
from graph_refresh.items import ANALYZER, SOLVER, Candidate, WorkItem

from .fakes.dgraph import FakeDgraph, make_tls_files
from .fakes.kube import status_body
from .helpers import (
    EXAMPLE_TEMPLATES,
    INFRA,
    JOBS_PATH,
    MIDDLETIER,
    PYPI,
    ROOT,
    SOLVERS,
    Harness,
    assert_balanced,
    env_of,
    kubeconfig_without_ca,
    manifests,
    owned_job,
    quota,
    run_app,
    scheduled,
    unwrapped,
    version,
)

Obj = dict[str, Any]

JOB_NAME = re.compile(r"(solver-[a-z0-9.-]+-py[0-9]+|package-analyzer)-[0-9a-f]{10}")


def solver_item(solver: str, package: str, ver: str = "1.0") -> WorkItem:
    return WorkItem(SOLVER, solver, Candidate(package, ver, PYPI))


def analyzer_item(package: str, ver: str = "1.0") -> WorkItem:
    return WorkItem(ANALYZER, None, Candidate(package, ver, PYPI))


def all_items(packages: list[str]) -> list[WorkItem]:
    return [solver_item(s, p) for p in packages for s in SOLVERS] + [analyzer_item(p) for p in packages]


# --- a full run ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fake", ["tls", "mtls"], indirect=True)
def test_full_run_creates_the_right_jobs_in_middletier_and_writes_nothing_else(cluster: Harness) -> None:
    fake = cluster.fake
    analyzer = next(t for t in fake.objects("templates", INFRA) if t["metadata"]["name"] == "package-analyzer")
    analyzer["objects"][0]["spec"]["ttlSecondsAfterFinished"] = 600  # this Template sets its own TTL
    fake.add(analyzer)
    templates_before = fake.objects("templates", INFRA)
    packages = cluster.graph(["flask", "numpy"])

    result, report = cluster.run(env={"THOTH_GRAPH_REFRESH_JOB_TTL": "3600"})

    assert result.exit_code == 0, result.stderr
    assert report["exit_code"] == 0
    assert report["dry_run"] is False
    assert report["failures"] == []
    assert scheduled(report) == {"solver": 6, "package-analyzer": 2}
    expected = {item.job_name: item for item in all_items(packages)}
    jobs = cluster.jobs()
    assert set(jobs) == set(expected)
    for name, job in jobs.items():
        item = expected[name]
        labels, env = job["metadata"]["labels"], env_of(job)
        assert JOB_NAME.fullmatch(name)
        assert len(name) <= 57
        assert job["metadata"]["namespace"] == MIDDLETIER
        assert labels["app.kubernetes.io/managed-by"] == "graph-refresh"
        assert labels["thoth-station.ninja/kind"] == item.kind
        assert labels["thoth-station.ninja/item"] == item.key == name.rsplit("-", 1)[1]
        assert labels["app"] == "thoth", "the Template's own labels stay"
        assert env["THOTH_DOCUMENT_ID"] == name
        assert "${" not in json.dumps(job)
        package = item.candidate.package_name
        if item.kind == SOLVER:
            assert labels["thoth-station.ninja/solver"] == item.solver == env["THOTH_SOLVER"]
            assert env["THOTH_SOLVER_PACKAGES"] == f"{package}===1.0"
            assert env["THOTH_SOLVER_INDEXES"] == PYPI
            assert env["THOTH_SOLVER_OUTPUT"] == "http://result-api/api/v1/solver-result"
            assert env["THOTH_SOLVER_SUBGRAPH_CHECK_API"] == "http://result-api/api/v1/subgraph-check"
            assert env["THOTH_SOLVER_NO_TRANSITIVE"] == "0"
            assert env["THOTH_LOG_SOLVER"] == "INFO"
            assert job["spec"]["activeDeadlineSeconds"] == 3600  # ${{P}} became a number
            assert job["spec"]["ttlSecondsAfterFinished"] == 3600  # THOTH_GRAPH_REFRESH_JOB_TTL
        else:
            assert "thoth-station.ninja/solver" not in labels
            assert env["THOTH_PACKAGE_ANALYZER_PACKAGE_NAME"] == package
            assert env["THOTH_PACKAGE_ANALYZER_PACKAGE_VERSION"] == "1.0"
            assert env["THOTH_PACKAGE_ANALYZER_INDEX_URL"] == PYPI
            assert env["THOTH_PACKAGE_ANALYZER_OUTPUT"] == "http://result-api/api/v1/package-analysis-result"
            assert job["spec"]["ttlSecondsAfterFinished"] == 600  # the Template's own TTL is kept

    writes = cluster.writes()
    ledger_path = f"/api/v1/namespaces/{MIDDLETIER}/configmaps"
    job_writes = [r for r in writes if r.path != ledger_path]
    assert len(job_writes) == 8
    assert all(r.method == "POST" and re.fullmatch(JOBS_PATH, r.path) for r in job_writes), "writes only Jobs"
    (ledger_write,) = [r for r in writes if r.path == ledger_path]  # and the ledger, created once
    assert ledger_write.body["metadata"]["name"] == "graph-refresh-ledger"
    assert fake.objects("templates", INFRA) == templates_before
    assert cluster.sleeps == []
    reads = {(r.method, r.path) for r in fake.requests if r.method == "GET"}
    assert reads == {
        ("GET", f"/apis/template.openshift.io/v1/namespaces/{INFRA}/templates"),
        ("GET", f"/apis/batch/v1/namespaces/{MIDDLETIER}/jobs"),
        ("GET", f"/api/v1/namespaces/{MIDDLETIER}/resourcequotas"),
        ("GET", f"/api/v1/namespaces/{MIDDLETIER}/configmaps/graph-refresh-ledger"),  # nothing failed: no pods listed
        ("GET", f"/api/v1/namespaces/{MIDDLETIER}/configmaps/graph-refresh-requests"),
    }
    if fake.tls == "mtls":  # the client certificate alone authenticated every request
        assert all(r.client_cert_subject and "CN=graph-refresh-test" in r.client_cert_subject for r in fake.requests)
        assert all("authorization" not in r.headers for r in fake.requests)


def test_the_plan_table_gives_each_stream_as_the_report_says_and_no_log_line_repeats_it(cluster: Harness) -> None:
    packages = cluster.graph(["a", "b", "c"])
    cluster.fake.add(owned_job(solver_item(SOLVERS[1], packages[0]).job_name))
    result, report = cluster.run("--max-in-flight", "6")
    assert result.exit_code == 0
    rows = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines() if not line.startswith(" ")}
    for stream, counts in [*report["solvers"].items(), ("package-analyzer", report["totals"]["package-analyzer"])]:
        figures = ["examined", "scheduled", "retries", "already_scheduled", "failed", "skipped", "backlog"]
        counts = {**counts, "retries": sum(counts["retried"].values()), "skipped": sum(counts["skipped"].values())}
        assert rows[stream] == [str(counts[figure]) for figure in figures], stream
    logged = [line for line in result.stderr.splitlines() if " INFO " in line and "graph_refresh.summary" not in line]
    assert not [line for line in logged if any(stream in line for stream in [*SOLVERS, "package-analyzer"])]
    assert report["solvers"][SOLVERS[1]]["skipped"]["in-flight"] == 1
    assert report["totals"]["solver"]["skipped"]["capacity"] >= 1
    assert "graph-refresh run finished" in result.stderr


def test_the_2019_one_liner_runs_against_dgraph_and_the_cluster(cluster: Harness, tmp_path: Path) -> None:
    """KUBERNETES_VERIFY_TLS=0 THOTH_INFRA_NAMESPACE=... GRAPH_SERVICE_HOST=... GRAPH_TLS_PATH=... app.py"""
    tls = make_tls_files(tmp_path / "tls-test")
    graph = {"package_versions": [version("flask", "1.1.2"), version("numpy", "1.19.0")]}
    with FakeDgraph(graph, tls=tls.server_tls(mutual=True)) as dgraph:
        env = {
            "KUBECONFIG": str(kubeconfig_without_ca(cluster.fake, tmp_path / "kubeconfig-no-ca")),
            "KUBERNETES_VERIFY_TLS": "0",
            "GRAPH_SERVICE_HOST": dgraph.host,
            "GRAPH_TLS_PATH": str(tls.directory),
        }
        result, report = cluster.run(env=env)
    assert result.exit_code == 0, result.stderr
    assert report["store"] == "dgraph"
    assert scheduled(report) == {"solver": 6, "package-analyzer": 2}
    assert len(cluster.jobs()) == 8
    assert "KUBERNETES_VERIFY_TLS=0" in result.stderr
    assert "mutual TLS" in result.stderr


# --- never twice ---------------------------------------------------------------------------------


def test_owned_jobs_are_not_scheduled_again_until_they_are_gone(cluster: Harness) -> None:
    cluster.graph(["flask", "numpy"])
    first, report = cluster.run()
    assert first.exit_code == 0
    assert sum(scheduled(report).values()) == 8

    second, report = cluster.run()
    assert second.exit_code == 0
    assert len(cluster.created()) == 8, "the second run creates nothing"
    assert report["in_flight"] == {"solver": 6, "package-analyzer": 2}
    for kind, examined in (("solver", 6), ("package-analyzer", 2)):
        assert report["totals"][kind]["skipped"] == {"in-flight": examined}
        assert report["totals"][kind]["examined"] == examined

    failed, complete = solver_item(SOLVERS[0], "flask").job_name, analyzer_item("numpy").job_name
    cluster.fake.set_job_status(MIDDLETIER, failed, "Failed")
    cluster.fake.set_job_status(MIDDLETIER, complete, "Complete")
    third, report = cluster.run(now=time.time)  # the clock the fake Job controller stamps failures with
    assert third.exit_code == 0
    assert len(cluster.created()) == 8
    assert report["in_flight"] == {"solver": 5, "package-analyzer": 1}
    assert report["solvers"][SOLVERS[0]]["skipped"] == {"in-flight": 1, "failed-recently": 1}
    assert report["totals"]["package-analyzer"]["skipped"] == {"in-flight": 1, "awaiting-sync": 1}
    assert report["totals"]["solver"]["scheduled"] == report["totals"]["package-analyzer"]["scheduled"] == 0

    cluster.fake.delete("jobs", MIDDLETIER, failed)
    cluster.fake.delete("jobs", MIDDLETIER, complete)  # the TTL controller removed them
    fourth, report = cluster.run(now=time.time)
    assert fourth.exit_code == 0
    assert len(cluster.created()) == 9, "the ledger remembers the failure's back-off"
    assert report["solvers"][SOLVERS[0]]["skipped"] == {"in-flight": 1, "failed-recently": 1}

    after_backoff = time.time() + 2 * 3600  # the error back-off (an hour) is over
    fifth, report = cluster.run(now=lambda: after_backoff)
    assert fifth.exit_code == 0
    retry_of_failed = WorkItem(SOLVER, SOLVERS[0], Candidate("flask", "1.0", PYPI), attempt=2).job_name
    assert sorted(cluster.created()[8:]) == sorted([complete, retry_of_failed])
    assert report["solvers"][SOLVERS[0]]["retried"]["error"] == 1


# --- what the API answers to a create ------------------------------------------------------------


def test_409_is_already_scheduled_not_an_error(cluster: Harness) -> None:
    cluster.graph(["flask"])
    by_hand = solver_item(SOLVERS[0], "flask").job_name  # same name, but not labelled as ours: not listed
    cluster.fake.add(owned_job(by_hand, labels={"app": "thoth"}))
    raced = analyzer_item("flask").job_name  # created by someone else between our list and our create
    cluster.fake.inject(method="POST", path=JOBS_PATH, status=409, match_name=raced)

    result, report = cluster.run()

    assert result.exit_code == 0
    assert report["exit_code"] == 0
    assert report["failures"] == []
    assert report["solvers"][SOLVERS[0]]["already_scheduled"] == 1
    assert report["totals"]["package-analyzer"]["already_scheduled"] == 1
    assert scheduled(report) == {"solver": 2, "package-analyzer": 0}
    assert cluster.sleeps == [], "a 409 is not retried"
    assert cluster.created().count(by_hand) == cluster.created().count(raced) == 1


def test_429_waits_as_long_as_retry_after_says_then_creates(cluster: Harness) -> None:
    cluster.graph(["flask"])
    fault = cluster.fake.inject(method="POST", path=JOBS_PATH, status=429, headers={"Retry-After": "2"})
    result, report = cluster.run()
    assert result.exit_code == 0
    assert fault.hits == 1
    assert cluster.sleeps == [2]
    assert len(cluster.jobs()) == 4
    assert len(cluster.created()) == 5
    assert scheduled(report) == {"solver": 3, "package-analyzer": 1}


def test_creates_keep_to_the_client_side_rate_limit(cluster: Harness) -> None:
    cluster.graph(["flask", "numpy"])
    result, _ = cluster.run(env={"THOTH_GRAPH_REFRESH_QPS": "1", "THOTH_GRAPH_REFRESH_BURST": "2"})
    assert result.exit_code == 0
    assert len(cluster.jobs()) == 8
    # Two creates go at once (the burst); each later one waits for its token, one second apart. The run
    # takes far less than a second of real time, so the waits are about 1, 2, ... 6 seconds.
    assert len(cluster.sleeps) == 6
    assert all(abs(wait - expected) < 0.5 for wait, expected in zip(sorted(cluster.sleeps), range(1, 7), strict=True))


def test_500_three_times_is_retried_with_backoff_then_creates(cluster: Harness) -> None:
    cluster.graph(["flask"])
    fault = cluster.fake.inject(method="POST", path=JOBS_PATH, status=500, times=3)
    result, report = cluster.run()
    assert result.exit_code == 0
    assert fault.hits == 3
    assert report["failures"] == []
    assert len(cluster.jobs()) == 4
    assert len(cluster.created()) == 7
    assert len(cluster.sleeps) == 3
    assert all(0 <= wait <= backoff.CREATES.cap_seconds for wait in cluster.sleeps)


def test_persistent_500_on_some_items_is_a_partial_run_listing_exactly_them(cluster: Harness) -> None:
    packages = cluster.graph(["flask", "numpy"])
    broken = sorted([solver_item(SOLVERS[2], "numpy").job_name, analyzer_item("flask").job_name])
    for name in broken:
        cluster.fake.inject(method="POST", path=JOBS_PATH, status=500, times=None, match_name=name)

    result, report = cluster.run()

    assert result.exit_code == 3
    assert report["exit_code"] == 3
    assert sorted(f["job"] for f in report["failures"]) == broken
    assert {f["status"] for f in report["failures"]} == {500}
    assert {f["kind"] for f in report["failures"]} == {"solver", "package-analyzer"}
    assert report["solvers"][SOLVERS[2]]["failed"] == 1
    assert report["totals"]["package-analyzer"]["failed"] == 1
    assert set(cluster.jobs()) == {item.job_name for item in all_items(packages)} - set(broken)
    attempts = backoff.CREATES.attempts
    assert all(cluster.created().count(name) == attempts for name in broken)
    assert len(cluster.sleeps) == 2 * (attempts - 1)


def test_every_create_failing_fails_the_run(cluster: Harness) -> None:
    cluster.graph(["flask"])
    cluster.fake.inject(method="POST", path=JOBS_PATH, status=503, times=None)
    result, report = cluster.run()
    assert result.exit_code == 1
    assert report["exit_code"] == 1
    assert len(report["failures"]) == 4
    assert cluster.jobs() == {}


@pytest.mark.timeout(30)
def test_a_timed_out_create_is_retried(cluster: Harness) -> None:
    cluster.graph(["flask"])
    slow = solver_item(SOLVERS[1], "flask").job_name
    cluster.fake.inject(method="POST", path=JOBS_PATH, status=503, delay=1.0, match_name=slow)

    result, report = cluster.run(connect=lambda: kube.Cluster(ClusterSettings(), request_timeout=(2, 0.2)))

    assert result.exit_code == 0
    assert report["failures"] == []
    assert cluster.created().count(slow) == 2
    assert slow in cluster.jobs()
    assert len(cluster.sleeps) == 1
    assert scheduled(report) == {"solver": 3, "package-analyzer": 1}


@pytest.mark.timeout(30)
def test_a_create_that_always_times_out_counts_as_failed(cluster: Harness) -> None:
    cluster.graph(["flask"])
    slow = analyzer_item("flask").job_name
    cluster.fake.inject(method="POST", path=JOBS_PATH, status=503, delay=1.0, times=None, match_name=slow)

    result, report = cluster.run(connect=lambda: kube.Cluster(ClusterSettings(), request_timeout=(2, 0.2)))

    assert result.exit_code == 3
    (failure,) = report["failures"]
    assert failure["job"] == slow
    assert failure["status"] is None
    assert "no answer" in failure["reason"]
    assert cluster.created().count(slow) == backoff.CREATES.attempts


def test_an_api_server_that_stops_answering_ends_the_run_instead_of_every_create_timing_out(
    cluster: Harness,
) -> None:
    cluster.graph([f"p{i}" for i in range(30)])  # 120 Jobs
    cluster.fake.inject(method="POST", path=JOBS_PATH, status=503, delay=1.0, times=None)

    result, report = cluster.run(connect=lambda: kube.Cluster(ClusterSettings(), request_timeout=(2, 0.2)))

    assert result.exit_code == 1
    assert "the API server stopped answering: 8 creates in a row got no answer" in report["error"]
    sent = {r.body["metadata"]["name"] for r in cluster.fake.requests_for("POST", JOBS_PATH)}
    assert 8 <= len(sent) < 20, "it stops soon after the eighth, not after all 120"
    reasons = [failure["reason"] for failure in report["failures"]]
    assert "not sent: the API server stopped answering" in reasons


def test_403_on_create_stops_submitting(cluster: Harness) -> None:
    cluster.graph([f"p{i}" for i in range(10)])
    cluster.fake.inject(method="POST", path=JOBS_PATH, status=403, times=None)
    result, report = cluster.run("--workers", "1")
    assert result.exit_code == 1
    assert report["exit_code"] == 1
    # One worker keeps two items in hand; once the first create is refused the second is not even sent,
    # and nothing more is planned.
    assert len(cluster.created()) == 1
    assert cluster.sleeps == []
    assert sum(report["totals"][kind]["failed"] for kind in report["totals"]) == 2
    assert {failure["status"] for failure in report["failures"]} == {403}
    assert sum(report["totals"][kind]["examined"] for kind in report["totals"]) == 2, "the rest is backlog"


def test_a_run_that_fails_before_examining_anything_ends_with_its_error_not_a_summary_of_zeros(
    cluster: Harness, tmp_path: Path
) -> None:
    cluster.graph(["flask"])
    kubeconfig = cluster.fake.kubeconfig(tmp_path / "wrong-token", token="not-the-token")
    result, report = cluster.run(env={"KUBECONFIG": str(kubeconfig)})
    assert result.exit_code == 1
    assert report["exit_code"] == 1
    assert report["error"]
    assert "Run failed" in result.stderr
    assert "finished in" not in result.stderr
    assert "backlog=?" not in result.stderr
    assert "examined" not in result.stdout + result.stderr, "no plan table and no per-stream lines either"


def test_a_409_after_a_lost_answer_is_this_runs_own_create(cluster: Harness) -> None:
    cluster.graph(["flask"])
    name = solver_item(SOLVERS[0], "flask").job_name
    cluster.fake.add(owned_job(name, labels={"app": "thoth"}))  # as if the first create had gone through
    cluster.fake.inject(method="POST", path=JOBS_PATH, status=503, match_name=name)  # ... and its answer lost
    result, report = cluster.run()
    assert result.exit_code == 0
    counts = report["solvers"][SOLVERS[0]]
    assert {key: counts[key] for key in ("examined", "scheduled", "already_scheduled", "failed", "skipped")} == {
        "examined": 1,
        "scheduled": 1,
        "already_scheduled": 0,
        "failed": 0,
        "skipped": {},
    }


# --- capacity -------------------------------------------------------------------------------------


def test_max_in_flight_schedules_only_the_free_slots_round_robin(cluster: Harness) -> None:
    cluster.graph([f"p{i}" for i in range(4)])
    for i in range(3):
        cluster.fake.add(owned_job(f"solver-fedora-34-py39-live{i}"))
    cluster.fake.add(owned_job("package-analyzer-live", kind=ANALYZER))
    cluster.fake.add(owned_job("not-ours", labels={"app": "thoth"}))  # not ours: does not count
    done = cluster.fake.add(owned_job("solver-ubi-8-py38-done"))
    cluster.fake.set_job_status(MIDDLETIER, done["metadata"]["name"], "Complete")  # finished: does not count

    result, report = cluster.run("--max-in-flight", "9")

    assert result.exit_code == 0
    assert report["in_flight"] == {"solver": 3, "package-analyzer": 1}
    assert len(cluster.created()) == 5
    per_solver = {solver: counts["scheduled"] for solver, counts in report["solvers"].items()}
    assert per_solver == {SOLVERS[0]: 2, SOLVERS[1]: 1, SOLVERS[2]: 1}  # round-robin from the first solver
    assert report["totals"]["package-analyzer"]["scheduled"] == 1
    for kind in ("solver", "package-analyzer"):
        assert report["totals"][kind]["stopped_by"] == "capacity"
        assert report["totals"][kind]["stopped_by_limit"] == "--max-in-flight"
    # Each stream counts its next candidate under the cap that stopped it, the first solver's too.
    assert report["totals"]["solver"]["skipped"] == {"capacity": 3}
    assert report["totals"]["package-analyzer"]["skipped"] == {"capacity": 1}


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        ("requests.memory", {"solver": 3, "package-analyzer": 1}),
        ("memory", {"solver": 3, "package-analyzer": 1}),  # bare: means requests
        ("limits.memory", {"solver": 3, "package-analyzer": 0}),
    ],
)
def test_every_resource_quota_is_honoured_requests_with_requests_limits_with_limits(
    resource: str, expected: dict[str, int], cluster: Harness
) -> None:
    # Example Templates: a solver requests 1Gi memory, the analyzer 512Mi; both limit 1Gi.
    cluster.graph([f"p{i}" for i in range(4)])
    cluster.fake.add(quota("pods", {"pods": "10"}, {"pods": "5"}))  # 5 pods free: alone it admits 5
    cluster.fake.add(quota("memory", {resource: "8Gi"}, {resource: "4608Mi"}))  # 3.5Gi free

    result, report = cluster.run()

    # Round-robin: three solvers take 3Gi; the analyzer's 512Mi request fits the last 0.5Gi, its 1Gi
    # limit does not; then nothing fits. Reading only the first quota would schedule 5.
    assert result.exit_code == 0
    assert scheduled(report) == expected
    assert {counts["scheduled"] for counts in report["solvers"].values()} == {1}
    assert len(cluster.jobs()) == sum(expected.values())
    for kind in ("solver", "package-analyzer"):
        assert report["totals"][kind]["stopped_by"] == "capacity"
        assert report["totals"][kind]["stopped_by_limit"] == f"ResourceQuota 'memory': {resource}"
        assert report["totals"][kind]["skipped"]["capacity"] >= 1


def test_a_quota_quantity_that_cannot_be_read_fails_the_run_naming_it(cluster: Harness) -> None:
    cluster.graph(["flask"])
    cluster.fake.add(quota("odd", {"pods": "lots"}, {}))
    result, report = cluster.run()
    assert result.exit_code == 1
    assert report["error"] == "ResourceQuota 'odd': pods='lots' is not a quantity"
    assert "Traceback" not in result.stderr
    assert cluster.created() == []


def test_a_job_count_quota_counts_every_job_in_middletier(cluster: Harness) -> None:
    cluster.graph([f"p{i}" for i in range(4)])
    for i in range(5):
        cluster.fake.add(owned_job(f"someone-elses-{i}", labels={"app": "other"}))
    cluster.fake.add(quota("jobs", {"count/jobs.batch": "7"}, {}))  # the fake keeps status.used current
    result, report = cluster.run()
    assert result.exit_code == 0
    assert sum(scheduled(report).values()) == 2
    assert len(cluster.created()) == 2, "planned within the quota: no create is refused"
    assert report["in_flight"] == {"solver": 0, "package-analyzer": 0}


def test_a_quota_refusal_at_create_time_is_capacity_and_stops_scheduling(cluster: Harness) -> None:
    cluster.graph([f"p{i}" for i in range(5)])
    cluster.fake.add(quota("jobs", {"count/jobs.batch": "3"}, {}))  # the fake enforces count/jobs.batch
    stale = {"kind": "ResourceQuotaList", "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": []}
    cluster.fake.inject(method="GET", path=r"/resourcequotas$", status=200, body=stale)  # read before it existed

    result, report = cluster.run("--workers", "1")

    assert result.exit_code == 0
    assert report["exit_code"] == 0
    assert report["failures"] == []
    assert len(cluster.jobs()) == 3
    assert scheduled(report) == {"solver": 3, "package-analyzer": 0}
    # The 4th create (the analyzer's) is refused, and each stream counts its next candidate under
    # "capacity" and stops. One worker keeps two items in hand, so a 5th item may already be planned when
    # the refusal is counted (then it is not sent, and counts as capacity too) or not: threads decide.
    assert len(cluster.created()) == 4
    assert report["totals"]["solver"]["skipped"]["capacity"] in (3, 4)  # 3 streams stopped (+ 1 not sent)
    assert report["totals"]["package-analyzer"]["skipped"] == {"capacity": 2}  # 1 refused + stopped
    assert report["totals"]["solver"]["failed"] == report["totals"]["package-analyzer"]["failed"] == 0
    assert report["totals"]["solver"]["stopped_by"] == report["totals"]["package-analyzer"]["stopped_by"] == "capacity"
    assert cluster.sleeps == [], "a quota refusal is not retried"


def test_the_role_grants_reading_resourcequotas_in_middletier() -> None:
    documents = list(yaml.safe_load_all((ROOT / "openshift" / "rbac.yaml").read_text()))
    roles = [d for d in documents if d["kind"] == "Role" and d["metadata"]["namespace"] == MIDDLETIER]
    rules = [rule for role in roles for rule in role["rules"] if "resourcequotas" in rule["resources"]]
    assert rules
    assert all(rule["apiGroups"] == [""] for rule in rules)
    verbs = {verb for rule in rules for verb in rule["verbs"]}
    assert {"get", "list"} <= verbs
    assert not verbs - {"get", "list", "watch"}


@pytest.mark.parametrize(("scope", "created"), [("BestEffort", 8), ("NotBestEffort", 0)])
def test_a_quota_counts_only_the_pods_its_scope_covers(cluster: Harness, scope: str, created: int) -> None:
    cluster.graph(["flask", "numpy"])
    scoped = quota("no-pods", {"pods": "0"}, {"pods": "0"})
    scoped["spec"]["scopes"] = [scope]  # the example Templates' pods have requests: NotBestEffort
    cluster.fake.add(scoped)
    result, report = cluster.run()
    assert result.exit_code == 0
    assert len(cluster.created()) == created
    assert report["totals"]["solver"]["stopped_by"] == (None if created else "capacity")


def test_a_quota_not_yet_calculated_is_retried(cluster: Harness) -> None:
    cluster.graph(["flask"])
    body = status_body(403, 'jobs.batch "x" is forbidden: status unknown for quota: new-quota', "Forbidden")
    cluster.fake.inject(method="POST", path=JOBS_PATH, status=403, body=body)
    result, report = cluster.run()
    assert result.exit_code == 0
    assert sum(scheduled(report).values()) == 4


def test_a_quota_with_odd_fields_reads_as_empty_where_they_are_odd(cluster: Harness) -> None:
    cluster.graph(["flask"])
    odd = {"metadata": {"name": "odd"}, "spec": {"hard": "x", "scopes": "y", "scopeSelector": 3}, "status": None}
    cluster.fake.inject(
        method="GET",
        path=rf"^/api/v1/namespaces/{MIDDLETIER}/resourcequotas$",
        status=200,
        body={"kind": "List", "apiVersion": "v1", "metadata": {}, "items": [odd]},
        times=None,
    )
    result, report = cluster.run()
    assert result.exit_code == 0
    assert sum(scheduled(report).values()) == 4


# --- dry runs --------------------------------------------------------------------------------------


def test_a_dry_run_reads_the_cluster_writes_nothing_and_plans_what_the_run_creates(
    cluster: Harness, tmp_path: Path
) -> None:
    packages = cluster.graph([f"p{i}" for i in range(4)])
    live = [solver_item(SOLVERS[0], packages[0]).job_name, analyzer_item(packages[1]).job_name]
    cluster.fake.add(owned_job(live[0]))
    cluster.fake.add(owned_job(live[1], kind=ANALYZER))
    out = tmp_path / "plan"

    dry, plan_report = cluster.run("--dry-run", "--output-dir", str(out), "--max-in-flight", "9")

    assert dry.exit_code == 0
    assert plan_report["dry_run"] is True
    assert cluster.writes() == [], "a dry run writes nothing"
    paths = {r.path for r in cluster.fake.requests}
    assert f"/apis/template.openshift.io/v1/namespaces/{INFRA}/templates" in paths
    assert f"/apis/batch/v1/namespaces/{MIDDLETIER}/jobs" in paths
    planned = set(manifests(out))
    assert len(planned) == 7
    assert not planned & set(live)
    assert plan_report["in_flight"] == {"solver": 1, "package-analyzer": 1}

    real, report = cluster.run("--max-in-flight", "9")

    assert real.exit_code == 0
    assert set(cluster.created()) == planned
    assert len(cluster.created()) == 7
    assert report["totals"] == plan_report["totals"]
    for name, job in manifests(out).items():  # the manifests are what was sent
        sent = next(r.body for r in cluster.fake.requests_for("POST", JOBS_PATH) if r.body["metadata"]["name"] == name)
        assert sent == job


def test_a_dry_run_from_a_template_folder_with_middletier_reads_only_middletier(cluster: Harness) -> None:
    cluster.graph(["flask"])
    cluster.fake.add(owned_job(analyzer_item("flask").job_name, kind=ANALYZER))
    folder = str(EXAMPLE_TEMPLATES)
    result, report = cluster.run("--dry-run", "--template-dir", folder, env={"THOTH_INFRA_NAMESPACE": ""})
    assert result.exit_code == 0
    assert report["totals"]["package-analyzer"]["skipped"] == {"in-flight": 1}
    assert {r.path for r in cluster.fake.requests} == {
        f"/apis/batch/v1/namespaces/{MIDDLETIER}/jobs",
        f"/api/v1/namespaces/{MIDDLETIER}/resourcequotas",
        f"/api/v1/namespaces/{MIDDLETIER}/configmaps/graph-refresh-ledger",
        f"/api/v1/namespaces/{MIDDLETIER}/configmaps/graph-refresh-requests",
    }
    assert cluster.writes() == [], "a dry run writes no Job and no ledger"

    cluster.fake.inject(method="GET", path=JOBS_PATH, status=500, times=None)
    failed, report = cluster.run("--dry-run", "--template-dir", str(EXAMPLE_TEMPLATES))
    assert failed.exit_code == 1
    assert report["exit_code"] == 1
    assert "list jobs.batch in namespace 'middletier'" in failed.stderr
    first_run = 3  # the Jobs that did not succeed, and two Tables of those that did
    assert len(cluster.fake.requests_for("GET", JOBS_PATH)) == first_run + backoff.READS.attempts


@pytest.mark.parametrize("mode", [[], ["--server-dry-run"]])
def test_an_output_folder_without_a_dry_run_is_a_usage_error(mode: list[str], cluster: Harness, tmp_path: Path) -> None:
    cluster.graph(["flask"])
    result, report = cluster.run(*mode, "--output-dir", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == (
        "Error: THOTH_GRAPH_REFRESH_OUTPUT_DIR (--output-dir) is for a dry run (--dry-run), which writes manifests "
        "instead of creating Jobs: add --dry-run, or unset it"
    )
    assert report == {}
    assert cluster.fake.requests == [], "nothing was done"
    assert not (tmp_path / "out").exists()


def test_a_dry_run_without_middletier_says_its_plan_ignores_the_cluster_state(cluster: Harness) -> None:
    cluster.graph(["flask"])
    cluster.run()  # every item now has a live Job
    result, report = cluster.run("--dry-run", env={"THOTH_MIDDLETIER_NAMESPACE": ""})
    assert result.exit_code == 0
    assert sum(scheduled(report).values()) == 4, "nothing in flight was read"
    assert re.search(r"WARNING .*Dry run without THOTH_MIDDLETIER_NAMESPACE: Jobs in flight", result.stderr)


def test_a_dry_run_from_a_template_folder_contacts_no_cluster(cluster: Harness) -> None:
    cluster.graph(["flask"])
    cluster.fake.clear_requests()
    env = {"THOTH_MIDDLETIER_NAMESPACE": "", "THOTH_INFRA_NAMESPACE": ""}
    result, report = cluster.run("--dry-run", "--template-dir", str(EXAMPLE_TEMPLATES), env=env)
    assert result.exit_code == 0
    assert sum(scheduled(report).values()) == 4
    assert cluster.fake.requests == []


# --- fairness across runs, and a store failing mid-run --------------------------------------------


def test_streams_that_got_no_slot_last_run_go_first_next_run(cluster: Harness) -> None:
    cluster.graph(["a", "b"])
    _, first = cluster.run("--max-in-flight", "2")
    assert sorted(first["solvers"][s]["scheduled"] for s in SOLVERS[:2]) == [1, 1]
    for name in cluster.jobs():
        cluster.fake.set_job_status(MIDDLETIER, name, "Complete")  # done; graph sync has not caught up yet

    _, second = cluster.run("--max-in-flight", "2")

    assert second["solvers"][SOLVERS[2]]["scheduled"] == 1
    assert second["totals"]["package-analyzer"]["scheduled"] == 1
    assert {cluster.jobs()[n]["metadata"]["labels"]["thoth-station.ninja/kind"] for n in cluster.created()[2:]} == {
        SOLVER,
        ANALYZER,
    }


def test_a_store_failing_mid_run_still_counts_every_create_it_started(cluster: Harness, tmp_path: Path) -> None:
    graph = {"package_versions": [version(f"p{i}", "1.0") for i in range(4)]}
    with FakeDgraph(graph) as dgraph:
        # First pages of the candidates fine, then fails (by cursor: the store reads next pages ahead, in the
        # background); the graph's index list, read first, is not what this is about.
        dgraph.inject(
            grpc.StatusCode.INTERNAL,
            details="disk on fire",
            match=lambda r: r.vars.get("$after") not in (None, "0x0") and "query indexes" not in r.query,
        )
        result, report = cluster.run("--workers", "2", env={"GRAPH_SERVICE_HOST": dgraph.host})
    assert result.exit_code == 1
    assert "disk on fire" in result.stderr
    assert report["exit_code"] == 1  # the report is balanced (checked by the harness) and complete:
    assert sum(scheduled(report).values()) == len(cluster.jobs()) > 0
    assert report["totals"]["solver"]["backlog"] == 12, "the backlog is counted however far the run got"


def test_a_store_failing_on_any_streams_first_page_creates_nothing(cluster: Harness) -> None:
    graph = {"package_versions": [version(f"p{i}", "1.0") for i in range(4)]}
    with FakeDgraph(graph) as dgraph:
        # The third stream's first page (by cursor: the store reads next pages ahead, in the background).
        dgraph.inject(
            grpc.StatusCode.INTERNAL, details="index corrupt", after=2, match=lambda r: r.vars.get("$after") == "0x0"
        )
        result, report = cluster.run(env={"GRAPH_SERVICE_HOST": dgraph.host})
    assert result.exit_code == 1
    assert "index corrupt" in result.stderr
    assert cluster.created() == []
    assert report["exit_code"] == 1


def test_without_jobs_left_from_earlier_runs_the_order_rotates_hourly(cluster: Harness) -> None:
    cluster.graph(["a", "b", "c"])
    served: set[str] = set()
    for hour in range(3):
        _, report = cluster.run("--max-in-flight", "2", now=lambda hour=hour: hour * 3600.0 + 59)
        served |= {s for s, c in report["solvers"].items() if c["scheduled"]}
        served |= {ANALYZER} if report["totals"]["package-analyzer"]["scheduled"] else set()
        for name in cluster.jobs():  # finished and removed before the next run (a short TTL)
            cluster.fake.delete("jobs", MIDDLETIER, name)
    assert served == {*SOLVERS, ANALYZER}


# --- interruption ---------------------------------------------------------------------------------


def signal_run(
    cluster: Harness, tmp_path: Path, ready: Callable[[], bool], *signals: signal.Signals
) -> tuple[int, str, Obj]:
    """Run app.py in a child process, send ``signals`` once ``ready()``; return its code, stderr (unwrapped) and
    report."""
    report_path = tmp_path / "report.json"
    command = [sys.executable, str(ROOT / "app.py"), "--report", str(report_path)]
    with subprocess.Popen(command, env={**os.environ, **cluster.env}, stderr=subprocess.PIPE, text=True) as process:
        try:
            while not ready() and process.poll() is None:
                time.sleep(0.05)
            for number in signals:
                process.send_signal(number)
                time.sleep(1)  # the child's handler runs before the next signal arrives
            _, stderr = process.communicate(timeout=30)  # well before any Retry-After below runs out
        except BaseException:
            process.kill()
            raise
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    return process.returncode, unwrapped(stderr), report


@pytest.mark.timeout(90)
@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_ends_the_run_early_with_what_was_done_counted_and_reported(
    signal_number: signal.Signals, cluster: Harness, tmp_path: Path
) -> None:
    """The CronJob's deadline or a pod deletion sends SIGTERM: stop creating, count, report, exit 1."""
    cluster.graph([f"pkg{i}" for i in range(40)])  # 160 Jobs: far more than the run gets to
    held = cluster.fake.inject(method="POST", path=JOBS_PATH, status=429, headers={"Retry-After": "50"})
    cluster.fake.inject(method="POST", path=JOBS_PATH, status=None, delay=0.2, times=None)

    code, stderr, report = signal_run(cluster, tmp_path, lambda: len(cluster.jobs()) >= 3, signal_number)

    assert code == 1, stderr
    assert f"{signal_number.name} received: no more Jobs are created" in stderr
    assert_balanced(report)
    assert report["exit_code"] == 1
    assert f"interrupted by {signal_number.name}" in report["error"]
    assert held.hits == 1, "one create waited out a Retry-After of 50 s: it gave up at once"
    assert report["failures"]
    assert {(failure["status"], failure["reason"]) for failure in report["failures"]} == {
        (None, "not sent (interrupted)")
    }
    assert re.search(r"Could not create Job \S+: not sent \(interrupted\)\n", stderr), stderr
    assert not {failure["job"] for failure in report["failures"]} & set(cluster.jobs())
    assert sum(scheduled(report).values()) == len(cluster.jobs()) < 160


@pytest.mark.timeout(90)
def test_a_signal_during_a_read_retry_ends_the_run_without_another_request(cluster: Harness, tmp_path: Path) -> None:
    cluster.graph(["flask"])
    cluster.fake.inject(method="GET", path=JOBS_PATH, status=429, headers={"Retry-After": "50"}, times=None)

    def listed() -> int:
        return len(cluster.fake.requests_for("GET", JOBS_PATH))

    code, stderr, report = signal_run(cluster, tmp_path, lambda: listed() >= 1, signal.SIGTERM)

    assert code == 1, stderr
    assert report["error"] == "interrupted by SIGTERM: the run was interrupted while it waited to retry a read"
    assert listed() == 1
    assert cluster.created() == []


@pytest.mark.timeout(90)
def test_a_second_signal_of_another_kind_ends_the_process_at_once(cluster: Harness, tmp_path: Path) -> None:
    cluster.graph(["flask"])
    cluster.fake.inject(method="POST", path=JOBS_PATH, status=None, delay=40, times=None)  # a create hangs

    code, _, report = signal_run(cluster, tmp_path, lambda: bool(cluster.created()), signal.SIGINT, signal.SIGTERM)

    assert code == -signal.SIGTERM
    assert report == {}


# --- progress while creating ---------------------------------------------------------------------


class FakeTime:
    """A monotonic clock that moves only when the run waits (the rate limit's and the retries' sleeps)."""

    def __init__(self) -> None:
        self.now = 1_000.0
        self._lock = threading.Lock()

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


PROGRESS = re.compile(r"Progress after ([\d.]+)s: (.*)")


@pytest.mark.parametrize(("mode", "created"), [("--no-server-dry-run", "created"), ("--server-dry-run", "admitted")])
def test_without_a_terminal_creating_at_5_qps_logs_progress_every_interval(
    mode: str, created: str, cluster: Harness
) -> None:
    """547 Jobs at the default 5 requests per second take 107 s: a line every interval says how far it is."""
    cluster.graph([f"pkg{i:03d}" for i in range(137)])  # 548 Jobs: 3 solvers and the analyzer
    time_ = FakeTime()
    env = {"THOTH_GRAPH_REFRESH_QPS": "5"}
    result, report = cluster.run(
        mode, "--workers", "1", env=env, sleep=time_.sleep, clock=time_.clock, progress_every=10.0
    )

    assert result.exit_code == 0, result.stderr
    assert sum(scheduled(report).values()) == 548
    lines = PROGRESS.findall(result.stderr)
    after = [float(seconds) for seconds, _ in lines]
    assert 107 < time_.now - 1_000 < 108  # (548 - a burst of 10) creates, 0.2 s apart
    assert len(lines) == 10
    assert 10 <= after[0] < 10.3
    assert all(10 <= b - a < 10.3 for a, b in itertools.pairwise(after)), "never silent longer, never more often"
    counts = [
        re.search(rf"{created} (\d+), already present 0, failed 0, (\d+) of (\d+) planned", text) for _, text in lines
    ]
    assert all(counts), lines
    done = [int(match.group(1)) for match in counts if match]
    assert done == sorted(done)
    assert done[0] > 0
    assert done[-1] < 548
    assert all(int(m.group(2)) <= 2 and int(m.group(3)) - int(m.group(1)) == int(m.group(2)) for m in counts if m)
    rate = re.search(r"\(answered ([\d.]+)/s\)", lines[-1][1])
    assert rate is not None, lines[-1]
    assert 4.9 <= float(rate.group(1)) <= 5.5, lines[-1]
    assert re.search(r"examined [\d,]+ \([\d.,]+/s\)", lines[-1][1]), lines[-1]


@pytest.mark.timeout(60)
def test_without_a_terminal_a_run_waiting_for_answers_is_never_silent_longer_than_the_interval(
    cluster: Harness,
) -> None:
    cluster.graph(["flask", "numpy"])  # 8 Jobs, 4 at a time, each answered after 1.5 s
    cluster.fake.inject(method="POST", path=JOBS_PATH, status=None, delay=1.5, times=None)

    result, report = cluster.run(progress_every=0.4)

    assert result.exit_code == 0
    assert sum(scheduled(report).values()) == 8
    after = [float(seconds) for seconds, _ in PROGRESS.findall(result.stderr)]
    assert len(after) >= 5, result.stderr
    gaps = [b - a for a, b in itertools.pairwise([0.0, *after])]
    assert all(0.35 <= gap < 1.2 for gap in gaps), gaps
    assert "of 8 planned so far not answered yet" in result.stderr
    quiet, _ = cluster.run("--quiet", progress_every=0.4)
    assert quiet.exit_code == 0
    assert "Progress after" not in quiet.stderr
    assert "INFO" in quiet.stderr


@pytest.mark.timeout(90)
def test_on_a_terminal_creating_shows_a_live_line_erased_at_the_end(cluster: Harness) -> None:
    cluster.graph([f"pkg{i}" for i in range(5)])  # 20 Jobs, one at a time, each answered after 0.15 s
    rejected = analyzer_item("pkg4").job_name  # among the last: its warning comes while the live line shows
    cluster.fake.inject(method="POST", path=JOBS_PATH, status=422, delay=0.15, match_name=rejected)
    cluster.fake.inject(method="POST", path=JOBS_PATH, status=None, delay=0.15, times=None)

    shown = run_app(["--workers", "1"], {**cluster.env, "COLUMNS": "200"}, terminal=True, code=3)

    pattern = (
        r"\r\x1b\[K\[\d+s\] created (\d+), present 0, failed [01], \d+ of \d+ planned unanswered, [\d.]+/s \| examined"
    )
    live = re.findall(pattern, shown)
    assert len(live) >= 3, shown
    assert [int(n) for n in live] == sorted(int(n) for n in live), shown
    summary = shown.index("run finished")
    assert shown.rindex("\r\x1b[K", 0, summary) > shown.rindex("| examined", 0, summary), "erased before the summary"
    assert "Progress after" not in shown
    assert len(cluster.jobs()) == 19
    warning = shown.index(f"Could not create Job {rejected}: 422")
    assert shown.rindex("| examined", 0, warning) < shown.rindex("\r\x1b[K", 0, warning), "the log line is not glued on"
    assert re.search(r"\| examined [^\r\n]*\d{4}-\d\d-\d\d \d\d:", shown) is None, "no log line after a live line"


def test_a_graph_whose_index_list_cannot_be_read_is_a_warning_and_the_run_goes_on(cluster: Harness) -> None:
    graph = {"package_versions": [version(f"p{i}", "1.0") for i in range(4)]}
    with FakeDgraph(graph) as dgraph:
        dgraph.inject(grpc.StatusCode.INTERNAL, details="index list lost", match=lambda r: "query indexes" in r.query)
        result, report = cluster.run(env={"GRAPH_SERVICE_HOST": dgraph.host})
    assert result.exit_code == 0, result.stderr
    assert "The graph's indexes could not be read" in " ".join(result.stderr.split())
    assert sum(scheduled(report).values()) == len(cluster.jobs()) > 0
