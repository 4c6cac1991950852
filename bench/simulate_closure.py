"""Replay hourly runs with requests for versions with dependency trees, closure on and off, and show how many
runs each request took to become advisable.

    .venv/bin/python3 bench/simulate_closure.py            # 30 hourly runs, a backlog of about 100k pairs
    .venv/bin/python3 bench/simulate_closure.py --quick    # 10 runs on a tiny store, seconds (tests/test_bench.py)

The world, the same for both histories (seeded):

- the store and the cluster of bench/simulate_lanes.py (its ``World``: the synthetic SQLite graph of
  bench/graphs.py for about ``--pairs`` candidates, FakeKube over TLS, the real CLI in this process at a clock
  that moves one hour per run); new releases arrive every hour as there;
- requests: one every 2 runs (every run with ``--quick``) while depth + 3 runs are left, by two requesters in turn,
  each for the root of its own dependency tree, 1 to 5 levels deep in turn: each version depends on 2 to 8 packages
  of the next level (a level's packages have 2 to 3 versions each, and a version depends on one or two of them);
  some packages are shared by every tree (a pool of common packages at each level, leaves: what they need would be
  known from the first tree on), and one tree's deepest level depends on its root again (a cycle). The root enters
  the graph when it is requested; what a version depends on becomes known only when its solver result is synced (a
  ``solved`` record with ``depends_on``);
- Jobs take as long as solver and analyzer Jobs do: most 5 to 30 minutes, some up to 55, one in twenty 60 to
  100; the graph sync then takes 5 to 20 minutes. A result is in the graph for the first run after both; a Job
  stays in flight (and holds its slot) until it completes, and its TTL removes it once synced.

Closure on is the default (``--request-depth 10``); closure off is ``--request-depth 0`` (a request is for its
version alone; its dependencies wait in the fresh and backlog lanes). A request is advisable at the first run
whose graph has its root analyzed and every version of its whole tree solved by every solver; it is counted in
runs after the run it was filed in. Prints Markdown: the set-up; by tree depth, in both histories, the runs from
request to advisable (median, p95, max; a request not advisable by the end counts as the runs so far, marked
≥) and the Jobs created for versions of the trees (not their roots); the backlog Jobs per run (the backlog still
moves); the wall and CPU time. Exits 1 when a check does not hold: a Job created twice for one item, or a run's
report counting other lanes than its Jobs.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import graphs
from bench.simulate_lanes import (
    ANALYZER,
    MIDDLETIER,
    PYPI,
    TEMPLATES,
    World,
    cpu_seconds,
    initial_pairs,
    job_item,
    percentile,
    record,
)
from tests.fakes.kube import FakeKube

DEPTHS = (1, 2, 3, 4, 5)
FAN_OUT = (2, 8)  # packages of the next level each version depends on
VERSIONS = (2, 3)  # versions of each package of a tree
COMMON_PER_LEVEL = 2  # packages of each level every tree shares


@dataclass(frozen=True)
class Setup:
    pairs: int
    runs: int
    capacity: int
    arrivals: tuple[int, int]
    request_every: int
    seed: int


QUICK = Setup(pairs=2_000, runs=10, capacity=100, arrivals=(3, 5), request_every=1, seed=11)
FULL = Setup(pairs=100_000, runs=30, capacity=150, arrivals=(20, 40), request_every=2, seed=11)

Version = tuple[str, str]


@dataclass
class Tree:
    """A request's root and what each version of its tree depends on (the world's truth, found run by run)."""

    number: int
    depth: int
    hour: int
    by: str
    root: Version
    needs: dict[Version, list[Version]] = field(default_factory=dict)

    @property
    def members(self) -> set[Version]:
        found = {self.root}
        for needs in self.needs.values():
            found.update(needs)
        return found


def plan_trees(setup: Setup, rng: random.Random) -> list[Tree]:
    """One tree per request, depths 1 to 5 in turn; the first depth-5 tree's deepest level needs its root."""
    common = {level: [f"common-l{level}-{n}" for n in range(COMMON_PER_LEVEL)] for level in range(1, 6)}
    trees: list[Tree] = []
    cycled = False
    for hour in range(1, setup.runs + 1, setup.request_every):
        number, depth = len(trees), DEPTHS[len(trees) % len(DEPTHS)]
        if hour + depth + 3 > setup.runs:  # runs enough after it to see it advisable late (depth + 2 runs and more)
            break
        tree = Tree(number, depth, hour, f"user{number % 2}", (f"root{number}", "1.0"))
        packages = {
            level: [f"t{number}-l{level}-{n}" for n in range(rng.randint(*FAN_OUT))] + common[level]
            for level in range(1, depth + 1)
        }
        versions = {p: [f"{v}.0" for v in range(1, rng.randint(*VERSIONS) + 1)] for ps in packages.values() for p in ps}
        level_versions: dict[int, list[Version]] = {0: [tree.root]}
        for level in range(1, depth + 1):
            level_versions[level] = []
            for parent in level_versions[level - 1]:
                if parent[0].startswith("common-"):
                    continue  # shared by every tree, so a leaf: what it needs would be known before a tree asks
                chosen = rng.sample(packages[level], min(len(packages[level]), rng.randint(*FAN_OUT)))
                needs = []
                for package in chosen:
                    for version in rng.sample(versions[package], rng.randint(1, 2)):
                        needs.append((package, version))
                tree.needs.setdefault(parent, []).extend(needs)
                level_versions[level] += [n for n in needs if n not in level_versions[level]]
        if depth == 5 and not cycled:
            deepest = next(v for v in level_versions[depth] if not v[0].startswith("common-"))
            tree.needs.setdefault(deepest, []).append(tree.root)  # a cycle
            cycled = True
        trees.append(tree)
    return trees


