"""The run report (SPEC §8, §11-§13): its fields, its plan table, and how it and the manifests are written."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from graph_refresh import secrets
from graph_refresh.report import (
    QUARANTINED_LISTED,
    SKIP_REASONS,
    Counts,
    QuarantinedItem,
    RunReport,
)

RunCli = Callable[..., Result]


@pytest.fixture
def umask() -> Iterator[Callable[[int], None]]:
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
    assert ubi["backlog"] == 40 and ubi["quarantined"] == 1
    assert ubi["retried"] == {"disrupted": 1, "oom": 1, "deadline": 0, "error": 0}
    assert ubi["retries_at_cap"] == {"oom": 1, "deadline": 0}
    assert data["solvers"]["solver-fedora-34-py39"]["backlog"] is None
    assert data["totals"]["solver"]["backlog"] is None, "one solver's count failed: the sum is unknown"
    assert data["totals"]["solver"]["retried"]["oom"] == 1 and data["totals"]["solver"]["quarantined"] == 1
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
    assert len(listed) == QUARANTINED_LISTED and data["quarantined_total"] == 150
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
    header, *rows = (line.split() for line in report.plan_table().splitlines())
    assert header == [
        "kind",
        "solver",
        "examined",
        "scheduled",
        "retries",
        "already",
        "failed",
        *SKIP_REASONS,
        "backlog",
    ]
    table = {(row[0], row[1]): dict(zip(header[2:], row[2:], strict=True)) for row in rows if row[1] != "(all"}
    ubi = table[("solver", "solver-ubi-8-py38")]
    assert (ubi["scheduled"], ubi["retries"], ubi["quarantined"], ubi["backlog"]) == ("2", "2", "1", "40")
    assert table[("solver", "solver-fedora-34-py39")]["backlog"] == "?"
    assert table[("package-analyzer", "-")]["capacity"] == "1"


def test_the_summary_line_gives_backlog_and_retries() -> None:
    line = a_report().summary_line()
    assert "backlog=? retried={disrupted=1,oom=1}" in line and "backlog=7 retried={}" in line
