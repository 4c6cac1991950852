"""Shared fixtures: a clean environment, graph files, Template folders and a CLI runner."""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from graph_refresh import cli, secrets
from graph_refresh.refresh import Externals

from .fakes.dgraph import make_tls_files
from .fakes.kube import FakeKube
from .helpers import (
    CONFIG_ENV,
    EXAMPLE_TEMPLATES,
    SAMPLE_GRAPH,
    Harness,
    install_project,
    load_yaml_documents,
    unwrapped,
)

os.environ.setdefault("GRPC_VERBOSITY", "NONE")


@pytest.fixture(autouse=True)
def forget_secrets() -> Iterator[None]:
    """A run registers the secrets it reads (a kubeconfig's token, passwords); the next test starts without."""
    yield
    secrets.forget_all()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No configuration leaks in from the machine; the embedded store lives in the test's folder."""
    for name in CONFIG_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.kube/config of the developer's
    monkeypatch.setenv("GRAPH_REFRESH_SQLITE_PATH", str(tmp_path / "graph.sqlite3"))


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """Two unrelated CAs, each with a server and a client pair: ``mine`` (the fake's) and ``other``."""
    base = tmp_path_factory.mktemp("tls")
    return SimpleNamespace(mine=make_tls_files(base / "mine"), other=make_tls_files(base / "other"))


@pytest.fixture
def write_graph(tmp_path: Path) -> Callable[[dict[str, Any]], Path]:
    """Write a graph document to a file and return its path."""
    counter = iter(range(1_000_000))

    def write(document: dict[str, Any]) -> Path:
        path = tmp_path / f"graph-{next(counter)}.json"
        path.write_text(json.dumps(document), encoding="utf-8")
        return path

    return write


@pytest.fixture
def template_dir(tmp_path: Path) -> Callable[..., Path]:
    """A folder with the example Templates, optionally edited: ``make(edit=fn)`` gets {file: doc}."""

    def make(edit: Callable[[dict[str, dict[str, Any]]], None] | None = None, source: Path = EXAMPLE_TEMPLATES) -> Path:
        documents = copy.deepcopy(load_yaml_documents(source))
        if edit:
            edit(documents)
        folder = tmp_path / f"templates-{len(list(tmp_path.glob('templates-*')))}"
        folder.mkdir()
        for name, document in documents.items():
            (folder / name).write_text(yaml.safe_dump(document))
        return folder

    return make


@pytest.fixture
def run_cli() -> Callable[..., Result]:
    """Invoke the CLI in-process; ``obj`` carries the test externals (sleep, now, connect). Its log and error lines,
    wrapped to 100 columns, come back unwrapped (``helpers.unwrapped``) unless ``wrapped``."""

    def invoke(
        args: list[str], env: dict[str, str] | None = None, *, wrapped: bool = False, **externals: Any
    ) -> Result:
        externals.setdefault(
            "now", lambda: 0.0
        )  # the first hour of 1970: the stream order does not rotate under a test
        result = CliRunner().invoke(cli.main, args, env=env, obj=Externals(**externals), catch_exceptions=False)
        if wrapped:
            return result

        def joined(data: bytes) -> bytes:
            return unwrapped(data.decode("utf-8", "replace")).encode()

        return Result(
            result.runner,
            result.stdout_bytes,
            joined(result.stderr_bytes),
            joined(result.output_bytes),
            result.return_value,
            result.exit_code,
            result.exception,
            result.exc_info,
        )

    return invoke


@pytest.fixture
def sample_store(run_cli: Callable[..., Result]) -> None:
    """The bundled sample graph imported into the test's SQLite store."""
    result = run_cli(["import-graph", str(SAMPLE_GRAPH)])
    assert result.exit_code == 0, result.output


@pytest.fixture
def fake(request: pytest.FixtureRequest) -> Iterator[FakeKube]:
    """FakeKube over TLS (``tls`` by default; parametrize indirectly with ``mtls`` or ``none``)."""
    with FakeKube(tls=getattr(request, "param", "tls")) as server:
        yield server
        assert server.server_errors == []


@pytest.fixture
def cluster(
    fake: FakeKube, run_cli: Callable[..., Result], tmp_path: Path, write_graph: Callable[..., Path]
) -> Harness:
    """The fake cluster with the example Templates, a kubeconfig for it, and an empty graph."""
    return Harness(fake, run_cli, tmp_path, write_graph)


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project installed as pip installs it (``helpers.install_project``): its commands in ``bin/``."""
    return install_project(tmp_path_factory.mktemp("installed"))
