"""Every benchmark of issue 10 in one command: build the graphs, run, print one Markdown report.

    /work/main/.venv/bin/python bench/run.py                  # 1M and 10M candidates (≈ 20 min)
    /work/main/.venv/bin/python bench/run.py --pairs 1M       # 1M only
    /work/main/.venv/bin/python bench/run.py --quick          # tiny sizes, seconds (the smoke test)

Each measurement is a child process (the real CLI, ``app.py``) whose wall time, CPU time (user + system)
and peak RSS come from ``wait4``; the tables show medians of ``--repeat`` runs. Every measurement is made
with this checkout's code and, for the ratio column, with the previous release (``--baseline REV``, checked
out into a temporary git worktree and run with the same interpreter), and where it applies with a
2019-style sequential loop (``bench/legacy2019.py``). The other bench scripts present (render, import,
Dgraph) run last and their output is appended. Nothing here asserts a speed; README.md holds the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import graphs  # noqa: E402

TEMPLATES = ROOT / "openshift" / "templates"  # both codes plan with the same Templates: the same work
DEFAULT_BASELINE = "e23f640"  # the code before the "speed at PyPI scale" round of work
MIDDLETIER = "middletier"
JOBS_PATH = rf"^/apis/batch/v1/namespaces/{MIDDLETIER}/jobs$"
CREATE_DELAY_SECONDS = 0.02  # injected per create: a busy API server's latency, which concurrency hides
CREATE_WORKERS = "16"
EAGER_STOP_FIRST_JOB = "200"
TARGET_MIN_PAIRS = 1_000_000  # the dry-run targets of issue 10 are for graphs of at least this size
EXTRA_TIMEOUT_SECONDS = 1_800  # one other bench script at full size
QUICK_PAIRS = 400  # --quick: one small graph serves every dry-run benchmark
QUICK_CREATES = 12  # --quick: Jobs per create benchmark, one injected delay only
SIZE_SUFFIXES = {"k": 1_000, "M": 1_000_000}

THIS, PREVIOUS, LOOP_2019 = "this checkout", "previous", "2019 loop"
FULL, MANIFESTS = "full dry run", "full dry run, manifests written"
EAGER_STOP = f"dry run --eager-stop {EAGER_STOP_FIRST_JOB}"
FIRST_JOB = f"first Job of a dry run --eager-stop {EAGER_STOP_FIRST_JOB}"
FIRST_JOB_LINE = b"Would create Job "  # the scheduler's debug line for each Job a dry run plans
FIRST_JOB_TARGET_SECONDS = 0.4
# What --only selects from: --help; the full dry runs of the reference graph (with the 2019 loop); manifests
# written; the time to the first Job; the full dry runs of the --pairs graphs; creates against the fake.
BENCHMARKS = ("help", "reference", "manifests", "first-job", "full", "creates")
FULL_ARGS = ("--dry-run", "--template-dir", str(TEMPLATES), "--eager-stop", "0", "--max-in-flight", "0")

# Other engineers' scripts: (arguments at full size, arguments for --quick; None = skipped in --quick).
OTHER_SCRIPTS: dict[str, tuple[list[str], list[str] | None]] = {
    "bench_render.py": (["50000"], ["300"]),
    "bench_import.py": (["--runs", "3", "1000000"], ["--runs", "1", "2000"]),
    "bench_dgraph.py": ([], None),
    "bench_explain.py": (["--pairs", "1000000", "--runs", "5"], ["--pairs", "2000", "--runs", "1"]),
    "bench_namespace.py": ([], None),  # its --quick run has a test of its own
    "simulate_lanes.py": ([], ["--quick"]),
}


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


# ------------------------------------------------------------------------------------------------ processes


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
        tail = "\n".join(stderr.splitlines()[-15:])
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
            tail = [*tail[-14:], line]
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
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------- the codes


@dataclass(frozen=True)
class Code:
    """A checkout of graph-refresh to measure."""

    label: str
    root: Path

    def app(self, *args: str) -> list[str]:
        return [sys.executable, str(self.root / "app.py"), *args]


def git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)


@contextlib.contextmanager
def baseline_checkout(rev: str) -> Iterator[Code | None]:
    """The code at ``rev`` in a temporary git worktree, removed afterwards; None when ``rev`` is unknown
    (a shallow clone, or ``--baseline ''``)."""
    if not rev or git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}").returncode != 0:
        log(f"baseline {rev!r} is not available here: measuring without it")
        yield None
        return
    folder = Path(tempfile.mkdtemp(prefix="graph-refresh-baseline-"))
    tree = folder / "tree"
    added = git("worktree", "add", "--detach", str(tree), rev)
    if added.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        raise BenchError(f"git worktree add {tree} {rev} failed: {added.stderr.strip()}")
    try:
        short = git("rev-parse", "--short", rev).stdout.strip()
        yield Code(f"{PREVIOUS} ({short})", tree)
    finally:
        git("worktree", "remove", "--force", str(tree))
        shutil.rmtree(folder, ignore_errors=True)
        git("worktree", "prune")


def examined(report_path: Path) -> int:
    """Candidates examined, all kinds, from a run report (SPEC §8)."""
    report = json.loads(report_path.read_text())
    return sum(int(counts["examined"]) for counts in report["totals"].values())


# ----------------------------------------------------------------------------------------------- benchmarks


@dataclass
class Bench:
    """The settings of one invocation and the rows measured so far."""

    work: Path
    codes: list[Code]
    repeat: int
    rows: list[Row] = field(default_factory=list)
    builds: list[str] = field(default_factory=list)
    """How each graph was built, for the report."""

    @property
    def env(self) -> dict[str, str]:
        return child_env(self.work / "home")

    def measure_app(self, row: Row, code: Code, *args: str, env: dict[str, str] | None = None) -> Row:
        """Run ``app.py args --report R`` ``repeat`` times; count what the last report says was examined."""
        report = self.work / "report.json"
        for _ in range(self.repeat):
            sample, _ = run_child(code.app(*args, "--report", str(report)), cwd=code.root, env=env or self.env)
            row.samples.append(sample)
            row.count = examined(report)
        self.rows.append(row)
        return row

    # --- graphs

    def build_graph(self, pairs: int, *, json_max_pairs: int) -> tuple[Path, str]:
        """A store with about ``pairs`` candidates; returns its path and a label for the tables."""
        solvers = graphs.solver_names(TEMPLATES)
        n = graphs.versions_for_pairs(pairs, len(solvers))
        store = self.work / f"graph-{pairs}.sqlite3"
        label = f"{n:,} versions"
        if store.exists():
            return store, label
        started = time.perf_counter()
        if pairs <= json_max_pairs:  # the real importer reads the streamed file (whole, on this branch)
            document = self.work / f"graph-{pairs}.json"
            graphs.write_graph_json(document, n, solvers)
            written = time.perf_counter() - started
            sample, _ = run_child(
                self.codes[0].app("--sqlite-path", str(store), "import-graph", str(document)),
                cwd=ROOT,
                env=self.env,
            )
            document.unlink()
            self.builds.append(
                f"{label}: graph file streamed in {written:.1f} s, loaded by `app.py import-graph` in "
                f"{sample.wall:.1f} s wall, {sample.cpu:.1f} s CPU, {sample.rss_mib:.0f} MiB peak"
            )
        else:  # too big to import from one JSON document today: the store is written directly
            graphs.build_sqlite(store, n, solvers)
            self.builds.append(f"{label}: SQLite store written directly in {time.perf_counter() - started:.1f} s")
        log(f"graph {self.builds[-1]}")
        return store, label

    # --- the dry-run benchmarks

    def full_pass(self, store: Path, label: str, *, previous: bool, loop: bool) -> None:
        """The full dry run with this checkout; with the previous code and the 2019 loop when asked."""
        env = child_env(self.work / "home", GRAPH_REFRESH_SQLITE_PATH=str(store))
        for code in self.codes if previous else self.codes[:1]:
            log(f"full dry run, {label}, {code.label}")
            self.measure_app(Row(FULL, label, code.label), code, *FULL_ARGS, env=env)
        if loop:
            log(f"full dry run, {label}, {LOOP_2019}")
            row = Row(FULL, label, LOOP_2019)
            command = [sys.executable, str(ROOT / "bench" / "legacy2019.py"), "plan"]
            for _ in range(self.repeat):
                sample, out = run_child(
                    [*command, "--sqlite-path", str(store), "--template-dir", str(TEMPLATES)], cwd=ROOT, env=self.env
                )
                row.samples.append(sample)
                row.count = json.loads(out)["examined"]
            self.rows.append(row)

    def first_job(self, store: Path, label: str) -> None:
        """The whole dry run with ``--eager-stop``, then the same runs timed to their first planned Job."""
        env = child_env(self.work / "home", GRAPH_REFRESH_SQLITE_PATH=str(store))
        args = ("--dry-run", "--template-dir", str(TEMPLATES), "--eager-stop", EAGER_STOP_FIRST_JOB)
        for code in self.codes:
            log(f"first Jobs (--eager-stop {EAGER_STOP_FIRST_JOB}), {label}, {code.label}")
            self.measure_app(Row(EAGER_STOP, label, code.label), code, *args, "--max-in-flight", "0", env=env)
        for code in self.codes:
            log(f"time to the first Job (--eager-stop {EAGER_STOP_FIRST_JOB}), {label}, {code.label}")
            row = Row(FIRST_JOB, label, code.label)
            for _ in range(self.repeat):
                row.samples.append(run_to_first_job(code.app(*args, "--max-in-flight", "0"), cwd=code.root, env=env))
            self.rows.append(row)

    def help(self) -> None:
        for code in self.codes:
            log(f"--help, {code.label}")
            row = Row("--help", "-", code.label)
            for _ in range(self.repeat):
                row.samples.append(run_child(code.app("--help"), cwd=code.root, env=self.env)[0])
            self.rows.append(row)

    def manifests(self, store: Path, label: str) -> None:
        """The full dry run writing manifests (compared with the full dry run of the same graph)."""
        env = child_env(self.work / "home", GRAPH_REFRESH_SQLITE_PATH=str(store))
        output = self.work / "manifests"
        for code in self.codes:
            log(f"manifests, {label}, {code.label}")
            row = Row(MANIFESTS, label, code.label)
            for _ in range(self.repeat):
                shutil.rmtree(output, ignore_errors=True)
                output.mkdir()
                report = self.work / "report.json"
                sample, _ = run_child(
                    code.app(*FULL_ARGS, "--output-dir", str(output), "--report", str(report)), cwd=code.root, env=env
                )
                row.samples.append(sample)
                row.count = examined(report)
            shutil.rmtree(output, ignore_errors=True)
            self.rows.append(row)

    # --- creates against the Kubernetes stand-in

    def creates(self, creates: int, delays: Sequence[float]) -> None:
        """Real runs against FakeKube over TLS; the 2019 loop creates the manifests a dry run planned."""
        from tests.fakes.kube import FakeKube

        solvers = graphs.solver_names(TEMPLATES)
        store = self.work / f"creates-{creates}.sqlite3"
        if not store.exists():
            graphs.build_sqlite(store, graphs.versions_for_pairs(creates, len(solvers)), solvers)
        manifests = self.work / "create-manifests"
        shutil.rmtree(manifests, ignore_errors=True)
        manifests.mkdir()
        store_env = {"GRAPH_REFRESH_SQLITE_PATH": str(store)}
        plan = ("--dry-run", "--template-dir", str(TEMPLATES), "--max-in-flight", "0", "--output-dir", str(manifests))
        run_child(self.codes[0].app(*plan), cwd=ROOT, env=child_env(self.work / "home", **store_env))
        expected = len(list(manifests.glob("*.yaml")))
        label = f"{expected:,} Jobs"
        args = ["--template-dir", str(TEMPLATES), "--max-in-flight", "0", "--eager-stop", "0"]
        args += ["--qps", "0", "--workers", CREATE_WORKERS]
        loop = [sys.executable, str(ROOT / "bench" / "legacy2019.py"), "create", "--manifests", str(manifests)]
        for delay in delays:
            benchmark = f"creates, {delay * 1000:.0f} ms per create"
            for code in [*self.codes, None]:
                row = Row(benchmark, label, code.label if code else LOOP_2019)
                log(f"{benchmark}, {label}, {row.code}")
                for _ in range(self.repeat):
                    with FakeKube(tls="tls") as fake:
                        if delay:
                            fake.inject("POST", JOBS_PATH, status=None, delay=delay, times=None)
                        kubeconfig = fake.kubeconfig(self.work / "kubeconfig")
                        cluster_env = {"KUBECONFIG": str(kubeconfig), "THOTH_MIDDLETIER_NAMESPACE": MIDDLETIER}
                        env = child_env(self.work / "home", **store_env, **cluster_env)
                        if code is None:
                            cmd = [*loop, "--kubeconfig", str(kubeconfig), "--namespace", MIDDLETIER]
                        else:
                            cmd = code.app(*args)
                        sample, _ = run_child(cmd, cwd=code.root if code else ROOT, env=env)
                        row.samples.append(sample)
                        count_jobs(row, fake.objects("jobs", MIDDLETIER), expected=expected)
                self.rows.append(row)
        shutil.rmtree(manifests, ignore_errors=True)


def count_jobs(row: Row, jobs: list[dict[str, Any]], *, expected: int) -> None:
    """Jobs in the fake after a run: duplicates (two Jobs of one item) and lost items (planned, no Job);
    the worst run counts."""
    items = set()
    for job in jobs:
        labels = job["metadata"].get("labels") or {}
        items.add(tuple(labels.get(f"thoth-station.ninja/{key}") for key in ("kind", "solver", "item")))
    row.count = len(jobs)
    row.extra["duplicates"] = max(row.extra.get("duplicates", 0), len(jobs) - len(items))
    row.extra["lost"] = max(row.extra.get("lost", 0), expected - len(items))


# -------------------------------------------------------------------------------------------------- the report


def _seconds(value: float) -> str:
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def _ratio(reference: Row | None, row: Row) -> str:
    """reference ÷ row, CPU then wall: how many times less this checkout spends (> 1: faster)."""
    if reference is None or not row.code.startswith(THIS):
        return ""
    cpu = reference.median("cpu") / row.median("cpu")
    wall = reference.median("wall") / row.median("wall")
    return f"{cpu:.1f}× ({wall:.1f}×)"


def _reference(rows: Sequence[Row], row: Row, code: str) -> Row | None:
    for other in rows:
        if other.benchmark == row.benchmark and other.graph == row.graph and other.code.startswith(code):
            return other
    return None


def process_table(rows: Sequence[Row]) -> list[str]:
    lines = [
        "| benchmark | graph | code | runs | candidates examined | wall s | CPU s | µs CPU / candidate "
        "| candidates / s (wall) | peak RSS MiB | previous ÷ this, CPU (wall) | 2019 loop ÷ this, CPU (wall) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        wall, cpu = row.median("wall"), row.median("cpu")
        count = row.count or 0
        per = f"{cpu / count * 1e6:.1f}" if count else ""
        rate = f"{count / wall:,.0f}" if count else ""
        lines.append(
            f"| {row.benchmark} | {row.graph} | {row.code} | {len(row.samples)} | "
            f"{'' if row.count is None else f'{row.count:,}'} | {_seconds(wall)} | {_seconds(cpu)} | {per} | {rate} | "
            f"{row.median('rss_mib'):.0f} | {_ratio(_reference(rows, row, PREVIOUS), row)} | "
            f"{_ratio(_reference(rows, row, LOOP_2019), row)} |"
        )
    return lines


def creates_table(rows: Sequence[Row]) -> list[str]:
    lines = [
        "| benchmark | planned | code | runs | Jobs in the fake | wall s | creates / s | client CPU ms / create "
        "| peak RSS MiB | duplicates | lost | previous ÷ this, CPU (wall) | 2019 loop ÷ this, CPU (wall) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        wall, cpu, count = row.median("wall"), row.median("cpu"), row.count or 0
        per = f"{cpu / count * 1e3:.2f}" if count else ""
        lines.append(
            f"| {row.benchmark} | {row.graph} | {row.code} | {len(row.samples)} | {count:,} | {_seconds(wall)} | "
            f"{count / wall:,.0f} | {per} | {row.median('rss_mib'):.0f} | {row.extra['duplicates']} | "
            f"{row.extra['lost']} | {_ratio(_reference(rows, row, PREVIOUS), row)} | "
            f"{_ratio(_reference(rows, row, LOOP_2019), row)} |"
        )
    return lines


def targets(rows: Sequence[Row]) -> list[str]:
    """Issue 10's targets beside what this checkout measured (reported, never asserted)."""
    mine = [row for row in rows if row.code.startswith(THIS)]
    lines: list[str] = []

    def line(target: str, measured: str, met: bool) -> None:
        lines.append(f"- {target}: {measured} — {'met' if met else 'NOT met'}")

    full = [row for row in mine if row.benchmark == FULL and row.count]
    largest = max((row.count or 0 for row in full), default=0)
    for row in mine:
        # The dry-run target is about graphs of 1M candidates and more (the largest, when all are smaller).
        count = row.count or 0
        if row in full and count >= min(largest, TARGET_MIN_PAIRS):
            per_us = row.median("cpu") / count * 1e6
            rate = count / row.median("wall")
            rss = row.median("rss_mib")
            line(
                f"full dry run, {count:,} candidates: ≤ 10 µs CPU per candidate, ≥ 100k candidates/s, ≤ 128 MiB",
                f"{per_us:.1f} µs, {rate:,.0f}/s, {rss:.0f} MiB",
                per_us <= 10 and rate >= 100_000 and rss <= 128,
            )
        elif row.benchmark in (FIRST_JOB, "--help"):  # the whole --eager-stop run also counts its backlog
            limit = 0.25 if row.benchmark == "--help" else FIRST_JOB_TARGET_SECONDS
            wall, cpu = row.median("wall"), row.median("cpu")
            line(
                f"{row.benchmark} ({row.graph}): ≤ {limit} s",
                f"{wall:.2f} s wall, {cpu:.2f} s CPU",
                max(wall, cpu) <= limit,
            )
        elif row.benchmark == MANIFESTS:
            plan = next(r for r in mine if r.benchmark == FULL and r.graph == row.graph)
            factor = row.median("cpu") / plan.median("cpu")
            line(f"writing manifests ({row.graph}): < 3× planning alone", f"{factor:.2f}× CPU", factor < 3)
        elif row.benchmark.startswith("creates"):
            line(
                f"{row.benchmark}: 0 duplicates, 0 lost",
                f"{row.extra['duplicates']} duplicates, {row.extra['lost']} lost, {row.count:,} Jobs",
                row.extra["duplicates"] == 0 and row.extra["lost"] == 0,
            )
    return lines


