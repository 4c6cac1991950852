"""The Dgraph store against a Dgraph stand-in on the wire (tests/fakes/dgraph.py), plus an opt-in live test.

What is asserted is what reaches the server: read-only Query RPCs with variables and a deadline,
keyset paging by uid, retries from the same cursor, and the StoreError/ConfigError a run ends with.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import shutil
import subprocess
import sys
from collections.abc import Callable, Generator, Iterator
from itertools import islice, pairwise
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import grpc
import pydgraph
import pytest

from graph_refresh.config import StoreSettings
from graph_refresh.errors import ConfigError, StoreError
from graph_refresh.items import Candidate, SolverEnvironment, invalid_reason, parse_solver_name
from graph_refresh.store import open_store
from graph_refresh.store.base import GraphStore
from graph_refresh.store.dgraph import (
    ANALYZER_COUNT_QUERY,
    ANALYZER_QUERY,
    ANALYZER_WINDOW_COUNT_QUERY,
    ARRIVAL_END_QUERY,
    INDEX_QUERY,
    SOLVER_COUNT_QUERY,
    SOLVER_QUERY,
    SOLVER_WINDOW_COUNT_QUERY,
    STATUS_QUERY,
    DgraphStore,
    dgraph_address,
)
from graph_refresh.store.graphfile import parse_graph
from tests.fakes.dgraph import FakeDgraph, TlsFiles
from tests.helpers import free_port

from .conftest import LIVE_SCHEMA

ROOT = Path(__file__).resolve().parents[2]
PYPI = "https://pypi.org/simple"
AICOE = "https://tensorflow.pypi.thoth-station.ninja/index/manylinux2010/AVX2/simple"
FEDORA = parse_solver_name("solver-fedora-31-py38", template="test")
PAGE = 3

pytestmark = pytest.mark.timeout(30)


def version(i: int) -> dict[str, str]:
    return {
        "package_name": f"package-{i:02d}",
        "package_version": f"1.{i}.0",
        "index_url": (PYPI, AICOE)[i % 2],
    }


def candidate(i: int) -> Candidate:
    return Candidate(**version(i))


N = 20
# Every third version is solved by fedora-31-py38 (every sixth with error: true); every fourth is analyzed.
BIG_GRAPH = {
    "package_versions": [version(i) for i in range(N)],
    "solved": [{**version(i), "solver": FEDORA.name, "error": i % 6 == 0} for i in range(0, N, 3)],
    "analyzed": [version(i) for i in range(0, N, 4)],
}
UNSOLVED = [candidate(i) for i in range(N) if i % 3]
UNANALYZED = [candidate(i) for i in range(N) if i % 4]


@pytest.fixture
def sleeps() -> list[float]:
    """Back-off delays the stores asked for (the sleep seam: nothing really waits)."""
    return []


@pytest.fixture
def open_dgraph(sleeps: list[float]) -> Iterator[Callable[..., DgraphStore]]:
    """Open DgraphStores (page size 3, recorded sleeps) and close them after the test."""
    stores: list[DgraphStore] = []

    def factory(settings: StoreSettings, **kwargs: Any) -> DgraphStore:
        kwargs.setdefault("page_size", PAGE)
        kwargs.setdefault("sleep", sleeps.append)
        store = DgraphStore(settings, **kwargs)
        stores.append(store)
        return store

    yield factory
    for store in stores:
        store.close()


@pytest.fixture
def fake() -> Iterator[FakeDgraph]:
    with FakeDgraph(BIG_GRAPH) as server:
        yield server


# -- interface and paging -----------------------------------------------------------------------


def test_implements_the_protocol(fake: FakeDgraph) -> None:
    store = open_store(fake.settings())
    try:
        assert isinstance(store, DgraphStore)
        assert isinstance(store, GraphStore)
        assert store.name == "dgraph"
    finally:
        store.close()


@pytest.mark.parametrize("short_pages", [False, True], ids=["full-pages", "short-pages"])
def test_every_candidate_exactly_once_in_uid_order(short_pages: bool, open_dgraph: Callable[..., DgraphStore]) -> None:
    with FakeDgraph(BIG_GRAPH, short_pages=short_pages) as server:
        store = open_dgraph(server.settings())
        assert list(store.analyzer_candidates()) == UNANALYZED
        assert list(store.solver_candidates(FEDORA)) == UNSOLVED
        calls = server.calls()
    page_sizes = [len(call.uids) for call in calls]
    assert all(size <= PAGE for size in page_sizes)
    if short_pages:  # a short page is not the end: only the empty page is
        assert any(0 < size < PAGE for size in page_sizes)
    streams = [[c for c in calls if c.query == query] for query in (ANALYZER_QUERY, SOLVER_QUERY)]
    for stream in streams:
        assert stream[0].vars["$after"] == "0x0"
        for previous, following in pairwise(stream):
            assert previous.uids, "paging went on after an empty page"
            assert following.vars["$after"] == previous.uids[-1]
        assert stream[-1].uids == []


def test_early_stop_sends_only_the_queries_needed(fake: FakeDgraph, open_dgraph: Callable[..., DgraphStore]) -> None:
    store = open_dgraph(fake.settings(), prefetch=False)
    stream = store.analyzer_candidates()
    assert fake.calls() == []  # lazy: nothing is sent before the first candidate is asked for
    assert list(islice(stream, 2)) == UNANALYZED[:2]
    assert len(fake.calls()) == 1
    assert list(islice(stream, 2)) == UNANALYZED[2:4]  # the fourth candidate needs the second page
    assert len(fake.calls()) == 2
    assert list(islice(store.solver_candidates(FEDORA), PAGE)) == UNSOLVED[:PAGE]
    assert len(fake.calls()) == 3


# -- reading ahead -------------------------------------------------------------------------------


def test_the_next_page_is_read_while_the_current_one_is_consumed(
    fake: FakeDgraph, open_dgraph: Callable[..., DgraphStore]
) -> None:
    store = open_dgraph(fake.settings())
    stream = store.analyzer_candidates()
    assert fake.calls() == []  # still lazy
    assert next(stream) == UNANALYZED[0]
    first, ahead = fake.wait_for_calls(2)  # the consumer holds one candidate; page 2 is asked for already
    assert ahead.vars["$after"] == first.uids[-1]
    assert list(islice(stream, PAGE - 1)) == UNANALYZED[1:PAGE]
    assert len(fake.calls()) == 2, "at most one page ahead: page 3 waits until page 2 is reached"
    assert next(stream) == UNANALYZED[PAGE]
    assert fake.wait_for_calls(3)[2].vars["$after"] == ahead.uids[-1]
    assert [*islice(stream, 100)] == UNANALYZED[PAGE + 1 :]
    calls = fake.calls()
    assert [c.vars["$after"] for c in calls[1:]] == [c.uids[-1] for c in calls[:-1]]
    assert calls[-1].uids == []


def test_a_failure_of_the_page_read_ahead_surfaces_when_the_consumer_reaches_it(
    fake: FakeDgraph, open_dgraph: Callable[..., DgraphStore], sleeps: list[float]
) -> None:
    fake.inject(grpc.StatusCode.INVALID_ARGUMENT, details="while lexing", after=1)
    store = open_dgraph(fake.settings())
    stream = store.analyzer_candidates()
    assert [next(stream) for _ in range(PAGE)] == UNANALYZED[:PAGE]  # the failed page 2 is not seen yet
    assert fake.wait_for_calls(2)[1].error is not None
    with pytest.raises(StoreError, match=rf"{fake.host}: reading unanalyzed failed: request failed: INVALID_ARGUMENT"):
        next(stream)
    assert sleeps == []


def test_a_retry_of_the_page_read_ahead_keeps_its_cursor_and_back_off(
    fake: FakeDgraph, open_dgraph: Callable[..., DgraphStore], sleeps: list[float]
) -> None:
    fake.inject(grpc.StatusCode.UNAVAILABLE, details="Socket closed", times=2, after=1)
    store = open_dgraph(fake.settings())
    assert list(store.analyzer_candidates()) == UNANALYZED
    calls = fake.calls()
    assert [c.error is None for c in calls[:4]] == [True, False, False, True]
    assert {c.vars["$after"] for c in calls[1:4]} == {calls[0].uids[-1]}
    assert sleeps == [0.5, 1.0]


class Interrupted(Exception):
    """What a run's sleep seam raises once it is interrupted."""


