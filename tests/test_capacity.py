"""Quota arithmetic (SPEC §4, capacity): pure functions over quota and Job objects."""

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
    )
    assert cost["count/jobs.batch"] == cost["pods"] == 1
    assert cost["requests.cpu"] == cost["cpu"] == Decimal("0.75")
    assert cost["requests.memory"] == cost["memory"] == 3 * 2**30  # the init container needs more than the sum
    assert cost["limits.cpu"] == 1 and cost["limits.memory"] == 2 * 2**30


def test_a_limit_without_a_request_is_also_the_request() -> None:
    cost = job_cost(job([container(limits={"memory": "512Mi"})]))
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
    assert q.hard == {"pods": 4} and q.used == {}
