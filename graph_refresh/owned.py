"""What middletier holds that graph-refresh owns, read into what planning needs (design: Items, Learning).

Pure: Jobs, pods and ResourceQuotas come in as the API's JSON (``kube.py`` reads them). For every item
(by its ``thoth-station.ninja/item`` label) the latest Job counts: the one of the highest attempt. Failed
Jobs are classified (why they failed, when, with which resources) so the run can learn from them.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from graph_refresh import compact
from graph_refresh.capacity import Quota
from graph_refresh.items import (
    ANNOTATION_INDEX,
    ANNOTATION_PACKAGE,
    ANNOTATION_VERSION,
    KINDS,
    LABEL_ITEM,
    LABEL_KIND,
    LABEL_SOLVER,
    SOLVER,
    WorkItem,
)
from graph_refresh.retry.failures import FailedAttempt, attempt_of, cause_of, pods_by_job, resources_of
from graph_refresh.retry.model import AttemptResources, ItemId, is_item_key
from graph_refresh.vocabulary import JobState

logger = logging.getLogger(__name__)

ITEM_ANNOTATIONS = (ANNOTATION_PACKAGE, ANNOTATION_VERSION, ANNOTATION_INDEX)


def job_state(job: Mapping[str, Any]) -> JobState:
    """In flight until a ``Complete`` or ``Failed`` condition is true (a Job without status is in flight)."""
    status = job.get("status")
    conditions = status.get("conditions") if isinstance(status, dict) else None
    for condition in conditions if isinstance(conditions, list) else []:
        if not isinstance(condition, dict):
            continue
        if condition.get("status") == "True" and condition.get("type") == "Failed":
            return JobState.FAILED
        if condition.get("status") == "True" and condition.get("type") == "Complete":
            return JobState.COMPLETE
    return JobState.IN_FLIGHT


@dataclass
class OwnedJobs:
    """Owned Jobs by item, their failures, live Jobs per kind, Jobs per stream, and the quotas."""

    latest: dict[str, tuple[int, JobState]] = field(default_factory=dict)
    """Item key (the Job's name when it lacks the item label) → attempt and state of its latest Job."""
    failures: dict[str, list[FailedAttempt]] = field(default_factory=dict)
    """Item key → its failed Jobs, lowest attempt first."""
    live: Counter[str] = field(default_factory=Counter)
    """Live owned Jobs per kind."""
    per_stream: Counter[str] = field(default_factory=Counter)
    """Owned Jobs in any state per solver name, or per "package-analyzer": how much each stream got lately."""
    quotas: list[Quota] = field(default_factory=list)
    completed: list[ItemId] = field(default_factory=list)
    """The items of the owned Jobs that completed, when asked for (pacing against the graph sync)."""
    durations: dict[str, float] = field(default_factory=dict)
    """Item key → how long its completed Job ran (start to completion, as the Table of succeeded Jobs prints it),
    for the keys asked for (the items whose windows a run scores)."""

    def latest_attempt(self, item: WorkItem) -> int:
        """The attempt number of the item's latest Job; 0 when it has none."""
        latest = self.latest.get(item.key) or self.latest.get(item.job_name)
        return 0 if latest is None else latest[0]

    def state(self, item: WorkItem) -> JobState | None:
        """The state of the item's latest Job (a Job without our item label counts by its name); None when
        it has none."""
        if not self.latest:
            return None
        latest = self.latest.get(item.key) or self.latest.get(item.job_name)
        return None if latest is None else latest[1]


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(mapping: Any, key: str) -> str | None:
    value = mapping.get(key) if isinstance(mapping, dict) else None
    return value if isinstance(value, str) and value else None


def _conditions(job: Mapping[str, Any]) -> Any:
    status = job.get("status")
    return status.get("conditions") if isinstance(status, dict) else None


def _item_of(metadata: Mapping[str, Any], key: str) -> ItemId | None:
    """The item a Job was made for, from its labels and annotations; None when they are incomplete or ``key``
    (its item label, else its name) is not an item key."""
    if not is_item_key(key):
        return None
    labels, annotations = metadata.get("labels"), metadata.get("annotations")
    kind = next((k for k in KINDS if k == _text(labels, LABEL_KIND)), None)
    solver = _text(labels, LABEL_SOLVER)
    package, version, index = (_text(annotations, name) for name in ITEM_ANNOTATIONS)
    if kind is None or package is None or version is None or index is None or (kind == SOLVER) != bool(solver):
        return None
    return ItemId(key, kind, solver, package, version, index)


FAILED_PODS = "status.phase=Failed"
"""The pods of failed Jobs whose pods never restart (``restartPolicy: Never``, the Templates' own): a
container that fails or is OOM-killed, and an eviction, fail its pod for good."""
UNSUCCESSFUL_PODS = "status.phase!=Succeeded"
"""The pods of failed Jobs when one of them restarts its containers in place (``OnFailure``): such a pod is
still Running (its ``lastState`` holding the OOM kill) when the Job controller gives up and deletes it, so
only pods that succeeded are known to say nothing about a failure."""


def pod_selector(restart_policies: Iterable[object]) -> str:
    """The field selector that lists every pod that can tell why a Job failed, given the failed Jobs' pod
    restart policies: the failed pods when all of them are ``Never``, else every pod that did not succeed.
    Either way the pods of completed Jobs, most of the namespace, stay on the server."""
    return FAILED_PODS if all(policy == "Never" for policy in restart_policies) else UNSUCCESSFUL_PODS


@dataclass(frozen=True, slots=True)
class _FailedJob:
    """What the view keeps of a failed Job until its pods are read: all it learns from, not the Job."""

    key: str
    name: Any
    """``metadata.name`` as listed"""
    job_name: str
    """The name its pods name (``str(name)``)"""
    conditions: Any
    """``status.conditions`` as listed: with the name, what ``cause_of`` reads of the Job."""
    attempt: int
    resources: AttemptResources
    item: ItemId | None


def build_view(
    jobs: Iterable[Mapping[str, Any]],
    pods: Callable[[str], Iterable[Mapping[str, Any]]],
    quotas: Iterable[Quota],
    *,
    now: float,
    keep_completed: bool = False,
    timed: Collection[str] = frozenset(),
) -> OwnedJobs:
    """The view of ``jobs`` (every owned Job), their pods and the namespace's ``quotas``, at time ``now``;
    ``keep_completed`` keeps the items of the Jobs that completed (pacing against the graph sync); ``timed`` names
    the items whose completed Job's duration to keep.

    ``pods(field_selector)`` lists the owned pods that selector selects; it is called once, after the
    Jobs, and only when some Job failed. Only the pods of failed Jobs are kept, and of a failed Job only
    what the run learns from."""
    view = OwnedJobs(quotas=list(quotas))
    failed_jobs: list[tuple[_FailedJob, object]] = []  # and its pods' restart policy
    for job in jobs:
        metadata = _mapping(job.get("metadata"))
        labels = _mapping(metadata.get("labels"))
        key = _text(labels, LABEL_ITEM) or str(metadata.get("name", ""))
        kind = labels.get(LABEL_KIND, SOLVER)
        state, attempt = job_state(job), attempt_of(job)
        view.per_stream[labels.get(LABEL_SOLVER) or kind] += 1
        if state is JobState.IN_FLIGHT:
            view.live[kind] += 1
        if key not in view.latest or view.latest[key][0] < attempt:
            view.latest[key] = (attempt, state)
        if state is JobState.FAILED:
            restart = _mapping(_mapping(_mapping(job.get("spec")).get("template")).get("spec")).get("restartPolicy")
            item = _item_of(metadata, key)
            name = metadata.get("name")
            record = _FailedJob(
                key, name, str(metadata.get("name", "")), _conditions(job), attempt, resources_of(job), item
            )
            failed_jobs.append((record, restart))
        elif state is JobState.COMPLETE and keep_completed and (item := _item_of(metadata, key)) is not None:
            view.completed.append(item)
        if state is JobState.COMPLETE and key in timed:
            took = compact.printed_seconds(_mapping(job.get(compact.PRINTED)).get("Duration"))
            if took is not None:
                view.durations[key] = took
    if failed_jobs:
        unread = Counter(record.job_name for record, _ in failed_jobs)  # failed Jobs yet to read their pods
        grouped = pods_by_job(pods(pod_selector(restart for _, restart in failed_jobs)), only=unread)
        records = sorted((record for record, _ in failed_jobs), key=lambda record: record.attempt)
        records.reverse()  # popped from the end: lowest attempt first, each let go once learned from
        del failed_jobs
        while records:
            record = records.pop()
            job = {"metadata": {"name": record.name}, "status": {"conditions": record.conditions}}
            failed = cause_of(job, grouped.get(record.job_name, []), now=now)
            unread[record.job_name] -= 1
            if not unread[record.job_name]:
                grouped.pop(record.job_name, None)
            assert failed is not None, "a FAILED Job has a true Failed condition"
            failure = FailedAttempt(failed, record.attempt, record.resources, record.item)
            view.failures.setdefault(record.key, []).append(failure)
            logger.debug("Job %s failed (%s): %s", failed.name, failed.cause, failed.detail)
    return view
