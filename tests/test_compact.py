"""A compact Job or pod reads exactly as the whole one: the same cluster view, the same causes, the same
resources, for objects shaped as OpenShift lists them and for malformed ones; and it is small."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable
from typing import Any

import pytest

from graph_refresh import compact
from graph_refresh.items import ANALYZER, SOLVER, Candidate, WorkItem
from graph_refresh.owned import OwnedJobs, build_view, job_state
from graph_refresh.retry.failures import attempt_of, cause_of, pods_by_job, resources_of
from graph_refresh.vocabulary import JobState

from .fakes import shapes
from .fakes.kube import RESOURCES, make_table

Obj = dict[str, Any]
PYPI = "https://pypi.org/simple"
NOW = 1_800_000_000.0
AT = "2027-01-15T07:10:00Z"  # 50 minutes before NOW


def item(package: str, attempt: int = 1, kind: str = SOLVER) -> WorkItem:
    solver = "solver-fedora-34-py39" if kind == SOLVER else None
    return WorkItem(SOLVER if kind == SOLVER else ANALYZER, solver, Candidate(package, "1.0", PYPI), attempt)


def failed_job(package: str, reason: str = "BackoffLimitExceeded", **base: Any) -> Obj:
    return shapes.openshift_job(shapes.base_job(item(package), **base), state="failed", reason=reason, at=AT)


def namespace() -> tuple[list[Obj], list[Obj]]:
    """Jobs and pods as OpenShift lists them: every state, every cause, many containers, and pods of
    Jobs that did not fail."""
    running = shapes.openshift_job(shapes.base_job(item("running")), state="running")
    complete = shapes.openshift_job(shapes.base_job(item("complete", kind=ANALYZER)), state="complete", at=AT)
    oom = failed_job("oom", containers=3, memory="3Gi")
    oom["spec"]["template"]["spec"]["initContainers"] = [{"name": "fetch", "resources": {"limits": {"memory": "64Mi"}}}]
    evicted, disrupted = failed_job("evicted"), failed_job("disrupted")
    deadline, error, gone = failed_job("deadline", "DeadlineExceeded"), failed_job("error"), failed_job("gone")
    retried = shapes.openshift_job(shapes.base_job(item("oom", attempt=2), memory="6Gi"), state="failed", at=AT)
    killed = {"sidecar-2": shapes.terminated("OOMKilled", 137, AT)}
    disruption = {"type": "DisruptionTarget", "status": "True", "reason": "PreemptionByScheduler"}
    pods = [
        shapes.openshift_pod(running, phase="Running"),
        shapes.openshift_pod(complete, phase="Succeeded"),
        shapes.openshift_pod(oom, phase="Failed", suffix="aaaaa"),
        shapes.openshift_pod(oom, phase="Failed", last_states=killed, suffix="bbbbb"),
        shapes.openshift_pod(evicted, phase="Failed", reason="Evicted"),
        shapes.openshift_pod(disrupted, phase="Failed", conditions=[disruption]),
        shapes.openshift_pod(deadline, phase="Failed"),
        shapes.openshift_pod(error, phase="Failed"),
        shapes.openshift_pod(retried, phase="Failed", states={"solver": shapes.terminated("OOMKilled", 137, AT)}),
    ]
    return [running, complete, oom, evicted, disrupted, deadline, error, gone, retried], pods


MALFORMED_JOBS: list[Obj] = [
    {},
    {"metadata": None, "status": {"conditions": [{"type": "Failed", "status": "True", "reason": 7}]}},
    {"metadata": {"name": "odd-1", "labels": ["x"]}, "status": {"conditions": {"type": "Failed"}}},
    {"metadata": {"name": "odd-2", "labels": None}, "status": {"conditions": [None, "Failed", {"type": "Failed"}]}},
    {
        "metadata": {"name": 5},
        "status": {"conditions": [{"type": "Failed", "status": "True", "lastTransitionTime": 3}]},
    },
    {
        "metadata": {"name": "odd-3", "labels": {"thoth-station.ninja/attempt": "x", "thoth-station.ninja/kind": 4}},
        "spec": {"template": {"spec": {"containers": {"name": "x"}, "initContainers": [None, {"resources": "1Gi"}]}}},
        "status": {"conditions": [{"type": "Failed", "status": "True"}]},
    },
    {
        "metadata": {"name": "odd-4", "annotations": "x"},
        "spec": {"activeDeadlineSeconds": "60", "template": None},
        "status": {"conditions": [{"type": "Complete", "status": "False"}, {"type": "Failed", "status": "True"}]},
    },
]
MALFORMED_PODS: list[Obj] = [
    {},
    {"status": None, "metadata": {"labels": {"job-name": "odd-1"}}},
    {"metadata": {"labels": {"job-name": "odd-2"}}, "status": {"conditions": "Ready", "containerStatuses": {}}},
    {
        "metadata": {"name": ["p"], "labels": {"job-name": "odd-3"}},
        "status": {"conditions": [None, 3], "containerStatuses": [None, {"state": "terminated"}, {"lastState": []}]},
    },
    {
        "metadata": {"labels": {"batch.kubernetes.io/job-name": "odd-4", "job-name": "other"}},
        "status": {"initContainerStatuses": [{"state": {"terminated": None}}], "reason": ["Evicted"]},
    },
]


def view_of(jobs: Iterable[Obj], pods: list[Obj]) -> tuple[OwnedJobs, list[str]]:
    selectors: list[str] = []

    def listed(selector: str) -> list[Obj]:
        selectors.append(selector)
        return pods

    return build_view(jobs, listed, [], now=NOW), selectors


@pytest.mark.parametrize("which", ["OpenShift-shaped", "malformed", "both"])
def test_the_view_of_compact_objects_is_the_view_of_whole_ones(which: str) -> None:
    jobs, pods = namespace()
    if which != "OpenShift-shaped":
        jobs, pods = (
            (MALFORMED_JOBS, MALFORMED_PODS) if which == "malformed" else (jobs + MALFORMED_JOBS, pods + MALFORMED_PODS)
        )
    before = copy.deepcopy((jobs, pods))
    whole, asked = view_of(jobs, pods)
    cut, asked_cut = view_of((compact.job(job) for job in jobs), [compact.pod(pod) for pod in pods])
    assert cut == whole
    assert asked_cut == asked
    assert (jobs, pods) == before, "the listed objects are not changed"
    if which == "OpenShift-shaped":  # the causes are all there, so the comparison is not of empty views
        causes = sorted(str(f.failed.cause) for failures in whole.failures.values() for f in failures)
        assert causes == ["deadline", "disrupted", "disrupted", "error", "error", "oom", "oom"]
        assert whole.live == {"solver": 1}
        assert len(whole.latest) == 8


@pytest.mark.parametrize("job", [*namespace()[0], *MALFORMED_JOBS])
def test_each_reader_reads_a_compact_job_as_the_whole_one(job: Obj) -> None:
    small = compact.job(job)
    assert job_state(small) == job_state(job)
    assert attempt_of(small) == attempt_of(job)
    assert cause_of(small, [], now=NOW) == cause_of(job, [], now=NOW)
    if job_state(job) is JobState.FAILED:  # what a Job ran with is read only to learn from its failure
        assert resources_of(small) == resources_of(job)
    else:
        metadata = small.get("metadata")
        assert set(small) <= {"metadata", "status"}
        assert not isinstance(metadata, dict) or set(metadata) <= {"name", "labels"}


@pytest.mark.parametrize("pod", [*namespace()[1], *MALFORMED_PODS])
def test_each_reader_reads_a_compact_pod_as_the_whole_one(pod: Obj) -> None:
    job = failed_job("any")
    small = compact.pod(pod)
    assert cause_of(job, [small], now=NOW) == cause_of(job, [pod], now=NOW)
    assert pods_by_job([small]).keys() == pods_by_job([pod]).keys()


def test_compact_objects_are_a_small_fraction_of_whole_ones() -> None:
    jobs, pods = namespace()
    for whole, small in [(job, compact.job(job)) for job in jobs] + [(pod, compact.pod(pod)) for pod in pods]:
        assert len(json.dumps(small)) * 8 < len(json.dumps(whole)), json.dumps(small)
    assert 5_000 < len(shapes.compact(jobs[0])) < 8_000, "a Job is about 6 KB of JSON"
    assert 8_000 < len(shapes.compact(pods[0])) < 12_000, "a pod about 10 KB"


def test_repeated_texts_are_shared_and_emptied_objects_left_out() -> None:
    first, second = failed_job("one"), failed_job("two")
    cut_first, cut_second = compact.job(json.loads(json.dumps(first))), compact.job(json.loads(json.dumps(second)))
    reason = [c["reason"] for c in (cut_first["status"]["conditions"][0], cut_second["status"]["conditions"][0])]
    assert reason[0] == reason[1] == "BackoffLimitExceeded"
    assert reason[0] is reason[1]
    assert cut_first["metadata"]["name"] is not cut_second["metadata"]["name"]
    running = compact.job(shapes.openshift_job(shapes.base_job(item("running")), state="running"))
    assert "status" not in running, "a running Job's status holds nothing the view reads"
    assert [c["type"] for c in cut_first["status"]["conditions"]] == ["Failed"], "not FailureTarget"


# --- the rows of a Table of the Jobs that succeeded -------------------------------------------------------------


def succeeded_jobs() -> list[Obj]:
    """Jobs that succeeded, as OpenShift lists them: first attempts of a solver and the analyzer, a retry, a Job
    of an earlier release (no attempt label), and one whose Complete condition the Job controller has not
    written yet (its pod succeeded; Kubernetes 1.31 first writes SuccessCriteriaMet)."""
    first = shapes.openshift_job(shapes.base_job(item("first")), state="complete", at=AT)
    analyzed = shapes.openshift_job(shapes.base_job(item("analyzed", kind=ANALYZER)), state="complete", at=AT)
    retried = shapes.openshift_job(shapes.base_job(item("retried", attempt=2)), state="complete", at=AT)
    legacy = shapes.openshift_job(shapes.base_job(item("legacy")), state="complete", at=AT)
    del legacy["metadata"]["labels"]["thoth-station.ninja/attempt"]
    met = shapes.openshift_job(shapes.base_job(item("met")), state="complete", at=AT)
    met["status"]["conditions"] = [{"type": "SuccessCriteriaMet", "status": "True", "lastTransitionTime": AT}]
    return [first, analyzed, retried, legacy, met]


def read_rows(jobs: list[Obj], include_object: str, *, status_column: bool) -> list[Obj | str]:
    """``jobs`` as the API server's Table rows, read by ``compact.table_rows``."""
    table = make_table(RESOURCES["jobs"], jobs, {}, include_object=include_object, job_status_column=status_column)
    read = compact.table_rows([column["name"] for column in table["columnDefinitions"]])
    return [read(json.loads(json.dumps(row))) for row in table["rows"]]