def test_an_interrupt_during_the_read_ahead_s_back_off_surfaces_to_the_consumer(
    fake: FakeDgraph, open_dgraph: Callable[..., DgraphStore]
) -> None:
    def interrupted(seconds: float) -> None:
        raise Interrupted(f"interrupted while waiting {seconds} s")

    fake.inject(grpc.StatusCode.UNAVAILABLE, times=100, after=1)
    store = open_dgraph(fake.settings(), sleep=interrupted)
    stream = store.analyzer_candidates()
    assert [next(stream) for _ in range(PAGE)] == UNANALYZED[:PAGE]
    with pytest.raises(Interrupted, match=r"waiting 0\.5 s"):
        next(stream)
    assert len(fake.calls()) == 2, "no retry after the interrupt"


def test_a_consumer_that_stops_early_leaves_the_read_ahead_and_close_does_not_wait(
    fake: FakeDgraph, open_dgraph: Callable[..., DgraphStore]
) -> None:
    fault = fake.inject(delay=20.0, after=1)  # page 2 hangs until its caller goes away
    store = open_dgraph(fake.settings())
    stream = store.analyzer_candidates()
    assert isinstance(stream, Generator)  # so that the consumer can close it
    assert next(stream) == UNANALYZED[0]
    assert len(fake.wait_for_calls(2)) == 2
    assert fault.hits == 1  # page 2 is in flight
    stream.close()
    store.close()  # cancels the RPC in flight: returns at once (the test's timeout would catch a hang)
    assert len(fake.calls()) == 2
    with pytest.raises(StoreError, match="the store is closed"):
        next(store.analyzer_candidates())


def test_requests_are_read_only_with_variables_and_a_deadline(
    fake: FakeDgraph, open_dgraph: Callable[..., DgraphStore]
) -> None:
    store = open_dgraph(fake.settings(timeout_seconds=7))
    list(store.solver_candidates(FEDORA))
    list(store.analyzer_candidates())
    assert store.index_urls() == sorted([PYPI, AICOE])
    assert {request.method for request in fake.requests} == {"Query"}  # no commit, no discard RPC, no alter
    data = re.compile(r"\"|'|0x|fedora|31|3\.8|package-|https?:")
    expected_vars = {
        SOLVER_QUERY: {"$first", "$after", "$os", "$osv", "$py"},
        ANALYZER_QUERY: {"$first", "$after"},
        INDEX_QUERY: {"$first", "$after"},
    }
    for call in fake.calls():
        assert call.error is None
        assert call.read_only
        assert call.mutations == 0
        assert not call.best_effort
        assert call.time_remaining is not None
        assert 0 < call.time_remaining <= 7.1  # gRPC rounds the header up
        assert set(call.vars) == expected_vars[call.query]  # the store's query texts, never formatted
        assert call.vars["$first"] == str(PAGE)
        assert not data.search(call.query), call.query
    solver_calls = [call for call in fake.calls() if call.query == SOLVER_QUERY]
    assert {(c.vars["$os"], c.vars["$osv"], c.vars["$py"]) for c in solver_calls} == {("fedora", "31", "3.8")}


def test_solver_environments_match_on_all_three_fields(open_dgraph: Callable[..., DgraphStore]) -> None:
    names = "abcdefg"
    graph = {
        "package_versions": [{"package_name": n, "package_version": "1", "index_url": PYPI} for n in names],
        "solved": [
            {
                "package_name": "a",
                "package_version": "1",
                "index_url": PYPI,
                "solver": "solver-rhel-8.6-py38",
            },
            {"package_name": "b", "package_version": "1", "index_url": PYPI, "solver": "solver-ubi-9-py311"},
            {
                "package_name": "c",
                "package_version": "1",
                "index_url": PYPI,
                "solver": "solver-fedora-31-py38",
            },
            {"package_name": "d", "package_version": "1", "index_url": PYPI, "solver": "not-a-solver"},
            {"package_name": "e", "package_version": "1", "index_url": PYPI, "solver": "solver-ubi-9-py31"},
            {
                "package_name": "f",
                "package_version": "1",
                "index_url": PYPI,
                "solver": "solver-fedora-31-py38",
                "error": True,  # the solver ran and recorded its failure: solved, not rescheduled
            },
        ],
    }
    expected_solved = {
        "solver-rhel-8.6-py38": "a",
        "solver-ubi-9-py311": "b",  # python 3.11, not the 2019 parser's 3.1.1
        "solver-fedora-31-py38": "cf",
        "solver-ubi-9-py31": "e",  # python 3.1: not the same environment as py311
        "solver-fedora-32-py38": "",
        "solver-fedora-31-py39": "",
        "solver-rhel-8-py38": "",
    }
    with FakeDgraph(graph) as server:
        store = open_dgraph(server.settings())
        for solver, solved in expected_solved.items():
            env = parse_solver_name(solver, template="test")
            unsolved = "".join(c.package_name for c in store.solver_candidates(env))
            assert unsolved == "".join(n for n in names if n not in solved), solver
    assert parse_solver_name("solver-ubi-9-py311", template="test").python_version == "3.11"