def job_minutes(rng: random.Random) -> tuple[float, float]:
    """How long a Job runs, and how long its result then waits for the graph sync, in minutes."""
    draw = rng.random()
    running = rng.uniform(5, 30) if draw < 0.8 else rng.uniform(30, 55) if draw < 0.95 else rng.uniform(60, 100)
    return running, rng.uniform(5, 20)


@dataclass
class Outcome:
    label: str
    advisable: dict[int, int | None] = field(default_factory=dict)
    """Tree number → runs from its request to advisable (None: not by the end)."""
    closure_jobs: Counter[int] = field(default_factory=Counter)
    """Tree number → Jobs created for versions of its tree other than its root."""
    backlog_jobs: list[int] = field(default_factory=list)
    requested_jobs: list[int] = field(default_factory=list)


def simulate(
    label: str,
    setup: Setup,
    trees: list[Tree],
    store: Path,
    work: Path,
    solvers: Sequence[str],
    *,
    depth: int,
    progress: Callable[[str], None],
) -> Outcome:
    outcome = Outcome(label)
    rng = random.Random(setup.seed)  # the same durations, releases and packages for both histories
    packages = [f"pkg{n}" for n in range(50)]
    needs: dict[Version, list[Version]] = {}
    for tree in trees:
        for version, dependencies in tree.needs.items():
            needs.setdefault(version, []).extend(d for d in dependencies if d not in needs.get(version, []))
    owner = {member: tree.number for tree in reversed(trees) for member in tree.members if member != tree.root}
    solved: dict[Version, set[str]] = {}
    analyzed: set[Version] = set()
    pending: list[tuple[int, str, str, str, str, str]] = []  # (hour visible, Job, stream, package, version, index)
    running: list[tuple[int, str]] = []  # (hour complete, Job): in flight until then
    created: set[tuple[str, str, str, str]] = set()
    names: set[str] = set()
    work.mkdir()
    with FakeKube(tls="tls") as fake:
        world = World(fake, work, store)
        for hour in range(1, setup.runs + 1):
            arrived = [(rng.choice(packages), f"9.{hour}.{k}") for k in range(rng.randint(*setup.arrivals))]
            roots = [tree for tree in trees if tree.hour == hour]
            for name in [name for done, name in running if done <= hour]:
                world.fake.set_job_status(MIDDLETIER, name, "Complete")
            running = [(done, name) for done, name in running if done > hour]
            synced = [p for p in pending if p[0] <= hour]
            pending = [p for p in pending if p[0] > hour]
            solved_records, analyzed_records = [], []
            for _, _job, stream, package, version, index in synced:
                if stream == ANALYZER:
                    analyzed_records.append(record(package, version, index))
                    if index == PYPI:
                        analyzed.add((package, version))
                    continue
                depends_on = [record(p, v) for p, v in needs.get((package, version), [])] if index == PYPI else []
                solved_records.append(
                    record(package, version, index, solver=stream, error=False, depends_on=depends_on)
                )
                if index == PYPI:
                    solved.setdefault((package, version), set()).add(stream)
            for _, name, *_ in synced:
                world.fake.delete("jobs", MIDDLETIER, name)  # synced: its TTL removes it
            versions = [record(p, v) for p, v in arrived] + [record(*tree.root) for tree in roots]
            world.import_graph(
                {"package_versions": versions, "solved": solved_records, "analyzed": analyzed_records}, hour
            )
            for tree in trees:
                if (
                    tree.hour < hour
                    and outcome.advisable.get(tree.number) is None
                    and advisable(tree, solved, analyzed, solvers)
                ):
                    outcome.advisable[tree.number] = hour - tree.hour
            for tree in roots:
                world.cli(["request", f"{tree.root[0]}=={tree.root[1]}", "--by", tree.by], hour)
            report_path = work / "report.json"
            world.cli(
                ["--report", str(report_path), "--max-in-flight", str(setup.capacity), "--request-depth", str(depth)],
                hour,
            )
            report = json.loads(report_path.read_text())
            lanes: Counter[str] = Counter()
            for kind in report["totals"].values():
                lanes.update(kind["lanes"])
            new = 0
            for job in world.fake.objects("jobs", MIDDLETIER):
                stream, package, version, index = job_item(job)
                key = (stream, package, version, index)
                if job["metadata"]["name"] in names:
                    continue  # created by an earlier run, still in flight or awaiting the sync
                names.add(job["metadata"]["name"])
                if key in created:
                    raise SystemExit(f"{label}, run {hour}: a second Job for {stream} {package}=={version}")
                created.add(key)
                new += 1
                if (package, version) in owner and index == PYPI:
                    outcome.closure_jobs[owner[(package, version)]] += 1
                minutes, lag = job_minutes(rng)
                running.append((hour + math.ceil(minutes / 60), job["metadata"]["name"]))
                visible = hour + math.ceil((minutes + lag) / 60)
                pending.append((visible, job["metadata"]["name"], stream, package, version, index))
            waiting = [t.number for t in trees if t.hour <= hour and outcome.advisable.get(t.number) is None]
            if waiting:
                progress(f"{label}: run {hour}: requests not advisable yet: {waiting}; {len(running)} Jobs in flight")
            if new != sum(lanes.values()):
                raise SystemExit(f"{label}, run {hour}: {new} Jobs created, the report counts {dict(lanes)}")
            outcome.backlog_jobs.append(lanes["backlog"])
            outcome.requested_jobs.append(lanes["requested"])
            progress(f"{label}: run {hour}/{setup.runs}: {dict(lanes)}")
    return outcome


