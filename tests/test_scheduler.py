"""Submission policy: the client-side token bucket and the retry rules, against a stand-in cluster object."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest

from graph_refresh.errors import ClusterError
from graph_refresh.scheduler import MAX_ATTEMPTS, MAX_RETRY_AFTER_SECONDS, Outcome, RateLimiter, Submitter

JOB = {"metadata": {"name": "solver-ubi-8-py38-0123456789"}}


class Answers:
    """Answers create_job with the given errors in turn, then succeeds; ``after`` runs after each answer."""

    def __init__(self, *errors: ClusterError) -> None:
        self.errors = list(errors)
        self.calls = 0
        self.after: Callable[[], None] = lambda: None

    def create_job(self, namespace: str, job: dict[str, Any]) -> None:
        self.calls += 1
        try:
            if self.errors:
                raise self.errors.pop(0)
        finally:
            self.after()


NOT_SENT = Outcome("capacity", 403, "not sent")


def submitter(cluster: Answers, sleeps: list[float]) -> Submitter:
    limiter = RateLimiter(0, 1, clock=lambda: 0.0, sleep=sleeps.append)
    return Submitter(cluster, "middletier", limiter=limiter, sleep=sleeps.append, rng=random.Random(1))  # type: ignore[arg-type]


def test_retry_after_is_honoured_but_capped() -> None:
    sleeps: list[float] = []
    cluster = Answers(
        ClusterError("slow down", status=429, retry_after=3600), ClusterError("x", status=429, retry_after=2)
    )
    assert submitter(cluster, sleeps).create(JOB).result == "created"
    assert sleeps == [MAX_RETRY_AFTER_SECONDS, 2]


def test_server_errors_back_off_exponentially_with_jitter_then_fail() -> None:
    sleeps: list[float] = []
    cluster = Answers(*(ClusterError("boom", status=500) for _ in range(MAX_ATTEMPTS)))
    outcome = submitter(cluster, sleeps).create(JOB)
    assert (outcome.result, outcome.status, cluster.calls) == ("failed", 500, MAX_ATTEMPTS)
    assert len(sleeps) == MAX_ATTEMPTS - 1
    assert all(0 <= s <= 0.5 * 2**i for i, s in enumerate(sleeps))


@pytest.mark.parametrize(
    ("status", "message", "result"),
    [(409, "exists", "already"), (403, "exceeded quota: q, requested: pods=1", "capacity"), (422, "invalid", "failed")],
)
def test_answers_that_are_not_retried(status: int, message: str, result: str) -> None:
    cluster = Answers(ClusterError(message, status=status))
    assert submitter(cluster, []).create(JOB).result == result
    assert cluster.calls == 1


@pytest.mark.parametrize("status", [401, 403])
def test_refusals_are_systemic(status: int) -> None:
    with pytest.raises(ClusterError):
        submitter(Answers(ClusterError("forbidden", status=status)), []).create(JOB)


def test_token_bucket_allows_a_burst_then_paces_requests() -> None:
    now = [0.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(2.0, 3, clock=lambda: now[0], sleep=sleep)
    for _ in range(7):
        limiter.acquire()
    assert sleeps == [0.5, 0.5, 0.5, 0.5]  # 3 at once, then one every 1/qps seconds


def test_a_409_after_any_lost_answer_is_our_own_create() -> None:
    cluster = Answers(ClusterError("boom", status=503), ClusterError("wait", status=429), ClusterError("x", status=409))
    assert submitter(cluster, []).create(JOB).result == "created"


def test_after_a_stop_a_job_that_may_exist_is_asked_about_once_more() -> None:
    sleeps: list[float] = []
    cluster = Answers(ClusterError("boom", status=503), ClusterError("exists", status=409))
    s = submitter(cluster, sleeps)
    cluster.after = lambda: s.stop(NOT_SENT)  # another worker hit the quota meanwhile
    assert s.create(JOB).result == "created" and cluster.calls == 2
    assert submitter(Answers(), []).create(JOB).result == "created"
    stopped = submitter(Answers(), [])
    stopped.stop(NOT_SENT)
    assert stopped.create(JOB).result == "capacity"


def test_a_quota_refusal_after_a_lost_answer_is_not_reported_as_not_sent() -> None:
    cluster = Answers(ClusterError("boom", status=503), ClusterError("exceeded quota: jobs", status=403))
    outcome = submitter(cluster, []).create(JOB)
    assert outcome.result == "failed" and "may exist" in outcome.reason


def test_a_connection_that_never_opened_means_the_job_was_not_sent() -> None:
    cluster = Answers(ClusterError("refused", status=0, reached=False), ClusterError("exists", status=409))
    assert submitter(cluster, []).create(JOB).result == "already"


def test_no_waiting_once_the_run_has_stopped() -> None:
    sleeps: list[float] = []
    cluster = Answers(ClusterError("slow down", status=429, retry_after=30))
    s = submitter(cluster, sleeps)
    cluster.after = lambda: s.stop(NOT_SENT)
    assert s.create(JOB).result == "capacity" and sleeps == []
