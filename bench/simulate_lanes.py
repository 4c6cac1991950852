"""Replay hourly runs with lanes on and off, and show how long items waited in each lane.

    .venv/bin/python3 bench/simulate_lanes.py            # 48 hourly runs, a backlog of about 100k pairs
    .venv/bin/python3 bench/simulate_lanes.py --quick    # 6 runs on a tiny store, seconds (tests/test_bench.py)

The world, the same for both histories (seeded):

- the store: the synthetic graph of bench/graphs.py for about ``--pairs`` candidates (the example Templates'
  three solvers and the analyzer: four streams), written straight into SQLite once and copied per history;
- the cluster: ``tests/fakes/kube.py``'s FakeKube over TLS in this process, the example Templates in infra, a
  kubeconfig; every command is the real CLI (click's runner in this process, as tests/conftest.py runs it),
  with ``THOTH_GRAPH_REFRESH_QPS=0`` and a clock that moves one hour per run;
- each hour: new releases arrive (``import-graph`` of new versions of packages drawn at random), sometimes a
  request is filed (``app.py request``: in turn an old version of the backlog and a version the graph does not
  hold yet, which arrives with the releases two hours later), the run happens (``--max-in-flight`` below what
  arrives in an hour), then every Job it created completes, the graph sync imports its result and the Job is
  removed (as its TTL would), so the next run has the same capacity.

Lanes on is the default ``--fresh-share 0.5`` with the requests filed; lanes off is ``--fresh-share 0`` with
no request filed (every candidate in the store's order, as before lanes). An item is one (stream, version).
Its wait is the run that created its Job minus the run it became eligible in: its request's run for a
requested item (in both histories, filed or not), its arrival's run for a new release, run 1 for the backlog
the store held at the start. Items not scheduled by the end are counted apart, with the longest wait so far.
Prints Markdown: the set-up, per lane the waits side by side, the backlog (the sum of the run reports'
``backlog`` over the streams) every 12 runs, and the wall and CPU time of the whole simulation. It checks each
run's Jobs against the lanes its report counts, and that the run after a request's items were synced removed the
request as done; it exits 1 when one does not hold.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("GRPC_VERBOSITY", "NONE")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402
from click.testing import CliRunner, Result  # noqa: E402

from bench import graphs  # noqa: E402
from graph_refresh import cli  # noqa: E402
from graph_refresh.items import ANALYZER, ANNOTATION_INDEX, ANNOTATION_PACKAGE, ANNOTATION_VERSION, LABEL_SOLVER  # noqa: E402
from graph_refresh.refresh import Externals  # noqa: E402
from tests.fakes.kube import FakeKube  # noqa: E402

TEMPLATES = ROOT / "openshift" / "templates"
INFRA, MIDDLETIER = "infra", "middletier"
PYPI = graphs.PYPI
HOUR = 3600.0
T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z: the first run
LANE_NAMES = ("requested", "fresh", "backlog")
NEW_REQUEST_ARRIVES_AFTER = 2  # hours between a request for a version the graph lacks and its release's import
OLD_REQUESTS_FROM = 0.5  # old versions requested are drawn from the second half of the store's order
BACKLOG_EVERY = 12  # runs between two backlog figures


@dataclass(frozen=True)
class Setup:
    pairs: int
    runs: int
    capacity: int
    arrivals: tuple[int, int]
    """Versions released per hour: drawn uniformly between the two (each is one item per stream)."""
    request_every: int
    fresh_share: float
    seed: int


QUICK = Setup(pairs=2_000, runs=6, capacity=12, arrivals=(3, 5), request_every=2, fresh_share=0.5, seed=7)
FULL = Setup(pairs=100_000, runs=48, capacity=100, arrivals=(20, 40), request_every=6, fresh_share=0.5, seed=7)

Key = tuple[str, str, str, str]  # stream, package, version, index


@dataclass
class Request:
    hour: int
    package: str
    version: str
    streams: tuple[str, ...]
    """The streams that lack it when it is filed."""
    new: bool


@dataclass
class History:
    """What the world does, hour by hour; the same for both histories."""

    arrivals: dict[int, list[tuple[str, str]]] = field(default_factory=dict)
    requests: dict[int, Request] = field(default_factory=dict)


@dataclass
class Item:
    lane: str
    eligible: int
    scheduled: int | None = None


@dataclass
class Outcome:
    label: str
    items: dict[Key, Item] = field(default_factory=dict)
    backlog: dict[int, int | None] = field(default_factory=dict)
    scheduled_per_run: list[int] = field(default_factory=list)


def plan_history(setup: Setup, initial: Sequence[graphs.Version], solvers: Sequence[str]) -> History:
    """The arrivals and requests of every hour, drawn from ``setup.seed``."""
    rng = random.Random(setup.seed)
    packages = sorted({v.package_name for v in initial})
    history = History()
    for hour in range(2, setup.runs + 1):  # run 1 is the first with lanes: it starts the fresh cursors
        count = rng.randint(*setup.arrivals)
        history.arrivals[hour] = [(rng.choice(packages), f"2.{hour}.{k}") for k in range(count)]
    old_from = int(len(initial) * OLD_REQUESTS_FROM)
    chosen: set[int] = set()
    for number, hour in enumerate(range(max(1, setup.request_every // 2), setup.runs + 1, setup.request_every)):
        if number % 2 == 1:  # a version the graph lacks: released now, imported with a later hour's releases
            package = rng.choice(packages)
            version = f"3.{hour}.0"
            history.requests[hour] = Request(hour, package, version, (*solvers, ANALYZER), new=True)
            history.arrivals.setdefault(hour + NEW_REQUEST_ARRIVES_AFTER, []).append((package, version))
            continue
        while True:
            pick = rng.randrange(old_from, len(initial))
            v = initial[pick]
            streams = lacking(v, solvers)
            if pick not in chosen and v.index_url == PYPI and streams and v.package_version != graphs.INVALID_VERSION:
                break
        chosen.add(pick)
        history.requests[hour] = Request(hour, v.package_name, v.package_version, streams, new=False)
    return history


def lacking(version: graphs.Version, solvers: Sequence[str]) -> tuple[str, ...]:
    solved = {solver for solver, _ in graphs.solved_by(version, solvers)}
    streams = [s for s in solvers if s not in solved]
    return (*streams, ANALYZER) if not graphs.is_analyzed(version) else tuple(streams)


class World:
    """One history: its store, a FakeKube and the CLI run in this process at the simulated hour."""

    def __init__(self, fake: FakeKube, work: Path, store: Path) -> None:
        self.fake, self.work = fake, work
        for path in sorted(TEMPLATES.glob("*.yaml")):
            document = yaml.safe_load(path.read_text())
            document["metadata"]["namespace"] = INFRA
            fake.add(document)
        # Every variable the CLI reads starts unset (None removes it while a command runs), then ours.
        self.env: dict[str, str | None] = {
            option.envvar: None for option in cli.main.params if isinstance(option.envvar, str)
        }
        self.env.update(
            KUBECONFIG=str(fake.kubeconfig(work / "kubeconfig")),
            KUBERNETES_SERVICE_HOST=None,
            SENTRY_DSN=None,
            HOME=str(work / "home"),
            GRAPH_REFRESH_SQLITE_PATH=str(store),
            THOTH_INFRA_NAMESPACE=INFRA,
            THOTH_MIDDLETIER_NAMESPACE=MIDDLETIER,
            THOTH_GRAPH_REFRESH_QPS="0",
        )
        self.files = 0

    def cli(self, args: list[str], hour: int) -> Result:
        at = T0 + (hour - 1) * HOUR
        externals = Externals(now=lambda: at, sleep=lambda seconds: None)
        result = CliRunner().invoke(cli.main, args, env=self.env, obj=externals, catch_exceptions=False)
        if result.exit_code != 0:
            raise SystemExit(f"app.py {' '.join(args)} exited {result.exit_code}:\n{result.stderr[-3000:]}")
        return result

    def import_graph(self, document: dict[str, list[dict[str, Any]]], hour: int) -> None:
        self.files += 1
        path = self.work / f"graph-{self.files}.json"
        path.write_text(json.dumps({"package_versions": [], "solved": [], "analyzed": [], **document}))
        self.cli(["import-graph", str(path)], hour)
        path.unlink()


def record(package: str, version: str, index: str = PYPI, **extra: Any) -> dict[str, Any]:
    return {"package_name": package, "package_version": version, "index_url": index, **extra}


def simulate(
    label: str,
    setup: Setup,
    history: History,
    store: Path,
    work: Path,
    solvers: Sequence[str],
    *,
    lanes: bool,
    progress: Callable[[str], None],
) -> Outcome:
    """Run the whole history once against ``store`` (changed in place) and a new FakeKube."""
    outcome = Outcome(label)
    streams = (*solvers, ANALYZER)
    work.mkdir()
    with FakeKube(tls="tls") as fake:
        world = World(fake, work, store)
        for hour in range(1, setup.runs + 1):
            arrived = history.arrivals.get(hour, [])
            world.import_graph({"package_versions": [record(p, v) for p, v in arrived]}, hour)
            for package, version in arrived:
                for stream in streams:
                    outcome.items.setdefault((stream, package, version, PYPI), Item("fresh", hour))
            request = history.requests.get(hour)
            if request is not None:
                for stream in request.streams:
                    key = (stream, request.package, request.version, PYPI)
                    if key in outcome.items:  # the old versions requested are drawn far from the backlog's head
                        raise SystemExit(
                            f"run {hour}: {key}, drawn for a request, was scheduled before it: the store is too "
                            "small for these runs and this capacity (a larger --pairs)"
                        )
                    outcome.items[key] = Item("requested", hour)
                if lanes:
                    world.cli(["request", f"{request.package}=={request.version}", "--by", "simulation"], hour)
            share = str(setup.fresh_share if lanes else 0)
            report_path = work / "report.json"
            world.cli(
                ["--report", str(report_path), "--max-in-flight", str(setup.capacity), "--fresh-share", share], hour
            )
            report = json.loads(report_path.read_text())
            created = _settle(world, hour, outcome)
            _check(report, created, lanes=lanes, hour=hour)
            _check_requests(world, report, filed=1 if lanes and request is not None else 0, hour=hour)
            outcome.scheduled_per_run.append(sum(created.values()))
            backlogs = [report["totals"][kind]["backlog"] for kind in report["totals"]]
            outcome.backlog[hour] = None if None in backlogs else sum(backlogs)
            progress(f"{label}: run {hour}/{setup.runs}: {sum(created.values())} Jobs {dict(created)}")
    return outcome


def _settle(world: World, hour: int, outcome: Outcome) -> Counter[str]:
    """Every Job of the run completes, the graph sync imports its result, the Job goes; per lane, how many."""
    created: Counter[str] = Counter()
    solved: list[dict[str, Any]] = []
    analyzed: list[dict[str, Any]] = []
    jobs = world.fake.objects("jobs", MIDDLETIER)
    for job in jobs:
        metadata = job["metadata"]
        stream, package, version, index = job_item(job)
        item = outcome.items.setdefault((stream, package, version, index), Item("backlog", 1))
        if item.scheduled is not None:
            raise SystemExit(f"run {hour}: {stream} {package}=={version} was scheduled again (run {item.scheduled})")
        if hour < item.eligible:
            raise SystemExit(f"run {hour}: {stream} {package}=={version} scheduled before it became eligible")
        item.scheduled = hour
        created[item.lane] += 1
        world.fake.set_job_status(MIDDLETIER, metadata["name"], "Complete")
        if stream == ANALYZER:
            analyzed.append(record(package, version, index))
        else:
            solved.append(record(package, version, index, solver=stream, error=False))
    world.import_graph({"solved": solved, "analyzed": analyzed}, hour)
    for job in jobs:
        world.fake.delete("jobs", MIDDLETIER, job["metadata"]["name"])
    return created


def job_item(job: dict[str, Any]) -> Key:
    """The item of one of graph-refresh's Jobs: stream, package, version, index."""
    annotations, labels = job["metadata"]["annotations"], job["metadata"]["labels"]
    stream = labels.get(LABEL_SOLVER) or ANALYZER
    return stream, *(annotations[a] for a in (ANNOTATION_PACKAGE, ANNOTATION_VERSION, ANNOTATION_INDEX))


