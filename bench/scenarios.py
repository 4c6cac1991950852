"""The six benchmarks ``bench/run.py`` measures, each a function adding its rows to a ``Bench``.

Every command is the real CLI (``app.py``) of each code measured, or the 2019 loop (``bench/legacy2019.py``),
in a child process; ``measure`` runs the benchmarks a ``Plan`` selects, sharing graphs between them.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import graphs
from bench.baseline import LOOP_2019, ROOT, Code
from bench.measure import Row, child_env, log, run_child, run_to_first_job

TEMPLATES = ROOT / "openshift" / "templates"  # every code plans with the same Templates: the same work
MIDDLETIER = "middletier"
JOBS_PATH = rf"^/apis/batch/v1/namespaces/{MIDDLETIER}/jobs$"
CREATE_DELAY_SECONDS = 0.02  # injected per create: a busy API server's latency, which concurrency hides
CREATE_WORKERS = "16"
EAGER_STOP_FIRST_JOB = "200"
LEGACY_2019 = ROOT / "bench" / "legacy2019.py"

# The benchmark column of the tables.
HELP = "--help"
FULL, MANIFESTS = "full dry run", "full dry run, manifests written"
EAGER_STOP = f"dry run --eager-stop {EAGER_STOP_FIRST_JOB}"
FIRST_JOB = f"first Job of a dry run --eager-stop {EAGER_STOP_FIRST_JOB}"
CREATES = "creates, "  # followed by the injected delay: "creates, 20 ms per create"

FULL_ARGS = ("--dry-run", "--template-dir", str(TEMPLATES), "--eager-stop", "0", "--max-in-flight", "0")
EAGER_STOP_ARGS = ("--dry-run", "--template-dir", str(TEMPLATES), "--eager-stop", EAGER_STOP_FIRST_JOB)
CREATE_ARGS = (
    *("--template-dir", str(TEMPLATES), "--max-in-flight", "0", "--eager-stop", "0"),
    *("--qps", "0", "--workers", CREATE_WORKERS),
)

# What --only selects from: --help; the full dry runs of the reference graph (with the 2019 loop); manifests
# written; the time to the first Job; the full dry runs of the --pairs graphs; creates against the fake.
BENCHMARKS = ("help", "reference", "manifests", "first-job", "full", "creates")


@dataclass(frozen=True)
class Plan:
    """Which benchmarks to run, on which sizes (candidates per graph, Jobs per create benchmark)."""

    only: frozenset[str]
    pairs: Sequence[int]
    """The first also gets the first-Job benchmark."""
    reference_pairs: int
    manifest_pairs: int
    reference_max_pairs: int
    """The previous code's full dry run only on graphs up to this size."""
    loop_max_pairs: int
    """The 2019 loop's full dry run only on graphs up to this size (besides the reference graph)."""
    creates: int
    create_delays: Sequence[float]


@dataclass
class Bench:
    """The settings of one invocation and the rows measured so far."""

    work: Path
    codes: list[Code]
    """This checkout first."""
    repeat: int
    json_max_pairs: int
    """Graphs up to this size are loaded through a graph file and ``app.py import-graph``."""
    rows: list[Row] = field(default_factory=list)
    builds: list[str] = field(default_factory=list)
    """How each graph was built, for the report."""

    @property
    def env(self) -> dict[str, str]:
        return child_env(self.work / "home")

    def store_env(self, store: Path) -> dict[str, str]:
        return child_env(self.work / "home", GRAPH_REFRESH_SQLITE_PATH=str(store))

    def graph(self, pairs: int) -> tuple[Path, str]:
        """The store of about ``pairs`` candidates (built once) and its label."""
        store, label, built = graphs.build_store(
            self.work,
            pairs,
            template_dir=TEMPLATES,
            json_max_pairs=self.json_max_pairs,
            importer=self.codes[0],
            env=self.env,
        )
        if built is not None:
            self.builds.append(built)
            log(f"graph {built}")
        return store, label

    def repeated(
        self,
        row: Row,
        cmd: Sequence[str],
        *,
        cwd: Path,
        env: dict[str, str],
        count: Callable[[str], int] | None = None,
        before_each: Callable[[], None] | None = None,
    ) -> None:
        """Run ``cmd`` ``repeat`` times into ``row``, which then joins the rows; ``count`` reads the row's count
        from each run's stdout (the last run's stays)."""
        for _ in range(self.repeat):
            if before_each is not None:
                before_each()
            sample, out = run_child(cmd, cwd=cwd, env=env)
            row.samples.append(sample)
            if count is not None:
                row.count = count(out)
        self.rows.append(row)

    def app(
        self, row: Row, code: Code, *args: str, env: dict[str, str], before_each: Callable[[], None] | None = None
    ) -> None:
        """``app.py args --report R`` of ``code``, ``repeat`` times, counting what its report says was examined."""
        report = self.work / "report.json"
        command = code.app(*args, "--report", str(report))
        self.repeated(row, command, cwd=code.root, env=env, count=lambda _: examined(report), before_each=before_each)


