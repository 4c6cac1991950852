"""Benchmark what ``explain`` asks the SQLite store: one item's status and, per stream, its place in a lane.

    .venv/bin/python3 bench/bench_explain.py [--pairs 1000000] [--runs 5] [--store PATH]

Builds the synthetic graph of bench/graphs.py for about ``--pairs`` candidates (three solvers and the
analyzer) straight into a SQLite store (or opens ``--store`` when it exists), then times, for a few
items, exactly the store reads an explanation needs: ``status`` of the item, then for each of the four
streams one count of the candidates ahead of it, in the lane it waits in: ``solver_backlog`` /
``analyzer_backlog`` with ``up_to`` and ``before`` when it arrived at or before the fresh cursor,
``solver_fresh_ahead`` / ``analyzer_fresh_ahead`` when after. The items are the worst cases (the last
key in the backlog order with the cursor at the end; the last arrival with the cursor at 0) and a middle
one. Prints one Markdown table: median wall and CPU (this process's user + system) per explanation.
Measured, not asserted (bench/README.md holds the figures).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import graphs  # noqa: E402
from graph_refresh.items import Candidate, parse_solver_name  # noqa: E402
from graph_refresh.store.sqlite import SQLiteStore  # noqa: E402

SOLVERS = ("solver-fedora-31-py38", "solver-fedora-32-py38", "solver-rhel-8-py36")


def explain_reads(store: SQLiteStore, candidate: Candidate, cursor: int) -> tuple[int, list[int]]:
    """The reads of one explanation: status, then one count per stream; (arrival, counts)."""
    solvers = [parse_solver_name(name, template="bench") for name in SOLVERS]
    status = store.status(candidate, solvers)
    if status.arrival is None:
        raise SystemExit(f"{candidate} is not in the store")
    arrival = status.arrival
    counts = []
    for solver in solvers:
        if arrival > cursor:
            counts.append(store.solver_fresh_ahead(solver, after=cursor, before=arrival))
        else:
            counts.append(store.solver_backlog(solver, up_to=cursor, before=(arrival, candidate)))
    if arrival > cursor:
        counts.append(store.analyzer_fresh_ahead(after=cursor, before=arrival))
    else:
        counts.append(store.analyzer_backlog(up_to=cursor, before=(arrival, candidate)))
    return arrival, counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=1_000_000, help="candidates of the synthetic graph")
    parser.add_argument("--runs", type=int, default=5, help="explanations timed per case (median shown)")
    parser.add_argument("--store", type=Path, help="SQLite store to use; built there when it does not exist")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-explain-") as scratch:
        path = args.store or Path(scratch) / "store.sqlite3"
        versions = graphs.versions_for_pairs(args.pairs, solvers=len(SOLVERS))
        if not path.exists():
            started = time.perf_counter()
            graphs.build_sqlite(path, versions, SOLVERS)
            print(f"built {versions:,} versions in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        store = SQLiteStore(path)
        try:
            end = store.arrival_end()
            every = list(graphs.versions(versions))
            last, middle = every[-1], every[len(every) // 2]
            cases = [
                ("backlog lane, last key, cursor at the end", last, end),
                ("backlog lane, middle key, cursor at the end", middle, end),
                ("fresh lane, last arrival, cursor at 0", last, 0),
                ("fresh lane, last arrival, cursor at the middle", last, middle.number + 1),
            ]
            print(f"SQLite store of {end:,} versions (about {args.pairs:,} candidates), {args.runs} runs a case\n")
            print("| case | candidates ahead (3 solvers, analyzer) | wall ms | CPU ms |")
            print("|---|---|---:|---:|")
            for label, version, cursor in cases:
                candidate = Candidate(version.package_name, version.package_version, version.index_url)
                walls, cpus = [], []
                counts: list[int] = []
                for _ in range(args.runs):
                    wall, cpu = time.perf_counter(), time.process_time()
                    _, counts = explain_reads(store, candidate, cursor)
                    walls.append(time.perf_counter() - wall)
                    cpus.append(time.process_time() - cpu)
                ahead = ", ".join(f"{n:,}" for n in counts)
                wall_ms, cpu_ms = statistics.median(walls) * 1000, statistics.median(cpus) * 1000
                print(f"| {label} | {ahead} | {wall_ms:.1f} | {cpu_ms:.1f} |")
        finally:
            store.close()
        print_whole_command(path, last, args.runs)
    return 0


def print_whole_command(path: Path, version: graphs.Version, runs: int) -> None:
    """Time the whole ``app.py explain`` as a user runs it (a fresh process: imports, Templates from
    openshift/templates, the store's reads; no cluster), for the worst backlog case."""
    import resource
    import subprocess

    command = [
        sys.executable,
        str(ROOT / "app.py"),
        "--template-dir",
        str(ROOT / "openshift" / "templates"),
        "--sqlite-path",
        str(path),
        "explain",
        f"{version.package_name}=={version.package_version}",
        "--index",
        version.index_url,
    ]
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall = time.perf_counter()
        subprocess.run(
            command, check=True, capture_output=True, env={"PATH": "/usr/bin:/bin", "GRPC_VERBOSITY": "NONE"}
        )
        walls.append(time.perf_counter() - wall)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    wall_ms, cpu_ms = statistics.median(walls) * 1000, statistics.median(cpus) * 1000
    print(f"\n| the whole `app.py explain` (a new process, worst backlog case) | | {wall_ms:.1f} | {cpu_ms:.1f} |")


if __name__ == "__main__":
    sys.exit(main())
