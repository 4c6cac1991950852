"""What a run keeps of each owned Job and pod it lists: exactly the fields the cluster view reads.

Pure code. A Job as the API server lists it is about 6 KB of JSON (managedFields, defaults, the security
context constraint's fields), a pod about 10 KB (network annotations, volumes, the kubelet's status); the
view (``view.py``) and the classifier of failures (``outcomes.py``) read a few dozen bytes of each. A
listed object is cut down to those fields as it is parsed, before the next one is read, so a run holds a
compact record per owned Job, never a page of whole objects. Change the readers, change the fields here:
``tests/test_compact.py`` checks that a compacted object reads exactly as the whole one.

A compacted object keeps the shape of the original (same keys, same nesting), so the readers stay as
they are, and it keeps their view of a malformed object: a value of the wrong type where an object or a
list is expected is kept when it is a scalar and replaced by an empty container of its own type when it
is a container (the readers ignore both alike); an element of a list that is not an object is kept the
same way.

Jobs that succeeded are listed as rows of a server-side Table instead (design: Finished Jobs cost little):
:func:`table_rows` makes of each row the record :func:`job` makes of the whole Job.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeAlias

from graph_refresh.items import (
    ANNOTATION_INDEX,
    ANNOTATION_PACKAGE,
    ANNOTATION_VERSION,
    LABEL_ATTEMPT,
    LABEL_ITEM,
    LABEL_KIND,
    LABEL_SOLVER,
    first_attempt_labels,
)
from graph_refresh.retry.failures import JOB_NAME_LABELS

KEEP = "keep"
"""A leaf of a field tree: the value is kept as it is."""
SHARED = "shared"
"""A leaf whose text thousands of objects repeat (a reason, a solver name, a memory size): kept as one
shared string (``sys.intern``) rather than one copy per object."""
Fields: TypeAlias = "str | dict[str, Fields] | list[Fields]"
"""Which fields to keep: a leaf (``KEEP``, ``SHARED``); a mapping (an object, keeping only these keys, each
cut by its tree); or a one-element list (a list, each element cut by that tree)."""

_CONDITIONS: Fields = [{"type": SHARED, "status": SHARED, "reason": SHARED, "lastTransitionTime": SHARED}]
_MEMORY: Fields = {"memory": SHARED}
_CONTAINER: Fields = {"name": SHARED, "resources": {"requests": _MEMORY, "limits": _MEMORY}}

_JOB_LABELS: Fields = {LABEL_ITEM: KEEP, LABEL_KIND: SHARED, LABEL_SOLVER: SHARED, LABEL_ATTEMPT: SHARED}

JOB_FIELDS: Fields = {
    "metadata": {
        "name": KEEP,
        "labels": _JOB_LABELS,
        "annotations": {ANNOTATION_PACKAGE: KEEP, ANNOTATION_VERSION: SHARED, ANNOTATION_INDEX: SHARED},
    },
    "spec": {
        "activeDeadlineSeconds": KEEP,
        "template": {
            "spec": {
                "activeDeadlineSeconds": KEEP,
                "restartPolicy": SHARED,
                "initContainers": [_CONTAINER],
                "containers": [_CONTAINER],
            }
        },
    },
}  # and status.conditions, cut apart: only those a reader looks at (JOB_CONDITIONS)
"""What ``owned.build_view`` and ``retry.failures`` (``cause_of``, ``attempt_of``, ``resources_of``) read of a Job:
its name, our labels and annotations, its conditions, each container's memory, its deadlines, and the
pods' restart policy (which pods to list)."""

UNFAILED_JOB_FIELDS: Fields = {"metadata": {"name": KEEP, "labels": _JOB_LABELS}}

COMPLETED_JOB_FIELDS: Fields = {
    "metadata": {
        "name": KEEP,
        "labels": _JOB_LABELS,
        "annotations": {ANNOTATION_PACKAGE: KEEP, ANNOTATION_VERSION: SHARED, ANNOTATION_INDEX: SHARED},
    }
}
"""What the view reads of a completed Job when the run paces against the graph sync: also the item it was
made for (is the graph still missing its result?)."""
"""What the view reads of a Job that did not fail (most of them): whose it is and its state; what it ran
with and the item it was made for matter only to learn from a failure."""