@pytest.mark.parametrize("status_column", [False, True], ids=["kubernetes-1.15", "kubernetes-1.30"])
@pytest.mark.parametrize("keep_completed", [False, True], ids=["", "pacing"])
def test_the_view_of_table_rows_is_the_view_of_whole_jobs(status_column: bool, keep_completed: bool) -> None:
    """First attempts by name alone, the others with their metadata: the view is the one of the whole Jobs.
    Without a Status column, a Job that succeeded counts as complete (what ``status.successful=1`` selects);
    with one, as the Job controller says."""
    jobs = succeeded_jobs()
    if not status_column:  # without a Status column, only the Complete condition can be told
        jobs = jobs[:-1]
    first_attempts = [job for job in jobs if job["metadata"]["labels"].get("thoth-station.ninja/attempt") == "1"]
    others = [job for job in jobs if job not in first_attempts]
    records = read_rows(first_attempts, "Metadata" if keep_completed else "None", status_column=status_column)
    records += read_rows(others, "Metadata", status_column=status_column)
    assert all(isinstance(record, dict) for record in records)
    reduce = compact.job_keeping_completed if keep_completed else compact.job
    by_rows = build_view(records, lambda _: [], [], now=NOW, keep_completed=keep_completed)  # type: ignore[arg-type]
    whole = build_view([reduce(job) for job in jobs], lambda _: [], [], now=NOW, keep_completed=keep_completed)
    assert by_rows == whole
    assert whole.per_stream == {"solver-fedora-34-py39": len(jobs) - 1, "package-analyzer": 1}
    assert len(whole.completed) == (4 if keep_completed else 0)
    assert whole.live == ({"solver": 1} if status_column else {})


