"""When an item is likely to be scheduled and solved: windows of times (p10, p90), from what the recent runs did
(docs/eta.md). Pure: the caller gives the recent runs, the item's place in its lane, the stream's recent waits
from a Job's start to the run that found its item in the graph, and how the windows of each lane have held.

The method: many possible futures are drawn, run after run, from the recent runs of the item's stream (each
future run repeats what one recent run, picked at random, took per lane). In a future run the requests go
first, then the fresh lane takes its share of what is left, fed by the fresh items waiting now and by arrivals
at their recent rate; the item's lane serves the items ahead of it, and the run in which the item's turn comes
is its start. Its solved time adds a wait drawn from the stream's recent Jobs (start to the run that found the
item in the graph: the Job's duration plus the graph sync's lag). The window is the 10th and 90th percentile
over the futures, widened by how far recent windows of the lane missed (``Widening``). The random draws are
seeded by the item, so the same history gives the same window, in a run and in ``explain`` alike."""

from __future__ import annotations

import hashlib
import itertools
import math
import random
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from graph_refresh.times import format_time
from graph_refresh.vocabulary import Lane

LOW, HIGH = 0.1, 0.9
"""The window's percentiles."""
MIN_RUNS = 3
"""Fewer real runs than this tell nothing of a rate: "not enough history"."""
FUTURES = 200
"""Futures drawn per forecast."""
RECENT_RUNS = 24
"""The recent run periods a future run is drawn from: a day of hourly runs follows a change (capacity halved, a
burst of releases) within the day."""
RATE_DOUBT = 0.15
"""The recent runs never tell the coming days' rate better than this share either way: capacity, quotas, Job
durations and failures change. Each future's rate is also drawn within it (uniformly)."""
DRIFT_BLOCK = 6
"""Runs whose mean rate, against the mean of every kept run, says how far a rate can drift for a while."""
LOOKAHEAD_RUNS = 96
"""Future runs drawn one by one; a turn further out is extrapolated at the rate its future had so far."""
DEFAULT_PERIOD_SECONDS = 3600
"""The CronJob's period when the recent runs do not tell it."""
SNAP = 0.1
"""A window's end within this fraction of a period of a run's time is taken to be that run."""


class RunRecord(Protocol):
    """One real run as the ledger remembers it (``waiting/state.py``'s record): what a forecast reads of it."""

    @property
    def at(self) -> float: ...
    @property
    def scheduled(self) -> Mapping[str, Mapping[str, int]]: ...
    @property
    def queues(self) -> Mapping[str, Mapping[str, int]]: ...


@dataclass(frozen=True)
class Window:
    """From ``low`` to ``high`` (epoch seconds), inclusive."""

    low: float
    high: float

    def holds(self, at: float) -> bool:
        return self.low <= at <= self.high

    @property
    def middle(self) -> float:
        return (self.low + self.high) / 2

    def to_json(self) -> dict[str, str]:
        return {"p10": format_time(self.low), "p90": format_time(self.high)}


@dataclass(frozen=True)
class Period:
    """What one stream's lanes took in one run period (overlapping runs count as one), and how many fresh items
    arrived in it (None when the runs did not say)."""

    taken: Mapping[str, float]
    arrived: float | None = None

    def total(self) -> float:
        return sum(self.taken.values())