def machine() -> str:
    model = platform.processor() or "unknown CPU"
    with contextlib.suppress(OSError):
        found = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.MULTILINE)
        model = found.group(1).strip() if found else model
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    return f"{os.cpu_count()} CPUs ({model}), Python {platform.python_version()}, load average at start {load}"


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
            lines.append("(skipped in --quick: no quick arguments are known for it; see OTHER_SCRIPTS in run.py)")
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
                timeout=EXTRA_TIMEOUT_SECONDS,
                check=False,
            )
        except subprocess.TimeoutExpired:
            lines.append(f"FAILED: still running after {EXTRA_TIMEOUT_SECONDS} s")
            ok = False
            continue
        lines += done.stdout.rstrip().splitlines()
        if done.returncode != 0:
            ok = False
            lines += [f"FAILED: exit {done.returncode}", "", "```", *done.stderr.strip().splitlines()[-15:], "```"]
        lines.append(f"\n({time.perf_counter() - started:.0f} s)")
    return lines, ok


# --------------------------------------------------------------------------------------------------------- main


def size(text: str) -> int:
    """``1M``, ``250k``, ``100_000`` or ``100000``."""
    text = text.strip().replace("_", "").replace(",", "")
    factor = SIZE_SUFFIXES.get(text[-1:], 1)
    try:
        value = float(text[:-1]) * factor if factor != 1 else int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 1M, 250k, 100000)") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"a size must be at least 1, not {text!r}")
    return int(value)


