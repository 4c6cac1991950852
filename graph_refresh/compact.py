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
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeAlias

from graph_refresh.items import (
    ANNOTATION_INDEX,
    ANNOTATION_PACKAGE,
    ANNOTATION_VERSION,
    LABEL_ATTEMPT,
    LABEL_ITEM,
    LABEL_KIND,
    LABEL_SOLVER,
)
from graph_refresh.outcomes import JOB_NAME_LABELS

KEEP = True
"""A leaf of a field tree: the value is kept as it is."""
Fields: TypeAlias = "bool | Mapping[str, Fields] | list[Fields]"
"""Which fields to keep: ``KEEP``; a mapping (an object, keeping only these keys, each cut by its tree);
or a one-element list (a list, each element cut by that tree)."""

_CONDITION: Fields = {"type": KEEP, "status": KEEP, "reason": KEEP, "lastTransitionTime": KEEP}
_MEMORY: Fields = {"memory": KEEP}
_CONTAINER: Fields = {"name": KEEP, "resources": {"requests": _MEMORY, "limits": _MEMORY}}

JOB_FIELDS: Fields = {
    "metadata": {
        "name": KEEP,
        "labels": {label: KEEP for label in (LABEL_ITEM, LABEL_KIND, LABEL_SOLVER, LABEL_ATTEMPT)},
        "annotations": {name: KEEP for name in (ANNOTATION_PACKAGE, ANNOTATION_VERSION, ANNOTATION_INDEX)},
    },
    "spec": {
        "activeDeadlineSeconds": KEEP,
        "template": {
            "spec": {
                "activeDeadlineSeconds": KEEP,
                "restartPolicy": KEEP,
                "initContainers": [_CONTAINER],
                "containers": [_CONTAINER],
            }
        },
    },
    "status": {"conditions": [_CONDITION]},
}
"""What ``view.build_view`` and ``outcomes`` (``classify``, ``attempt_of``, ``resources_of``) read of a Job:
its name, our labels and annotations, its conditions, each container's memory, its deadlines, and the
pods' restart policy (which pods to list)."""

_TERMINATED: Fields = {"terminated": {"reason": KEEP}}
_CONTAINER_STATUS: Fields = {"name": KEEP, "state": _TERMINATED, "lastState": _TERMINATED}

POD_FIELDS: Fields = {
    "metadata": {"name": KEEP, "labels": {label: KEEP for label in JOB_NAME_LABELS}},
    "status": {
        "reason": KEEP,
        "conditions": [{"type": KEEP, "status": KEEP}],
        "initContainerStatuses": [_CONTAINER_STATUS],
        "containerStatuses": [_CONTAINER_STATUS],
        "ephemeralContainerStatuses": [_CONTAINER_STATUS],
    },
}
"""What ``outcomes.pods_by_job`` and ``outcomes.classify`` read of a pod: its name, the Job that made it,
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
    """``value`` (parsed JSON) with only the ``fields`` of its tree."""
    if isinstance(fields, bool):
        return value
    if isinstance(fields, Mapping):
        if not isinstance(value, dict):
            return _emptied(value)
        return {name: cut(value[name], inner) for name, inner in fields.items() if name in value}
    if not isinstance(value, list):
        return _emptied(value)
    (inner,) = fields
    return [cut(element, inner) for element in value]


def _only(obj: dict[str, Any], types: frozenset[str]) -> dict[str, Any]:
    """``obj`` without the status conditions whose type no reader looks at (nor those that are not objects,
    which every reader skips)."""
    status = obj.get("status")
    if isinstance(status, dict) and isinstance(status.get("conditions"), list):
        status["conditions"] = [c for c in status["conditions"] if isinstance(c, dict) and c.get("type") in types]
    return obj


def job(obj: dict[str, Any]) -> dict[str, Any]:
    """A listed Job cut down to what the view reads (``JOB_FIELDS``), with only its ``Complete`` and
    ``Failed`` conditions (in their order: the first true one decides the Job's state)."""
    return _only(cut(obj, JOB_FIELDS), JOB_CONDITIONS)


def pod(obj: dict[str, Any]) -> dict[str, Any]:
    """A listed pod cut down to what the classifier reads (``POD_FIELDS``), with only its
    ``DisruptionTarget`` conditions (the kubelet's five are on every pod)."""
    return _only(cut(obj, POD_FIELDS), POD_CONDITIONS)
