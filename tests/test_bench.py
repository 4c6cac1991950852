"""The benchmark harness (bench/run.py) still runs: a --quick smoke run, the graph builders, the baseline
checkout, the table writer and the targets' comparisons. Speeds are never asserted here; bench/README.md
holds the measured figures."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

from bench import baseline, bench_namespace, graphs, run, scenarios, tables, targets
from bench.measure import BenchError, Row, Sample, compile_code, run_child
from graph_refresh.items import ANALYZER, LABEL_SOLVER, SOLVER

from .helpers import EXAMPLE_TEMPLATES, ROOT, SOLVERS

NUMBER = re.compile(r"^[0-9][0-9,]*(\.[0-9]+)?$")


def quick(script: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``bench/<script>`` with ``args`` (``--quick`` by default) to its end, as the README says to."""
    return subprocess.run(
        [sys.executable, f"bench/{script}", *(args or ("--quick",))],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def table_rows(text: str, first_header: str) -> list[dict[str, str]]:
    """The rows of the Markdown table whose header starts with ``| first_header |``, as dicts."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    header = [cell.strip() for cell in lines[start].strip("|").split("|")]
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append(dict(zip(header, (cell.strip() for cell in line.strip("|").split("|")), strict=True)))
    return rows


def test_quick_run_prints_every_table_with_numbers(tmp_path: Path) -> None:
    out = tmp_path / "report.md"
    done = subprocess.run(
        [sys.executable, "bench/run.py", "--quick", "--baseline", "", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert out.read_text() == done.stdout
    assert "baseline '' is not available here: measuring without it" in done.stderr

    rows = table_rows(done.stdout, "benchmark")
    by_name = {(row["benchmark"], row["code"].split(" (")[0]): row for row in rows}
    assert set(by_name) == {
        (scenarios.HELP, baseline.THIS),
        (scenarios.FULL, baseline.THIS),
        (scenarios.FULL, baseline.LOOP_2019),
        (scenarios.MANIFESTS, baseline.THIS),
        (scenarios.EAGER_STOP, baseline.THIS),
        (scenarios.FIRST_JOB, baseline.THIS),
    }
    for row in rows:
        for column in ("wall s", "CPU s", "peak RSS MiB"):
            assert NUMBER.match(row[column]), (row, column)
    full, loop = by_name[(scenarios.FULL, baseline.THIS)], by_name[(scenarios.FULL, baseline.LOOP_2019)]
    # Both read the same graph; the count comes from this checkout's run report and the loop's own count.
    assert full["candidates examined"] == loop["candidates examined"]
    assert int(full["candidates examined"].replace(",", "")) > 0
    assert NUMBER.match(full["µs CPU / candidate"])
    assert re.match(r"^[0-9.]+× \([0-9.]+×\)$", full["2019 loop ÷ this, CPU (wall)"])

    creates = table_rows(done.stdout, "benchmark | planned")
    assert [row["code"].split(" (")[0] for row in creates] == [baseline.THIS, baseline.LOOP_2019]
    for row in creates:
        planned = row["planned"].removesuffix(" Jobs")
        assert row["Jobs in the fake"] == planned, row  # every planned Job was counted in the fake
        assert (row["duplicates"], row["lost"]) == ("0", "0"), row
        for column in ("wall s", "creates / s", "client CPU ms / create"):
            assert NUMBER.match(row[column]), (row, column)

    assert re.search(r"^- full dry run, [0-9,]+ candidates: .* — (met|NOT met)$", done.stdout, re.MULTILINE)
    assert re.search(
        rf"^- {scenarios.FIRST_JOB} \(.*\): ≤ 0.4 s: .* s wall, .* s CPU — (met|NOT met)$", done.stdout, re.M
    )
    assert re.search(
        rf"^- {scenarios.EAGER_STOP}, the whole process \(.*\): ≤ 0.25 s: .* s CPU, .* s wall — (met|NOT met)$",
        done.stdout,
        re.M,
    )
    assert re.search(
        r"^- [0-9,]+ versions: graph file streamed in .* loaded by `app.py import-graph`", done.stdout, re.M
    )
    assert "### `bench/bench_render.py 300`" in done.stdout  # the other scripts present ran too


def test_a_measured_child_reports_its_own_peak_memory_not_the_runners() -> None:
    """Linux carries the peak RSS of the address space a child replaces at exec into the child's figure; the
    launcher keeps the runner's (here 256 MiB, as a stand-in serving in the runner would hold) out of it."""
    held = bytearray(256 * 2**20)
    for page in range(0, len(held), 4096):
        held[page] = 1
    small, _ = run_child([sys.executable, "-c", "pass"], cwd=ROOT, env=dict(os.environ))
    big, out = run_child(
        [sys.executable, "-c", "b = bytearray(160 * 2**20); b[::4096] = b'1' * len(b[::4096]); print('held')"],
        cwd=ROOT,
        env=dict(os.environ),
    )
    del held
    assert small.rss_mib < 64, small
    assert 160 < big.rss_mib < 256, big
    assert out == "held\n"
    with pytest.raises(BenchError, match="exited 3"):
        run_child([sys.executable, "-c", "raise SystemExit(3)"], cwd=ROOT, env=dict(os.environ))


def test_the_code_measured_is_compiled_as_the_image_ships_it() -> None:
    """The Dockerfile compiles app.py and graph_refresh; with PYTHONDONTWRITEBYTECODE set (as in the image) a start
    would otherwise compile every module it imports, every time."""
    assert "RUN python -m compileall -q app.py graph_refresh" in (ROOT / "Dockerfile").read_text()
    compile_code(ROOT)
    sources = [ROOT / "app.py", *sorted((ROOT / "graph_refresh").rglob("*.py"))]
    assert all(Path(importlib.util.cache_from_source(str(path))).is_file() for path in sources)


def test_direct_store_equals_what_import_graph_makes(tmp_path: Path, run_cli: Callable[..., Result]) -> None:
    """The 10M graph is written into SQLite directly: it must be the store import-graph makes of the same
    graph file, schema included (a schema change in the store fails here, not in a long benchmark)."""
    solvers = graphs.solver_names(EXAMPLE_TEMPLATES)
    versions = 2 * graphs.INVALID_EVERY + 3  # past two invalid versions, packages on two indexes
    document = tmp_path / "graph.json"
    graphs.write_graph_json(document, versions, solvers)
    imported, direct = tmp_path / "imported.sqlite3", tmp_path / "direct.sqlite3"
    result = run_cli(["import-graph", "--sqlite-path", str(imported), str(document)])
    assert result.exit_code == 0, result.output
    graphs.build_sqlite(direct, versions, solvers)

    def dump(path: Path) -> dict[str, list[tuple[object, ...]]]:
        db = sqlite3.connect(path)
        try:
            schema = db.execute("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name").fetchall()
            tables = {t: sorted(db.execute(f"SELECT * FROM {t}")) for t in ("solved", "analyzed")}
            versions = db.execute("SELECT * FROM package_version ORDER BY id").fetchall()
            normalised = [
                (kind, name, table, (sql or "").replace(" IF NOT EXISTS", "")) for kind, name, table, sql in schema
            ]
            (user_version,) = db.execute("PRAGMA user_version").fetchone()
            return {"schema": normalised, "package_version": versions, **tables, "user_version": [(user_version,)]}
        finally:
            db.close()

    left, right = dump(imported), dump(direct)
    assert left == right
    assert len(left["package_version"]) == versions
    assert {row[3] for row in left["package_version"]} == {graphs.PYPI, graphs.SECOND_INDEX}
    assert sum(row[2] == graphs.INVALID_VERSION for row in left["package_version"]) == 2
    assert {row[1] for row in left["solved"]} == set(solvers)
    assert {row[2] for row in left["solved"]} == {0, 1}  # solver errors too
    assert left["analyzed"]


def test_baseline_is_a_temporary_worktree_removed_afterwards() -> None:
    with baseline.baseline_checkout("HEAD") as code:
        assert code is not None
        assert (code.root / "app.py").is_file()
        assert str(code.root) in baseline.git("worktree", "list").stdout
    assert not code.root.exists()
    assert str(code.root) not in baseline.git("worktree", "list").stdout
    with baseline.baseline_checkout("no-such-rev-anywhere") as missing:
        assert missing is None


@pytest.mark.parametrize(("text", "value"), [("1M", 1_000_000), ("250k", 250_000), ("1_000", 1_000), ("7", 7)])
def test_sizes_are_read_with_suffixes(text: str, value: int) -> None:
    assert run.size(text) == value


@pytest.mark.parametrize("text", ["1X", "M", "0", "-5"])
def test_a_bad_size_is_a_usage_error_naming_it(text: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        run.parse(["--pairs", text])
    assert exited.value.code == 2
    assert repr(text) in capsys.readouterr().err


def test_namespace_bench_quick_run_reads_every_job_and_only_the_failed_pods() -> None:
    done = quick("bench_namespace.py", timeout=60)
    assert done.returncode == 0, done.stderr
    rows = table_rows(done.stdout, "namespace")
    assert [(row["namespace"], row["code"]) for row in rows] == [
        ("300 owned Jobs, 5% failed", "this checkout"),
        ("200 owned Jobs, 20% failed", "this checkout"),
    ]
    for row, jobs, failed in zip(rows, (300, 200), (15, 40), strict=True):
        whole, rows_read = int(row["whole Jobs read"]), int(row["Table rows read"])
        assert whole + rows_read == jobs, row
        assert failed < whole < 2 * failed, row  # the live and failed Jobs whole, those that succeeded as rows
        assert row["failed"] == str(failed), row
        # One pod per failed Job but those whose pods are gone; none of the Jobs that did not fail.
        assert 0 < int(row["pods read"]) < failed, row
        assert int(row["Jobs created"]) > 0, row  # a real run
        for column in ("wall s", "CPU s", "peak RSS MiB"):
            assert NUMBER.match(row[column]), (row, column)


def test_the_namespace_bench_serves_each_job_and_pod_with_its_own_item() -> None:
    """Kinds, solvers and attempts in turn, each state and failure: every object carries its own item's labels,
    not those of the first object served in its state."""
    served = bench_namespace.Shapes("2027-01-15T07:30:00Z")
    owned = bench_namespace.namespace_jobs(60, 20)
    assert {(o.item.kind, o.item.solver, o.item.attempt, o.state) for o in owned} >= {
        (ANALYZER, None, 1, "complete"),
        (SOLVER, SOLVERS[1], 2, "complete"),
        (SOLVER, SOLVERS[2], 1, "failed"),
    }
    for one in owned:
        job = json.loads(served.text(one, "job"))
        assert job["metadata"]["name"] == one.item.job_name
        assert {key: job["metadata"]["labels"].get(key) for key in one.item.labels} == one.item.labels
        assert LABEL_SOLVER in job["metadata"]["labels"] or one.item.solver is None
        if bench_namespace.Shapes.has_pod(one):
            pod = json.loads(served.text(one, "pod"))
            assert pod["metadata"]["labels"]["job-name"] == one.item.job_name
            assert {key: pod["metadata"]["labels"].get(key) for key in one.item.labels} == one.item.labels


@pytest.mark.parametrize("text", ["100", "x:5", "10:200", "0:5"])
def test_a_bad_namespace_size_is_a_usage_error_naming_it(text: str) -> None:
    done = subprocess.run(
        [sys.executable, "bench/bench_namespace.py", "--sizes", text],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert repr(text) in done.stderr, done.stderr


def markdown_rows(text: str, first_header: str) -> list[list[str]]:
    """The cells of each row of the Markdown table whose header starts with ``| first_header |``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def simulate_quick() -> str:
    done = quick("simulate_lanes.py", timeout=50)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_lanes_simulation_shows_requests_first_and_is_the_same_every_time() -> None:
    out = simulate_quick()
    waits = {row[0]: row for row in markdown_rows(out, "lane")}
    assert list(waits) == ["requested", "fresh", "backlog"]
    # lane, eligible, then per history: scheduled, median, p95, max, not scheduled
    requested, fresh, backlog = waits["requested"], waits["fresh"], waits["backlog"]
    assert int(requested[1]) > 0
    assert requested[2] == requested[1], "lanes on: every requested item is scheduled"
    assert int(requested[5]) <= 1, "lanes on: a requested item waits at most one run"
    assert int(requested[7].replace(",", "")) < int(requested[1]), "lanes off: requests wait behind the backlog"
    assert int(fresh[2]) > int(fresh[7]), "lanes on schedule more new releases than lanes off"
    for row in (requested, fresh, backlog):
        for cell in (row[3], row[4], row[5], row[8], row[9], row[10]):
            assert cell == "-" or NUMBER.match(cell), row
    backlog_rows = markdown_rows(out, "after run")
    assert [row[0] for row in backlog_rows] == ["1", "6"]
    for _, on, off in backlog_rows:
        assert NUMBER.match(on)
        assert on == off, "the same capacity drains the same number of items"
    assert "Jobs created per run: lanes on 12–12, lanes off 12–12." in out
    assert re.search(r"^Whole simulation: [0-9.]+ s wall, [0-9.]+ s CPU", out, re.MULTILINE)

    def without_times(text: str) -> str:
        return re.sub(r"^Whole simulation: .*$", "", text, flags=re.MULTILINE)

    assert without_times(simulate_quick()) == without_times(out), "seeded: the same history every time"


def eta_quick() -> str:
    done = quick("simulate_eta.py", timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_eta_simulation_scores_each_lane_the_same_way_every_time() -> None:
    out = eta_quick()
    cells = markdown_rows(out, "lane")
    assert [row[0] for row in cells] == ["requested", "fresh", "backlog", "overall"]
    for row in cells:
        # the items, the position (no time), then for the point and the windows: given a time, inside, median
        # error, late, not found yet
        assert len(row) == 13, row
        assert row[2].startswith("no time"), row
        for given, inside, error, late, censored in (row[3:8], row[8:13]):
            assert NUMBER.match(given), row
            assert NUMBER.match(censored), row
            assert int(given.replace(",", "")) <= int(row[1].replace(",", "")), row
            for cell in (inside, late):
                assert cell == "-" or re.match(r"^[0-9]+%$", cell), row
            assert error == "-" or NUMBER.match(error), row
    items = [int(row[1].replace(",", "")) for row in cells]
    assert items[3] == sum(items[:3]) > 0, "overall is the sum of the lanes"
    assert int(cells[0][1]) > 0, "requests are explained while they wait"
    explained = {row[0]: row for row in markdown_rows(out, "explained as")}
    assert list(explained) == ["requested", "fresh", "backlog"]
    assert re.search(r"^- windows(, .* — (met|NOT met)|: none to score .*)$", out, re.MULTILINE)
    assert re.search(r"^Whole simulation: [0-9.]+ s wall, [0-9.]+ s CPU", out, re.MULTILINE)

    def without_times(text: str) -> str:
        return re.sub(r"^Whole simulation: .*$", "", text, flags=re.MULTILINE)

    assert without_times(eta_quick()) == without_times(out), "seeded: the same world every time"


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("--runs", "2"), "--runs: at least 3"),
        (("--capacity", "1"), "--capacity at least 2"),
        (("--arrivals", "-1"), "--arrivals (0–10000)"),
        (("--runs", "many"), "invalid int value"),
    ],
)
def test_the_eta_simulation_refuses_bad_arguments_in_one_line(args: tuple[str, ...], said: str) -> None:
    done = quick("simulate_eta.py", *args)
    assert done.returncode == 2
    assert said in done.stderr
    assert "Traceback" not in done.stderr


def measured(benchmark: str, code: str, *samples: tuple[float, float, float], count: int | None = None) -> Row:
    """A row of ``samples`` given as (wall s, CPU s, peak RSS MiB)."""
    return Row(benchmark, "9 versions", code, [Sample(*sample) for sample in samples], count)


def test_one_writer_writes_every_table_with_ratios_on_this_checkout_only() -> None:
    this = measured(scenarios.FULL, f"{baseline.THIS} (abc)", (2.0, 1.0, 30), (4.0, 3.0, 50), count=1_000)
    previous = measured(scenarios.FULL, f"{baseline.PREVIOUS} (def)", (12.0, 8.0, 90), count=1_000)
    start = measured(scenarios.HELP, f"{baseline.THIS} (abc)", (0.25, 0.125, 20))
    lines = tables.markdown(tables.PROCESSES, [this, previous, start])
    assert lines[0].startswith("| benchmark | graph | code | runs | candidates examined | wall s | CPU s |")
    assert lines[1] == "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    # Medians: wall 3.0, CPU 2.0, RSS 40; previous ÷ this: 8 / 2 CPU, 12 / 3 wall.
    assert lines[2] == (
        f"| full dry run | 9 versions | {baseline.THIS} (abc) | 2 | 1,000 | 3.00 | 2.00 | 2000.0 | 333 | 40 "
        "| 4.0× (4.0×) |  |"
    )
    assert lines[3].endswith("| 90 |  |  |"), "no ratio on the reference's own row"
    assert lines[4] == f"| --help | 9 versions | {baseline.THIS} (abc) | 1 |  | 0.25 | 0.12 |  |  | 20 |  |  |"

    created = measured("creates, 0 ms per create", f"{baseline.THIS} (abc)", (20.0, 2.0, 100), count=1_000)
    created.extra = {"duplicates": 1, "lost": 0}
    assert tables.markdown(tables.CREATES, [created]) == [
        "| benchmark | planned | code | runs | Jobs in the fake | wall s | creates / s | client CPU ms / create "
        "| peak RSS MiB | duplicates | lost | previous ÷ this, CPU (wall) | 2019 loop ÷ this, CPU (wall) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| creates, 0 ms per create | 9 versions | {baseline.THIS} (abc) | 1 | 1,000 | 20.0 | 50 | 2.00 | 100 "
        "| 1 | 0 |  |  |",
    ]


@pytest.mark.parametrize(
    ("compare", "value", "met"),
    [("≤", 10.0, True), ("≤", 10.5, False), ("<", 10.0, False), ("<", 9.5, True), ("≥", 10.0, True), ("≥", 9.5, False)],
)
def test_a_limit_compares_each_of_its_figures(compare: str, value: float, met: bool) -> None:
    row = measured(scenarios.HELP, baseline.THIS, (value, value, 1))
    limit = targets.Limit((targets.WALL, targets.CPU), compare, 10, " s")
    assert limit.met(row, [row]) is met
    assert limit.text() == f"{compare} 10 s"
    other = measured(scenarios.HELP, baseline.THIS, (value, 100.0 if compare != "≥" else 0.0, 1))
    assert not limit.met(other, [other]), "both figures must meet the limit"


def test_targets_report_this_checkouts_rows_against_the_limits() -> None:
    mine = f"{baseline.THIS} (abc)"
    rows = [
        measured(scenarios.FULL, mine, (2.0, 2.0, 40), count=100_000),  # below a million: no target
        measured(scenarios.FULL, mine, (8.0, 9.0, 40), count=1_000_000),
        measured(scenarios.FULL, f"{baseline.PREVIOUS} (def)", (80.0, 80.0, 90), count=1_000_000),
        measured(scenarios.FIRST_JOB, mine, (0.3, 0.5, 30)),
        measured(scenarios.EAGER_STOP, mine, (0.3, 0.2, 30), count=400),
    ]
    assert targets.report(rows) == [
        "- full dry run, 1,000,000 candidates: ≤ 5 µs CPU per candidate, ≥ 100k candidates/s, ≤ 128 MiB: "
        "9.0 µs, 125,000/s, 40 MiB — NOT met",
        f"- {scenarios.FIRST_JOB} (9 versions): ≤ 0.4 s: 0.30 s wall, 0.50 s CPU — NOT met",
        f"- {scenarios.EAGER_STOP}, the whole process (9 versions): ≤ 0.25 s: 0.20 s CPU, 0.30 s wall — met",
    ]
    # Only smaller graphs measured: the largest one is held to the targets.
    assert targets.report(rows[:1])[0].startswith("- full dry run, 100,000 candidates:")


def test_manifest_and_create_targets_compare_with_planning_and_count_jobs() -> None:
    mine = f"{baseline.THIS} (abc)"
    plan = measured(scenarios.FULL, mine, (1.0, 1.0, 40), count=10)
    written = measured(scenarios.MANIFESTS, mine, (3.0, 3.0, 40), count=10)
    created = measured("creates, 20 ms per create", mine, (1.0, 1.0, 40), count=12)
    created.extra = {"duplicates": 0, "lost": 1}
    assert targets.report([plan, written, created])[1:] == [
        "- writing manifests (9 versions): < 3× planning alone: 3.00× CPU — NOT met",
        "- creates, 20 ms per create: 0 duplicates, 0 lost: 0 duplicates, 1 lost, 12 Jobs — NOT met",
    ]


@pytest.mark.parametrize("repeat", ["0", "-1"])
def test_a_repeat_below_one_is_a_usage_error(repeat: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        run.parse(["--repeat", repeat])
    assert exited.value.code == 2
    assert "--repeat must be at least 1" in capsys.readouterr().err


def test_the_requests_bench_quick_run_creates_requested_jobs_first() -> None:
    done = quick("bench_requests.py")
    assert done.returncode == 0, done.stderr
    rows = {row[0]: row for row in markdown_rows(done.stdout, "run")}
    assert list(rows) == ["requests and pacing", "neither"]
    for row in rows.values():
        assert all(NUMBER.match(cell) for cell in row[1:]), row
    assert rows["requests and pacing"][5] == "16", "0.8 of 20 slots go to requests"
    assert rows["neither"][5] == "0"


def test_the_closure_simulation_makes_requests_advisable_within_depth_plus_two_runs() -> None:
    done = quick("simulate_closure.py", timeout=120)
    assert done.returncode == 0, done.stderr
    rows = markdown_rows(done.stdout, "depth")
    assert [row[0] for row in rows] == ["1", "2", "3"]
    for depth, requests, _, _median, _p95, worst, jobs, *off in rows:
        assert int(requests) >= 1
        assert not worst.startswith("≥"), f"closure on: depth {depth} advisable before the end"
        assert int(worst) <= int(depth) + 2, f"closure on: depth {depth} within depth + 2 runs"
        assert int(jobs.replace(",", "")) > 0
        assert len(off) == 4
    assert "Target (closure on: every request advisable within depth + 2 runs): met." in done.stdout
    assert re.search(r"^Backlog Jobs per run: closure on [1-9]", done.stdout, re.MULTILINE), "the backlog moves"
