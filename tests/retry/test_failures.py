"""Reading how a Job ended (graph_refresh/retry/failures.py): the cause of a failed Job and its pods, when it
failed, which attempt it was, and the resources it ran with; never an exception on a malformed object."""

from __future__ import annotations

from typing import Any

import pytest

from graph_refresh.config import RetrySettings
from graph_refresh.items import SOLVER, Candidate, WorkItem
from graph_refresh.retry.failures import FailedJob, attempt_of, cause_of, pods_by_job, resources_of
from graph_refresh.retry.model import AttemptResources, Cause, ContainerMemory, ItemId
from tests.helpers import LISTED_JOB, failed_conditions, listed_job, listed_pod, terminated_state

T0 = 1_714_557_600.0  # 2024-05-01T10:00:00Z
HOUR = 3_600
DAY = 86_400
NOW = T0 + 0.5  # a run's clock, with the fraction a real clock has
ITEM = ItemId.of(WorkItem(SOLVER, "solver-fedora-31-py38", Candidate("flask", "1.1.2", "https://pypi.org/simple")))
POLICY = RetrySettings()


MALFORMED_PODS: list[Any] = [
    None,
    "pod",
    {},
    {"status": None},
    {"status": {"conditions": "Ready", "containerStatuses": {"name": "solver"}}},
    {"status": {"conditions": [None, 3], "containerStatuses": [None, {"state": "terminated"}, {"lastState": []}]}},
    {"status": {"initContainerStatuses": [{"state": {"terminated": None}}], "reason": ["Evicted"]}},
]


DISRUPTION = [{"type": "DisruptionTarget", "status": "True", "reason": "PreemptionByScheduler"}]


@pytest.mark.parametrize(
    ("conditions", "pods", "cause"),
    [
        (None, [listed_pod()], None),  # in flight: no status conditions yet
        ([{"type": "Complete", "status": "True"}], [listed_pod()], None),
        ([{"type": "Failed", "status": "False"}], [listed_pod()], None),
        (failed_conditions(), [listed_pod(state=terminated_state("OOMKilled"))], Cause.OOM),
        (failed_conditions(), [listed_pod(last_state=terminated_state("OOMKilled"))], Cause.OOM),
        (failed_conditions(), [listed_pod(init_state=terminated_state("OOMKilled"))], Cause.OOM),
        (failed_conditions(), [listed_pod(), listed_pod(state=terminated_state("OOMKilled"))], Cause.OOM),
        (
            failed_conditions(),
            [listed_pod(conditions=DISRUPTION, state=terminated_state("OOMKilled"))],
            Cause.DISRUPTED,
        ),  # first match
        (
            failed_conditions(),
            [listed_pod(state=terminated_state("OOMKilled")), listed_pod(conditions=DISRUPTION)],
            Cause.DISRUPTED,
        ),
        (failed_conditions(), [listed_pod(conditions=[{"type": "DisruptionTarget", "status": "False"}])], Cause.ERROR),
        (failed_conditions(), [listed_pod(reason="Evicted")], Cause.DISRUPTED),
        (failed_conditions(), [listed_pod(reason="Preempted")], Cause.DISRUPTED),
        (failed_conditions(), [listed_pod(reason="Shutdown")], Cause.DISRUPTED),
        (failed_conditions(), [listed_pod(reason="NodeShutdown")], Cause.DISRUPTED),
        (failed_conditions(), [listed_pod(reason="UnexpectedAdmissionError")], Cause.ERROR),
        (failed_conditions("DeadlineExceeded"), [listed_pod()], Cause.DEADLINE),
        (failed_conditions("DeadlineExceeded"), [], Cause.DEADLINE),
        (failed_conditions("DeadlineExceeded"), [listed_pod(state=terminated_state("OOMKilled"))], Cause.OOM),
        (failed_conditions(), [listed_pod()], Cause.ERROR),
        (failed_conditions(), [], Cause.ERROR),  # pods gone
        (failed_conditions(reason=None), [listed_pod(state=terminated_state("Completed", 0))], Cause.ERROR),  # type: ignore[arg-type]
    ],
)
def test_classify_finds_the_cause_first_match_wins(
    conditions: list[dict[str, Any]] | None, pods: list[dict[str, Any]], cause: Cause | None
) -> None:
    result = cause_of(listed_job(conditions=conditions), pods, now=NOW)
    assert (result.cause if result else None) == cause
    if result is not None:
        assert result.name == LISTED_JOB
        assert result.failed_at == T0


def test_classify_says_what_decided() -> None:
    oom = cause_of(
        listed_job(conditions=failed_conditions()), [listed_pod(last_state=terminated_state("OOMKilled"))], now=NOW
    )
    assert oom == FailedJob(LISTED_JOB, Cause.OOM, T0, f"pod {LISTED_JOB}-x7k2p container solver OOMKilled", "solver")
    gone = cause_of(listed_job(conditions=failed_conditions()), [], now=NOW)
    assert gone == FailedJob(LISTED_JOB, Cause.ERROR, T0, "Failed: BackoffLimitExceeded (pods gone)")


