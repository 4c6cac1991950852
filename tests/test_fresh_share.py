"""`--fresh-share 0` turns the fresh lane off: versions new since the previous run wait in the store's order
with the rest, as before lanes, rather than never being scheduled. Real runs of the CLI against FakeKube."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import Result

from graph_refresh.items import SOLVER, Candidate, WorkItem

from .fakes.kube import FakeKube
from .helpers import EXAMPLE_TEMPLATES, HOUR, INFRA, MIDDLETIER, PYPI, T0, assert_balanced, version

Obj = dict[str, Any]


class World:
    """FakeKube with the example Templates in infra, a store, and hourly real runs of three solvers."""

    def __init__(self, fake: FakeKube, run_cli: Callable[..., Result], tmp_path: Path) -> None:
        self.fake, self._run_cli, self._tmp = fake, run_cli, tmp_path
        for path in sorted(EXAMPLE_TEMPLATES.glob("*.yaml")):
            document = yaml.safe_load(path.read_text())
            document["metadata"]["namespace"] = INFRA
            fake.add(document)
        self.env = {
            "KUBECONFIG": str(fake.kubeconfig(tmp_path / "kubeconfig")),
            "THOTH_INFRA_NAMESPACE": INFRA,
            "THOTH_MIDDLETIER_NAMESPACE": MIDDLETIER,
            "THOTH_GRAPH_REFRESH_QPS": "0",
            "GRAPH_REFRESH_NO_PACKAGE_ANALYZERS": "1",
            "THOTH_GRAPH_REFRESH_MAX_IN_FLIGHT": "100",
        }
        self.runs = 0

    def arrive(self, *names: str) -> None:
        path = self._tmp / f"graph-{names[0]}.json"
        path.write_text(json.dumps({"package_versions": [version(name, "1.0") for name in names]}))
        result = self._run_cli(["import-graph", str(path)])
        assert result.exit_code == 0, result.output

    def run(self, at: float, *args: str) -> Obj:
        self.runs += 1
        path = self._tmp / f"report-{self.runs}.json"
        result = self._run_cli(["--report", str(path), *args], env=self.env, now=lambda: at, sleep=lambda s: None)
        assert result.exit_code == 0, result.stderr
        report: Obj = json.loads(path.read_text())
        assert_balanced(report)
        return report

    def cli(self, *args: str, at: float) -> Result:
        """Another command of the CLI with the run's cluster settings."""
        return self._run_cli(list(args), env=self.env, now=lambda: at)

    def has_jobs(self, name: str) -> list[bool]:
        """Per solver of the example Template, whether a Job of ``name==1.0`` exists."""
        found = []
        for solver in self.solvers:
            item = WorkItem(SOLVER, solver, Candidate(name, "1.0", PYPI))
            found.append(self.fake.get("jobs", MIDDLETIER, item.job_name) is not None)
        return found

    solvers = ("solver-fedora-34-py39", "solver-ubi-8-py38", "solver-rhel-9-py311")


@pytest.fixture
def world(run_cli: Callable[..., Result], tmp_path: Path) -> Iterator[World]:
    with FakeKube(tls="tls") as fake:
        yield World(fake, run_cli, tmp_path)


def lanes(report: Obj) -> dict[str, int]:
    totals = {"requested": 0, "fresh": 0, "backlog": 0}
    for counts in report["solvers"].values():
        for lane, n in counts["lanes"].items():
            totals[lane] += n
    return totals


def test_with_fresh_share_0_a_new_version_waits_in_store_order_and_is_scheduled(world: World) -> None:
    world.arrive("old")
    first = world.run(T0, "--fresh-share", "0")
    assert lanes(first) == {"requested": 0, "fresh": 0, "backlog": 3}
    world.arrive("new")  # after the first run: past every stream's fresh cursor
    second = world.run(T0 + HOUR, "--fresh-share", "0")
    assert world.has_jobs("new") == [True, True, True], "a version new since the previous run is not left out"
    assert lanes(second) == {"requested": 0, "fresh": 0, "backlog": 3}, "no fresh lane: the store's order"


def test_with_a_share_the_same_new_version_goes_through_the_fresh_lane(world: World) -> None:
    world.arrive("old")
    world.run(T0)
    world.arrive("new")
    second = world.run(T0 + HOUR)
    assert world.has_jobs("new") == [True, True, True]
    assert lanes(second) == {"requested": 0, "fresh": 3, "backlog": 0}


def test_with_fresh_share_0_explain_puts_a_new_version_in_the_backlog_lane(world: World) -> None:
    world.arrive("old")
    world.run(T0)  # with a share: the fresh cursors are written at the store's end
    world.arrive("new")
    args = ["explain", "new==1.0", "--json"]
    shared = world.cli(*args, at=T0 + 60)
    off = world.cli("--fresh-share", "0", *args, at=T0 + 60)
    assert shared.exit_code == 0, (shared.stderr, off.stderr)
    assert off.exit_code == 0, (shared.stderr, off.stderr)
    assert {row["lane"] for row in json.loads(shared.stdout)} == {"fresh"}
    assert {row["lane"] for row in json.loads(off.stdout)} == {"backlog"}, "no fresh lane with a share of 0"


def test_slots_the_backlog_cannot_use_go_to_new_versions_beyond_the_share(world: World) -> None:
    world.arrive("old")
    world.run(T0)  # three Jobs of old==1.0, still running at the next run
    world.arrive("new1", "new2", "new3", "new4")
    second = world.run(T0 + HOUR, "--max-in-flight", "10")
    # 7 free slots: the fresh lane's share is 3, the backlog has nothing but old==1.0 in flight.
    assert lanes(second) == {"requested": 0, "fresh": 7, "backlog": 0}, "no slot is left idle while versions wait"
    assert second["in_flight"]["solver"] == 3
