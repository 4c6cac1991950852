"""The report's tables: one Markdown writer, and the columns of each table as data.

A column is a header, how a row's cell is written, and whether it holds numbers (right-aligned). Cells are
written from a row's medians; a ratio column compares a row of this checkout with the row of another code
on the same benchmark and graph.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bench.baseline import LOOP_2019, PREVIOUS, THIS
from bench.measure import Row


@dataclass(frozen=True)
class Column:
    header: str
    cell: Callable[[Row, Sequence[Row]], str]
    """The cell of a row, given all the rows of the table (for ratios)."""
    numbers: bool = True


def markdown(columns: Sequence[Column], rows: Sequence[Row]) -> list[str]:
    """The lines of one Markdown table: a header, then one line per row."""
    lines = [
        "| " + " | ".join(column.header for column in columns) + " |",
        "|" + "|".join("---:" if column.numbers else "---" for column in columns) + "|",
    ]
    lines += ["| " + " | ".join(column.cell(row, rows) for column in columns) + " |" for row in rows]
    return lines


def seconds(value: float) -> str:
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def reference(rows: Sequence[Row], row: Row, code: str) -> Row | None:
    """The row of ``code`` measuring what ``row`` measures (same benchmark, same graph)."""
    for other in rows:
        if other.benchmark == row.benchmark and other.graph == row.graph and other.code.startswith(code):
            return other
    return None


def ratio(code: str) -> Column:
    """``code`` ÷ this checkout, CPU then wall: how many times less this checkout spends (> 1: faster)."""

    def cell(row: Row, rows: Sequence[Row]) -> str:
        other = reference(rows, row, code)
        if other is None or not row.code.startswith(THIS):
            return ""
        cpu = other.median("cpu") / row.median("cpu")
        wall = other.median("wall") / row.median("wall")
        return f"{cpu:.1f}× ({wall:.1f}×)"

    return Column(f"{code} ÷ this, CPU (wall)", cell)


def per_count(scale: float, digits: int) -> Callable[[Row, Sequence[Row]], str]:
    """Median CPU seconds per counted thing, times ``scale``; empty without a count."""
    return lambda row, _: f"{row.median('cpu') / row.count * scale:.{digits}f}" if row.count else ""


BENCHMARK = Column("benchmark", lambda row, _: row.benchmark, numbers=False)
CODE = Column("code", lambda row, _: row.code, numbers=False)
RUNS = Column("runs", lambda row, _: str(len(row.samples)))
WALL = Column("wall s", lambda row, _: seconds(row.median("wall")))
CPU = Column("CPU s", lambda row, _: seconds(row.median("cpu")))
PEAK_RSS = Column("peak RSS MiB", lambda row, _: f"{row.median('rss_mib'):.0f}")
RATIOS = (ratio(PREVIOUS), ratio(LOOP_2019))

PROCESSES = (
    BENCHMARK,
    Column("graph", lambda row, _: row.graph, numbers=False),
    CODE,
    RUNS,
    Column("candidates examined", lambda row, _: "" if row.count is None else f"{row.count:,}"),
    WALL,
    CPU,
    Column("µs CPU / candidate", per_count(1e6, 1)),
    Column("candidates / s (wall)", lambda row, _: f"{row.count / row.median('wall'):,.0f}" if row.count else ""),
    PEAK_RSS,
    *RATIOS,
)
"""Every benchmark but the creates: one row per command and code."""

CREATES = (
    BENCHMARK,
    Column("planned", lambda row, _: row.graph, numbers=False),
    CODE,
    RUNS,
    Column("Jobs in the fake", lambda row, _: f"{row.count or 0:,}"),
    WALL,
    Column("creates / s", lambda row, _: f"{(row.count or 0) / row.median('wall'):,.0f}"),
    Column("client CPU ms / create", per_count(1e3, 2)),
    PEAK_RSS,
    Column("duplicates", lambda row, _: str(row.extra["duplicates"])),
    Column("lost", lambda row, _: str(row.extra["lost"])),
    *RATIOS,
)
"""The creates against the Kubernetes stand-in: Jobs counted in the fake after each run."""
