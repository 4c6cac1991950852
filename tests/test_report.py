"""The run report (README's "Run report"): its fields, its plan table, and how it and the manifests are written."""

from __future__ import annotations

import json
import os
import stat
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from graph_refresh import secrets
from graph_refresh.output import write_atomically, write_output
from graph_refresh.report import (
    QUARANTINED_LISTED,
    Counts,
    CreateFailure,
    QuarantinedItem,
    RunReport,
)
from graph_refresh.vocabulary import SKIP_REASONS

from .helpers import EXAMPLE_TEMPLATES

RunCli = Callable[..., Result]


@pytest.fixture
def umask() -> Iterator[Callable[[int], int]]:
    """Set the process umask for one test; the old one comes back afterwards."""
    old = os.umask(0o022)
    try:
        yield os.umask
    finally:
        os.umask(old)


@pytest.fixture
def known_secret() -> Iterator[str]:
    token = 'sha256~tOk"en\\42'  # a quote and a backslash: JSON escapes them
    secrets.register(token)
    try:
        yield token
    finally:
        secrets.forget_all()


def a_report() -> RunReport:
    report = RunReport(dry_run=True, store="sqlite")
    report.solvers["solver-ubi-8-py38"] = Counts(examined=3, scheduled=2, backlog=40, quarantined=1)
    report.solvers["solver-ubi-8-py38"].skipped["quarantined"] = 1
    report.solvers["solver-ubi-8-py38"].retried.update({"oom": 1, "disrupted": 1})
    report.solvers["solver-ubi-8-py38"].at_cap["oom"] = 1
    report.solvers["solver-fedora-34-py39"] = Counts(examined=1, scheduled=1, backlog=None)
    report.analyzer = Counts(examined=2, failed=1, backlog=7)
    report.analyzer.skipped["capacity"] = 1
    return report


def quarantined(item: str, until: str) -> QuarantinedItem:
    return QuarantinedItem(
        item=item,
        kind="solver",
        solver="solver-ubi-8-py38",
        package="flask",
        version="1.0",
        index="https://pypi.org/simple",
        failures=3,
        last_cause="oom",
        until=until,
    )


