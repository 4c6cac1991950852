"""Opt-in: a dry run against a real cluster (GRAPH_REFRESH_TEST_KUBECONFIG), which reads and never writes.

Set GRAPH_REFRESH_TEST_KUBECONFIG to a kubeconfig, and GRAPH_REFRESH_TEST_INFRA / GRAPH_REFRESH_TEST_MIDDLETIER
to namespaces holding the solver and package-analyzer Templates and the Jobs (defaults: infra, middletier).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

from .helpers import SAMPLE_GRAPH

KUBECONFIG = os.environ.get("GRAPH_REFRESH_TEST_KUBECONFIG", "")


@pytest.mark.live
@pytest.mark.skipif(not KUBECONFIG, reason="set GRAPH_REFRESH_TEST_KUBECONFIG to run against a real cluster")
def test_dry_run_against_a_real_cluster(run_cli: Callable[..., Result], tmp_path: Path) -> None:
    assert run_cli(["import-graph", str(SAMPLE_GRAPH)]).exit_code == 0
    env = {
        "KUBECONFIG": KUBECONFIG,
        "THOTH_INFRA_NAMESPACE": os.environ.get("GRAPH_REFRESH_TEST_INFRA", "infra"),
        "THOTH_MIDDLETIER_NAMESPACE": os.environ.get("GRAPH_REFRESH_TEST_MIDDLETIER", "middletier"),
    }
    report_path = tmp_path / "report.json"
    args = ["--dry-run", "--eager-stop", "5", "--output-dir", str(tmp_path / "out"), "--report", str(report_path)]
    result = run_cli(args, env=env)
    assert result.exit_code == 0, result.stderr
    report = json.loads(report_path.read_text())
    assert report["totals"]["solver"]["scheduled"] + report["totals"]["package-analyzer"]["scheduled"] > 0
    assert len(list((tmp_path / "out").iterdir())) > 0
