"""Where Templates meet the cluster: render planned items into Jobs, then create them or, in a dry
run, write them out; count every outcome in the run report (design: A run)."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import yaml

from graph_refresh.backoff import CREATES, Backoff
from graph_refresh.config import ClusterSettings
from graph_refresh.errors import (
    AlreadyExists,
    ClusterError,
    Forbidden,
    NoAnswer,
    QuotaExceeded,
    QuotaPending,
    ServerError,
    TemplateError,
    Throttled,
    Unauthorized,
    truncate,
)
from graph_refresh.fate import Planned
from graph_refresh.items import is_job_name
from graph_refresh.output import write_atomically
from graph_refresh.render import Renderer
from graph_refresh.report import CreateFailure, RunReport
from graph_refresh.vocabulary import SkipReason

logger = logging.getLogger(__name__)

_YamlDumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml when present: same output, ~4x faster


def dry_run(
    items: Iterable[Planned],
    *,
    renderer: Renderer,
    report: RunReport,
    output_dir: Path | None,
    on_planned: Callable[[], None] = lambda: None,
) -> None:
    """Count every planned item as scheduled; with ``output_dir``, render it and write its Job's YAML manifest.
    ``on_planned`` is called for each item counted.

    Without ``output_dir`` nothing is rendered: what the plan shows needs no Job (each stream's Template was
    rendered once before planning, to price its Jobs, and a retry's Job is priced as the planner goes).
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
        if output_dir is not None:
            job = _render(planned, renderer, report)
            text = yaml.dump(job, Dumper=_YamlDumper, sort_keys=False, default_flow_style=False, allow_unicode=True)
            write_atomically(output_dir / f"{item.job_name}.yaml", text)
        count_scheduled(planned, report)
        on_planned()
        if debug:
            logger.debug("Would create Job %s (%s %s)", item.job_name, item.kind, item.candidate)


REASON_CHARS = 200  # a failure's reason in the run report: enough for the API's message, not its whole body


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


class Result(StrEnum):
    """What became of one create."""

    CREATED = "created"
    ALREADY = "already"
    """It existed (409): scheduled by an earlier run or by someone else."""
    CAPACITY = "capacity"
    """A ResourceQuota refused it, or it was not sent once one had."""
    FAILED = "failed"


@dataclass(frozen=True)
class Outcome:
    """What became of one create, with the HTTP status and the reason when it did not work."""

    result: Result
    status: int | None = None
    """The HTTP status of the answer; None when no answer applies (never sent, no answer, not rendered)."""
    reason: str = ""
    unanswered: bool = False
    """It failed because no answer came, after every retry: the API server may be gone."""


CREATED = Outcome(Result.CREATED)
UNANSWERED_IN_A_ROW = 8  # creates ending with no answer, one after another, that stop the run: the API is gone
INTERRUPTED = Outcome(Result.FAILED, None, "not sent (interrupted)")  # a create a SIGTERM kept from going out
NOT_SENT_FOR_QUOTA = Outcome(Result.CAPACITY, 403, "not sent: a ResourceQuota refused an earlier create")


@dataclass(frozen=True)
class Retry:
    """Send the create again after the policy's wait; ``retry_after`` is the server's ask, when it made one."""

    maybe_sent: bool
    """Whether some attempt so far may have created the Job though its answer was lost."""
    retry_after: float | None = None


@dataclass(frozen=True)
class Done:
    """The create is over with ``outcome``."""

    outcome: Outcome


@dataclass(frozen=True)
class Stop:
    """The create is over with ``outcome``, and no more creates are sent: those not sent yet become ``others``.

    ``systemic``: the refusal fails the run (the error is raised once the creates in flight are counted).
    """

    outcome: Outcome
    others: Outcome
    systemic: bool = False


CreateStep = Retry | Done | Stop


def after_attempt(
    error: ClusterError,
    *,
    attempt: int,
    attempts: int,
    maybe_sent: bool,
    stopped: Outcome | None,
    final_ask: bool = False,
) -> CreateStep:
    """What to do after the create attempt ``attempt`` (0 for the first, of ``attempts``) failed with ``error``.

    ``maybe_sent``: an earlier attempt's answer was lost, so the Job may exist; then a 409 is this run's own
    create arriving late (``created``). ``stopped``: the outcome of creates not sent since the run stopped
    sending (quota full, API refusal, interrupt), None while it sends. ``final_ask``: this attempt was sent
    after the stop only to learn whether a maybe-sent Job exists, so it is the last. Pure: no I/O, no clock.
    """
    reason = truncate(str(error), REASON_CHARS)
    status = error.status or None  # 0: no answer arrived
    if isinstance(error, AlreadyExists):
        return Done(CREATED if maybe_sent else Outcome(Result.ALREADY, status, reason))
    if isinstance(error, QuotaExceeded):
        if maybe_sent:  # the quota may be full of this very Job, created by the lost attempt
            outcome = Outcome(Result.FAILED, status, f"may exist (an earlier answer was lost): {reason}")
        else:
            outcome = Outcome(Result.CAPACITY, status, reason)
        return Stop(outcome, NOT_SENT_FOR_QUOTA)
    if isinstance(error, Unauthorized | Forbidden):
        refused = Outcome(Result.FAILED, status, "not sent: the API refused an earlier create")
        return Stop(Outcome(Result.FAILED, status, reason), refused, systemic=True)
    if not isinstance(error, Throttled | ServerError | NoAnswer | QuotaPending):
        return Done(Outcome(Result.FAILED, status, reason))  # rejected (e.g. 422): retrying cannot help
    # Worth another attempt: throttled, server error, no answer, or a new quota not yet calculated.
    maybe_sent = maybe_sent or (isinstance(error, ServerError | NoAnswer) and error.reached)
    failed = Done(Outcome(Result.FAILED, status, reason, unanswered=isinstance(error, NoAnswer)))
    if final_ask:
        return failed  # asked once more after the stop: that was the last word
    if stopped is not None and not maybe_sent:
        return Done(stopped)  # stopped while this attempt was out: no waiting for a retry
    if attempt + 1 >= attempts:
        return failed
    return Retry(maybe_sent, error.retry_after if isinstance(error, Throttled) else None)


class JobCreator(Protocol):
    """What the Submitter needs of the cluster: :class:`graph_refresh.kube.Cluster` has it."""

    def create_job(self, namespace: str, job: dict[str, Any], *, dry_run: bool = False) -> None: ...


class Submitter:
    """Creates Jobs with retries; raises ClusterError for systemic refusals (401, 403 other than quota)."""

    def __init__(
        self,
        cluster: JobCreator,
        namespace: str,
        *,
        limiter: RateLimiter,
        sleep: Callable[[float], None] | None,
        rng: random.Random,
        interrupt: threading.Event | None = None,
        policy: Backoff = CREATES,
        server_dry_run: bool = False,
    ) -> None:
        self._cluster = cluster
        self._namespace = namespace
        self._limiter = limiter
        self._interrupt = interrupt or threading.Event()
        self._sleep = sleep or self._interrupt.wait  # a retry wait ends early when the run is interrupted
        self._rng = rng
        self._policy = policy
        self._dry_run = server_dry_run
        self._stopped: Outcome | None = None  # set once: what every create not yet sent becomes

    def halt(self, outcome: Outcome) -> None:
        """Send no more creates: the quota is full, or the API refused us. Creates already sent finish."""
        self._stopped = self._stopped or outcome

    def _stopped_now(self) -> Outcome | None:
        if self._interrupt.is_set():
            self.halt(INTERRUPTED)
        return self._stopped

    def create(self, job: dict[str, Any]) -> Outcome:
        """Create one Job, retrying as :func:`after_attempt` says. Once the run has stopped sending (see :meth:`stop`),
        a Job not sent yet gets the stop's outcome; one that may have been sent is asked about once more."""
        maybe_sent = False
        attempt = 0
        while True:
            if (stopped := self._stopped_now()) is not None and not maybe_sent:
                return stopped  # before waiting for a token that would not be used
            self._limiter.acquire()
            if (stopped := self._stopped_now()) is not None and not maybe_sent:
                return stopped
            try:
                self._cluster.create_job(self._namespace, job, dry_run=self._dry_run)
                return CREATED
            except ClusterError as error:
                decision = after_attempt(
                    error,
                    attempt=attempt,
                    attempts=self._policy.attempts,
                    maybe_sent=maybe_sent,
                    stopped=self._stopped_now(),
                    final_ask=stopped is not None,
                )
                if isinstance(decision, Stop):
                    self.halt(decision.others)
                    if decision.systemic:
                        raise
                if not isinstance(decision, Retry):
                    return decision.outcome
                answer = str(error.status) if error.status else "no answer"
            maybe_sent = decision.maybe_sent
            wait = self._policy.delay(attempt, self._rng, decision.retry_after)
            logger.info("Create of %s got %s, retrying in %.1fs", job["metadata"]["name"], answer, wait)
            self._sleep(wait)
            attempt += 1


def submit(
    items: Iterable[Planned],
    *,
    renderer: Renderer,
    report: RunReport,
    cluster: JobCreator,
    namespace: str,
    on_quota_refused: Callable[[], None] = lambda: None,
    settings: ClusterSettings,
    sleep: Callable[[float], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    rng: random.Random | None = None,
    interrupt: threading.Event | None = None,
    policy: Backoff = CREATES,
    unanswered_limit: int = UNANSWERED_IN_A_ROW,
    server_dry_run: bool = False,
    on_planned: Callable[[], None] = lambda: None,
    on_answered: Callable[[Result], None] = lambda result: None,
    on_outcome: Callable[[Planned, Result], None] = lambda planned, result: None,
) -> None:
    """Create the Job of every item, ``settings.workers`` at a time, and count each outcome.
    ``on_planned`` is called as each item is handed to a worker, ``on_answered`` with each outcome counted,
    ``on_outcome`` with the item too.

    Order of effects per item: render, create, then count; a crash after a create is deduplicated
    by the 409 on the next run. A systemic refusal stops submitting new items, waits for those in
    flight, counts them, and re-raises. ``interrupt`` (set on SIGTERM) stops submitting too: retry
    waits end at once, and a create not sent yet counts as failed ("not sent (interrupted)").
    ``policy`` says how often and how long apart a create is retried. ``server_dry_run`` sends every create
    with ``dryRun=All``: the API server validates and quota-checks each Job and stores none; outcomes are
    counted the same way.
    """
    interrupt = interrupt or threading.Event()
    submitter = Submitter(
        cluster,
        namespace,
        limiter=RateLimiter(settings.qps, settings.burst, clock=clock, sleep=sleep or interrupt.wait),
        sleep=sleep,
        rng=rng or random.Random(),  # noqa: S311 - jitter, not cryptography
        interrupt=interrupt,
        policy=policy,
        server_dry_run=server_dry_run,
    )
    workers = max(settings.workers, 1)
    pending: dict[Future[Outcome], Planned] = {}
    systemic: ClusterError | None = None
    unanswered = 0  # creates in a row that got no answer after their retries

    def settle(done: Iterable[Future[Outcome]]) -> None:
        nonlocal systemic, unanswered
        for future in done:
            planned = pending.pop(future)
            try:
                outcome = future.result()
            except ClusterError as error:
                systemic = systemic or error
                outcome = Outcome(Result.FAILED, error.status or None, truncate(str(error), REASON_CHARS))
            except Exception as error:  # a bug in a worker must not lose the count of its item
                logger.exception("Create of %s crashed", planned.item.job_name)
                outcome = Outcome(Result.FAILED, None, truncate(f"{type(error).__name__}: {error}", REASON_CHARS))
            _count(planned, outcome, report, on_quota_refused)
            on_answered(outcome.result)
            on_outcome(planned, outcome.result)
            if outcome.unanswered:
                unanswered += 1
            elif outcome.status is not None or outcome.result in (Result.CREATED, Result.ALREADY):
                unanswered = 0  # the server answered this one
            if unanswered >= unanswered_limit and systemic is None:
                systemic = NoAnswer(
                    f"the API server stopped answering: {unanswered} creates in a row got no answer after their "
                    "retries; what is left waits for the next run",
                    reached=False,
                )
                submitter.halt(Outcome(Result.FAILED, None, "not sent: the API server stopped answering"))

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="create") as pool:
        try:
            for planned in items:
                job = _render(planned, renderer, report)
                pending[pool.submit(submitter.create, job)] = planned
                on_planned()
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
        report.failures.append(CreateFailure(item.job_name, item.kind, None, truncate(str(error), REASON_CHARS)))
        raise


def count_scheduled(planned: Planned, report: RunReport) -> None:
    """Count a Job created (or, in a dry run, that would be): a retry also by the cause it retries."""
    counts = report.counts(planned.item.kind, planned.item.solver)
    counts.scheduled += 1
    counts.lanes[planned.lane] += 1
    if planned.retries is not None:
        counts.retried[planned.retries] += 1
        if planned.capped:
            counts.at_cap[planned.retries] += 1


def _count(planned: Planned, outcome: Outcome, report: RunReport, on_quota_refused: Callable[[], None]) -> None:
    item = planned.item
    counts = report.counts(item.kind, item.solver)
    if outcome.result is Result.CREATED:
        count_scheduled(planned, report)
        logger.debug("Created Job %s", item.job_name)
    elif outcome.result is Result.ALREADY:
        counts.already_scheduled += 1
    elif outcome.result is Result.CAPACITY:
        counts.skipped[SkipReason.CAPACITY] += 1
        report.stop(item.kind, SkipReason.CAPACITY, f"ResourceQuota: {outcome.reason}")
        on_quota_refused()
    else:
        counts.failed += 1
        report.failures.append(CreateFailure(item.job_name, item.kind, outcome.status, outcome.reason))
        answer = "" if outcome.status is None else f"{outcome.status} "
        logger.warning("Could not create Job %s: %s%s", item.job_name, answer, outcome.reason)
