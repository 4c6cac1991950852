"""Deciding from how Jobs ended (graph_refresh/retry/policy.py): learning a failed Job into the ledger history,
the decision for the next run, and the resources written into the rendered Job."""

from __future__ import annotations

import copy
import subprocess
import sys
from decimal import Decimal
from typing import Any

import pytest

from graph_refresh.config import RetrySettings
from graph_refresh.items import SOLVER, Candidate, WorkItem
from graph_refresh.quantity import Cap
from graph_refresh.retry.failures import FailedJob, attempt_of, cause_of, resources_of
from graph_refresh.retry.model import AttemptResources, Cause, ContainerMemory, ItemId, LedgerEntry
from graph_refresh.retry.policy import Forget, Schedule, Skip, apply, learn, next_attempt
from graph_refresh.vocabulary import SkipReason
from tests.helpers import LISTED_JOB, failed_conditions, listed_job, listed_pod, terminated_state

T0 = 1_714_557_600.0  # 2024-05-01T10:00:00Z
HOUR = 3_600
DAY = 86_400
NOW = T0 + 0.5  # a run's clock, with the fraction a real clock has
ITEM = ItemId.of(WorkItem(SOLVER, "solver-fedora-31-py38", Candidate("flask", "1.1.2", "https://pypi.org/simple")))
POLICY = RetrySettings()


# --- resources of the next attempt ----------------------------------------------------------------------


def test_apply_writes_memory_and_deadlines_into_the_rendered_job() -> None:
    rendered = listed_job(memory="1Gi")
    rendered["spec"]["template"]["spec"]["containers"].append({"name": "sidecar", "image": "s"})
    apply(
        rendered,
        AttemptResources(
            memory={"solver": ContainerMemory("2Gi", "2Gi"), "absent": ContainerMemory("9Gi", "9Gi")},
            deadline_seconds=7200,
            pod_deadline_seconds=3600,
        ),
    )
    containers = rendered["spec"]["template"]["spec"]["containers"]
    assert containers[0]["resources"] == {
        "limits": {"cpu": "1", "memory": "2Gi"},
        "requests": {"cpu": "1", "memory": "2Gi"},
    }
    assert containers[1] == {"name": "sidecar", "image": "s"}
    assert rendered["spec"]["activeDeadlineSeconds"] == 7200
    assert rendered["spec"]["template"]["spec"]["activeDeadlineSeconds"] == 3600


def test_apply_creates_missing_resource_sections() -> None:
    rendered = listed_job(memory=None)
    del rendered["spec"]["template"]["spec"]["containers"][0]["resources"]
    apply(rendered, AttemptResources(memory={"solver": ContainerMemory(limit="2Gi")}))
    assert rendered["spec"]["template"]["spec"]["containers"][0]["resources"] == {"limits": {"memory": "2Gi"}}


def test_apply_never_lowers_what_the_template_now_gives() -> None:
    rendered = listed_job(memory="4Gi", deadline=10_000)
    apply(rendered, AttemptResources(memory={"solver": ContainerMemory("2Gi", "2Gi")}, deadline_seconds=7200))
    assert rendered == listed_job(memory="4Gi", deadline=10_000)


def test_apply_keeps_the_limit_at_least_the_request() -> None:
    rendered = listed_job(memory=None)
    rendered["spec"]["template"]["spec"]["containers"][0]["resources"] = {"requests": {"memory": "4Gi"}}
    apply(rendered, AttemptResources(memory={"solver": ContainerMemory(None, "2Gi")}))
    assert rendered["spec"]["template"]["spec"]["containers"][0]["resources"] == {
        "requests": {"memory": "4Gi"},
        "limits": {"memory": "4Gi"},
    }


def test_apply_of_what_a_job_has_changes_nothing() -> None:
    rendered = listed_job(memory="1536Mi", deadline=600)
    before = copy.deepcopy(rendered)
    apply(rendered, resources_of(rendered))
    assert rendered == before


@pytest.mark.parametrize("broken", [{}, {"spec": None}, {"spec": {"template": {"spec": {"containers": [None, 3]}}}}])
def test_apply_leaves_a_malformed_job_as_it_is(broken: dict[str, Any]) -> None:
    before = copy.deepcopy(broken)
    apply(broken, AttemptResources(memory={"solver": ContainerMemory("2Gi", "2Gi")}))
    assert broken == before
    if not broken.get("spec"):
        apply(broken, AttemptResources(deadline_seconds=60, pod_deadline_seconds=60))
        assert broken == before


