"""Learning from how Jobs end (docs/learning.md), end to end: the CLI against FakeKube, hourly runs one after another.

A first run creates the Jobs; the test then ends some of them as the Job controller and the kubelet
would (a Failed condition, pods with OOMKilled containers, an eviction, a deadline), and the next runs
must come back with the right attempt, name and resources, or leave the item alone.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from graph_refresh.items import ANALYZER, SOLVER, Candidate, WorkItem

from .fakes.kube import FakeKube
from .helpers import (
    HOUR,
    INFRA,
    LEDGER_PATH,
    MIDDLETIER,
    PYPI,
    ROOT,
    SOLVER_NAME,
    T0,
    Harness,
    RunCli,
    another_writer_first,
    ledger,
    memory,
    oom,
    version,
)

Obj = dict[str, Any]


@pytest.fixture
def cluster(run_cli: RunCli, tmp_path: Path, write_graph: Callable[[Obj], Path]) -> Iterator[Harness]:
    with FakeKube(tls="tls") as fake:
        yield Harness.flask_solvers(fake, run_cli, tmp_path, write_graph)


def test_an_item_oom_killed_twice_comes_back_with_four_times_the_memory(cluster: Harness) -> None:
    result, report = cluster.run_at(T0)
    assert result.exit_code == 0, result.stderr
    first = cluster.job(1)
    assert memory(first) == ("1Gi", "1Gi")
    assert first["metadata"]["labels"]["thoth-station.ninja/attempt"] == "1"
    assert (
        first["spec"]["template"]["metadata"]["labels"]["thoth-station.ninja/item"]
        == first["metadata"]["labels"]["thoth-station.ninja/item"]
    ), "the pods carry our labels"

    cluster.fail(first, at=T0 + 600, pod_status=oom())
    result, report = cluster.run_at(T0 + HOUR)
    assert result.exit_code == 0, result.stderr
    second = cluster.job(2)
    assert memory(second) == ("2Gi", "2Gi")
    assert second["metadata"]["labels"]["thoth-station.ninja/attempt"] == "2"
    assert (
        second["metadata"]["labels"]["thoth-station.ninja/item"]
        == first["metadata"]["labels"]["thoth-station.ninja/item"]
    )
    assert report["solvers"][SOLVER_NAME]["retried"]["oom"] == 1

    cluster.fail(second, at=T0 + HOUR + 600, pod_status=oom())
    result, report = cluster.run_at(T0 + 2 * HOUR)
    assert memory(cluster.job(3)) == ("4Gi", "4Gi")
    assert report["solvers"][SOLVER_NAME]["retried"]["oom"] == 1

    result, report = cluster.run_at(T0 + 3 * HOUR)  # attempt 3 still runs: nothing new
    assert report["solvers"][SOLVER_NAME]["skipped"] == {"in-flight": 1}


def test_an_oom_retry_stops_at_max_memory_and_says_so(cluster: Harness) -> None:
    cluster.run_at(T0)
    cluster.fail(cluster.job(1), at=T0 + 600, pod_status=oom())
    _, report = cluster.run_at(T0 + HOUR, env={"THOTH_GRAPH_REFRESH_MAX_MEMORY": "1536Mi"})
    assert memory(cluster.job(2)) == ("1536Mi", "1536Mi")
    assert report["solvers"][SOLVER_NAME]["retries_at_cap"]["oom"] == 1


def test_an_evicted_job_is_retried_at_once_with_the_same_resources_and_not_charged(cluster: Harness) -> None:
    cluster.run_at(T0)
    cluster.fail(cluster.job(1), at=T0 + 600, pod_status={"phase": "Failed", "reason": "Evicted"})
    _, report = cluster.run_at(T0 + HOUR, env={"THOTH_GRAPH_REFRESH_MAX_ATTEMPTS": "1"})
    assert memory(cluster.job(2)) == ("1Gi", "1Gi")
    assert report["solvers"][SOLVER_NAME]["retried"]["disrupted"] == 1


def test_a_deadline_kill_comes_back_with_a_longer_deadline(cluster: Harness) -> None:
    cluster.run_at(T0)
    first = cluster.job(1)
    cluster.fail(first, at=T0 + 600, reason="DeadlineExceeded")
    cluster.run_at(T0 + HOUR)
    assert cluster.job(2)["spec"]["activeDeadlineSeconds"] == 2 * first["spec"]["activeDeadlineSeconds"]


def test_an_error_backs_off_then_is_retried_then_quarantined(cluster: Harness) -> None:
    env = {"THOTH_GRAPH_REFRESH_MAX_ATTEMPTS": "2", "THOTH_GRAPH_REFRESH_RETRY_BACKOFF": "7200"}
    cluster.run_at(T0, env=env)
    cluster.fail(cluster.job(1), at=T0 + 600)  # pods gone: an error
    _, report = cluster.run_at(T0 + HOUR, env=env)
    assert report["solvers"][SOLVER_NAME]["skipped"] == {"failed-recently": 1}, "inside the back-off"
    _, report = cluster.run_at(T0 + 2 * HOUR + 600, env=env)
    assert report["solvers"][SOLVER_NAME]["retried"]["error"] == 1
    cluster.fail(cluster.job(2), at=T0 + 2 * HOUR + 900)
    _, report = cluster.run_at(T0 + 3 * HOUR, env=env)
    assert report["solvers"][SOLVER_NAME]["skipped"] == {"quarantined": 1}
    assert report["quarantined_total"] == 1
    (entry,) = report["quarantined"]
    assert entry["package"] == "flask"
    assert entry["failures"] == 2
    assert entry["last_cause"] == "error"
    assert entry["solver"] == SOLVER_NAME
    assert entry["until"].endswith("Z")


def test_the_ledger_remembers_failures_after_the_ttl_removed_the_jobs(cluster: Harness) -> None:
    env = {"THOTH_GRAPH_REFRESH_MAX_ATTEMPTS": "2", "THOTH_GRAPH_REFRESH_RETRY_BACKOFF": "60"}
    cluster.run_at(T0, env=env)
    first = cluster.job(1)
    cluster.fail(first, at=T0 + 600)
    cluster.run_at(T0 + HOUR, env=env)  # learns, retries (the back-off was a minute)
    cluster.fake.delete("jobs", MIDDLETIER, first["metadata"]["name"])  # the TTL controller removed it
    (entry,) = ledger(cluster).values()
    assert entry["failures"] == 1
    assert entry["attempt"] == 1
    assert entry["cause"] == "error"
    assert entry["package"] == "flask"
    assert entry["solver"] == SOLVER_NAME

    second = cluster.job(2)
    cluster.fail(second, at=T0 + HOUR + 600)
    cluster.run_at(T0 + 2 * HOUR, env=env)
    cluster.fake.delete("jobs", MIDDLETIER, second["metadata"]["name"])
    _, report = cluster.run_at(T0 + 3 * HOUR, env=env)  # no failed Job left in the cluster
    assert report["solvers"][SOLVER_NAME]["skipped"] == {"quarantined": 1}
    assert report["quarantined_total"] == 1

    key = first["metadata"]["labels"]["thoth-station.ninja/item"]
    configmap = cluster.fake.get("configmaps", MIDDLETIER, "graph-refresh-ledger")
    assert configmap is not None
    del configmap["data"][key]  # an operator clears the item (oc patch ... remove /data/<key>)
    cluster.fake.add(configmap)
    _, report = cluster.run_at(T0 + 4 * HOUR, env=env)
    assert report["solvers"][SOLVER_NAME]["scheduled"] == 1, "a cleared item starts again at attempt 1"


def test_a_dry_run_and_a_server_dry_run_write_no_ledger(cluster: Harness) -> None:
    cluster.run_at(T0)
    cluster.fail(cluster.job(1), at=T0 + 600, pod_status=oom())
    before = ledger(cluster)
    writes = len([r for r in cluster.fake.requests if "configmaps" in r.path and r.method != "GET"])
    for mode in ("--dry-run", "--server-dry-run"):
        result, report = cluster.run_at(T0 + HOUR, mode)
        assert result.exit_code == 0, result.stderr
        assert report["dry_run"] is True
        assert report["solvers"][SOLVER_NAME]["retried"]["oom"] == 1
        assert report["server_dry_run"] is (mode == "--server-dry-run")
        assert f"graph-refresh {mode[2:].replace('-', ' ')} finished" in result.stderr
    assert ledger(cluster) == before == {}
    assert len([r for r in cluster.fake.requests if "configmaps" in r.path and r.method != "GET"]) == writes
    posts = cluster.fake.requests_for("POST", r"/jobs$")
    assert posts[-1].query.get("dryRun") == ["All"], "the server dry run sent the retry with dryRun=All"
    assert posts[-1].body["metadata"]["labels"]["thoth-station.ninja/attempt"] == "2"
    assert len(cluster.fake.objects("jobs", MIDDLETIER)) == 3, "and nothing was stored"


def quarantined_after_two_ooms(cluster: Harness, env: dict[str, str]) -> None:
    """Run until the item is quarantined, its two failed Jobs still in the cluster."""
    cluster.run_at(T0, env=env)
    cluster.fail(cluster.job(1), at=T0 + 600, pod_status=oom())
    cluster.run_at(T0 + HOUR, env=env)
    cluster.fail(cluster.job(2), at=T0 + HOUR + 600, pod_status=oom())
    _, report = cluster.run_at(T0 + 2 * HOUR, env=env)
    assert report["solvers"][SOLVER_NAME]["skipped"] == {"quarantined": 1}


def test_ledger_forget_clears_the_item_for_good_while_its_failed_jobs_remain(cluster: Harness) -> None:
    env = {"THOTH_GRAPH_REFRESH_MAX_ATTEMPTS": "2"}
    quarantined_after_two_ooms(cluster, env)
    forgot = cluster.cli("ledger", "forget", "Flask==1.0", "--solver", SOLVER_NAME, at=T0 + 2 * HOUR + 60)
    assert forgot.exit_code == 0, forgot.stderr
    assert "1 entry of graph-refresh-ledger in namespace 'middletier' forgotten" in forgot.stdout
    for hour in (3, 4):  # it sticks: the failed Jobs still present are not learned again
        result, report = cluster.run_at(T0 + hour * HOUR, env=env)
        assert result.exit_code == 0
        assert report["quarantined_total"] == 0
    counts = report["solvers"][SOLVER_NAME]
    assert counts["skipped"] == {"in-flight": 1}
    fresh = cluster.job(3)  # past the failed Jobs' names, so no 409 against a Job the TTL has not removed
    assert memory(fresh) == ("1Gi", "1Gi"), "a fresh start: the Template's resources"
    (entry,) = ledger(cluster).values()
    assert (entry["failures"], entry["attempt"], entry["cause"]) == (0, 2, None)
    assert "memory" not in entry

    cluster.fail(fresh, at=T0 + 4 * HOUR + 60, pod_status=oom())  # and learning goes on from there
    cluster.run_at(T0 + 5 * HOUR, env=env)
    assert memory(cluster.job(4)) == ("2Gi", "2Gi")


def test_deleting_the_ledger_forgets_everything_and_the_failed_jobs_present_are_learned_again(
    cluster: Harness,
) -> None:
    env = {"THOTH_GRAPH_REFRESH_MAX_ATTEMPTS": "2"}
    quarantined_after_two_ooms(cluster, env)
    assert cluster.fake.delete("configmaps", MIDDLETIER, "graph-refresh-ledger")
    result, report = cluster.run_at(T0 + 3 * HOUR, env=env)
    assert result.exit_code == 0
    assert report["solvers"][SOLVER_NAME]["skipped"] == {"quarantined": 1}
    (entry,) = ledger(cluster).values()
    assert (entry["failures"], entry["attempt"]) == (2, 2)


def oom_ladder(cluster: Harness, runs: list[float], failures: list[float]) -> list[tuple[str, str]]:
    """Run at each time of ``runs``; after each run but the last, OOM-kill the newest Job with the failure time
    of ``failures``. Returns the memory each attempt was created with."""
    created = []
    for number, at in enumerate(runs, start=1):
        result, _ = cluster.run_at(at)
        assert result.exit_code == 0, result.stderr
        assert "Traceback" not in result.stderr
        job = cluster.job(number)
        created.append(memory(job))
        if number < len(runs):
            cluster.fail(job, at=failures[number - 1], pod_status=oom())
    return created


def test_a_job_controller_behind_the_runs_clock_loses_no_charge(cluster: Harness) -> None:
    """Each Job fails a minute after it was created, as the controller's clock (6 minutes behind) says."""
    runs = [T0 + n * HOUR for n in range(3)]
    behind = [at - 360 + 60 for at in runs]
    assert oom_ladder(cluster, runs, behind) == [("1Gi", "1Gi"), ("2Gi", "2Gi"), ("4Gi", "4Gi")]
    cluster.fail(cluster.job(3), at=runs[2] - 300, pod_status=oom())
    _, report = cluster.run_at(T0 + 3 * HOUR)
    assert report["solvers"][SOLVER_NAME]["skipped"] == {"quarantined": 1}, "three charged failures"
    (entry,) = ledger(cluster).values()
    assert (entry["failures"], entry["attempt"]) == (3, 3)