@dataclass(frozen=True)
class Pace:
    """The recent real runs as a forecast reads them: how many there were, their usual interval, when the next
    one is due, and per stream its recent run periods (oldest first)."""

    runs: int
    period: float
    next_run: float
    streams: Mapping[str, tuple[Period, ...]]
    fresh_left: Mapping[str, int]
    """Per stream, the fresh items the last run left waiting."""
    requests_left: Mapping[str, int]
    """Per stream, the open requests the last run left waiting (without a Job)."""

    @classmethod
    def of(cls, runs: Sequence[RunRecord], now: float) -> Pace:
        """``runs`` in the order they happened (times already no later than ``now``). The interval is the median
        of the positive gaps between consecutive runs, and a run stamped later than the run after it is taken to
        have run between its neighbours, so one clock that was off moves nothing; a run that started within half
        an interval of the one before it overlapped it, and both count as one period (a run that found its
        capacity taken by the other, and scheduled nothing, does not halve the rate)."""
        gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(runs) if later.at > earlier.at]
        period = max(float(statistics.median(gaps)), 60.0) if gaps else float(DEFAULT_PERIOD_SECONDS)
        times = [run.at for run in runs]
        for i in range(len(times) - 1):  # later than the run after it: its clock was off; it ran between the two
            if times[i] > times[i + 1]:
                times[i] = (times[i - 1] + times[i + 1]) / 2 if i > 0 else times[i + 1] - period
        merged: list[tuple[float, dict[str, dict[str, float]], RunRecord]] = []
        for at, run in zip(times, runs, strict=True):
            if merged and 0 <= at - merged[-1][0] < period / 2:
                start, taken, _ = merged[-1]
                for stream, lanes in run.scheduled.items():
                    into = taken.setdefault(stream, {})
                    for lane, count in lanes.items():
                        into[lane] = into.get(lane, 0) + count
                merged[-1] = (start, taken, run)
            else:
                merged.append((at, {s: dict(lanes) for s, lanes in run.scheduled.items()}, run))
        streams: dict[str, list[Period]] = {}
        previous: dict[str, int] = {}
        for _, taken, latest in merged:
            for stream, counts in taken.items():
                left = latest.queues.get(stream, {}).get("fresh")
                before = previous.get(stream)
                arrived = None if left is None or before is None else max(0, counts.get("fresh", 0) + left - before)
                streams.setdefault(stream, []).append(Period(counts, arrived))
                if left is not None:
                    previous[stream] = left
        last_at = merged[-1][0] if merged else now  # when the last run period began
        # The next run is the first one due after the last, on its interval, not more than half an interval ago
        # (a run reading this at its own start is that run).
        steps = max(1, math.ceil((now - last_at - period / 2) / period))
        last = runs[-1] if runs else None
        return cls(
            runs=len(runs),
            period=period,
            next_run=last_at + steps * period,
            streams={stream: tuple(periods) for stream, periods in streams.items()},
            fresh_left={s: q["fresh"] for s, q in (last.queues if last else {}).items() if "fresh" in q},
            requests_left={s: q["requested"] for s, q in (last.queues if last else {}).items() if "requested" in q},
        )

    def on_grid(self, at: float, *, up: bool) -> float:
        """The time of the run nearest ``at`` on its side (later with ``up``): the graph is found to have an item
        by a run, so a window's ends are runs' times."""
        steps = (at - self.next_run) / self.period
        whole = math.floor(steps + SNAP) if not up else math.ceil(steps - SNAP)
        return self.next_run + max(whole, 0) * self.period


@dataclass(frozen=True)
class Widening:
    """How far to widen a lane's solved windows, on each side, as a share of how far ahead that end lies (at least
    one period): from how far recent windows missed (``calibration.widening``)."""

    early: float = 0.0
    late: float = 0.0


@dataclass(frozen=True)
class Shares:
    request: float
    fresh: float


@dataclass(frozen=True)
class Forecast:
    """Two windows, or why there is none (``note``)."""

    start: Window | None
    solved: Window | None
    note: str | None = None
    drawn: Window | None = None
    """The solved window as the futures drew it, before it was widened and put on runs' times: what the
    calibration measures misses against."""

    def to_json(self) -> dict[str, Any]:
        return {
            "start": None if self.start is None else self.start.to_json(),
            "solved": None if self.solved is None else self.solved.to_json(),
            "eta_note": self.note,
        }