# --- history and decision ----------------------------------------------------------------------------------


def memory(text: str | None, *, deadline: int | None = None) -> AttemptResources:
    return AttemptResources(
        memory={} if text is None else {"solver": ContainerMemory(text, text)}, deadline_seconds=deadline
    )


def entry(
    cause: Cause,
    *,
    failures: int = 1,
    attempt: int = 1,
    resources: AttemptResources | None = None,
    failed_at: float = T0,
) -> LedgerEntry:
    return LedgerEntry(ITEM, failures, attempt, cause, failed_at, resources or memory("1Gi", deadline=3600))


@pytest.mark.parametrize(
    ("history", "now", "policy", "decision"),
    [
        (None, NOW, POLICY, Schedule(1, None)),
        (entry(Cause.DISRUPTED, failures=0), NOW, POLICY, Schedule(2, memory("1Gi", deadline=3600), Cause.DISRUPTED)),
        (entry(Cause.OOM), NOW, POLICY, Schedule(2, memory("2Gi", deadline=3600), Cause.OOM)),
        (
            entry(Cause.OOM, failures=2, attempt=2, resources=memory("5Gi")),
            NOW,
            POLICY,
            Schedule(3, memory("8Gi"), Cause.OOM, capped=True),
        ),
        # --max-memory lowered below what the failed attempt had: nothing to grow, so an error's back-off.
        (
            entry(Cause.OOM, resources=memory("8Gi")),
            NOW,
            RetrySettings(max_memory=Cap.parse("4Gi")),
            Skip(SkipReason.FAILED_RECENTLY, T0 + HOUR),
        ),
        (entry(Cause.DEADLINE), NOW, POLICY, Schedule(2, memory("1Gi", deadline=7200), Cause.DEADLINE)),
        (
            entry(Cause.DEADLINE, resources=memory("1Gi", deadline=50_000)),
            NOW,
            POLICY,
            Schedule(2, memory("1Gi", deadline=86_400), Cause.DEADLINE, capped=True),
        ),
        (
            entry(Cause.DEADLINE, resources=memory("1Gi", deadline=86_400)),
            NOW,
            POLICY,
            Skip(SkipReason.FAILED_RECENTLY, T0 + HOUR),
        ),
        (entry(Cause.ERROR), NOW, POLICY, Skip(SkipReason.FAILED_RECENTLY, T0 + HOUR)),
        (entry(Cause.ERROR), T0 + HOUR - 1, POLICY, Skip(SkipReason.FAILED_RECENTLY, T0 + HOUR)),
        (entry(Cause.ERROR), T0 + HOUR, POLICY, Schedule(2, memory("1Gi", deadline=3600), Cause.ERROR)),
        (entry(Cause.ERROR, failures=2, attempt=2), T0 + HOUR, POLICY, Skip(SkipReason.FAILED_RECENTLY, T0 + 2 * HOUR)),
        (
            entry(Cause.ERROR, failures=2, attempt=2),
            T0 + 2 * HOUR,
            POLICY,
            Schedule(3, memory("1Gi", deadline=3600), Cause.ERROR),
        ),
        # A disruption after charged failures keeps their count but retries at once.
        (
            entry(Cause.DISRUPTED, failures=2, attempt=3),
            NOW,
            POLICY,
            Schedule(4, memory("1Gi", deadline=3600), Cause.DISRUPTED),
        ),
        (entry(Cause.OOM, failures=3, attempt=3), NOW, POLICY, Skip(SkipReason.QUARANTINED, T0 + 30 * DAY)),
        (entry(Cause.DISRUPTED, failures=3, attempt=4), NOW, POLICY, Skip(SkipReason.QUARANTINED, T0 + 30 * DAY)),
        (entry(Cause.OOM, failures=3, attempt=3), T0 + 30 * DAY, POLICY, Forget()),
        (entry(Cause.DISRUPTED, failures=0), T0 + 30 * DAY, POLICY, Forget()),
        # max_attempts 0 never quarantines; the back-off keeps doubling (and stays a finite time).
        (
            entry(Cause.ERROR, failures=10, attempt=10),
            NOW,
            RetrySettings(max_attempts=0),
            Skip(SkipReason.FAILED_RECENTLY, T0 + HOUR * 2**9),
        ),
        (
            entry(Cause.ERROR, failures=5000, attempt=5000),
            NOW,
            RetrySettings(max_attempts=0),
            Skip(SkipReason.FAILED_RECENTLY, T0 + HOUR * 2**64),
        ),
        (
            entry(Cause.ERROR, failures=1),
            NOW,
            RetrySettings(retry_backoff_seconds=0),
            Schedule(2, memory("1Gi", deadline=3600), Cause.ERROR),
        ),
    ],
)
def test_decide(history: LedgerEntry | None, now: float, policy: RetrySettings, decision: object) -> None:
    assert next_attempt(history, now, policy) == decision


