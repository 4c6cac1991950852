"""The README's "Operating graph-refresh", run verbatim with bash, kubectl and the installed commands against the
stand-in: its blocks go, one after another, into one bash in a folder laid out like a checkout after
``scripts/setup.sh --dev`` (its ``.venv/bin`` holds the project's Python and the commands pyproject.toml
declares), and after each block the test checks what the block printed."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from .helpers import ROOT
from .test_walkthrough import Shell

pytestmark = pytest.mark.timeout(300)

TITLE = "Operating graph-refresh"
CHECKOUT = ("app.py", "graph_refresh", "tests", "openshift", "data")  # what the blocks use, beside .venv
DEADLINE_JOB = "solver-fedora-34-py39-b2c23e014e"  # the Jobs of requests==2.34.2 the README ends
ERROR_JOB = "solver-rhel-9-py311-5ad8f5127b"
THIRD_JOB = "solver-ubi-8-py38-e3b6d25f87"  # its share gives the request every solver, whatever the hour's order


def blocks() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index(f"\n## {TITLE}\n")
    end = readme.find("\n## ", start + 1)
    return re.findall(r"```sh\n(.*?)```", readme[start:end], re.S)


@pytest.fixture
def checkout(tmp_path: Path, installed: Path) -> Path:
    """A folder laid out like the checkout after ``scripts/setup.sh --dev``: ``.venv`` is the project's, its
    ``bin`` also holding the installed ``graph-refresh`` and ``kubectl-graph_refresh``."""
    work = tmp_path / "checkout"
    (work / ".venv" / "bin").mkdir(parents=True)
    for name in CHECKOUT:
        (work / name).symlink_to(ROOT / name)
    venv = ROOT / ".venv"
    for entry in venv.iterdir():
        if entry.name != "bin":
            (work / ".venv" / entry.name).symlink_to(entry)
    entries = {entry.name: entry for entry in (venv / "bin").iterdir()}  # setup.sh may have installed them too:
    entries |= {entry.name: entry for entry in (installed / "bin").iterdir()}  # the build under test wins
    for name, entry in entries.items():
        (work / ".venv" / "bin" / name).symlink_to(entry)
    return work


@pytest.fixture
def shell(checkout: Path, installed: Path) -> Iterator[Shell]:
    env = {**os.environ, "PYTHONPATH": str(installed)}  # where the installed commands find the package
    env.pop("GRAPH_REFRESH_SQLITE_PATH", None)  # none set, as for a user
    session = Shell(checkout, env)
    yield session
    session.close()


def test_the_operating_section_runs_verbatim_and_does_what_it_says(checkout: Path, shell: Shell) -> None:
    start, requests, plan, explain, fail, ledger, plugin, completion, stop = blocks()

    output, _ = shell.run(start)
    assert "Imported data/sample-graph.json" in output
    assert "INFO" not in output, "--quiet after the command"

    output, _ = shell.run(requests)
    assert "Requested requests==2.34.2 (https://pypi.org/simple) as key r-" in output
    assert "Requested click==8.5.1" in output
    listed = [line.split() for line in output.splitlines() if line.startswith("r-")]
    assert [row[1] for row in listed] == ["requests==2.34.2", "click==8.5.1", "requests==2.34.2"]
    assert "Cancelled: removed 1 key" in output
    assert re.search(r"^KEY +PACKAGE +INDEX +BY +REQUESTED +EXPIRES +AGE +STATE$", output, re.M)

    output, _ = shell.run(plan)
    assert re.search(r"^solver-fedora-34-py39 +\d+ +\d+ ", output, re.M), "the dry run's plan table"
    jobs = re.findall(r"^(\S+) +(?:Running +)?0/1 ", output, re.M)
    assert len(jobs) == 8
    assert {DEADLINE_JOB, ERROR_JOB, THIRD_JOB} <= set(jobs)

    output, _ = shell.run(explain)
    assert re.search(rf"^  solver-fedora-34-py39 +in-flight: job={DEADLINE_JOB}, since=", output, re.M)
    assert re.search(rf"^    job {DEADLINE_JOB}: attempt=1, state=in-flight, memory=1Gi, deadline=3600$", output, re.M)
    assert re.search(rf"^  solver-ubi-8-py38 +in-flight: job={THIRD_JOB}, since=", output, re.M)
    assert re.search(r"^  package-analyzer +analyzed$", output, re.M)
    assert re.search(r"^JOB +ATTEMPT +STATE +MEMORY +DEADLINE +CREATED$", output, re.M)
    assert re.search(rf"^{ERROR_JOB} +1 +in-flight +1Gi +3600 +\d{{4}}-", output, re.M)
    found = sorted(re.findall(r"^(\S+) +(?:Running +)?0/1 ", output, re.M))
    assert found == sorted([DEADLINE_JOB, ERROR_JOB, THIRD_JOB]), "kubectl get"

    output, _ = shell.run(fail)
    assert re.search(r"solver: \d+ examined, 4 scheduled \(1 retry\)", " ".join(output.split())), "a retry"

    output, _ = shell.run(ledger)
    error_key, deadline_key = ERROR_JOB.rsplit("-", 1)[1], DEADLINE_JOB.rsplit("-", 1)[1]
    entry = r" +solver-\S+ +requests==\S+ +1 +"  # the stream and the package, cut to fit, and one failure
    assert re.search(rf"^{deadline_key}{entry}deadline +retry next run: attempt 2$", output, re.M)
    assert re.search(rf"^{error_key}{entry}error +backing off until ", output, re.M)
    assert re.search(rf"^{error_key}$", output, re.M), "-o name"
    assert "  cause: deadline\n" in output
    assert "  cause: error\n" in output, "-o yaml"
    assert "did you mean --solver solver-rhel-9-py311?" in output
    assert "nothing matched: 1" in output
    assert f"forgot {error_key}: solver-rhel-9-py311 requests==2.34.2" in output

    output, _ = shell.run(plugin)
    assert "INFO" not in output, "--quiet after the command, through kubectl"
    assert re.search(r"^ITEM +STREAM +PACKAGE +INDEX +ATTEMPT +FAILS +CAUSE +FAILED +MEMORY +STATE$", output, re.M)
    assert re.search(rf"^{error_key} .* 0 +- .* forgotten: attempt 2 from the Template next run$", output, re.M)
    assert re.search(rf"^{deadline_key} .* solver=1Gi +retry next run: attempt 2$", output, re.M)

    shell.run(completion)
    output, _ = shell.run(
        "complete -p graph-refresh\n"
        "COMP_WORDS=(.venv/bin/graph-refresh ledger show --state ''); COMP_CWORD=4\n"
        '_graph_refresh_completion .venv/bin/graph-refresh; echo "offered: ${COMPREPLY[*]}"'
    )
    assert "-F _graph_refresh_completion graph-refresh" in output
    assert "offered: retry backing-off quarantined forgotten expired" in output

    _, state = shell.run(stop)
    assert state["kube"]