def forecast(
    pace: Pace,
    stream: str,
    lane: str,
    ahead: int,
    *,
    shares: Shares,
    waits: Sequence[float],
    widening: Widening = Widening(),
    seed: str,
) -> Forecast:
    """The windows of an item of ``stream`` waiting in ``lane`` behind ``ahead`` items that take a slot; ``waits``
    are the stream's recent waits from a Job's start to the run that found its item in the graph; ``seed`` (the
    item's key and stream) seeds the draws."""
    if pace.runs < MIN_RUNS:
        return Forecast(None, None, f"not enough history: {pace.runs} of {MIN_RUNS} runs")
    periods = pace.streams.get(stream, ())[-RECENT_RUNS:]
    if not periods:
        return Forecast(None, None, "not enough history: the recent runs did not run this stream")
    rng = random.Random(int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "big"))  # noqa: S311 (a model, not a secret)
    waiting = (pace.requests_left.get(stream, 0), pace.fresh_left.get(stream, 0))
    arrivals = [p.arrived for p in periods if p.arrived is not None]
    drifts = _drifts(pace.streams[stream])
    starts: list[float] = []
    for _ in range(FUTURES):
        # Each future has its own recent past (the runs drawn again) and its own drift: the rate itself is
        # uncertain, and a far turn is as uncertain as the rate, not only as its runs' spread.
        pool = [rng.choice(periods) for _ in periods]
        drift = rng.choice(drifts) * rng.uniform(1 - RATE_DOUBT, 1 + RATE_DOUBT)
        turn = _turn(pool, arrivals, lane, ahead, shares, waiting, rng, drift)
        starts.append(math.inf if turn is None else pace.next_run + turn * pace.period)
    starts.sort()
    low, high = _percentile(starts, LOW), _percentile(starts, HIGH)
    if math.isinf(high):
        return Forecast(None, None, f"its {lane} lane took too little in the recent runs to tell when")
    start = Window(low, high)
    if not waits:
        return Forecast(start, None, "no Job of this stream has been seen through to the graph yet")
    solved = sorted(at + rng.choice(waits) for at in starts)
    window = Window(_percentile(solved, LOW), _percentile(solved, HIGH))
    now = pace.next_run - pace.period  # the run (or explain) giving the window: what "ahead" is measured from
    early, late = (max(end - now, pace.period) for end in (window.low, window.high))
    widened = Window(max(window.low - widening.early * early, start.low), window.high + widening.late * late)
    snapped = Window(pace.on_grid(widened.low, up=False), pace.on_grid(widened.high, up=True))
    return Forecast(start, snapped, drawn=window)


def _turn(
    periods: Sequence[Period],
    arrivals: Sequence[float],
    lane: str,
    ahead: int,
    shares: Shares,
    waiting: tuple[int, int],
    rng: random.Random,
    drift: float,
) -> int | None:
    """In how many runs after the next the item's turn comes in one drawn future, whose runs take ``drift`` times
    what the drawn ones took, with ``waiting`` (requests, fresh items) waiting now; None when never in sight."""
    left = ahead + 1.0  # the item itself needs a slot too
    requests, fresh = map(float, waiting)
    served = 0.0
    for step in range(LOOKAHEAD_RUNS):
        period = rng.choice(periods)
        total = drift * period.total()
        if lane == Lane.REQUESTED:  # the requests before it are what is ahead
            service = shares.request * total
        else:  # requests go first: those waiting, then new ones at the rate the drawn run took them
            requests += period.taken.get(Lane.REQUESTED, 0)
            took = min(requests, shares.request * total)
            requests -= took
            rest = total - took
            if lane == Lane.FRESH:
                service = max(drift * period.taken.get(Lane.FRESH, 0), shares.fresh * rest)
            else:  # the backlog: what the fresh lane leaves, its items waiting and arriving first
                fresh += rng.choice(arrivals) if arrivals else 0
                took = min(fresh, shares.fresh * rest)
                fresh -= took
                service = rest - took
        served += service
        left -= service
        if left <= 0:
            return step
    if served <= 0:
        return None
    return LOOKAHEAD_RUNS - 1 + math.ceil(left / (served / LOOKAHEAD_RUNS))


def _drifts(periods: Sequence[Period]) -> list[float]:
    """How far the rate of DRIFT_BLOCK consecutive run periods strayed from the rate of all of them, as ratios
    (just 1 with too few periods to tell)."""
    totals = [period.total() for period in periods]
    mean = sum(totals) / len(totals) if totals else 0.0
    if mean <= 0 or len(totals) < 2 * DRIFT_BLOCK:
        return [1.0]
    return [sum(totals[i : i + DRIFT_BLOCK]) / DRIFT_BLOCK / mean for i in range(len(totals) - DRIFT_BLOCK + 1)]


def _percentile(ordered: Sequence[float], share: float) -> float:
    """Nearest rank of sorted ``ordered``."""
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]