_TERMINATED: Fields = {"terminated": {"reason": SHARED}}
_CONTAINER_STATUS: Fields = {"name": SHARED, "state": _TERMINATED, "lastState": _TERMINATED}

POD_FIELDS: Fields = {
    "metadata": {"name": KEEP, "labels": {label: KEEP for label in JOB_NAME_LABELS}},
    "status": {
        "reason": SHARED,
        # and conditions, cut apart: only those a reader looks at (POD_CONDITIONS)
        "initContainerStatuses": [_CONTAINER_STATUS],
        "containerStatuses": [_CONTAINER_STATUS],
        "ephemeralContainerStatuses": [_CONTAINER_STATUS],
    },
}
"""What ``retry.failures.pods_by_job`` and ``cause_of`` read of a pod: its name, the Job that made it,
its status reason, its conditions and why each container terminated."""

JOB_CONDITIONS = frozenset({"Complete", "Failed"})  # the Job conditions the view looks at
POD_CONDITIONS = frozenset({"DisruptionTarget"})  # the only pod condition the classifier looks at


def _emptied(value: Any) -> Any:
    """A value of the wrong type for its field, as the readers see it: a scalar as it is, a container empty."""
    if isinstance(value, dict):
        return {}
    if isinstance(value, list):
        return []
    return value


def cut(value: Any, fields: Fields) -> Any:
    """``value`` (parsed JSON) with only the ``fields`` of its tree. A key whose value is cut down to an
    empty object or list is left out: every reader takes a missing object or list for an empty one."""
    if isinstance(fields, str):
        return sys.intern(value) if fields is SHARED and isinstance(value, str) else value
    if isinstance(fields, dict):
        if not isinstance(value, dict):
            return _emptied(value)
        kept = {}
        for name, inner in fields.items():  # a tree has a few names, an object may have many
            if name not in value:
                continue
            found = value[name]
            if inner is SHARED:  # the leaves inline: this runs for every field of every listed object
                kept[name] = sys.intern(found) if isinstance(found, str) else found
            elif inner is KEEP:
                kept[name] = found
            else:
                found = cut(found, inner)
                if found or not isinstance(found, dict | list):
                    kept[name] = found
        return kept
    if not isinstance(value, list):
        return _emptied(value)
    (inner,) = fields
    return [cut(element, inner) for element in value]


def _with_conditions(
    obj: dict[str, Any], fields: Fields | None, types: frozenset[str], *, completed: Fields = UNFAILED_JOB_FIELDS
) -> dict[str, Any]:
    """``obj`` cut to ``fields``, keeping of its status conditions only those of ``types`` (a reader skips
    the others, and those that are not objects, alike). ``fields`` may be a function of the conditions
    kept: None then picks ``JOB_FIELDS`` or, for a Job without a true ``Failed`` one, ``UNFAILED_JOB_FIELDS``
    (``completed`` for one with a true ``Complete`` condition)."""
    status = obj.get("status")
    conditions = status.get("conditions") if isinstance(status, dict) else None
    if isinstance(conditions, list):
        conditions = [c for c in conditions if isinstance(c, dict) and c.get("type") in types]
    if fields is None:
        failed = isinstance(conditions, list) and any(
            c.get("type") == "Failed" and c.get("status") == "True" for c in conditions
        )
        complete = isinstance(conditions, list) and any(
            c.get("type") == "Complete" and c.get("status") == "True" for c in conditions
        )
        fields = JOB_FIELDS if failed else completed if complete else UNFAILED_JOB_FIELDS
    kept: dict[str, Any] = cut(obj, fields)
    if isinstance(status, dict) and "conditions" in status:
        kept_conditions = cut(conditions, _CONDITIONS)
        if kept_conditions or not isinstance(kept_conditions, list):
            kept.setdefault("status", {})["conditions"] = kept_conditions
    return kept


def job(obj: dict[str, Any]) -> dict[str, Any]:
    """A listed Job cut down to what the view reads: ``JOB_FIELDS`` when it has a true ``Failed``
    condition, ``UNFAILED_JOB_FIELDS`` otherwise; with only its ``Complete`` and ``Failed`` conditions (in
    their order: the first true one decides the Job's state)."""
    return _with_conditions(obj, None, JOB_CONDITIONS)


