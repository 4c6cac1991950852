"""What the lanes keep from one run to the next, in keys of the ledger ConfigMap beside the ledger's entries
(docs/lanes.md). Pure: the format of those keys, read defensively (anyone allowed to update the ConfigMap may
write them), and how two writers' values merge.

- ``fresh-cursors``: per stream, the arrival position its fresh lane has passed: ``{"solver-...": 1234}``;
- ``runs``: the recent real runs, in the order they happened: ``[{"seq": 7, "at": "2027-...Z", "scheduled":
  {"solver-...": {"requested": 1, "fresh": 2, "backlog": 9}}, "retry": {"max_attempts": 3, ...}}, ...]``;
- ``lane-credits``: per lane (``requested``, ``fresh``), the fraction of a slot its share gave it that it could
  not use, carried to the next run, so a share is a long-run fraction: ``{"requested": 0.4, "fresh": 0.5}``;
- ``request-syncs``: per item key of an open request's stream, how many of its Jobs runs saw complete while the
  graph still lacked the item, and whether the last run saw one complete: ``{"0a1b2c3d4e": [1, true]}``;
- ``backlog-fronts``: per stream, the backlog's first waiting candidate after the last run (its arrival position
  and item): what comes before an item that takes a slot is counted from it (docs/eta.md):
  ``{"solver-...": [1234, "flask", "2.0.1", "https://pypi.org/simple"]}``;
- ``eta``: the windows runs predicted, how they scored, and the waits they draw on (``waiting/calibration.py``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from graph_refresh.items import ANALYZER, Candidate
from graph_refresh.retry.model import MAX_NUMBER, is_item_key
from graph_refresh.text import cell
from graph_refresh.times import format_time, parse_time
from graph_refresh.waiting.calibration import ETA_KEY, Calibration

CURSORS_KEY = "fresh-cursors"
RUNS_KEY = "runs"
CREDITS_KEY = "lane-credits"
SYNCS_KEY = "request-syncs"
FRONTS_KEY = "backlog-fronts"
KEYS = frozenset({CURSORS_KEY, RUNS_KEY, CREDITS_KEY, SYNCS_KEY, ETA_KEY, FRONTS_KEY})
"""The ledger ConfigMap's keys the lanes own; every other key is the ledger's."""
RUNS_KEPT = 168  # a week of hourly runs
MAX_STREAMS = 256  # cursors kept: a deployment runs a few solvers and the analyzer
MAX_POSITION = 2**63 - 1  # an arrival position: SQLite's rowid and Dgraph's uid are 64-bit
SHOWN = 60  # characters of a value quoted in a warning
_SOLVER_NAME = re.compile(r"solver-[a-z0-9]([-a-z0-9.]{0,44}[a-z0-9])?")
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


def _json(text: object) -> Any:
    """The JSON value of a ConfigMap value; None when it is no JSON (or no string)."""
    try:
        return json.loads(text) if isinstance(text, str) else None
    except (ValueError, RecursionError):
        return None


def decode_credits(text: object) -> tuple[dict[str, float], list[str]]:
    """Each lane's carried fraction (0 to 1); a value that cannot be read is 0 with a warning."""
    if text is None:
        return {}, []
    value = _json(text)
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
    value = _json(text)
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


# --- the fresh lane's cursors ------------------------------------------------------------------------------------


def decode_cursors(text: object) -> tuple[dict[str, int], list[str]]:
    """The fresh lane's cursors (stream name → arrival position) and a warning for each value dropped."""
    if text is None:
        return {}, []
    value = _json(text)
    if not isinstance(value, dict):
        return {}, [f"{CURSORS_KEY} is not a JSON object: every stream starts at the store's end"]
    cursors: dict[str, int] = {}
    problems: list[str] = []
    for stream, position in value.items():
        if not (stream == ANALYZER or _SOLVER_NAME.fullmatch(stream)) or len(cursors) >= MAX_STREAMS:
            problems.append(f"{CURSORS_KEY}: '{cell(stream, SHOWN)}' is no stream a run has: dropped")
        elif isinstance(position, int) and not isinstance(position, bool) and 0 <= position <= MAX_POSITION:
            cursors[str(stream)] = position
        else:
            problems.append(f"{CURSORS_KEY} of '{cell(stream, SHOWN)}' is not a position: it starts anew")
    return cursors, problems


def encode_cursors(cursors: Mapping[str, int]) -> str:
    return json.dumps(dict(sorted(cursors.items())), separators=(",", ":"))


