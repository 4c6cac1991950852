"""The Dgraph store through the command line, configured the way users configure it.

Only the variables an operator sets (GRAPH_SERVICE_HOST, GRAPH_TLS_PATH, GRAPH_REFRESH_DGRAPH_USER and
_PASSWORD) select and configure the store; the graph is the gRPC Dgraph stand-in of tests/fakes/dgraph.py
serving the bundled sample graph. Every run is a dry run from the example Templates: no cluster.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import grpc
import pytest
from click.testing import CliRunner, Result

from graph_refresh import cli
from graph_refresh.backoff import STORE_READS
from graph_refresh.items import Candidate

from .fakes.dgraph import FakeDgraph
from .helpers import CONFIG_ENV, EXAMPLE_TEMPLATES, ROOT, SAMPLE_GRAPH, assert_balanced, free_port

pytestmark = pytest.mark.timeout(30)

RunCli = Callable[..., Result]
Serve = Callable[..., FakeDgraph]
SOLVERS = {"solver-fedora-34-py39", "solver-ubi-8-py38", "solver-rhel-9-py311"}


# -- fixtures and helpers ---------------------------------------------------------------------------


def assert_read_only(fake: FakeDgraph) -> None:
    """graph-refresh never writes: only Login and read-only Query RPCs without mutations reached the fake."""
    for request in fake.requests:
        assert request.method in ("Query", "Login"), request
        if request.method == "Query":
            assert request.read_only, request
            assert request.mutations == 0, request
            assert not request.best_effort, request


@pytest.fixture
def serve() -> Iterator[Serve]:
    """Start fakes serving the sample graph; afterwards stop them and check nothing asked them to write."""
    started: list[FakeDgraph] = []

    def start(**kwargs: Any) -> FakeDgraph:
        started.append(FakeDgraph(SAMPLE_GRAPH, **kwargs).start())
        return started[-1]

    yield start
    for fake in started:
        fake.stop()
    for fake in started:
        assert_read_only(fake)


@pytest.fixture
def mutual(serve: Serve, certs: SimpleNamespace) -> FakeDgraph:
    """A fake that requires a client certificate from ``certs.mine``'s CA."""
    return serve(tls=certs.mine.server_tls(mutual=True))


def dgraph_env(host: str, tls_path: Path | None = None, **extra: str) -> dict[str, str]:
    """The variables an operator sets to read the graph from Dgraph."""
    env = {"GRAPH_SERVICE_HOST": host, **extra}
    if tls_path is not None:
        env["GRAPH_TLS_PATH"] = str(tls_path)
    return env


def plan(
    run_cli: RunCli, tmp_path: Path, env: dict[str, str], *args: str, name: str = "out", write: bool = True
) -> tuple[Result, dict[str, Any] | None, Path]:
    """A dry run from the example Templates: the result, the report (None if none was written), the manifests
    folder (filled only when ``write``: rendering YAML is most of a run's time)."""
    out, report = tmp_path / name, tmp_path / f"{name}.json"
    output = ["--output-dir", str(out)] if write else []
    result = run_cli(
        ["--dry-run", "--template-dir", str(EXAMPLE_TEMPLATES), *output, "--report", str(report), *args],
        env=env,
        sleep=lambda seconds: None,  # a retry's back-off passes at once
    )
    data = json.loads(report.read_text()) if report.exists() else None
    return result, data, out


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.yaml"))}


def assert_failed(result: Result, report: dict[str, Any] | None, code: int, *fragments: str) -> str:
    """Exit ``code`` with a message holding every fragment, no traceback; a report for exit 1, none for 2."""
    text = result.stdout + result.stderr
    assert result.exit_code == code, text
    assert "Traceback" not in text
    for fragment in fragments:
        assert fragment in result.stderr, (fragment, result.stderr)
    if code == 1:
        assert report is not None
        assert report["exit_code"] == 1
        assert report["store"] == "dgraph"
        for fragment in fragments:
            assert fragment in report["error"]
    else:
        assert report is None, "no report for a configuration error"
    return text