def test_a_run_whose_clock_is_a_day_ahead_loses_and_doubles_no_charge(cluster: Harness) -> None:
    runs = [T0, T0 + HOUR + 86_400, T0 + 2 * HOUR]  # the second run's clock is a day ahead
    failures = [T0 + 600, T0 + HOUR + 600]
    assert oom_ladder(cluster, runs, failures) == [("1Gi", "1Gi"), ("2Gi", "2Gi"), ("4Gi", "4Gi")]
    cluster.fail(cluster.job(3), at=T0 + 2 * HOUR + 600, pod_status=oom())
    _, report = cluster.run_at(T0 + 3 * HOUR)
    assert report["solvers"][SOLVER_NAME]["skipped"] == {"quarantined": 1}, "three charged failures"
    (entry,) = ledger(cluster).values()
    assert (entry["failures"], entry["attempt"]) == (3, 3)


def test_a_failure_later_than_the_runs_clock_counts_as_the_runs_time_with_a_warning(cluster: Harness) -> None:
    cluster.run_at(T0)
    cluster.fail(cluster.job(1), at=T0 + 3 * HOUR, pod_status=oom())  # the controller is hours ahead
    result, _ = cluster.run_at(T0 + HOUR)
    assert memory(cluster.job(2)) == ("2Gi", "2Gi")
    assert "failed later than this run's clock: taken as failing now" in result.stderr
    (entry,) = ledger(cluster).values()
    assert entry["failed"] == "2027-01-15T09:00:00Z", "the run's time"
    result, _ = cluster.run_at(T0 + 2 * HOUR)
    assert "later than this run's clock" not in result.stderr, "said once, when learned"


