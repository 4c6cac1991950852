"""The run report (design: The report and metrics): the one record of a run. The summary line, the plan table and the
metrics are all derived from it."""

from __future__ import annotations

import json
import textwrap
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from graph_refresh import __version__
from graph_refresh.items import ANALYZER, KINDS, SOLVER, Kind
from graph_refresh.retry.model import ESCALATING, Cause
from graph_refresh.secrets import mask
from graph_refresh.text import plural
from graph_refresh.vocabulary import LANES, SKIP_REASONS

RETRY_CAUSES = tuple(str(cause) for cause in Cause)  # why the Job an item retries failed
CAP_CAUSES = tuple(str(cause) for cause in ESCALATING)  # the causes whose retry escalates a resource up to a cap
PLAN_TABLE_COLUMNS = 100  # the plan table fits a terminal this wide
_COLUMNS = ("examined", "scheduled", "retries", "already", "failed", "skipped", "backlog")  # of the plan table
QUARANTINED_LISTED = 100  # quarantined items named in the report; "quarantined_total" counts them all


@dataclass
class Counts:
    """Outcomes of one candidate stream (a solver, or the analyzer), or a sum of them.

    ``examined == scheduled + already_scheduled + failed + sum(skipped)``; ``retried`` and ``at_cap``
    break ``scheduled`` down, and ``backlog`` and ``quarantined`` describe the stream, not this run's items.
    """

    examined: int = 0
    scheduled: int = 0
    already_scheduled: int = 0
    failed: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    backlog: int | None = None
    """Candidates the store holds for the stream; None when not counted or the count failed."""
    retried: Counter[str] = field(default_factory=Counter)
    """Of ``scheduled``, the retries, by the cause of the failure they retry (RETRY_CAUSES)."""
    at_cap: Counter[str] = field(default_factory=Counter)
    """Of ``retried``, those whose memory (oom) or deadline (deadline) reached its cap (CAP_CAUSES)."""
    quarantined: int = 0
    """Items of the stream in quarantine per the ledger, examined this run or not."""
    lanes: Counter[str] = field(default_factory=Counter)
    """Of ``scheduled``, how many each lane gave (LANES)."""

    def __iadd__(self, other: Counts) -> Counts:
        """Add ``other`` in; the backlog is a sum only while both are known."""
        self.examined += other.examined
        self.scheduled += other.scheduled
        self.already_scheduled += other.already_scheduled
        self.failed += other.failed
        self.skipped.update(other.skipped)
        self.backlog = None if self.backlog is None or other.backlog is None else self.backlog + other.backlog
        self.retried.update(other.retried)
        self.at_cap.update(other.at_cap)
        self.quarantined += other.quarantined
        self.lanes.update(other.lanes)
        return self

    @classmethod
    def sum_of(cls, streams: Iterable[Counts]) -> Counts:
        """The streams added up; the backlog is None when any stream's is, or when there is no stream."""
        total = cls(backlog=0)
        empty = True
        for counts in streams:
            total += counts
            empty = False
        if empty:
            total.backlog = None
        return total

    def summed_up(self) -> str:
        """``411 examined, 396 scheduled (2 retries), 15 skipped, backlog 411`` for the summary line: the totals
        (zeros left out but for examined and scheduled), not their breakdown by reason or cause."""
        retries = sum(self.retried.values())
        parts = [f"{self.examined:,} examined", f"{self.scheduled:,} scheduled"]
        if retries:
            parts[-1] += f" ({plural(retries, 'retry')})"
        parts += [
            f"{number:,} {what}"
            for number, what in (
                (self.already_scheduled, "already present"),
                (self.failed, "failed"),
                (sum(self.skipped.values()), "skipped"),
            )
            if number
        ]
        if self.backlog is not None:
            parts.append(f"backlog {self.backlog:,}")
        return ", ".join(parts)

    def untabled(self) -> str:
        """What the plan table does not say of the stream: its retries by cause and those at a cap, its items in
        quarantine, and the lanes of what it scheduled when any came ahead of the backlog; empty when none."""
        parts = []
        retried = [f"{cause} {self.retried[cause]:,}" for cause in RETRY_CAUSES if self.retried[cause]]
        if retried:
            at_cap = [f"{cause} {self.at_cap[cause]:,}" for cause in CAP_CAUSES if self.at_cap[cause]]
            parts.append(f"retries {', '.join(retried)}" + (f" (at the cap: {', '.join(at_cap)})" if at_cap else ""))
        if self.quarantined:
            parts.append(f"{self.quarantined:,} in quarantine")
        if self.lanes["requested"] or self.lanes["fresh"]:
            parts.append("scheduled by lane: " + ", ".join(f"{lane} {self.lanes[lane]:,}" for lane in LANES))
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "examined": self.examined,
            "scheduled": self.scheduled,
            "already_scheduled": self.already_scheduled,
            "failed": self.failed,
            "skipped": {reason: self.skipped[reason] for reason in sorted(self.skipped) if self.skipped[reason]},
            "backlog": self.backlog,
            "retried": {cause: self.retried[cause] for cause in RETRY_CAUSES},
            "retries_at_cap": {cause: self.at_cap[cause] for cause in CAP_CAUSES},
            "quarantined": self.quarantined,
            "lanes": {lane: self.lanes[lane] for lane in LANES},
        }


