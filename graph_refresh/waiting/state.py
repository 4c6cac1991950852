"""What the lanes keep from one run to the next in the ledger ConfigMap (docs/lanes.md). Pure: the format of
two of its keys, read defensively (anyone allowed to update the ConfigMap may write them).

- ``lane-credits``: per lane (``requested``, ``fresh``), the fraction of a slot its share gave it that it could
  not use, carried to the next run, so a share is a long-run fraction: ``{"requested": 0.4, "fresh": 0.5}``;
- ``request-syncs``: per item key of an open request's stream, how many of its Jobs runs saw complete while the
  graph still lacked the item, and whether the last run saw one complete: ``{"0a1b2c3d4e": [1, true]}``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from graph_refresh.retry.model import MAX_NUMBER, is_item_key

CREDITS_KEY = "lane-credits"
SYNCS_KEY = "request-syncs"
CREDIT_LANES = ("requested", "fresh")
MAX_SYNCS = 20_000  # item keys kept in request-syncs (about 600 KiB at most): open requests' streams


@dataclass(frozen=True)
class Completions:
    """Per item key, how many of its Jobs a run saw complete while the store lacked the item, and whether the
    last run saw one complete (a Job seen by several runs counts once). Kept in the ledger (``request-syncs``)."""

    counts: Mapping[str, tuple[int, bool]] = field(default_factory=dict)

    def seen(self, states: Mapping[str, bool]) -> Completions:
        """After a run that saw, per item key of its open requests, whether the item's latest Job is complete;
        keys of items no longer requested are forgotten."""
        counts = {}
        for key, complete in states.items():
            count, was = self.counts.get(key, (0, False))
            counts[key] = (count + (complete and not was), complete)
        return Completions(counts)

    def count(self, key: str) -> int:
        return self.counts.get(key, (0, False))[0]


def decode_credits(text: object) -> tuple[dict[str, float], list[str]]:
    """Each lane's carried fraction (0 to 1); a value that cannot be read is 0 with a warning."""
    if text is None:
        return {}, []
    try:
        value = json.loads(text) if isinstance(text, str) else None
    except (ValueError, RecursionError):
        value = None
    if not isinstance(value, dict):
        return {}, [f"{CREDITS_KEY} is not a JSON object: the lanes' shares start afresh"]
    credits, problems = {}, []
    for lane in CREDIT_LANES:
        credit = value.get(lane, 0.0)
        if isinstance(credit, int | float) and not isinstance(credit, bool) and math.isfinite(credit):
            credits[lane] = min(max(float(credit), 0.0), 1.0)
        else:
            problems.append(f"{CREDITS_KEY} of {lane} is not a number: it starts afresh")
    return credits, problems


def encode_credits(credits: Mapping[str, float]) -> str:
    return json.dumps({lane: round(credits.get(lane, 0.0), 6) for lane in CREDIT_LANES}, separators=(",", ":"))


def decode_syncs(text: object) -> tuple[Completions, list[str]]:
    """The completions seen per item key; values that cannot be read are dropped with one warning."""
    if text is None:
        return Completions(), []
    try:
        value = json.loads(text) if isinstance(text, str) else None
    except (ValueError, RecursionError):
        value = None
    if not isinstance(value, dict):
        return Completions(), [f"{SYNCS_KEY} is not a JSON object: completions seen start afresh"]
    counts: dict[str, tuple[int, bool]] = {}
    dropped = 0
    for key, pair in value.items():
        if (
            is_item_key(key)
            and isinstance(pair, list)
            and len(pair) == 2
            and isinstance(pair[0], int)
            and not isinstance(pair[0], bool)
            and 0 <= pair[0] <= MAX_NUMBER
            and isinstance(pair[1], bool)
            and len(counts) < MAX_SYNCS
        ):
            counts[key] = (pair[0], pair[1])
        else:
            dropped += 1
    problems = [f"{SYNCS_KEY}: {dropped} values could not be read and were dropped"] if dropped else []
    return Completions(counts), problems


def encode_syncs(completions: Completions) -> str:
    kept = sorted(completions.counts.items())[:MAX_SYNCS]
    return json.dumps({key: [count, seen] for key, (count, seen) in kept}, separators=(",", ":"))
