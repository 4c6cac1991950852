"""Measuring a child process: wall time, CPU time (user + system) and peak RSS, and what a measurement is.

A figure is always one whole child process, read from ``wait4`` when it ends (``run_child``), or up to the
first planned Job it logs (``run_to_first_job``). A ``Row`` holds the samples of one command run several
times; the tables show their medians. Nothing here knows which commands are measured.

The measured command is started by a small launcher process (``LAUNCHER``), which waits for it and reports its
CPU time and peak RSS. Linux carries the peak RSS of the address space a process replaces at ``exec`` into the
new program's figure, and a child started straight from this runner replaces the runner's own (vfork): it would
report the runner's peak (a stand-in API server serving in the runner, say) whenever that is the larger. The
launcher is a bare interpreter of a few MiB, so the figure is the command's own.

Modules are compiled as the image ships them (``compile_code``: the Dockerfile runs ``compileall`` over
``app.py`` and ``graph_refresh``): with ``PYTHONDONTWRITEBYTECODE`` set, as in the image, a start would
otherwise compile every module of the code it imports, every time.
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
COMPILED = ("app.py", "graph_refresh")  # what the Dockerfile compiles, relative to a checkout's root
# argv: the usage file, then the command. Writes the command's pid on the first line, its CPU seconds and peak
# RSS in KiB on the second, and exits as the command did (128 + N when signal N ended it).
LAUNCHER = """
import os, sys
usage_path, command = sys.argv[1], sys.argv[2:]
pid = os.posix_spawnp(command[0], command, os.environ)
with open(usage_path, "w") as usage_file:
    usage_file.write(f"{pid}\\n")
_, status, usage = os.wait4(pid, 0)
with open(usage_path, "a") as usage_file:
    usage_file.write(f"{usage.ru_utime + usage.ru_stime} {usage.ru_maxrss}\\n")
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
"""


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


def launched(cmd: Sequence[str], usage: Path) -> list[str]:
    """``cmd`` under the launcher, which writes its pid and then its resource use into the file ``usage``."""
    return [sys.executable, "-I", "-S", "-c", LAUNCHER, str(usage), *cmd]


def _usage_lines(usage: Path) -> list[str]:
    try:
        return usage.read_text().splitlines()
    except FileNotFoundError:
        return []


def launched_pid(usage: Path) -> int | None:
    """The pid of the command the launcher started, once it has written it."""
    lines = _usage_lines(usage)
    return int(lines[0]) if lines else None


def launched_usage(usage: Path) -> tuple[float, float] | None:
    """CPU seconds (user + system) and peak RSS in MiB of the command the launcher waited for; None when it
    did not get that far."""
    lines = _usage_lines(usage)
    if len(lines) < 2:
        return None
    cpu, max_rss_kib = lines[1].split()
    return float(cpu), int(max_rss_kib) / 1024  # ru_maxrss is in KiB on Linux


def run_child_output(
    cmd: Sequence[str], *, cwd: Path, env: dict[str, str], ok: Sequence[int] = (0,)
) -> tuple[Sample, str, str]:
    """Run ``cmd`` to its end; its resource use (from the launcher's ``wait4``), its stdout and its stderr.
    Raise BenchError on failure."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, tempfile.TemporaryDirectory() as folder:
        usage_path = Path(folder) / "usage"
        started = time.perf_counter()
        returncode = subprocess.call(launched(cmd, usage_path), cwd=cwd, env=env, stdout=out, stderr=err)
        wall = time.perf_counter() - started
        usage = launched_usage(usage_path)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if returncode not in ok or usage is None:
        tail = "\n".join(stderr.splitlines()[-ERROR_TAIL_LINES:])
        raise BenchError(f"{shlex.join(cmd)} exited {returncode} (cwd {cwd}):\n{tail}")
    return Sample(wall, *usage), stdout, stderr


def run_child(cmd: Sequence[str], *, cwd: Path, env: dict[str, str], ok: Sequence[int] = (0,)) -> tuple[Sample, str]:
    """Run ``cmd`` to its end; its resource use (from the launcher's ``wait4``) and its stdout. Raise BenchError
    on failure."""
    sample, stdout, _ = run_child_output(cmd, cwd=cwd, env=env, ok=ok)
    return sample, stdout


def compile_code(root: Path) -> None:
    """Compile the modules of the checkout at ``root`` as the image ships them (``compileall`` over ``COMPILED``),
    so that no measured start compiles them. Raise BenchError when that fails."""
    done = subprocess.run(
        [sys.executable, "-m", "compileall", "-q", *COMPILED], cwd=root, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise BenchError(f"compileall in {root} failed:\n{done.stdout}{done.stderr}")


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
    with tempfile.TemporaryFile() as out, tempfile.TemporaryDirectory() as folder:
        usage_path = Path(folder) / "usage"
        started = time.perf_counter()
        proc = subprocess.Popen(launched(cmd, usage_path), cwd=cwd, env=env, stdout=out, stderr=subprocess.PIPE)
        assert proc.stderr is not None
        for line in proc.stderr:
            pid = launched_pid(usage_path)
            if first is None and FIRST_JOB_LINE in line and pid is not None:
                first = (time.perf_counter() - started, cpu_seconds_so_far(pid))
            tail = [*tail[-(ERROR_TAIL_LINES - 1) :], line]
        returncode = proc.wait()
        usage = launched_usage(usage_path)
    if returncode != 0 or first is None or usage is None:
        said = b"".join(tail).decode(errors="replace")
        raise BenchError(f"{shlex.join(cmd)} exited {returncode} (cwd {cwd}), first Job {first}:\n{said}")
    return Sample(first[0], first[1], usage[1])


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