def test_forget_schedules_a_first_attempt() -> None:
    assert Forget().schedule == Schedule(1, None)


def test_every_container_is_doubled_and_a_request_under_a_capped_limit_still_grows() -> None:
    resources = AttemptResources(
        memory={
            "solver": ContainerMemory("1Gi", "3Gi"),
            "sidecar": ContainerMemory("64Mi", None),
            "init": ContainerMemory(None, "8Gi"),
        }
    )
    decision = next_attempt(entry(Cause.OOM, resources=resources), NOW, POLICY)
    assert decision == Schedule(
        2,
        AttemptResources(
            memory={
                "solver": ContainerMemory("2Gi", "6Gi"),
                "sidecar": ContainerMemory("128Mi", None),
                "init": ContainerMemory(None, "8Gi"),
            }
        ),
        Cause.OOM,
        capped=True,  # the init container runs at the cap
    )


def test_the_pod_deadline_grows_with_the_jobs() -> None:
    resources = AttemptResources(deadline_seconds=3600, pod_deadline_seconds=3000)
    decision = next_attempt(entry(Cause.DEADLINE, resources=resources), NOW, POLICY)
    assert decision == Schedule(2, AttemptResources(deadline_seconds=7200, pod_deadline_seconds=6000), Cause.DEADLINE)


OOM_KILLED = FailedJob(LISTED_JOB, Cause.OOM, T0, "OOMKilled")


def test_learn_starts_a_history_and_charges_a_failure() -> None:
    assert learn(None, ITEM, OOM_KILLED, 1, memory("1Gi"), POLICY) == LedgerEntry(
        ITEM, 1, 1, Cause.OOM, T0, memory("1Gi")
    )


def test_learning_the_same_failed_job_in_every_run_of_its_ttl_charges_it_once() -> None:
    history = None
    for run in range(24):
        seen = FailedJob(LISTED_JOB, Cause.ERROR, T0, "Failed")  # its Failed condition's time never changes
        history = learn(history, ITEM, seen, 1, memory("1Gi"), POLICY)
        assert next_attempt(history, T0 + run * HOUR, POLICY) == (
            Skip(SkipReason.FAILED_RECENTLY, T0 + HOUR) if run == 0 else Schedule(2, memory("1Gi"), Cause.ERROR)
        )
    assert history == LedgerEntry(ITEM, 1, 1, Cause.ERROR, T0, memory("1Gi"))


def test_a_failed_job_of_an_older_attempt_is_ignored() -> None:
    history = entry(Cause.OOM, failures=2, attempt=2)
    assert learn(history, ITEM, OOM_KILLED, 1, memory("1Gi"), POLICY) is history


def test_a_disruption_is_not_charged() -> None:
    history = entry(Cause.OOM, failures=1, attempt=1)
    disrupted = FailedJob(LISTED_JOB, Cause.DISRUPTED, T0 + HOUR, "Evicted")
    assert learn(history, ITEM, disrupted, 2, memory("2Gi"), POLICY) == LedgerEntry(
        ITEM, 1, 2, Cause.DISRUPTED, T0 + HOUR, memory("2Gi")
    )