def tls_dir(path: Path, source: Path, *names: str) -> Path:
    """A GRAPH_TLS_PATH holding only ``names`` copied from ``source``."""
    path.mkdir()
    for name in names:
        shutil.copy(source / name, path / name)
    return path


@pytest.fixture(scope="module")
def sqlite_plan(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """What the embedded store plans for the sample graph (uncapped): ``report`` and manifest ``files``.

    Computed once per module (a dry run of the sample renders several hundred manifests), so it sets the
    environment itself: every configuration variable cleared, as the function-scoped ``clean_env`` does.
    """
    base = tmp_path_factory.mktemp("sqlite-plan")
    env: dict[str, str | None] = {name: None for name in CONFIG_ENV}
    env |= {
        "HOME": str(base / "home"),
        "GRAPH_REFRESH_SQLITE_PATH": str(base / "graph.sqlite3"),
        "THOTH_GRAPH_REFRESH_EAGER_STOP": "0",
    }
    runner = CliRunner()
    imported = runner.invoke(cli.main, ["import-graph", str(SAMPLE_GRAPH)], env=env, catch_exceptions=False)
    assert imported.exit_code == 0, imported.stderr
    out, report = base / "out", base / "report.json"
    args = ["--dry-run", "--template-dir", str(EXAMPLE_TEMPLATES), "--output-dir", str(out), "--report", str(report)]
    result = runner.invoke(cli.main, args, env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    data = json.loads(report.read_text())
    assert data["store"] == "sqlite"
    return SimpleNamespace(report=data, files=files_of(out))


# -- the same plan as the embedded store ---------------------------------------------------------


def test_mutual_tls_dry_run_plans_exactly_what_sqlite_plans(
    run_cli: RunCli, tmp_path: Path, mutual: FakeDgraph, certs: SimpleNamespace, sqlite_plan: SimpleNamespace
) -> None:
    env = dgraph_env(mutual.host, certs.mine.directory, THOTH_GRAPH_REFRESH_EAGER_STOP="0")
    result, report, out = plan(run_cli, tmp_path, env)
    assert result.exit_code == 0, result.stderr
    assert report is not None
    assert report["store"] == "dgraph"
    assert "mutual TLS" in result.stderr
    # Candidates come in another order (SQLite by name, Dgraph by uid); uncapped, the set of Jobs is the same.
    assert files_of(out) == sqlite_plan.files
    assert report["totals"] == sqlite_plan.report["totals"]
    assert report["solvers"] == sqlite_plan.report["solvers"]
    assert report["exit_code"] == 0
    assert report["error"] is None
    assert set(report["solvers"]) == SOLVERS
    for kind, counts in report["totals"].items():
        assert counts["stopped_by"] is None, kind
        assert counts["scheduled"] > 0, kind
    assert report["totals"]["solver"]["skipped"]["invalid"] > 0  # the sample's hostile records
    assert len(files_of(out)) == sum(counts["scheduled"] for counts in report["totals"].values())
    assert_balanced(report)
    queries = mutual.calls()
    assert queries
    assert all(call.error is None for call in queries)


def test_nothing_is_ever_written_to_the_graph(
    run_cli: RunCli, tmp_path: Path, serve: Serve, certs: SimpleNamespace
) -> None:
    fake = serve(tls=certs.mine.server_tls(mutual=True), users={"groot": "s3cret"})
    env = dgraph_env(
        fake.host, certs.mine.directory, GRAPH_REFRESH_DGRAPH_USER="groot", GRAPH_REFRESH_DGRAPH_PASSWORD="s3cret"
    )
    result, _, _ = plan(run_cli, tmp_path, env, write=False)
    assert result.exit_code == 0, result.stderr
    assert [r.method for r in fake.requests if r.method != "Query"] == ["Login"]
    assert len(fake.calls()) > len(SOLVERS) + 1  # every stream paged to its empty page
    assert_read_only(fake)


# -- faults ---------------------------------------------------------------------------------------


def test_server_down_exits_1_naming_the_host(run_cli: RunCli, tmp_path: Path, certs: SimpleNamespace) -> None:
    host = f"localhost:{free_port()}"
    result, report, out = plan(run_cli, tmp_path, dgraph_env(host, certs.mine.directory))
    assert_failed(result, report, 1, host, "unavailable", f"after {STORE_READS.attempts} attempts")
    assert report is not None
    assert "UNKNOWN" not in report["error"]  # gRPC's subchannel status is noise here
    assert not list(out.glob("*.yaml"))


def test_wrong_ca_exits_1_saying_tls(
    run_cli: RunCli, tmp_path: Path, mutual: FakeDgraph, certs: SimpleNamespace
) -> None:
    result, report, _ = plan(run_cli, tmp_path, dgraph_env(mutual.host, certs.other.directory))
    assert_failed(result, report, 1, mutual.host, "TLS")
    assert mutual.requests == []


def test_missing_client_certificate_under_mutual_tls_exits_1(
    run_cli: RunCli, tmp_path: Path, mutual: FakeDgraph, certs: SimpleNamespace
) -> None:
    path = tls_dir(tmp_path / "tls", certs.mine.directory, "ca.crt")
    result, report, _ = plan(run_cli, tmp_path, dgraph_env(mutual.host, path))
    assert_failed(result, report, 1, mutual.host, "client.user.crt")
    assert mutual.requests == []


@pytest.mark.parametrize(
    ("present", "missing"), [("client.user.crt", "client.user.key"), ("client.user.key", "client.user.crt")]
)
def test_one_client_file_alone_exits_2_naming_the_missing_one(
    present: str, missing: str, run_cli: RunCli, tmp_path: Path, mutual: FakeDgraph, certs: SimpleNamespace
) -> None:
    path = tls_dir(tmp_path / "tls", certs.mine.directory, "ca.crt", present)
    result, report, _ = plan(run_cli, tmp_path, dgraph_env(mutual.host, path))
    assert_failed(result, report, 2, "GRAPH_TLS_PATH", str(path / missing))
    assert mutual.requests == []


def test_missing_tls_directory_exits_2_naming_it(run_cli: RunCli, tmp_path: Path, mutual: FakeDgraph) -> None:
    absent = tmp_path / "no-such-tls"
    result, report, _ = plan(run_cli, tmp_path, dgraph_env(mutual.host, absent))
    assert_failed(result, report, 2, "GRAPH_TLS_PATH", str(absent))
    assert mutual.requests == []


def test_deadline_exceeded_mid_stream_exits_1(
    run_cli: RunCli, tmp_path: Path, mutual: FakeDgraph, certs: SimpleNamespace
) -> None:
    # A real deadline (a slow answer past StoreSettings.timeout_seconds) is tested at the store level;
    # here the server answers DEADLINE_EXCEEDED after one good page, as an overloaded alpha does.
    mutual.inject(grpc.StatusCode.DEADLINE_EXCEEDED, times=100, after=1)
    result, report, _ = plan(run_cli, tmp_path, dgraph_env(mutual.host, certs.mine.directory))
    assert_failed(result, report, 1, mutual.host, "deadline exceeded")
    calls = mutual.calls()
    assert calls[0].error is None
    assert all(call.error is not None for call in calls[1:])
    # The next page of the first stream (read ahead) and the first page of the second fail alike: each
    # request is tried STORE_READS.attempts times at most, every retry from the same cursor.
    tries = Counter((call.query, tuple(sorted(call.vars.items()))) for call in calls[1:])
    assert max(tries.values()) == STORE_READS.attempts
    assert len(tries) <= 2


def test_aborted_once_then_success_plans_everything(
    run_cli: RunCli,
    tmp_path: Path,
    mutual: FakeDgraph,
    certs: SimpleNamespace,
    sqlite_plan: SimpleNamespace,
) -> None:
    fault = mutual.inject(grpc.StatusCode.ABORTED, after=1)
    result, report, out = plan(run_cli, tmp_path, dgraph_env(mutual.host, certs.mine.directory))
    assert result.exit_code == 0, result.stderr
    assert report is not None
    assert report["exit_code"] == 0
    assert fault.hits == 1
    assert "aborted" in result.stderr  # the retry is logged as a warning
    calls = mutual.calls()
    (failed,) = [call for call in calls if call.error is not None]
    assert failed.error is not None
    assert failed.error.startswith("ABORTED")
    # The retry is the next request of the same page (a page read ahead may come between).
    retried = next(c for c in calls[calls.index(failed) + 1 :] if (c.query, c.vars) == (failed.query, failed.vars))
    assert retried.error is None
    assert report["totals"] == sqlite_plan.report["totals"]
    assert files_of(out) == sqlite_plan.files


def test_persistent_abort_exits_1_after_bounded_attempts(
    run_cli: RunCli, tmp_path: Path, mutual: FakeDgraph, certs: SimpleNamespace
) -> None:
    mutual.inject(grpc.StatusCode.ABORTED, times=100)
    result, report, _ = plan(run_cli, tmp_path, dgraph_env(mutual.host, certs.mine.directory))
    attempts = STORE_READS.attempts
    assert attempts == 3
    assert_failed(result, report, 1, mutual.host, f"after {attempts} attempts: aborted")
    # The graph's index list is read first; its failure is only a warning (the candidates' own indexes are used).
    calls = [call for call in mutual.calls() if "query indexes" not in call.query]
    assert len(calls) == attempts
    assert all((c.error or "").startswith("ABORTED") for c in calls)


@pytest.mark.parametrize(
    ("answer", "what"),
    [(b"[]", "is a JSON array, not an object"), (b'{"page": "x"}', "'page' is a JSON string, not a list of nodes")],
)
def test_an_answer_of_the_wrong_shape_exits_1_not_nothing_to_do(
    answer: bytes, what: str, run_cli: RunCli, tmp_path: Path, serve: Serve
) -> None:
    fake = serve()
    fake.inject(answer=answer, match=lambda request: "page(" in request.query and "indexes" not in request.query)
    result, report, _ = plan(run_cli, tmp_path, dgraph_env(fake.host), write=False)
    assert_failed(result, report, 1, fake.host, what)
    pages = [call for call in fake.calls() if "page(" in call.query and "indexes" not in call.query]
    assert len(pages) == 1, "a wrong shape is not retried"


# -- plaintext and login --------------------------------------------------------------------------


def test_plaintext_works_and_warns(run_cli: RunCli, tmp_path: Path, serve: Serve) -> None:
    fake = serve()
    result, report, _ = plan(run_cli, tmp_path, dgraph_env(fake.host), write=False)
    assert result.exit_code == 0, result.stderr
    assert report is not None
    assert report["store"] == "dgraph"
    assert re.search(r"WARNING .*GRAPH_TLS_PATH is not set.*plaintext", result.stderr), result.stderr
    assert report["totals"]["package-analyzer"]["scheduled"] > 0


@pytest.mark.parametrize(("password", "code"), [("s3cret", 0), ("wrong-s3cret", 1)], ids=["right", "wrong"])
def test_acl_login(
    password: str, code: int, run_cli: RunCli, tmp_path: Path, serve: Serve, certs: SimpleNamespace
) -> None:
    fake = serve(tls=certs.mine.server_tls(mutual=True), users={"groot": "s3cret"})
    env = dgraph_env(
        fake.host, certs.mine.directory, GRAPH_REFRESH_DGRAPH_USER="groot", GRAPH_REFRESH_DGRAPH_PASSWORD=password
    )
    result, report, _ = plan(run_cli, tmp_path, env, write=False)
    if code == 0:
        assert result.exit_code == 0, result.stderr
        assert report is not None
        assert report["totals"]["package-analyzer"]["scheduled"] > 0
        assert "logged in as 'groot'" in result.stderr
    else:
        assert_failed(result, report, 1, fake.host, "authentication")
        assert fake.calls() == []  # no query after a failed login
    assert len(fake.calls("Login")) == 1  # a refused password is not retried
    assert "s3cret" not in result.stdout + result.stderr
    assert report is not None
    assert "s3cret" not in json.dumps(report)


def test_import_graph_never_contacts_the_production_graph(run_cli: RunCli, tmp_path: Path, serve: Serve) -> None:
    # test_cli checks the exit code and message; here, that nothing reached Dgraph or the embedded store.
    fake = serve()
    result = run_cli(["import-graph", str(SAMPLE_GRAPH)], env=dgraph_env(fake.host))
    assert result.exit_code == 2
    assert "never writes to the production graph" in result.stderr
    assert fake.requests == []
    assert not (tmp_path / "graph.sqlite3").exists()


# -- the README recipe: the fake and the app as programs ------------------------------------------


@pytest.mark.timeout(20)
def test_readme_recipe_runs_the_app_against_the_standalone_fake(tmp_path: Path) -> None:
    env = {**os.environ, "GRPC_VERBOSITY": "NONE"}
    tls = tmp_path / "dgraph-tls"
    fake_module = [sys.executable, "-m", "tests.fakes.dgraph"]
    made = subprocess.run(
        [*fake_module, "--make-tls", str(tls)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=15,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    serve = [
        *fake_module,
        "--graph",
        "data/sample-graph.json",
        "--port",
        "0",
        "--tls-cert",
        str(tls / "node.crt"),
        "--tls-key",
        str(tls / "node.key"),
        "--client-ca",
        str(tls / "ca.crt"),
    ]
    with subprocess.Popen(serve, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as fake:
        try:
            assert fake.stdout is not None
            line = fake.stdout.readline()
            match = re.fullmatch(r"listening on (localhost:\d+)\n", line)
            assert match, line
            app = subprocess.run(
                [sys.executable, "app.py", "--dry-run", "--template-dir", "openshift/templates"],
                cwd=ROOT,
                env={**env, "GRAPH_SERVICE_HOST": match[1], "GRAPH_TLS_PATH": str(tls)},
                capture_output=True,
                text=True,
                timeout=15,
                check=False,
            )
        finally:
            fake.terminate()
            _, fake_stderr = fake.communicate(timeout=10)
    assert app.returncode == 0, app.stderr
    assert "mutual TLS" in app.stderr
    assert "Traceback" not in app.stderr
    planned = {
        cells[0]: int(cells[2])
        for cells in map(str.split, app.stdout.splitlines())
        if len(cells) == 8 and cells[2].isdigit()
    }  # the plan table: stream, examined, scheduled, ...
    assert {solver: planned[solver] > 0 for solver in SOLVERS} == dict.fromkeys(SOLVERS, True)
    assert planned["package-analyzer"] > 0
    assert fake.returncode == 0, fake_stderr


@pytest.mark.timeout(30)
def test_make_tls_writes_private_keys_readable_by_their_owner_alone(tmp_path: Path) -> None:
    tls = tmp_path / "dgraph-tls"
    tls.mkdir()
    (tls / "node.key").write_text("an older key, world-readable")
    (tls / "node.key").chmod(0o644)
    for _ in range(2):  # into a folder with an older key, then over its own files
        made = subprocess.run(
            [sys.executable, "-m", "tests.fakes.dgraph", "--make-tls", str(tls)],
            cwd=ROOT,
            env={**os.environ, "GRPC_VERBOSITY": "NONE"},
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
            umask=0o022,
        )
        assert made.returncode == 0, made.stderr
        modes = {path.name: path.stat().st_mode & 0o777 for path in tls.iterdir()}
        assert modes == {
            "ca.crt": 0o644,
            "node.crt": 0o644,
            "client.user.crt": 0o644,
            "node.key": 0o600,
            "client.user.key": 0o600,
        }
        assert (tls / "node.key").read_text().startswith("-----BEGIN")


@pytest.mark.parametrize("names", [("Flask", "zzz", "flask"), ("flask", "zzz", "Flask"), ("FLASK", "zzz", "Flask")])
def test_spellings_that_are_not_neighbours_in_uid_order_are_planned_once(
    names: tuple[str, ...], run_cli: Callable[..., Result], tmp_path: Path
) -> None:
    """Thoth's writers store PEP 503 names; should a graph hold two spellings anyway, one Job is planned."""
    pypi = "https://pypi.org/simple"
    graph = {
        "package_versions": [{"package_name": name, "package_version": "1.0", "index_url": pypi} for name in names]
    }
    report_path, out = tmp_path / "report.json", tmp_path / "out"
    with FakeDgraph(graph, normalize_names=False) as fake:
        args = ["--dry-run", "--template-dir", str(EXAMPLE_TEMPLATES), "--no-solvers"]
        result = run_cli(
            [*args, "--output-dir", str(out), "--report", str(report_path)], env={"GRAPH_SERVICE_HOST": fake.host}
        )
    assert result.exit_code == 0, result.stderr
    report = json.loads(report_path.read_text())
    assert_balanced(report)
    assert report["totals"]["package-analyzer"]["examined"] == report["totals"]["package-analyzer"]["scheduled"] == 2
    assert len(list(out.iterdir())) == 2


def test_two_nodes_of_one_item_far_apart_in_uid_order_make_one_job(
    run_cli: Callable[..., Result], tmp_path: Path
) -> None:
    """Dgraph enforces no uniqueness: a second node of an item, far from the first, is not a second Job."""
    pypi = "https://pypi.org/simple"
    graph = {"package_versions": [{"package_name": n, "package_version": "1.0", "index_url": pypi} for n in "abc"]}
    with FakeDgraph(graph) as fake:
        fake.graph.copy_entity(Candidate("a", "1.0", pypi))
        result, report, out = plan(run_cli, tmp_path, dgraph_env(fake.host))
    assert result.exit_code == 0, result.stderr
    assert report is not None
    assert_balanced(report)
    for kind, counts in report["totals"].items():
        per_stream = 1 if kind == "package-analyzer" else len(report["solvers"])
        assert counts["examined"] == counts["scheduled"] == 3 * per_stream
    assert len(list(out.iterdir())) == sum(counts["scheduled"] for counts in report["totals"].values())


def test_the_query_deadline_is_configurable(run_cli: Callable[..., Result]) -> None:
    graph = {
        "package_versions": [{"package_name": "a", "package_version": "1", "index_url": "https://pypi.org/simple"}]
    }
    with FakeDgraph(graph) as fake:
        env = {"GRAPH_SERVICE_HOST": fake.host, "GRAPH_REFRESH_DGRAPH_TIMEOUT": "7"}
        result = run_cli(["--dry-run", "--template-dir", str(EXAMPLE_TEMPLATES)], env=env)
        deadlines = [request.time_remaining for request in fake.calls()]
    assert result.exit_code == 0, result.stderr
    assert deadlines, deadlines
    assert all(d is not None and 5 < d <= 7.1 for d in deadlines), deadlines


def test_a_backlog_count_that_times_out_is_null_and_the_run_goes_on(
    run_cli: RunCli, tmp_path: Path, serve: Serve
) -> None:
    fake = serve()
    fake.inject(grpc.StatusCode.DEADLINE_EXCEEDED, times=100, match=lambda request: "count(uid)" in request.query)
    result, report, _ = plan(run_cli, tmp_path, dgraph_env(fake.host), write=False)
    assert result.exit_code == 0
    assert report is not None
    assert report["exit_code"] == 0
    assert report["totals"]["package-analyzer"]["backlog"] is None
    assert all(counts["backlog"] is None for counts in report["solvers"].values())
    assert report["totals"]["solver"]["scheduled"] > 0, "the plan is whole"
    assert "could not be counted" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_backlog_is_what_the_graph_lacks_per_stream(run_cli: RunCli, tmp_path: Path, serve: Serve) -> None:
    fake = serve()
    result, report, _ = plan(run_cli, tmp_path, dgraph_env(fake.host), write=False)
    assert result.exit_code == 0
    assert report is not None
    for counts in [*report["solvers"].values(), report["totals"]["package-analyzer"]]:
        assert counts["backlog"] == counts["examined"], "nothing capped: every candidate was examined"