def sizes(text: str) -> list[int]:
    return [size(part) for part in text.split(",") if part.strip()]


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one run each: seconds, for the smoke test")
    parser.add_argument("--pairs", type=sizes, help="candidates per graph, comma-separated (default 1M,10M)")
    parser.add_argument("--repeat", type=int, help="runs per measurement; tables show medians (default 3)")
    parser.add_argument("--baseline", default=DEFAULT_BASELINE, help="previous release's rev ('' skips it)")
    parser.add_argument(
        "--reference-max-pairs",
        type=size,
        default=1_000_000,
        help="run the previous code's full dry run over graphs up to this size (it is slow; default 1M)",
    )
    parser.add_argument(
        "--loop-max-pairs",
        type=size,
        default=100_000,
        help="run the 2019 loop over graphs up to this size besides the reference graph (≈ 270 µs a "
        "candidate; default 100k)",
    )
    parser.add_argument(
        "--json-max-pairs",
        type=size,
        default=1_000_000,
        help="graphs up to this size go through a streamed JSON file and app.py import-graph; larger ones "
        "are written into SQLite directly",
    )
    parser.add_argument(
        "--reference-pairs",
        type=size,
        help="the reference graph: every code's full dry run and the 2019 loop (default 100k)",
    )
    parser.add_argument(
        "--manifest-pairs", type=size, help="graph of the manifests benchmark, with and without them (default 20k)"
    )
    parser.add_argument("--creates", type=size, help="Jobs per create benchmark (1000)")
    parser.add_argument(
        "--only",
        type=lambda text: [part.strip() for part in text.split(",") if part.strip()],
        default=list(BENCHMARKS),
        help=f"run only these benchmarks, comma-separated, of {','.join(BENCHMARKS)} (default: all)",
    )
    parser.add_argument("--no-others", action="store_true", help="do not run the other bench/*.py scripts")
    parser.add_argument("--work-dir", type=Path, help="where the graphs go (default: a temporary folder)")
    parser.add_argument("--out", type=Path, help="also write the Markdown report to this file")
    args = parser.parse_args(argv)
    quick = args.quick
    args.pairs = args.pairs or ([QUICK_PAIRS] if quick else [1_000_000, 10_000_000])
    args.repeat = args.repeat or (1 if quick else 3)
    args.reference_pairs = args.reference_pairs or (QUICK_PAIRS if quick else 100_000)
    args.manifest_pairs = args.manifest_pairs or (QUICK_PAIRS if quick else 20_000)
    args.creates = args.creates or (QUICK_CREATES if quick else 1_000)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if unknown := set(args.only) - set(BENCHMARKS):
        parser.error(f"--only: unknown benchmark(s) {', '.join(sorted(unknown))} (known: {', '.join(BENCHMARKS)})")
    return args


