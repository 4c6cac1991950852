"""When will it be solved (docs/eta.md): the windows ``explain`` gives, the history they come from, and how runs
keep score of them, through the CLI against the stand-ins."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from graph_refresh.items import ANALYZER
from graph_refresh.times import format_time, parse_time
from tests.helpers import MIDDLETIER, PYPI, SOLVERS, T0, Harness, Obj, names, version

HOUR = 3600.0
ENV = {"GRAPH_REFRESH_NO_PACKAGE_ANALYZERS": "1"}


def ledger_value(cluster: Harness, key: str) -> Any:
    return json.loads(ledger_configmap(cluster)["data"][key])


def sync_all(cluster: Harness) -> None:
    """Every Job completes, the graph sync records its result, and the Job is removed."""
    solved: list[Obj] = []
    analyzed: list[Obj] = []
    for name, job in cluster.jobs().items():
        annotations = job["metadata"]["annotations"]
        record = version(annotations["thoth-station.ninja/package"], annotations["thoth-station.ninja/version"])
        solver = job["metadata"]["labels"].get("thoth-station.ninja/solver")
        (solved if solver else analyzed).append({**record, "solver": solver} if solver else record)
        cluster.fake.delete("jobs", MIDDLETIER, name)
    cluster.import_graph({"solved": solved, "analyzed": analyzed})


def hourly(
    cluster: Harness,
    hours: int,
    *args: str,
    first: int = 0,
    env: dict[str, str] | None = None,
    sync: bool = True,
    clock: float = 0.0,
) -> list[Obj]:
    """``hours`` runs an hour apart from hour ``first`` (each run's clock off by ``clock`` seconds), each followed
    by a sync of every Job present unless ``sync`` is False (the graph sync stalls: the Jobs stay)."""
    reports = []
    for hour in range(first, first + hours):
        _, report = cluster.run_at(T0 + hour * HOUR + clock, *args, env={**ENV, **(env or {})})
        reports.append(report)
        if sync:
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
    rows = explained(cluster, "p000020==1.0", T0 + 4.5 * HOUR)
    assert ANALYZER not in rows, "a solver-only deployment"
    for row in rows.values():
        # Two Jobs a stream a run: five runs (08:00 to 12:00) made p000000..p000009, so p000010..p000019 come
        # first: five runs from 13:00, and the sixth (18:00) takes it, give or take the rate's doubt (a run
        # either way). The run after finds its result.
        assert (row["state"], row["lane"], row["ahead"]) == ("waiting", "backlog", 10)
        assert row["start"] == {"p10": "2027-01-15T17:00:00Z", "p90": "2027-01-15T19:00:00Z"}
        assert row["solved"] == {"p10": "2027-01-15T18:00:00Z", "p90": "2027-01-15T20:00:00Z"}
        assert row["eta_note"] is None
    text = cluster.cli("explain", "p000020==1.0", at=T0 + 4.5 * HOUR, env=ENV)
    assert "start=2027-01-15T17:00:00Z to" in text.stdout
    assert "2027-01-15T20:00:00Z" in text.stdout


def accuracy(cluster: Harness, at: float) -> dict[str, Obj]:
    result = cluster.cli("explain", "--accuracy", "-o", "json", at=at, env=ENV)
    assert result.exit_code == 0, result.stderr
    return {row["lane"]: row for row in json.loads(result.stdout)}


def test_runs_score_a_window_that_held_and_one_the_stalled_sync_missed(cluster: Harness) -> None:
    cluster.graph(names(200))
    reports = hourly(cluster, 6, "--max-in-flight", "6")
    # Predicted at 11:00 (its place 0 waits for the next run): created at 12:00, found by the run at 13:00.
    held = reports[-1]["eta"]
    assert held is not None
    assert held["scored"] >= 3
    assert held["inside"] == held["scored"], held
    assert held["late_by_two_runs_or_more"] == 0
    assert held["median_error_seconds"] == 0
    before = accuracy(cluster, T0 + 5.5 * HOUR)
    assert before["backlog"]["scored"] == before["backlog"]["inside"] > 0
    assert before["backlog"]["inside_share"] == 1.0

    # The graph sync stalls for four hours: the Jobs created at 14:00 end, their results wait, nothing else fits.
    hourly(cluster, 4, "--max-in-flight", "6", first=6, sync=False)
    sync_all(cluster)
    late = hourly(cluster, 1, "--max-in-flight", "6", first=10)[-1]["eta"]
    assert late is not None
    assert late["late_by_two_runs_or_more"] >= 3, late
    assert late["inside"] < late["scored"]
    after = accuracy(cluster, T0 + 10.5 * HOUR)
    assert after["backlog"]["late"] >= 3
    assert (
        after["backlog"]["scored"] == after["backlog"]["inside"] + after["backlog"]["early"] + after["backlog"]["late"]
    )
    assert after["all"]["scored"] == sum(after[lane]["scored"] for lane in ("requested", "fresh", "backlog"))
    stored = ledger_value(cluster, "eta")
    assert set(stored) == {"open", "scores", "waits"}
    assert len(json.dumps(stored)) <= 64 * 1024
    table = cluster.cli("explain", "--accuracy", at=T0 + 10.5 * HOUR, env=ENV)
    assert table.exit_code == 0, table.stderr
    assert table.stdout.splitlines()[0].split() == [
        "LANE",
        "SCORED",
        "INSIDE",
        "SHARE",
        "EARLY",
        "LATE",
        "LATE-2-RUNS",
        "MEDIAN-ERROR",
    ]


def test_a_run_with_its_clock_a_day_ahead_does_not_move_the_windows(cluster: Harness) -> None:
    cluster.graph(names(200))
    hourly(cluster, 3, "--max-in-flight", "6")
    hourly(cluster, 1, "--max-in-flight", "6", first=3, clock=24 * HOUR)  # its clock says tomorrow
    result, _ = cluster.run_at(T0 + 4 * HOUR, "--max-in-flight", "6", env=ENV)
    assert "stamped later than this run's clock: each taken as made between the runs around it" in result.stderr
    sync_all(cluster)
    hourly(cluster, 2, "--max-in-flight", "6", first=5)
    row = explained(cluster, "p000030==1.0", T0 + 6.5 * HOUR)[SOLVERS[0]]
    # Seven runs made two Jobs a stream each (p000000..p000013, all synced): 16 come before it, two a run from
    # 15:00 (the next run): its turn comes at 23:00 (give or take the rate's doubt), as if every clock had been
    # right; the clock a day ahead moves nothing.
    assert (row["lane"], row["ahead"]) == ("backlog", 16)
    assert row["start"] == {"p10": "2027-01-15T22:00:00Z", "p90": "2027-01-16T00:00:00Z"}
    runs = ledger_value(cluster, "runs")
    assert [run["seq"] for run in runs] == list(range(1, 8)), "kept in the order the runs happened"


def test_a_record_stamped_9999_is_evicted_in_its_turn_and_never_sets_a_window(cluster: Harness) -> None:
    cluster.graph(names(200))
    hourly(cluster, 3, "--max-in-flight", "6")
    configmap = ledger_configmap(cluster)
    runs = json.loads(configmap["data"]["runs"])
    # 165 older runs by hand, the oldest of them stamped 9999: 168 records in all, the bound.
    old = [{**runs[0], "seq": seq, "at": f"2027-01-0{1 + seq // 48}T00:00:00Z"} for seq in range(1, 166)]
    old[0]["at"] = "9999-12-31T23:59:59Z"
    ours = [{**run, "seq": run["seq"] + 165} for run in runs]
    configmap["data"]["runs"] = json.dumps(old + ours)
    cluster.fake.add(configmap)
    rows = explained(cluster, "p000030==1.0", T0 + 2.5 * HOUR)
    assert "9999" not in json.dumps(rows)
    hourly(cluster, 1, "--max-in-flight", "6", first=3)
    kept = ledger_value(cluster, "runs")
    assert len(kept) == 168
    assert kept[0]["seq"] == 2, "the oldest by its place in the order went first, whatever time it claimed"
    assert "9999" not in json.dumps(kept)


def test_an_overlapping_run_that_scheduled_nothing_does_not_lower_the_rate(cluster: Harness) -> None:
    cluster.graph(names(200))
    hourly(cluster, 4, "--max-in-flight", "6", sync=False)  # the last run's Jobs still run
    sync_all(cluster)
    cluster.run_at(T0 + 4 * HOUR, "--max-in-flight", "6", env=ENV)
    before = explained(cluster, "p000040==1.0", T0 + 4 * HOUR + 240)
    _, overlapping = cluster.run_at(T0 + 4 * HOUR + 300, "--max-in-flight", "6", env=ENV)
    assert sum(overlapping["totals"]["solver"]["lanes"].values()) == 0, "the first run's Jobs fill the cap"
    after = explained(cluster, "p000040==1.0", T0 + 4 * HOUR + 360)
    assert len(ledger_value(cluster, "runs")) == 6
    for stream in SOLVERS:
        assert after[stream]["start"] == before[stream]["start"] is not None
        assert after[stream]["solved"] == before[stream]["solved"]


def test_states_that_throughput_does_not_decide_give_their_own_time_not_a_window(cluster: Harness) -> None:
    cluster.graph(names(40))
    hourly(cluster, 3, "--max-in-flight", "6", sync=False)
    in_flight = explained(cluster, "p000000==1.0", T0 + 2.5 * HOUR)[SOLVERS[0]]
    assert in_flight["state"] == "in-flight"
    assert "start" not in in_flight
    assert "solved" not in in_flight
    job = next(name for name in cluster.jobs() if name.startswith(SOLVERS[0]))
    cluster.fake.set_job_status(MIDDLETIER, job, "Complete")
    awaiting = [row for item in ("p000000", "p000001") for row in [explained(cluster, f"{item}==1.0", T0 + 2.5 * HOUR)]]
    states = {row[SOLVERS[0]]["state"] for row in awaiting}
    assert "awaiting-sync" in states
    for rows in awaiting:
        assert "solved" not in rows[SOLVERS[0]]
    paused = explained(cluster, "p000030==1.0", T0 + 2.5 * HOUR, env={"THOTH_GRAPH_REFRESH_MAX_AWAITING_SYNC": "1"})
    assert paused[SOLVERS[0]]["state"] == "paused"
    assert "start" not in paused[SOLVERS[0]]
    assert paused[SOLVERS[0]]["reason"].startswith("sync-lag")


@pytest.mark.parametrize("seed", range(12))
def test_explain_gives_the_window_the_run_recorded_in_generated_worlds(cluster: Harness, seed: int) -> None:
    """After each run, explain, asked at that run's time, gives every item the run recorded the same solved window
    (or none, as the run had none); a requested item gets the window explain gave just before the run: both come
    from one forecast, with the same count of what comes first."""
    rng = random.Random(seed)
    cluster.graph(names(rng.randint(40, 400)))
    share = str(rng.choice([0, 0.3, 0.5]))
    args, env = ["--max-in-flight", str(rng.randint(3, 12))], {"THOTH_GRAPH_REFRESH_FRESH_SHARE": share}
    compared = 0
    for hour in range(rng.randint(4, 8)):
        if rng.random() < 0.5:  # releases arrive
            count = rng.randint(1, 9)
            cluster.import_graph({"package_versions": [version(f"new{hour}x{k}", "1.0") for k in range(count)]})
        at = T0 + hour * HOUR
        if rng.random() < 0.4:  # someone asks for an old version: explain, just before the run, gives its window
            asked = f"p{rng.randint(30, 39):06}==1.0"
            assert cluster.cli("request", asked, "--by", f"u{hour % 2}", at=at - 60, env={**ENV, **env}).exit_code == 0
        before = {
            (row["stream"], package): row["solved"]
            for package in (f"p{n:06}" for n in range(30, 40))
            for row in explained(cluster, f"{package}==1.0", at, env=env).values()
            if row["state"] == "requested"
        }
        cluster.run_at(at, *args, env={**ENV, **env})
        recorded = [p for p in ledger_value(cluster, "eta")["open"] if p[6] == at]
        for _, package, _, _, stream, lane, _, _, _, low, high, *_ in recorded:
            if lane == "requested":  # recorded by the run as explain gave it just before
                window = None if low is None else {"p10": format_time(low), "p90": format_time(high)}
                assert before[(stream, package)] == window, (hour, package, stream)
                compared += 1
        new = [p for p in recorded if p[5] != "requested"]
        for _, package, version_, _, stream, lane, _, *ends in rng.sample(new, min(len(new), 6)):
            low, high = ends[2], ends[3]  # null: no window yet (no wait measured): explain has none either
            row = explained(cluster, f"{package}=={version_}", at, env=env)[stream]
            assert (row["state"], row["lane"]) == ("waiting", lane)
            window = None if low is None else {"p10": format_time(low), "p90": format_time(high)}
            assert row["solved"] == window, (hour, package, stream)
            compared += 1
        if rng.random() < 0.7:
            sync_all(cluster)
    assert compared


def start_of(row: Obj) -> float:
    return parse_time(row["start"]["p10"]) or 0.0


def test_fresh_releases_and_requests_that_go_first_push_a_backlog_window_later(cluster: Harness) -> None:
    cluster.graph(names(300))
    hourly(cluster, 4, "--max-in-flight", "6")
    quiet = explained(cluster, "p000100==1.0", T0 + 3.5 * HOUR)[SOLVERS[0]]
    # 60 releases arrive: the fresh lane takes half of every run until they are through.
    cluster.import_graph({"package_versions": [version(f"fresh{k:03}", "1.0") for k in range(60)]})
    hourly(cluster, 1, "--max-in-flight", "6", first=4)
    burst = explained(cluster, "p000100==1.0", T0 + 4.5 * HOUR)[SOLVERS[0]]
    assert burst["ahead"] == quiet["ahead"] - 1, "the run took one backlog item of the stream, and one fresh"
    assert start_of(burst) >= start_of(quiet) + 20 * HOUR, (quiet["start"], burst["start"])
    # Requests go first too: 30 filed now wait ahead of every backlog item.
    for k in range(30):
        filed = cluster.cli("request", f"p000{200 + k}==1.0", "--by", f"user{k % 3}", at=T0 + 4.6 * HOUR, env=ENV)
        assert filed.exit_code == 0, filed.stderr
    hourly(cluster, 1, "--max-in-flight", "6", first=5)
    asked = explained(cluster, "p000100==1.0", T0 + 5.5 * HOUR)[SOLVERS[0]]
    assert start_of(asked) > start_of(burst) + 2 * HOUR, (burst["start"], asked["start"])


def test_a_scored_wait_has_its_jobs_duration_from_the_listed_table_and_no_extra_call(cluster: Harness) -> None:
    cluster.graph(names(100))
    hourly(cluster, 3, "--max-in-flight", "6")
    cluster.run_at(T0 + 3 * HOUR, "--max-in-flight", "6", env=ENV)
    for name in cluster.jobs():  # they complete and stay listed; the graph sync records their results
        cluster.fake.set_job_status(MIDDLETIER, name, "Complete")
    solved = []
    for job in cluster.jobs().values():
        annotations = job["metadata"]["annotations"]
        record = version(annotations["thoth-station.ninja/package"], annotations["thoth-station.ninja/version"])
        solved.append({**record, "solver": job["metadata"]["labels"]["thoth-station.ninja/solver"]})
    cluster.import_graph({"solved": solved})
    before = len(cluster.fake.requests)
    cluster.run_at(T0 + 4 * HOUR, "--max-in-flight", "6", env=ENV)
    reads = [r for r in cluster.fake.requests[before:] if r.method == "GET" and "/jobs/" in r.path]
    assert reads == [], "no Job is read on its own"
    waits = ledger_value(cluster, "eta")["waits"]
    timed = [wait for stream in SOLVERS for wait in waits[stream] if wait[2] is not None]
    assert timed, waits
    for _, wait, duration in timed:
        assert 0 <= duration <= wait, "the Job ran within the wait; the rest is the graph sync's lag"


def test_the_eta_key_stays_within_64_kib_dropping_the_oldest_and_a_hostile_value_is_dropped(cluster: Harness) -> None:
    cluster.graph(names(200))
    hourly(cluster, 3, "--max-in-flight", "6")
    configmap = ledger_configmap(cluster)
    stored = json.loads(configmap["data"]["eta"])
    # 2,000 old predictions of items the graph will not have soon: far over the bound.
    stored["open"] += [
        [
            f"{n:012x}",
            f"old{n:05}",
            "1.0",
            PYPI,
            SOLVERS[0],
            "backlog",
            int(T0) - 86_400 + n,
            None,
            None,
            None,
            None,
            3600,
            None,
        ]
        for n in range(2_000)
    ]
    configmap["data"]["eta"] = json.dumps(stored)
    cluster.fake.add(configmap)
    hourly(cluster, 1, "--max-in-flight", "6", first=3)
    text = ledger_configmap(cluster)["data"]["eta"]
    assert len(text.encode()) <= 64 * 1024
    kept = json.loads(text)["open"]
    olds = sorted(int(p[0], 16) for p in kept if p[1].startswith("old"))
    assert olds, "as many as fit stay"
    assert olds == list(range(2_000 - len(olds), 2_000)), "the oldest went first"
    assert any(p[6] == T0 + 3 * HOUR for p in kept), "this run's own predictions are kept"

    hostile = {
        "{not json": "eta is not a JSON object: the windows' calibration starts anew",
        json.dumps({"open": [["x"] * 13, 5], "scores": "no", "waits": {"s": [[1]]}}): (
            "eta: 3 records could not be read and were dropped"
        ),
    }
    for value, warning in hostile.items():
        configmap = ledger_configmap(cluster)
        configmap["data"]["eta"] = value
        cluster.fake.add(configmap)
        result, _ = cluster.run_at(T0 + 4 * HOUR, "--max-in-flight", "6", env=ENV)
        assert result.exit_code == 0, result.stderr
        assert warning in " ".join(result.stderr.split()), result.stderr
        assert json.loads(ledger_configmap(cluster)["data"]["eta"])["open"], "it starts anew"


def ledger_configmap(cluster: Harness) -> Obj:
    configmap = cluster.fake.get("configmaps", MIDDLETIER, "graph-refresh-ledger")
    assert configmap is not None
    return configmap