def test_a_clear_right_after_a_failure_sticks(cluster: Harness) -> None:
    cluster.run_at(T0)
    cluster.fail(cluster.job(1), at=T0 + HOUR - 30, pod_status=oom())
    cluster.run_at(T0 + HOUR)  # learns it (2Gi)
    cluster.fail(cluster.job(2), at=T0 + 2 * HOUR - 10, pod_status=oom())
    cluster.run_at(T0 + 2 * HOUR)  # learns it (4Gi): the failure was ten seconds before this run
    key = WorkItem(SOLVER, SOLVER_NAME, Candidate("flask", "1.0", PYPI)).key
    assert cluster.cli("ledger", "forget", key, at=T0 + 2 * HOUR + 5).exit_code == 0
    result, _ = cluster.run_at(T0 + 2 * HOUR + 600)  # a run by hand, minutes after the failure and the clear
    assert result.exit_code == 0
    (entry,) = ledger(cluster).values()
    assert (entry["failures"], entry["attempt"], entry["cause"]) == (0, 2, None), "the clear sticks"
    cluster.fail(cluster.job(3), at=T0 + 2 * HOUR + 900, pod_status=oom())
    cluster.run_at(T0 + 3 * HOUR)
    assert memory(cluster.job(4)) == ("8Gi", "8Gi"), "attempt 3 ran with 4Gi: doubled from its own"
    (entry,) = ledger(cluster).values()
    assert (entry["failures"], entry["attempt"]) == (1, 3), "the forgotten failures do not come back"


