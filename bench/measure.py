"""Measuring a child process: wall time, CPU time (user + system) and peak RSS, and what a measurement is.

A figure is always one whole child process, read from ``wait4`` when it ends (``run_child``), or up to the
first planned Job it logs (``run_to_first_job``). A ``Row`` holds the samples of one command run several
times; the tables show their medians. Nothing here knows which commands are measured.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

FIRST_JOB_LINE = b"Would create Job"  # the scheduler's debug line for each Job a dry run plans (may be wrapped)
ERROR_TAIL_LINES = 15  # of a failed child's stderr, in the error


class BenchError(Exception):
    """A measured command failed: the benchmark cannot go on meaningfully."""


@dataclass(frozen=True)
class Sample:
    """One child process: seconds of wall and CPU (user + system) time, peak resident memory."""

    wall: float
    cpu: float
    rss_mib: float


@dataclass
class Row:
    """One measured command, run ``len(samples)`` times."""

    benchmark: str
    graph: str
    code: str
    samples: list[Sample] = field(default_factory=list)
    count: int | None = None
    """Candidates examined (from the run report) or Jobs created."""
    extra: dict[str, int] = field(default_factory=dict)

    def median(self, attribute: str) -> float:
        return float(statistics.median(getattr(s, attribute) for s in self.samples))


def run_child(cmd: Sequence[str], *, cwd: Path, env: dict[str, str], ok: Sequence[int] = (0,)) -> tuple[Sample, str]:
    """Run ``cmd`` to its end; its resource use from ``wait4`` and its stdout. Raise BenchError on failure."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if proc.returncode not in ok:
        tail = "\n".join(stderr.splitlines()[-ERROR_TAIL_LINES:])
        raise BenchError(f"{shlex.join(cmd)} exited {proc.returncode} (cwd {cwd}):\n{tail}")
    # ru_maxrss is in KiB on Linux.
    return Sample(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024), stdout


def cpu_seconds_so_far(pid: int) -> float:
    """User + system CPU time a running process has used (Linux /proc; clock ticks, 10 ms here)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_to_first_job(cmd: Sequence[str], *, cwd: Path, env: dict[str, str]) -> Sample:
    """Run a dry run whose scheduler logs each planned Job at DEBUG; its wall and CPU time when the first of those
    lines arrives on stderr (the peak RSS is the whole run's). Raise BenchError on failure or without such a line."""
    env = {**env, "THOTH_LOG_GRAPH_REFRESH__SCHEDULER": "DEBUG"}
    first: tuple[float, float] | None = None
    tail: list[bytes] = []
    with tempfile.TemporaryFile() as out:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.PIPE)
        assert proc.stderr is not None
        for line in proc.stderr:
            if first is None and FIRST_JOB_LINE in line:
                first = (time.perf_counter() - started, cpu_seconds_so_far(proc.pid))
            tail = [*tail[-(ERROR_TAIL_LINES - 1) :], line]
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0 or first is None:
        said = b"".join(tail).decode(errors="replace")
        raise BenchError(f"{shlex.join(cmd)} exited {proc.returncode} (cwd {cwd}), first Job {first}:\n{said}")
    return Sample(first[0], first[1], usage.ru_maxrss / 1024)


def child_env(home: Path, **extra: str) -> dict[str, str]:
    """This environment without any graph-refresh setting (none may leak in from the shell), plus ``extra``."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("THOTH_", "GRAPH_", "KUBE", "PROMETHEUS_")) and key != "NAMESPACE"
    }
    env.update(GRPC_VERBOSITY="NONE", HOME=str(home), **extra)
    return env


def log(message: str) -> None:
    """Progress, on stderr (stdout is the report)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def machine() -> str:
    """The machine the figures come from: CPUs, Python, load when the measurements start."""
    model = platform.processor() or "unknown CPU"
    with contextlib.suppress(OSError):
        found = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.MULTILINE)
        model = found.group(1).strip() if found else model
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    return f"{os.cpu_count()} CPUs ({model}), Python {platform.python_version()}, load average at start {load}"