def pod(obj: dict[str, Any]) -> dict[str, Any]:
    """A listed pod cut down to what the classifier reads (``POD_FIELDS``), with only its
    ``DisruptionTarget`` conditions (the kubelet's five are on every pod)."""
    return _with_conditions(obj, POD_FIELDS, POD_CONDITIONS)


def job_keeping_completed(obj: dict[str, Any]) -> dict[str, Any]:
    """:func:`job`, keeping of a completed Job its item too (``COMPLETED_JOB_FIELDS``)."""
    return _with_conditions(obj, None, JOB_CONDITIONS, completed=COMPLETED_JOB_FIELDS)


# --- rows of a Table of the Jobs that succeeded -------------------------------------------------------------

NAME_COLUMN, STATUS_COLUMN = "Name", "Status"
PRINTED_COLUMNS = ("Duration", "Age")  # in this order, the keys of ``PRINTED``
"""The Table's times, as the API server prints them (``5m3s``, ``3d``: two or three significant figures):
from the Job's start to its completion, and since its creation. A record keeps them under ``PRINTED``."""
PRINTED = "printed"
_PRINTED_PART = re.compile(r"(\d{1,9})([ydhms])")
_PRINTED_UNITS = {"y": 365 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}


def printed_seconds(text: object) -> float | None:
    """The seconds a printed duration says (``5m3s``, ``3h7m``, ``2d5h``: to its two or three figures); None for
    anything else (``<unknown>``, an empty cell)."""
    if not isinstance(text, str) or not text or len(text) > 32:
        return None
    parts = _PRINTED_PART.findall(text)
    if "".join(number + unit for number, unit in parts) != text:
        return None
    return float(sum(int(number) * _PRINTED_UNITS[unit] for number, unit in parts))


_COMPLETE = [{"type": "Complete", "status": "True"}]  # shared by every record: no reader changes a record

RowReader = Callable[[Mapping[str, Any]], dict[str, Any] | str]


def table_rows(columns: Sequence[str]) -> RowReader:
    """How to read each row of a Table of Jobs that succeeded (``status.successful=1``) whose columns are
    ``columns``: as the record :func:`job` (or :func:`job_keeping_completed`) makes of the whole Job.

    Who the Job is comes from the row's object when the Table carries its metadata (``includeObject=Metadata``:
    its labels and annotations); without it, from its name, which the row carries, and which says everything
    for an item's first attempt (:func:`graph_refresh.items.first_attempt_labels`; list first attempts alone
    that way). Its state: complete, unless the Table has a Status column (Kubernetes 1.30 on) that says
    otherwise: still running while the Job controller has not written ``Complete`` yet, or failed, for which the
    reader returns the Job's name instead: a failure is learned from the whole Job."""
    index = {name: position for position, name in enumerate(columns)}
    name_at, status_at = index.get(NAME_COLUMN), index.get(STATUS_COLUMN)
    duration_at, age_at = (index.get(column) for column in PRINTED_COLUMNS)
    width = len(columns)

    def read(row: Mapping[str, Any]) -> dict[str, Any] | str:
        cells, obj = row.get("cells"), row.get("object")
        if not isinstance(cells, list) or len(cells) < width:  # a row shorter than the Table: what it has
            cells = [*(cells if isinstance(cells, list) else ()), *[None] * width]
        status = "Complete" if status_at is None else cells[status_at]
        metadata: Any = obj.get("metadata") if isinstance(obj, dict) else None
        name = metadata.get("name") if isinstance(metadata, dict) else None if name_at is None else cells[name_at]
        if status == "Failed" and isinstance(name, str):
            return name
        if isinstance(metadata, dict):
            record: dict[str, Any] = cut(obj, COMPLETED_JOB_FIELDS)
        else:
            labels = first_attempt_labels(name) if isinstance(name, str) else None
            record = {"metadata": {"name": name} if labels is None else {"name": name, "labels": labels}}
        if status == "Complete":
            record["status"] = {"conditions": _COMPLETE}
        record[PRINTED] = {
            "Duration": None if duration_at is None else cells[duration_at],
            "Age": None if age_at is None else cells[age_at],
        }
        return record

    return read
