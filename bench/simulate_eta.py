"""Replay a week of hourly runs and score what ``app.py explain`` promised against when the store had each item.

    .venv/bin/python3 bench/simulate_eta.py            # 168 hourly runs, a backlog of about 100k pairs
    .venv/bin/python3 bench/simulate_eta.py --quick    # 12 runs on a tiny store, seconds (tests/test_bench.py)

The world (seeded: the same every time; issue 21's last bullet):

- the store and the cluster of bench/simulate_lanes.py (its ``World``: the synthetic SQLite graph of
  bench/graphs.py, FakeKube over TLS, every command the real CLI in this process), with FakeKube on the
  simulated clock, so that creation, start and completion times and the Tables' ages are simulated times;
- Jobs take a heavy-tailed time (lognormal: solvers a median of 15 min, the analyzer 30 min, a tail of hours);
  at each hour, before the run, the Jobs whose end has come are marked Complete with their simulated start and
  completion times, or Failed with an OOM-killed pod for 30% of the Jobs created during the OOM storm's runs;
  finished Jobs are deleted (with their pods) ``TTL_HOURS`` after they ended;
- the graph sync imports a completed Job's result (``import-graph`` of a ``solved``/``analyzed`` record) at
  its completion plus a heavy-tailed lag (lognormal, median 20 min), at the hour boundaries before each run,
  so the store has an item from the first run that finds it; for ``STALL_HOURS`` hours nothing is imported,
  and what piled up is imported when the sync resumes;
- releases: a Poisson number of new versions an hour (``--arrivals``, mean), one hour brings ``--burst`` more;
  requests arrive at random (Poisson, ``--requests``, mean an hour) from three requesters: an old version
  the store lacks results for, or (one in three) a version released a few hours later;
- capacity: ``--max-in-flight`` ``--capacity`` (live Jobs), halved for ``HALVED_RUNS`` consecutive runs.

What is scored, per stream row (an item is one stream of one version): every requested item, one in
``FRESH_SAMPLE_EVERY`` new releases, and at some runs a few backlog versions at random depths. Right after the
first run that sees the item (its release imported, or picked from the backlog), ``app.py explain PKG==VER
--json`` is run at that run's time; a request is explained when filed (or when its version arrives), just before
the run: after it, with any free slot, its Jobs exist and it no longer waits. Each row that waits (``requested``, or
``waiting`` in a lane) keeps its ``lane``, ``ahead``, its ``solved`` window when explain gives one, and the
point estimate explain gave before the windows, computed here from the ledger's ``runs`` as its code did
(``point_estimate``). Rows in another state (already in flight, awaiting sync, failed) are counted apart.
The item is found at the hour of the first run after the sync imported its result.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script: the checkout's packages

from bench import graphs
from bench.simulate_lanes import (
    HOUR,
    MIDDLETIER,
    PYPI,
    T0,
    TEMPLATES,
    Key,
    World,
    cpu_seconds,
    initial_pairs,
    job_item,
    lacking,
    record,
)
from graph_refresh.items import ANALYZER
from graph_refresh.times import format_time, parse_time
from tests.fakes.kube import FakeKube
from tests.helpers import oom

LANES = ("requested", "fresh", "backlog")
WAITING_STATES = ("requested", "waiting")
TTL_HOURS = 12  # a finished Job is deleted this long after it ended
HALVED_RUNS, OOM_RUNS, STALL_HOURS = 12, 6, 6
OOM_SHARE = 0.3  # of the Jobs created during the OOM storm's runs
DURATION_MEDIAN = {"solver": 15 * 60.0, ANALYZER: 30 * 60.0}  # seconds
DURATION_SIGMA = 1.1  # lognormal: p90 ≈ 4× the median, p99 ≈ 13×
SYNC_LAG_MEDIAN, SYNC_LAG_SIGMA = 20 * 60.0, 1.3
LONGEST = 24 * HOUR  # no draw beyond a day
FRESH_SAMPLE_EVERY = 8  # new releases: one in this many is explained
BACKLOG_EVERY = 12  # runs between two backlog samples
NEW_VERSION_REQUEST_EVERY = 3  # one request in this many is for a version released later
REQUESTERS = ("adviser", "alice", "bob")
LATE_RUNS = 2  # found this many intervals (or more) after the window's end (the point): late
DEFAULT_PERIOD = HOUR  # graph_refresh/waiting/explain.py's DEFAULT_PERIOD_SECONDS at b27418e


@dataclass(frozen=True)
class Setup:
    pairs: int
    runs: int
    capacity: int
    arrivals: float
    """Mean versions released an hour (Poisson)."""
    burst: int
    requests: float
    """Mean requests filed an hour (Poisson)."""
    backlog_sample: int
    """Backlog versions explained at every ``BACKLOG_EVERY``-th run."""
    seed: int

    def event(self, share: float) -> int:
        """The run at ``share`` of the simulation (the events are spread out so that their effects can be told)."""
        return max(2, round(self.runs * share))


QUICK = Setup(pairs=2_000, runs=12, capacity=24, arrivals=4, burst=40, requests=0.5, backlog_sample=3, seed=7)
FULL = Setup(pairs=100_000, runs=168, capacity=240, arrivals=20, burst=2_000, requests=0.25, backlog_sample=8, seed=7)


@dataclass(frozen=True)
class Events:
    burst_at: int
    halved: range
    oom: range
    stalled: range

    @classmethod
    def of(cls, setup: Setup) -> Events:
        scale = min(1.0, setup.runs / FULL.runs)  # the quick runs get shorter events
        halved, storm, stall = (max(1, round(n * scale)) for n in (HALVED_RUNS, OOM_RUNS, STALL_HOURS))
        return cls(
            burst_at=setup.event(0.15),
            halved=range(setup.event(0.3), setup.event(0.3) + halved),
            oom=range(setup.event(0.5), setup.event(0.5) + storm),
            stalled=range(setup.event(0.7), setup.event(0.7) + stall),
        )


@dataclass(frozen=True)
class Filed:
    package: str
    version: str
    by: str
    known_from: int
    """The hour its version is in the store: the hour filed for an old version, its release's for a new one."""


