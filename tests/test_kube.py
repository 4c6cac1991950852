"""The Kubernetes client (graph_refresh/kube.py): kubeconfig and TLS, paging, retried reads, typed errors
that say which verb on which resource failed, the ConfigMap and pod operations, and no secret in any output.

Most tests run the CLI against FakeKube through a generated kubeconfig, as an operator would; the client's
own operations are called directly with a kubeconfig in the environment.
"""

from __future__ import annotations

import base64
import email.utils
import json
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from graph_refresh import backoff, errors, kube
from graph_refresh.config import ClusterSettings

from .fakes.kube import FakeKube, Request, status_body
from .helpers import (
    INFRA,
    JOBS_PATH,
    MANAGED,
    MIDDLETIER,
    Harness,
    RunCli,
    kubeconfig_without_ca,
    owned_job,
    quota,
    scheduled,
)

Obj = dict[str, Any]


# --- connections and paging ---------------------------------------------------------------------------


def test_creates_reuse_connections(cluster: Harness) -> None:
    """Each create's answer is read, so its connection goes back to the pool instead of a new TLS handshake."""
    cluster.graph([f"p{i}" for i in range(5)])
    connect = lambda: kube.Cluster(ClusterSettings(workers=2))  # noqa: E731
    result, report = cluster.run("--workers", "2", connect=connect)
    assert result.exit_code == 0
    assert sum(scheduled(report).values()) == 20
    # Templates, Jobs (those that did not succeed, then two Tables of those that did), quotas, ledger and requests
    # reads, 20 creates, a write.
    assert len(cluster.fake.requests) == 28
    assert len({r.connection for r in cluster.fake.requests}) <= 3, "one connection per worker, and the reads'"


def test_owned_jobs_are_listed_page_by_page(cluster: Harness) -> None:
    cluster.graph([f"p{i}" for i in range(2)])
    assert cluster.run()[0].exit_code == 0  # 8 owned Jobs now
    cluster.fake.clear_requests()

    result, report = cluster.run(connect=lambda: kube.Cluster(ClusterSettings(), page_size=3))

    assert result.exit_code == 0
    assert cluster.created() == []
    listed = cluster.fake.requests_for("GET", JOBS_PATH)
    assert all(page.query["limit"] == ["3"] for page in listed)
    pages = [page for page in listed if page.query["fieldSelector"] == [kube.NOT_SUCCEEDED]]  # live: all 8
    assert len(pages) == math.ceil(8 / 3)
    assert all(page.query["labelSelector"] == ["app.kubernetes.io/managed-by=graph-refresh"] for page in pages)
    assert "continue" not in pages[0].query
    tokens = [page.query["continue"][0] for page in pages[1:]]
    assert len(set(tokens)) == len(tokens) == 2, "each page continues where the last one stopped"
    assert report["in_flight"] == {"solver": 6, "package-analyzer": 2}, "every page was read"


def test_list_uses_the_default_page_size(cluster: Harness) -> None:
    cluster.graph(["a"])
    cluster.run("--dry-run")
    pages = cluster.fake.requests_for("GET", JOBS_PATH)
    assert len(pages) == 3  # the Jobs that did not succeed, and two Tables of those that did
    assert all(page.query["limit"] == [str(kube.LIST_PAGE_SIZE)] == ["500"] for page in pages)


def test_a_continue_token_that_never_changes_fails_the_run_instead_of_looping(cluster: Harness) -> None:
    cluster.graph(["flask"])
    stuck = {"kind": "JobList", "apiVersion": "batch/v1", "metadata": {"continue": "abc"}, "items": []}
    cluster.fake.inject(method="GET", path=JOBS_PATH, status=200, body=stuck, times=None)
    result, report = cluster.run()
    assert result.exit_code == 1
    assert "the same continue token twice" in report["error"]
    assert len(cluster.fake.requests_for("GET", JOBS_PATH)) == 2
    assert cluster.created() == []


# --- retried reads and typed errors ---------------------------------------------------------------------