def test_an_item_out_of_quarantine_starts_again_past_its_failed_jobs(cluster: Harness) -> None:
    env = {"THOTH_GRAPH_REFRESH_MAX_ATTEMPTS": "2", "THOTH_GRAPH_REFRESH_QUARANTINE": str(int(2 * HOUR))}
    quarantined_after_two_ooms(cluster, env)
    result, report = cluster.run_at(T0 + 4 * HOUR, env=env)  # two hours after the last failure
    assert result.exit_code == 0
    counts = report["solvers"][SOLVER_NAME]
    assert counts["scheduled"] == 1
    assert counts["already_scheduled"] == 0
    assert memory(cluster.job(3)) == ("1Gi", "1Gi")
    assert ledger(cluster) == {}


def first_release_failed_job(cluster: Harness, *, at: float) -> Obj:
    """A Job as the first release made it (no attempt label, no annotations, pods unlabelled), failed at ``at``."""
    item = WorkItem(SOLVER, SOLVER_NAME, Candidate("flask", "1.0", PYPI))
    labels = {
        "app.kubernetes.io/managed-by": "graph-refresh",
        "thoth-station.ninja/kind": "solver",
        "thoth-station.ninja/solver": SOLVER_NAME,
        "thoth-station.ninja/item": item.key,
    }
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": item.job_name, "namespace": MIDDLETIER, "labels": labels},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "solver", "image": "x"}]}}},
    }
    cluster.fake.add(job)
    cluster.fail(job, at=at)
    return job


@pytest.mark.parametrize("first_run", ["meets the item", "does not meet the item"])
def test_after_the_upgrade_the_first_releases_failed_jobs_are_learned(cluster: Harness, first_run: str) -> None:
    first_release_failed_job(cluster, at=T0 - 600)
    if first_run == "does not meet the item":  # its failure waits for the item: the ledger must not skip it
        only_the_analyzer = {"GRAPH_REFRESH_NO_SOLVERS": "1", "GRAPH_REFRESH_NO_PACKAGE_ANALYZERS": "0"}
        result, _ = cluster.run_at(T0, env=only_the_analyzer)
        assert result.exit_code == 0
    _, report = cluster.run_at(T0 + 60)
    assert report["solvers"][SOLVER_NAME]["skipped"] == {"failed-recently": 1}, "an error backs off first"
    assert report["solvers"][SOLVER_NAME]["scheduled"] == 0
    (entry,) = ledger(cluster).values()
    assert entry["failures"] == 1
    assert entry["cause"] == "error"


# --- a ledger written by someone else -------------------------------------------------------------------------

ITEM_KEY = WorkItem(SOLVER, SOLVER_NAME, Candidate("flask", "1.0", PYPI)).key


def ledger_configmap(cluster: Harness, data: dict[str, str]) -> None:
    cluster.fake.add(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "graph-refresh-ledger", "namespace": MIDDLETIER},
            "data": data,
        }
    )


def entry_value(**fields: Any) -> str:
    value = {
        "kind": "solver",
        "solver": SOLVER_NAME,
        "package": "flask",
        "version": "1.0",
        "index": PYPI,
        "failures": 3,
        "attempt": 3,
        "cause": "error",
        "failed": "2027-01-15T08:00:00Z",
    }
    return json.dumps({**value, **fields})


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"failed": "9999-12-31T23:59:59Z"}, "failed later than this run's clock"),
        ({"failed": "9999-12-31T23:00:00-14:00"}, "is not an RFC 3339 time in the years 1970-9999"),
        ({"failed": "1969-12-31T23:59:59Z"}, "is not an RFC 3339 time in the years 1970-9999"),
        ({"attempt": 10**70}, "attempt " + "1" + "0" * 58 + "… is not a whole number from 1 to 1000000"),
        ({"failures": -1}, "failures -1 is not a whole number from 0 to 1000000"),
        ({"failures": 10**9}, "failures 1000000000 is not a whole number from 0 to 1000000"),
        ({"deadline": 2**40}, "deadline 1099511627776 is not a whole number"),
        ({"memory": {"solver": {"limit": "1e400"}}}, "is not a quantity of at most 8Ei"),
        ({"cause": ["oom"]}, "cause ['oom'] is not one of"),
        ({"cause": None}, "cause None is not one of"),
        ({"package": "name\u202e"}, "package name is not a PEP 508 name"),
        ({"version": "1.0\n2"}, "version has characters outside"),
        ({"solver": "x" * 500}, "is not a solver name"),
    ],
)
def test_a_hostile_ledger_value_never_stops_a_run(cluster: Harness, fields: Obj, expected: str) -> None:
    ledger_configmap(cluster, {ITEM_KEY: entry_value(**fields)})
    result, report = cluster.run_at(T0)
    assert result.exit_code == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert expected in result.stderr
    assert ITEM_KEY in result.stderr, "the warning names the key"
    assert report["ledger"] == {"written": True}
    for entry in ledger(cluster).values():  # what is written back can be read back
        assert entry["failed"] <= "2027-01-15T09:00:00Z"
        assert entry["attempt"] <= 1_000_000
    result, _ = cluster.run_at(T0 + HOUR)
    assert result.exit_code == 0
    assert "Traceback" not in result.stderr


