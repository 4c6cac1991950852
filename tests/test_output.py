"""One output convention for the reading commands (README: Operating graph-refresh): ``-o table|wide|json|yaml|name``
(``--json`` its alias) on ``ledger show``, ``request --list`` and ``explain``; ``ledger show``'s filters; and the
options every command takes before or after its name (``--quiet``, ``--kubeconfig``, ``--context``)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from graph_refresh.items import ANALYZER, SOLVER, Candidate, Kind, WorkItem

from .fakes.kube import FakeKube
from .helpers import MIDDLETIER, PYPI, SOLVERS, T0, Harness, run_app

Obj = dict[str, Any]
LEDGER_HEADER = ["ITEM", "STREAM", "PACKAGE", "FAILS", "CAUSE", "STATE"]


def key_of(kind: Kind, solver: str | None, package: str) -> str:
    return WorkItem(kind, solver, Candidate(package, "1.0", PYPI)).key


# One entry in each state ledger show tells at T0 (2027-01-15T08:00:00Z) under the default retry settings.
ENTRIES: dict[str, tuple[str, Obj]] = {
    "retry": (
        key_of(SOLVER, SOLVERS[0], "flask"),
        {"solver": SOLVERS[0], "package": "flask", "failures": 1, "attempt": 1, "cause": "oom"}
        | {"failed": "2027-01-15T07:00:00Z", "memory": {"solver": {"request": "1Gi", "limit": "1Gi"}}},
    ),
    "backing-off": (
        key_of(ANALYZER, None, "numpy"),
        {"package": "numpy", "failures": 1, "attempt": 1, "cause": "error", "failed": "2027-01-15T07:30:00Z"},
    ),
    "quarantined": (
        key_of(SOLVER, SOLVERS[1], "django"),
        {"solver": SOLVERS[1], "package": "Django", "failures": 3, "attempt": 3, "cause": "error"}
        | {"failed": "2027-01-15T06:00:00Z"},
    ),
    "forgotten": (
        key_of(SOLVER, SOLVERS[2], "requests"),
        {"solver": SOLVERS[2], "package": "requests", "failures": 0, "attempt": 2, "cause": None}
        | {"failed": "2027-01-14T06:00:00Z"},
    ),
    "expired": (
        key_of(SOLVER, SOLVERS[0], "pytz"),
        {"solver": SOLVERS[0], "package": "pytz", "failures": 1, "attempt": 1, "cause": "error"}
        | {"failed": "2026-11-01T00:00:00Z"},
    ),
}


def ledger_of_every_state(cluster: Harness) -> None:
    data = {}
    for key, fields in ENTRIES.values():
        kind = SOLVER if "solver" in fields else ANALYZER
        data[key] = json.dumps({"kind": kind, "version": "1.0", "index": PYPI, **fields})
    cluster.fake.add(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "graph-refresh-ledger", "namespace": MIDDLETIER},
            "data": data,
        }
    )


def requests_configmap(cluster: Harness) -> None:
    values = {
        "flask-2.0": {"package": "flask", "version": "2.0", "requested_at": "2027-01-15T07:00:00Z", "by": "alice"},
        "r-numpy": {
            "package": "numpy",
            "version": "2.0",
            "index": "https://mirror.example/a-long-path-to-its/simple",
            "requested_at": "2027-01-15T07:59:00Z",
        },
    }
    cluster.fake.add(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "graph-refresh-requests", "namespace": MIDDLETIER},
            "data": {key: json.dumps(value) for key, value in values.items()},
        }
    )


def ok(cluster: Harness, *args: str, env: dict[str, str] | None = None) -> str:
    result = cluster.cli(*args, at=T0, env=env)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_ledger_show_prints_the_same_rows_in_every_output(cluster: Harness) -> None:
    ledger_of_every_state(cluster)
    rows = json.loads(ok(cluster, "ledger", "show", "-o", "json"))
    assert json.loads(ok(cluster, "ledger", "show", "--json")) == rows, "--json is -o json"
    assert json.loads(ok(cluster, "ledger", "show", "--output=json")) == rows
    assert yaml.safe_load(ok(cluster, "ledger", "show", "-o", "yaml")) == rows
    assert ok(cluster, "ledger", "show", "-o", "name").splitlines() == [row["key"] for row in rows]
    assert {row["key"] for row in rows} == {key for key, _ in ENTRIES.values()}

    table = ok(cluster, "ledger", "show").splitlines()
    assert table[0].split() == LEDGER_HEADER
    assert len(table) == 1 + len(ENTRIES)
    assert max(map(len, table)) <= 100

    wide = ok(cluster, "ledger", "show", "-o", "wide").splitlines()
    header = ["ITEM", "STREAM", "PACKAGE", "INDEX", "ATTEMPT", "FAILS", "CAUSE", "FAILED", "MEMORY", "STATE"]
    assert wide[0].split() == header
    retry_key = ENTRIES["retry"][0]
    (line,) = [line for line in wide if line.startswith(retry_key)]
    assert line.split() == [
        retry_key,
        SOLVERS[0],
        "flask==1.0",
        PYPI,
        "1",
        "1",
        "oom",
        "2027-01-15T07:00:00Z",
        "solver=1Gi",
        *["retry", "next", "run:", "attempt", "2"],
    ]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--state", "retry"], ["retry"]),
        (["--state", "backing-off"], ["backing-off"]),
        (["--state", "quarantined"], ["quarantined"]),
        (["--state", "forgotten"], ["forgotten"]),
        (["--state", "expired"], ["expired"]),
        (["--package", "DJANGO"], ["quarantined"]),  # PEP 503: Django, django and DJANGO are one name
        (["--package", "Flask"], ["retry"]),
        (["--analyzer"], ["backing-off"]),
        (["--solver", SOLVERS[0]], ["retry", "expired"]),
        (["--solver", SOLVERS[0], "--state", "expired"], ["expired"]),
    ],
)
def test_ledger_show_filters_by_package_solver_and_state(
    cluster: Harness, args: list[str], expected: list[str]
) -> None:
    ledger_of_every_state(cluster)
    shown = json.loads(ok(cluster, "ledger", "show", "-o", "json", *args))
    assert sorted(row["key"] for row in shown) == sorted(ENTRIES[state][0] for state in expected)
    table = ok(cluster, "ledger", "show", *args).splitlines()
    assert table[0].split() == LEDGER_HEADER
    assert len(table) == 1 + len(expected)


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--package", "nosuch"], "matches --package nosuch (5 entries; ledger show lists them)"),
        (["--solver", "solver-fedora-34-py3"], "(5 entries; did you mean --solver solver-fedora-34-py39?)"),
        (["--analyzer", "--state", "quarantined"], "matches --analyzer --state quarantined (5 entries;"),
    ],
)
def test_ledger_show_that_matches_nothing_exits_1_saying_why(cluster: Harness, args: list[str], said: str) -> None:
    ledger_of_every_state(cluster)
    for output in ("table", "json", "name"):
        result = cluster.cli("ledger", "show", "-o", output, *args, at=T0)
        assert result.exit_code == 1, result.output
        assert result.stdout == ""
        (line,) = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
        assert line.startswith("Error: no entry of the ledger graph-refresh-ledger in namespace 'middletier' ")
        assert said in line


def test_ledger_show_filters_on_an_empty_ledger_exit_1_and_without_filters_0(cluster: Harness) -> None:
    assert "has no entries" in ok(cluster, "ledger", "show")
    assert ok(cluster, "ledger", "show", "-o", "name") == ""
    assert yaml.safe_load(ok(cluster, "ledger", "show", "-o", "yaml")) == []
    filtered = cluster.cli("ledger", "show", "--state", "retry", at=T0)
    assert filtered.exit_code == 1
    assert "has no entries" in filtered.stderr


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["ledger", "show", "-o", "xml"], "'xml' is not one of 'table', 'wide', 'json', 'yaml', 'name'"),
        (["request", "--list", "-o", "csv"], "'csv' is not one of 'table', 'wide', 'json', 'yaml', 'name'"),
        (["explain", "flask==1.0", "-o", "Json"], "'Json' is not one of 'table', 'wide', 'json', 'yaml', 'name'"),
        (["ledger", "show", "--json", "-o", "yaml"], "--json is -o json: give -o yaml or --json, not both"),
        (["ledger", "show", "--state", "retrying"], "'retrying' is not one of 'retry', 'backing-off', "),
        (["ledger", "show", "--solver", SOLVERS[0], "--analyzer"], "--solver and --analyzer exclude each other"),
        (["request", "flask==1.0", "-o", "json"], "-o goes with --list"),
    ],
)
def test_a_bad_output_or_filter_is_a_usage_error_naming_the_choices(
    cluster: Harness, args: list[str], said: str
) -> None:
    result = cluster.cli(*args, at=T0)
    assert result.exit_code == 2, result.output
    assert said in result.stderr
    assert "Traceback" not in result.output


def test_request_list_prints_the_same_rows_in_every_output(cluster: Harness) -> None:
    requests_configmap(cluster)
    rows = json.loads(ok(cluster, "request", "--list", "-o", "json"))
    assert json.loads(ok(cluster, "request", "--list", "--json")) == rows
    assert yaml.safe_load(ok(cluster, "request", "--list", "-o", "yaml")) == rows
    assert ok(cluster, "request", "--list", "-o", "name").splitlines() == ["flask-2.0", "r-numpy"]

    table = ok(cluster, "request", "--list").splitlines()
    assert table[0].split() == ["KEY", "PACKAGE", "INDEX", "BY", "AGE", "STATE"]
    assert table[1].split() == ["flask-2.0", "flask==2.0", PYPI, "alice", "1h", "open"]
    assert "https://mirror.example/a-long-path-to-its/simple" not in table[2], "table cuts the index"

    wide = ok(cluster, "request", "--list", "-o", "wide").splitlines()
    assert wide[0].split() == ["KEY", "PACKAGE", "INDEX", "BY", "REQUESTED", "EXPIRES", "AGE", "STATE"]
    assert wide[1].split() == [
        "flask-2.0",
        "flask==2.0",
        PYPI,
        "alice",
        "2027-01-15T07:00:00Z",
        "2027-01-22T07:00:00Z",
        "1h",
        "open",
    ]
    assert wide[2].split()[2] == "https://mirror.example/a-long-path-to-its/simple", "wide has the index whole"
    assert wide[2].split()[3] == "-"


def test_explain_lists_the_items_jobs_in_every_output(cluster: Harness) -> None:
    cluster.graph(["flask"])
    cluster.run(now=lambda: T0)
    jobs = sorted(cluster.jobs())
    assert len(jobs) == 4

    rows = json.loads(ok(cluster, "explain", "flask==1.0", "-o", "json"))
    assert json.loads(ok(cluster, "explain", "flask==1.0", "--json")) == rows
    assert yaml.safe_load(ok(cluster, "explain", "flask==1.0", "-o", "yaml")) == rows
    assert sorted(ok(cluster, "explain", "flask==1.0", "-o", "name").splitlines()) == [f"job.batch/{j}" for j in jobs]

    table = ok(cluster, "explain", "flask==1.0").splitlines()
    assert table[0] == f"flask==1.0 ({PYPI})"
    assert sum(" in-flight: job=" in line for line in table) == 4
    assert sum(line.strip().startswith("job ") for line in table) == 4, "a line for each Job under its stream"

    wide = ok(cluster, "explain", "flask==1.0", "-o", "wide").splitlines()
    assert not any(line.strip().startswith("job ") for line in wide)
    start = wide.index("") + 1
    assert wide[start].split() == ["JOB", "ATTEMPT", "STATE", "MEMORY", "DEADLINE", "CREATED"]
    listed = {line.split()[0]: line.split()[1:] for line in wide[start + 1 :]}
    assert sorted(listed) == jobs
    for name, cells in listed.items():
        assert cells[:3] == ["1", "in-flight", "1Gi" if name.startswith("solver") else cells[2]]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", cells[-1])
    assert max(map(len, wide)) <= 100


def test_explain_wide_on_a_narrow_terminal_fits_every_line(cluster: Harness) -> None:
    cluster.graph(["flask"])
    cluster.run(now=lambda: T0)
    env = {**cluster.env, "GRAPH_REFRESH_NO_PACKAGE_ANALYZERS": "1"}
    screen = run_app(["explain", "flask==1.0", "-o", "wide"], env, terminal=True, stdout_too=True, width=64)
    lines = screen.replace("\r\n", "\n").rstrip("\n").split("\n")
    assert any(line.startswith("JOB") for line in lines)
    assert sum(line.startswith("solver-") for line in lines) == 3, "each solver's Job, its name cut to fit"
    assert max(map(len, lines)) <= 64, screen


# --- --quiet, --kubeconfig and --context, before or after the command --------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["--quiet", "ledger", "show"],
        ["ledger", "--quiet", "show"],
        ["ledger", "show", "--quiet"],
        ["request", "--list", "--quiet"],
        ["explain", "flask==1.0", "--quiet"],
    ],
)
def test_quiet_is_taken_before_or_after_the_command(cluster: Harness, args: list[str]) -> None:
    cluster.graph(["flask"])
    loud = cluster.cli(*[arg for arg in args if arg != "--quiet"], at=T0)
    assert "Cluster API" in loud.stderr
    quiet = cluster.cli(*args, at=T0)
    assert quiet.exit_code == 0, quiet.output
    assert "Cluster API" not in quiet.stderr
    assert quiet.stdout == loud.stdout


def two_contexts(fake: FakeKube, path: Path) -> Path:
    """A kubeconfig whose current context "elsewhere" names a server nobody runs, and whose context "fake" is
    the stand-in's."""
    fake.kubeconfig(path, namespace=MIDDLETIER)
    document = yaml.safe_load(path.read_text())
    document["clusters"].append({"name": "gone", "cluster": {"server": "https://127.0.0.1:9"}})
    document["contexts"].append({"name": "elsewhere", "context": {"cluster": "gone", "user": "fake-user"}})
    document["current-context"] = "elsewhere"
    path.write_text(yaml.safe_dump(document))
    return path