@dataclass(frozen=True)
class CreateFailure:
    """One item counted as failed: its create was refused (after retries when the error was transient),
    never sent because the run stopped, or its Job could not be rendered; ``status`` is None (``null`` in
    the report) when no HTTP answer applies."""

    job: str
    kind: Kind
    status: int | None
    reason: str


@dataclass
class RequestCounts:
    """The requests a run read: still open (and the oldest one's age), done (every stream of the run has the
    item), expired (dropped after --request-ttl) and dropped (unreadable, an index the deployment does not trust,
    or given up on because the graph sync lost its results), each a ConfigMap key."""

    open: int = 0
    oldest_age_seconds: float | None = None
    done: int = 0
    expired: int = 0
    dropped: int = 0
    closure_members: int = 0
    """The versions of the open requests' closures (docs/lanes.md), the requested items included, each once."""
    done_seconds: list[float] = field(default_factory=list, repr=False)
    """For each request done this run, the seconds from ``requested_at`` to this run: the metric's histogram
    (not in the JSON report)."""


@dataclass
class EtaCounts:
    """The windows this run scored (docs/eta.md): how many, how many held, how many were late by two run
    intervals or more, and the median distance from a window's middle to the run that found the item."""

    scored: int = 0
    inside: int = 0
    late_by_two_runs_or_more: int = 0
    median_error_seconds: float | None = None
    by_lane: dict[str, dict[str, int]] = field(default_factory=dict)
    """Per lane, per result (``inside``, ``early``, ``late``), how many: the metric's counts."""
    last_day: dict[str, int] = field(default_factory=dict)
    """Per result, the kept scores of the last 24 hours (this run's and earlier runs'): what the alert reads."""

    def to_dict(self) -> dict[str, Any]:
        """As the report has it (``by_lane`` and ``last_day`` are the metrics')."""
        return {k: v for k, v in asdict(self).items() if k not in ("by_lane", "last_day")}


@dataclass(frozen=True)
class QuarantinedItem:
    """An item the ledger holds in quarantine: it failed ``failures`` times (charged) and is skipped until
    ``until`` (RFC 3339, UTC); ``solver`` is None for the analyzer."""

    item: str
    kind: Kind
    solver: str | None
    package: str
    version: str
    index: str
    failures: int
    last_cause: str
    until: str


