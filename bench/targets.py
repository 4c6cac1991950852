"""The speed targets, as data, and how this checkout's rows compare to them (reported, never asserted).

A target names the benchmark it is about and one or more limits; a limit compares one or more figures of a
measured row (each its median) to a number: ``≤ 5 µs CPU per candidate``. The report prints one line per
row of this checkout that a target applies to, with the figures measured and "met" or "NOT met".
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bench.baseline import THIS
from bench.measure import Row
from bench.scenarios import CREATES, EAGER_STOP, FIRST_JOB, FULL, HELP, MANIFESTS

COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "≤": operator.le,
    "<": operator.lt,
    "≥": operator.ge,
    "=": operator.eq,
}


@dataclass(frozen=True)
class Figure:
    """A number computed from a row (given this checkout's rows) and how a measured value is written."""

    value: Callable[[Row, Sequence[Row]], float]
    written: str
    """A format for the value, with its unit: ``"{:.1f} µs"``."""

    def text(self, row: Row, rows: Sequence[Row]) -> str:
        return self.written.format(self.value(row, rows))


@dataclass(frozen=True)
class Limit:
    """Each of ``figures`` compared to ``limit`` (``figure compare limit``), written ``compare limit unit``."""

    figures: tuple[Figure, ...]
    compare: str
    """A key of COMPARISONS."""
    limit: float
    unit: str
    """As the limit is written after its number (with its leading space, if any)."""

    def met(self, row: Row, rows: Sequence[Row]) -> bool:
        return all(COMPARISONS[self.compare](figure.value(row, rows), self.limit) for figure in self.figures)

    def text(self) -> str:
        number = f"{self.limit / 1000:g}k" if self.limit >= 1000 and self.limit % 1000 == 0 else f"{self.limit:g}"
        return f"{number}{self.unit}" if self.compare == "=" else f"{self.compare} {number}{self.unit}"


@dataclass(frozen=True)
class Target:
    """Limits for the rows of the benchmarks whose name matches ``benchmark`` (a regular expression)."""

    benchmark: str
    subject: str
    """How the line names the row: a format of ``benchmark``, ``graph`` and ``count``."""
    limits: tuple[Limit, ...]
    shown: tuple[Figure, ...] = ()
    """Written after the limited figures, for context."""
    min_count: int | None = None
    """Only rows with a count of at least this (or the largest count of the benchmark, when all are smaller)."""

    def applies(self, row: Row, rows: Sequence[Row]) -> bool:
        if not re.fullmatch(self.benchmark, row.benchmark):
            return False
        if self.min_count is None:
            return True
        counts = [other.count or 0 for other in rows if other.benchmark == row.benchmark]
        return bool(row.count) and (row.count or 0) >= min(max(counts), self.min_count)

    def line(self, row: Row, rows: Sequence[Row]) -> str:
        subject = self.subject.format(benchmark=row.benchmark, graph=row.graph, count=row.count or 0)
        measured = [figure.text(row, rows) for limit in self.limits for figure in limit.figures]
        measured += [figure.text(row, rows) for figure in self.shown]
        met = all(limit.met(row, rows) for limit in self.limits)
        limits = ", ".join(limit.text() for limit in self.limits)
        return f"- {subject}: {limits}: {', '.join(measured)} — {'met' if met else 'NOT met'}"


def _planning_alone(row: Row, rows: Sequence[Row]) -> Row:
    """The full dry run of the graph whose manifests ``row`` wrote."""
    return next(other for other in rows if other.benchmark == FULL and other.graph == row.graph)


WALL = Figure(lambda row, _: row.median("wall"), "{:.2f} s wall")
CPU = Figure(lambda row, _: row.median("cpu"), "{:.2f} s CPU")
PEAK_RSS = Figure(lambda row, _: row.median("rss_mib"), "{:.0f} MiB")
CPU_PER_CANDIDATE = Figure(lambda row, _: row.median("cpu") / (row.count or 0) * 1e6, "{:.1f} µs")
CANDIDATES_PER_SECOND = Figure(lambda row, _: (row.count or 0) / row.median("wall"), "{:,.0f}/s")
MANIFESTS_FACTOR = Figure(lambda row, rows: row.median("cpu") / _planning_alone(row, rows).median("cpu"), "{:.2f}× CPU")
DUPLICATES = Figure(lambda row, _: row.extra["duplicates"], "{} duplicates")
LOST = Figure(lambda row, _: row.extra["lost"], "{} lost")
JOBS = Figure(lambda row, _: row.count or 0, "{:,} Jobs")

TARGETS = (
    Target(
        benchmark=re.escape(FULL),
        subject="full dry run, {count:,} candidates",
        limits=(
            Limit((CPU_PER_CANDIDATE,), "≤", 5, " µs CPU per candidate"),
            Limit((CANDIDATES_PER_SECOND,), "≥", 100_000, " candidates/s"),
            Limit((PEAK_RSS,), "≤", 128, " MiB"),
        ),
        min_count=1_000_000,  # the dry-run targets are for graphs of a million candidates and more
    ),
    # The first Job, then the whole --eager-stop run (which also counts the backlog after its last Job).
    Target(
        benchmark=re.escape(FIRST_JOB),
        subject="{benchmark} ({graph})",
        limits=(Limit((WALL, CPU), "≤", 0.4, " s"),),
    ),
    Target(
        benchmark=re.escape(EAGER_STOP),
        subject="{benchmark}, the whole process ({graph})",
        limits=(Limit((CPU,), "≤", 0.25, " s"),),
        shown=(WALL,),
    ),
    Target(
        benchmark=re.escape(HELP),
        subject="{benchmark} ({graph})",
        limits=(Limit((WALL, CPU), "≤", 0.25, " s"),),
    ),
    Target(
        benchmark=re.escape(MANIFESTS),
        subject="writing manifests ({graph})",
        limits=(Limit((MANIFESTS_FACTOR,), "<", 3, "× planning alone"),),
    ),
    Target(
        benchmark=re.escape(CREATES) + ".*",
        subject="{benchmark}",
        limits=(Limit((DUPLICATES,), "=", 0, " duplicates"), Limit((LOST,), "=", 0, " lost")),
        shown=(JOBS,),
    ),
)


def report(rows: Sequence[Row], targets: Sequence[Target] = TARGETS) -> list[str]:
    """One line per row of this checkout that a target applies to (the first that does), in the rows' order."""
    mine = [row for row in rows if row.code.startswith(THIS)]
    lines = []
    for row in mine:
        target = next((target for target in targets if target.applies(row, mine)), None)
        if target is not None:
            lines.append(target.line(row, mine))
    return lines