def test_unanalyzed_and_index_urls(open_dgraph: Callable[..., DgraphStore]) -> None:
    graph = {
        "package_versions": [version(i) for i in range(5)],
        "analyzed": [version(1), version(3), {**version(7), "index_url": "https://example.org/simple"}],
    }
    with FakeDgraph(graph) as server:
        store = open_dgraph(server.settings(), page_size=1)
        assert list(store.analyzer_candidates()) == [candidate(0), candidate(2), candidate(4)]
        assert store.index_urls() == sorted([PYPI, AICOE, "https://example.org/simple"])


def test_names_are_normalised_and_incomplete_nodes_come_out_invalid(open_dgraph: Callable[..., DgraphStore]) -> None:
    graph = {
        "package_versions": [
            {"package_name": "Flask_Login", "package_version": "0.5.0", "index_url": PYPI},
            {"package_name": "broken", "package_version": "1", "index_url": PYPI},
            {"package_name": "zope.interface", "package_version": "5.1", "index_url": PYPI},
        ]
    }
    with FakeDgraph(graph, normalize_names=False) as server:
        broken = next(uid for uid, node in server.graph.nodes.items() if node.get("package_name") == "broken")
        del server.graph.nodes[broken]["index_url"]  # a node may lack predicates
        store = open_dgraph(server.settings())
        candidates = list(store.analyzer_candidates())
    # The incomplete node is not dropped silently: it comes out with an empty index, which the planner
    # skips as invalid and counts.
    assert candidates == [
        Candidate("flask-login", "0.5.0", PYPI),
        Candidate("broken", "1", ""),
        Candidate("zope-interface", "5.1", PYPI),
    ]
    assert invalid_reason(candidates[1])


def test_a_page_too_large_for_grpc_is_read_in_smaller_pages(open_dgraph: Callable[..., DgraphStore]) -> None:
    graph = {
        "package_versions": [{"package_name": f"p{i}", "package_version": "1", "index_url": PYPI} for i in range(6)]
    }
    with FakeDgraph(graph) as server:
        server.inject(grpc.StatusCode.RESOURCE_EXHAUSTED, details="Received message larger than max", times=2)
        store = open_dgraph(server.settings(), page_size=4)
        assert len(list(store.analyzer_candidates())) == 6
        firsts = [request.vars["$first"] for request in server.calls()]
    assert firsts[:5] == ["4", "2", "1", "2", "4"]  # smaller until it fits, then back to the full page


def test_a_single_node_too_large_for_grpc_is_a_store_error(open_dgraph: Callable[..., DgraphStore]) -> None:
    graph = {"package_versions": [{"package_name": "p", "package_version": "1", "index_url": PYPI}]}
    with FakeDgraph(graph) as server:
        server.inject(grpc.StatusCode.RESOURCE_EXHAUSTED, details="Received message larger than max", times=10)
        store = open_dgraph(server.settings(), page_size=4)
        with pytest.raises(StoreError, match="larger than"):
            list(store.analyzer_candidates())


def test_closed_store_refuses_to_read(fake: FakeDgraph) -> None:
    store = DgraphStore(fake.settings())
    store.close()
    store.close()  # twice is fine
    with pytest.raises(StoreError, match="closed"):
        list(store.analyzer_candidates())


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("localhost", "localhost:9080"),
        ("dgraph-alpha.thoth.svc:9081", "dgraph-alpha.thoth.svc:9081"),
        ("[::1]", "[::1]:9080"),
        ("[::1]:9000", "[::1]:9000"),
        ("::1", "[::1]:9080"),
    ],
)
def test_address_defaults_to_port_9080(host: str, address: str) -> None:
    assert dgraph_address(host) == address


@pytest.mark.parametrize(
    "host",
    ["http://dgraph:9080", "dgraph:port", "dgraph:0", "dgraph:70000", ":9080", "a b", "dgraph:\u0663", "h:9080:9080"],
)
def test_bad_host_is_a_configuration_error(host: str) -> None:
    with pytest.raises(ConfigError, match="GRAPH_SERVICE_HOST"):
        DgraphStore(StoreSettings(graph_service_host=host))


# -- TLS ------------------------------------------------------------------------------------------


def tls_dir(path: Path, files: TlsFiles, *, client: bool) -> Path:
    """A GRAPH_TLS_PATH with ca.crt and, if ``client``, the client pair."""
    path.mkdir()
    shutil.copy(files.ca, path / "ca.crt")
    if client:
        shutil.copy(files.client_cert, path / "client.user.crt")
        shutil.copy(files.client_key, path / "client.user.key")
    return path


def test_plaintext_warns(
    fake: FakeDgraph, open_dgraph: Callable[..., DgraphStore], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="graph_refresh.store.dgraph"):
        store = open_dgraph(fake.settings())
    assert "plaintext" in caplog.text
    assert store.transport == "plaintext"
    assert len(list(store.analyzer_candidates())) == len(UNANALYZED)


def test_tls_with_server_certificate(
    certs: SimpleNamespace, tmp_path: Path, open_dgraph: Callable[..., DgraphStore]
) -> None:
    with FakeDgraph(BIG_GRAPH, tls=certs.mine.server_tls()) as server:
        store = open_dgraph(server.settings(tls_dir(tmp_path / "tls", certs.mine, client=False)))
        assert store.transport == "TLS"
        assert list(store.analyzer_candidates()) == UNANALYZED


def test_mutual_tls(certs: SimpleNamespace, open_dgraph: Callable[..., DgraphStore]) -> None:
    with FakeDgraph(BIG_GRAPH, tls=certs.mine.server_tls(mutual=True)) as server:
        store = open_dgraph(server.settings(certs.mine.directory))  # node.crt/node.key beside are ignored
        assert store.transport == "mutual TLS"
        assert list(store.solver_candidates(FEDORA)) == UNSOLVED


def test_wrong_ca_is_a_tls_failure_naming_the_host(
    certs: SimpleNamespace, tmp_path: Path, open_dgraph: Callable[..., DgraphStore], sleeps: list[float]
) -> None:
    with FakeDgraph(BIG_GRAPH, tls=certs.mine.server_tls()) as server:
        store = open_dgraph(server.settings(tls_dir(tmp_path / "tls", certs.other, client=False)))
        with pytest.raises(StoreError, match="TLS handshake failed") as caught:
            list(store.analyzer_candidates())
        assert server.host in str(caught.value)
        assert server.calls() == []
    assert sleeps == []  # a setup problem: not retried


def test_mutual_tls_required_but_no_client_certificate(
    certs: SimpleNamespace, tmp_path: Path, open_dgraph: Callable[..., DgraphStore]
) -> None:
    with FakeDgraph(BIG_GRAPH, tls=certs.mine.server_tls(mutual=True)) as server:
        store = open_dgraph(server.settings(tls_dir(tmp_path / "tls", certs.mine, client=False)))
        with pytest.raises(StoreError, match=r"unavailable.*client\.user\.crt") as caught:
            list(store.analyzer_candidates())
        assert server.host in str(caught.value)
        assert server.calls() == []


