"""One decision, told the same way (graph_refresh/fate.py): on many generated worlds, what `explain` says of every
item and stream is what the next real run then does with it.

A world is made the way a deployment makes one: a graph (some items solved by some solvers, some analyzed, one
item invalid), real runs that create Jobs, Jobs then ended at random (in flight, complete, failed for every
cause, at times in the past, or gone), requests, a quota. Then, at a later hour, `explain --json` for every item,
and one real run with room for everything; each stream of each item must agree:

- a Job the run creates is the one explain announced (requested, waiting or paused: its attempt number, so
  its name), and explain announced no Job the run did not create;
- every other item is skipped by the run for the reason explain gave (in flight, awaiting sync, failed,
  quarantined, invalid), stream by stream, as the report counts them.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from graph_refresh.items import ANALYZER, SOLVER, Candidate, WorkItem
from graph_refresh.store.graphfile import parse_graph

from .fakes.dgraph import FakeDgraph, FakeGraph
from .fakes.kube import FakeKube
from .helpers import HOUR, MIDDLETIER, PYPI, SOLVERS, T0, Harness, RunCli, oom, quota, version

Obj = dict[str, Any]
WORLDS = 250  # per store: 500 in all
PACKAGES = 4
SKIPS = {"in-flight": "in-flight", "awaiting-sync": "awaiting-sync", "failed": "failed-recently"}
SKIPS |= {"quarantined": "quarantined", "invalid": "invalid"}
DEPENDENCIES = [("dep0", "1.0"), ("dep1", "1.0"), ("dep1", "2.0")]


class World:
    """One cluster and one graph, reset for every world."""

    def __init__(self, cluster: Harness, dgraph: FakeDgraph, store: str) -> None:
        self.cluster, self.dgraph, self.store = cluster, dgraph, store
        self.env: dict[str, str] = {"THOTH_GRAPH_REFRESH_MAX_IN_FLIGHT": "0"}
        if store == "dgraph":
            self.env["GRAPH_SERVICE_HOST"] = dgraph.host

    def reset(self, document: Obj, env: dict[str, str]) -> None:
        fake = self.cluster.fake
        for resource in ("jobs", "pods", "configmaps", "resourcequotas"):
            for obj in fake.objects(resource, MIDDLETIER):
                fake.delete(resource, MIDDLETIER, obj["metadata"]["name"])
        if self.store == "dgraph":
            self.dgraph.graph = FakeGraph(parse_graph(document, source="world"))
        else:
            Path(os.environ["GRAPH_REFRESH_SQLITE_PATH"]).unlink(missing_ok=True)  # the test's store (conftest)
            self.cluster.import_graph(document)
        self.env = {**self.env, **env}

    def run(self, at: float) -> Obj:
        result, report = self.cluster.run(now=lambda: at, env=self.env)
        assert result.exit_code in (0, 3), result.stderr
        return report

    def explain(self, requirement: str, at: float) -> dict[str, Obj]:
        result = self.cluster.cli("explain", requirement, "--json", at=at, env=self.env)
        assert result.exit_code in (0, 1), result.stderr
        return {row["stream"]: row for row in json.loads(result.stdout)}


@pytest.fixture(params=["sqlite", "dgraph"])
def world(
    request: pytest.FixtureRequest, run_cli: RunCli, tmp_path: Path, write_graph: Callable[[Obj], Path]
) -> Iterator[World]:
    with FakeKube(tls="tls") as fake, FakeDgraph({}) as dgraph:
        cluster = Harness(fake, run_cli, tmp_path, write_graph)
        yield World(cluster, dgraph, request.param)


def stamp(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))


def end_jobs_at_random(world: World, rng: random.Random, at: float) -> None:
    """Every Job the runs left ends one way or another, as the cluster would end it."""
    cluster = world.cluster
    for name, job in cluster.jobs().items():
        if "conditions" in (job.get("status") or {}):
            continue  # ended before
        fate = rng.choice(["gone", "in-flight", "complete", "oom", "deadline", "error", "evicted", "error-gone"])
        failed_at = at - rng.choice([60, 1800, 5400, 4 * HOUR, 30 * HOUR])
        if fate == "gone":
            cluster.fake.delete("jobs", MIDDLETIER, name)
        elif fate == "complete":
            cluster.fake.set_job_status(MIDDLETIER, name, "Complete")
        elif fate == "oom":
            cluster.fail(job, at=failed_at, pod_status=oom())
        elif fate == "deadline":
            cluster.fail(job, at=failed_at, reason="DeadlineExceeded")
        elif fate == "evicted":
            cluster.fail(job, at=failed_at, pod_status={"phase": "Failed", "reason": "Evicted"})
        elif fate in ("error", "error-gone"):
            cluster.fail(job, at=failed_at, pod_status=None if fate == "error-gone" else {"phase": "Failed"})


def make_world(world: World, seed: int) -> tuple[list[Candidate], float]:
    """A graph, a few runs whose Jobs end at random, requests and a quota; returns the items and the hour."""
    rng = random.Random(seed)
    packages = [f"pkg{n}" for n in range(PACKAGES)]
    # What a solved version depends on (a request brings it: docs/lanes.md): other packages (a cycle at times),
    # versions known only as dependencies, one invalid
    needs = {p: [version(q, "1.0") for q in packages if q != p and rng.random() < 0.3] for p in packages}
    for p in packages:
        needs[p] += [version(d, v) for d, v in DEPENDENCIES if rng.random() < 0.4]
    needs[DEPENDENCIES[0][0]] = [version("deeper", "1.0")] + [version("bad", "1 0")] * (rng.random() < 0.3)
    solved = [(p, solver) for p in [*packages, DEPENDENCIES[0][0]] for solver in SOLVERS if rng.random() < 0.25]
    document: Obj = {
        "package_versions": [version(p, "1.0") for p in packages] + [version("bad", "1 0")],
        "solved": [{**version(p, "1.0"), "solver": solver, "depends_on": needs[p]} for p, solver in solved],
        "analyzed": [version(p, "1.0") for p in packages if rng.random() < 0.25],
    }
    env = {
        "THOTH_GRAPH_REFRESH_MAX_ATTEMPTS": str(rng.choice([0, 2, 3])),
        "THOTH_GRAPH_REFRESH_RETRY_BACKOFF": str(rng.choice([600, 3600, 7200])),
        "GRAPH_REFRESH_NO_PACKAGE_ANALYZERS": rng.choice(["0", "0", "1"]),
        "THOTH_GRAPH_REFRESH_MAX_MEMORY": rng.choice(["8Gi", "2Gi"]),
    }
    world.reset(document, env)
    if rng.random() < 0.3:
        world.cluster.fake.add(quota("memory", {"limits.memory": "200Gi", "count/jobs.batch": "500"}, {}))
    at = T0
    for _ in range(rng.choice([1, 2, 3])):
        world.run(at)
        at += HOUR
        end_jobs_at_random(world, rng, at)
    for package in [*packages, "new-pkg"]:
        if rng.random() < 0.3:
            filed = world.cluster.cli(
                "request", f"{package}==1.0", "--by", rng.choice(["a", "b"]), at=at, env=world.env
            )
            assert filed.exit_code == 0, filed.stderr
    at += rng.choice([60, HOUR, 3 * HOUR, 24 * HOUR])
    candidates = [Candidate(p, "1.0", PYPI) for p in [*packages, "new-pkg"]] + [Candidate("bad", "1 0", PYPI)]
    candidates += [Candidate(d, v, PYPI) for d, v in [*DEPENDENCIES, ("deeper", "1.0")]]
    return candidates, at


def check_world(world: World, seed: int) -> None:
    candidates, at = make_world(world, seed)
    said = {c: world.explain(f"{c.package_name}=={c.package_version}", at) for c in candidates}
    before = set(world.cluster.jobs())
    report = world.run(at)
    created = set(world.cluster.jobs()) - before
    expected_jobs, expected_skips = set(), Counter[tuple[str, str]]()
    for candidate, rows in said.items():
        for stream, row in rows.items():
            kind, solver = (ANALYZER, None) if stream == ANALYZER else (SOLVER, stream)
            state = row["state"]
            if state in ("requested", "waiting", "paused"):
                item = WorkItem(kind, solver, candidate, row.get("attempt", 1))
                expected_jobs.add(item.job_name)
            elif state in SKIPS:
                expected_skips[(stream, SKIPS[state])] += 1
            else:
                assert state in ("solved", "analyzed", "unknown"), (seed, candidate, row)
    assert created == expected_jobs, (seed, said)
    requested = Counter(stream for rows in said.values() for stream, row in rows.items() if row["state"] == "requested")
    lanes = {stream: counts["lanes"]["requested"] for stream, counts in report["solvers"].items()}
    lanes[ANALYZER] = report["totals"][ANALYZER]["lanes"]["requested"]
    assert {s: n for s, n in lanes.items() if n} == dict(requested), (seed, said, "the requested lane as explained")
    skips = Counter[tuple[str, str]]()
    for stream, counts in [*report["solvers"].items(), (ANALYZER, report["totals"][ANALYZER])]:
        for reason, count in counts["skipped"].items():
            if count and reason in SKIPS.values():
                skips[(stream, reason)] += count
    assert skips == expected_skips, (seed, said, report["solvers"])


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_explain_says_what_the_next_run_does_in_every_generated_world(world: World) -> None:
    for seed in range(WORLDS):
        check_world(world, seed)