def examined(report_path: Path) -> int:
    """Candidates examined, all kinds, from a run report."""
    report = json.loads(report_path.read_text())
    return sum(int(counts["examined"]) for counts in report["totals"].values())


def _loop_examined(stdout: str) -> int:
    """Candidates the 2019 loop examined, from the JSON object it prints."""
    return int(json.loads(stdout)["examined"])


# ----------------------------------------------------------------------------------------------- the benchmarks


def help_(bench: Bench) -> None:
    """``app.py --help``: start-up alone."""
    for code in bench.codes:
        log(f"--help, {code.label}")
        bench.repeated(Row(HELP, "-", code.label), code.app("--help"), cwd=code.root, env=bench.env)


def full_pass(bench: Bench, store: Path, label: str, *, previous: bool, loop: bool) -> None:
    """The full dry run with this checkout; with the previous code and the 2019 loop when asked."""
    env = bench.store_env(store)
    for code in bench.codes if previous else bench.codes[:1]:
        log(f"full dry run, {label}, {code.label}")
        bench.app(Row(FULL, label, code.label), code, *FULL_ARGS, env=env)
    if loop:
        log(f"full dry run, {label}, {LOOP_2019}")
        command = [
            sys.executable,
            str(LEGACY_2019),
            "plan",
            "--sqlite-path",
            str(store),
            "--template-dir",
            str(TEMPLATES),
        ]
        bench.repeated(Row(FULL, label, LOOP_2019), command, cwd=ROOT, env=bench.env, count=_loop_examined)


def first_job(bench: Bench, store: Path, label: str) -> None:
    """The whole dry run with ``--eager-stop``, then the same runs timed to their first planned Job."""
    env = bench.store_env(store)
    for code in bench.codes:
        log(f"first Jobs (--eager-stop {EAGER_STOP_FIRST_JOB}), {label}, {code.label}")
        bench.app(Row(EAGER_STOP, label, code.label), code, *EAGER_STOP_ARGS, "--max-in-flight", "0", env=env)
    for code in bench.codes:
        log(f"time to the first Job (--eager-stop {EAGER_STOP_FIRST_JOB}), {label}, {code.label}")
        row = Row(FIRST_JOB, label, code.label)
        command = code.app(*EAGER_STOP_ARGS, "--max-in-flight", "0")
        for _ in range(bench.repeat):
            row.samples.append(run_to_first_job(command, cwd=code.root, env=env))
        bench.rows.append(row)


def manifests(bench: Bench, store: Path, label: str) -> None:
    """The full dry run writing manifests into a new folder each run (compared with the full dry run of the
    same graph)."""
    env = bench.store_env(store)
    output = bench.work / "manifests"

    def new_folder() -> None:
        shutil.rmtree(output, ignore_errors=True)
        output.mkdir()

    for code in bench.codes:
        log(f"manifests, {label}, {code.label}")
        row = Row(MANIFESTS, label, code.label)
        bench.app(row, code, *FULL_ARGS, "--output-dir", str(output), env=env, before_each=new_folder)
        shutil.rmtree(output, ignore_errors=True)


