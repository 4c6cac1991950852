"""The ledger ConfigMap (graph_refresh/retry/ledger_store.py), run after run through the CLI against FakeKube: a ledger
that cannot be read is a warning and is replaced, two runs writing at once lose no entry, and a ledger that
cannot be written is loud while the failed Jobs still in the cluster keep charging, and a ledger too big for a
ConfigMap drops its oldest entries."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from graph_refresh.items import SOLVER, Candidate, WorkItem
from tests.fakes.kube import FakeKube
from tests.helpers import (
    HOUR,
    LEDGER_PATH,
    MIDDLETIER,
    PYPI,
    SOLVER_NAME,
    T0,
    Harness,
    RunCli,
    another_writer_first,
    ledger,
    memory,
    oom,
)

Obj = dict[str, Any]


@pytest.fixture
def cluster(run_cli: RunCli, tmp_path: Path, write_graph: Callable[[Obj], Path]) -> Iterator[Harness]:
    with FakeKube(tls="tls") as fake:
        yield Harness.flask_solvers(fake, run_cli, tmp_path, write_graph)


def test_an_unreadable_ledger_is_a_warning_and_is_replaced(cluster: Harness) -> None:
    cluster.fake.add(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "graph-refresh-ledger", "namespace": MIDDLETIER},
            "data": {"0123456789": "{not json", "zz": "[]"},
        }
    )
    result, _ = cluster.run_at(T0)
    assert result.exit_code == 0
    assert "Traceback" not in result.stderr
    assert "0123456789" in result.stderr
    assert "'zz'" in result.stderr, "each unreadable entry is named"
    assert ledger(cluster) == {}, "replaced at the end"
    cluster.fail(cluster.job(1), at=T0 + 600, pod_status=oom())
    cluster.run_at(T0 + HOUR)
    assert set(ledger(cluster)) == {WorkItem(SOLVER, SOLVER_NAME, Candidate("flask", "1.0", PYPI)).key}

    cluster.fake.inject(method="GET", path=LEDGER_PATH, status=403, times=None)
    result, _ = cluster.run_at(T0 + 2 * HOUR)
    assert result.exit_code == 0
    assert "could not be read" in result.stderr


def test_two_overlapping_runs_lose_no_entry(cluster: Harness) -> None:
    cluster.run_at(T0)
    cluster.fail(cluster.job(1), at=T0 + 600, pod_status=oom())
    other_key = "abcdef0123"
    other = {
        "kind": "package-analyzer",
        "solver": None,
        "package": "numpy",
        "version": "1.0",
        "index": PYPI,
        "failures": 1,
        "attempt": 1,
        "cause": "error",
        "failed": "2027-01-15T08:00:00Z",
    }

    cluster.run_at(T0 + HOUR)  # creates the ledger
    cluster.fail(cluster.job(2), at=T0 + HOUR + 600, pod_status=oom())
    another_writer_first(cluster.fake, "graph-refresh-ledger", other_key, json.dumps(other))  # that run came first
    result, _ = cluster.run_at(T0 + 2 * HOUR)
    assert result.exit_code == 0, result.stderr
    entries = ledger(cluster)
    assert entries[other_key]["package"] == "numpy", "the other run's entry is kept"
    mine = WorkItem(SOLVER, SOLVER_NAME, Candidate("flask", "1.0", PYPI)).key
    assert entries[mine]["attempt"] == 2
    assert entries[mine]["failures"] == 2, "and this run's learning too"


def test_a_ledger_that_cannot_be_written_is_loud_and_learning_still_charges(cluster: Harness) -> None:
    cluster.fake.inject(method="POST", path=r"/configmaps$", status=403, times=None)
    result, report = cluster.run_at(T0)
    assert result.exit_code == 0
    assert report["ledger"]["written"] is False
    assert "403" in report["ledger"]["reason"]
    assert "The ledger graph-refresh-ledger could not be written" in result.stderr
    cluster.fail(cluster.job(1), at=T0 + 600, pod_status=oom())
    cluster.run_at(T0 + HOUR)
    assert memory(cluster.job(2)) == ("2Gi", "2Gi"), "learned from the failed Job present"
    cluster.fail(cluster.job(2), at=T0 + HOUR + 600, pod_status=oom())
    _, report = cluster.run_at(T0 + 2 * HOUR)
    assert memory(cluster.job(3)) == ("4Gi", "4Gi"), "both failed Jobs still charge"
    cluster.fail(cluster.job(3), at=T0 + 2 * HOUR + 600, pod_status=oom())
    _, report = cluster.run_at(T0 + 3 * HOUR)
    assert report["solvers"][SOLVER_NAME]["skipped"] == {"quarantined": 1}, "no retrying forever at 1Gi"
    assert report["ledger"]["written"] is False


def test_a_full_ledger_drops_its_oldest_entries_naming_them(
    cluster: Harness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from dataclasses import replace

    from graph_refresh import kube
    from graph_refresh.config import ClusterSettings
    from graph_refresh.retry import ledger_store
    from graph_refresh.retry.model import AttemptResources, Cause, ItemId, LedgerEntry

    monkeypatch.setenv("KUBECONFIG", cluster.env["KUBECONFIG"])
    client = kube.Cluster(ClusterSettings())
    base = ItemId.of(WorkItem(SOLVER, SOLVER_NAME, Candidate("flask", "1.0", PYPI)))
    entries = {
        f"{i:010x}": LedgerEntry(replace(base, key=f"{i:010x}"), 1, 1, Cause.ERROR, T0 + i, AttemptResources())
        for i in range(40)
    }
    written = ledger_store.write(
        client, MIDDLETIER, ledger_store.Ledger(), entries, now=T0, expire_after=HOUR, max_bytes=2000
    )
    assert written.written
    assert written.reason is None
    kept = ledger(cluster)
    assert 0 < len(kept) < 40
    assert min(kept) > "0000000000", "the oldest went first"
    assert "0000000000 (flask 1.0, 1 failure)" in caplog.text
    assert "oldest entries were dropped" in caplog.text