def test_a_far_future_failure_is_taken_as_now_and_its_quarantine_can_be_listed(cluster: Harness) -> None:
    ledger_configmap(cluster, {ITEM_KEY: entry_value(failed="9999-12-31T23:59:59Z")})
    result, report = cluster.run_at(T0)
    assert result.exit_code == 0, result.stderr
    assert report["solvers"][SOLVER_NAME]["skipped"] == {"quarantined": 1}
    (quarantined,) = report["quarantined"]
    assert quarantined["until"] == "2027-02-14T08:00:00Z", "30 days after the run's time"
    assert ledger(cluster)[ITEM_KEY]["failed"] == "2027-01-15T08:00:00Z"


def test_many_unreadable_entries_make_a_few_short_warnings(cluster: Harness) -> None:
    data = {f"{n:010x}": "{not json" for n in range(10_000)}
    data["abcdefabcd"] = entry_value(cause="x" * 500_000)
    ledger_configmap(cluster, data)
    result, _ = cluster.run_at(T0)
    assert result.exit_code == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "graph-refresh-ledger" in line and "dropped" in line]
    assert len(warnings) == 20, "the first 20 are named"
    assert "9,981 more problems like these" in result.stderr
    assert max(len(line) for line in warnings) < 300
    assert ledger(cluster) == {}


def test_a_job_whose_item_label_was_removed_by_hand_writes_no_unreadable_key(cluster: Harness) -> None:
    cluster.run_at(T0)
    job = cluster.job(1)
    del job["metadata"]["labels"]["thoth-station.ninja/item"]
    cluster.fake.add(job)
    cluster.fail(cluster.fake.get("jobs", MIDDLETIER, job["metadata"]["name"]) or {}, at=T0 + 600, pod_status=oom())
    result, _ = cluster.run_at(T0 + HOUR)
    assert result.exit_code == 0
    assert set(ledger(cluster)) == {ITEM_KEY}, "learned under the item's key when its candidate was met"
    result, _ = cluster.run_at(T0 + 2 * HOUR)
    assert "dropped" not in result.stderr


# --- an escalation that can never fit -----------------------------------------------------------------------------


def test_an_escalation_above_a_quotas_hard_limit_is_said_once_and_ends(cluster: Harness) -> None:
    hard = {"limits.memory": "3Gi"}
    cluster.fake.add(
        {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": {"name": "memory", "namespace": MIDDLETIER},
            "spec": {"hard": hard},
            "status": {"hard": hard, "used": {"limits.memory": "0"}},
        }
    )
    cluster.run_at(T0)
    cluster.fail(cluster.job(1), at=T0 + 600, pod_status=oom())
    cluster.run_at(T0 + HOUR)
    assert memory(cluster.job(2)) == ("2Gi", "2Gi")
    cluster.fail(cluster.job(2), at=T0 + HOUR + 600, pod_status=oom())
    result, report = cluster.run_at(T0 + 2 * HOUR)  # 4Gi can never run under a 3Gi hard limit
    assert "ResourceQuota 'memory': limits.memory (hard limit" in result.stderr
    assert report["solvers"][SOLVER_NAME]["skipped"] == {"failed-recently": 1}
    assert ledger(cluster)[ITEM_KEY]["cause"] == "error"
    result, report = cluster.run_at(T0 + 3 * HOUR)
    assert "hard limit" not in result.stderr, "said once"
    assert report["solvers"][SOLVER_NAME]["skipped"] == {"failed-recently": 1}, "backing off (2 h after 2 failures)"
    _, report = cluster.run_at(T0 + 4 * HOUR)
    assert memory(cluster.job(3)) == ("2Gi", "2Gi"), "retried as it ran"
    assert report["solvers"][SOLVER_NAME]["retried"]["error"] == 1
    cluster.fail(cluster.job(3), at=T0 + 4 * HOUR + 600, pod_status=oom())
    result, report = cluster.run_at(T0 + 5 * HOUR)
    assert report["solvers"][SOLVER_NAME]["skipped"] == {"quarantined": 1}, "it ends"
    assert "Quarantined solver-fedora-34-py39 flask 1.0 after 3 failures" in result.stderr


def test_retries_at_cap_count_only_the_oom_killed_containers_memory(cluster: Harness) -> None:
    template = next(
        t for t in cluster.fake.objects("templates", INFRA) if t["metadata"]["labels"]["template"] == "solver"
    )
    for job in template["objects"]:
        sidecar = {
            "name": "sidecar",
            "image": "x",
            "resources": {"requests": {"memory": "8Gi"}, "limits": {"memory": "8Gi"}},
        }
        job["spec"]["template"]["spec"]["containers"].append(sidecar)
    cluster.fake.add(template)
    cluster.run_at(T0)
    cluster.fail(cluster.job(1), at=T0 + 600, pod_status=oom("solver"))
    _, report = cluster.run_at(T0 + HOUR)
    assert memory(cluster.job(2)) == ("2Gi", "2Gi")
    assert report["solvers"][SOLVER_NAME]["retries_at_cap"]["oom"] == 0, "the sidecar's 8Gi is not the solver's"
    for attempt, at in ((2, 2), (3, 3)):
        cluster.fail(cluster.job(attempt), at=T0 + at * HOUR - 600, pod_status=oom("solver"))
        _, report = cluster.run_at(T0 + at * HOUR, env={"THOTH_GRAPH_REFRESH_MAX_ATTEMPTS": "0"})
    assert memory(cluster.job(4)) == ("8Gi", "8Gi")
    assert report["solvers"][SOLVER_NAME]["retries_at_cap"]["oom"] == 1, "now the solver itself has the cap"