@dataclass
class History:
    arrivals: dict[int, list[tuple[str, str]]] = field(default_factory=dict)
    requests: dict[int, list[Filed]] = field(default_factory=dict)


@dataclass
class Seen:
    """One stream row of an explained item that waits, and when the store had the item."""

    category: str
    """Why it was explained: requested, fresh or backlog."""
    hour: int
    lane: str
    ahead: int | None
    window: tuple[float, float] | None
    note: str | None
    point: float | None
    found: int | None = None


@dataclass
class LiveJob:
    key: Key
    created: float
    ends: float
    fails: bool


@dataclass
class Tally:
    """What the world did, for the set-up lines."""

    created: int = 0
    completed: int = 0
    failed: int = 0
    synced: int = 0
    explains: int = 0
    not_waiting: dict[str, Counter[str]] = field(default_factory=lambda: {lane: Counter() for lane in LANES})
    busiest: int = 0


def hour_at(hour: int) -> float:
    return T0 + (hour - 1) * HOUR


def poisson(rng: random.Random, mean: float) -> int:
    """Knuth's method, for the small means here (a sum of exponential gaps within one unit of time)."""
    count, total = 0, rng.expovariate(mean) if mean > 0 else math.inf
    while total <= 1:
        count += 1
        total += rng.expovariate(mean)
    return count


def heavy_tailed(rng: random.Random, median: float, sigma: float) -> float:
    return min(LONGEST, rng.lognormvariate(math.log(median), sigma))