def measure_all(args: argparse.Namespace, work: Path) -> Bench:
    short = git("rev-parse", "--short", "HEAD").stdout.strip() or "?"
    dirty = "+changes" if git("status", "--porcelain", "--untracked-files=no").stdout.strip() else ""
    with baseline_checkout(args.baseline) as previous:
        codes = [Code(f"{THIS} ({short}{dirty})", ROOT), *([previous] if previous else [])]
        bench = Bench(work, codes, args.repeat)
        (work / "home").mkdir(exist_ok=True)
        for code in codes:  # compile the bytecode once, outside any measurement
            run_child(code.app("--version"), cwd=code.root, env=bench.env)
        only = set(args.only)
        if "help" in only:
            bench.help()
        # The reference graph first (small enough for the slow 2019 loop), then writing manifests.
        measured = set()  # graph sizes whose full dry run is in the tables
        if "reference" in only:
            store, label = bench.build_graph(args.reference_pairs, json_max_pairs=args.json_max_pairs)
            bench.full_pass(store, label, previous=True, loop=True)
            measured.add(args.reference_pairs)
        if "manifests" in only:
            store, label = bench.build_graph(args.manifest_pairs, json_max_pairs=args.json_max_pairs)
            if args.manifest_pairs not in measured:
                bench.full_pass(store, label, previous=True, loop=False)
                measured.add(args.manifest_pairs)
            bench.manifests(store, label)
        for position, pairs in enumerate(args.pairs):
            full = "full" in only and pairs not in measured
            if not full and not (position == 0 and "first-job" in only):
                continue
            store, label = bench.build_graph(pairs, json_max_pairs=args.json_max_pairs)
            if position == 0 and "first-job" in only:
                bench.first_job(store, label)
            if full:
                bench.full_pass(
                    store, label, previous=pairs <= args.reference_max_pairs, loop=pairs <= args.loop_max_pairs
                )
            store.unlink()  # the 10M store is about 1 GiB
        if "creates" in only:
            bench.creates(args.creates, (CREATE_DELAY_SECONDS,) if args.quick else (0.0, CREATE_DELAY_SECONDS))
    return bench


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    started = time.perf_counter()
    header = [
        f"Measured {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC on {machine()}.",
        f"Command: `{shlex.join([Path(sys.executable).name, 'bench/run.py', *(argv or sys.argv[1:])])}`",
    ]
    try:
        with contextlib.ExitStack() as stack:
            work = args.work_dir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="graph-refresh-")))
            work.mkdir(parents=True, exist_ok=True)
            bench = measure_all(args, work)
            others, others_ok = ([], True) if args.no_others else run_others(quick=args.quick, env=child_env(work))
    except BenchError as error:
        print(f"benchmark failed: {error}", file=sys.stderr)
        return 1
    rows = bench.rows
    creates = [row for row in rows if row.benchmark.startswith("creates")]
    lines = [
        *header,
        "",
        *process_table([row for row in rows if row not in creates]),
        "",
        *creates_table(creates),
        "",
        "Targets of issue 10 (this checkout):",
        "",
        *targets(rows),
        "",
        "Graphs built:",
        "",
        *(f"- {line}" for line in bench.builds),
        *others,
        "",
        f"Total time of the command: {time.perf_counter() - started:.0f} s.",
    ]
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.out:
        args.out.write_text(text)
    return 0 if others_ok else 1


if __name__ == "__main__":
    sys.exit(main())
