"""When will it be solved (docs/eta.md): the windows ``explain`` gives, the history they come from, and how runs
keep score of them, through the CLI against the stand-ins."""

from __future__ import annotations

import json
from typing import Any

from graph_refresh.items import ANALYZER
from tests.helpers import MIDDLETIER, SOLVERS, T0, Harness, Obj, names, version

HOUR = 3600.0
ENV = {"GRAPH_REFRESH_NO_PACKAGE_ANALYZERS": "1"}


def ledger_value(cluster: Harness, key: str) -> Any:
    configmap = cluster.fake.get("configmaps", MIDDLETIER, "graph-refresh-ledger")
    assert configmap is not None
    return json.loads(configmap["data"][key])


def sync_all(cluster: Harness) -> None:
    """Every Job completes, the graph sync records its result, and the Job is removed."""
    solved, analyzed = [], []
    for name, job in cluster.jobs().items():
        annotations = job["metadata"]["annotations"]
        record = version(annotations["thoth-station.ninja/package"], annotations["thoth-station.ninja/version"])
        solver = job["metadata"]["labels"].get("thoth-station.ninja/solver")
        (solved if solver else analyzed).append({**record, "solver": solver} if solver else record)
        cluster.fake.delete("jobs", MIDDLETIER, name)
    cluster.import_graph({"solved": solved, "analyzed": analyzed})


def hourly(cluster: Harness, hours: int, *args: str, first: int = 0, env: dict[str, str] | None = None) -> list[Obj]:
    """``hours`` runs an hour apart from hour ``first``, each followed by a sync of every Job it created."""
    reports = []
    for hour in range(first, first + hours):
        _, report = cluster.run_at(T0 + hour * HOUR, *args, env={**ENV, **(env or {})})
        reports.append(report)
        sync_all(cluster)
    return reports


def explained(cluster: Harness, item: str, at: float, env: dict[str, str] | None = None) -> dict[str, Obj]:
    result = cluster.cli("explain", item, "--json", at=at, env={**ENV, **(env or {})})
    assert result.exit_code == 0, result.stderr
    return {row["stream"]: row for row in json.loads(result.stdout)}


def test_explain_gives_start_and_solved_windows_once_three_runs_are_known(cluster: Harness) -> None:
    cluster.graph(names(200))
    hourly(cluster, 2, "--max-in-flight", "6")
    early = explained(cluster, "p000150==1.0", T0 + 1.5 * HOUR)[SOLVERS[0]]
    assert (early["state"], early["start"], early["solved"]) == ("waiting", None, None)
    assert early["eta_note"] == "not enough history: 2 of 3 runs"
    hourly(cluster, 3, "--max-in-flight", "6", first=2)
    rows = explained(cluster, "p000150==1.0", T0 + 4.5 * HOUR)
    row = rows[SOLVERS[0]]
    assert row["state"] == "waiting"
    print(json.dumps(row, indent=1))
    print(json.dumps(ledger_value(cluster, "eta"))[:3000])
    assert row["start"] is not None
    assert ANALYZER not in rows
