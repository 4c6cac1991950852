"""The run report (SPEC §8): the one record of a run. The summary line, the plan table and the
metrics are all derived from it."""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graph_refresh import __version__
from graph_refresh.items import ANALYZER, KINDS, SOLVER, Kind

SKIP_REASONS = ("invalid", "in-flight", "failed-recently", "awaiting-sync", "eager-stop", "capacity")


@dataclass
class Counts:
    """Outcomes of one candidate stream (a solver, or the analyzer), or a sum of them."""

    examined: int = 0
    scheduled: int = 0
    already_scheduled: int = 0
    failed: int = 0
    skipped: Counter[str] = field(default_factory=Counter)

    def __iadd__(self, other: Counts) -> Counts:
        self.examined += other.examined
        self.scheduled += other.scheduled
        self.already_scheduled += other.already_scheduled
        self.failed += other.failed
        self.skipped.update(other.skipped)
        return self

    def describe(self) -> str:
        """``examined=… scheduled=… already_scheduled=… failed=… skipped={reason=n,…}`` for a log line."""
        skipped = ",".join(
            f"{reason}={self.skipped[reason]}" for reason in sorted(self.skipped) if self.skipped[reason]
        )
        return (
            f"examined={self.examined} scheduled={self.scheduled} already_scheduled={self.already_scheduled} "
            f"failed={self.failed} skipped={{{skipped}}}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "examined": self.examined,
            "scheduled": self.scheduled,
            "already_scheduled": self.already_scheduled,
            "failed": self.failed,
            "skipped": {reason: self.skipped[reason] for reason in sorted(self.skipped) if self.skipped[reason]},
        }


@dataclass(frozen=True)
class Failure:
    """One item counted as failed: its create was refused (after retries when the error was transient),
    never sent because the run stopped, or its Job could not be rendered; ``status`` is 0 when no HTTP
    answer applies."""

    job: str
    kind: Kind
    status: int
    reason: str


@dataclass
class RunReport:
    """What one run did; filled in as the run goes, so a failed run still reports how far it got."""

    dry_run: bool
    store: str
    version: str = __version__
    exit_code: int = 0
    duration_seconds: float = 0.0
    in_flight: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    solvers: dict[str, Counts] = field(default_factory=dict)
    analyzer: Counts = field(default_factory=Counts)
    stopped_by: dict[str, str | None] = field(default_factory=lambda: dict.fromkeys(KINDS, None))
    failures: list[Failure] = field(default_factory=list)
    error: str | None = None

    def counts(self, kind: Kind, solver: str | None) -> Counts:
        """The counts of one stream, created on first use."""
        if kind == ANALYZER:
            return self.analyzer
        assert solver is not None
        return self.solvers.setdefault(solver, Counts())

    def totals(self, kind: Kind) -> Counts:
        """All streams of one kind added up."""
        if kind == ANALYZER:
            total = Counts()
            total += self.analyzer
            return total
        total = Counts()
        for counts in self.solvers.values():
            total += counts
        return total

    def to_dict(self) -> dict[str, Any]:
        totals = {}
        for kind in KINDS:
            totals[kind] = {**self.totals(kind).to_dict(), "stopped_by": self.stopped_by[kind]}
        return {
            "version": self.version,
            "dry_run": self.dry_run,
            "exit_code": self.exit_code,
            "duration_seconds": round(self.duration_seconds, 3),
            "store": self.store,
            "in_flight": dict(self.in_flight),
            "totals": totals,
            "solvers": {name: counts.to_dict() for name, counts in sorted(self.solvers.items())},
            "failures": [vars(failure) for failure in self.failures],
            "error": self.error,
        }

    def write(self, path: Path) -> None:
        """Write the JSON report atomically: a reader sees the old file or the whole new one."""
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, json.dumps(self.to_dict(), indent=2) + "\n")

    def summary_line(self) -> str:
        """One line for the log: per kind, what was examined, scheduled and skipped, and the exit code."""
        parts = []
        for kind in KINDS:
            stop = f" stopped_by={self.stopped_by[kind]}" if self.stopped_by[kind] else ""
            parts.append(f"{kind}: {self.totals(kind).describe()}{stop}")
        mode = "dry run" if self.dry_run else "run"
        return f"graph-refresh {mode} finished in {self.duration_seconds:.2f}s, exit {self.exit_code}; " + "; ".join(
            parts
        )

    def plan_table(self) -> str:
        """A fixed-width table: one row per solver and the analyzer, and a total per kind."""
        verb = "planned" if self.dry_run else "scheduled"
        header = ["kind", "solver", "examined", verb, "already", "failed", *SKIP_REASONS]
        rows: list[list[str]] = []

        def row(kind: str, solver: str, c: Counts) -> list[str]:
            numbers = [c.examined, c.scheduled, c.already_scheduled, c.failed, *(c.skipped[r] for r in SKIP_REASONS)]
            return [kind, solver, *map(str, numbers)]

        for name, counts in sorted(self.solvers.items()):
            rows.append(row(SOLVER, name, counts))
        rows.append(row(SOLVER, "(all solvers)", self.totals(SOLVER)))
        rows.append(row(ANALYZER, "-", self.analyzer))
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        lines = []
        for r in [header, *rows]:
            cells = [
                cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(r, widths, strict=True))
            ]
            lines.append("  ".join(cells).rstrip())
        return "\n".join(lines)


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file beside it: a reader sees the old file or the new one."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