def test_client_certificate_from_another_ca_is_refused(
    certs: SimpleNamespace, tmp_path: Path, open_dgraph: Callable[..., DgraphStore]
) -> None:
    path = tls_dir(tmp_path / "tls", certs.other, client=True)
    shutil.copy(certs.mine.ca, path / "ca.crt")  # trusts the server, but the client pair is another CA's
    with FakeDgraph(BIG_GRAPH, tls=certs.mine.server_tls(mutual=True)) as server:
        store = open_dgraph(server.settings(path))
        with pytest.raises(StoreError, match=re.escape(server.host)):
            list(store.analyzer_candidates())
        assert server.calls() == []


@pytest.mark.parametrize(
    ("present", "missing"), [("client.user.crt", "client.user.key"), ("client.user.key", "client.user.crt")]
)
def test_one_client_file_alone_is_a_configuration_error(
    certs: SimpleNamespace, tmp_path: Path, present: str, missing: str
) -> None:
    path = tls_dir(tmp_path / "tls", certs.mine, client=True)
    (path / missing).unlink()
    with pytest.raises(ConfigError, match=re.escape(str(path / missing))):
        DgraphStore(StoreSettings(graph_service_host="localhost", graph_tls_path=path))


def test_missing_tls_directory_or_ca_is_a_configuration_error(certs: SimpleNamespace, tmp_path: Path) -> None:
    absent = tmp_path / "absent"
    with pytest.raises(ConfigError, match=re.escape(str(absent))):
        DgraphStore(StoreSettings(graph_service_host="localhost", graph_tls_path=absent))
    path = tls_dir(tmp_path / "tls", certs.mine, client=True)
    (path / "ca.crt").unlink()
    with pytest.raises(ConfigError, match=r"ca\.crt"):
        DgraphStore(StoreSettings(graph_service_host="localhost", graph_tls_path=path))


@pytest.mark.parametrize("broken", ["ca.crt", "swapped"])
def test_garbled_or_mismatched_tls_files_are_a_configuration_error_naming_them(
    certs: SimpleNamespace, tmp_path: Path, broken: str
) -> None:
    path = tls_dir(tmp_path / "tls", certs.mine, client=True)
    if broken == "ca.crt":
        (path / "ca.crt").write_text("this is not a certificate\n")
    else:  # the client certificate and key of two different pairs
        (path / "client.user.key").write_bytes((certs.other.directory / "client.user.key").read_bytes())
    with pytest.raises(ConfigError, match="GRAPH_TLS_PATH") as error:
        DgraphStore(StoreSettings(graph_service_host="localhost", graph_tls_path=path))
    assert ("ca.crt" if broken == "ca.crt" else "client.user.crt") in str(error.value)


# -- faults -------------------------------------------------------------------------------------


def test_server_down_is_unavailable_naming_the_host(
    open_dgraph: Callable[..., DgraphStore], sleeps: list[float]
) -> None:
    host = f"localhost:{free_port()}"
    store = open_dgraph(StoreSettings(graph_service_host=host))
    with pytest.raises(StoreError, match=rf"{host}.*after 3 attempts: unavailable") as caught:
        list(store.analyzer_candidates())
    assert isinstance(caught.value.__cause__, grpc.RpcError)
    assert sleeps == [0.5, 1.0]  # exponential back-off, bounded


def test_aborted_once_then_success_yields_everything(
    fake: FakeDgraph, open_dgraph: Callable[..., DgraphStore], sleeps: list[float]
) -> None:
    fault = fake.inject(grpc.StatusCode.ABORTED, after=2)
    store = open_dgraph(fake.settings())
    assert list(store.analyzer_candidates()) == UNANALYZED
    assert fault.hits == 1
    assert sleeps == [0.5]
    failed, retried = fake.calls()[2:4]
    assert failed.error is not None
    assert failed.error.startswith("ABORTED")
    assert retried.vars["$after"] == failed.vars["$after"]  # resumed from the same cursor


def test_persistent_abort_gives_up_after_bounded_attempts(
    fake: FakeDgraph, open_dgraph: Callable[..., DgraphStore], sleeps: list[float]
) -> None:
    fake.inject(grpc.StatusCode.ABORTED, times=100)
    store = open_dgraph(fake.settings())
    with pytest.raises(StoreError, match=rf"{fake.host}.*after 3 attempts: aborted"):
        list(store.analyzer_candidates())
    assert len(fake.calls()) == 3
    assert sleeps == [0.5, 1.0]


def test_unavailable_mid_stream_resumes_from_the_cursor(
    fake: FakeDgraph, open_dgraph: Callable[..., DgraphStore]
) -> None:
    fake.inject(grpc.StatusCode.UNAVAILABLE, details="Socket closed", times=2, after=1)
    store = open_dgraph(fake.settings())
    assert list(store.solver_candidates(FEDORA)) == UNSOLVED
    calls = fake.calls()
    assert [c.error is not None for c in calls[:4]] == [False, True, True, False]
    assert {c.vars["$after"] for c in calls[1:4]} == {calls[0].uids[-1]}


def test_please_retry_is_retried(fake: FakeDgraph, open_dgraph: Callable[..., DgraphStore]) -> None:
    fake.inject(grpc.StatusCode.UNKNOWN, details="Please retry again, server is not ready to accept requests")
    store = open_dgraph(fake.settings())
    assert list(store.analyzer_candidates()) == UNANALYZED


def test_a_refused_query_is_not_retried(
    fake: FakeDgraph, open_dgraph: Callable[..., DgraphStore], sleeps: list[float]
) -> None:
    fake.inject(grpc.StatusCode.INVALID_ARGUMENT, details="while lexing")
    store = open_dgraph(fake.settings())
    with pytest.raises(StoreError, match="INVALID_ARGUMENT"):
        list(store.analyzer_candidates())
    assert len(fake.calls()) == 1
    assert sleeps == []


def test_deadline_exceeded_mid_stream_is_a_store_error(
    fake: FakeDgraph, open_dgraph: Callable[..., DgraphStore], sleeps: list[float]
) -> None:
    fake.inject(grpc.StatusCode.DEADLINE_EXCEEDED, times=100, after=2)
    store = open_dgraph(fake.settings())
    seen: list[Candidate] = []
    with pytest.raises(StoreError, match=rf"{fake.host}.*deadline exceeded after 30 s"):
        seen.extend(store.analyzer_candidates())
    assert seen == UNANALYZED[: 2 * PAGE]  # the two pages served before the fault
    assert len(fake.calls()) == 2 + 3
    assert sleeps == [0.5, 1.0]


