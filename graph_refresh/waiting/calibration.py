"""How the windows held: what each real run predicted, how each prediction scored once the graph had the item, and
the waits the windows draw on (docs/eta.md). Kept in key ``eta`` of the ledger ConfigMap, bounded. Pure: the
format, read defensively (anyone allowed to update the ConfigMap may write it), scoring, and the summaries.

The value is ``{"open": [...], "scores": [...], "waits": {...}}``, times in epoch seconds:

- ``open``: predictions not scored yet, ``[id, package, version, index, stream, lane, seen, drawn_low, drawn_high,
  low, high, period, start]``; ``start`` is when a run first saw the item's Job (null before); the four ends are
  null when the run had no window to give (too little history): the item then only measures a wait;
- ``scores``: ``[id, at, lane, drawn_low, drawn_high, low, high, found, period, seen]``, ``found`` the time of the
  run that found the item in the graph, ``seen`` when the window was given;
- ``waits``: per stream, ``[[id, wait, duration], ...]``: from a Job's start to the run that found its item in the
  graph, and the Job's own duration (start to completion) when the run could read it (else null); the graph
  sync's lag is the difference.
"""

from __future__ import annotations

import hashlib
import json
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from graph_refresh.report import EtaCounts
from graph_refresh.times import EARLIEST, LATEST
from graph_refresh.vocabulary import LANES
from graph_refresh.waiting.eta import Widening, Window

ETA_KEY = "eta"
MAX_BYTES = 64 * 1024
"""The value's bound; the oldest scores and predictions are dropped first."""
WAITS_KEPT = 100
"""Waits kept per stream (the newest)."""
MAX_STREAMS = 64
"""Streams whose waits are kept."""
WIDEN_FROM = 20
"""Scores a lane needs before its windows are widened by how they missed."""
WIDEN_OVER = 200
"""The newest scores of a lane its widening looks at."""
WIDEN_LEVEL = 0.925
"""Each side of a window is widened until this share of the recent misses on that side would have held (both
sides: about 85% inside)."""
LATE_RUNS = 2
"""A score this many run intervals or more after its window's end is "late by two runs or more"."""


def prediction_id(package: str, version: str, index: str, stream: str, seen: float) -> str:
    """A short stable name of one prediction: two runs that overlap score it once."""
    text = "\0".join((package, version, index, stream, str(int(seen))))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Prediction:
    """The solved window a run gave an item waiting in one stream."""

    id: str
    package: str
    version: str
    index: str
    """The index in its normal form (no credentials)."""
    stream: str
    lane: str
    seen: float
    drawn: Window | None
    """None when the run had no window to give: the prediction only measures a wait."""
    shown: Window | None
    period: float
    start: float | None = None

    def to_list(self) -> list[Any]:
        return [
            self.id,
            self.package,
            self.version,
            self.index,
            self.stream,
            self.lane,
            int(self.seen),
            *_ends(self.drawn),
            *_ends(self.shown),
            int(self.period),
            None if self.start is None else int(self.start),
        ]


@dataclass(frozen=True)
class Score:
    """How one prediction held: the run that found its item in the graph (``found``) against its window."""

    id: str
    at: float
    lane: str
    drawn: Window
    shown: Window
    found: float
    period: float
    seen: float
    """When the window was given."""

    @property
    def result(self) -> str:
        """``inside``, ``early`` or ``late``."""
        if self.shown.holds(self.found):
            return "inside"
        return "early" if self.found < self.shown.low else "late"

    @property
    def error(self) -> float:
        """When the graph had it, less the window's middle (negative: before it)."""
        return self.found - self.shown.middle

    @property
    def late_by_two_runs(self) -> bool:
        return self.found - self.shown.high >= LATE_RUNS * self.period

    def to_list(self) -> list[Any]:
        return [
            self.id,
            int(self.at),
            self.lane,
            int(self.drawn.low),
            int(self.drawn.high),
            int(self.shown.low),
            int(self.shown.high),
            int(self.found),
            int(self.period),
            int(self.seen),
        ]