def test_a_blip_while_reading_the_cluster_is_retried(cluster: Harness) -> None:
    cluster.graph(["flask"])
    cluster.fake.inject(method="GET", path=JOBS_PATH, status=500)
    cluster.fake.inject(method="GET", path=r"/resourcequotas$", status=429, headers={"Retry-After": "3"})
    cluster.fake.inject(method="GET", path=r"/templates$", status=503)
    result, report = cluster.run()
    assert result.exit_code == 0, result.stderr
    assert scheduled(report) == {"solver": 3, "package-analyzer": 1}
    assert sorted(cluster.sleeps) == [0.5, 0.5, 3.0]


def test_an_answer_that_is_not_json_is_retried_like_no_answer(cluster: Harness) -> None:
    cluster.graph(["flask"])
    cluster.fake.inject(method="GET", path=JOBS_PATH, status=200, body="<html>proxy error</html>")
    cluster.fake.inject(method="GET", path=r"/templates$", status=200, body='["not", "an", "object"]')
    result, report = cluster.run()
    assert result.exit_code == 0, result.stderr
    assert sum(scheduled(report).values()) == 4
    assert "Traceback" not in result.stderr


def test_retry_after_as_an_http_date_is_honoured_and_a_negative_one_is_not_slept(cluster: Harness) -> None:
    cluster.graph(["flask"])
    soon = email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=20), usegmt=True)
    cluster.fake.inject(method="POST", path=JOBS_PATH, status=429, headers={"Retry-After": soon})
    cluster.fake.inject(method="GET", path=JOBS_PATH, status=429, headers={"Retry-After": "-5"})
    result, report = cluster.run()
    assert result.exit_code == 0, result.stderr
    assert sum(scheduled(report).values()) == 4
    assert 0.0 in cluster.sleeps, cluster.sleeps
    assert any(15 < s <= 20 for s in cluster.sleeps), cluster.sleeps


@pytest.mark.parametrize(
    ("method", "path", "says"),
    [
        ("POST", JOBS_PATH, "create jobs.batch in namespace 'middletier'"),
        ("GET", r"/templates$", "list templates.template.openshift.io in namespace 'infra'"),
        ("GET", r"/resourcequotas$", "list resourcequotas in namespace 'middletier'"),
        ("GET", JOBS_PATH, "list jobs.batch in namespace 'middletier'"),
    ],
)
def test_403_fails_the_run_saying_which_verb_on_which_resource_where(
    method: str, path: str, says: str, cluster: Harness
) -> None:
    cluster.graph(["flask"])
    message = f'User "system:serviceaccount:frontend:graph-refresh" cannot {method} here'
    cluster.fake.inject(method=method, path=path, status=403, times=None, body=status_body(403, message, "Forbidden"))
    result, report = cluster.run()
    assert result.exit_code == 1
    assert report["exit_code"] == 1
    assert says in result.stderr
    assert "403" in result.stderr
    assert "cannot" in result.stderr
    assert says in report["error"]
    assert cluster.jobs() == {}


def test_wrong_token_is_401_and_fails_the_run(cluster: Harness, tmp_path: Path) -> None:
    cluster.graph(["flask"])
    kubeconfig = cluster.fake.kubeconfig(tmp_path / "wrong-token", token="not-the-token")
    result, report = cluster.run(env={"KUBECONFIG": str(kubeconfig)})
    assert result.exit_code == 1
    assert report["exit_code"] == 1
    assert "401" in result.stderr
    assert "Unauthorized" in result.stderr
    assert "not-the-token" not in result.stderr + result.output
    assert cluster.writes() == []


def test_an_answer_nested_too_deep_is_a_clear_error(cluster: Harness) -> None:
    cluster.graph(["flask"])
    deep = '{"items": ' + "[" * 100_000 + "]" * 100_000 + "}"
    cluster.fake.inject(method="GET", path=r"/templates$", status=200, body=deep, times=None)
    result, report = cluster.run()
    assert result.exit_code == 1
    assert report["exit_code"] == 1
    assert "list templates.template.openshift.io in namespace 'infra': the answer is nested too deep" in report["error"]
    assert "Traceback" not in result.stderr
    assert "RecursionError" not in result.stderr
    assert len(cluster.fake.requests_for("GET", r"/templates$")) == backoff.READS.attempts  # retried like no answer


# --- credentials and TLS ----------------------------------------------------------------------------