def decode_fronts(text: object) -> tuple[dict[str, tuple[int, Candidate]], list[str]]:
    """The backlog's first waiting candidate per stream; a value that cannot be read is dropped with a warning."""
    if text is None:
        return {}, []
    value = _json(text)
    if not isinstance(value, dict):
        return {}, [f"{FRONTS_KEY} is not a JSON object: what comes before an item is counted from the start"]
    fronts: dict[str, tuple[int, Candidate]] = {}
    for stream, front in value.items():
        fields = front if isinstance(front, list) and len(front) == 4 else [None] * 4
        position, texts = fields[0], fields[1:]
        readable = (
            (stream == ANALYZER or _SOLVER_NAME.fullmatch(stream))
            and isinstance(position, int)
            and not isinstance(position, bool)
            and 0 <= position <= MAX_POSITION
            and all(isinstance(t, str) and 0 < len(t) <= 2048 for t in texts)
            and len(fronts) < MAX_STREAMS
        )
        if readable:
            assert isinstance(position, int), "checked above"
            fronts[stream] = (position, Candidate(*texts))
    dropped = len(value) - len(fronts)
    return fronts, [f"{FRONTS_KEY}: {dropped} values could not be read and were dropped"] if dropped else []


def encode_fronts(fronts: Mapping[str, tuple[int, Candidate]]) -> str:
    return json.dumps({s: [p, *c] for s, (p, c) in sorted(fronts.items())}, separators=(",", ":"))


# --- the recent runs ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunRecord:
    """One real run as the ledger remembers it: its place in the order runs happened (``seq``), when it ran,
    per stream how many Jobs each lane scheduled, and the retry settings it ran with (``ledger show`` tells an
    entry's state under them)."""

    seq: int
    at: float
    scheduled: Mapping[str, Mapping[str, int]]
    retry: Mapping[str, Any] | None = None
    queues: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    """Per stream, what the run left waiting: ``fresh``, the items in the fresh lane (docs/eta.md)."""


def decode_runs(text: object) -> tuple[list[RunRecord], list[str]]:
    """The recent runs in the order they happened (at most RUNS_KEPT), and a warning when some could not be
    read. A record of an older release has no ``seq``: those come first, in their time order."""
    if text is None:
        return [], []
    value = _json(text)
    if not isinstance(value, list):
        return [], [f"{RUNS_KEY} is not a JSON list: the throughput of recent runs is not known"]
    runs, dropped = [], 0
    for record in value:
        at = parse_time(record.get("at")) if isinstance(record, dict) else None
        scheduled = record.get("scheduled") if isinstance(record, dict) else None
        seq = record.get("seq", 0) if isinstance(record, dict) else None
        retry = record.get("retry") if isinstance(record, dict) else None
        queues = record.get("queues", {}) if isinstance(record, dict) else None
        if (
            at is None
            or not _whole(seq)
            or not isinstance(scheduled, dict)
            or not all(_lane_counts(v) for v in scheduled.values())
            or (retry is not None and not _retry_settings(retry))
            or not isinstance(queues, dict)
            or not all(_lane_counts(v) for v in queues.values())
        ):
            dropped += 1
            continue
        assert isinstance(seq, int), "checked above"
        lanes = {str(k): dict(v) for k, v in scheduled.items()}
        runs.append(RunRecord(seq, at, lanes, retry, {str(k): dict(v) for k, v in queues.items()}))
    unread = "1 record could not be read and was" if dropped == 1 else f"{dropped} records could not be read and were"
    problems = [f"{RUNS_KEY}: {unread} dropped"] if dropped else []
    return sorted(runs, key=lambda run: (run.seq, run.at))[-RUNS_KEPT:], problems


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_NUMBER**2


def _lane_counts(value: object) -> bool:
    return isinstance(value, dict) and all(
        isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= MAX_NUMBER for n in value.values()
    )


RETRY_FIELDS = ("max_memory", "max_deadline_seconds", "retry_backoff_seconds", "max_attempts", "quarantine_seconds")


def _retry_settings(value: object) -> bool:
    return (
        isinstance(value, dict)
        and set(value) == set(RETRY_FIELDS)
        and isinstance(value["max_memory"], str)
        and len(value["max_memory"]) <= 64
        and all(_whole(value[name]) for name in RETRY_FIELDS[1:])
    )


def encode_runs(runs: Iterable[RunRecord]) -> str:
    records = []
    for run in sorted(runs, key=lambda run: (run.seq, run.at))[-RUNS_KEPT:]:
        record: dict[str, Any] = {
            "seq": run.seq,
            "at": format_time(run.at),
            "scheduled": {k: dict(v) for k, v in sorted(run.scheduled.items())},
        }
        if run.retry is not None:
            record["retry"] = dict(run.retry)
        if run.queues:
            record["queues"] = {k: dict(v) for k, v in sorted(run.queues.items())}
        records.append(record)
    return json.dumps(records, separators=(",", ":"))


