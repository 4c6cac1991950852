"""The words every part of a run shares about an item (design: One decision): why it was skipped, which lane gave
its slot, what state its latest Job is in. Closed vocabularies, on the ground floor: every module may use them,
and they depend on nothing."""

from __future__ import annotations

import enum


class SkipReason(enum.StrEnum):
    """Why a candidate examined was not scheduled (design: Items, Learning), in the plan table's order."""

    INVALID = "invalid"
    IN_FLIGHT = "in-flight"
    FAILED_RECENTLY = "failed-recently"
    QUARANTINED = "quarantined"
    AWAITING_SYNC = "awaiting-sync"
    EAGER_STOP = "eager-stop"
    CAPACITY = "capacity"


SKIP_REASONS = tuple(SkipReason)

SYNC_LAG = "sync-lag"
"""``stopped_by`` when pacing against the graph sync left only the requested lane (the third reason a kind stops,
beside the caps ``eager-stop`` and ``capacity``)."""


class Lane(enum.StrEnum):
    """Where a Job's slot came from (docs/lanes.md), in the order lanes are filled."""

    REQUESTED = "requested"
    FRESH = "fresh"
    BACKLOG = "backlog"


LANES = tuple(Lane)


class JobState(enum.Enum):
    """What the cluster says about an owned Job, and the skip reason it gives its item."""

    IN_FLIGHT = SkipReason.IN_FLIGHT
    FAILED = SkipReason.FAILED_RECENTLY
    COMPLETE = SkipReason.AWAITING_SYNC