def plan_history(setup: Setup, events: Events, initial: Sequence[graphs.Version], solvers: Sequence[str]) -> History:
    """The releases and requests of every hour, drawn from ``setup.seed``."""
    rng = random.Random(f"{setup.seed}-history")
    packages = sorted({v.package_name for v in initial})
    history = History()
    for hour in range(2, setup.runs + 1):  # run 1 starts the fresh cursors: the store then is the backlog
        count = poisson(rng, setup.arrivals) + (setup.burst if hour == events.burst_at else 0)
        history.arrivals[hour] = [(rng.choice(packages), f"2.{hour}.{k}") for k in range(count)]
    taken: set[int] = set()
    filed = 0
    for hour in range(2, setup.runs + 1):
        for _ in range(poisson(rng, setup.requests)):
            filed += 1
            by = rng.choice(REQUESTERS)
            if filed % NEW_VERSION_REQUEST_EVERY == 0:
                package, version = rng.choice(packages), f"3.{hour}.{filed}"
                arrives = hour + rng.randint(1, 6)
                history.arrivals.setdefault(arrives, []).append((package, version))
                history.requests.setdefault(hour, []).append(Filed(package, version, by, arrives))
                continue
            while True:
                pick = rng.randrange(len(initial) // 2, len(initial))  # the backlog's second half: not reached yet
                v = initial[pick]
                valid = v.index_url == PYPI and v.package_version != graphs.INVALID_VERSION
                if pick not in taken and valid and lacking(v, solvers):
                    break
            taken.add(pick)
            history.requests.setdefault(hour, []).append(Filed(v.package_name, v.package_version, by, hour))
    return history


def point_estimate(ledger_runs: object, stream: str, lane: str, ahead: int | None, now: float) -> float | None:
    """Today's point estimate (graph_refresh/waiting/explain.py's ``_likely_start`` at b27418e), from the
    ledger's ``runs`` value: the Jobs ahead divided by the mean its stream's lane took per kept run, at the
    median interval between runs. None where it gave no time."""
    records = json.loads(ledger_runs) if isinstance(ledger_runs, str) else []
    kept = sorted(
        (r for r in records if isinstance(r, dict) and parse_time(r.get("at")) is not None),
        key=lambda r: (r.get("seq", 0), parse_time(r["at"])),
    )
    taken = [((r.get("scheduled") or {}).get(stream) or {}).get(lane, 0) for r in kept]
    per_run = sum(taken) / len(taken) if taken else 0.0
    if ahead is None or per_run <= 0:
        return None
    times = [parse_time(r["at"]) or 0.0 for r in kept]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times) if later > earlier]
    period = statistics.median(gaps) if gaps else DEFAULT_PERIOD
    last = max(times[-1], now - period)
    return last + (int(ahead // per_run) + 1) * period


class Simulation:
    """The world hour by hour: Jobs ending, the sync, TTL, releases, requests, the run, the explains."""

    def __init__(
        self, setup: Setup, events: Events, history: History, initial: Sequence[graphs.Version], solvers: list[str]
    ) -> None:
        self.setup, self.events, self.history, self.initial = setup, events, history, initial
        self.solvers = solvers
        self.rng = random.Random(f"{setup.seed}-world")
        self.now = hour_at(1)
        self.live: dict[str, LiveJob] = {}
        self.ended: dict[str, float] = {}
        """Finished Jobs still in the namespace, by name: when they ended."""
        self.pending: list[tuple[float, Key]] = []
        """Results the sync has not imported: when it may, and the item."""
        self.found: dict[Key, int] = {}
        self.scheduled: set[Key] = set()
        self.seen: dict[Key, Seen] = {}
        self.claimed: set[tuple[str, str]] = {(f.package, f.version) for fs in history.requests.values() for f in fs}
        self.frontier = 0
        self.tally = Tally()

    def clock(self) -> float:
        return self.now

    def run(self, world: World, progress: Callable[[str], None]) -> None:
        for hour in range(1, self.setup.runs + 1):
            self.now = hour_at(hour)
            self.finish_jobs(world)
            self.expire(world)
            synced = self.sync(hour)
            arrived = self.history.arrivals.get(hour, [])
            world.import_graph(
                {
                    "package_versions": [record(p, v) for p, v in arrived],
                    "solved": [record(p, v, i, solver=s, error=False) for s, p, v, i in synced if s != ANALYZER],
                    "analyzed": [record(p, v, i) for s, p, v, i in synced if s == ANALYZER],
                },
                hour,
            )
            for filed in self.history.requests.get(hour, []):
                world.cli(["request", f"{filed.package}=={filed.version}", "--by", filed.by], hour)
            self.explain_requests(world, hour)
            capacity = self.setup.capacity // 2 if hour in self.events.halved else self.setup.capacity
            report_path = world.work / "report.json"
            world.cli(["--report", str(report_path), "--max-in-flight", str(capacity)], hour)
            report = json.loads(report_path.read_text())
            created = self.new_jobs(world, hour)
            scheduled = sum(kind["scheduled"] for kind in report["totals"].values())
            if scheduled != created:
                raise SystemExit(f"run {hour}: the report says {scheduled} Jobs scheduled, {created} were created")
            self.explain_new(world, hour, arrived)
            self.tally.busiest = max(self.tally.busiest, len(self.live) + len(self.ended))
            progress(
                f"run {hour}/{self.setup.runs}: {created} Jobs, {len(self.live)} live, {len(synced)} synced, "
                f"{len(self.pending)} awaiting sync, {len(self.seen)} rows followed"
            )

    def finish_jobs(self, world: World) -> None:
        for name, job in sorted(self.live.items()):
            if job.ends > self.now:
                continue
            del self.live[name]
            self.ended[name] = job.ends
            if job.fails:
                self.tally.failed += 1
                self.fail(world, name, job)
                continue
            self.tally.completed += 1
            world.fake.set_job_status(MIDDLETIER, name, "Complete", started=job.created, ended=job.ends)
            lag = heavy_tailed(self.rng, SYNC_LAG_MEDIAN, SYNC_LAG_SIGMA)
            self.pending.append((job.ends + lag, job.key))

    def fail(self, world: World, name: str, job: LiveJob) -> None:
        """OOM-killed: a Failed Job (BackoffLimitExceeded) and its pod, whose container was OOMKilled."""
        stored = world.fake.set_job_status(MIDDLETIER, name, "Failed", started=job.created, ended=job.ends)
        template = stored["spec"]["template"]
        container = template["spec"]["containers"][0]["name"]
        world.fake.add(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": f"{name}-oom",
                    "namespace": MIDDLETIER,
                    "labels": {**template["metadata"].get("labels", {}), "job-name": name},
                },
                "spec": {"containers": [{"name": container, "image": "x"}]},
                "status": oom(container),
            }
        )

    def expire(self, world: World) -> None:
        for name, ended in sorted(self.ended.items()):
            if ended <= self.now - TTL_HOURS * HOUR:
                del self.ended[name]
                world.fake.delete("jobs", MIDDLETIER, name)
                world.fake.delete("pods", MIDDLETIER, f"{name}-oom")

    def sync(self, hour: int) -> list[Key]:
        """The results the graph sync imports before this hour's run (none while it is stalled)."""
        if hour in self.events.stalled:
            return []
        due = sorted(key for at, key in self.pending if at <= self.now)
        self.pending = [(at, key) for at, key in self.pending if at > self.now]
        fresh = [key for key in due if key not in self.found]
        for key in fresh:
            self.found[key] = hour
        self.tally.synced += len(fresh)
        return fresh

    def new_jobs(self, world: World, hour: int) -> int:
        known = self.live.keys() | self.ended.keys()
        created = 0
        for job in world.fake.objects("jobs", MIDDLETIER):
            name = job["metadata"]["name"]
            if name in known:
                continue
            key = job_item(job)
            median = DURATION_MEDIAN[ANALYZER if key[0] == ANALYZER else "solver"]
            duration = heavy_tailed(self.rng, median, DURATION_SIGMA)
            fails = hour in self.events.oom and self.rng.random() < OOM_SHARE
            self.live[name] = LiveJob(key, self.now, self.now + duration, fails)
            self.scheduled.add(key)
            created += 1
        self.tally.created += created
        return created

    def explain_requests(self, world: World, hour: int) -> None:
        """Explain the requests filed for a version the store has, or whose version came now, as their requester
        would when filing them: before the run (after it, the run has created their Jobs, with free slots)."""
        runs = self.ledger_runs(world)
        for filed in self.history.requests.get(hour, []) + self.arrived_requests(hour):
            if filed.known_from == hour:
                self.explain(world, hour, filed.package, filed.version, "requested", runs)

    def ledger_runs(self, world: World) -> object:
        ledger = world.fake.get("configmaps", MIDDLETIER, "graph-refresh-ledger") or {}
        return (ledger.get("data") or {}).get("runs")

    def explain_new(self, world: World, hour: int, arrived: Sequence[tuple[str, str]]) -> None:
        """Explain the new releases and backlog versions sampled at this run, right after it."""
        wanted: list[tuple[str, str, str]] = []
        for number, (package, version) in enumerate(arrived):
            if number % FRESH_SAMPLE_EVERY == 0 and (package, version) not in self.claimed:
                wanted.append((package, version, "fresh"))
        if hour % BACKLOG_EVERY == 1:
            wanted += [(v.package_name, v.package_version, "backlog") for v in self.backlog_sample(hour)]
        runs = self.ledger_runs(world)
        for package, version, category in wanted:
            self.explain(world, hour, package, version, category, runs)

    def arrived_requests(self, hour: int) -> list[Filed]:
        """Requests filed earlier for a version released at this hour."""
        return [f for h, fs in self.history.requests.items() if h < hour for f in fs if f.known_from == hour]

    def backlog_sample(self, hour: int) -> Iterator[graphs.Version]:
        """Backlog versions no Job has touched, at depths drawn log-uniformly up to about what the rest of the
        simulation can reach."""
        while self.frontier < len(self.initial) and self.untouched(self.initial[self.frontier]) is None:
            self.frontier += 1
        span = max(10, (self.setup.runs - hour + 1) * self.setup.capacity // 8)
        for _ in range(self.setup.backlog_sample):
            for _attempt in range(50):
                depth = int(math.exp(self.rng.uniform(0, math.log(span))))
                v = self.initial[min(len(self.initial) - 1, self.frontier + depth)]
                if (v.package_name, v.package_version) not in self.claimed and self.untouched(v):
                    self.claimed.add((v.package_name, v.package_version))
                    yield v
                    break

    def untouched(self, v: graphs.Version) -> tuple[str, ...] | None:
        """The streams that lack ``v`` and have had no Job for it; None when there are none (or it is invalid)."""
        if v.package_version == graphs.INVALID_VERSION:
            return None
        streams = tuple(
            s
            for s in lacking(v, self.solvers)
            if (s, v.package_name, v.package_version, v.index_url) not in self.scheduled
        )
        return streams or None

    def explain(self, world: World, hour: int, package: str, version: str, category: str, runs: object) -> None:
        self.tally.explains += 1
        out = world.cli(["explain", f"{package}=={version}", "--json"], hour)
        for row in json.loads(out.stdout):
            state, stream = row.get("state"), row["stream"]
            if state in ("solved", "analyzed"):
                continue
            key = (stream, package, version, PYPI)
            if key in self.seen:
                continue
            if state not in WAITING_STATES:
                self.tally.not_waiting[category][str(state)] += 1
                continue
            lane = "requested" if state == "requested" else str(row.get("lane"))
            ahead = row.get("ahead")
            point = point_estimate(runs, stream, lane, ahead, self.now)
            if "likely_at" in row and row["likely_at"] != (None if point is None else format_time(point)):
                raise SystemExit(
                    f"run {hour}: {stream} {package}=={version}: explain says likely at {row['likely_at']}, "
                    f"the baseline here {point}: point_estimate no longer matches the code it stands for"
                )
            solved = row.get("solved")
            window = None
            if isinstance(solved, dict):
                low, high = parse_time(solved.get("p10")), parse_time(solved.get("p90"))
                window = None if low is None or high is None else (low, high)
            self.seen[key] = Seen(category, hour, lane, ahead, window, row.get("eta_note"), point)

    def settle(self) -> None:
        for key, seen in self.seen.items():
            seen.found = self.found.get(key)


# ------------------------------------------------------------------------------------------------ scoring


@dataclass
class Score:
    items: int = 0
    untimed: int = 0
    """Items given no time (no estimate, or no window)."""
    inside: int = 0
    late: int = 0
    errors: list[float] = field(default_factory=list)
    censored: int = 0

    @property
    def scored(self) -> int:
        return len(self.errors)

    def cells(self) -> list[str]:
        """Items given a time, then over those found or late: inside, median error, late; then not found yet."""
        timed = f"{self.items - self.untimed:,}"
        if not self.scored:
            return [timed, "-", "-", "-", f"{self.censored:,}"]
        return [
            timed,
            percent(self.inside, self.scored),
            f"{statistics.median(self.errors):.1f}",
            percent(self.late, self.scored),
            f"{self.censored:,}",
        ]


def percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f}%"