# --- no credentials at rest ------------------------------------------------------------------------------------


def test_index_credentials_are_masked_in_annotations_ledger_and_report(
    run_cli: RunCli, tmp_path: Path, write_graph: Callable[[Obj], Path]
) -> None:
    index = "https://user:s3cret@private.example/simple?token=t0ken"
    with FakeKube(tls="tls") as fake:
        cluster = Harness.flask_solvers(fake, run_cli, tmp_path, write_graph)
        graph = write_graph({"package_versions": [version("flask", "1.0", index)]})
        assert run_cli(["import-graph", str(graph)]).exit_code == 0
        env = {"THOTH_GRAPH_REFRESH_MAX_ATTEMPTS": "1"}
        cluster.run_at(T0, env=env)
        item = WorkItem(SOLVER, SOLVER_NAME, Candidate("flask", "1.0", index))
        job = fake.get("jobs", MIDDLETIER, item.job_name)
        assert job is not None
        assert (
            job["metadata"]["annotations"]["thoth-station.ninja/index"]
            == "https://***@private.example/simple?token=***"
        )
        assert "s3cret" in json.dumps(job["spec"]), "the solver itself gets the whole URL"
        cluster.fail(job, at=T0 + 600)
        _, report = cluster.run_at(T0 + HOUR, env=env)
        assert report["quarantined_total"] == 1
        configmap = fake.get("configmaps", MIDDLETIER, "graph-refresh-ledger")
        stored = json.dumps(configmap) + json.dumps(report)
        assert "s3cret" not in stored
        assert "t0ken" not in stored
        assert item.key in configmap["data"] if configmap else False, "the key comes from the whole URL"


# --- ledger show / ledger forget --------------------------------------------------------------------------------


def two_entries(cluster: Harness) -> None:
    """Flask 1.0 (solver) OOM-killed once; numpy 2.0 (analyzer) failed three times."""
    ledger_configmap(
        cluster,
        {
            ITEM_KEY: entry_value(failures=1, attempt=1, cause="oom", memory={"solver": {"limit": "1Gi"}}),
            "abcdef0123": json.dumps(
                {
                    "kind": "package-analyzer",
                    "package": "numpy",
                    "version": "2.0",
                    "index": PYPI,
                    "failures": 3,
                    "attempt": 3,
                    "cause": "error",
                    "failed": "2027-01-15T07:00:00Z",
                }
            ),
            "learned-until": "2027-01-15T07:00:00Z",
        },
    )


def test_ledger_show_lists_each_entry_with_its_state(cluster: Harness) -> None:
    two_entries(cluster)
    shown = cluster.cli("ledger", "show", at=T0)
    assert shown.exit_code == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].split() == ["ITEM", "STREAM", "PACKAGE", "FAILS", "CAUSE", "STATE"]
    assert lines[1].split() == [
        "abcdef0123",
        "package-analyzer",
        "numpy==2.0",
        "3",
        "error",
        "quarantined",
        "until",
        "2027-02-14T07:00:00Z",
    ]
    assert lines[2].split() == [
        ITEM_KEY,
        SOLVER_NAME,
        "flask==1.0",
        "1",
        "oom",
        *["retry", "next", "run:", "attempt", "2"],
    ]
    assert len(lines) == 3
    assert max(map(len, lines)) <= 100

    as_json = cluster.cli("ledger", "show", "--json", at=T0)
    entries = json.loads(as_json.stdout)
    assert [(e["key"], e["state"], e["until"]) for e in entries] == [
        ("abcdef0123", "quarantined until", "2027-02-14T07:00:00Z"),
        (ITEM_KEY, "retry next run: attempt 2", None),
    ]
    assert entries[1]["memory"] == {"solver": {"limit": "1Gi"}}
    assert entries[1]["index"] == PYPI

    env = {"THOTH_GRAPH_REFRESH_MAX_ATTEMPTS": "0"}  # the run's tunables decide the state
    assert "backing off until 2027-01-15T11:00:00Z" in cluster.cli("ledger", "show", at=T0, env=env).stdout


def test_ledger_show_fits_long_rows_to_the_width_cutting_the_package_and_the_stream(cluster: Harness) -> None:
    package, version = "a-package-with-a-name-long-enough-to-matter", "2024.10.1"
    key = WorkItem(SOLVER, SOLVER_NAME, Candidate(package, version, PYPI)).key
    ledger_configmap(cluster, {key: entry_value(package=package, version=version, cause="deadline")})
    shown = cluster.cli("ledger", "show", at=T0)
    assert shown.exit_code == 0, shown.stderr
    header, row = shown.stdout.splitlines()
    assert max(len(header), len(row)) <= 100
    assert row.startswith(f"{key}  solver-")
    assert row.split()[2].startswith("a-package-")
    assert row.split()[2].endswith("…")
    assert row.endswith("3      deadline  quarantined until 2027-02-14T08:00:00Z")
    whole = json.loads(cluster.cli("ledger", "show", "--json", at=T0).stdout)[0]
    assert (whole["solver"], whole["package"]) == (SOLVER_NAME, package)


