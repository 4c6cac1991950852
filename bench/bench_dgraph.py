"""Benchmark the candidate streams: Dgraph (the gRPC stand-in, with a simulated latency) beside SQLite.

    .venv/bin/python3 bench/bench_dgraph.py [--versions 20000] [--latency-ms 0 5 20] [--work-us 20]

Builds one graph of N package versions (a third solved by one solver, a quarter analyzed), imports it
into a SQLite store and serves it from ``tests/fakes/dgraph.py`` in its own process, answering each
query after ``--latency-ms``. A consumer child process then reads the analyzer stream and the
solver's stream to the end, spending ``--work-us`` of CPU on each row (the planner's share), and
reports rows/s and its own peak RSS and CPU time. Dgraph runs with and without reading ahead
(``DgraphStore(prefetch=...)``). Measured, not asserted (bench/README.md holds the figures).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SOLVER = "solver-fedora-31-py38"
PYPI = "https://pypi.org/simple"


def write_graph(path: Path, versions: int) -> None:
    def version(i: int) -> dict[str, str]:
        return {"package_name": f"package-{i // 5:06d}", "package_version": f"1.{i % 5}.0", "index_url": PYPI}

    document = {
        "package_versions": [version(i) for i in range(versions)],
        "solved": [{**version(i), "solver": SOLVER, "error": i % 30 == 0} for i in range(0, versions, 3)],
        "analyzed": [version(i) for i in range(0, versions, 4)],
    }
    path.write_text(json.dumps(document))


def consume(store_kind: str, target: str, prefetch: bool, work_us: float) -> None:
    """Child process: read both streams to the end, spending ``work_us`` per row; print one JSON line."""
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    from graph_refresh.config import StoreSettings
    from graph_refresh.items import parse_solver_name
    from graph_refresh.store.base import GraphStore

    store: GraphStore
    if store_kind == "sqlite":
        from graph_refresh.store.sqlite import SQLiteStore

        store = SQLiteStore(Path(target))
    else:
        from graph_refresh.store.dgraph import DgraphStore

        store = DgraphStore(StoreSettings(graph_service_host=target), prefetch=prefetch)
    solver = parse_solver_name(SOLVER, template="bench")
    rows = 0
    started, cpu_started = time.perf_counter(), time.process_time()
    for stream in (store.analyzer_candidates(), store.solver_candidates(solver)):
        for _ in stream:
            rows += 1
            until = time.perf_counter() + work_us / 1e6
            while time.perf_counter() < until:  # the planner's CPU per candidate (holds the GIL, as it does)
                pass
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    store.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024  # KiB on Linux
    print(json.dumps({"rows": rows, "wall": wall, "cpu": cpu, "rss": peak}))


def run_consumer(store_kind: str, target: str, prefetch: bool, work_us: float) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--consume", store_kind, target, "--work-us", str(work_us)]
    if not prefetch:
        cmd.append("--no-prefetch")
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True)
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def serve(graph: Path, latency_ms: float) -> tuple[subprocess.Popen[str], str]:
    cmd = [sys.executable, "-m", "tests.fakes.dgraph", "--graph", str(graph), "--latency", str(latency_ms / 1000)]
    env = {**os.environ, "GRPC_VERBOSITY": "NONE"}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("listening on "):
        proc.kill()
        raise SystemExit(f"the Dgraph stand-in did not start: {line!r}")
    return proc, line.removeprefix("listening on ")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--versions", type=int, default=20_000, help="package versions in the graph")
    parser.add_argument("--latency-ms", type=float, nargs="+", default=[0.0, 5.0, 20.0], help="per-query delays")
    parser.add_argument("--work-us", type=float, default=20.0, help="consumer CPU per row, microseconds")
    parser.add_argument("--runs", type=int, default=3, help="runs per configuration; the table shows medians")
    parser.add_argument("--consume", nargs=2, metavar=("STORE", "TARGET"), help=argparse.SUPPRESS)
    parser.add_argument("--no-prefetch", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.consume:
        consume(args.consume[0], args.consume[1], not args.no_prefetch, args.work_us)
        return 0

    def row(label: str, latency: str, prefetch: str, runs: list[dict[str, float]]) -> None:
        rows = runs[0]["rows"]
        wall, cpu, rss = (statistics.median(run[key] for run in runs) for key in ("wall", "cpu", "rss"))
        figures = f"{rows:,.0f} | {rows / wall:,.0f} | {wall:.2f} | {cpu:.2f} | {rss:.0f}"
        print(f"| {label} | {latency} | {prefetch} | {figures} |", flush=True)

    with tempfile.TemporaryDirectory() as folder:
        graph, store = Path(folder) / "graph.json", Path(folder) / "graph.sqlite3"
        write_graph(graph, args.versions)
        imported = subprocess.run(
            [sys.executable, "app.py", "import-graph", "--sqlite-path", str(store), str(graph)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        if imported.returncode != 0:
            raise SystemExit(f"import failed: {imported.stderr}")
        print(f"<!-- {args.versions} versions, {args.work_us:g} µs of work per row, {args.runs} runs -->")
        print("| store | latency ms | read ahead | rows | rows/s | wall s | CPU s | peak RSS MiB |")
        print("|---|---:|---|---:|---:|---:|---:|---:|")
        row("sqlite", "-", "-", [run_consumer("sqlite", str(store), True, args.work_us) for _ in range(args.runs)])
        for latency in args.latency_ms:
            proc, host = serve(graph, latency)
            try:
                for prefetch in (False, True):
                    runs = [run_consumer("dgraph", host, prefetch, args.work_us) for _ in range(args.runs)]
                    row("dgraph", f"{latency:g}", "yes" if prefetch else "no", runs)
            finally:
                proc.terminate()
                proc.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
