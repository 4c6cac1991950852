"""Quota arithmetic (graph_refresh/capacity.py): pure functions over quota and Job objects."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from graph_refresh.capacity import Capacity, Quota, job_cost


def job(containers: list[dict[str, Any]], init: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": containers}
    if init:
        spec["initContainers"] = init
    return {"spec": {"template": {"spec": spec}}}


def container(requests: dict[str, Any] | None = None, limits: dict[str, Any] | None = None) -> dict[str, Any]:
    resources = {k: v for k, v in (("requests", requests), ("limits", limits)) if v is not None}
    return {"name": "c", "image": "i", "resources": resources}


def test_job_cost_sums_containers_and_takes_the_largest_init_container() -> None:
    cost = job_cost(
        job(
            [container({"cpu": "500m", "memory": "1Gi"}, {"cpu": 1, "memory": "2Gi"}), container({"cpu": "250m"})],
            init=[container({"memory": "3Gi"})],
        )
    ).resources
    assert cost["count/jobs.batch"] == cost["pods"] == 1
    assert cost["requests.cpu"] == cost["cpu"] == Decimal("0.75")
    assert cost["requests.memory"] == cost["memory"] == 3 * 2**30  # the init container needs more than the sum
    assert cost["limits.cpu"] == 1
    assert cost["limits.memory"] == 2 * 2**30


def test_a_limit_without_a_request_is_also_the_request() -> None:
    cost = job_cost(job([container(limits={"memory": "512Mi"})])).resources
    assert cost["requests.memory"] == cost["limits.memory"] == 512 * 2**20


def quota(name: str, hard: dict[str, str], used: dict[str, str]) -> Quota:
    return Quota.from_object({"metadata": {"name": name}, "status": {"hard": hard, "used": used}})


def test_every_quota_applies_and_the_tightest_wins() -> None:
    cost = job_cost(job([container({"memory": "1Gi"}, {"memory": "1Gi"})]))
    capacity = Capacity.from_cluster(
        max_in_flight=0,
        live_jobs=0,
        quotas=[
            quota("pods", {"pods": "10"}, {"pods": "7"}),
            quota("memory", {"requests.memory": "4Gi"}, {"requests.memory": "2Gi"}),
        ],
    )
    admitted = 0
    while capacity.admits(cost):
        capacity.take(cost)
        admitted += 1
    assert admitted == 2  # memory admits 2, pods 3


def test_a_resource_the_job_does_not_use_blocks_nothing_even_when_over_quota() -> None:
    capacity = Capacity.from_cluster(
        max_in_flight=0, live_jobs=0, quotas=[quota("misc", {"configmaps": "5", "pods": "2"}, {"configmaps": "9"})]
    )
    cost = job_cost(job([container()]))
    assert capacity.admits(cost)


def test_max_in_flight_minus_live_jobs_and_exhaustion() -> None:
    capacity = Capacity.from_cluster(max_in_flight=3, live_jobs=2, quotas=[])
    cost = job_cost(job([container()]))
    assert capacity.admits(cost)
    capacity.take(cost)
    assert not capacity.admits(cost)
    assert Capacity.from_cluster(max_in_flight=0, live_jobs=10**6, quotas=[]).admits(cost)
    unlimited = Capacity.from_cluster(max_in_flight=0, live_jobs=0, quotas=[])
    unlimited.exhaust()
    assert not unlimited.admits(cost)


def test_spec_hard_counts_until_the_quota_controller_fills_status() -> None:
    q = Quota.from_object({"metadata": {"name": "new"}, "spec": {"hard": {"pods": "4"}}})
    assert q.hard == {"pods": 4}
    assert q.used == {}


def test_parallel_pods_cost_parallelism_times_one_pod() -> None:
    parallel = job([container({"cpu": "1"})])
    parallel["spec"]["parallelism"] = 3
    cost = job_cost(parallel).resources
    assert cost["pods"] == 3
    assert cost["requests.cpu"] == 3
    assert cost["count/jobs.batch"] == 1


def scoped(scopes: list[str] | None = None, selector: list[dict[str, Any]] | None = None) -> Quota:
    spec: dict[str, Any] = {"hard": {"pods": "0"}}
    if scopes:
        spec["scopes"] = scopes
    if selector:
        spec["scopeSelector"] = {"matchExpressions": selector}
    return Quota.from_object({"metadata": {"name": "scoped"}, "spec": spec, "status": {"hard": {"pods": "0"}}})


def test_quota_scopes_decide_which_pods_a_quota_counts() -> None:
    with_requests = job_cost(job([container({"cpu": "1"})]))
    best_effort = job_cost(job([container()]))
    assert best_effort.best_effort
    assert not with_requests.best_effort
    deadline = job([container({"cpu": "1"})])
    deadline["spec"]["template"]["spec"]["activeDeadlineSeconds"] = 60
    deadline["spec"]["template"]["spec"]["priorityClassName"] = "low"
    terminating = job_cost(deadline)

    assert not scoped(["BestEffort"]).covers(with_requests)
    assert scoped(["BestEffort"]).covers(best_effort)
    assert scoped(["NotBestEffort"]).covers(with_requests)
    assert scoped(["Terminating"]).covers(terminating)
    assert not scoped(["Terminating"]).covers(with_requests)
    assert scoped(["NotTerminating", "NotBestEffort"]).covers(with_requests)
    low = [{"scopeName": "PriorityClass", "operator": "In", "values": ["low"]}]
    assert scoped(selector=low).covers(terminating)
    assert not scoped(selector=low).covers(with_requests)
    assert scoped(selector=[{"scopeName": "PriorityClass", "operator": "DoesNotExist"}]).covers(with_requests)
    assert scoped(["SomethingNew"]).covers(with_requests), "an unknown scope counts, to be safe"


def test_a_quota_that_does_not_cover_the_job_does_not_block_it() -> None:
    cost = job_cost(job([container({"cpu": "1"})]))
    capacity = Capacity.from_cluster(max_in_flight=0, live_jobs=0, quotas=[scoped(["BestEffort"])])
    assert capacity.admits(cost)
    capacity = Capacity.from_cluster(max_in_flight=0, live_jobs=0, quotas=[scoped(["NotBestEffort"])])
    assert not capacity.admits(cost)


def test_an_empty_priority_class_is_none() -> None:
    spec = job([container({"cpu": "1"})])
    spec["spec"]["template"]["spec"]["priorityClassName"] = ""
    assert job_cost(spec).priority_class is None