@dataclass(frozen=True)
class Wait:
    """From a Job's start to the run that found its item in the graph, and the Job's duration when known."""

    id: str
    wait: float
    duration: float | None = None


@dataclass(frozen=True)
class Calibration:
    """What key ``eta`` holds (see the module's docstring)."""

    open: tuple[Prediction, ...] = ()
    scores: tuple[Score, ...] = ()
    waits: Mapping[str, tuple[Wait, ...]] = field(default_factory=dict)
    finished: frozenset[str] = frozenset()
    """The predictions this run found in the graph (not stored: another writer's copy of them is not kept)."""

    @classmethod
    def read(cls, text: object) -> tuple[Calibration, list[str]]:
        """The value of key ``eta``, and a warning naming what could not be read (it is dropped)."""
        if text is None:
            return cls(), []
        try:
            value = json.loads(text) if isinstance(text, str) else None
        except ValueError:
            value = None
        if not isinstance(value, dict):
            return cls(), [f"{ETA_KEY} is not a JSON object: the windows' calibration starts anew"]
        dropped = 0
        open_, scores = [], []
        waits: dict[str, tuple[Wait, ...]] = {}
        for record in _list(value.get("open")):
            prediction = _prediction(record)
            dropped += prediction is None
            if prediction is not None:
                open_.append(prediction)
        for record in _list(value.get("scores")):
            score = _score(record)
            dropped += score is None
            if score is not None:
                scores.append(score)
        streams = value.get("waits")
        for stream, records in streams.items() if isinstance(streams, dict) else ():
            read = [_wait(record) for record in _list(records)]
            dropped += sum(wait is None for wait in read)
            if isinstance(stream, str) and len(stream) <= 64 and len(waits) < MAX_STREAMS:
                waits[stream] = tuple(wait for wait in read if wait is not None)[-WAITS_KEPT:]
        problems = [f"{ETA_KEY}: {dropped} records could not be read and were dropped"] if dropped else []
        return cls(tuple(open_), tuple(scores), waits), problems

    def to_text(self) -> str:
        """The value to store, at most MAX_BYTES: the oldest scores and predictions go first."""
        scores = [json.dumps(s.to_list(), separators=(",", ":")) for s in sorted(self.scores, key=lambda s: s.at)]
        open_ = [json.dumps(p.to_list(), separators=(",", ":")) for p in sorted(self.open, key=lambda p: p.seen)]
        waits = {s: [[w.id, int(w.wait), _whole(w.duration)] for w in ws] for s, ws in sorted(self.waits.items())}
        fixed = len(json.dumps({"open": [], "scores": [], "waits": waits}, separators=(",", ":")))
        size = fixed + sum(len(t) + 1 for t in scores) + sum(len(t) + 1 for t in open_)
        first_score, first_open = 0, 0
        while size > MAX_BYTES and (first_score < len(scores) or first_open < len(open_)):
            take_score = first_open >= len(open_) or (
                first_score < len(scores) and len(scores) - first_score >= len(open_) - first_open
            )
            if take_score:
                size -= len(scores[first_score]) + 1
                first_score += 1
            else:
                size -= len(open_[first_open]) + 1
                first_open += 1
        return (
            '{"open":['
            + ",".join(open_[first_open:])
            + '],"scores":['
            + ",".join(scores[first_score:])
            + '],"waits":'
            + json.dumps(waits, separators=(",", ":"))
            + "}"
        )

    def merged(self, stored: Calibration) -> Calibration:
        """This value written over ``stored`` (what an overlapping run stored meanwhile): the scores and waits of
        both, each once; the predictions of both that neither scored."""
        scores = {s.id: s for s in (*stored.scores, *self.scores)}
        done = self.finished | scores.keys()
        open_ = {p.id: p for p in (*stored.open, *self.open) if p.id not in done}
        waits: dict[str, tuple[Wait, ...]] = {}
        for stream in sorted({*stored.waits, *self.waits}):
            both = {w.id: w for w in (*stored.waits.get(stream, ()), *self.waits.get(stream, ()))}
            waits[stream] = tuple(both.values())[-WAITS_KEPT:]
        return Calibration(tuple(open_.values()), tuple(scores.values()), waits, self.finished)

    def waits_of(self, stream: str) -> list[float]:
        return [w.wait for w in self.waits.get(stream, ())]

    def widening(self, lane: str) -> Widening:
        """How far to widen the lane's windows: on each side, the share of how far ahead a window lies by which
        the recent misses on that side went past the window the futures drew (a split-conformal bound at
        WIDEN_LEVEL). A queue's error grows with how far ahead it looks, so a miss is measured against that."""
        recent = [s for s in self.scores if s.lane == lane][-WIDEN_OVER:]
        if len(recent) < WIDEN_FROM:
            return Widening()
        early, late = [], []
        for score in recent:
            early.append((score.drawn.low - score.found) / max(score.drawn.low - score.seen, score.period))
            late.append((score.found - score.drawn.high) / max(score.drawn.high - score.seen, score.period))
        return Widening(max(0.0, _conformal(early)), max(0.0, _conformal(late)))

    def scored_by(self, run_at: float) -> list[Score]:
        return [s for s in self.scores if s.at == run_at]


