"""A dry run does only what it shows: without an output folder it renders no Job, and plans what it would with one.

Each stream's Template is rendered once before planning (what one of its Jobs costs) and a retry's Job is priced
with its own resources as the planner goes; the planned Jobs themselves are rendered only to be written.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import Result

from .fakes.kube import FakeKube
from .helpers import (
    EXAMPLE_TEMPLATES,
    HOUR,
    MIDDLETIER,
    SOLVER_NAME,
    T0,
    Harness,
    assert_balanced,
    memory,
    oom,
    quota,
    version,
)

Obj = dict[str, Any]
RunCli = Callable[..., Result]


def without_timing(report: Obj) -> Obj:
    return {key: value for key, value in report.items() if key != "duration_seconds"}


def dry_runs(run: Callable[..., tuple[Result, Obj]], out: Path, *args: str) -> tuple[Obj, Obj]:
    """The reports of the same dry run without an output folder, then with one (its manifests in ``out``)."""
    lean_result, lean = run("--dry-run", *args)
    written_result, written = run("--dry-run", *args, "--output-dir", str(out))
    assert lean_result.exit_code == written_result.exit_code == 0, (lean_result.stderr, written_result.stderr)
    assert_balanced(lean)
    return lean, written


def test_without_an_output_folder_no_planned_job_is_rendered(
    run_cli: RunCli, tmp_path: Path, template_dir: Callable[..., Path], write_graph: Callable[[Obj], Path]
) -> None:
    def clash_on_flask(docs: dict[str, dict[str, Any]]) -> None:  # renders for any package but flask
        job = docs["package-analyzer.yaml"]["objects"][0]
        job["metadata"]["annotations"] = {"${THOTH_PACKAGE_ANALYZER_PACKAGE_NAME}": "a", "flask": "b"}

    run_cli(["import-graph", str(write_graph({"package_versions": [version("flask", "1.0")]}))])
    args = ["--dry-run", "--no-solvers", "--template-dir", str(template_dir(clash_on_flask))]
    report_path = tmp_path / "report.json"

    result = run_cli([*args, "--report", str(report_path)])
    report = json.loads(report_path.read_text())
    assert result.exit_code == 0, result.stderr
    assert report["totals"]["package-analyzer"]["scheduled"] == 1
    assert report["failures"] == []

    result = run_cli([*args, "--report", str(report_path), "--output-dir", str(tmp_path / "out")])
    report = json.loads(report_path.read_text())
    assert result.exit_code == 1
    assert report["totals"]["package-analyzer"]["failed"] == 1


@pytest.mark.parametrize("caps", [["--max-in-flight", "0"], ["--max-in-flight", "7"], ["--eager-stop", "2"]])
def test_the_report_is_the_same_with_and_without_an_output_folder(
    caps: list[str], run_cli: RunCli, tmp_path: Path, sample_store: None
) -> None:
    runs = iter(range(100))

    def run(*args: str) -> tuple[Result, Obj]:
        path = tmp_path / f"report-{next(runs)}.json"
        result = run_cli(["--template-dir", str(EXAMPLE_TEMPLATES), "--report", str(path), *args])
        return result, json.loads(path.read_text())

    lean, written = dry_runs(run, tmp_path / "out", *caps)
    assert without_timing(lean) == without_timing(written)
    scheduled = sum(counts["scheduled"] for counts in lean["totals"].values())
    assert scheduled
    assert scheduled == len(list((tmp_path / "out").glob("*.yaml")))


@pytest.fixture
def cluster(run_cli: RunCli, tmp_path: Path, write_graph: Callable[[Obj], Path]) -> Iterator[Harness]:
    with FakeKube(tls="tls") as fake:
        yield Harness.flask_solvers(fake, run_cli, tmp_path, write_graph)


@pytest.mark.parametrize(("free", "scheduled"), [("1536Mi", False), ("2Gi", True)])
def test_a_retry_is_priced_with_its_escalated_resources_with_or_without_an_output_folder(
    free: str, scheduled: bool, cluster: Harness, tmp_path: Path
) -> None:
    result, _ = cluster.run_at(T0)  # creates the three solvers' Jobs of flask (1Gi each)
    assert result.exit_code == 0, result.stderr
    cluster.fail(cluster.job(1), at=T0 + 600, pod_status=oom())  # its retry asks for 2Gi
    used = {"1536Mi": "6656Mi", "2Gi": "6Gi"}[free]
    cluster.fake.add(quota("memory", {"requests.memory": "8Gi"}, {"requests.memory": used}))

    jobs = len(cluster.fake.objects("jobs", MIDDLETIER))

    lean, written = dry_runs(lambda *args: cluster.run_at(T0 + HOUR, *args), tmp_path / "out")

    assert without_timing(lean) == without_timing(written)
    counts = lean["solvers"][SOLVER_NAME]
    if scheduled:
        assert counts["scheduled"] == 1
        assert counts["retried"]["oom"] == 1
        [manifest] = (tmp_path / "out").glob("*.yaml")
        assert memory(yaml.safe_load(manifest.read_text())) == ("2Gi", "2Gi")
    else:  # the Template's 1Gi would fit; the retry's 2Gi does not
        assert counts["scheduled"] == 0
        assert counts["skipped"]["capacity"] == 1
    assert len(cluster.fake.objects("jobs", MIDDLETIER)) == jobs  # a dry run creates nothing
