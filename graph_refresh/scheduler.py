"""Where Templates meet the cluster: render planned items into Jobs, then create them or, in a dry
run, write them out; count every outcome in the run report (SPEC §2 steps 6-7)."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from graph_refresh import kube
from graph_refresh.capacity import Capacity
from graph_refresh.config import ClusterSettings
from graph_refresh.errors import ClusterError, TemplateError, truncate
from graph_refresh.items import is_job_name
from graph_refresh.planner import Planned
from graph_refresh.render import Renderer
from graph_refresh.report import Failure, RunReport, write_atomically

logger = logging.getLogger(__name__)

_YamlDumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml when present: same output, ~4x faster


def dry_run(items: Iterable[Planned], *, renderer: Renderer, report: RunReport, output_dir: Path | None) -> None:
    """Render every planned item and count it as scheduled; write one YAML manifest per Job when asked.

    Each manifest is written atomically under its Job name, so a re-run rewrites the same bytes.
    Manifests of an earlier plan (files named like our Jobs) are removed first; other files stay.
    """
    if output_dir is not None:
        output_dir.mkdir(exist_ok=True)  # its parent exists: checked at start
        for stale in output_dir.glob("*.yaml"):
            if is_job_name(stale.stem):
                stale.unlink()
    debug = logger.isEnabledFor(logging.DEBUG)
    for planned in items:
        item = planned.item
        job = _render(planned, renderer, report)
        if output_dir is not None:
            text = yaml.dump(job, Dumper=_YamlDumper, sort_keys=False, default_flow_style=False, allow_unicode=True)
            write_atomically(output_dir / f"{item.job_name}.yaml", text)
        count_scheduled(planned, report)
        if debug:
            logger.debug("Would create Job %s (%s %s)", item.job_name, item.kind, item.candidate)


REASON_CHARS = 200  # a failure's reason in the run report: enough for the API's message, not its whole body
MAX_ATTEMPTS = 5  # create attempts per Job on 429/5xx/timeouts before it counts as failed
BACKOFF_BASE_SECONDS = 0.5  # first retry waits about this long, doubling each time
BACKOFF_CAP_SECONDS = 30.0  # no single wait longer than this
MAX_RETRY_AFTER_SECONDS = 60.0  # a server asking for longer holds a worker at most a minute per attempt
QUOTA_MARKER = "exceeded quota"  # how the API says a ResourceQuota refused an object
QUOTA_UNKNOWN_MARKER = "status unknown for quota"  # a quota the controller has not calculated yet


class RateLimiter:
    """Client-side token bucket (client-go's QPS/burst): ``burst`` requests at once, then ``qps`` per second.

    A caller reserves a token and sleeps for the time until it is due, so the bucket works the
    same with a real clock and with a test's fake sleep. ``qps`` 0 means no limit.
    """

    def __init__(self, qps: float, burst: int, *, clock: Callable[[], float], sleep: Callable[[float], object]):
        self._qps = qps
        self._burst = max(burst, 1)
        self._tokens = float(self._burst)
        self._clock = clock
        self._sleep = sleep
        self._last = clock()
        self._lock = threading.Lock()

    def acquire(self) -> None:
        if not self._qps:
            return
        with self._lock:
            now = self._clock()
            self._tokens = min(self._burst, self._tokens + (now - self._last) * self._qps) - 1
            self._last = now
            wait = -self._tokens / self._qps if self._tokens < 0 else 0.0
        if wait:
            self._sleep(wait)


@dataclass(frozen=True)
class Outcome:
    """What became of one create: ``created``, ``already``, ``capacity`` or ``failed`` (with status and reason)."""

    result: str
    status: int = 0
    reason: str = ""


INTERRUPTED = Outcome("failed", 0, "not sent: the run was interrupted")  # a create a SIGTERM kept from going out


class Submitter:
    """Creates Jobs with retries; raises ClusterError for systemic refusals (401, 403 other than quota)."""

    def __init__(
        self,
        cluster: kube.Cluster,
        namespace: str,
        *,
        limiter: RateLimiter,
        sleep: Callable[[float], None] | None,
        rng: random.Random,
        interrupt: threading.Event | None = None,
    ) -> None:
        self._cluster = cluster
        self._namespace = namespace
        self._limiter = limiter
        self._interrupt = interrupt or threading.Event()
        self._sleep = sleep or self._interrupt.wait  # a retry wait ends early when the run is interrupted
        self._rng = rng
        self._stopped: Outcome | None = None  # set once: what every create not yet sent becomes

    def stop(self, outcome: Outcome) -> None:
        """Send no more creates: the quota is full, or the API refused us. Creates already sent finish."""
        self._stopped = self._stopped or outcome

    def backoff(self, attempt: int) -> float:
        """Capped exponential backoff with full jitter: uniform in [0, min(cap, base * 2**attempt)]."""
        return self._rng.uniform(0, min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2**attempt))

    def create(self, job: dict[str, Any]) -> Outcome:
        """Create one Job: 409 is ``already``, a quota 403 ``capacity``, 429/5xx/timeouts are retried.

        A 409 after an attempt whose answer was lost (no answer or 5xx) is this run's own create
        arriving late, so it counts as ``created``. Once the run has stopped sending (see :meth:`stop`),
        a Job not sent yet gets the stop's outcome; one that may have been sent is asked about once more.
        """
        last = Outcome("failed")
        maybe_sent = False  # an earlier attempt's answer was lost: the Job may exist
        final_ask = False
        for attempt in range(MAX_ATTEMPTS):
            if self._interrupt.is_set():
                self.stop(INTERRUPTED)
            if self._stopped is not None and not maybe_sent:
                return self._stopped  # before waiting for a token that would not be used
            self._limiter.acquire()
            if self._interrupt.is_set():
                self.stop(INTERRUPTED)
            if self._stopped is not None:
                if not maybe_sent:
                    return self._stopped
                final_ask = True
            try:
                self._cluster.create_job(self._namespace, job)
                return Outcome("created")
            except ClusterError as error:
                reason = truncate(str(error), REASON_CHARS)
                if error.status == 409:
                    return Outcome("created") if maybe_sent else Outcome("already", 409, reason)
                if error.status == 403 and QUOTA_UNKNOWN_MARKER in str(error):
                    wait = self.backoff(attempt)  # a new quota not yet calculated: it settles within seconds
                elif error.status == 403 and QUOTA_MARKER in str(error):
                    self.stop(Outcome("capacity", 403, "not sent: a ResourceQuota refused an earlier create"))
                    if maybe_sent:  # the quota may be full of this very Job, created by the lost attempt
                        return Outcome("failed", 403, f"may exist (an earlier answer was lost): {reason}")
                    return Outcome("capacity", 403, reason)
                elif error.status in (401, 403):
                    self.stop(Outcome("failed", error.status, "not sent: the API refused an earlier create"))
                    raise
                elif error.status == 429:
                    retry_after = error.retry_after
                    wait = (
                        min(retry_after, MAX_RETRY_AFTER_SECONDS) if retry_after is not None else self.backoff(attempt)
                    )
                elif error.status == 0 or error.status >= 500:
                    wait = self.backoff(attempt)
                    maybe_sent = maybe_sent or error.reached
                else:
                    return Outcome("failed", error.status, reason)  # rejected (e.g. 422): retrying cannot help
                last = Outcome("failed", error.status, reason)
                if final_ask:
                    return last  # asked once more after the stop: that was the last word
                if self._interrupt.is_set():
                    self.stop(INTERRUPTED)
                if self._stopped is not None and not maybe_sent:
                    return self._stopped  # stopped while this attempt was out: no waiting for a retry
                if attempt + 1 < MAX_ATTEMPTS:
                    logger.info("Create of %s got %s, retrying in %.1fs", job["metadata"]["name"], error.status, wait)
                    self._sleep(wait)
        return last


def submit(
    items: Iterable[Planned],
    *,
    renderer: Renderer,
    report: RunReport,
    cluster: kube.Cluster,
    namespace: str,
    capacity: Capacity,
    settings: ClusterSettings,
    sleep: Callable[[float], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    rng: random.Random | None = None,
    interrupt: threading.Event | None = None,
) -> None:
    """Create the Job of every item, ``settings.workers`` at a time, and count each outcome.

    Order of effects per item: render, create, then count; a crash after a create is deduplicated
    by the 409 on the next run. A systemic refusal stops submitting new items, waits for those in
    flight, counts them, and re-raises. ``interrupt`` (set on SIGTERM) stops submitting too: retry
    waits end at once, and a create not sent yet counts as failed ("not sent: the run was interrupted").
    """
    interrupt = interrupt or threading.Event()
    submitter = Submitter(
        cluster,
        namespace,
        limiter=RateLimiter(settings.qps, settings.burst, clock=clock, sleep=sleep or interrupt.wait),
        sleep=sleep,
        rng=rng or random.Random(),  # noqa: S311 - jitter, not cryptography
        interrupt=interrupt,
    )
    workers = max(settings.workers, 1)
    pending: dict[Future[Outcome], Planned] = {}
    systemic: ClusterError | None = None

    def settle(done: Iterable[Future[Outcome]]) -> None:
        nonlocal systemic
        for future in done:
            planned = pending.pop(future)
            try:
                outcome = future.result()
            except ClusterError as error:
                systemic = systemic or error
                outcome = Outcome("failed", error.status, truncate(str(error), REASON_CHARS))
            except Exception as error:  # a bug in a worker must not lose the count of its item
                logger.exception("Create of %s crashed", planned.item.job_name)
                outcome = Outcome("failed", 0, truncate(f"{type(error).__name__}: {error}", REASON_CHARS))
            _count(planned, outcome, report, capacity)

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="create") as pool:
        try:
            for planned in items:
                job = _render(planned, renderer, report)
                pending[pool.submit(submitter.create, job)] = planned
                if len(pending) >= 2 * workers:  # bounded: memory does not grow with the backlog
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    settle(done)
                if systemic is not None or interrupt.is_set():
                    break
        finally:  # also when the store fails mid-stream: every item handed to a worker is counted
            settle(list(pending))
    if systemic is not None:
        raise systemic


def _render(planned: Planned, renderer: Renderer, report: RunReport) -> dict[str, Any]:
    """Render one item; should its own values break the Template, count it as failed, then stop the run."""
    item = planned.item
    try:
        return renderer.render(item, planned.resources)
    except TemplateError as error:
        report.counts(item.kind, item.solver).failed += 1
        report.failures.append(Failure(item.job_name, item.kind, 0, truncate(str(error), REASON_CHARS)))
        raise


def count_scheduled(planned: Planned, report: RunReport) -> None:
    """Count a Job created (or, in a dry run, that would be): a retry also by the cause it retries."""
    counts = report.counts(planned.item.kind, planned.item.solver)
    counts.scheduled += 1
    if planned.retries is not None:
        counts.retried[planned.retries] += 1
        if planned.capped:
            counts.at_cap[planned.retries] += 1


def _count(planned: Planned, outcome: Outcome, report: RunReport, capacity: Capacity) -> None:
    item = planned.item
    counts = report.counts(item.kind, item.solver)
    if outcome.result == "created":
        count_scheduled(planned, report)
        logger.debug("Created Job %s", item.job_name)
    elif outcome.result == "already":
        counts.already_scheduled += 1
    elif outcome.result == "capacity":
        counts.skipped["capacity"] += 1
        report.stopped_by[item.kind] = report.stopped_by[item.kind] or "capacity"
        capacity.exhaust()
    else:
        counts.failed += 1
        report.failures.append(Failure(item.job_name, item.kind, outcome.status, outcome.reason))
        logger.warning("Could not create Job %s: %s %s", item.job_name, outcome.status, outcome.reason)
