"""The Dgraph stream benchmark still runs (a tiny graph, one run, no latency: a smoke test, nothing is timed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(120)
def test_bench_dgraph_runs_on_a_tiny_graph() -> None:
    done = subprocess.run(
        [sys.executable, "bench/bench_dgraph.py", "--versions", "60", "--runs", "1", "--latency-ms", "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    rows = [line.split("|") for line in done.stdout.splitlines() if line.startswith(("| sqlite", "| dgraph"))]
    assert [(row[1].strip(), row[3].strip()) for row in rows] == [("sqlite", "-"), ("dgraph", "no"), ("dgraph", "yes")]
    assert len({row[4] for row in rows}) == 1, "every store yields the same number of rows"
