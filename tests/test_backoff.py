"""The one backoff policy: its delays, its bounds, and the values every retry loop uses today."""

from __future__ import annotations

import dataclasses
import math
import random

import pytest

from graph_refresh.backoff import CREATES, READS, STORE_READS, Backoff


def delays(policy: Backoff, rng: random.Random | None = None) -> list[float]:
    """The waits between the attempts of one call that always fails."""
    return [policy.delay(attempt, rng) for attempt in range(policy.attempts) if policy.retries_left(attempt)]


def test_reads_try_three_times_half_a_second_then_one() -> None:
    assert delays(READS) == delays(STORE_READS) == [0.5, 1.0]


def test_creates_try_five_times_with_full_jitter_under_a_doubling_ceiling() -> None:
    rng = random.Random(7)
    waits = delays(CREATES, rng)
    assert len(waits) == 4
    assert all(0 <= wait <= 0.5 * 2**i for i, wait in enumerate(waits))
    assert len(set(waits)) == 4


def test_the_cap_bounds_every_wait_and_large_attempts_do_not_overflow() -> None:
    policy = Backoff(attempts=100, base_seconds=0.5, cap_seconds=30.0)
    assert [policy.delay(n) for n in (5, 6, 7)] == [16.0, 30.0, 30.0]
    assert policy.delay(10_000) == 30.0
    assert Backoff(attempts=2, base_seconds=1.0).delay(10_000) == math.ldexp(1.0, 62)
    assert all(0 <= CREATES.delay(10_000, random.Random(n)) <= 30.0 for n in range(20))


@pytest.mark.parametrize(("asked", "waited"), [(2.0, 2.0), (3600.0, 60.0), (-5.0, 0.0), (0.0, 0.0)])
def test_a_retry_after_wins_within_its_bound(asked: float, waited: float) -> None:
    assert CREATES.delay(0, random.Random(1), retry_after=asked) == waited
    assert READS.delay(2, retry_after=asked) == min(waited, 30.0)


def test_retries_left_counts_the_first_attempt() -> None:
    assert [READS.retries_left(n) for n in range(4)] == [True, True, False, False]
    assert not Backoff(attempts=1, base_seconds=1.0).retries_left(0)


def test_a_policy_is_a_value() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(READS, "attempts", 9)  # noqa: B010 - the assignment a frozen dataclass refuses
    assert dataclasses.replace(READS, attempts=9) == Backoff(9, 0.5, max_retry_after_seconds=30.0)