@dataclass
class RunReport:
    """What one run did; filled in as the run goes, so a failed run still reports how far it got."""

    dry_run: bool
    """Nothing was stored: a dry run, or a server dry run (see ``server_dry_run``)."""
    store: str
    server_dry_run: bool = False
    """The creates were sent with dryRun=All: validated and admitted by the API server, stored nowhere."""
    version: str = __version__
    exit_code: int = 0
    duration_seconds: float = 0.0
    in_flight: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    solvers: dict[str, Counts] = field(default_factory=dict)
    analyzer: Counts = field(default_factory=Counts)
    stopped_by: dict[str, str | None] = field(default_factory=lambda: dict.fromkeys(KINDS, None))
    stopped_by_limit: dict[str, str | None] = field(default_factory=lambda: dict.fromkeys(KINDS, None))
    """Which limit stopped a kind: ``--eager-stop``, ``--max-in-flight`` or ``ResourceQuota 'q': resource``."""
    off: frozenset[str] = frozenset()
    """The kinds this run does not schedule (``--no-solvers``, ``--no-package-analyzers``)."""
    failures: list[CreateFailure] = field(default_factory=list)
    quarantined: list[QuarantinedItem] = field(default_factory=list)
    """Every item in quarantine (the report lists the first QUARANTINED_LISTED by end of quarantine)."""
    requests: RequestCounts | None = None
    """What became of the open requests; None when they were not read (no middletier)."""
    eta: EtaCounts | None = None
    """The windows this run scored; None when it scored none (a dry run, no middletier)."""
    ledger_written: bool | None = None
    """Whether the run wrote the ledger ConfigMap; None when it does not write it (a dry run, no middletier)."""
    ledger_reason: str | None = None
    """Why the ledger could not be written."""
    error: str | None = None

    def stop(self, kind: Kind, reason: str, limit: str | None = None) -> None:
        """Record why ``kind``'s streams stopped: the first reason (``eager-stop``, ``capacity``, ``sync-lag``)
        and the first limit named (``--eager-stop``, ``--max-in-flight``, a ResourceQuota and its resource)
        stay. The one place either is written."""
        self.stopped_by[kind] = self.stopped_by[kind] or reason
        self.stopped_by_limit[kind] = self.stopped_by_limit[kind] or limit

    def counts(self, kind: Kind, solver: str | None) -> Counts:
        """The counts of one stream, created on first use."""
        if kind == ANALYZER:
            return self.analyzer
        assert solver is not None
        counts = self.solvers.get(solver)  # not setdefault: a new Counts per call is costly on the hot path
        if counts is None:
            counts = self.solvers[solver] = Counts()
        return counts

    def totals(self, kind: Kind) -> Counts:
        """All streams of one kind added up."""
        if kind == ANALYZER:
            return Counts.sum_of([self.analyzer])
        return Counts.sum_of(self.solvers.values())

    def to_dict(self) -> dict[str, Any]:
        totals = {}
        for kind in KINDS:
            totals[kind] = {
                **self.totals(kind).to_dict(),
                "stopped_by": self.stopped_by[kind],
                "stopped_by_limit": self.stopped_by_limit[kind],
            }
        quarantined = sorted(self.quarantined, key=lambda q: (q.until, q.item))[:QUARANTINED_LISTED]
        return {
            "version": self.version,
            "dry_run": self.dry_run,
            "server_dry_run": self.server_dry_run,
            "exit_code": self.exit_code,
            "duration_seconds": round(self.duration_seconds, 3),
            "store": self.store,
            "in_flight": dict(self.in_flight),
            "totals": totals,
            "solvers": {name: counts.to_dict() for name, counts in sorted(self.solvers.items())},
            "failures": [asdict(failure) for failure in self.failures],
            "quarantined": [asdict(item) for item in quarantined],
            "quarantined_total": len(self.quarantined),
            "requests": None if self.requests is None else _request_json(self.requests),
            "eta": None if self.eta is None else {k: v for k, v in asdict(self.eta).items() if k != "by_lane"},
            "ledger": None
            if self.ledger_written is None
            else {"written": True}
            if self.ledger_written
            else {"written": False, "reason": self.ledger_reason},
            "error": self.error,
        }

    def to_json(self) -> str:
        """The report as JSON text, every secret the process knows masked (a server may echo a token into
        a failure reason)."""
        return mask(json.dumps(_masked(self.to_dict()), indent=2)) + "\n"

    def summary_line(self) -> str:
        """The run in one line for the log: how it ended, then per kind its totals (``Counts.summed_up``) and what
        stopped it, or ``off``. Short, so that it reads on a terminal: the report has the breakdowns."""
        parts = []
        for kind in KINDS:
            if kind in self.off:
                parts.append(f"{kind} off")
                continue
            reason, limit = self.stopped_by[kind], self.stopped_by_limit[kind]
            stop = "" if reason is None else f", stopped by {reason}" + (f" ({limit})" if limit else "")
            parts.append(f"{kind}: {self.totals(kind).summed_up()}{stop}")
        mode = "server dry run" if self.server_dry_run else "dry run" if self.dry_run else "run"
        return f"graph-refresh {mode} finished in {self.duration_seconds:.2f}s, exit {self.exit_code}; " + "; ".join(
            parts
        )

    def plan_table(self, width: int = PLAN_TABLE_COLUMNS) -> str:
        """A fixed-width table no wider than ``width`` columns: one row per solver, one for all solvers, one for
        the analyzer.

        ``scheduled`` counts the Jobs created, or in a dry run those that would be; ``retries`` is the part of
        them that retries a failed Job; ``skipped`` is broken down by reason on the line below the row;
        ``backlog`` is ``?`` when it was not counted; a kind the run does not schedule is ``off``. Numbers from a
        million on are abbreviated (``1.23M``: the report has them in full), and a stream name too long for its
        column gets a line of its own.
        """
        rows = [(name, counts) for name, counts in sorted(self.solvers.items())]
        rows += [("(all solvers)", self.totals(SOLVER)), (ANALYZER, self.analyzer)]
        off = {"(all solvers)": SOLVER in self.off, ANALYZER: ANALYZER in self.off}
        figures = [["off", *[""] * (len(_COLUMNS) - 1)] if off.get(name) else _figures(c) for name, c in rows]
        widths = [max(len(cell) for cell in [header, *(f[i] for f in figures)]) for i, header in enumerate(_COLUMNS)]
        gap = "  " if sum(widths) + 2 * len(widths) + len("stream") <= width else " "  # a narrow terminal: one
        numbers_width = sum(widths) + len(gap) * len(widths)
        name_width = max(len("stream"), min(max(len(name) for name, _ in rows), width - numbers_width))

        def line(name: str, cells: list[str]) -> str:
            return name.ljust(name_width) + "".join(gap + cell.rjust(w) for cell, w in zip(cells, widths, strict=True))

        lines = [line("stream", list(_COLUMNS))]
        for (name, counts), cells in zip(rows, figures, strict=True):
            if len(name) > name_width:  # stacked: the name, then its figures
                lines.append(name)
                name = ""
            lines.append(line(name, cells))
            skipped = [
                f"{reason} {_abbreviated(counts.skipped[reason])}" for reason in SKIP_REASONS if counts.skipped[reason]
            ]
            if skipped:
                lines += textwrap.wrap(
                    "skipped: " + ", ".join(skipped),
                    width,
                    initial_indent="  ",
                    subsequent_indent="    ",
                    break_on_hyphens=False,
                )
        return "\n".join(row.rstrip() for row in lines)


def _figures(c: Counts) -> list[str]:
    """One plan table row's numbers, in the order of _COLUMNS."""
    numbers = [c.examined, c.scheduled, sum(c.retried.values()), c.already_scheduled, c.failed, sum(c.skipped.values())]
    return [*map(_abbreviated, numbers), "?" if c.backlog is None else _abbreviated(c.backlog)]


def _abbreviated(number: int) -> str:
    """``number`` in at most five characters from a million on: three significant digits and a unit (``1.23M``,
    ``45.6G``, ``999T``); in full below."""
    if number < 1_000_000:
        return str(number)
    value = float(number)
    for unit in "MGTPE":
        value = number / 1000 ** ("MGTPE".index(unit) + 2)
        if value < 999.5:
            break
    return f"{value:.3g}{unit}"


def _masked(value: Any) -> Any:
    """``value`` (JSON-shaped) with every string masked, keys included, before JSON escapes could split a secret."""
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, dict):
        return {_masked(key): _masked(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_masked(item) for item in value]
    return value


def _request_json(requests: RequestCounts) -> dict[str, Any]:
    """The report's ``requests``: the counts (the done requests' waits go to the metric only)."""
    counts = asdict(requests)
    del counts["done_seconds"]
    return counts