@pytest.mark.parametrize(
    ("failure", "resources"),
    [
        (Cause.OOM, memory("8Gi")),  # already had the cap
        (Cause.OOM, memory("16Gi")),
        (Cause.OOM, memory(None)),  # no memory set: nothing to double
        (Cause.DEADLINE, memory("1Gi", deadline=86_400)),
        (Cause.DEADLINE, memory("1Gi")),  # no Job deadline to double
    ],
)
def test_a_failure_no_escalation_can_help_is_an_error(failure: Cause, resources: AttemptResources) -> None:
    learned = learn(None, ITEM, FailedJob(LISTED_JOB, failure, T0, ""), 1, resources, POLICY)
    assert (learned.cause, learned.failures) == (Cause.ERROR, 1)


def test_a_failure_after_an_entrys_time_is_over_starts_a_new_history() -> None:
    history = entry(Cause.OOM, failures=3, attempt=3, resources=memory("4Gi"))
    later = FailedJob(LISTED_JOB, Cause.OOM, T0 + 30 * DAY, "OOMKilled")
    assert learn(history, ITEM, later, 1, memory("1Gi"), POLICY) == LedgerEntry(
        ITEM, 1, 1, Cause.OOM, T0 + 30 * DAY, memory("1Gi")
    )


def test_an_item_oom_killed_twice_is_solved_with_four_times_the_memory() -> None:
    """The README's worked example, run through the real functions."""
    history: LedgerEntry | None = None
    decision = next_attempt(history, T0, POLICY)
    assert decision == Schedule(1, None)
    rendered = listed_job(memory="1Gi")
    memory_by_attempt = []
    for hour in (1, 2):  # attempts 1 and 2 are OOM-killed; each next hourly run retries with double memory
        assert isinstance(decision, Schedule)
        if decision.resources is not None:
            apply(rendered, decision.resources)
        rendered["metadata"]["labels"]["thoth-station.ninja/attempt"] = str(decision.attempt)
        memory_by_attempt.append(rendered["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"])
        rendered["status"] = {"conditions": failed_conditions(at=None)}
        seen = cause_of(rendered, [listed_pod(state=terminated_state("OOMKilled"))], now=T0 + hour * HOUR - 600)
        assert seen is not None
        history = learn(history, ITEM, seen, attempt_of(rendered), resources_of(rendered), POLICY)
        decision = next_attempt(history, T0 + hour * HOUR, POLICY)
        rendered = listed_job(memory="1Gi")
    assert memory_by_attempt == ["1Gi", "2Gi"]
    assert history == LedgerEntry(ITEM, 2, 2, Cause.OOM, T0 + 2 * HOUR - 600, memory("2Gi"), "solver")
    assert decision == Schedule(3, memory("4Gi"), Cause.OOM)
    assert isinstance(decision, Schedule)
    assert decision.resources is not None
    apply(rendered, decision.resources)
    limit = rendered["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"]
    assert limit == "4Gi"
    assert Decimal(4 * 1024**3) == Cap.parse(limit).value


def test_the_pure_modules_import_no_client() -> None:
    code = (
        "import sys, graph_refresh.retry.policy, graph_refresh.retry.codec, graph_refresh.quantity; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('kubernetes', 'pydgraph', 'grpc', 'urllib3')"
        " or m == 'graph_refresh.kube'))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_an_oom_of_a_container_already_at_the_cap_is_an_error_whatever_the_others_have() -> None:
    policy = RetrySettings(max_memory=Cap.parse("2Gi"))
    resources = AttemptResources(
        {"solver": ContainerMemory("2Gi", "2Gi"), "sidecar": ContainerMemory("64Mi", "128Mi")}, 3600
    )
    item = ItemId("0123456789", "solver", "solver-fedora-31-py38", "flask", "1.1.2", "https://pypi.org/simple")
    killed = FailedJob(LISTED_JOB, Cause.OOM, T0, "pod x container solver OOMKilled", "solver")
    assert learn(None, item, killed, 1, resources, policy).cause is Cause.ERROR
    sidecar = FailedJob(LISTED_JOB, Cause.OOM, T0, "pod x container sidecar OOMKilled", "sidecar")
    entry = learn(None, item, sidecar, 1, resources, policy)
    assert entry.cause is Cause.OOM
    decision = next_attempt(entry, T0 + 60, policy)
    assert isinstance(decision, Schedule)
    assert decision.resources is not None
    assert decision.resources.memory["sidecar"] == ContainerMemory("128Mi", "256Mi")
