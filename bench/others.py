"""The other bench scripts, run after the runner's own benchmarks, their output appended to the report."""

from __future__ import annotations

import shlex
import subprocess
import sys
import time

from bench.baseline import ROOT
from bench.measure import log

TIMEOUT_SECONDS = 1_800  # one other bench script at full size
STDERR_TAIL_LINES = 15  # of a failed script, in the report

# Each script present: (arguments at full size, arguments for --quick; None = skipped in --quick).
OTHER_SCRIPTS: dict[str, tuple[list[str], list[str] | None]] = {
    "bench_render.py": (["50000"], ["300"]),
    "bench_import.py": (["--runs", "3", "1000000"], ["--runs", "1", "2000"]),
    "bench_dgraph.py": ([], None),
    "bench_explain.py": (["--pairs", "1000000", "--runs", "5"], ["--pairs", "2000", "--runs", "1"]),
    "bench_namespace.py": ([], None),  # its --quick run has a test of its own
    "simulate_lanes.py": ([], ["--quick"]),
    "simulate_eta.py": ([], ["--quick"]),
}


def run_others(*, quick: bool, env: dict[str, str]) -> tuple[list[str], bool]:
    """The other bench scripts present, with their output verbatim; False when one of them failed."""
    lines: list[str] = []
    ok = True
    for name, (full, small) in OTHER_SCRIPTS.items():
        path = ROOT / "bench" / name
        if not path.exists():
            continue
        args = small if quick else full
        lines += ["", f"### `{shlex.join([f'bench/{name}', *(args or [])])}`", ""]
        if args is None:
            lines.append("(skipped in --quick: no quick arguments are known for it; see OTHER_SCRIPTS in others.py)")
            continue
        log(f"bench/{name} {shlex.join(args)}")
        started = time.perf_counter()
        try:
            done = subprocess.run(
                [sys.executable, str(path), *args],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=TIMEOUT_SECONDS,
                check=False,
            )
        except subprocess.TimeoutExpired:
            lines.append(f"FAILED: still running after {TIMEOUT_SECONDS} s")
            ok = False
            continue
        lines += done.stdout.rstrip().splitlines()
        if done.returncode != 0:
            ok = False
            tail = done.stderr.strip().splitlines()[-STDERR_TAIL_LINES:]
            lines += [f"FAILED: exit {done.returncode}", "", "```", *tail, "```"]
        lines.append(f"\n({time.perf_counter() - started:.0f} s)")
    return lines, ok
