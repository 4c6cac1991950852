"""Alert rules (openshift/prometheus-rules.yaml) checked and unit-tested with Prometheus' own promtool."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from .helpers import ROOT

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
RULES = ROOT / "openshift" / "prometheus-rules.yaml"
UNIT_TESTS = Path(__file__).parent / "alerts" / "graph-refresh-test.yaml"


@pytest.fixture
def rule_file(tmp_path: Path) -> Path:
    """The PrometheusRule's groups as a plain rule file, beside a copy of the unit tests."""
    if not Path(PROMTOOL).exists():
        pytest.fail("promtool is not installed: apt-get install prometheus (.ci/run does)")
    resource = yaml.safe_load(RULES.read_text())
    assert (resource["apiVersion"], resource["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": resource["spec"]["groups"]}))
    shutil.copy(UNIT_TESTS, tmp_path / UNIT_TESTS.name)
    return tmp_path / "rules.yaml"


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


def test_rules_are_valid(rule_file: Path) -> None:
    done = promtool("check", "rules", str(rule_file), cwd=rule_file.parent)
    assert done.returncode == 0, done.stdout + done.stderr


def test_alerts_fire_when_they_should(rule_file: Path) -> None:
    done = promtool("test", "rules", UNIT_TESTS.name, cwd=rule_file.parent)
    assert done.returncode == 0, done.stdout + done.stderr


def test_alerts_use_only_metrics_graph_refresh_pushes(rule_file: Path) -> None:
    text = rule_file.read_text()
    metrics_source = (ROOT / "graph_refresh" / "metrics.py").read_text()
    for name in ("solvers_unscheduled", "package_analyzers_unscheduled", "items_skipped", "retries_at_cap"):
        assert f"graph_refresh_job_{name}_total" in text
        assert f'"graph_refresh_job_{name}"' in metrics_source
    for gauge in ("backlog", "quarantined", "ledger_written", "request_oldest_age_seconds"):
        assert f"graph_refresh_job_{gauge}{{" in text
        assert f'"graph_refresh_job_{gauge}"' in metrics_source