def read_report(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


# --- fields -------------------------------------------------------------------------------------


def test_counts_carry_backlog_retries_and_quarantine_and_stay_balanced() -> None:
    data = a_report().to_dict()
    ubi = data["solvers"]["solver-ubi-8-py38"]
    assert ubi["backlog"] == 40
    assert ubi["quarantined"] == 1
    assert ubi["retried"] == {"disrupted": 1, "oom": 1, "deadline": 0, "error": 0}
    assert ubi["retries_at_cap"] == {"oom": 1, "deadline": 0}
    assert data["solvers"]["solver-fedora-34-py39"]["backlog"] is None
    assert data["totals"]["solver"]["backlog"] is None, "one solver's count failed: the sum is unknown"
    assert data["totals"]["solver"]["retried"]["oom"] == 1
    assert data["totals"]["solver"]["quarantined"] == 1
    assert data["totals"]["package-analyzer"]["backlog"] == 7
    for counts in [*data["totals"].values(), *data["solvers"].values()]:
        outcomes = counts["scheduled"] + counts["already_scheduled"] + counts["failed"]
        assert counts["examined"] == outcomes + sum(counts["skipped"].values()), counts


def test_a_kind_total_backlog_is_the_sum_of_its_streams_or_null() -> None:
    report = RunReport(dry_run=False, store="sqlite")
    assert report.to_dict()["totals"]["solver"]["backlog"] is None, "no solver: nothing was counted"
    report.counts("solver", "solver-a-1-py38").backlog = 5
    report.counts("solver", "solver-b-1-py38").backlog = 0
    assert report.totals("solver").backlog == 5
    assert report.to_dict()["totals"]["package-analyzer"]["backlog"] is None


def test_quarantine_is_listed_by_end_then_item_at_most_a_hundred_and_counted_in_full() -> None:
    report = RunReport(dry_run=False, store="sqlite")
    report.quarantined = [quarantined(f"{n:010x}", f"2031-01-{1 + n % 28:02d}T00:00:00Z") for n in reversed(range(150))]
    data = report.to_dict()
    listed = data["quarantined"]
    assert len(listed) == QUARANTINED_LISTED
    assert data["quarantined_total"] == 150
    assert listed == sorted(listed, key=lambda q: (q["until"], q["item"]))
    assert listed[-1]["until"] == "2031-01-18T00:00:00Z", "the 100 that leave quarantine first"
    assert listed[0] == {
        "item": "0000000000",
        "kind": "solver",
        "solver": "solver-ubi-8-py38",
        "package": "flask",
        "version": "1.0",
        "index": "https://pypi.org/simple",
        "failures": 3,
        "last_cause": "oom",
        "until": "2031-01-01T00:00:00Z",
    }
    assert RunReport(dry_run=False, store="sqlite").to_dict()["quarantined"] == []


def test_quarantined_is_a_skip_reason_after_failed_recently() -> None:
    assert SKIP_REASONS.index("quarantined") == SKIP_REASONS.index("failed-recently") + 1


# --- plan table ---------------------------------------------------------------------------------


@pytest.mark.parametrize("dry_run", [True, False])
def test_the_plan_table_says_scheduled_as_the_report_does(dry_run: bool) -> None:
    report = a_report()
    report.dry_run = dry_run
    lines = report.plan_table().splitlines()
    header = lines[0].split()
    assert header == ["stream", "examined", "scheduled", "retries", "already", "failed", "skipped", "backlog"]
    table = {row[0]: dict(zip(header[1:], row[1:], strict=True)) for row in map(str.split, lines[1:]) if len(row) == 8}
    ubi = table["solver-ubi-8-py38"]
    assert (ubi["scheduled"], ubi["retries"], ubi["skipped"], ubi["backlog"]) == ("2", "2", "1", "40")
    assert lines[lines.index(next(line for line in lines if line.startswith("solver-ubi-8-py38"))) + 1] == (
        "  skipped: quarantined 1"
    )
    assert table["solver-fedora-34-py39"]["backlog"] == "?"
    assert table["package-analyzer"]["skipped"] == "1"
    assert "  skipped: capacity 1" in lines


def test_the_plan_table_fits_100_columns_with_long_names_and_large_numbers() -> None:
    report = RunReport(dry_run=False, store="dgraph")
    long_names = [f"solver-{os_name}-9-py311" for os_name in ("a" * 34, "b" * 35, "c" * 36)]  # 45 to 47 characters
    for n, name in enumerate([*long_names, "solver-ubi-8-py38"]):
        counts = report.counts("solver", name)
        counts.examined, counts.scheduled, counts.already_scheduled = 987_654_321_012 + n, 123_456_789, 999_999
        counts.failed, counts.backlog = 1_000_000, 45_678_901_234_567
        counts.retried["oom"] = 12_345_678
        counts.skipped.update({reason: 10**9 + i for i, reason in enumerate(SKIP_REASONS)})
    table = report.plan_table()
    lines = table.splitlines()
    assert max(map(len, lines)) <= 100, table
    assert len(max(long_names, key=len)) > 46
    assert all(name in lines for name in long_names), "stacked on their own line"
    ubi = next(line for line in lines if line.startswith("solver-ubi-8-py38")).split()
    assert ubi[1:] == ["988G", "123M", "12.3M", "999999", "1M", "7G", "45.7T"]
    skipped = " ".join(line.strip() for line in lines if "skipped:" in line or line.startswith("    "))
    assert all(f"{reason} 1G" in skipped for reason in SKIP_REASONS)


def test_on_a_narrow_terminal_the_plan_table_closes_up_its_columns() -> None:
    table = a_report().plan_table(64)
    assert max(map(len, table.splitlines())) <= 64, table
    assert table.splitlines()[0] == "stream examined scheduled retries already failed skipped backlog"
    assert a_report().plan_table().splitlines()[0].startswith("stream                 examined  scheduled")


def test_the_summary_line_gives_totals_backlog_retries_and_what_stopped_a_kind() -> None:
    report = a_report()
    report.stop("package-analyzer", "sync-lag")
    line = report.summary_line()
    assert "solver: 4 examined, 3 scheduled (2 retries), 1 skipped;" in line, "no backlog: one was not counted"
    assert "package-analyzer: 2 examined, 0 scheduled, 1 failed, 1 skipped, backlog 7, stopped by sync-lag" in line
    assert "None" not in line
    report.stop("solver", "eager-stop", "--eager-stop")
    assert "stopped by eager-stop (--eager-stop)" in report.summary_line()


def test_a_kind_the_run_does_not_schedule_is_off_in_the_summary_and_the_table() -> None:
    report = RunReport(dry_run=True, store="sqlite", off=frozenset({"package-analyzer"}))
    report.solvers["solver-ubi-8-py38"] = Counts(examined=1, scheduled=1, backlog=1)
    assert report.summary_line().endswith("; package-analyzer off")
    assert report.plan_table().splitlines()[-1].split() == ["package-analyzer", "off"]
    assert "?" not in report.plan_table()


def test_what_the_plan_table_does_not_say_of_a_stream() -> None:
    report = a_report()
    ubi = report.solvers["solver-ubi-8-py38"]
    assert ubi.untabled() == "retries disrupted 1, oom 1 (at the cap: oom 1); 1 in quarantine"
    ubi.lanes.update({"requested": 1, "backlog": 1})
    assert ubi.untabled().endswith("; scheduled by lane: requested 1, fresh 0, backlog 1")
    assert report.solvers["solver-fedora-34-py39"].untabled() == "", "the table says it all"


# --- secrets ------------------------------------------------------------------------------------


def test_a_secret_echoed_into_a_failure_reason_never_reaches_the_report(tmp_path: Path, known_secret: str) -> None:
    report = a_report()
    report.failures.append(
        CreateFailure("solver-ubi-8-py38-0a1b2c3d4e", "solver", 400, f"bad header: Bearer {known_secret}")
    )
    report.error = f"the server said {known_secret}"
    write_output(tmp_path / "report.json", report.to_json())
    text = (tmp_path / "report.json").read_text()
    assert "tOk" not in text
    data = json.loads(text)
    assert data["failures"][0]["reason"] == "bad header: Bearer ***"
    assert data["error"] == "the server said ***"


# --- where the report goes ----------------------------------------------------------------------


def test_dash_writes_the_report_to_stdout(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    os.chdir(tmp_path)
    write_output(Path("-"), a_report().to_json())
    out, _ = capfd.readouterr()
    assert json.loads(out)["solvers"]["solver-ubi-8-py38"]["scheduled"] == 2
    assert not (tmp_path / "-").exists()


def test_a_symlink_stays_a_link_and_its_target_gets_the_report(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere" / "report.json"
    target.parent.mkdir()
    target.write_text("old")
    link = tmp_path / "report.json"
    link.symlink_to(target)
    write_output(link, a_report().to_json())
    assert link.is_symlink()
    assert link.resolve() == target
    assert read_report(target)["store"] == "sqlite"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere", "report.json"], "no temporary file left"


def test_a_dangling_symlink_creates_its_target(tmp_path: Path) -> None:
    link = tmp_path / "report.json"
    link.symlink_to(tmp_path / "target.json")
    write_output(link, a_report().to_json())
    assert link.is_symlink()
    assert read_report(tmp_path / "target.json")["dry_run"] is True


def test_a_fifo_is_written_through_not_replaced(tmp_path: Path) -> None:
    fifo = tmp_path / "report.fifo"
    os.mkfifo(fifo)
    received: list[bytes] = []

    def read() -> None:
        with open(fifo, "rb") as stream:
            received.append(stream.read())

    reader = threading.Thread(target=read)
    reader.start()
    write_output(fifo, a_report().to_json())
    reader.join(timeout=10)
    assert not reader.is_alive()
    assert json.loads(received[0])["store"] == "sqlite"
    assert stat.S_ISFIFO(fifo.lstat().st_mode)


def test_a_device_is_written_through_not_replaced(tmp_path: Path) -> None:
    null = tmp_path / "null"
    try:
        os.mknod(null, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # the null device, as /dev/null
    except PermissionError:
        pytest.skip("creating a device node needs CAP_MKNOD")
    write_atomically(null, "manifest\n")
    assert stat.S_ISCHR(null.lstat().st_mode)
    assert null.read_bytes() == b""
    assert [p.name for p in tmp_path.iterdir()] == ["null"]


def test_a_regular_file_is_replaced_atomically(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    path.write_text("old")
    other_name = tmp_path / "hard-link.json"
    os.link(path, other_name)  # a reader holding the old file keeps it whole
    write_output(path, a_report().to_json())
    assert read_report(path)["store"] == "sqlite"
    assert other_name.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hard-link.json", "report.json"]


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_new_and_replaced_files_get_the_usual_permissions(
    tmp_path: Path, umask: Callable[[int], int], mask: int, mode: int
) -> None:
    umask(mask)
    new, replaced = tmp_path / "new.json", tmp_path / "replaced.yaml"
    replaced.write_text("old")
    replaced.chmod(0o600)
    write_output(new, a_report().to_json())
    write_atomically(replaced, "kind: Job\n")
    assert stat.S_IMODE(new.stat().st_mode) == mode
    assert stat.S_IMODE(replaced.stat().st_mode) == mode
    assert replaced.read_text() == "kind: Job\n"


def test_no_folder_is_invented_for_the_report(tmp_path: Path) -> None:
    for folder in (tmp_path / "reports", tmp_path / "typo" / "reports"):
        with pytest.raises(FileNotFoundError, match="no such folder") as error:
            write_output(folder / "report.json", a_report().to_json())
        assert str(folder) in str(error.value)
    assert list(tmp_path.iterdir()) == []


def test_a_dry_run_writes_its_report_through_a_symlink(
    run_cli: RunCli, tmp_path: Path, sample_store: None, umask: Callable[[int], int]
) -> None:
    target = tmp_path / "kept" / "report.json"
    target.parent.mkdir()
    link = tmp_path / "report.json"
    link.symlink_to(target)
    out = tmp_path / "manifests"
    result = run_cli(
        ["--dry-run", "--template-dir", str(EXAMPLE_TEMPLATES), "--output-dir", str(out), "--report", str(link)]
    )
    assert result.exit_code == 0, result.stderr
    assert link.is_symlink()
    data = read_report(target)
    assert data["dry_run"] is True
    assert data["quarantined"] == []
    assert data["quarantined_total"] == 0
    manifests = list(out.glob("*.yaml"))
    assert manifests
    assert {stat.S_IMODE(m.stat().st_mode) for m in manifests} == {0o644}
    skipped: Counter[str] = Counter()
    for counts in data["solvers"].values():
        skipped.update(counts["skipped"])
    assert set(skipped) <= set(SKIP_REASONS)