def _between_neighbours(runs: list[RunRecord], now: float) -> list[RunRecord]:
    """``runs`` (in the order they happened) with each one stamped later than ``now`` moved midway between the run
    before it and the next one (``now`` when it is the last); the first of them, to the next one's time."""
    fixed = list(runs)
    for i, run in enumerate(fixed):
        if run.at <= now:
            continue
        after = next((later.at for later in fixed[i + 1 :] if later.at <= now), now)
        before = fixed[i - 1].at if i else after
        fixed[i] = replace(run, at=(min(before, after) + after) / 2)
    return fixed


# --- all the lanes keep -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LaneState:
    """What the lanes keep in the ledger ConfigMap (see the module's docstring)."""

    cursors: Mapping[str, int] = field(default_factory=dict)
    runs: tuple[RunRecord, ...] = ()
    credits: Mapping[str, float] = field(default_factory=dict)
    completions: Completions = field(default_factory=Completions)
    calibration: Calibration = field(default_factory=Calibration)
    fronts: Mapping[str, tuple[int, Candidate]] = field(default_factory=dict)

    @classmethod
    def read(cls, data: Mapping[str, str], *, now: float | None = None) -> tuple[LaneState, list[str]]:
        """The lanes' keys of a ledger ConfigMap's data, and a warning for each value that could not be read. With
        ``now`` (the reading run's clock), a run record stamped later than it counts as made between the run
        before it and the one after it (or ``now``): a clock ahead, or a hand-written 9999, never pushes what the
        recent runs say into the future."""
        cursors, problems = decode_cursors(data.get(CURSORS_KEY))
        runs, run_problems = decode_runs(data.get(RUNS_KEY))
        if now is not None and any(run.at > now for run in runs):
            late = [run.seq for run in runs if run.at > now]
            run_problems.append(
                f"{RUNS_KEY}: {len(late)} of the recent runs are stamped later than this run's clock: each taken as "
                "made between the runs around it"
            )
            runs = _between_neighbours(runs, now)
        credits, credit_problems = decode_credits(data.get(CREDITS_KEY))
        completions, sync_problems = decode_syncs(data.get(SYNCS_KEY))
        calibration, eta_problems = Calibration.read(data.get(ETA_KEY))
        fronts, front_problems = decode_fronts(data.get(FRONTS_KEY))
        state = cls(cursors, tuple(runs), credits, completions, calibration, fronts)
        others = credit_problems + sync_problems + eta_problems + front_problems
        return state, problems + run_problems + others

    @property
    def next_seq(self) -> int:
        """The place of the next run in the order runs happen."""
        return max((run.seq for run in self.runs), default=0) + 1

    def to_data(self) -> dict[str, str]:
        """The keys to store (a key with nothing in it is left out)."""
        data = {}
        if self.cursors:
            data[CURSORS_KEY] = encode_cursors(self.cursors)
        if self.runs:
            data[RUNS_KEY] = encode_runs(self.runs)
        if any(self.credits.values()):  # nothing carried reads as no key
            data[CREDITS_KEY] = encode_credits(self.credits)
        if self.completions.counts:
            data[SYNCS_KEY] = encode_syncs(self.completions)
        if self.calibration.open or self.calibration.scores or self.calibration.waits:
            data[ETA_KEY] = self.calibration.to_text()
        if self.fronts:
            data[FRONTS_KEY] = encode_fronts(self.fronts)
        return data

    def merged(self, stored: LaneState, *, streams: frozenset[str] | None = None) -> LaneState:
        """This state written over ``stored`` (what another writer stored meanwhile): cursors never go back,
        the runs of both are kept (one record per place in the order), the rest is this run's; cursors only for
        ``streams`` (the streams a run has) when given."""
        cursors = {name: max(position, stored.cursors.get(name, 0)) for name, position in self.cursors.items()}
        for name, position in stored.cursors.items():
            cursors.setdefault(name, position)
        if streams is not None:
            cursors = {name: position for name, position in cursors.items() if name in streams}
        runs = {run.seq: run for run in stored.runs}
        for run in self.runs:
            if run.seq in runs and runs[run.seq] != run:
                run = replace(run, seq=max([*runs, run.seq]) + 1)  # an overlapping run took the same place
            runs[run.seq] = run
        ordered = tuple(sorted(runs.values(), key=lambda run: (run.seq, run.at))[-RUNS_KEPT:])
        fronts = {**stored.fronts, **self.fronts}
        if streams is not None:
            fronts = {name: front for name, front in fronts.items() if name in streams}
        calibration = self.calibration.merged(stored.calibration)
        return replace(self, cursors=cursors, runs=ordered, calibration=calibration, fronts=fronts)