def test_ledger_show_without_a_ledger_and_against_a_refusing_cluster(cluster: Harness) -> None:
    shown = cluster.cli("ledger", "show", at=T0)
    assert shown.exit_code == 0
    assert "has no entries" in shown.stdout
    assert json.loads(cluster.cli("ledger", "show", "--json").stdout) == []
    cluster.fake.inject(method="GET", path=LEDGER_PATH, status=403, times=None)
    for command in (["show"], ["forget", "--all"]):
        refused = cluster.cli("ledger", *command)
        assert refused.exit_code == 1
        assert "403" in refused.stderr
        assert "Traceback" not in refused.stderr
    unset = cluster.cli("ledger", "show", env={"THOTH_MIDDLETIER_NAMESPACE": ""})
    assert unset.exit_code == 2
    assert "THOTH_MIDDLETIER_NAMESPACE" in unset.stderr


@pytest.mark.parametrize(
    ("args", "forgotten"),
    [
        ([ITEM_KEY], {ITEM_KEY}),
        ([ITEM_KEY.upper()], {ITEM_KEY}),  # a key is a hex digest: its case does not matter
        (["FLASK==1.0"], {ITEM_KEY}),
        (["flask"], {ITEM_KEY}),
        (["flask==1.0", "--index", PYPI, "--solver", SOLVER_NAME], {ITEM_KEY}),
        (["--solver", SOLVER_NAME], {ITEM_KEY}),
        (["--analyzer"], {"abcdef0123"}),
        (["numpy==2.0"], {"abcdef0123"}),
        (["--all"], {ITEM_KEY, "abcdef0123"}),
    ],
)
def test_ledger_forget_resets_the_matching_entries_and_keeps_the_rest(
    cluster: Harness, args: list[str], forgotten: set[str]
) -> None:
    two_entries(cluster)
    before = cluster.fake.get("configmaps", MIDDLETIER, "graph-refresh-ledger")
    assert before is not None
    result = cluster.cli("ledger", "forget", *args, at=T0)
    assert result.exit_code == 0, result.stderr
    entries = "entry" if len(forgotten) == 1 else "entries"
    assert f"{len(forgotten)} {entries} of graph-refresh-ledger in namespace 'middletier' forgotten" in result.stdout
    after = cluster.fake.get("configmaps", MIDDLETIER, "graph-refresh-ledger")
    assert after is not None
    for key, value in before["data"].items():
        if key in forgotten:
            entry = json.loads(after["data"][key])
            old = json.loads(value)
            assert (entry["failures"], entry["cause"], entry["attempt"]) == (0, None, old["attempt"])
            assert "memory" not in entry
        else:
            assert after["data"][key] == value, "every other value is kept exactly"


@pytest.mark.parametrize(
    ("args", "why"),
    [
        (["--solver", "nosuch-solver"], f"--solver nosuch-solver (2 entries; its solvers: {SOLVER_NAME})"),
        (["--solver", SOLVER_NAME[:-1]], f"(2 entries; did you mean --solver {SOLVER_NAME}?)"),
        (["flask==1.0", "--index", "https://u:pw@other.example/simple"], "flask==1.0 --index https://***@other"),
        (["flask==1.0", "--analyzer"], "flask==1.0 --analyzer (2 entries; ledger show lists them)"),
        (["django"], "matches django (2 entries"),
        (["0123456789"], "matches 0123456789 (2 entries"),
    ],
)
def test_ledger_forget_that_matches_nothing_exits_1_saying_why(cluster: Harness, args: list[str], why: str) -> None:
    two_entries(cluster)
    before = cluster.fake.get("configmaps", MIDDLETIER, "graph-refresh-ledger")
    result = cluster.cli("ledger", "forget", *args, at=T0)
    assert result.exit_code == 1
    (line,) = [line for line in result.stderr.splitlines() if " INFO " not in line]  # one line says why
    assert line.startswith("Error: no entry of the ledger graph-refresh-ledger in namespace 'middletier' matches ")
    assert why in result.stderr
    assert "pw@" not in result.stderr
    assert result.stdout == ""
    assert cluster.fake.get("configmaps", MIDDLETIER, "graph-refresh-ledger") == before


