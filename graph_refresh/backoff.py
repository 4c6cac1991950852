"""One backoff policy for every retry loop: cluster reads, Job creates and Dgraph reads.

A :class:`Backoff` only says how many attempts there are and how long to wait before the next one;
what is worth retrying is each loop's own decision. Pure code: randomness comes in as a parameter.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

MAX_DOUBLINGS = 62  # 2**62 times any base is past every cap; keeps the float from overflowing


@dataclass(frozen=True)
class Backoff:
    """Capped exponential backoff, with optional full jitter, honouring a server's Retry-After up to a bound."""

    attempts: int
    """Tries in all, the first included (1: never retried)."""
    base_seconds: float
    """Wait after the first failed attempt; it doubles with each further one."""
    cap_seconds: float = math.inf
    """No single wait (before jitter) is longer than this."""
    jitter: bool = False
    """Full jitter: wait uniformly between 0 and the capped delay, so many clients do not retry in step."""
    max_retry_after_seconds: float = math.inf
    """A server's Retry-After is honoured up to this long, so it cannot hold a worker for an hour."""

    def delay(self, attempt: int, rng: random.Random | None = None, retry_after: float | None = None) -> float:
        """Seconds to wait after the failed attempt ``attempt`` (0 for the first) before the next one.

        ``retry_after`` (the server's, in seconds) wins when given, bounded to ``[0, max_retry_after_seconds]``.
        With ``jitter`` the wait is drawn from ``rng`` (a fresh generator when None).
        """
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after_seconds)
        ceiling = min(self.cap_seconds, math.ldexp(self.base_seconds, min(max(attempt, 0), MAX_DOUBLINGS)))
        if not self.jitter:
            return ceiling
        return (rng or random.Random()).uniform(0, ceiling)  # noqa: S311 - jitter, not cryptography

    def retries_left(self, attempt: int) -> bool:
        """Whether another attempt may follow the attempt ``attempt`` (0 for the first)."""
        return attempt + 1 < self.attempts


READS = Backoff(attempts=3, base_seconds=0.5, max_retry_after_seconds=30.0)
"""Cluster reads (lists, gets) on 429, 5xx and no answer: 0.5 s, then 1 s; a blip must not cost the hourly run."""

CREATES = Backoff(attempts=5, base_seconds=0.5, cap_seconds=30.0, jitter=True, max_retry_after_seconds=60.0)
"""Job creates on 429, 5xx and timeouts: full jitter, so the workers spread out; a Retry-After holds a worker at
most a minute per attempt."""

STORE_READS = Backoff(attempts=3, base_seconds=0.5)
"""Dgraph reads on transient gRPC failures: 0.5 s, then 1 s; three tries ride out an alpha restart."""