def advisable(tree: Tree, solved: dict[Version, set[str]], analyzed: set[Version], solvers: Sequence[str]) -> bool:
    return tree.root in analyzed and all(set(solvers) <= solved.get(member, set()) for member in tree.members)


def cells(outcome: Outcome, trees: list[Tree], depth: int, runs: int) -> list[str]:
    mine = [tree for tree in trees if tree.depth == depth]
    waits = [outcome.advisable.get(tree.number) for tree in mine]
    known = [w for w in waits if w is not None]
    open_ = [runs + 1 - tree.hour for tree, w in zip(mine, waits, strict=True) if w is None]
    jobs = sum(outcome.closure_jobs[tree.number] for tree in mine)
    if not mine:
        return ["-"] * 4
    everything = known + open_
    mark = "≥ " if open_ else ""
    return [
        f"{mark}{statistics.median(everything):g}",
        f"{mark}{percentile(everything, 0.95)}",
        f"{mark}{max(everything)}",
        f"{jobs:,}",
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 runs on a store of about 2,000 items (seconds)")
    parser.add_argument("--pairs", type=int, help="candidate items of the initial store (default 100000)")
    parser.add_argument("--runs", type=int, help="hourly runs (default 30)")
    parser.add_argument("--capacity", type=int, help="--max-in-flight of every run (default 150)")
    parser.add_argument("--seed", type=int, help="seed of the trees, releases and Job durations (default 11)")
    parser.add_argument("--progress", action="store_true", help="one line per run on stderr")
    args = parser.parse_args(argv)
    base = QUICK if args.quick else FULL
    setup = Setup(
        pairs=args.pairs or base.pairs,
        runs=args.runs or base.runs,
        capacity=args.capacity or base.capacity,
        arrivals=base.arrivals,
        request_every=base.request_every,
        seed=base.seed if args.seed is None else args.seed,
    )
    if min(setup.pairs, setup.capacity) < 1 or setup.runs < 8:
        parser.error("--pairs and --capacity take positive whole numbers, --runs at least 8")
    started, cpu = time.perf_counter(), cpu_seconds()
    solvers = graphs.solver_names(TEMPLATES)
    versions = graphs.versions_for_pairs(setup.pairs, len(solvers))
    pairs_at_start = initial_pairs(list(graphs.versions(versions)), solvers)
    trees = plan_trees(setup, random.Random(setup.seed))

    def progress(line: str) -> None:
        if args.progress:
            print(line, file=sys.stderr, flush=True)

    outcomes = []
    with tempfile.TemporaryDirectory(prefix="simulate-closure-") as tmp:
        work = Path(tmp)
        built = work / "initial.sqlite3"
        graphs.build_sqlite(built, versions, solvers)
        for label, depth in (("closure on", 10), ("closure off", 0)):
            store = work / f"{label.replace(' ', '-')}.sqlite3"
            shutil.copyfile(built, store)
            outcomes.append(
                simulate(
                    label, setup, trees, store, work / label.replace(" ", "-"), solvers, depth=depth, progress=progress
                )
            )
    on, off = outcomes
    wall, used = time.perf_counter() - started, cpu_seconds() - cpu
    sizes = {d: [len(t.members) for t in trees if t.depth == d] for d in DEPTHS}
    lines = [
        f"A request brings what it needs: {setup.runs} hourly runs, closure on and off, the same history",
        "",
        f"- store: {versions:,} versions, {pairs_at_start:,} candidate items at the start ({len(solvers)} solvers "
        f"+ the analyzer; bench/graphs.py); `--max-in-flight {setup.capacity}`; "
        f"{setup.arrivals[0]}–{setup.arrivals[1]} releases an hour; seed {setup.seed}",
        f"- requests: {len(trees)}, one every {setup.request_every} run(s) from run 1, two requesters in turn; "
        f"trees 1–5 levels deep, {FAN_OUT[0]}–{FAN_OUT[1]} packages a level, {VERSIONS[0]}–{VERSIONS[1]} versions "
        f"each, {COMMON_PER_LEVEL} packages a level shared by every tree, one cycle",
        "- Jobs: 5–30 min (80%), 30–55 min (15%), 60–100 min (5%), then 5–20 min of graph sync; a result is in "
        "the graph for the first run after both",
        "- closure on: `--request-depth 10` (the default); closure off: `--request-depth 0`",
        "",
        "| depth | requests | versions a tree | closure on: runs to advisable, median | p95 | max | Jobs for the "
        "closure | closure off: median | p95 | max | Jobs for the closure |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for depth in DEPTHS:
        if not sizes[depth]:
            continue
        size = f"{min(sizes[depth])}–{max(sizes[depth])}"
        row = [str(depth), str(len(sizes[depth])), size, *cells(on, trees, depth, setup.runs)]
        row += cells(off, trees, depth, setup.runs)
        lines.append("| " + " | ".join(row) + " |")
    target = [tree.number for tree in trees if (on.advisable.get(tree.number) or setup.runs) > tree.depth + 2]
    lines += [
        "",
        f"Backlog Jobs per run: closure on {min(on.backlog_jobs)}–{max(on.backlog_jobs)}, closure off "
        f"{min(off.backlog_jobs)}–{max(off.backlog_jobs)}; requested Jobs per run, closure on at most "
        f"{max(on.requested_jobs)}.",
        f"Target (closure on: every request advisable within depth + 2 runs): "
        f"{'met' if not target else f'missed by {len(target)} of {len(trees)} requests'}.",
        f"Whole simulation: {wall:.1f} s wall, {used:.1f} s CPU.",
    ]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