def creates(bench: Bench, jobs: int, delays: Sequence[float]) -> None:
    """Real runs against FakeKube over TLS, a new fake per run; the 2019 loop creates the manifests a dry run
    of this checkout planned."""
    store, planned = _plan_jobs(bench, jobs)
    expected = len(list(planned.glob("*.yaml")))
    label = f"{expected:,} Jobs"
    loop = [sys.executable, str(LEGACY_2019), "create", "--manifests", str(planned)]
    for delay in delays:
        benchmark = f"{CREATES}{delay * 1000:.0f} ms per create"
        for code in [*bench.codes, None]:
            row = Row(benchmark, label, code.label if code else LOOP_2019)
            log(f"{benchmark}, {label}, {row.code}")
            for _ in range(bench.repeat):
                _against_a_new_fake(bench, row, code or loop, store=store, delay=delay, expected=expected)
            bench.rows.append(row)
    shutil.rmtree(planned, ignore_errors=True)


def _plan_jobs(bench: Bench, jobs: int) -> tuple[Path, Path]:
    """A store of about ``jobs`` candidates and a folder of the manifests a dry run of this checkout plans."""
    solvers = graphs.solver_names(TEMPLATES)
    store = bench.work / f"creates-{jobs}.sqlite3"
    if not store.exists():
        graphs.build_sqlite(store, graphs.versions_for_pairs(jobs, len(solvers)), solvers)
    planned = bench.work / "create-manifests"
    shutil.rmtree(planned, ignore_errors=True)
    planned.mkdir()
    plan = ("--dry-run", "--template-dir", str(TEMPLATES), "--max-in-flight", "0", "--output-dir", str(planned))
    run_child(bench.codes[0].app(*plan), cwd=ROOT, env=bench.store_env(store))
    return store, planned


def _against_a_new_fake(
    bench: Bench, row: Row, code: Code | list[str], *, store: Path, delay: float, expected: int
) -> None:
    """One run of ``code``'s ``app.py`` (or of the 2019 loop's command) against a new FakeKube (``delay`` seconds
    injected before each Job create), told of it by a kubeconfig; then the Jobs in the fake are counted."""
    from tests.fakes.kube import FakeKube

    with FakeKube(tls="tls") as fake:
        if delay:
            fake.inject("POST", JOBS_PATH, status=None, delay=delay, times=None)
        kubeconfig = fake.kubeconfig(bench.work / "kubeconfig")
        env = {**bench.store_env(store), "KUBECONFIG": str(kubeconfig), "THOTH_MIDDLETIER_NAMESPACE": MIDDLETIER}
        if isinstance(code, Code):
            sample, _ = run_child(code.app(*CREATE_ARGS), cwd=code.root, env=env)
        else:
            loop = [*code, "--kubeconfig", str(kubeconfig), "--namespace", MIDDLETIER]
            sample, _ = run_child(loop, cwd=ROOT, env=env)
        row.samples.append(sample)
        count_jobs(row, fake.objects("jobs", MIDDLETIER), expected=expected)


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


# ------------------------------------------------------------------------------------------------- the selection


def measure(bench: Bench, plan: Plan) -> None:
    """Run the benchmarks ``plan`` selects: the reference graph first (small enough for the slow 2019 loop),
    then writing manifests, then the ``pairs`` graphs (each full dry run measured once per size), then creates."""
    only = plan.only
    if "help" in only:
        help_(bench)
    measured = set()  # graph sizes whose full dry run is in the tables
    if "reference" in only:
        store, label = bench.graph(plan.reference_pairs)
        full_pass(bench, store, label, previous=True, loop=True)
        measured.add(plan.reference_pairs)
    if "manifests" in only:
        store, label = bench.graph(plan.manifest_pairs)
        if plan.manifest_pairs not in measured:
            full_pass(bench, store, label, previous=True, loop=False)
            measured.add(plan.manifest_pairs)
        manifests(bench, store, label)
    for position, pairs in enumerate(plan.pairs):
        first = position == 0 and "first-job" in only
        full = "full" in only and pairs not in measured
        if not (first or full):
            continue
        store, label = bench.graph(pairs)
        if first:
            first_job(bench, store, label)
        if full:
            full_pass(
                bench, store, label, previous=pairs <= plan.reference_max_pairs, loop=pairs <= plan.loop_max_pairs
            )
        store.unlink()  # the 10M store is about 1 GiB
    if "creates" in only:
        creates(bench, plan.creates, plan.create_delays)