def test_a_wrong_ca_fails_with_a_tls_error(cluster: Harness, tmp_path: Path) -> None:
    cluster.graph(["flask"])
    kubeconfig = cluster.fake.kubeconfig(tmp_path / "wrong-ca", wrong_ca=True)
    result, report = cluster.run(env={"KUBECONFIG": str(kubeconfig)})
    assert result.exit_code == 1
    assert report["exit_code"] == 1
    assert "TLS" in result.stderr
    assert "list templates.template.openshift.io in namespace 'infra'" in result.stderr
    assert cluster.fake.wait_for_tls_failure()
    assert cluster.fake.requests == []


def test_without_a_ca_tls_verification_fails(cluster: Harness, tmp_path: Path) -> None:
    cluster.graph(["flask"])
    kubeconfig = kubeconfig_without_ca(cluster.fake, tmp_path / "no-ca")
    result, _ = cluster.run(env={"KUBECONFIG": str(kubeconfig)})
    assert result.exit_code == 1
    assert "TLS" in result.stderr


def test_verify_tls_off_works_without_a_ca_and_warns_loudly(cluster: Harness, tmp_path: Path) -> None:
    cluster.graph(["flask"])
    kubeconfig = kubeconfig_without_ca(cluster.fake, tmp_path / "no-ca")
    result, report = cluster.run(env={"KUBECONFIG": str(kubeconfig), "KUBERNETES_VERIFY_TLS": "0"})
    assert result.exit_code == 0, result.stderr
    assert len(cluster.jobs()) == 4
    assert report["exit_code"] == 0
    assert re.search(r"WARNING .*KUBERNETES_VERIFY_TLS=0: the API server's certificate is NOT verified", result.stderr)
    assert "InsecureRequestWarning" not in result.stderr, "warned once by us, not by urllib3 on every request"


def test_a_kubeconfig_that_skips_verification_is_warned_about_too(cluster: Harness, tmp_path: Path) -> None:
    cluster.graph(["flask"])
    kubeconfig = cluster.fake.kubeconfig(tmp_path / "insecure", ca=False)  # insecure-skip-tls-verify: true
    result, _ = cluster.run(env={"KUBECONFIG": str(kubeconfig)})
    assert result.exit_code == 0, result.stderr
    assert re.search(r"WARNING .*insecure-skip-tls-verify in kubeconfig .*NOT verified", result.stderr)


@pytest.mark.parametrize("fake", ["mtls"], indirect=True)
def test_mutual_tls_without_a_client_certificate_fails(cluster: Harness, tmp_path: Path) -> None:
    cluster.graph(["flask"])
    kubeconfig = cluster.fake.kubeconfig(tmp_path / "no-cert", client_cert=False)
    result, report = cluster.run(env={"KUBECONFIG": str(kubeconfig)})
    assert result.exit_code == 1
    assert report["exit_code"] == 1
    assert "list templates.template.openshift.io in namespace 'infra'" in result.stderr
    assert cluster.fake.wait_for_tls_failure()
    assert cluster.jobs() == {}


def test_an_unreachable_api_server_fails_the_run(cluster: Harness, tmp_path: Path) -> None:
    cluster.graph(["flask"])
    with FakeKube(tls="tls") as gone:
        port = gone.port
    kubeconfig = cluster.fake.kubeconfig(tmp_path / "gone", server=f"https://127.0.0.1:{port}")
    result, report = cluster.run(env={"KUBECONFIG": str(kubeconfig)})
    assert result.exit_code == 1
    assert report["exit_code"] == 1
    (error,) = [line for line in result.stderr.splitlines() if "Run failed" in line]
    assert error.endswith(
        f"Run failed: list templates.template.openshift.io in namespace 'infra': cannot reach the API server at "
        f"https://127.0.0.1:{port}: connection refused; check that the cluster is up and that kubeconfig "
        f"{kubeconfig} names its API server"
    )
    for internal in ("HTTPSConnection", "Errno", "urllib3", "NewConnectionError", "Max retries"):
        assert internal not in result.stderr


@pytest.mark.parametrize("where", ["missing KUBECONFIG file", "no KUBECONFIG and no ~/.kube/config"])
def test_no_credentials_fails_the_run_with_a_report(where: str, cluster: Harness, tmp_path: Path) -> None:
    cluster.graph(["flask"])
    env = {"KUBECONFIG": str(tmp_path / "absent")} if where.startswith("missing") else {"KUBECONFIG": ""}
    result, report = cluster.run(env=env)
    assert result.exit_code == 1
    assert report["exit_code"] == 1
    assert "no cluster credentials" in result.stderr
    assert "no cluster credentials" in report["error"]
    assert cluster.fake.requests == []


