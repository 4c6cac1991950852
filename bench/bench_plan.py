"""Benchmark: time and peak memory of a dry run as the backlog grows (memory must not grow with it; design: A run).

Builds an SQLite store with N unsolved, unanalyzed package versions, then runs the real CLI in a child
process (`app.py --dry-run --template-dir openshift/templates`, no manifests written) and reads the child's
peak RSS. Usage: python bench/bench_plan.py [N ...]   (results are written down in bench/README.md)
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from graph_refresh.items import Candidate  # noqa: E402
from graph_refresh.store.graphfile import GraphFile  # noqa: E402
from graph_refresh.store.sqlite import SQLiteStore  # noqa: E402


def build(path: Path, n: int) -> None:
    versions = [Candidate(f"package-{i // 10:06d}", f"1.{i % 10}.0", "https://pypi.org/simple") for i in range(n)]
    store = SQLiteStore(path, create=True)
    store.import_graph(GraphFile(package_versions=versions))
    store.close()


def run(path: Path, *args: str) -> tuple[float, int]:
    env = {**os.environ, "GRAPH_REFRESH_SQLITE_PATH": str(path), "GRPC_VERBOSITY": "NONE"}
    started = time.perf_counter()
    cmd = [sys.executable, "app.py", "--dry-run", "--template-dir", "openshift/templates", *args]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, cmd
    return time.perf_counter() - started, usage.ru_maxrss // 1024  # ru_maxrss is in KiB on Linux


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [10_000, 100_000]
    print("| backlog (versions) | run | candidates examined | wall s | peak RSS MiB |")
    print("|---:|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            path = Path(tmp) / f"bench-{n}.sqlite3"
            build(path, n)
            for label, args in (("default caps (max-in-flight 1000)", ()), ("no caps", ("--max-in-flight", "0"))):
                seconds, rss = run(path, *args)
                examined = 1000 if args == () else 4 * n
                print(f"| {n:,} | {label} | ~{examined:,} | {seconds:.1f} | {rss} |")


if __name__ == "__main__":
    main()