def score(rows: Sequence[Seen], predict: Callable[[Seen], tuple[float, float] | None], last_hour: int) -> Score:
    """Each row against its prediction (low, high: equal for a point). Inside: found in [low rounded down to
    the hour, high rounded up] for a window, at the point rounded to the hour for a point. Error: found minus
    the middle, in runs. Late: found ``LATE_RUNS`` runs or more after high. A row not found by the last run
    is censored, unless high is ``LATE_RUNS`` runs or more before it: then it is late, its error at least the
    run after the last."""
    out = Score(items=len(rows))
    end = hour_at(last_hour)
    for row in rows:
        prediction = predict(row)
        if prediction is None:
            out.untimed += 1
            continue
        low, high = prediction
        if row.found is None:
            if end - high < LATE_RUNS * HOUR:
                out.censored += 1
                continue
            found = end + HOUR
        else:
            found = hour_at(row.found)
        if low == high:
            inside = found == round((low - T0) / HOUR) * HOUR + T0
        else:
            inside = math.floor((low - T0) / HOUR) * HOUR + T0 <= found <= math.ceil((high - T0) / HOUR) * HOUR + T0
        out.inside += inside and row.found is not None
        out.late += found - high >= LATE_RUNS * HOUR
        out.errors.append(abs(found - (low + high) / 2) / HOUR)
    return out