def test_a_slow_answer_hits_the_deadline_and_is_retried(
    fake: FakeDgraph, open_dgraph: Callable[..., DgraphStore], sleeps: list[float]
) -> None:
    fault = fake.inject(delay=5.0, after=1)
    store = open_dgraph(fake.settings(timeout_seconds=0.3))  # a float (the field is int) keeps the test fast
    assert list(store.analyzer_candidates()) == UNANALYZED
    assert fault.hits == 1
    slow = fake.calls()[1]
    assert slow.time_remaining is not None
    assert slow.time_remaining <= 0.35
    assert sleeps == [0.5]


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (b"[]", "the answer is a JSON array, not an object"),
        (b'"page"', "the answer is a JSON string, not an object"),
        (b'{"page": "x"}', "the answer's 'page' is a JSON string, not a list of nodes"),
        (b'{"page": {"uid": "0x1"}}', "the answer's 'page' is a JSON object, not a list of nodes"),
        (b'{"page": [1, 2]}', r"the answer's page\[0\] is a JSON number, not a node"),
        (b'{"page": [{"package_name": "a"}]}', r"page\[0\] has no string 'uid'"),
        (b'{"page": [{"uid": 7}]}', r"page\[0\] has no string 'uid' \(got 7\)"),
        (
            b'{"page": [{"uid": "0xfff", "package_name": ["a"], "package_version": "1", "index_url": "u"}]}',
            "node 0xfff's 'package_name' is a JSON array, not a string",
        ),
        (
            b'{"page": [{"uid": "0xfff", "package_name": "a", "package_version": 1.5, "index_url": "u"}]}',
            "node 0xfff's 'package_version' is a JSON number, not a string",
        ),
        (
            b'{"page": [{"uid": "0xfff", "package_name": "a", "package_version": "1", "index_url": true}]}',
            "node 0xfff's 'index_url' is a JSON boolean, not a string",
        ),
    ],
)
@pytest.mark.parametrize("after", [0, 2], ids=["first-page", "later-page"])
def test_an_answer_of_the_wrong_shape_is_a_store_error_not_an_empty_graph(
    answer: bytes, message: str, after: int, fake: FakeDgraph, open_dgraph: Callable[..., DgraphStore]
) -> None:
    fake.inject(answer=answer, after=after)
    store = open_dgraph(fake.settings())
    seen: list[Candidate] = []
    with pytest.raises(StoreError, match=rf"Dgraph at {fake.host}: reading unanalyzed: .*{message}"):
        seen.extend(store.analyzer_candidates())
    assert seen == UNANALYZED[: after * PAGE]
    assert len(fake.calls()) == after + 1, "a wrong shape is not retried"


def test_an_index_node_whose_url_is_not_a_string_is_a_store_error(
    fake: FakeDgraph, open_dgraph: Callable[..., DgraphStore]
) -> None:
    fake.inject(answer=b'{"page": [{"uid": "0x3", "url": {"href": "x"}}]}')
    with pytest.raises(StoreError, match=r"reading index URLs: node 0x3's 'url' is a JSON object, not a string"):
        open_dgraph(fake.settings()).index_urls()


def test_a_block_that_matched_nothing_may_be_left_out(
    fake: FakeDgraph, open_dgraph: Callable[..., DgraphStore]
) -> None:
    fake.inject(answer=b"{}")
    assert list(open_dgraph(fake.settings()).analyzer_candidates()) == []


# -- backlog counts (README's "Backlog") -------------------------------------------------------------------


def test_backlog_is_one_read_only_count_query_per_stream_with_variables(
    fake: FakeDgraph, open_dgraph: Callable[..., DgraphStore]
) -> None:
    store = open_dgraph(fake.settings(timeout_seconds=7))
    assert store.solver_backlog(FEDORA) == len(UNSOLVED)
    assert store.analyzer_backlog() == len(UNANALYZED)
    solver, analyzer = fake.calls()
    assert solver.query == SOLVER_COUNT_QUERY
    assert analyzer.query == ANALYZER_COUNT_QUERY
    assert solver.vars == {"$os": "fedora", "$osv": "31", "$py": "3.8"}
    assert analyzer.vars == {}
    for call in (solver, analyzer):
        assert call.read_only
        assert call.mutations == 0
        assert call.error is None
        assert call.time_remaining is not None
        assert 6 < call.time_remaining < 7.5
        assert "first" not in call.query
        assert "after" not in call.query
        assert "count(uid)" in call.query
    assert "fedora" not in solver.query, "values travel as variables, never in the query text"


def test_backlog_counts_nodes_so_two_nodes_of_one_item_count_twice(open_dgraph: Callable[..., DgraphStore]) -> None:
    with FakeDgraph(BIG_GRAPH) as server:
        server.graph.copy_entity(candidate(1))
        store = open_dgraph(server.settings())
        assert store.analyzer_backlog() == len(UNANALYZED) + 1  # what the graph holds; the planner drops repeats


def test_a_count_past_the_deadline_is_a_store_error_and_not_retried(
    fake: FakeDgraph, open_dgraph: Callable[..., DgraphStore], sleeps: list[float]
) -> None:
    fake.inject(delay=5.0)
    store = open_dgraph(fake.settings(timeout_seconds=0.3))  # a float (the field is int) keeps the test fast
    with pytest.raises(StoreError, match=rf"{fake.host}: counting the backlog of unanalyzed failed: deadline"):
        store.analyzer_backlog()
    assert len(fake.calls()) == 1
    assert sleeps == []
    assert store.analyzer_backlog() == len(UNANALYZED), "the store stays usable"


def test_a_count_that_keeps_failing_is_a_store_error_after_bounded_attempts(
    fake: FakeDgraph, open_dgraph: Callable[..., DgraphStore], sleeps: list[float]
) -> None:
    fake.inject(grpc.StatusCode.UNAVAILABLE, details="connection refused", times=100)
    store = open_dgraph(fake.settings())
    with pytest.raises(StoreError, match=rf"{fake.host}: counting the backlog of unsolved for {FEDORA.name} failed "):
        store.solver_backlog(FEDORA)
    assert len(fake.calls()) == 3
    assert sleeps == [0.5, 1.0]


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (b"[]", "the answer is a JSON array, not an object"),
        (b'{"backlog": {"n": 3}}', "'backlog' is not a list of one object"),
        (b'{"backlog": [{"n": 3}, {"n": 4}]}', "'backlog' is not a list of one object"),
        (b'{"backlog": [{"n": "3"}]}', "count is not a non-negative integer: '3'"),
        (b'{"backlog": [{"n": true}]}', "count is not a non-negative integer: True"),
        (b'{"backlog": [{"count": 3}]}', "count is not a non-negative integer: None"),
    ],
)
def test_a_count_answer_of_the_wrong_shape_is_a_store_error(
    answer: bytes, message: str, fake: FakeDgraph, open_dgraph: Callable[..., DgraphStore]
) -> None:
    fake.inject(answer=answer)
    with pytest.raises(StoreError, match=re.escape(message)):
        open_dgraph(fake.settings()).analyzer_backlog()


# -- arrival order: uid order, read after a cursor or up to it -------------------------------------


