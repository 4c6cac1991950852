"""Submission policy: the retry decision as a table, the token bucket, and the create loop around them
(against a stand-in that answers ``create_job`` with errors in turn)."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest

from graph_refresh.backoff import CREATES, Backoff
from graph_refresh.errors import (
    AlreadyExists,
    ClusterError,
    Conflict,
    Forbidden,
    GarbledAnswer,
    NoAnswer,
    NotFound,
    QuotaExceeded,
    QuotaPending,
    Rejected,
    ServerError,
    Throttled,
    TlsFailure,
    Unauthorized,
)
from graph_refresh.scheduler import (
    CREATED,
    INTERRUPTED,
    NOT_SENT_FOR_QUOTA,
    CreateStep,
    Done,
    JobCreator,
    Outcome,
    RateLimiter,
    Result,
    Retry,
    Stop,
    Submitter,
    after_attempt,
)

JOB = {"metadata": {"name": "solver-ubi-8-py38-0123456789"}}
NOT_SENT = Outcome(Result.CAPACITY, 403, "not sent")
REFUSED = Outcome(Result.FAILED, 403, "not sent: the API refused an earlier create")


def failed(error: ClusterError, prefix: str = "") -> Outcome:
    return Outcome(Result.FAILED, error.status, prefix + str(error))


# --- the decision, as a table ----------------------------------------------------------------------

E409 = AlreadyExists("exists", status=409)
E403Q = QuotaExceeded("exceeded quota: q", status=403)
E403P = QuotaPending("status unknown for quota: q", status=403)
E403 = Forbidden("cannot create", status=403)
E401 = Unauthorized("Unauthorized", status=401)
E429 = Throttled("slow down", status=429, retry_after=7.0)
E429_BARE = Throttled("slow down", status=429)
E500 = ServerError("boom", status=500, retry_after=9.0)  # a 5xx's Retry-After is not what we wait by
LOST = NoAnswer("read timed out", reached=True)
UNSENT = NoAnswer("connection refused", reached=False)
TLS = TlsFailure("certificate verify failed", reached=False)
E422 = Rejected("invalid", status=422)
E404 = NotFound("not found", status=404)
E409_UPDATE = Conflict("modified", status=409)
GARBLED = GarbledAnswer("not JSON")

CASES: list[tuple[str, ClusterError, dict[str, Any], CreateStep]] = [
    # error, (attempt, maybe_sent, stopped, final_ask) -> decision
    ("409 is already scheduled", E409, {}, Done(Outcome(Result.ALREADY, 409, "exists"))),
    ("409 after a lost answer is ours", E409, {"maybe_sent": True}, Done(CREATED)),
    (
        "quota refusal stops with capacity",
        E403Q,
        {},
        Stop(Outcome(Result.CAPACITY, 403, str(E403Q)), NOT_SENT_FOR_QUOTA),
    ),
    (
        "quota refusal after a lost answer: may exist",
        E403Q,
        {"maybe_sent": True},
        Stop(failed(E403Q, "may exist (an earlier answer was lost): "), NOT_SENT_FOR_QUOTA),
    ),
    ("403 is systemic", E403, {}, Stop(failed(E403), REFUSED, systemic=True)),
    (
        "401 is systemic",
        E401,
        {},
        Stop(failed(E401), Outcome(Result.FAILED, 401, REFUSED.reason), systemic=True),
    ),
    ("422 is not retried", E422, {}, Done(failed(E422))),
    ("404 is not retried", E404, {}, Done(failed(E404))),
    ("a conflict is not retried", E409_UPDATE, {}, Done(failed(E409_UPDATE))),
    ("quota not yet calculated: retry", E403P, {}, Retry(maybe_sent=False)),
    ("429 waits its Retry-After", E429, {}, Retry(maybe_sent=False, retry_after=7.0)),
    ("429 without Retry-After backs off", E429_BARE, {}, Retry(maybe_sent=False)),
    ("5xx: retry, and it may exist", E500, {}, Retry(maybe_sent=True)),
    ("no answer: retry, and it may exist", LOST, {}, Retry(maybe_sent=True)),
    ("never sent: retry, it does not exist", UNSENT, {}, Retry(maybe_sent=False)),
    ("a TLS failure is never sent", TLS, {}, Retry(maybe_sent=False)),
    ("a garbled answer may be a created Job", GARBLED, {}, Retry(maybe_sent=True)),
    ("an earlier lost answer is remembered", UNSENT, {"maybe_sent": True}, Retry(maybe_sent=True)),
    ("the last attempt fails", E500, {"attempt": 4}, Done(failed(E500))),
    ("stopped meanwhile: no waiting", E429, {"stopped": NOT_SENT}, Done(NOT_SENT)),
    ("stopped meanwhile, on the last attempt too", E429, {"attempt": 4, "stopped": NOT_SENT}, Done(NOT_SENT)),
    ("stopped, but it may exist: ask again", E500, {"stopped": NOT_SENT}, Retry(maybe_sent=True)),
    ("asked once more after the stop: last word", E500, {"stopped": NOT_SENT, "final_ask": True}, Done(failed(E500))),
    (
        "a 409 on the final ask is ours",
        E409,
        {"maybe_sent": True, "stopped": NOT_SENT, "final_ask": True},
        Done(CREATED),
    ),
]


@pytest.mark.parametrize(("error", "state", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_decision(error: ClusterError, state: dict[str, Any], expected: CreateStep) -> None:
    arguments: dict[str, Any] = {"attempt": 0, "maybe_sent": False, "stopped": None, "final_ask": False, **state}
    assert after_attempt(error, attempts=5, **arguments) == expected


def test_the_reason_is_truncated_for_the_report() -> None:
    decision = after_attempt(Rejected("x" * 500, status=422), attempt=0, attempts=5, maybe_sent=False, stopped=None)
    assert isinstance(decision, Done)
    assert len(decision.outcome.reason) == 200


# --- the loop around it ------------------------------------------------------------------------------


class Answers:
    """Answers create_job with the given errors in turn, then succeeds; ``after`` runs after each answer."""

    def __init__(self, *errors: ClusterError) -> None:
        self.errors = list(errors)
        self.calls = 0
        self.dry_runs: list[bool] = []
        self.after: Callable[[], None] = lambda: None

    def create_job(self, namespace: str, job: dict[str, Any], *, dry_run: bool = False) -> None:
        self.calls += 1
        self.dry_runs.append(dry_run)
        try:
            if self.errors:
                raise self.errors.pop(0)
        finally:
            self.after()


def submitter(cluster: JobCreator, sleeps: list[float], **options: Any) -> Submitter:
    limiter = RateLimiter(0, 1, clock=lambda: 0.0, sleep=sleeps.append)
    return Submitter(cluster, "middletier", limiter=limiter, sleep=sleeps.append, rng=random.Random(1), **options)


def test_retry_after_is_honoured_but_capped() -> None:
    sleeps: list[float] = []
    cluster = Answers(Throttled("slow down", status=429, retry_after=3600), Throttled("x", status=429, retry_after=2))
    assert submitter(cluster, sleeps).create(JOB).result == "created"
    assert sleeps == [CREATES.max_retry_after_seconds, 2]


def test_server_errors_back_off_exponentially_with_jitter_then_fail() -> None:
    sleeps: list[float] = []
    cluster = Answers(*(ServerError("boom", status=500) for _ in range(CREATES.attempts)))
    outcome = submitter(cluster, sleeps).create(JOB)
    assert (outcome.result, outcome.status, cluster.calls) == ("failed", 500, CREATES.attempts)
    assert len(sleeps) == CREATES.attempts - 1
    assert all(0 <= s <= 0.5 * 2**i for i, s in enumerate(sleeps))
    assert len(set(sleeps)) == len(sleeps), "jittered"


def test_the_policy_is_a_parameter() -> None:
    sleeps: list[float] = []
    cluster = Answers(*(ServerError("boom", status=500) for _ in range(5)))
    outcome = submitter(cluster, sleeps, policy=Backoff(attempts=2, base_seconds=3.0)).create(JOB)
    assert outcome.result == "failed"
    assert cluster.calls == 2
    assert sleeps == [3.0]


@pytest.mark.parametrize(
    ("error", "result"),
    [
        (AlreadyExists("exists", status=409), "already"),
        (QuotaExceeded("exceeded quota: q, requested: pods=1", status=403), "capacity"),
        (Rejected("invalid", status=422), "failed"),
    ],
)
def test_answers_that_are_not_retried(error: ClusterError, result: str) -> None:
    cluster = Answers(error)
    assert submitter(cluster, []).create(JOB).result == result
    assert cluster.calls == 1


@pytest.mark.parametrize("error", [Unauthorized("no", status=401), Forbidden("forbidden", status=403)])
def test_refusals_are_systemic_and_stop_the_others(error: ClusterError) -> None:
    cluster = Answers(error)
    s = submitter(cluster, [])
    with pytest.raises(type(error)):
        s.create(JOB)
    outcome = s.create(JOB)
    assert outcome == Outcome(Result.FAILED, error.status, "not sent: the API refused an earlier create")
    assert cluster.calls == 1


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
    cluster = Answers(ServerError("boom", status=503), Throttled("wait", status=429), AlreadyExists("x", status=409))
    assert submitter(cluster, []).create(JOB).result == "created"


def test_after_a_stop_a_job_that_may_exist_is_asked_about_once_more() -> None:
    sleeps: list[float] = []
    cluster = Answers(ServerError("boom", status=503), AlreadyExists("exists", status=409))
    s = submitter(cluster, sleeps)
    cluster.after = lambda: s.halt(NOT_SENT)  # another worker hit the quota meanwhile
    assert s.create(JOB).result == "created"
    assert cluster.calls == 2
    assert submitter(Answers(), []).create(JOB).result == "created"
    stopped = submitter(Answers(), [])
    stopped.halt(NOT_SENT)
    assert stopped.create(JOB).result == "capacity"


def test_a_quota_refusal_after_a_lost_answer_is_not_reported_as_not_sent() -> None:
    cluster = Answers(ServerError("boom", status=503), QuotaExceeded("exceeded quota: jobs", status=403))
    outcome = submitter(cluster, []).create(JOB)
    assert outcome.result == "failed"
    assert "may exist" in outcome.reason


def test_a_connection_that_never_opened_means_the_job_was_not_sent() -> None:
    cluster = Answers(NoAnswer("refused", reached=False), AlreadyExists("exists", status=409))
    assert submitter(cluster, []).create(JOB).result == "already"


def test_no_waiting_once_the_run_has_stopped() -> None:
    sleeps: list[float] = []
    cluster = Answers(Throttled("slow down", status=429, retry_after=30))
    s = submitter(cluster, sleeps)
    cluster.after = lambda: s.halt(NOT_SENT)
    assert s.create(JOB).result == "capacity"
    assert sleeps == []


def test_an_interrupt_ends_the_retries_and_nothing_more_is_sent() -> None:
    sleeps: list[float] = []
    cluster = Answers(Throttled("slow down", status=429, retry_after=30))
    s = submitter(cluster, sleeps)
    cluster.after = lambda: s.halt(INTERRUPTED)
    assert s.create(JOB) == INTERRUPTED
    assert s.create(JOB) == INTERRUPTED
    assert cluster.calls == 1


@pytest.mark.parametrize("server_dry_run", [False, True])
def test_a_server_dry_run_is_passed_to_every_create(server_dry_run: bool) -> None:
    cluster = Answers(ServerError("boom", status=500))
    assert submitter(cluster, [], server_dry_run=server_dry_run).create(JOB).result == "created"
    assert cluster.dry_runs == [server_dry_run, server_dry_run]