def _conformal(values: list[float]) -> float:
    ordered = sorted(values)
    rank = min(len(ordered), math.ceil((len(ordered) + 1) * WIDEN_LEVEL))
    return ordered[rank - 1]


def _ends(window: Window | None) -> list[int | None]:
    return [None, None] if window is None else [int(window.low), int(window.high)]


def _whole(value: float | None) -> int | None:
    return None if value is None else int(value)


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _time(value: object) -> float | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and EARLIEST <= value <= LATEST
    return float(value) if ok else None  # type: ignore[arg-type]


def _seconds(value: object) -> float | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 10 * 365 * 86400
    return float(value) if ok else None  # type: ignore[arg-type]


def _text(value: object, limit: int = 512) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= limit else None


def _window(low: object, high: object) -> Window | None:
    a, b = _time(low), _time(high)
    return None if a is None or b is None or a > b else Window(a, b)


def _prediction(record: object) -> Prediction | None:
    if not isinstance(record, list) or len(record) != 13:
        return None
    id_, package, version, index, stream, lane, seen, dl, dh, low, high, period, start = record
    texts = [_text(id_, 16), _text(package), _text(version), _text(index, 2048), _text(stream, 64)]
    windowless = dl is None and dh is None and low is None and high is None
    drawn, shown = (None, None) if windowless else (_window(dl, dh), _window(low, high))
    at, every = _time(seen), _seconds(period)
    begun = None if start is None else _time(start)
    if None in texts or lane not in LANES or at is None or not every:
        return None
    if not windowless and (drawn is None or shown is None):
        return None
    if start is not None and begun is None:
        return None
    i, p, v, x, s = texts
    assert i and p and v and x and s, "checked above"
    return Prediction(i, p, v, x, s, lane, at, drawn, shown, every, begun)


def _score(record: object) -> Score | None:
    if not isinstance(record, list) or len(record) != 10:
        return None
    id_, at, lane, dl, dh, low, high, found, period, seen = record
    name, when, there, every, given = _text(id_, 16), _time(at), _time(found), _seconds(period), _time(seen)
    drawn, shown = _window(dl, dh), _window(low, high)
    if None in (name, when, there, given, drawn, shown) or not every or lane not in LANES:
        return None
    assert name and when and there and given and drawn and shown, "checked above"
    return Score(name, when, lane, drawn, shown, there, every, given)


