"""The import benchmark still runs (on a few hundred records: a smoke test, nothing is timed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_import_runs_on_a_tiny_graph(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "bench/bench_import.py", "--runs", "1", "--dir", str(tmp_path), "300"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    rows = [line for line in done.stdout.splitlines() if line.startswith("| 300 |")]
    assert len(rows) == 1, done.stdout
    assert len(rows[0].split("|")) == 9, done.stdout
    assert "300 records; new rows: package_version=" in done.stderr
    assert list(tmp_path.iterdir()) == [], "the generated files are removed"
