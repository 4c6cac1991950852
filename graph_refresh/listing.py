"""How the reading commands print what they found (README: Operating graph-refresh): ``ledger show``,
``request --list`` and ``explain`` build rows of JSON-ready values once, and ``-o table|wide|json|yaml|name``
chooses how they are written, as kubectl's ``-o`` does.

- ``table`` (the default): the columns an operator reads first, fitted to the width of the output
  (design: Lines a person reads);
- ``wide``: more columns, and nothing cut, so a line may be wider than the terminal (``json`` and ``yaml`` have
  the same values);
- ``json``, ``yaml``: the rows themselves;
- ``name``: one name a line, for a shell loop: item keys, request keys, or the item's Jobs as kubectl names
  them (``job.batch/NAME``).

Pure: rows in, lines out. Text from outside arrives escaped in the rows already (``text.one_line``); a table
cell is escaped again, which leaves escaped text as it is.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Sequence
from typing import Any

import yaml

from graph_refresh.text import cell, cut, one_line
from graph_refresh.waiting.lanes import closure_line

OUTPUTS = ("table", "wide", "json", "yaml", "name")
MIN_CELL = 6  # characters a cut table cell keeps, its ellipsis included
JOB_RESOURCE = "job.batch"  # how kubectl -o name names a Job: job.batch/NAME
NONE = "-"  # an empty table cell

# ``ledger show --state WORD``: each word and how the state ``retry.policy.entry_state`` tells starts.
LEDGER_STATES = {
    "retry": "retry next run",
    "backing-off": "backing off",
    "quarantined": "quarantined",
    "forgotten": "forgotten",
    "expired": "expired",
}


def serialized(rows: Sequence[dict[str, Any]], output: str) -> str:
    """The rows as a JSON list (``json``) or a YAML sequence (``yaml``), keys in the rows' order, without a last
    newline."""
    if output == "json":
        return json.dumps(rows, indent=2, ensure_ascii=False)
    assert output == "yaml", output
    return yaml.safe_dump(list(rows), sort_keys=False, allow_unicode=True, default_flow_style=False).rstrip("\n")


def fitted(table: Sequence[Sequence[str]], width: int, *, shrink: Sequence[Collection[int]] = ()) -> list[str]:
    """``table`` (its first row the header) as lines, columns two spaces apart, cells escaped
    (``text.one_line``), fitted to ``width``: while a line would be too wide, the widest column of the first
    group in ``shrink`` that can lose a character loses one (its cells are cut with an ellipsis), down to its
    header's width or MIN_CELL; then the next group's. Columns in no group are never cut, but a line still too
    wide is cut at ``width`` when any column may be (``shrink`` not empty)."""
    lines = [[one_line(value) for value in row] for row in table]
    widths = [max(len(row[i]) for row in lines) for i in range(len(lines[0]))]
    floors = [max(len(header), MIN_CELL) for header in lines[0]]
    room = width - 2 * (len(widths) - 1)
    for group in shrink:
        while sum(widths) > room:
            cuttable = [i for i in group if widths[i] > floors[i]]
            if not cuttable:
                break
            widths[max(cuttable, key=lambda i: widths[i])] -= 1
    fitted_lines = [
        "  ".join(cell(value, size).ljust(size) for value, size in zip(row, widths, strict=True)).rstrip()
        for row in lines
    ]
    # A table that may be cut (not ``wide``) never runs past the width: what its columns' floors left over is cut.
    return [cut(line, width) for line in fitted_lines] if shrink else fitted_lines


def _text(value: Any) -> str:
    return NONE if value is None or value == "" else str(value)


# --- ledger show ---------------------------------------------------------------------------------------------


def ledger_state_word(state: str) -> str | None:
    """The ``--state`` word of a state as ``retry.policy.entry_state`` tells it (``backing off until`` →
    ``backing-off``); None for a wording this table does not know."""
    return next((word for word, start in LEDGER_STATES.items() if state.startswith(start)), None)


def ledger_table(rows: Iterable[dict[str, Any]], *, wide: bool) -> tuple[list[list[str]], list[set[int]]]:
    """``ledger show``'s table, its header first, and the column groups to cut, in order, when it is too wide:
    the package and the stream, then the state (``-o json`` has them whole). ``wide`` adds the index, the
    attempt, when it failed and its memory, and cuts nothing."""
    header = ["ITEM", "STREAM", "PACKAGE", "FAILS", "CAUSE", "STATE"]
    if wide:
        header = ["ITEM", "STREAM", "PACKAGE", "INDEX", "ATTEMPT", "FAILS", "CAUSE", "FAILED", "MEMORY", "STATE"]
    table = [header]
    for row in rows:
        state = row["state"] if row["until"] is None else f"{row['state']} {row['until']}"
        stream = row.get("solver") or row["kind"]
        package = f"{row['package']}=={row['version']}"
        if not wide:
            table.append([row["key"], stream, package, str(row["failures"]), _text(row["cause"]), state])
            continue
        memory = ", ".join(
            f"{name}={limits.get('limit') or limits.get('request')}"
            for name, limits in sorted((row.get("memory") or {}).items())
        )
        table.append(
            [
                row["key"],
                stream,
                package,
                row["index"],
                str(row["attempt"]),
                str(row["failures"]),
                _text(row["cause"]),
                _text(row.get("failed")),
                _text(memory),
                state,
            ]
        )
    return table, [] if wide else [{1, 2}, {5}]


# --- request --list ------------------------------------------------------------------------------------------

REQUEST_CELLS = (12, 28, 29, 10, 4, 100)  # table: KEY, PACKAGE, INDEX, BY, AGE, STATE cut to these widths


def age(seconds: int) -> str:
    """An age as kubectl shows one: 45s, 12m, 5h, 3d."""
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def requests_table(rows: Iterable[dict[str, Any]], *, wide: bool) -> tuple[list[list[str]], list[set[int]]]:
    """``request --list``'s table, its header first: each key with its item, index, who asked, age and state,
    each cell cut to its width (REQUEST_CELLS); and the columns to cut when it is still too wide: the state, the
    package and the index, then who asked. ``wide`` adds when it was requested and when it expires, and cuts
    nothing (the key and the index whole)."""
    header = ["KEY", "PACKAGE", "INDEX", "BY", "AGE", "STATE"]
    if wide:
        header = ["KEY", "PACKAGE", "INDEX", "BY", "REQUESTED", "EXPIRES", "AGE", "STATE"]
    table = [header]
    for row in rows:
        package = f"{row['package']}=={row['version']}" if "package" in row else NONE
        shown_age = NONE if row.get("age_seconds") is None else age(row["age_seconds"])
        index, by = _text(row.get("index")), _text(row.get("by"))
        if wide:
            times = [_text(row.get("requested_at")), _text(row.get("expires_at"))]
            table.append([row["key"], package, index, by, *times, shown_age, row["state"]])
            continue
        cells = [row["key"], package, index, by, shown_age, row["state"]]
        table.append([cell(value, size) for value, size in zip(cells, REQUEST_CELLS, strict=True)])
    return table, [] if wide else [{5}, {1, 2}, {3}]


# --- explain -------------------------------------------------------------------------------------------------

JOB_INDENT = "    "  # a Job's line under its stream's: deeper than a stream's two spaces, short enough to fit
EXPLAIN_JOB_FIELDS = ("attempt", "state", "memory", "deadline")  # what a table's line of a Job says
HIDDEN_DETAILS = ("stream", "kind", "state", "jobs", "closure")  # a row's keys that its line does not list as key=value


def explain_lines(rows: Sequence[dict[str, Any]], *, jobs: bool) -> list[str]:
    """One line per stream: its name, its state and every detail that state has (``key=value``); with ``jobs``,
    a line below it for each of the item's Jobs in that stream (what ``-o table`` shows; ``-o wide`` lists them
    in a table of their own, ``jobs_table``). The lines are not wrapped: the caller fits them to its width."""
    width = max((len(row["stream"]) for row in rows), default=0)
    lines = []
    for row in rows:
        details = ", ".join(
            f"{key}={_detail(value)}" for key, value in row.items() if key not in HIDDEN_DETAILS and value is not None
        )
        lines.append(f"  {row['stream'].ljust(width)}  {row['state']}{': ' + details if details else ''}")
        if row.get("closure"):
            lines.append(f"{JOB_INDENT}{closure_line(row['stream'], row['closure'])}")
        for job in row["jobs"] if jobs else ():
            said = ", ".join(f"{key}={job[key]}" for key in EXPLAIN_JOB_FIELDS if job[key])
            lines.append(f"{JOB_INDENT}job {job['name']}: {said}")
    return lines


def _detail(value: Any) -> Any:
    """A detail as a line says it: a window (``{"p10": a, "p90": b}``) as ``a to b``, or ``a`` when they agree."""
    if isinstance(value, dict) and set(value) == {"p10", "p90"}:
        return value["p10"] if value["p10"] == value["p90"] else f"{value['p10']} to {value['p90']}"
    return value


def accuracy_table(rows: Iterable[dict[str, Any]]) -> list[list[str]]:
    """``explain --accuracy``: a lane a row (then all lanes), how its scored windows held."""
    table = [["LANE", "SCORED", "INSIDE", "SHARE", "EARLY", "LATE", "LATE-2-RUNS", "MEDIAN-ERROR"]]
    for row in rows:
        share = NONE if row["inside_share"] is None else f"{row['inside_share']:.0%}"
        error = NONE if row["median_error_seconds"] is None else age(int(row["median_error_seconds"]))
        counts = (row["scored"], row["inside"], share, row["early"], row["late"], row["late_by_two_runs_or_more"])
        table.append([row["lane"], *map(str, counts), error])
    return table


def jobs_table(rows: Iterable[dict[str, Any]]) -> tuple[list[list[str]], list[set[int]]]:
    """The item's Jobs in every stream as a table (``explain -o wide``), its header first, stream after stream,
    lowest attempt first; and the columns to cut when it is too wide: when it was created, then the name."""
    table = [["JOB", "ATTEMPT", "STATE", "MEMORY", "DEADLINE", "CREATED"]]
    for row in rows:
        for job in row["jobs"]:
            fields = (job["attempt"], job["state"], job["memory"], job["deadline"], job["created"])
            table.append([job["name"], *map(_text, fields)])
    return table, [{5}, {0}]


def names(rows: Iterable[dict[str, Any]], *, jobs: bool = False) -> list[str]:
    """``-o name``: each row's key, or (``jobs``) each Job of each row as kubectl names it."""
    if jobs:
        return [f"{JOB_RESOURCE}/{job['name']}" for row in rows for job in row["jobs"]]
    return [row["key"] for row in rows]