def _wait(record: object) -> Wait | None:
    if not isinstance(record, list) or len(record) != 3:
        return None
    id_, wait, duration = record
    name, took, ran = _text(id_, 16), _seconds(wait), None if duration is None else _seconds(duration)
    if name is None or took is None or (duration is not None and ran is None):
        return None
    return Wait(name, took, ran)


# --- summaries ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Accuracy:
    """How a set of scores held."""

    scored: int
    inside: int
    early: int
    late: int
    late_by_two_runs_or_more: int
    median_error_seconds: float | None

    @classmethod
    def of(cls, scores: Iterable[Score]) -> Accuracy:
        kept = list(scores)
        results = [s.result for s in kept]
        errors = [abs(s.error) for s in kept]
        return cls(
            scored=len(kept),
            inside=results.count("inside"),
            early=results.count("early"),
            late=results.count("late"),
            late_by_two_runs_or_more=sum(s.late_by_two_runs for s in kept),
            median_error_seconds=float(statistics.median(errors)) if errors else None,
        )

    def report(self) -> dict[str, Any]:
        return {
            "scored": self.scored,
            "inside": self.inside,
            "late_by_two_runs_or_more": self.late_by_two_runs_or_more,
            "median_error_seconds": self.median_error_seconds,
        }

    def row(self, lane: str) -> dict[str, Any]:
        """One lane's row of ``explain --accuracy``."""
        share = None if not self.scored else round(self.inside / self.scored, 3)
        return {"lane": lane, **self.report(), "early": self.early, "late": self.late, "inside_share": share}


def accuracy_rows(calibration: Calibration) -> list[dict[str, Any]]:
    """Per lane, then over all lanes, how the kept scores held."""
    rows = [Accuracy.of(s for s in calibration.scores if s.lane == lane).row(lane) for lane in LANES]
    return [*rows, Accuracy.of(calibration.scores).row("all")]


def rescored(calibration: Calibration, found: Mapping[str, float], at: float, waits: Sequence[Wait]) -> Calibration:
    """``calibration`` after a run at ``at`` found the items of the predictions ``found`` names (id → when the
    run found it) in the graph, and measured ``waits`` (per prediction id; added to its stream)."""
    scores = list(calibration.scores)
    still = []
    by_id = {w.id: w for w in waits}
    waits_by_stream = {s: list(ws) for s, ws in calibration.waits.items()}
    for prediction in calibration.open:
        when = found.get(prediction.id)
        if when is None:
            still.append(prediction)
            continue
        if prediction.drawn is not None and prediction.shown is not None:
            drawn, shown = prediction.drawn, prediction.shown
            score = Score(prediction.id, at, prediction.lane, drawn, shown, when, prediction.period, prediction.seen)
            scores.append(score)
        room = prediction.stream in waits_by_stream or len(waits_by_stream) < MAX_STREAMS
        if prediction.id in by_id and room:
            waits_by_stream.setdefault(prediction.stream, []).append(by_id[prediction.id])
    return replace(
        calibration,
        open=tuple(still),
        scores=tuple(scores),
        waits={s: tuple(ws)[-WAITS_KEPT:] for s, ws in waits_by_stream.items()},
        finished=calibration.finished | found.keys(),
    )


DAY = 86_400


def eta_counts(scores: Sequence[Score], kept: Iterable[Score], at: float) -> EtaCounts:
    """The run report's ``eta`` of the ``scores`` a run at ``at`` made, and per result the ``kept`` scores of the
    last day."""
    summary = Accuracy.of(scores)
    by_lane: dict[str, dict[str, int]] = {}
    for score in scores:
        results = by_lane.setdefault(score.lane, {})
        results[score.result] = results.get(score.result, 0) + 1
    last_day: dict[str, int] = {}
    for score in kept:
        if at - DAY < score.at <= at:
            last_day[score.result] = last_day.get(score.result, 0) + 1
    return EtaCounts(
        summary.scored,
        summary.inside,
        summary.late_by_two_runs_or_more,
        summary.median_error_seconds,
        by_lane,
        last_day,
    )