def test_a_row_whose_status_says_failed_asks_for_the_whole_job() -> None:
    failed = failed_job("late", reason="DeadlineExceeded")
    failed["status"]["succeeded"] = 1
    (read,) = read_rows([failed], "None", status_column=True)
    assert read == item("late").job_name
    (read,) = read_rows([failed], "Metadata", status_column=True)
    assert read == item("late").job_name


def test_a_row_keeps_the_times_the_table_prints_and_is_small() -> None:
    job = shapes.openshift_job(shapes.base_job(item("first")), state="complete", at=AT)
    job["status"]["completionTime"] = "2026-12-05T10:05:03Z"  # started at shapes.CREATED, 10:00:00
    (by_name,) = read_rows([job], "None", status_column=False)
    assert isinstance(by_name, dict)
    assert by_name[compact.PRINTED]["Duration"] == "5m3s"
    assert re.fullmatch(r"[0-9]+[smhdy]([0-9]+[smhd])?", by_name[compact.PRINTED]["Age"])
    assert set(by_name) == {"metadata", "status", compact.PRINTED}
    assert len(json.dumps(by_name)) * 15 < len(json.dumps(job))


@pytest.mark.parametrize(
    "row",
    [{}, {"cells": None}, {"cells": [7]}, {"cells": []}, {"object": "x"}, {"object": {"metadata": None}, "cells": []}],
)
def test_a_malformed_row_reads_as_a_job_of_no_one(row: Obj) -> None:
    """As a malformed whole Job reads: no item, so a key of its (missing) name; complete, as selected."""
    read = compact.table_rows(["Name", "Completions", "Duration", "Age"])(row)
    assert isinstance(read, dict)
    view = build_view([read], lambda _: [], [], now=NOW)
    assert list(view.latest.values()) == [(1, JobState.COMPLETE)]
