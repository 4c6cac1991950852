"""Requests (ConfigMap graph-refresh-requests): `app.py request`, `--cancel`, `--list`, and who may ask for what.

Filing a request reads the graph (which indexes it trusts, how it spells a version, what is already done) and the
Templates (which streams the deployment runs), as a run does."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from tests.fakes.kube import FakeKube
from tests.helpers import EXAMPLE_TEMPLATES, MIDDLETIER, PYPI, SOLVERS, T0, another_writer_first, unwrapped, version

Obj = dict[str, Any]
REQUESTS_PATH = f"/api/v1/namespaces/{MIDDLETIER}/configmaps/graph-refresh-requests"
PRIVATE = "https://builder:s3cret@private.example:8443/simple/"
MIRROR = "https://mirror.example/simple"


class Requests:
    """The CLI against FakeKube with a kubeconfig, as an operator or the adviser runs it, and a graph."""

    def __init__(
        self, fake: FakeKube, run_cli: Callable[..., Result], tmp_path: Path, write_graph: Callable[[Obj], Path]
    ) -> None:
        self.fake, self._run_cli, self._write_graph = fake, run_cli, write_graph
        self.env = {
            "KUBECONFIG": str(fake.kubeconfig(tmp_path / "kubeconfig")),
            "THOTH_MIDDLETIER_NAMESPACE": MIDDLETIER,
            "THOTH_GRAPH_REFRESH_TEMPLATE_DIR": str(EXAMPLE_TEMPLATES),
        }
        self.graph(
            {
                "package_versions": [
                    version("flask", "1.0"),
                    version("flask", "1.1.2"),
                    version("numpy", "2.0"),
                    version("private-pkg", "1.0", PRIVATE),
                    version("other", "1.0", MIRROR),
                ],
                "solved": [{**version("jinja2", "3.1.6"), "solver": solver} for solver in SOLVERS],
                "analyzed": [version("jinja2", "3.1.6")],
            }
        )

    def graph(self, document: Obj) -> None:
        result = self._run_cli(["import-graph", str(self._write_graph(document))])
        assert result.exit_code == 0, result.output

    def cli(self, *args: str, at: float = T0, env: dict[str, str] | None = None) -> Result:
        return self._run_cli(list(args), env={**self.env, **(env or {})}, now=lambda: at)

    def data(self) -> dict[str, str]:
        configmap = self.fake.get("configmaps", MIDDLETIER, "graph-refresh-requests")
        return {} if configmap is None else dict(configmap.get("data") or {})

    def values(self) -> list[Obj]:
        return [json.loads(value) for value in self.data().values()]

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
def requests(run_cli: Callable[..., Result], tmp_path: Path, write_graph: Callable[[Obj], Path]) -> Iterator[Requests]:
    with FakeKube(tls="tls") as fake:
        yield Requests(fake, run_cli, tmp_path, write_graph)


def test_a_request_is_stored_once_with_who_asked_and_when(requests: Requests) -> None:
    result = requests.cli("request", "Flask==1.1.2", "--by", "adviser")
    assert result.exit_code == 0, result.stderr
    assert "Requested flask==1.1.2 (https://pypi.org/simple) as key r-" in result.stdout
    assert "solver-fedora-34-py39" in result.stdout
    assert requests.values() == [
        {
            "package": "flask",
            "version": "1.1.2",
            "index": PYPI,
            "requested_at": "2027-01-15T08:00:00Z",
            "by": "adviser",
        }
    ]
    for spelling in ("flask==1.1.2.0", "FLASK==v1.1.2", "flask==1.1.2"):
        for index in ("https://pypi.org/simple", "HTTPS://PyPI.org:443/simple/", "https://pypi.org/simple?x=1"):
            again = requests.cli("request", spelling, "--index", index, at=T0 + 60)
            assert again.exit_code == 0, again.stderr
            assert "already requested at 2027-01-15T08:00:00Z by adviser" in again.stdout
    assert len(requests.data()) == 1, "one item, however it is spelled"


@pytest.mark.parametrize(
    ("asked", "stored"),
    [("flask==1.0.0", "1.0"), ("flask==v1.0", "1.0"), ("flask==1.0", "1.0"), ("flask==1.0.post0", None)],
)
def test_the_version_is_matched_to_the_graphs_spelling(requests: Requests, asked: str, stored: str | None) -> None:
    result = requests.cli("request", asked)
    assert result.exit_code == 0, result.stderr
    (value,) = requests.values()
    if stored is None:
        assert value["version"] == "1.0.post0"
        assert "The graph does not know this version yet: it is scheduled as asked." in result.stdout
    else:
        assert value["version"] == stored
        assert "does not know" not in result.stdout


@pytest.mark.parametrize(
    "index",
    [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "https://127.0.0.1:10250/pods",
        "https://kubernetes.default.svc/api",
        "http://pypi.org/simple",  # the graph has it over https only
        "https://evil.example/simple",
        "https://pypi.org.evil.example/simple",
    ],
)
def test_an_index_the_deployment_does_not_trust_is_refused(requests: Requests, index: str) -> None:
    result = requests.cli("request", "flask==1.0", "--index", index)
    assert result.exit_code == 2
    assert "is not an index this deployment trusts; it trusts https://***@private.example:8443/simple/" in result.stderr
    assert "https://mirror.example/simple, https://pypi.org/simple (add one with --allowed-index)" in result.stderr
    assert "s3cret" not in result.stderr
    assert requests.data() == {}


@pytest.mark.parametrize(
    "index",
    [
        "https://pypi.org/$(THOTH_SOLVER_PACKAGES)",
        "https://$(KUBERNETES_SERVICE_HOST)/simple",
        "https://pypi.org/simple?token=${SECRET}",
        "https://pypi.org/simple/$HOME",
    ],
)
def test_a_dollar_anywhere_in_the_index_is_refused(requests: Requests, index: str) -> None:
    result = requests.cli("request", "flask==1.0", "--index", index)
    assert result.exit_code == 2
    assert "without whitespace, quotes, '\\' or '$'" in unwrapped(result.stderr), "the reason, not mistrust"
    assert "Traceback" not in result.stderr
    assert requests.data() == {}


def test_an_allowed_index_may_be_asked_and_credentials_never_reach_the_configmap(requests: Requests) -> None:
    allowed = {"THOTH_GRAPH_REFRESH_ALLOWED_INDEXES": "https://extra.example/simple, http://plain.example/pypi"}
    for index in ("https://extra.example/simple/", "http://plain.example/pypi"):
        assert requests.cli("request", "new==1.0", "--index", index, env=allowed).exit_code == 0
    assert requests.cli("request", "new==1.0", "--index", "https://plain.example/pypi", env=allowed).exit_code == 2
    private = requests.cli("request", "private-pkg==1.0", "--index", "https://private.example:8443/simple")
    assert private.exit_code == 0, private.stderr
    assert "s3cret" not in json.dumps(requests.data())
    assert sorted(value["index"] for value in requests.values()) == [
        "http://plain.example/pypi",
        "https://extra.example/simple",
        "https://private.example:8443/simple",
    ]


def test_an_item_every_stream_has_is_nothing_to_do(requests: Requests) -> None:
    result = requests.cli("request", "jinja2==3.1.6")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("Nothing to do: every solver and analyzer of this deployment has jinja2==3.1.6")
    assert requests.data() == {}
    requests.graph({"solved": [{**version("numpy", "2.0"), "solver": solver} for solver in SOLVERS]})
    solvers_only = {"GRAPH_REFRESH_NO_PACKAGE_ANALYZERS": "1"}
    assert requests.cli("request", "numpy==2.0", env=solvers_only).stdout.startswith("Nothing to do")
    filed = requests.cli("request", "numpy==2.0")
    assert "package-analyzer" in filed.stdout, "with analyzers on, it still lacks its analysis"
    assert len(requests.data()) == 1


def test_request_list_shows_key_index_requester_age_and_state(requests: Requests) -> None:
    allowed = {"THOTH_GRAPH_REFRESH_ALLOWED_INDEXES": "https://a.example/simple,https://b.example/simple"}
    for index in (PYPI, MIRROR, "https://a.example/simple", "https://b.example/simple"):
        assert requests.cli("request", "other==1.0", "--index", index, "--by", "alice", env=allowed).exit_code == 0
    requests.cli("request", "numpy==2.0", at=T0 + 3600)
    listed = requests.cli("request", "--list", at=T0 + 8 * 86400, env={"THOTH_GRAPH_REFRESH_REQUEST_TTL": "691200"})
    assert listed.exit_code == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["KEY", "PACKAGE", "INDEX", "BY", "AGE", "STATE"]
    indexes = sorted(line.split()[2] for line in lines[1:] if "other==1.0" in line)
    assert indexes == ["https://a.example/simple", "https://b.example/simple", MIRROR, PYPI], "four rows, four indexes"
    numpy = next(line for line in lines if "numpy==2.0" in line).split()
    assert numpy[0].startswith("r-")
    assert numpy[3:] == ["-", "7d", "open"]
    assert all(line.endswith("expired") for line in lines if "other==1.0" in line)
    assert max(map(len, lines)) <= 100
    rows = json.loads(requests.cli("request", "--list", "--json", at=T0 + 7200).stdout)
    assert sorted((r["package"], r["state"], r["age_seconds"]) for r in rows)[-1] == ("other", "open", 7200)
    assert {r["key"] for r in rows} == set(requests.data())


def test_no_requests_configmap_lists_nothing(requests: Requests) -> None:
    listed = requests.cli("request", "--list")
    assert listed.exit_code == 0
    assert "No requests" in listed.stdout
    assert json.loads(requests.cli("request", "--list", "--json").stdout) == []


def test_cancel_removes_a_request_by_item_or_by_key_and_says_when_there_is_none(requests: Requests) -> None:
    requests.cli("request", "flask==1.0", "--by", "alice")
    requests.cli("request", "numpy==2.0")
    requests.put({**requests.data(), "hand-written": json.dumps({"package": "flask", "version": "1.0.0"})})
    cancelled = requests.cli("request", "--cancel", "Flask==1.0", "--index", "https://pypi.org/simple/")
    assert cancelled.exit_code == 0, cancelled.stderr
    assert cancelled.stdout.startswith("Cancelled: removed 2 keys")
    (key,) = requests.data()
    by_key = requests.cli("request", "--cancel", key)
    assert by_key.exit_code == 0
    assert requests.data() == {}
    for missing in ("flask==1.0", "r-0000000000", "-"):
        none = requests.cli("request", "--cancel", missing)
        assert none.exit_code == 1
        assert "nothing to cancel" in none.stderr
    assert requests.cli("request", "--cancel", "r-00", "--index", PYPI).exit_code == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "say what to request as PKG==VER"),
        (["flask"], "'flask' is not PKG==VER"),
        (["flask==1", "--list"], "--list lists the requests"),
        (["flask==1", "--json"], "--json goes with --list"),
        (["flask==1 2"], "version has characters"),
        (["flask==1", "--index", "ftp://x"], "'ftp://x' is not an http(s) index URL"),
        (["--cancel"], "say what to cancel: PKG==VER (with --index) or a request's KEY"),
        (["fl ask==1"], "package name is not a PEP 508 name"),
        (["fl\x1b[2Jask==1"], "fl\\x1b[2Jask==1: package name is not a PEP 508 name"),
        (["fl\x1b[2Jask"], "'fl\\x1b[2Jask' is not PKG==VER"),
        (["--cancel", "flask==1", "--by", "x"], "--cancel takes PKG==VER"),
    ],
)
def test_a_request_that_cannot_be_scheduled_is_refused(requests: Requests, args: list[str], message: str) -> None:
    result = requests.cli("request", *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert "\x1b" not in result.stderr
    assert "Traceback" not in result.stderr
    assert requests.fake.get("configmaps", MIDDLETIER, "graph-refresh-requests") is None


def test_hostile_text_from_the_configmap_is_escaped_in_every_output(requests: Requests) -> None:
    hostile = "eve\x1b[2J\nflask==9.9 (forged)\u202eevil"
    requests.put({"k\x1b[31m": json.dumps({"package": "flask", "version": "1.0", "by": hostile})})
    for args in (["--list"], ["--list", "--json"]):
        listed = requests.cli("request", *args)
        assert listed.exit_code == 0, listed.stderr
        assert "\x1b" not in listed.stdout
        assert "\u202e" not in listed.stdout
        assert "flask==9.9" not in listed.stdout.splitlines()[-1][:12]
    rows = json.loads(requests.cli("request", "--list", "--json").stdout)
    assert rows[0]["by"] == "eve\\x1b[2J\\nflask==9.9 (forged)\\u202eevil"
    assert rows[0]["key"] == "k\\x1b[31m"
    lines = requests.cli("request", "--list").stdout.splitlines()
    table = [line for line in lines if ": advisable on " not in line]  # below the table: each solver's closure
    assert len(table) == 2, "a newline in a value adds no row"
    assert len(lines) == 2 + len(SOLVERS)


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
    rows = json.loads(listed.stdout)
    assert [r["key"] for r in rows if r["state"] == "open"] == ["from-adviser"]
    assert sorted(r["key"] for r in rows if r["state"].startswith("unreadable")) == [
        "bad-json",
        "bad-time",
        "bad-version",
        "huge",
    ]
    assert max(map(len, listed.stdout.splitlines())) < 400
    added = requests.cli("request", "numpy==2.0")
    assert added.exit_code == 0
    data = requests.data()
    assert len(data) == 6
    assert data["bad-json"] == "{", "values written by others are kept as they were"
    assert requests.cli("request", "flask==1.1.2").stdout.startswith("flask==1.1.2 (https://pypi.org/simple) was")


def test_a_concurrent_update_is_never_lost(requests: Requests) -> None:
    requests.cli("request", "flask==1.1.2")
    good = {"package": "pytz", "version": "1", "requested_at": "2027-01-15T07:00:00Z"}
    another_writer_first(requests.fake, "graph-refresh-requests", "adviser-1", json.dumps(good))
    result = requests.cli("request", "numpy==2.0")
    assert result.exit_code == 0, result.stderr
    assert len(requests.data()) == 3
    assert "adviser-1" in requests.data()
    another_writer_first(requests.fake, "graph-refresh-requests", "adviser-2", json.dumps(good))
    assert requests.cli("request", "--cancel", "numpy==2.0").exit_code == 0
    assert set(requests.data()) == {"adviser-1", "adviser-2", *(k for k in requests.data() if k.startswith("r-"))}
    assert len(requests.data()) == 3


def test_a_cluster_that_refuses_is_a_one_line_error(requests: Requests) -> None:
    requests.fake.inject(method="GET", path=REQUESTS_PATH, status=403, times=None)
    for args in (["flask==1.0"], ["--list"], ["--cancel", "flask==1.0"]):
        result = requests.cli("request", *args)
        assert result.exit_code == 1
        assert "403" in result.stderr
        assert len([line for line in result.stderr.splitlines() if "ERROR" in line]) == 1
        assert "Traceback" not in result.stderr
    unset = requests.cli("request", "--list", env={"THOTH_MIDDLETIER_NAMESPACE": ""})
    assert unset.exit_code == 2
    assert "THOTH_MIDDLETIER_NAMESPACE" in unset.stderr


def test_a_request_without_a_time_or_ahead_of_the_clock_is_listed_as_open(requests: Requests) -> None:
    requests.put(
        {
            "no-time": json.dumps({"package": "flask", "version": "1.0"}),
            "ahead": json.dumps({"package": "six", "version": "1.1", "requested_at": "9999-12-31T23:59:59Z"}),
        }
    )
    rows = {r["key"]: r for r in json.loads(requests.cli("request", "--list", "--json").stdout)}
    assert rows["no-time"]["state"] == "open"
    assert rows["no-time"]["requested_at"] is None
    assert rows["ahead"]["state"] == "open"


def test_request_list_stays_narrow_whatever_was_asked(requests: Requests) -> None:
    long = {"package": "a-really-long-package-name-for-width-testing", "version": "1.0.0.post12345+local.build.abc"}
    requests.put(
        {
            "long": json.dumps({**long, "requested_at": "2027-01-15T07:00:00Z", "by": "x" * 5000}),
            "notjson": "hello {",
            "bad-index": json.dumps({"package": "flask", "version": "1.0", "index": "https://x.example/$(A)" * 20}),
        }
    )
    listed = requests.cli("request", "--list")
    assert listed.exit_code == 0, listed.stderr
    assert max(map(len, listed.stdout.splitlines())) <= 100, "cells are cut; --json has the whole values"
    assert "a-really-long-package-name" in listed.stdout
