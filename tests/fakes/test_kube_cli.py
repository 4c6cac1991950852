"""``python -m tests.fakes.kube``: the Kubernetes stand-in started on its own, as an operator starts it."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.helpers import EXAMPLE_TEMPLATES, ROOT

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
