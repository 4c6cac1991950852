"""``python -m tests.fakes.kube``: the Kubernetes stand-in started on its own, as an operator starts it."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fakes.kube import SERVING_LOCK
from tests.helpers import EXAMPLE_TEMPLATES, ROOT, SAMPLE_GRAPH, unwrapped

pytestmark = pytest.mark.timeout(60)

STARTUP_SECONDS = 20.0  # generous: two cores are shared by the whole suite


def stand_in(*args: str, cwd: Path = ROOT) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.kube", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.fakes.kube", *args], cwd=ROOT, capture_output=True, text=True, timeout=30
    )


def wait_for(path: Path, process: subprocess.Popen[str]) -> None:
    """Until ``path`` exists (the kubeconfig, written once the server listens); fail if the process ends."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while not path.exists():
        if process.poll() is not None:
            _, stderr = process.communicate()
            pytest.fail(f"the stand-in exited with {process.returncode}: {stderr}")
        assert time.monotonic() < deadline, "the stand-in did not write its kubeconfig"
        time.sleep(0.05)


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    """Stand-ins a test started; any still running at the end are killed."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate()  # also closes the pipes


def kubectl(kubeconfig: Path, *args: str) -> str:
    result = subprocess.run(
        ["kubectl", "--kubeconfig", str(kubeconfig), *args], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_help_describes_the_options() -> None:
    result = run("--help")
    assert result.returncode == 0
    for option in ("--port", "--make-tls", "--tls-dir", "--load", "--namespace", "--kubeconfig", "--context-namespace"):
        assert option in result.stdout
    for fault in ("--forbid RULE", "--fail RULE=ANSWER[@RATE]", "--quota RESOURCE=QUANTITY", "--latency", "--seed"):
        assert fault in result.stdout
    assert "RULE is VERBS:RESOURCE[/NAME]" in result.stdout
    assert "--forbid create,update:configmaps/graph-refresh-ledger" in result.stdout, "an example"


def test_make_tls_writes_a_ca_and_two_pairs_with_private_keys_for_the_owner_only(tmp_path: Path) -> None:
    folder = tmp_path / "tls"
    result = run("--make-tls", str(folder))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in folder.iterdir()) == [
        "ca.crt",
        "client.crt",
        "client.key",
        "server.crt",
        "server.key",
    ]
    modes = {p.name: p.stat().st_mode & 0o777 for p in folder.iterdir()}
    assert modes["server.key"] == modes["client.key"] == 0o600
    assert all(mode & 0o077 == 0 for name, mode in modes.items() if name.endswith(".key"))


def test_serves_the_loaded_objects_to_kubectl_until_sigterm(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    tls = tmp_path / "tls"
    assert run("--make-tls", str(tls)).returncode == 0
    quota = tmp_path / "quota.json"  # JSON, and with its own namespace
    quota.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "List",
                "items": [
                    {
                        "apiVersion": "v1",
                        "kind": "ResourceQuota",
                        "metadata": {"name": "jobs", "namespace": "middletier"},
                        "spec": {"hard": {"count/jobs.batch": "5"}},
                    }
                ],
            }
        )
    )
    kubeconfig = tmp_path / "kubeconfig"
    templates = [str(p) for p in sorted(EXAMPLE_TEMPLATES.glob("*.yaml"))]
    process = stand_in(
        "--tls-dir", str(tls), "--namespace", "infra", "--load", *templates, "--load", str(quota),
        "--kubeconfig", str(kubeconfig), "--context-namespace", "middletier",
    )  # fmt: skip
    processes.append(process)
    wait_for(kubeconfig, process)
    assert process.stdout is not None
    assert process.stdout.readline().startswith("listening on https://127.0.0.1:")
    assert kubeconfig.stat().st_mode & 0o777 == 0o600  # it holds the token
    config = yaml.safe_load(kubeconfig.read_text())
    assert config["contexts"][0]["context"]["namespace"] == "middletier"
    assert config["clusters"][0]["cluster"]["certificate-authority"] == str(tls.resolve() / "ca.crt")

    assert kubectl(kubeconfig, "get", "templates", "-n", "infra", "-o", "name").split() == [
        "template.template.openshift.io/package-analyzer",
        "template.template.openshift.io/solver",
    ]
    assert kubectl(kubeconfig, "get", "resourcequota", "-o", "name").split() == ["resourcequota/jobs"]

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0


def test_mutual_tls_on_a_chosen_port(tmp_path: Path, processes: list[subprocess.Popen[str]]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    kubeconfig = tmp_path / "kubeconfig"
    process = stand_in("--tls", "mtls", "--port", str(port), "--kubeconfig", str(kubeconfig))
    processes.append(process)
    wait_for(kubeconfig, process)
    config = yaml.safe_load(kubeconfig.read_text())
    assert config["clusters"][0]["cluster"]["server"] == f"https://127.0.0.1:{port}"
    assert set(config["users"][0]["user"]) == {"token", "client-certificate", "client-key"}
    assert "No resources found" not in kubectl(kubeconfig, "get", "namespaces")
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=10) == 0


def test_a_port_in_use_is_one_line_naming_it(processes: list[subprocess.Popen[str]]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run("--port", str(port))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"python -m tests.fakes.kube: error: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]


@pytest.mark.parametrize(
    ("make", "args", "message"),
    [
        (None, ["--load", "{tmp}/nope.yaml"], "--load {tmp}/nope.yaml: no such file"),
        (
            ("bad.yaml", "kind: [unclosed\n"),
            ["--load", "{tmp}/bad.yaml"],
            "{tmp}/bad.yaml: not YAML or JSON: while parsing a flow sequence",
        ),
        (
            ("deploy.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n"),
            ["--load", "{tmp}/deploy.yaml"],
            "{tmp}/deploy.yaml: cannot load Deployment (apps/v1); known: ",
        ),
        (
            ("job.yaml", "apiVersion: batch/v1\nkind: Job\nmetadata: {name: Not_A_Name}\n"),
            ["--load", "{tmp}/job.yaml"],
            '{tmp}/job.yaml: Job.batch "Not_A_Name" is invalid: metadata.name: Invalid value',
        ),
        (None, ["--tls-dir", "{tmp}"], "--tls-dir {tmp}: missing ca.crt, server.crt, server.key, client.crt, "),
        (None, ["--port", "70000"], "--port 70000: not a port (0 to 65535)"),
        (None, ["--context-namespace", "x"], "--context-namespace needs --kubeconfig"),
        (None, ["--make-tls", "{tmp}/tls", "--load", "x"], "--make-tls writes the TLS files and exits"),
        (None, ["--make-tls", "{tmp}/tls", "--latency", "1"], "--make-tls writes the TLS files and exits"),
        (None, ["--forbid", "jobs"], "--forbid 'jobs' is not VERBS:RESOURCE[/NAME]"),
        (None, ["--forbid", "fly:jobs"], "--forbid 'fly:jobs': 'fly' is not a verb (get, list, create, update, "),
        (None, ["--forbid", "get:widgets"], "--forbid 'get:widgets': 'widgets' is not a resource (namespaces, "),
        (None, ["--forbid", "create:namespaces"], "--forbid 'create:namespaces': the stand-in serves no create of "),
        (None, ["--fail", "create:jobs"], "--fail 'create:jobs' is not RULE=ANSWER[@RATE]"),
        (None, ["--fail", "create:jobs=700"], "--fail 'create:jobs=700': '700' is neither an HTTP status from 400"),
        (None, ["--fail", "create:jobs=500@1.5"], "--fail 'create:jobs=500@1.5': the rate '1.5' is not a number "),
        (None, ["--fail", "create:jobs=500@x"], "--fail 'create:jobs=500@x': the rate 'x' is not a number above 0"),
        (None, ["--quota", "count/jobs.batch=lots"], "--quota 'count/jobs.batch=lots': 'lots' is not a Kubernetes "),
        (None, ["--quota", "5"], "--quota '5' is not RESOURCE=QUANTITY"),
        (None, ["--latency", "-1"], "--latency -1: not a number of seconds from 0 to 300"),
    ],
)
def test_bad_arguments_and_files_are_one_line_naming_them(
    tmp_path: Path, make: tuple[str, str] | None, args: list[str], message: str
) -> None:
    if make is not None:
        (tmp_path / make[0]).write_text(make[1])
    result = run(*(arg.format(tmp=tmp_path) for arg in args))
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith("python -m tests.fakes.kube: error: " + message.format(tmp=tmp_path))
    assert result.stdout == ""


# --- faults from the command line -----------------------------------------------------------------------------


def serve(tmp_path: Path, processes: list[subprocess.Popen[str]], *args: str, name: str = "kubeconfig") -> Path:
    """A stand-in with the example Templates in infra and ``args``; returns its kubeconfig (context: middletier)."""
    kubeconfig = tmp_path / name
    templates = [str(p) for p in sorted(EXAMPLE_TEMPLATES.glob("*.yaml"))]
    process = stand_in(
        "--namespace", "infra", "--load", *templates, "--kubeconfig", str(kubeconfig),
        "--context-namespace", "middletier", *args,
    )  # fmt: skip
    processes.append(process)
    wait_for(kubeconfig, process)
    return kubeconfig


class Api:
    """Plain HTTPS requests to a stand-in, as its kubeconfig allows: what a test sends is exactly one request."""

    def __init__(self, kubeconfig: Path) -> None:
        config = yaml.safe_load(kubeconfig.read_text())
        cluster = config["clusters"][0]["cluster"]
        self.host, self.port = cluster["server"].removeprefix("https://").split(":")
        self.context = ssl.create_default_context(cafile=cluster["certificate-authority"])
        self.token = config["users"][0]["user"]["token"]

    def send(self, method: str, path: str, body: Any = None, timeout: float = 10) -> tuple[int, dict[str, str], Any]:
        connection = http.client.HTTPSConnection(self.host, int(self.port), context=self.context, timeout=timeout)
        try:
            data = None if body is None else json.dumps(body)
            headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
            connection.request(method, path, body=data, headers=headers)
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), json.loads(response.read() or b"null")
        finally:
            connection.close()


CONFIGMAPS = "/api/v1/namespaces/middletier/configmaps"


def configmap(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"a": "b"}}


def graph_refresh(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """A real run of graph-refresh against the stand-in, as an operator starts it."""
    env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "THOTH_INFRA_NAMESPACE": "infra",
        "THOTH_MIDDLETIER_NAMESPACE": "middletier",
        "GRAPH_REFRESH_NO_PACKAGE_ANALYZERS": "1",
    }
    return subprocess.run(
        [sys.executable, "app.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_forbid_answers_403_worded_as_rbac_to_kubectl_and_graph_refresh(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    kubeconfig = serve(
        tmp_path, processes,
        "--forbid", "create,update:configmaps/graph-refresh-ledger", "--forbid", "list:po", "--quota",
        "count/jobs.batch=2",
    )  # fmt: skip
    ledger, other = tmp_path / "ledger.json", tmp_path / "other.json"
    ledger.write_text(json.dumps(configmap("graph-refresh-ledger")))
    other.write_text(json.dumps(configmap("other")))
    refused = subprocess.run(
        ["kubectl", "--kubeconfig", str(kubeconfig), "create", "-f", str(ledger)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        'Error from server (Forbidden): error when creating "' + str(ledger) + '": configmaps is forbidden: '
        'User "fake-user" cannot create resource "configmaps" in API group "" in the namespace "middletier"'
    )
    assert kubectl(kubeconfig, "create", "-f", str(other)).strip() == "configmap/other created", "another name"
    listing = subprocess.run(
        ["kubectl", "--kubeconfig", str(kubeconfig), "get", "pods"], capture_output=True, text=True, check=False
    )
    assert 'pods is forbidden: User "fake-user" cannot list resource "pods"' in listing.stderr
    assert "resourcequota/stand-in" in kubectl(kubeconfig, "get", "resourcequota", "-o", "name")

    assert graph_refresh(kubeconfig, "import-graph", str(SAMPLE_GRAPH)).returncode == 0
    report = tmp_path / "report.json"
    done = graph_refresh(kubeconfig, "--report", str(report))
    assert done.returncode == 0, done.stderr
    assert "The ledger graph-refresh-ledger could not be written" in unwrapped(done.stderr)
    data = json.loads(report.read_text())
    assert data["ledger"]["written"] is False
    assert "403 Forbidden" in data["ledger"]["reason"]
    assert data["totals"]["solver"]["scheduled"] == 2, "the quota of two Jobs"


def test_failures_at_a_rate_are_drawn_from_the_seed(tmp_path: Path, processes: list[subprocess.Popen[str]]) -> None:
    rules = ["--fail", "create:configmaps=409@0.5", "--fail", "update:cm=429", "--fail", "get:configmaps/x=500"]
    apis = [
        Api(serve(tmp_path, processes, *rules, "--seed", seed, name=f"kubeconfig-{n}"))
        for n, seed in enumerate(["5", "5", "6"])
    ]
    sent = [[api.send("POST", CONFIGMAPS, configmap(f"c{i}")) for i in range(20)] for api in apis]
    answers = [[code for code, _, _ in answered] for answered in sent]
    assert answers[0] == answers[1], "the same seed, the same answers"
    assert answers[0] != answers[2]
    assert set(answers[0]) == {201, 409}

    api = apis[0]
    refused = answers[0].index(409)
    status = sent[0][refused][2]
    assert (status["reason"], status["message"]) == ("AlreadyExists", f'configmaps "c{refused}" already exists')
    listed = {item["metadata"]["name"] for item in api.send("GET", CONFIGMAPS)[2]["items"]}
    assert listed == {f"c{i}" for i, answer in enumerate(answers[0]) if answer == 201}, "a 409 stored nothing"

    code, headers, status = api.send("PUT", f"{CONFIGMAPS}/c0", configmap("c0"))
    assert (code, headers["Retry-After"], status["reason"], status["details"]["retryAfterSeconds"]) == (
        429,
        "1",
        "TooManyRequests",
        1,
    )
    code, _, status = api.send("GET", f"{CONFIGMAPS}/x")
    assert (code, status["message"]) == (500, "Internal error occurred: the stand-in's --fail get:configmaps/x=500")
    assert api.send("GET", f"{CONFIGMAPS}/c0")[0] in (200, 404), "other names are not matched"


def test_a_timeout_never_answers_and_latency_slows_every_answer(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    api = Api(serve(tmp_path, processes, "--fail", "get:configmaps/hang=timeout", "--latency", "0.3"))
    with pytest.raises(TimeoutError):
        api.send("GET", f"{CONFIGMAPS}/hang", timeout=1)
    started = time.monotonic()
    assert api.send("GET", f"{CONFIGMAPS}/other")[0] == 404
    assert time.monotonic() - started >= 0.3


def test_make_tls_refuses_to_replace_the_ca_a_running_stand_in_serves_with(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    tls = tmp_path / "tls"
    assert run("--make-tls", str(tls)).returncode == 0
    ca = (tls / "ca.crt").read_bytes()
    kubeconfig = serve(tmp_path, processes, "--tls-dir", str(tls))
    pid = processes[-1].pid

    again = run("--make-tls", str(tls))
    assert again.returncode == 2
    assert again.stderr.splitlines() == [
        f"python -m tests.fakes.kube: error: --make-tls {tls}: a running stand-in (pid {pid}) serves with its CA, and "
        'a new CA would break its clients ("x509: certificate signed by unknown authority"): stop it first '
        f"(kill {pid})"
    ]
    assert (tls / "ca.crt").read_bytes() == ca
    assert "default" in kubectl(kubeconfig, "get", "namespaces"), "kubectl still trusts the stand-in"

    processes[-1].send_signal(signal.SIGTERM)
    assert processes[-1].wait(timeout=10) == 0
    assert not (tls / SERVING_LOCK).exists()
    assert run("--make-tls", str(tls)).returncode == 0
    assert (tls / "ca.crt").read_bytes() != ca

    serve(tmp_path, processes, "--tls-dir", str(tls), name="kubeconfig-2")
    processes[-1].kill()  # killed outright: its mark stays, and no one holds it
    processes[-1].wait(timeout=10)
    assert (tls / SERVING_LOCK).exists()
    assert run("--make-tls", str(tls)).returncode == 0