def test_a_kubeconfig_whose_context_names_a_missing_user_says_so(cluster: Harness, tmp_path: Path) -> None:
    cluster.graph(["flask"])
    kubeconfig = cluster.fake.kubeconfig(tmp_path / "kubeconfig")
    document = yaml.safe_load(kubeconfig.read_text())
    document["contexts"][0]["context"]["user"] = "nobody"
    kubeconfig.write_text(yaml.safe_dump(document))
    result, report = cluster.run(env={"KUBECONFIG": str(kubeconfig)})
    assert result.exit_code == 1
    assert report["exit_code"] == 1
    assert f"no usable kubeconfig ({kubeconfig}): its context, cluster or user is incomplete" in result.stderr
    assert "Traceback" not in result.stderr
    assert cluster.fake.requests == []


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("clusters: [\n  - name: x\n   bad-indent", "is not valid YAML (while parsing a flow node"),
        ("just a string", "is not a YAML mapping but str"),
        ("- a\n- list", "is not a YAML mapping but list"),
        ("", "is not a YAML mapping but NoneType"),
        ("clusters: [{}]", "Invalid kube-config file"),
    ],
)
def test_a_kubeconfig_that_is_not_a_kubeconfig_fails_the_run_naming_it(
    text: str, why: str, cluster: Harness, tmp_path: Path
) -> None:
    cluster.graph(["flask"])
    broken = tmp_path / "broken-kubeconfig"
    broken.write_text(text)
    result, report = cluster.run(env={"KUBECONFIG": str(broken)})
    assert result.exit_code == 1
    assert report["exit_code"] == 1
    assert f"no cluster credentials: not in a cluster, and no usable kubeconfig ({broken}): " in report["error"]
    assert why in report["error"]
    assert why in result.stderr
    assert "Traceback" not in result.stderr + result.output
    assert cluster.fake.requests == []


# --- the client's own operations: owned pods, the ledger ConfigMap, server dry run -------------------


LEDGER = "graph-refresh-ledger"


CONFIGMAP_PATH = rf"^/api/v1/namespaces/{MIDDLETIER}/configmaps"