@pytest.mark.parametrize("after", [False, True], ids=["before", "after"])
def test_kubeconfig_and_context_are_taken_before_or_after_the_command(
    cluster: Harness, tmp_path: Path, after: bool
) -> None:
    ledger_of_every_state(cluster)
    kubeconfig = two_contexts(cluster.fake, tmp_path / "two-contexts")
    env = {"KUBECONFIG": ""}  # unset: only the flag names it
    command = ["ledger", "show", "-o", "name"]

    def run(*options: str) -> Any:
        return cluster.cli(*(command + list(options) if after else list(options) + command), at=T0, env=env)

    shown = run("--kubeconfig", str(kubeconfig), "--context", "fake")
    assert shown.exit_code == 0, shown.output
    assert len(shown.stdout.splitlines()) == len(ENTRIES)
    assert f"credentials from kubeconfig {kubeconfig}, context fake" in shown.stderr

    current = run("--kubeconfig", str(kubeconfig))  # its current context: a server that does not answer
    assert current.exit_code == 1
    assert "127.0.0.1:9" in current.stderr

    missing = run("--kubeconfig", str(kubeconfig), "--context", "nosuch")
    assert missing.exit_code == 1
    assert f"no usable kubeconfig ({kubeconfig}): it has no context 'nosuch'" in missing.stderr

    absent = run("--kubeconfig", str(tmp_path / "nothing-here"))
    assert absent.exit_code == 2
    assert "does not exist" in absent.stderr
