"""Requests (ConfigMap graph-refresh-requests): `app.py request`, `request --list`, and values written by others."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from tests.fakes.kube import FakeKube
from tests.helpers import MIDDLETIER, PYPI, T0, another_writer_first

Obj = dict[str, Any]
REQUESTS_PATH = f"/api/v1/namespaces/{MIDDLETIER}/configmaps/graph-refresh-requests"


class Requests:
    """The CLI against FakeKube with a kubeconfig, as an operator or the adviser runs it."""

    def __init__(self, fake: FakeKube, run_cli: Callable[..., Result], tmp_path: Path) -> None:
        self.fake, self._run_cli = fake, run_cli
        self.env = {
            "KUBECONFIG": str(fake.kubeconfig(tmp_path / "kubeconfig")),
            "THOTH_MIDDLETIER_NAMESPACE": MIDDLETIER,
        }

    def cli(self, *args: str, at: float = T0, env: dict[str, str] | None = None) -> Result:
        return self._run_cli(list(args), env={**self.env, **(env or {})}, now=lambda: at)

    def data(self) -> dict[str, str]:
        configmap = self.fake.get("configmaps", MIDDLETIER, "graph-refresh-requests")
        assert configmap is not None, "no requests ConfigMap"
        return dict(configmap.get("data") or {})

    def put(self, data: dict[str, str]) -> None:
        self.fake.add(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "graph-refresh-requests", "namespace": MIDDLETIER},
                "data": data,
            }
        )


@pytest.fixture
def requests(run_cli: Callable[..., Result], tmp_path: Path) -> Iterator[Requests]:
    with FakeKube(tls="tls") as fake:
        yield Requests(fake, run_cli, tmp_path)


def test_a_request_is_stored_once_with_who_asked_and_when(requests: Requests) -> None:
    result = requests.cli("request", "Flask==1.1.2", "--by", "adviser")
    assert result.exit_code == 0, result.stderr
    assert "Requested flask==1.1.2 (https://pypi.org/simple)" in result.stdout
    (value,) = requests.data().values()
    assert json.loads(value) == {
        "package": "flask",
        "version": "1.1.2",
        "index": PYPI,
        "requested_at": "2027-01-15T08:00:00Z",
        "by": "adviser",
    }
    again = requests.cli("request", "flask==1.1.2", at=T0 + 60)
    assert again.exit_code == 0
    assert "already requested at 2027-01-15T08:00:00Z by adviser" in again.stdout
    assert len(requests.data()) == 1, "idempotent"
    other = requests.cli("request", "flask==1.1.2", "--index", "https://mirror.example/simple")
    assert other.exit_code == 0
    assert len(requests.data()) == 2, "another index is another item"


def test_request_list_shows_each_open_request_with_its_state(requests: Requests) -> None:
    requests.cli("request", "flask==1.1.2", "--by", "alice", at=T0)
    requests.cli("request", "numpy==2.0", at=T0 + 3600)
    listed = requests.cli("request", "--list", at=T0 + 8 * 86400, env={"THOTH_GRAPH_REFRESH_REQUEST_TTL": "691200"})
    assert listed.exit_code == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["PACKAGE", "REQUESTED", "BY", "STATE"]
    assert lines[1].split() == [
        "flask==1.1.2",
        "2027-01-15T08:00:00Z",
        "alice",
        "expired:",
        "the",
        "next",
        "run",
        "drops",
        "it",
    ]
    assert lines[2].split() == ["numpy==2.0", "2027-01-15T09:00:00Z", "-", "open", "(until", "2027-01-23T09:00:00Z)"]
    rows = json.loads(requests.cli("request", "--list", "--json", at=T0 + 7200).stdout)
    assert [(r["package"], r["state"], r["age_seconds"]) for r in rows] == [
        ("flask", "open", 7200),
        ("numpy", "open", 3600),
    ]


def test_no_requests_configmap_lists_nothing(requests: Requests) -> None:
    listed = requests.cli("request", "--list")
    assert listed.exit_code == 0
    assert "No open requests" in listed.stdout
    assert json.loads(requests.cli("request", "--list", "--json").stdout) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "say what to request as PKG==VER"),
        (["flask"], "say what to request as PKG==VER"),
        (["flask==1", "--list"], "--list lists the requests"),
        (["flask==1", "--json"], "--json goes with --list"),
        (["flask==1 2"], "cannot be scheduled: version has characters"),
        (["flask==1", "--index", "ftp://x"], "cannot be scheduled: index URL"),
        (["fl ask==1"], "cannot be scheduled: package name"),
    ],
)
def test_a_request_that_cannot_be_scheduled_is_refused(requests: Requests, args: list[str], message: str) -> None:
    result = requests.cli("request", *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert requests.fake.get("configmaps", MIDDLETIER, "graph-refresh-requests") is None


def test_values_written_by_others_are_read_or_named_and_left_alone(requests: Requests) -> None:
    good = {"package": "Flask", "version": "1.1.2", "requested_at": "2027-01-15T07:00:00Z"}
    requests.put(
        {
            "from-adviser": json.dumps(good),
            "bad-json": "{",
            "bad-version": json.dumps({**good, "version": "1 ; rm"}),
            "bad-time": json.dumps({**good, "requested_at": "99999-01-01T00:00:00Z"}),
            "huge": json.dumps({**good, "package": "x" * 500_000}),
        }
    )
    listed = requests.cli("request", "--list", "--json")
    assert listed.exit_code == 0
    assert "Traceback" not in listed.stderr
    assert [r["key"] for r in json.loads(listed.stdout)] == ["from-adviser"]
    for key in ("bad-json", "bad-version", "bad-time", "huge"):
        assert f"request '{key}' dropped" in listed.stderr
    assert max(map(len, listed.stderr.splitlines())) < 400
    added = requests.cli("request", "numpy==2.0")
    assert added.exit_code == 0
    data = requests.data()
    assert len(data) == 6
    assert data["bad-json"] == "{", "values written by others are kept as they were"
    assert requests.cli("request", "flask==1.1.2").stdout.startswith("flask==1.1.2 was already requested")


def test_a_concurrent_update_is_never_lost(requests: Requests) -> None:
    requests.cli("request", "flask==1.1.2")

    good = {"package": "pytz", "version": "1", "requested_at": "2027-01-15T07:00:00Z"}
    another_writer_first(requests.fake, "graph-refresh-requests", "adviser-1", json.dumps(good))
    result = requests.cli("request", "numpy==2.0")
    assert result.exit_code == 0, result.stderr
    assert len(requests.data()) == 3
    assert "adviser-1" in requests.data()


def test_a_cluster_that_refuses_is_a_one_line_error(requests: Requests) -> None:
    requests.fake.inject(method="GET", path=REQUESTS_PATH, status=403, times=None)
    for args in (["flask==1"], ["--list"]):
        result = requests.cli("request", *args)
        assert result.exit_code == 1
        assert "403" in result.stderr
        assert "Traceback" not in result.stderr
    unset = requests.cli("request", "--list", env={"THOTH_MIDDLETIER_NAMESPACE": ""})
    assert unset.exit_code == 2
    assert "THOTH_MIDDLETIER_NAMESPACE" in unset.stderr


def test_a_request_from_the_future_is_taken_as_now_or_dropped(requests: Requests) -> None:
    soon = {"package": "flask", "version": "1.0", "requested_at": "2027-01-15T09:00:00Z"}  # an hour ahead
    never = {"package": "six", "version": "1.1", "requested_at": "9999-12-31T23:59:59Z"}
    requests.put({"soon": json.dumps(soon), "never": json.dumps(never)})
    listed = requests.cli("request", "--list", "--json")
    assert listed.exit_code == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [(r["key"], r["requested_at"], r["age_seconds"]) for r in rows] == [("soon", "2027-01-15T08:00:00Z", 0)]
    assert "request 'never' dropped: requested_at 9999-12-31T23:59:59Z is more than a day ahead" in listed.stderr


def test_request_list_stays_narrow_whatever_was_asked(requests: Requests) -> None:
    long = {"package": "a-really-long-package-name-for-width-testing", "version": "1.0.0.post12345+local.build.abc"}
    requests.put({"long": json.dumps({**long, "requested_at": "2027-01-15T07:00:00Z", "by": "x" * 5000})})
    listed = requests.cli("request", "--list")
    assert listed.exit_code == 0, listed.stderr
    assert max(map(len, listed.stdout.splitlines())) <= 120, "cells are cut; --json has the whole values"
    assert "a-really-long-package-name" in listed.stdout