@pytest.mark.parametrize(
    ("at", "failed_at"),
    [
        ("2024-05-01T10:00:00Z", T0),
        ("2024-05-01T12:00:00+02:00", T0),
        (None, T0),  # the run's clock, whole seconds
        ("", T0),
        ("soon", T0),
        (12345, T0),
    ],
)
def test_the_failure_time_is_the_failed_conditions_else_the_runs(at: object, failed_at: float) -> None:
    conditions = failed_conditions(at=None)
    if at is not None:
        conditions[0]["lastTransitionTime"] = at
    result = cause_of(listed_job(conditions=conditions), [], now=NOW)
    assert result is not None
    assert result.failed_at == failed_at


@pytest.mark.parametrize(
    "broken",
    [
        {},
        {"status": None},
        {"status": {"conditions": None}},
        {"status": {"conditions": {"type": "Failed"}}},
        {"status": {"conditions": [None, "Failed", {"type": "Failed"}]}},
        {"metadata": None, "status": {"conditions": [{"type": "Failed", "status": "True", "reason": 7}]}},
    ],
)
def test_classify_never_raises_on_malformed_objects(broken: dict[str, Any]) -> None:
    result = cause_of(broken, MALFORMED_PODS, now=NOW)
    assert result is None or result.cause is Cause.ERROR


def test_malformed_pods_beside_a_real_one_do_not_hide_its_cause() -> None:
    pods = [*MALFORMED_PODS, listed_pod(state=terminated_state("OOMKilled"))]
    result = cause_of(listed_job(conditions=failed_conditions()), pods, now=NOW)
    assert result is not None
    assert result.cause is Cause.OOM


def test_pods_are_grouped_by_their_job_name_label() -> None:
    new = listed_pod(labels={"batch.kubernetes.io/job-name": "a", "job-name": "a"})
    old = listed_pod(labels={"job-name": "b"})
    stray = listed_pod(labels={"app": "other"})
    unlabelled = {"metadata": {"name": "p", "labels": None}}
    assert pods_by_job([new, old, stray, unlabelled, None, "pod", old]) == {"a": [new], "b": [old, old]}


@pytest.mark.parametrize(
    ("label", "attempt"),
    [("2", 2), ("12", 12), (None, 1), ("0", 1), ("-2", 1), ("two", 1), ("\u0663", 1), ("", 1)],
)
def test_the_attempt_number_is_read_from_the_label(label: str | None, attempt: int) -> None:
    assert attempt_of(listed_job(attempt=label)) == attempt


def test_attempt_of_a_malformed_job_is_one() -> None:
    assert attempt_of({"metadata": {"labels": ["x"]}}) == 1
    assert attempt_of(None) == 1


# --- resources ---------------------------------------------------------------------------------------------


def test_resources_of_reads_memory_per_container_and_both_deadlines() -> None:
    rendered = listed_job(memory="1Gi", deadline=3600)
    pod_spec = rendered["spec"]["template"]["spec"]
    pod_spec["activeDeadlineSeconds"] = 1800
    pod_spec["initContainers"] = [{"name": "fetch", "resources": {"limits": {"memory": 134217728}}}]
    pod_spec["containers"].append({"name": "sidecar", "resources": {"requests": {"cpu": "100m"}}})
    assert resources_of(rendered) == AttemptResources(
        memory={"fetch": ContainerMemory(None, "134217728"), "solver": ContainerMemory("1Gi", "1Gi")},
        deadline_seconds=3600,
        pod_deadline_seconds=1800,
    )


@pytest.mark.parametrize(
    "broken",
    [
        {},
        {"spec": None},
        {"spec": {"activeDeadlineSeconds": "3600", "template": {"spec": {"containers": "solver"}}}},
        {"spec": {"activeDeadlineSeconds": True, "template": {"spec": {"activeDeadlineSeconds": -5}}}},
        {
            "spec": {
                "template": {"spec": {"containers": [None, {"name": 7, "resources": {"limits": {"memory": "1Gi"}}}]}}
            }
        },
        {"spec": {"template": {"spec": {"containers": [{"name": "a", "resources": {"limits": {"memory": "NaN"}}}]}}}},
        {"spec": {"template": {"spec": {"containers": [{"name": "a", "resources": {"limits": {"memory": True}}}]}}}},
        {"spec": {"template": {"spec": {"containers": [{"name": "a", "resources": {"limits": "1Gi"}}]}}}},
    ],
)
def test_resources_of_a_malformed_job_reads_as_unset(broken: dict[str, Any]) -> None:
    assert resources_of(broken) == AttemptResources()