def test_ledger_forget_without_a_ledger_or_with_nothing_left_to_forget(cluster: Harness) -> None:
    missing = cluster.cli("ledger", "forget", "--all")
    assert missing.exit_code == 1
    assert missing.stderr.endswith(
        "\nError: there is no ledger graph-refresh-ledger in namespace 'middletier': nothing to forget\n"
    )
    two_entries(cluster)
    assert cluster.cli("ledger", "forget", "flask").exit_code == 0
    again = cluster.cli("ledger", "forget", "flask")  # what was asked for holds: forgetting twice is no mistake
    assert again.exit_code == 0, again.stderr
    assert " ".join(again.stdout.split()) == (  # one message, wrapped to fit the width
        "1 matching entry of graph-refresh-ledger in namespace 'middletier' had no failures to forget: nothing changed."
    )
    both = cluster.cli("ledger", "forget", "--all")
    assert both.exit_code == 0, both.stderr
    assert both.stdout.splitlines()[-2:] == [
        "1 entry of graph-refresh-ledger in namespace 'middletier' forgotten.",
        "1 more matching entry had no failures to forget.",
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "say what to forget"),
        (["--", "--all"], "'--all' is neither an item key (10 hex characters), PKG==VER nor a package name: options"),
        (["a\x1b[2Jb"], "'a\\x1b[2Jb' is neither an item key"),
        (["flask==1.0 beta"], "'flask==1.0 beta' is neither"),
        (["--solver", "solver-\x1b]0;x\x07"], "--solver 'solver-\\x1b]0;x\\x07' is not printable text"),
        (["flask", "--index", "https://u:pw@x.example/\r"], "--index 'https://***@x.example/\\r' is not printable"),
        (["--all", "flask"], "--all forgets every entry: give it alone"),
        (["--solver", "x", "--analyzer"], "exclude each other"),
        ([ITEM_KEY, "--analyzer"], "is an item key"),
        (["--index", PYPI], "--index narrows PKG==VER or PKG"),
        (["flask=="], "neither an item key"),
    ],
)
def test_ledger_forget_refuses_a_request_it_cannot_read(cluster: Harness, args: list[str], message: str) -> None:
    result = cluster.cli("ledger", "forget", *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not any(c in result.stderr for c in "\x1b\x07\r"), "hostile text is echoed escaped"
    assert "pw@" not in result.stderr


def test_ledger_forget_loses_no_concurrent_write(cluster: Harness) -> None:
    two_entries(cluster)

    another_writer_first(cluster.fake, "graph-refresh-ledger", "0000000001", entry_value(package="pytz"))
    result = cluster.cli("ledger", "forget", "--all")
    assert result.exit_code == 0, result.stderr
    assert "3 entries" in result.stdout, "the other writer's entry is read again, and forgotten too"
    configmap = cluster.fake.get("configmaps", MIDDLETIER, "graph-refresh-ledger")
    assert configmap is not None
    assert len(configmap["data"]) == 4, "three entries and the old learned-until"


def test_the_readmes_ledger_commands_run_as_written_against_the_stand_in(cluster: Harness) -> None:
    """Each line of the README's block of ``app.py ledger`` commands, as a user runs it, in a shell."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = next(b for b in re.findall(r"```sh\n(.*?)```", readme, re.S) if "app.py ledger forget --analyzer" in b)
    item = WorkItem(SOLVER, "solver-fedora-31-py38", Candidate("flask", "1.1.2", PYPI))
    ledger_configmap(
        cluster,
        {
            item.key: entry_value(solver=item.solver, version="1.1.2"),
            "0a1b2c3d4e": entry_value(kind=ANALYZER, solver=None, package="numpy", failures=1, attempt=1),
        },
    )
    env = {**os.environ, **cluster.env, "PATH": os.environ["PATH"]}
    for line in [line for line in block.splitlines() if line.strip()]:
        done = subprocess.run(["bash", "-c", line], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, (line, done.stderr)
        assert "Traceback" not in done.stderr
    assert {(e["failures"], e["cause"]) for e in ledger(cluster).values()} == {(0, None)}, "every entry forgotten"


def test_ledger_show_masks_credentials_whoever_wrote_them(cluster: Harness) -> None:
    index = "https://user:s3cret@private.example/simple?token=t0ken"
    key = WorkItem(SOLVER, SOLVER_NAME, Candidate("flask", "1.0", index)).key
    ledger_configmap(cluster, {key: entry_value(index=index)})
    for args in (["ledger", "show"], ["ledger", "show", "--json"]):
        shown = cluster.cli(*args, at=T0)
        assert shown.exit_code == 0, shown.stderr
        assert "s3cret" not in shown.stdout
        assert "t0ken" not in shown.stdout


def test_ledger_show_stays_narrow_with_long_names(cluster: Harness) -> None:
    package, version_ = "a-really-long-package-name-for-width-testing", "1.0.0.post12345+local.build.abc"
    key = WorkItem(SOLVER, SOLVER_NAME, Candidate(package, version_, PYPI)).key
    ledger_configmap(cluster, {key: entry_value(package=package, version=version_)})
    shown = cluster.cli("ledger", "show", at=T0)
    assert shown.exit_code == 0, shown.stderr
    assert max(map(len, shown.stdout.splitlines())) <= 120, "cells are cut; --json has the whole values"
    assert "a-really-long" in shown.stdout


def test_ledger_show_tells_states_under_the_settings_the_last_run_used_and_says_so(cluster: Harness) -> None:
    """The CronJob's settings decide an item's next run, not those of the operator's shell."""
    two_entries(cluster)
    shell_only = cluster.cli("ledger", "show", at=T0, env={"THOTH_GRAPH_REFRESH_MAX_ATTEMPTS": "0"})
    assert "States under this shell's settings (no run has recorded its own yet)." in shell_only.stderr
    cluster.graph(["flask"])
    cronjob = {"THOTH_GRAPH_REFRESH_MAX_ATTEMPTS": "5", "THOTH_GRAPH_REFRESH_RETRY_BACKOFF": "600"}
    cluster.run(now=lambda: T0, env={**cronjob, "GRAPH_REFRESH_NO_PACKAGE_ANALYZERS": "1"})
    for shell in ({}, {"THOTH_GRAPH_REFRESH_MAX_ATTEMPTS": "1"}):
        shown = cluster.cli("ledger", "show", "--json", at=T0, env=shell)
        states = {entry["key"]: entry["state"] for entry in json.loads(shown.stdout)}
        assert states["abcdef0123"] == "retry next run: attempt 4", "3 failures: not quarantined under the run's 5"
        said = {entry["settings"] for entry in json.loads(shown.stdout)}
        assert said == {
            "the settings of the last run, 2027-01-15T08:00:00Z: --max-attempts 5, --retry-backoff 600, "
            "--quarantine 2592000"
        }
