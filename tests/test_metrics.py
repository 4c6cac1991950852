"""Metrics pushed to a real Prometheus Pushgateway (Debian's prometheus-pushgateway, started per test)."""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from prometheus_client.parser import text_string_to_metric_families

from graph_refresh import __version__, metrics
from graph_refresh.report import Counts, RunReport

from .fakes.kube import FakeKube
from .helpers import SOLVERS, Harness, free_port, names
from .waiting.test_eta import hourly

PUSHGATEWAY = shutil.which("prometheus-pushgateway") or "/usr/bin/prometheus-pushgateway"


@pytest.fixture
def pushgateway(tmp_path: Path) -> Iterator[str]:
    """A real Pushgateway on a free loopback port; fails (not skips) when the package is missing."""
    if not Path(PUSHGATEWAY).exists():
        pytest.fail("prometheus-pushgateway is not installed: apt-get install prometheus-pushgateway (.ci/run does)")
    port = free_port()
    log = (tmp_path / "pushgateway.log").open("w")
    args = [PUSHGATEWAY, f"--web.listen-address=127.0.0.1:{port}", "--persistence.file="]  # memory only
    proc = subprocess.Popen(args, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                urllib.request.urlopen(f"{url}/-/ready", timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


@pytest.fixture
def cluster(
    run_cli: Callable[..., Result], tmp_path: Path, write_graph: Callable[[dict[str, Any]], Path]
) -> Iterator[Harness]:
    """The example cluster (tests/helpers.py's Harness), over TLS."""
    with FakeKube(tls="tls") as fake:
        yield Harness(fake, run_cli, tmp_path, write_graph)


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Samples the Pushgateway holds for job graph-refresh, keyed by (name, labels without job/instance)."""
    text = urllib.request.urlopen(f"{url}/metrics", timeout=5).read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("job") != "graph-refresh":
                continue
            labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k not in ("job", "instance")))
            samples[(sample.name, labels)] = sample.value
    return samples


def a_report() -> RunReport:
    report = RunReport(dry_run=False, store="sqlite", duration_seconds=12.5)
    report.solvers["solver-ubi-8-py38"] = Counts(examined=10, scheduled=6, failed=1)
    report.solvers["solver-ubi-8-py38"].skipped.update({"in-flight": 2, "invalid": 1})
    report.analyzer = Counts(examined=4, scheduled=3, already_scheduled=1)
    report.in_flight.update({"solver": 7, "package-analyzer": 2})
    return report


def test_every_metric_of_the_run_reaches_the_pushgateway(pushgateway: str) -> None:
    assert metrics.push(a_report(), url=pushgateway, deployment_name="thoth-prod")
    samples = scrape(pushgateway)
    expected = {
        ("graph_refresh_job_runtime_seconds", ()): 12.5,
        ("thoth_graph_refresh_job_info", (("env", "thoth-prod"), ("version", __version__))): 1,
        ("graph_refresh_job_packages_added_total", ()): 14,
        ("graph_refresh_job_solvers_scheduled_total", (("solver", "solver-ubi-8-py38"),)): 6,
        ("graph_refresh_job_solvers_unscheduled_total", (("solver", "solver-ubi-8-py38"),)): 1,
        ("graph_refresh_job_package_analyzers_scheduled_total", ()): 3,
        ("graph_refresh_job_package_analyzers_unscheduled_total", ()): 0,
        (
            "graph_refresh_job_items_skipped_total",
            (("kind", "solver"), ("reason", "in-flight"), ("solver", "solver-ubi-8-py38")),
        ): 2,
        (
            "graph_refresh_job_items_skipped_total",
            (("kind", "solver"), ("reason", "invalid"), ("solver", "solver-ubi-8-py38")),
        ): 1,
        ("graph_refresh_job_in_flight", (("kind", "solver"),)): 7,
        ("graph_refresh_job_in_flight", (("kind", "package-analyzer"),)): 2,
    }
    for key, value in expected.items():
        assert samples.get(key) == value, key


def test_backlog_retries_and_quarantine_reach_the_pushgateway(pushgateway: str) -> None:
    report = a_report()
    ubi = report.solvers["solver-ubi-8-py38"]
    ubi.backlog, ubi.quarantined = 900, 4
    ubi.retried.update({"oom": 2, "disrupted": 1})
    ubi.at_cap["oom"] = 1
    report.solvers["solver-fedora-34-py39"] = Counts(examined=1, scheduled=1, backlog=None)
    report.analyzer.backlog = 0
    assert metrics.push(report, url=pushgateway, deployment_name="thoth-prod")
    samples = scrape(pushgateway)

    def stream(kind: str, solver: str, **more: str) -> tuple[tuple[str, str], ...]:
        return tuple(sorted({"kind": kind, "solver": solver, **more}.items()))

    ubi_labels, analyzer = stream("solver", "solver-ubi-8-py38"), stream("package-analyzer", "")
    assert samples[("graph_refresh_job_backlog", ubi_labels)] == 900
    assert samples[("graph_refresh_job_backlog", analyzer)] == 0, "an empty backlog is a value"
    assert ("graph_refresh_job_backlog", stream("solver", "solver-fedora-34-py39")) not in samples, "not counted"
    retries = {
        cause: samples[("graph_refresh_job_retries_total", stream("solver", "solver-ubi-8-py38", cause=cause))]
        for cause in ("disrupted", "oom", "deadline", "error")
    }
    assert retries == {"disrupted": 1, "oom": 2, "deadline": 0, "error": 0}
    at_cap = {
        cause: samples[("graph_refresh_job_retries_at_cap_total", stream("solver", "solver-ubi-8-py38", cause=cause))]
        for cause in ("oom", "deadline")
    }
    assert at_cap == {"oom": 1, "deadline": 0}
    assert samples[("graph_refresh_job_retries_total", stream("package-analyzer", "", cause="oom"))] == 0
    assert samples[("graph_refresh_job_quarantined", ubi_labels)] == 4
    assert samples[("graph_refresh_job_quarantined", analyzer)] == 0


def test_a_successful_push_is_logged_once(pushgateway: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    assert metrics.push(a_report(), url=pushgateway, deployment_name="thoth-prod")
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [(logging.INFO, f"Pushed metrics to {pushgateway}")]


def test_a_run_logs_its_push_once(cluster: Harness, pushgateway: str) -> None:
    cluster.graph(["flask"])
    for _ in range(2):  # a second run in the same process logs no more than the first
        result, _ = cluster.run(env={"PROMETHEUS_PUSHGATEWAY_URL": pushgateway})
        assert result.exit_code == 0, result.stderr
        assert result.stderr.count("Pushed metrics") == 1, result.stderr


def test_a_failed_push_is_logged_and_returns_false(caplog: pytest.LogCaptureFixture) -> None:
    url = f"http://user:topsecret@127.0.0.1:{free_port()}"
    assert metrics.push(a_report(), url=url, deployment_name="x") is False
    assert "Could not push metrics" in caplog.text
    assert "topsecret" not in caplog.text


def test_a_real_run_pushes_its_metrics_and_a_dead_gateway_changes_no_exit_code(
    cluster: Harness, pushgateway: str
) -> None:
    cluster.graph(["flask", "numpy"])
    result, report = cluster.run(env={"PROMETHEUS_PUSHGATEWAY_URL": pushgateway})
    assert result.exit_code == 0, result.stderr
    samples = scrape(pushgateway)
    for solver, counts in report["solvers"].items():
        assert samples[("graph_refresh_job_solvers_scheduled_total", (("solver", solver),))] == counts["scheduled"]
    assert samples[("graph_refresh_job_package_analyzers_scheduled_total", ())] == 2

    cluster.graph(["pytz"])
    dead = f"http://127.0.0.1:{free_port()}"
    result, report = cluster.run(env={"PROMETHEUS_PUSHGATEWAY_URL": dead})
    assert result.exit_code == 0
    assert report["exit_code"] == 0
    assert "Could not push metrics" in result.stderr


def test_a_run_that_cannot_write_its_ledger_pushes_a_zero_gauge(cluster: Harness, pushgateway: str) -> None:
    cluster.graph(["flask"])
    env = {"PROMETHEUS_PUSHGATEWAY_URL": pushgateway}
    result, report = cluster.run(env=env)
    assert result.exit_code == 0
    assert report["ledger"] == {"written": True}
    assert scrape(pushgateway)[("graph_refresh_job_ledger_written", ())] == 1
    cluster.fake.inject(method="PUT", path=r"/configmaps/graph-refresh-ledger$", status=403, times=None)
    result, report = cluster.run(env=env)
    assert result.exit_code == 0
    assert report["ledger"]["written"] is False
    assert "403" in report["ledger"]["reason"]
    assert scrape(pushgateway)[("graph_refresh_job_ledger_written", ())] == 0


def test_a_dry_run_pushes_nothing(cluster: Harness, pushgateway: str) -> None:
    cluster.graph(["flask"])
    result, _ = cluster.run("--dry-run", env={"PROMETHEUS_PUSHGATEWAY_URL": pushgateway})
    assert result.exit_code == 0
    assert not any(name == "graph_refresh_job_runtime_seconds" for name, _ in scrape(pushgateway))


def test_a_run_with_requests_pushes_lanes_and_requests(cluster: Harness, pushgateway: str) -> None:
    cluster.graph(["flask", "numpy"])
    filed = cluster.cli("request", "numpy==1.0", at=1_800_000_000.0 - 600)
    assert filed.exit_code == 0, filed.stderr
    env = {"PROMETHEUS_PUSHGATEWAY_URL": pushgateway}
    result, report = cluster.run("--max-in-flight", "5", env=env, now=lambda: 1_800_000_000.0)
    assert result.exit_code == 0, result.stderr
    samples = scrape(pushgateway)
    assert samples[("graph_refresh_job_requests_open", ())] == report["requests"]["open"] == 1
    assert samples[("graph_refresh_job_request_oldest_age_seconds", ())] == 600
    by_lane = {
        (dict(labels)["solver"], dict(labels)["lane"]): value
        for (name, labels), value in samples.items()
        if name == "graph_refresh_job_scheduled_by_lane_total"
    }
    assert sum(v for (_, lane), v in by_lane.items() if lane == "requested") == 4, (
        "numpy for 3 solvers and the analyzer"
    )
    assert sum(v for (_, lane), v in by_lane.items() if lane == "backlog") == 1
    assert by_lane[("", "requested")] == 1
    assert by_lane[("", "fresh")] == 0
    assert ("graph_refresh_job_request_done_seconds_count", ()) in samples, "pushed with no request done yet"
    assert samples[("graph_refresh_job_request_done_seconds_count", ())] == 0


def test_a_done_request_is_observed_from_requested_at_to_the_run_that_found_it_done(
    cluster: Harness, pushgateway: str
) -> None:
    t0 = 1_800_000_000.0
    cluster.graph(["flask"])
    cluster.cli("request", "flask==1.0", at=t0 - 600)
    env = {"PROMETHEUS_PUSHGATEWAY_URL": pushgateway, "GRAPH_REFRESH_NO_PACKAGE_ANALYZERS": "1"}
    cluster.run(env=env, now=lambda: t0)
    flask = {"package_name": "flask", "package_version": "1.0", "index_url": "https://pypi.org/simple"}
    cluster.import_graph({"solved": [{**flask, "solver": solver} for solver in SOLVERS]})
    result, report = cluster.run(env=env, now=lambda: t0 + 3 * 3600)
    assert result.exit_code == 0, result.stderr
    assert report["requests"]["done"] == 1
    samples = scrape(pushgateway)
    assert samples[("graph_refresh_job_request_done_seconds_count", ())] == 1
    assert samples[("graph_refresh_job_request_done_seconds_sum", ())] == 3 * 3600 + 600
    assert samples[("graph_refresh_job_request_done_seconds_bucket", (("le", "10800"),))] == 0
    assert samples[("graph_refresh_job_request_done_seconds_bucket", (("le", "14400"),))] == 1


def test_a_run_that_scores_windows_pushes_the_scores(cluster: Harness, pushgateway: str) -> None:
    cluster.graph(names(200))
    hourly(cluster, 5, "--max-in-flight", "6")
    (report,) = hourly(cluster, 1, "--max-in-flight", "6", first=5, env={"PROMETHEUS_PUSHGATEWAY_URL": pushgateway})
    assert report["eta"]["scored"] == report["eta"]["inside"] > 0
    samples = scrape(pushgateway)
    inside = samples[("graph_refresh_job_eta_scored_total", (("lane", "backlog"), ("result", "inside")))]
    assert inside == report["eta"]["inside"]
    assert samples[("graph_refresh_job_eta_scored_total", (("lane", "backlog"), ("result", "late")))] == 0
    last_day = samples[("graph_refresh_job_eta_scored_last_day", (("result", "inside"),))]
    assert last_day >= inside, "this run's scores and the earlier runs' of the last day"
    assert samples[("graph_refresh_job_eta_scored_last_day", (("result", "late"),))] == 0