def test_arrival_reads_are_one_read_only_query_each_with_variables(
    fake: FakeDgraph, open_dgraph: Callable[..., DgraphStore]
) -> None:
    store = open_dgraph(fake.settings(timeout_seconds=7))
    end = store.arrival_end()
    item = candidate(4)
    status = store.status(Candidate("Package_04", item.package_version, item.index_url), [FEDORA])
    assert status.arrival is not None
    assert 0 < status.arrival < end
    assert store.solver_backlog(FEDORA, up_to=status.arrival) == sum(c in UNSOLVED for c in map(candidate, range(5)))
    assert store.analyzer_fresh_ahead(after=status.arrival, before=end + 1) == sum(i % 4 != 0 for i in range(5, N))
    calls = fake.calls()
    assert [call.query for call in calls] == [
        ARRIVAL_END_QUERY,
        STATUS_QUERY,
        SOLVER_WINDOW_COUNT_QUERY,
        ANALYZER_WINDOW_COUNT_QUERY,
    ]
    assert calls[0].vars == {}
    assert calls[0].uids == [hex(end)]
    assert calls[1].vars == {"$name": "package-04", "$version": item.package_version, "$index": item.index_url}
    assert calls[2].vars == {"$os": "fedora", "$osv": "31", "$py": "3.8", "$after": "0x0", "$last": hex(status.arrival)}
    assert calls[3].vars == {"$after": hex(status.arrival), "$last": hex(end)}
    for call in calls:
        assert call.read_only
        assert call.mutations == 0
        assert call.error is None
        assert call.time_remaining is not None
        assert 6 < call.time_remaining < 7.5
        assert not any(word in call.query for word in ("offset", "orderasc", "orderdesc", "@cascade", '"'))
    fake.clear()
    assert store.analyzer_fresh_ahead(after=5, before=6) == 0
    assert store.solver_backlog(FEDORA, up_to=0) == 0
    assert fake.calls() == [], "an empty window needs no query"


def test_the_fresh_lane_pages_from_the_cursor_and_the_backlog_lane_stops_past_it(
    fake: FakeDgraph, open_dgraph: Callable[..., DgraphStore]
) -> None:
    store = open_dgraph(fake.settings(), prefetch=False)
    positions = [position for position, _ in store.fresh_analyzer_candidates(after=0)]
    cursor = positions[6]
    fake.clear()
    fresh = list(store.fresh_analyzer_candidates(after=cursor))
    assert [c for _, c in fresh] == UNANALYZED[7:]
    assert [p for p, _ in fresh] == positions[7:]
    pages = fake.calls()
    assert pages[0].vars["$after"] == hex(cursor)
    assert pages[0].query == ANALYZER_QUERY
    assert [page.vars["$after"] for page in pages[1:]] == [page.uids[-1] for page in pages[:-1]]
    fake.clear()
    assert list(store.analyzer_candidates(up_to=cursor)) == UNANALYZED[:7]
    assert len(fake.calls()) == 3, "pages of 3: the third holds the first uid past the cursor, and reading stops"


def test_status_of_an_item_on_two_nodes(open_dgraph: Callable[..., DgraphStore]) -> None:
    with FakeDgraph(BIG_GRAPH) as server:
        store = open_dgraph(server.settings())
        first = store.status(candidate(3), [FEDORA])
        copy = server.graph.copy_entity(candidate(3))
        server.graph.nodes[copy]["package_analyzer_input"] = server.graph.nodes[server.graph.entity(candidate(4))][
            "package_analyzer_input"
        ]
        both = store.status(candidate(3), [FEDORA])
        assert both.arrival == first.arrival
        assert both.arrival is not None
        assert both.arrival < copy  # the earlier node
        assert both.solved_by == {FEDORA.name}
        assert both.analyzed
        assert not first.analyzed  # a run on either node


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (b'{"item": {"uid": "0x1"}}', "'item' is a JSON object, not a list of nodes"),
        (b'{"item": [{"uid": "0x1", "analyzed": "1"}]}', "analyzer run count is not a non-negative integer: '1'"),
        (b'{"item": [{"uid": "0x1", "installed_from": {"os_name": "x"}}]}', "installed_from is not a list of nodes"),
        (b'{"item": [{"uid": "0x1", "installed_from": [{"os_name": 3}]}]}', "'os_name' is a JSON number"),
        (b'{"item": [{"uid": "zz"}]}', "a uid that is no uid"),
    ],
)
def test_a_status_answer_of_the_wrong_shape_is_a_store_error(
    answer: bytes, message: str, fake: FakeDgraph, open_dgraph: Callable[..., DgraphStore]
) -> None:
    fake.inject(answer=answer)
    with pytest.raises(StoreError, match=re.escape(message)):
        open_dgraph(fake.settings()).status(candidate(1), [FEDORA])


def test_an_arrival_end_answer_that_is_no_uid_is_a_store_error(
    fake: FakeDgraph, open_dgraph: Callable[..., DgraphStore]
) -> None:
    fake.inject(answer=b'{"end": [{"uid": "last"}]}')
    with pytest.raises(StoreError, match="reading the arrival end: the answer's uid 'last' is no uid"):
        open_dgraph(fake.settings()).arrival_end()


# -- login ----------------------------------------------------------------------------------------

PASSWORD = "correct-horse-battery"


def test_login_sends_the_access_token(open_dgraph: Callable[..., DgraphStore]) -> None:
    with FakeDgraph(BIG_GRAPH, users={"graph-refresh": PASSWORD}) as server:
        store = open_dgraph(server.settings(dgraph_user="graph-refresh", dgraph_password=PASSWORD))
        assert list(store.analyzer_candidates()) == UNANALYZED
        (login,) = server.calls("Login")
        assert login.vars == {"userid": "graph-refresh"}  # the fake never keeps the password
        assert all(call.metadata.get("accessjwt", "").startswith("access-") for call in server.calls())


