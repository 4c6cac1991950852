"""Benchmark ``app.py import-graph``: records per second, peak RSS and CPU for generated graph files.

    .venv/bin/python3 bench/bench_import.py [--runs 3] [--dir DIR] [--depends-on K] 1000000 8000000

For each size N it writes a synthetic graph file of N records (streamed to disk: 70 % package_versions,
20 % solved, 10 % analyzed, the solved and analyzed ones naming versions of the first list and a few
that only they name; with ``--depends-on K`` each solved record lists K versions it depends on), imports it
into a new SQLite store with the real CLI in a child process, and
reads the child's peak RSS and CPU time from ``wait4``. Prints one Markdown row per size: medians of
``--runs`` runs. Measured, not asserted (bench/README.md holds the figures).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INDEXES = ("https://pypi.org/simple", "https://tensorflow.pypi.thoth-station.ninja/index/manylinux2010/AVX2/simple")
SOLVERS = ("solver-fedora-31-py38", "solver-rhel-8.6-py38", "solver-ubi-9-py311")
WRITE_BATCH = 10_000  # records formatted per write


def version(i: int) -> str:
    """The i-th version record's three fields as JSON text (hand-formatted: the names need no escaping)."""
    return (
        f'"package_name": "package-{i // 7:07d}", "package_version": "{i % 7}.{i % 13}.0", '
        f'"index_url": "{INDEXES[i % 11 == 0]}"'
    )


def write_graph(path: Path, records: int, depends_on: int = 0) -> None:
    """A graph file of ``records`` records, written batch by batch (never held in memory); each solved record
    lists ``depends_on`` versions it depends on (some past the list: added by the import as versions)."""
    counts = {"package_versions": records * 7 // 10, "solved": records * 2 // 10}
    counts["analyzed"] = records - counts["package_versions"] - counts["solved"]
    versions = counts["package_versions"]
    # Records formatted per write: a record with a list is that much longer. The text held stays about the same,
    # so this process stays small; its child, the import measured, starts as a copy of it (fork, then exec), and
    # the peak RSS read from wait4 would otherwise count this process's batch too.
    batch = max(1, WRITE_BATCH // (1 + depends_on))
    with path.open("w", encoding="utf-8") as out:
        out.write("{")
        for n, (section, count) in enumerate(counts.items()):
            out.write(f'{", " if n else ""}"{section}": [')
            for start in range(0, count, batch):
                lines = []
                for i in range(start, min(start + batch, count)):
                    target = (i * 3) % (versions + versions // 50 + 1)  # a few past the list: added by import
                    if section == "package_versions":
                        lines.append(f"{{{version(i)}}}")
                    elif section == "solved":
                        error = "true" if i % 17 == 0 else "false"
                        needs = ", ".join(
                            f"{{{version((target + 7 * k + 1) % (versions + 50))}}}" for k in range(depends_on)
                        )
                        lines.append(
                            f'{{{version(target)}, "solver": "{SOLVERS[i % 3]}", "error": {error}, '
                            f'"depends_on": [{needs}]}}'
                        )
                    else:
                        lines.append(f"{{{version(target)}}}")
                out.write((", " if start else "") + ",\n".join(lines))
            out.write("]")
        out.write("}\n")


def run_import(graph: Path, store: Path) -> tuple[float, float, int, str]:
    """Import ``graph`` into a new ``store``: wall s, CPU s (user + system), peak RSS MiB, the summary line."""
    store.unlink(missing_ok=True)
    env = {**os.environ, "GRPC_VERBOSITY": "NONE"}
    env.pop("GRAPH_SERVICE_HOST", None)
    cmd = [sys.executable, "app.py", "import-graph", "--sqlite-path", str(store), str(graph)]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    summary = proc.stdout.read().strip()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"import failed: {' '.join(cmd)}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss // 1024, summary  # ru_maxrss: KiB on Linux


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("sizes", nargs="+", type=int, help="records per generated graph file")
    parser.add_argument("--runs", type=int, default=3, help="imports per size; the table shows medians")
    parser.add_argument("--dir", type=Path, help="where to write the files (default: a temporary folder)")
    parser.add_argument("--depends-on", type=int, default=0, help="versions each solved record depends on")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        print("| records | file MiB | runs | records/s | wall s | CPU s | peak RSS MiB |")
        print("|---:|---:|---:|---:|---:|---:|---:|")
        for size in args.sizes:
            graph, store = Path(folder) / f"graph-{size}.json", Path(folder) / f"store-{size}.sqlite3"
            if args.depends_on < 0:
                parser.error("--depends-on: a count of versions, 0 or more")
            write_graph(graph, size, args.depends_on)
            runs = [run_import(graph, store) for _ in range(args.runs)]
            wall, cpu, rss = (statistics.median(run[:3][k] for run in runs) for k in range(3))
            megabytes = graph.stat().st_size / 2**20
            figures = f"{size / wall:,.0f} | {wall:.1f} | {cpu:.1f} | {rss:.0f}"
            print(f"| {size:,} | {megabytes:,.0f} | {args.runs} | {figures} |", flush=True)
            print(f"<!-- {runs[-1][3]} -->", file=sys.stderr)
            graph.unlink()
            store.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
