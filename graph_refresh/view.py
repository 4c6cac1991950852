"""What middletier holds that graph-refresh owns, read into what planning needs (SPEC §4, §11).

Pure: Jobs, pods and ResourceQuotas come in as the API's JSON (``kube.py`` reads them). For every item
(by its ``thoth-station.ninja/item`` label) the latest Job counts: the one of the highest attempt. Failed
Jobs are classified (why they failed, when, with which resources) so the run can learn from them.
"""

from __future__ import annotations

import enum
import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

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
from graph_refresh.ledger import AttemptResources, ItemId, is_item_key
from graph_refresh.outcomes import FailedJob, attempt_of, classify, pods_by_job, resources_of

logger = logging.getLogger(__name__)

ITEM_ANNOTATIONS = (ANNOTATION_PACKAGE, ANNOTATION_VERSION, ANNOTATION_INDEX)


class JobState(enum.Enum):
    """What the cluster says about an owned Job, and the skip reason it gives its item."""

    IN_FLIGHT = "in-flight"
    FAILED = "failed-recently"
    COMPLETE = "awaiting-sync"


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


@dataclass(frozen=True)
class Failure:
    """One failed owned Job, classified: what a run learns from."""

    failed: FailedJob
    attempt: int
    resources: AttemptResources
    item: ItemId | None
    """Who failed, from the Job's labels and annotations; None for a Job that lacks them (made by an earlier
    release, or its item label was removed by hand): it is learned when the item's candidate is met."""


@dataclass
class ClusterView:
    """Owned Jobs by item, their failures, live Jobs per kind, Jobs per stream, and the quotas."""

    latest: dict[str, tuple[int, JobState]] = field(default_factory=dict)
    """Item key (the Job's name when it lacks the item label) → attempt and state of its latest Job."""
    failures: dict[str, list[Failure]] = field(default_factory=dict)
    """Item key → its failed Jobs, lowest attempt first."""
    live: Counter[str] = field(default_factory=Counter)
    """Live owned Jobs per kind."""
    per_stream: Counter[str] = field(default_factory=Counter)
    """Owned Jobs in any state per solver name, or per "package-analyzer": how much each stream got lately."""
    quotas: list[Quota] = field(default_factory=list)
    completed: list[ItemId] = field(default_factory=list)
    """The items of the owned Jobs that completed, when asked for (pacing against the graph sync)."""

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


def build_view(
    jobs: Iterable[Mapping[str, Any]],
    pods: Iterable[Mapping[str, Any]],
    quotas: Iterable[Quota],
    *,
    now: float,
    keep_completed: bool = False,
) -> ClusterView:
    """The view of ``jobs`` (every owned Job), their ``pods`` and the namespace's ``quotas``, at time ``now``;
    ``keep_completed`` keeps the items of the Jobs that completed."""
    view = ClusterView(quotas=list(quotas))
    failed_jobs: list[tuple[str, Mapping[str, Any]]] = []
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
            failed_jobs.append((key, job))
        elif state is JobState.COMPLETE and keep_completed and (item := _item_of(metadata, key)) is not None:
            view.completed.append(item)
    if failed_jobs:
        grouped = pods_by_job(pods)
        for key, job in sorted(failed_jobs, key=lambda pair: attempt_of(pair[1])):
            metadata = _mapping(job.get("metadata"))
            failed = classify(job, grouped.get(str(metadata.get("name", "")), []), now=now)
            assert failed is not None, "a FAILED Job has a true Failed condition"
            failure = Failure(failed, attempt_of(job), resources_of(job), _item_of(metadata, key))
            view.failures.setdefault(key, []).append(failure)
            logger.debug("Job %s failed (%s): %s", failed.name, failed.cause, failed.detail)
    return view