def test_bad_password_is_an_authentication_failure(
    open_dgraph: Callable[..., DgraphStore], sleeps: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    with FakeDgraph(BIG_GRAPH, users={"graph-refresh": PASSWORD}) as server:
        settings = server.settings(dgraph_user="graph-refresh", dgraph_password="wrong-horse")
        with (
            caplog.at_level(logging.DEBUG),
            pytest.raises(StoreError, match="authentication failed") as caught,
        ):
            open_dgraph(settings)
        assert server.host in str(caught.value)
        assert len(server.calls("Login")) == 1
        assert server.calls() == []
    assert "wrong-horse" not in str(caught.value)
    assert "wrong-horse" not in caplog.text
    assert sleeps == []


def test_acl_server_without_login_refuses_queries(open_dgraph: Callable[..., DgraphStore], sleeps: list[float]) -> None:
    with FakeDgraph(BIG_GRAPH, users={"graph-refresh": PASSWORD}) as server:
        store = open_dgraph(server.settings())
        with pytest.raises(StoreError, match="authentication failed"):
            list(store.analyzer_candidates())
        assert len(server.calls()) == 1
    assert sleeps == []


# -- the fake keeps Dgraph's rules --------------------------------------------------------------


def raw_query(server: FakeDgraph, query: str, variables: dict[str, str], *, read_only: bool = True) -> Any:
    stub = pydgraph.DgraphClientStub(server.host)
    try:
        return pydgraph.DgraphClient(stub).txn(read_only=read_only).query(query, variables=variables, timeout=5)
    finally:
        stub.close()


@pytest.mark.parametrize(
    ("query", "variables", "message"),
    [
        (
            ANALYZER_QUERY.replace("$after: string)", "$after: string, $os: string)"),
            {"$first": "3", "$after": "0x0", "$os": "fedora"},
            "not used",
        ),
        ("{ q(func: has(package_name)) { uid } }", {}, "unknown query"),
        (
            ANALYZER_QUERY.replace("$after)", '"0x1")').replace(", $after: string", ""),
            {"$first": "3"},
            "literal",
        ),
        (ANALYZER_QUERY, {"$first": "3"}, "not passed"),
        (
            ARRIVAL_END_QUERY.replace("arrival_end {", "arrival_end($after: string) {").replace(
                "first: -1)", "first: -1, after: $after)"
            ),
            {"$after": "0x1"},
            "unknown query shape",
        ),
        (
            ANALYZER_WINDOW_COUNT_QUERY.replace(" AND NOT uid(late)", ""),
            {"$after": "0x0", "$last": "0x5"},
            "defined but not used",
        ),
    ],
    ids=[
        "unused-variable",
        "unknown-shape",
        "literal-in-text",
        "missing-variable",
        "after-on-a-uid-var-root",
        "unused-uid-variable",
    ],
)
def test_fake_rejects_what_dgraph_rejects(
    fake: FakeDgraph, query: str, variables: dict[str, str], message: str
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        raw_query(fake, query, variables)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in caught.value.details().lower() or message in caught.value.details()


def test_fake_refuses_writes(fake: FakeDgraph) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        raw_query(fake, ANALYZER_QUERY, {"$first": "1", "$after": "0x0"}, read_only=False)
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    stub = pydgraph.DgraphClientStub(fake.host)
    try:
        client = pydgraph.DgraphClient(stub)
        with pytest.raises(grpc.RpcError):
            client.txn().mutate(set_obj={"package_name": "x"}, commit_now=True, timeout=5)
        with pytest.raises(grpc.RpcError):
            client.alter(pydgraph.Operation(drop_all=True), timeout=5)
    finally:
        stub.close()
    assert [(r.method, (r.error or "").split(":")[0]) for r in fake.requests] == [
        ("Query", "PERMISSION_DENIED"),
        ("Query", "PERMISSION_DENIED"),
        ("CommitOrAbort", "PERMISSION_DENIED"),  # pydgraph discards a failed write transaction
        ("Alter", "PERMISSION_DENIED"),
    ]


def test_pydgraph_turns_aborted_into_aborted_error(fake: FakeDgraph) -> None:
    fake.inject(grpc.StatusCode.ABORTED)
    with pytest.raises(pydgraph.errors.AbortedError):
        raw_query(fake, ANALYZER_QUERY, {"$first": "1", "$after": "0x0"})


@pytest.mark.timeout(20)
def test_fake_runs_as_a_program(tmp_path: Path) -> None:
    graph = tmp_path / "graph.json"
    graph.write_text(json.dumps({"package_versions": [version(1), version(2)], "analyzed": [version(2)]}))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GRPC_VERBOSITY": "NONE"}
    command = [sys.executable, "-m", "tests.fakes.dgraph", "--graph", str(graph), "--port", "0"]
    with subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert re.fullmatch(r"listening on localhost:\d+\n", line), line
            store = DgraphStore(StoreSettings(graph_service_host=line.split()[-1]), sleep=lambda _: None)
            try:
                assert list(store.analyzer_candidates()) == [candidate(1)]
            finally:
                store.close()
        finally:
            proc.terminate()
            _, stderr = proc.communicate(timeout=10)
    assert proc.returncode == 0, stderr


# -- opt-in: a real Dgraph ------------------------------------------------------------------------

LIVE_URL = os.environ.get("DGRAPH_TEST_URL", "")
SCHEMA = LIVE_SCHEMA  # the minimal schema of docs/dgraph.md
PREDICATES = re.findall(r"^(\w+):", SCHEMA, re.MULTILINE)


@pytest.mark.live
@pytest.mark.skipif(not LIVE_URL, reason="set DGRAPH_TEST_URL=host:port of a disposable Dgraph alpha")
def test_live_dgraph(open_dgraph: Callable[..., DgraphStore]) -> None:
    host = LIVE_URL.removeprefix("dgraph://").rstrip("/")
    token = secrets.token_hex(4)
    prefix, os_name, index = (
        f"graph-refresh-live-{token}-",
        f"grlive{token}",
        f"https://{token}.example/simple",
    )
    env = SolverEnvironment(f"solver-{os_name}-1-py38", os_name, "1", "3.8")

    def entity(i: int, **edges: Any) -> dict[str, Any]:
        return {
            "uid": f"_:e{i}",
            "python_package_version_entity_label": "python_package_version_entity",
            "package_name": f"{prefix}{i}",
            "package_version": "1.0",
            "index_url": index,
            "ecosystem": "python",
            "provided_by": [{"uid": "_:index"}],
            **edges,
        }

    solved = {
        "python_package_version_label": "python_package_version",
        "os_name": os_name,
        "os_version": "1",
        "python_version": "3.8",
    }
    nodes = [
        {"uid": "_:index", "python_package_index_label": "python_package_index", "url": index},
        entity(0),
        entity(1, installed_from=[{**solved, "uid": "_:s1", "solver_error": False}]),
        entity(2, installed_from=[{**solved, "uid": "_:s2", "solver_error": True}]),
        entity(3, package_analyzer_input=[{"uid": "_:a3", "package_analyzer_run_label": "package_analyzer_run"}]),
        entity(4, installed_from=[{**solved, "uid": "_:s4", "python_version": "3.9"}]),
    ]
    stub = pydgraph.DgraphClientStub(host)
    client = pydgraph.DgraphClient(stub)
    uids: list[str] = []
    try:
        client.alter(pydgraph.Operation(schema=SCHEMA), timeout=30)
        response = client.txn().mutate(set_obj=nodes, commit_now=True, timeout=30)  # a JSON array: many nodes
        uids = list(response.uids.values())
        store = open_dgraph(StoreSettings(graph_service_host=host), page_size=2)

        def mine(candidates: Iterator[Candidate]) -> list[str]:
            return sorted(c.package_name.removeprefix(prefix) for c in candidates if c.package_name.startswith(prefix))

        assert mine(store.solver_candidates(env)) == ["0", "3", "4"]
        assert mine(store.analyzer_candidates()) == ["0", "1", "2", "4"]
        assert index in store.index_urls()
    finally:
        if uids:
            nquads = "\n".join(f"<{uid}> <{predicate}> * ." for uid in uids for predicate in PREDICATES)
            client.txn().mutate(del_nquads=nquads, commit_now=True, timeout=30)
        stub.close()


def test_a_respelled_row_is_looked_up_read_only_with_variables(open_dgraph: Callable[..., DgraphStore]) -> None:
    graph = {
        "package_versions": [
            {"package_name": name, "package_version": "1", "index_url": PYPI}
            for name in ("flask", "zzz", "Flask", "Only_Odd")
        ]
    }
    with FakeDgraph(graph, normalize_names=False) as server:
        store = open_dgraph(server.settings())
        assert list(store.analyzer_candidates()) == [
            Candidate("flask", "1", PYPI),
            Candidate("zzz", "1", PYPI),
            Candidate("only-odd", "1", PYPI),
        ]
        lookups = [r for r in server.calls() if "twin" in r.query]
    assert [r.vars for r in lookups] == [
        {"$name": "flask", "$version": "1", "$index": PYPI},
        {"$name": "only-odd", "$version": "1", "$index": PYPI},
    ]
    assert all(r.read_only and "flask" not in r.query for r in lookups)


def test_an_encrypted_client_key_is_a_configuration_error_not_a_prompt(certs: SimpleNamespace, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    path = tls_dir(tmp_path / "tls", certs.mine, client=True)
    key = serialization.load_pem_private_key((path / "client.user.key").read_bytes(), password=None)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    (path / "client.user.key").write_bytes(encrypted)
    with pytest.raises(ConfigError, match="unencrypted"):
        DgraphStore(StoreSettings(graph_service_host="localhost", graph_tls_path=path))


@pytest.mark.parametrize(
    "names",
    [
        ("Flask_Login", "flask-login"),
        ("zzz", "Flask_Login", "flask-login"),
        ("Flask.Login", "Flask_Login", "flask-login"),
    ],
)
def test_every_order_of_spellings_yields_the_item_exactly_once(
    names: tuple[str, ...], open_dgraph: Callable[..., DgraphStore]
) -> None:
    graph = {"package_versions": [{"package_name": n, "package_version": "1", "index_url": PYPI} for n in names]}
    with FakeDgraph(graph, normalize_names=False) as server:
        store = open_dgraph(server.settings(), page_size=1)  # neighbours across page boundaries too
        assert [c.package_name for c in store.analyzer_candidates()].count("flask-login") == 1


def test_a_lookup_answer_too_large_for_grpc_is_asked_again_in_halves(
    fake: FakeDgraph, open_dgraph: Callable[..., DgraphStore]
) -> None:
    store = open_dgraph(fake.settings(), page_size=4)
    asked = [candidate(i) for i in range(6)]
    expected = [store.status(item, [FEDORA]) for item in asked]
    fake.clear()
    fake.inject(grpc.StatusCode.RESOURCE_EXHAUSTED, details="Received message larger than max", times=2)
    assert store.statuses(asked, [FEDORA]) == expected
    names = [sorted(v for k, v in request.vars.items() if k.startswith("$n")) for request in fake.calls()]
    four, two, one = (sorted(item.package_name for item in asked[:n]) for n in (4, 2, 1))
    assert names == [
        four,
        two,
        one,
        [asked[1].package_name],
        [asked[2].package_name, asked[3].package_name],
        sorted(item.package_name for item in asked[4:]),
    ]


def test_a_lookup_of_one_item_too_large_for_grpc_is_a_store_error_naming_it(
    fake: FakeDgraph, open_dgraph: Callable[..., DgraphStore]
) -> None:
    fake.inject(grpc.StatusCode.RESOURCE_EXHAUSTED, details="Received message larger than max", times=10)
    with pytest.raises(StoreError, match=r"the answer for 'package-01' '1\.1\.0' .* alone is over"):
        open_dgraph(fake.settings()).statuses([candidate(1)], [FEDORA])


def test_dependencies_are_one_query_a_batch_through_the_depends_on_edge(
    open_dgraph: Callable[..., DgraphStore],
) -> None:
    graph = {
        "solved": [
            {
                **version(i),
                "solver": FEDORA.name,
                "depends_on": [version(i + 1), {**version(i + 1), "package_name": "X"}],
            }
            for i in range(7)
        ]
    }
    with FakeDgraph(graph) as server:
        store = open_dgraph(server.settings())
        asked = [candidate(i) for i in range(7)]
        answer = store.dependencies(asked)
        calls = server.calls()
    assert answer == [sorted([candidate(i + 1), Candidate("x", *candidate(i + 1)[1:])]) for i in range(7)]
    assert len(calls) == 3  # 7 items in batches of 3 (the page size)
    for call in calls:
        assert "depends_on @filter(has(python_package_version_entity_label))" in call.query
        assert call.read_only
        assert not any(value in call.query for value in call.vars.values())  # values only as variables
    assert sorted(value for call in calls for key, value in call.vars.items() if key.startswith("$n")) == sorted(
        item.package_name for item in asked
    )


def test_dependencies_of_an_item_on_two_nodes_are_those_of_both(open_dgraph: Callable[..., DgraphStore]) -> None:
    graph = {"solved": [{**version(1), "solver": FEDORA.name, "depends_on": [version(2)]}]}
    with FakeDgraph(graph) as server:
        store = open_dgraph(server.settings())
        copy = server.graph.copy_entity(candidate(1))
        server.graph.add(
            parse_graph({"solved": [{**version(3), "solver": FEDORA.name, "depends_on": [version(4)]}]}, source="t")
        )
        server.graph.nodes[copy]["installed_from"] = server.graph.nodes[server.graph.entity(candidate(3))][
            "installed_from"
        ]
        assert store.dependencies([candidate(1)]) == [[candidate(2), candidate(4)]]


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ({"depends_on": []}, "installed_from is not a list of nodes"),
        ([{"depends_on": [7]}], "depends_on is not a list of nodes"),
        ([{"depends_on": {"uid": "0x2"}}], "depends_on is not a list of nodes"),
        ([{"depends_on": [{"uid": "0x2", "package_version": 2}]}], "'package_version' is a JSON number"),
    ],
)
def test_a_dependencies_answer_of_the_wrong_shape_is_a_store_error(
    records: Any, message: str, fake: FakeDgraph, open_dgraph: Callable[..., DgraphStore]
) -> None:
    fake.inject(answer=json.dumps({"item": [{"uid": "0x1", **version(1), "installed_from": records}]}).encode())
    with pytest.raises(StoreError, match=re.escape(message)):
        open_dgraph(fake.settings()).dependencies([candidate(1)])