class Client:
    """kube.Cluster against the fake, built as a run builds it; ``sleeps`` records the waits of its reads."""

    def __init__(self, fake: FakeKube, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("KUBECONFIG", str(fake.kubeconfig(tmp_path / "client-kubeconfig")))
        self.fake = fake
        self.sleeps: list[float] = []

    def make(self, **tunables: Any) -> kube.Cluster:
        return kube.Cluster(ClusterSettings(), sleep=self.sleeps.append, **tunables)


@pytest.fixture
def client(fake: FakeKube, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Client:
    return Client(fake, tmp_path, monkeypatch)


def pod(name: str, labels: dict[str, str]) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": MIDDLETIER, "labels": labels},
        "spec": {"containers": [{"name": "x", "image": "x"}]},
    }


def test_owned_pods_are_listed_page_by_page_by_our_label(client: Client) -> None:
    for i in range(7):
        client.fake.add(pod(f"solver-x-{i}", {**MANAGED, "job-name": f"solver-x-{i}"}))
    client.fake.add(pod("someone-elses", {"app": "other"}))
    client.fake.inject(method="GET", path=r"/pods$", status=503)  # a blip on the first page is retried

    names = [p["metadata"]["name"] for p in client.make(page_size=3).list_owned_pods(MIDDLETIER)]

    assert names == [f"solver-x-{i}" for i in range(7)]
    pages = client.fake.requests_for("GET", rf"^/api/v1/namespaces/{MIDDLETIER}/pods$")
    assert len(pages) == 1 + math.ceil(7 / 3)
    assert client.sleeps == [0.5]
    assert all(p.query["labelSelector"] == ["app.kubernetes.io/managed-by=graph-refresh"] for p in pages)
    assert all(p.query["limit"] == ["3"] for p in pages)
    assert len({p.query["continue"][0] for p in pages if "continue" in p.query}) == 2


def test_the_ledger_configmap_round_trip_with_optimistic_concurrency(client: Client) -> None:
    cluster = client.make()
    assert cluster.read_configmap(MIDDLETIER, LEDGER) is None  # 404: no ledger yet

    first = cluster.create_configmap(MIDDLETIER, LEDGER, {"0123456789": "{}"}, MANAGED)
    with pytest.raises(errors.AlreadyExists) as exists:
        cluster.create_configmap(MIDDLETIER, LEDGER, {}, MANAGED)  # another run created it meanwhile
    assert exists.value.status == 409
    assert "create configmaps 'graph-refresh-ledger'" in str(exists.value)

    read = cluster.read_configmap(MIDDLETIER, LEDGER)
    assert read == ({"0123456789": "{}"}, first)
    second = cluster.replace_configmap(MIDDLETIER, LEDGER, {"0123456789": '{"failures":1}'}, first)
    assert int(second) > int(first)
    with pytest.raises(errors.Conflict) as conflict:
        cluster.replace_configmap(MIDDLETIER, LEDGER, {}, first)  # stale: read again, merge, retry
    assert conflict.value.status == 409

    stored = client.fake.get("configmaps", MIDDLETIER, LEDGER)
    assert stored is not None
    assert stored["data"] == {"0123456789": '{"failures":1}'}
    assert stored["metadata"]["labels"] == MANAGED, "a replace keeps our label"
    puts = client.fake.requests_for("PUT", CONFIGMAP_PATH + f"/{LEDGER}$")
    assert [r.body["metadata"]["resourceVersion"] for r in puts] == [first, first]


def test_reading_the_ledger_is_retried_and_a_refusal_is_typed(client: Client) -> None:
    client.fake.add({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": LEDGER, "namespace": MIDDLETIER}})
    client.fake.inject(method="GET", path=CONFIGMAP_PATH, status=500)
    client.fake.inject(method="GET", path=CONFIGMAP_PATH, status=429, headers={"Retry-After": "4"})
    cluster = client.make()
    read = cluster.read_configmap(MIDDLETIER, LEDGER)
    assert read is not None
    assert read[0] == {}
    assert client.sleeps == [0.5, 4.0]

    client.fake.inject(method="GET", path=CONFIGMAP_PATH, status=403, times=None)
    with pytest.raises(errors.Forbidden, match="get configmaps 'graph-refresh-ledger' in namespace 'middletier'"):
        cluster.read_configmap(MIDDLETIER, LEDGER)


def test_a_ledger_answer_that_is_not_a_configmap_is_an_error(client: Client) -> None:
    odd = {"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": LEDGER}, "data": {"k": 1}}
    client.fake.inject(method="GET", path=CONFIGMAP_PATH, status=200, body=odd)
    with pytest.raises(errors.GarbledAnswer, match="its data is not a map of strings"):
        client.make().read_configmap(MIDDLETIER, LEDGER)


def test_a_server_dry_run_create_sends_dry_run_all_and_stores_nothing(client: Client) -> None:
    cluster = client.make()
    cluster.create_job(MIDDLETIER, owned_job("solver-x-0123456789"), dry_run=True)
    cluster.create_job(MIDDLETIER, owned_job("solver-x-9876543210"))
    assert [r.query.get("dryRun") for r in client.fake.requests_for("POST", JOBS_PATH)] == [["All"], None]
    assert list(client.fake.objects("jobs", MIDDLETIER)) == [client.fake.get("jobs", MIDDLETIER, "solver-x-9876543210")]
    client.fake.add(quota("jobs", {"count/jobs.batch": "1"}, {}))
    with pytest.raises(errors.QuotaExceeded):  # admission runs in a dry run too
        cluster.create_job(MIDDLETIER, owned_job("solver-x-0123456789"), dry_run=True)


# --- secrets: what a server echoes back reaches no output ---------------------------------------------


ECHOED_TOKEN = "sha256~Qm9vdHN0cmFwLXRva2VuLWVjaG9lZC1iYWNr-9f3Kx"


def echo(code: int, padding: int) -> Callable[[Request], Obj]:
    """A Status whose message repeats the request's Authorization header after ``padding`` characters, so
    the token straddles where a log line or a report reason would cut it."""

    def body(request: Request) -> Obj:
        message = "x" * padding + f" request headers: Authorization: {request.headers.get('authorization')}"
        return status_body(code, message)

    return body


@pytest.mark.parametrize(
    ("method", "path", "code", "padding"),
    [
        ("POST", JOBS_PATH, 401, 0),
        ("POST", JOBS_PATH, 403, 0),
        ("POST", JOBS_PATH, 500, 0),
        ("POST", JOBS_PATH, 500, 55),  # straddles the cut of a report's failure reason (200 characters)
        ("POST", JOBS_PATH, 403, 240),  # straddles the cut of the server's message (300 characters)
        ("GET", r"/templates$", 403, 0),
        ("GET", r"/templates$", 403, 240),
    ],
)
def test_a_token_echoed_by_the_server_reaches_no_output(
    method: str,
    path: str,
    code: int,
    padding: int,
    run_cli: RunCli,
    tmp_path: Path,
    write_graph: Callable[[Obj], Path],
) -> None:
    with FakeKube(tls="tls", token=ECHOED_TOKEN) as fake:
        cluster = Harness(fake, run_cli, tmp_path, write_graph)
        cluster.graph(["flask"])
        fault = fake.inject(method=method, path=path, status=code, times=None, body=echo(code, padding))
        report_path = tmp_path / "report.json"
        result = run_cli(["--report", str(report_path)], env=cluster.env, sleep=cluster.sleeps.append)
    report = json.loads(report_path.read_text())
    assert result.exit_code == 1
    assert fault.hits >= 1
    said = [result.stdout, result.stderr, report_path.read_text()]
    if padding == 0:
        assert "Authorization: ***" in f"{report['error']} {report['failures']}", "the echo reached the report"
    credential = ECHOED_TOKEN.split("~")[1]
    pieces = {credential[i : i + 8] for i in range(len(credential) - 7)}  # a cut token must not leak either
    for text in said:
        assert not any(piece in text for piece in pieces), text


def test_a_kubeconfig_password_echoed_by_the_server_reaches_no_output(
    run_cli: RunCli, tmp_path: Path, write_graph: Callable[[Obj], Path]
) -> None:
    password = "Pa55-w0rd-for-basic-auth"
    with FakeKube(tls="tls", token=None) as fake:
        cluster = Harness(fake, run_cli, tmp_path, write_graph)
        document = yaml.safe_load(cluster.kubeconfig.read_text())
        document["users"][0]["user"] = {"username": "admin", "password": password}
        cluster.kubeconfig.write_text(yaml.safe_dump(document))
        cluster.graph(["flask"])

        def decoded(request: Request) -> Obj:  # a server that says which user and password it refused
            credentials = base64.b64decode(request.headers["authorization"].split()[1]).decode()
            return status_body(403, f"Authorization: {request.headers['authorization']} ({credentials})")

        fake.inject(method="GET", path=r"/templates$", status=403, times=None, body=decoded)
        result, report = cluster.run()
    assert result.exit_code == 1
    assert "Authorization: *** (admin:***)" in report["error"]
    header = fake.requests[0].headers["authorization"]
    assert header.startswith("Basic ")
    for text in (result.stdout, result.stderr, json.dumps(report)):
        assert password not in text
        assert header.split()[1] not in text


@pytest.mark.parametrize(
    ("path", "items"),
    [
        (JOBS_PATH, [None]),
        (JOBS_PATH, ["a-job"]),
        (rf"^/api/v1/namespaces/{MIDDLETIER}/resourcequotas$", [{"spec": "x"}, 7]),
        (rf"^/apis/template.openshift.io/v1/namespaces/{INFRA}/templates$", {"not": "a list"}),
    ],
)
def test_a_list_whose_items_are_not_objects_is_a_clear_failure(cluster: Harness, path: str, items: Any) -> None:
    cluster.graph(["flask"])
    body = {"kind": "List", "apiVersion": "v1", "metadata": {}, "items": items}
    cluster.fake.inject(method="GET", path=path, status=200, body=body, times=None)
    result, report = cluster.run()
    assert result.exit_code == 1
    assert report["exit_code"] == 1
    assert "Traceback" not in result.stderr
    assert "not a list of objects" in report["error"]
    assert cluster.created() == []