def as_point(row: Seen) -> tuple[float, float] | None:
    return None if row.point is None else (row.point, row.point)


def as_window(row: Seen) -> tuple[float, float] | None:
    return row.window


def table(sim: Simulation) -> list[str]:
    groups: dict[str, list[Seen]] = {lane: [] for lane in LANES}
    for seen in sim.seen.values():
        groups.setdefault(seen.lane, []).append(seen)
    groups["overall"] = list(sim.seen.values())
    lines = [
        "| lane | items | position only | point: with a time | inside | median error (runs) | ≥ 2 runs late "
        "| not found yet | windows: with a window | inside | median error (runs) | ≥ 2 runs late | not found yet |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for lane, rows in groups.items():
        aheads = [r.ahead for r in rows if r.ahead is not None]
        position = f"no time (ahead: median {statistics.median(aheads):g})" if aheads else "no time"
        cells = [
            lane,
            f"{len(rows):,}",
            position,
            *score(rows, as_point, sim.setup.runs).cells(),
            *score(rows, as_window, sim.setup.runs).cells(),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def targets(sim: Simulation) -> list[str]:
    rows = list(sim.seen.values())
    windows = score(rows, as_window, sim.setup.runs)
    if not windows.scored:
        notes = Counter(r.note or "no window in explain's rows" for r in rows if r.window is None)
        said = "; ".join(f"{note!r} × {n}" for note, n in notes.most_common(3))
        return [f"- windows: none to score ({said}): the targets cannot be checked"]
    met = [
        (windows.inside / windows.scored >= 0.8, f"inside ≥ 80%: {percent(windows.inside, windows.scored)}"),
        (statistics.median(windows.errors) <= 1, f"median error ≤ 1 run: {statistics.median(windows.errors):.1f}"),
        (windows.late / windows.scored <= 0.1, f"≥ 2 runs late ≤ 10%: {percent(windows.late, windows.scored)}"),
    ]
    return [f"- windows, {text} — {'met' if ok else 'NOT met'}" for ok, text in met]


def not_waiting(sim: Simulation) -> list[str]:
    lines = ["| explained as | rows waiting (scored above) | rows in another state at the explain |", "|---|---:|---|"]
    for category in LANES:
        waiting = sum(1 for s in sim.seen.values() if s.category == category)
        others = sim.tally.not_waiting[category]
        said = ", ".join(f"{state} {n:,}" for state, n in sorted(others.items())) or "none"
        lines.append(f"| {category} | {waiting:,} | {said} |")
    return lines


def describe(setup: Setup, events: Events, history: History, versions: int, pairs: int, sim: Simulation) -> list[str]:
    released = [len(history.arrivals.get(h, [])) for h in range(2, setup.runs + 1) if h != events.burst_at]
    requests = [f for h, fs in history.requests.items() if h <= setup.runs for f in fs]
    new = sum(1 for h, fs in history.requests.items() if h <= setup.runs for f in fs if f.known_from > h)
    tally = sim.tally

    def runs(span: range) -> str:
        return f"{span.start}–{span.stop - 1}" if len(span) > 1 else str(span.start)

    return [
        f"- store: {versions:,} versions, {pairs:,} candidate items at the start (bench/graphs.py; 4 streams)",
        f"- {setup.runs} hourly runs, `--max-in-flight {setup.capacity}` (live Jobs), "
        f"{setup.capacity // 2} for runs {runs(events.halved)}",
        f"- releases: Poisson, mean {setup.arrivals:g} versions an hour ({min(released, default=0)}–"
        f"{max(released, default=0)}), and {setup.burst:,} more at run {events.burst_at}",
        f"- requests: {len(requests)} (Poisson, mean {setup.requests:g} an hour, {len(REQUESTERS)} requesters), "
        f"{new} of them for a version released 1–6 runs later",
        f"- Jobs: lognormal durations (median {DURATION_MEDIAN['solver'] / 60:g} min solvers, "
        f"{DURATION_MEDIAN[ANALYZER] / 60:g} min analyzer, σ {DURATION_SIGMA:g}, at most a day); "
        f"{tally.created:,} created, {tally.completed:,} completed, {tally.failed:,} OOM-killed "
        f"({OOM_SHARE:.0%} of those created in runs {runs(events.oom)}); deleted {TTL_HOURS} h after they end "
        f"(at most {tally.busiest:,} in the namespace)",
        f"- graph sync: lognormal lag after completion (median {SYNC_LAG_MEDIAN / 60:g} min, σ {SYNC_LAG_SIGMA:g}), "
        f"imported at the hour before each run; stalled before runs {runs(events.stalled)}; "
        f"{tally.synced:,} results imported, {len(sim.pending):,} still waiting at the end",
        f"- explained: {tally.explains:,} versions (every request, one release in {FRESH_SAMPLE_EVERY}, "
        f"{setup.backlog_sample} backlog versions every {BACKLOG_EVERY} runs); seed {setup.seed}",
    ]


def parse(argv: Sequence[str] | None) -> tuple[Setup, bool]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="12 runs on a store of about 2,000 items (seconds)")
    parser.add_argument("--pairs", type=int, help="candidate items of the initial store (default 100000)")
    parser.add_argument("--runs", type=int, help="hourly runs (default 168)")
    parser.add_argument("--capacity", type=int, help="--max-in-flight, halved for 12 runs (default 240)")
    parser.add_argument("--arrivals", type=float, help="mean versions released an hour, Poisson (default 20)")
    parser.add_argument("--burst", type=int, help="versions released in the burst hour (default 2000)")
    parser.add_argument("--requests", type=float, help="mean requests filed an hour, Poisson (default 0.25)")
    parser.add_argument("--seed", type=int, help="seed of the world (default 7)")
    parser.add_argument("--progress", action="store_true", help="one line per run on stderr")
    args = parser.parse_args(argv)
    base = QUICK if args.quick else FULL

    def given(name: str) -> Any:
        value = getattr(args, name)
        return getattr(base, name) if value is None else value

    setup = Setup(
        pairs=given("pairs"),
        runs=given("runs"),
        capacity=given("capacity"),
        arrivals=given("arrivals"),
        burst=given("burst"),
        requests=given("requests"),
        backlog_sample=base.backlog_sample,
        seed=given("seed"),
    )
    if min(setup.pairs, setup.runs) < 1 or setup.capacity < 2:
        parser.error("--pairs and --runs take whole numbers of at least 1, --capacity at least 2")
    if setup.runs < 3:
        parser.error("--runs: at least 3 (explain needs 3 runs of history for a window)")
    if not (0 <= setup.arrivals <= 10_000 and 0 <= setup.requests <= 100) or setup.burst < 0:
        parser.error("--arrivals (0–10000), --requests (0–100) and --burst (0 or more): numbers of versions an hour")
    return setup, args.progress


def main(argv: Sequence[str] | None = None) -> int:
    setup, show_progress = parse(argv)
    started, cpu = time.perf_counter(), cpu_seconds()
    solvers = graphs.solver_names(TEMPLATES)
    versions = graphs.versions_for_pairs(setup.pairs, len(solvers))
    initial = list(graphs.versions(versions))
    events = Events.of(setup)
    history = plan_history(setup, events, initial, solvers)
    sim = Simulation(setup, events, history, initial, solvers)

    def progress(line: str) -> None:
        if show_progress:
            print(line, file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="simulate-eta-") as tmp:
        work = Path(tmp)
        store = work / "store.sqlite3"
        graphs.build_sqlite(store, versions, solvers)
        with FakeKube(tls="tls", clock=sim.clock) as fake:
            world = World(fake, work, store)
            sim.run(world, progress)
            # The product's own score of the windows its runs recorded (ledger key eta), at the last run.
            own = world.cli(["explain", "--accuracy"], setup.runs).stdout.rstrip("\n").splitlines()
    sim.settle()
    wall, used = time.perf_counter() - started, cpu_seconds() - cpu
    lines = [
        f"When will it be solved: {setup.runs} hourly runs, what explain said against when the store had it",
        "",
        *describe(setup, events, history, versions, initial_pairs(initial, solvers), sim),
        "",
        "Per stream row that waited when explained (lane as explain gave it); the point estimate is the one",
        "explain gave before the windows (computed from the ledger's runs); errors are from the window's middle:",
        "",
        *table(sim),
        "",
        *not_waiting(sim),
        "",
        *targets(sim),
        "",
        "What the runs themselves scored (`app.py explain --accuracy` after the last run: the windows each run",
        "recorded for its open requests and a few waiting items of each lane, ledger key eta):",
        "",
        "```text",
        *own,
        "```",
        "",
        f"Whole simulation: {wall:.1f} s wall, {used:.1f} s CPU (this process: the CLI, the stand-in and the "
        "bookkeeping).",
    ]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