def _check(report: dict[str, Any], created: Counter[str], *, lanes: bool, hour: int) -> None:
    """The run's report counts the same Jobs per lane as the items found in the cluster."""
    counted: Counter[str] = Counter()
    for kind in report["totals"].values():
        counted.update(kind["lanes"])
    expected = +created if lanes else Counter({"backlog": sum(created.values())})
    if +counted != expected:
        raise SystemExit(f"run {hour}: the report counts {dict(counted)} per lane, the Jobs are {dict(created)}")


def _check_requests(world: World, report: dict[str, Any], *, filed: int, hour: int) -> None:
    """A request's items were all synced after the run that filed it, so the next run removes it as done: after
    each run only the request filed for it is left."""
    configmap = world.fake.get("configmaps", MIDDLETIER, "graph-refresh-requests")
    left = len((configmap or {}).get("data") or {})
    counts = report["requests"] or {"open": 0}
    if left != filed or counts["open"] != filed:
        raise SystemExit(f"run {hour}: {left} requests left and {counts['open']} open after it, {filed} expected")


def percentile(values: Sequence[int], share: float) -> int:
    """Nearest rank: the smallest value with at least ``share`` of the values at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def lane_cells(outcome: Outcome, lane: str, runs: int, eligible: int) -> list[str]:
    """Scheduled, median, p95 and max wait, and the items not scheduled by the end with the longest wait so far
    (each would wait at least that long)."""
    items = [item for item in outcome.items.values() if item.lane == lane]
    waits = [item.scheduled - item.eligible for item in items if item.scheduled is not None]
    # A backlog item not scheduled has no entry: it was eligible at run 1.
    oldest = [runs + 1 - item.eligible for item in items if item.scheduled is None] + [runs] * (lane == "backlog")
    left = eligible - len(waits)
    waiting = f"{left:,} (≥ {max(oldest)} runs)" if left else "0"
    if not waits:
        return ["0", "-", "-", "-", waiting]
    return [f"{len(waits):,}", f"{statistics.median(waits):g}", str(percentile(waits, 0.95)), str(max(waits)), waiting]


def table(setup: Setup, on: Outcome, off: Outcome, backlog_items: int) -> list[str]:
    eligible = {lane: sum(1 for item in on.items.values() if item.lane == lane) for lane in LANE_NAMES}
    eligible["backlog"] = backlog_items
    lines = [
        "| lane | items eligible | lanes on: scheduled | median | p95 | max | not scheduled (wait so far) "
        "| lanes off: scheduled | median | p95 | max | not scheduled (wait so far) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for lane in LANE_NAMES:
        cells = [
            lane,
            f"{eligible[lane]:,}",
            *lane_cells(on, lane, setup.runs, eligible[lane]),
            *lane_cells(off, lane, setup.runs, eligible[lane]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "| after run | backlog, lanes on | backlog, lanes off |", "|---:|---:|---:|"]
    points = sorted({1, *range(BACKLOG_EVERY, setup.runs + 1, BACKLOG_EVERY), setup.runs})
    for hour in points:
        lines.append(f"| {hour} | {_count(on.backlog[hour])} | {_count(off.backlog[hour])} |")
    return lines


def _count(value: int | None) -> str:
    return "?" if value is None else f"{value:,}"


def describe(setup: Setup, history: History, versions: int, initial_pairs: int, solvers: Sequence[str]) -> list[str]:
    released = [len(v) for h, v in sorted(history.arrivals.items()) if h <= setup.runs]
    requests = history.requests.values()
    old = sum(1 for r in requests if not r.new)
    return [
        f"- store: {versions:,} versions, {initial_pairs:,} candidate items at the start "
        f"({len(solvers)} solvers + the analyzer = {len(solvers) + 1} streams; bench/graphs.py)",
        f"- {setup.runs} hourly runs, `--max-in-flight {setup.capacity}`: every Job completes and is synced "
        "before the next run, so each run has that many slots",
        f"- releases: {min(released)}–{max(released)} new versions an hour ({sum(released):,} in all, "
        f"{len(solvers) + 1} items each, up to {max(released) * (len(solvers) + 1)} items an hour), "
        f"seed {setup.seed}",
        f"- requests: {len(requests)} (one every {setup.request_every} runs from run "
        f"{min((r.hour for r in requests), default=0)}): {old} for an old version of the backlog's second half, "
        f"{len(requests) - old} for a version the graph lacks, imported {NEW_REQUEST_ARRIVES_AFTER} runs later",
        f"- lanes on: `--fresh-share {setup.fresh_share:g}`, requests filed with `app.py request`; lanes off: "
        "`--fresh-share 0`, no request filed (their items' waits still start at the request's run)",
    ]


def initial_pairs(initial: Sequence[graphs.Version], solvers: Sequence[str]) -> int:
    return sum(len(lacking(v, solvers)) for v in initial if v.package_version != graphs.INVALID_VERSION)


def parse(argv: Sequence[str] | None) -> tuple[Setup, bool]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="6 runs on a store of about 2,000 items (seconds)")
    parser.add_argument("--pairs", type=int, help="candidate items of the initial store (default 100000)")
    parser.add_argument("--runs", type=int, help="hourly runs (default 48)")
    parser.add_argument("--capacity", type=int, help="--max-in-flight of every run (default 100)")
    parser.add_argument("--arrivals", help="versions released per hour, MIN-MAX (default 20-40)")
    parser.add_argument("--request-every", type=int, help="runs between two requests (default 6)")
    parser.add_argument("--fresh-share", type=float, help="--fresh-share with lanes on (default 0.5)")
    parser.add_argument("--seed", type=int, help="seed of the releases and requests (default 7)")
    parser.add_argument("--progress", action="store_true", help="one line per run on stderr")
    args = parser.parse_args(argv)
    base = QUICK if args.quick else FULL
    arrivals = base.arrivals
    if args.arrivals:
        low, _, high = args.arrivals.partition("-")
        try:
            arrivals = (int(low), int(high or low))
        except ValueError:
            parser.error(f"--arrivals {args.arrivals!r}: say MIN-MAX, two whole numbers")
    setup = Setup(
        pairs=args.pairs or base.pairs,
        runs=args.runs or base.runs,
        capacity=args.capacity or base.capacity,
        arrivals=arrivals,
        request_every=args.request_every or base.request_every,
        fresh_share=base.fresh_share if args.fresh_share is None else args.fresh_share,
        seed=base.seed if args.seed is None else args.seed,
    )
    if not (0 < setup.fresh_share <= 1):
        parser.error("--fresh-share: lanes on needs a share above 0 and at most 1")
    if min(setup.pairs, setup.runs, setup.capacity, setup.request_every, *arrivals) < 1 or arrivals[0] > arrivals[1]:
        parser.error("--pairs, --runs, --capacity, --request-every and --arrivals take positive whole numbers")
    return setup, args.progress


def main(argv: Sequence[str] | None = None) -> int:
    setup, show_progress = parse(argv)
    started, cpu = time.perf_counter(), cpu_seconds()
    solvers = graphs.solver_names(TEMPLATES)
    versions = graphs.versions_for_pairs(setup.pairs, len(solvers))
    initial = list(graphs.versions(versions))
    history = plan_history(setup, initial, solvers)
    pairs_at_start = initial_pairs(initial, solvers)

    def progress(line: str) -> None:
        if show_progress:
            print(line, file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="simulate-lanes-") as tmp:
        work = Path(tmp)
        built = work / "initial.sqlite3"
        graphs.build_sqlite(built, versions, solvers)
        outcomes = []
        for label, lanes in (("lanes on", True), ("lanes off", False)):
            store = work / f"{label.replace(' ', '-')}.sqlite3"
            shutil.copyfile(built, store)
            outcomes.append(
                simulate(
                    label,
                    setup,
                    history,
                    store,
                    work / label.replace(" ", "-"),
                    solvers,
                    lanes=lanes,
                    progress=progress,
                )
            )
    on, off = outcomes
    wall, used = time.perf_counter() - started, cpu_seconds() - cpu
    lines = [
        f"Lanes at work: {setup.runs} hourly runs, lanes on and off, the same history",
        "",
        *describe(setup, history, versions, pairs_at_start, solvers),
        "",
        "Runs an item waited (the run that created its Job minus the run it became eligible in):",
        "",
        *table(setup, on, off, pairs_at_start - sum(len(r.streams) for r in history.requests.values() if not r.new)),
        "",
        f"Jobs created per run: lanes on {min(on.scheduled_per_run)}–{max(on.scheduled_per_run)}, "
        f"lanes off {min(off.scheduled_per_run)}–{max(off.scheduled_per_run)}.",
        f"Whole simulation: {wall:.1f} s wall, {used:.1f} s CPU (this process: the CLI, the stand-in and the "
        "bookkeeping).",
    ]
    print("\n".join(lines))
    return 0


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    sys.exit(main())
