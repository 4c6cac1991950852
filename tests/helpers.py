"""What several test files share: paths, the example cluster's names, report checks, and the cluster harness.

Fixtures live in conftest.py; everything here is a plain function, constant or class that a test imports.
"""

from __future__ import annotations

import fcntl
import itertools
import json
import os
import pty
import re
import shutil
import socket
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from click.testing import Result

from graph_refresh import cli
from graph_refresh.items import SOLVER, Candidate, WorkItem
from graph_refresh.text import CONTINUATION

from .fakes.kube import FakeKube, Request

Obj = dict[str, Any]
RunCli = Callable[..., Result]

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_GRAPH = ROOT / "data" / "sample-graph.json"
EXAMPLE_TEMPLATES = ROOT / "openshift" / "templates"
SHARED_2019 = ROOT.parent / "shared" / "thoth-2019"
PYPI = "https://pypi.org/simple"

# Every variable graph-refresh reads; tests start without any of them.
CONFIG_ENV = [option.envvar for option in cli.main.params if isinstance(option.envvar, str)] + [
    "KUBECONFIG",
    "KUBERNETES_SERVICE_HOST",
    "KUBERNETES_SERVICE_PORT",
    "SENTRY_DSN",  # thoth-common's logging set-ups: plain lines unless a test sets another
    "STI_SCRIPTS_PATH",
]

# The example cluster: Templates in infra, Jobs in middletier.
INFRA, MIDDLETIER = "infra", "middletier"
SOLVERS = ("solver-fedora-34-py39", "solver-ubi-8-py38", "solver-rhel-9-py311")  # the example Template's order
SOLVER_NAME = SOLVERS[0]  # the first solver of the example Template
JOBS_PATH = rf"^/apis/batch/v1/namespaces/{MIDDLETIER}/jobs$"
LEDGER_PATH = f"/api/v1/namespaces/{MIDDLETIER}/configmaps/graph-refresh-ledger"
MANAGED = {"app.kubernetes.io/managed-by": "graph-refresh"}  # the label graph-refresh lists its own Jobs by
WRITES = ("POST", "PUT", "PATCH", "DELETE")

HOUR = 3600.0
T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z, a fixed hour: the stream order does not rotate between runs


def version(name: str, ver: str, index: str = PYPI) -> dict[str, str]:
    return {"package_name": name, "package_version": ver, "index_url": index}


def install_project(target: Path) -> Path:
    """The project built and installed as pip installs it (scripts/setup.sh does it editable), without its
    dependencies (this Python has them), into the folder ``target``; returns it. The commands pyproject.toml
    declares are in ``target/bin`` and run with ``PYTHONPATH=target``. It is built from a copy, so that the
    checkout gains no build folder."""
    source = target / "source"
    shutil.copytree(ROOT / "graph_refresh", source / "graph_refresh", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index"]
    done = subprocess.run([*pip, "--target", str(target / "site"), str(source)], capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return target / "site"


def free_port() -> int:
    """A loopback port free at the time of asking."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def load_yaml_documents(folder: Path) -> dict[str, dict[str, Any]]:
    return {p.name: yaml.safe_load(p.read_text()) for p in sorted(folder.glob("*.yaml"))}


def manifests(folder: Path) -> dict[str, dict[str, Any]]:
    return {p.stem: yaml.safe_load(p.read_text()) for p in sorted(folder.glob("*.yaml"))}


def env_of(job: dict[str, Any]) -> dict[str, str]:
    container = job["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value") for e in container["env"]}


def assert_balanced(report: dict[str, Any]) -> None:
    """Every examined candidate of every stream was scheduled, already scheduled, failed or skipped."""
    for counts in [*report["totals"].values(), *report["solvers"].values()]:
        outcomes = counts["scheduled"] + counts["already_scheduled"] + counts["failed"]
        assert counts["examined"] == outcomes + sum(counts["skipped"].values()), counts


# The start of a plain log line (thoth-common's format; on a terminal, after the live line's erasure) or of
# click's error line: what a wrapped line continues.
WRAPPED_LINE = re.compile(r"(^|\r\x1b\[K)(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} |Error: )")


def unwrapped(text: str) -> str:
    """``text`` with each log line and error line that was wrapped to fit its width (graph_refresh.text.wrapped)
    on one line again, for tests about what is said rather than how it is laid out."""
    lines: list[str] = []
    joining = False
    for line in text.replace("\r\n", "\n").split("\n"):  # a terminal ends its lines with \r\n
        if joining and line.startswith(CONTINUATION) and line.strip():
            lines[-1] += " " + line[len(CONTINUATION) :]
            continue
        joining = WRAPPED_LINE.search(line) is not None
        lines.append(line)
    return "\n".join(lines)


def run_app(
    args: list[str],
    env: dict[str, str],
    *,
    terminal: bool,
    code: int = 0,
    stdout_too: bool = False,
    width: int | None = None,
) -> str:
    """Run app.py with stderr on a pseudo-terminal or a pipe; return what it wrote to stderr (``stdout_too``:
    standard output as well, on the same terminal, or first when piped). ``width``: the terminal's size in
    columns, as a resized window sets it (unset, the terminal does not say)."""
    env = {**os.environ, **env}
    cmd = [sys.executable, "app.py", *args]
    if not terminal:
        done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == code, done.stderr
        return done.stdout + done.stderr if stdout_too else done.stderr
    primary, secondary = pty.openpty()
    if width is not None:
        fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 50, width, 0, 0))
    stdout = secondary if stdout_too else subprocess.DEVNULL
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=stdout, stderr=secondary)
    os.close(secondary)
    chunks = []
    while True:
        try:
            chunk = os.read(primary, 4096)
        except OSError:  # the terminal closes when the child exits
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(primary)
    assert proc.wait(timeout=120) == code
    return b"".join(chunks).decode(errors="replace")


def template_documents() -> list[Obj]:
    """The example Templates as they would be stored in infra."""
    documents = []
    for path in sorted(EXAMPLE_TEMPLATES.glob("*.yaml")):
        document = yaml.safe_load(path.read_text())
        document["metadata"]["namespace"] = INFRA
        documents.append(document)
    return documents


def quota(name: str, hard: dict[str, str], used: dict[str, str]) -> Obj:
    """A ResourceQuota in middletier with its ``hard`` limits and what is ``used`` of them."""
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": name, "namespace": MIDDLETIER},
        "spec": {"hard": hard},
        "status": {"hard": hard, "used": used},
    }


def oom(container: str = "solver") -> Obj:
    """A failed pod's status whose ``container`` was OOM-killed."""
    terminated = {"terminated": {"reason": "OOMKilled", "exitCode": 137}}
    return {"phase": "Failed", "containerStatuses": [{"name": container, "state": terminated}]}


def memory(job: Obj) -> tuple[str, str]:
    """A Job's first container's memory request and limit."""
    resources = job["spec"]["template"]["spec"]["containers"][0]["resources"]
    return resources["requests"]["memory"], resources["limits"]["memory"]


class Harness:
    """The fake cluster with the example Templates in infra, a kubeconfig for it, and a CLI runner."""

    def __init__(self, fake: FakeKube, run_cli: RunCli, tmp_path: Path, write_graph: Callable[[Obj], Path]) -> None:
        self.fake = fake
        self._run_cli = run_cli
        self._tmp_path = tmp_path
        self._write_graph = write_graph
        self._runs = itertools.count()
        self.sleeps: list[float] = []
        self.kubeconfig = fake.kubeconfig(tmp_path / "kubeconfig", token=fake.tls != "mtls")
        self.env = {
            "KUBECONFIG": str(self.kubeconfig),
            "THOTH_INFRA_NAMESPACE": INFRA,
            "THOTH_MIDDLETIER_NAMESPACE": MIDDLETIER,
            "THOTH_GRAPH_REFRESH_QPS": "0",  # no client-side rate limit, unless a test sets one
        }
        for document in template_documents():
            fake.add(document)

    @classmethod
    def flask_solvers(
        cls, fake: FakeKube, run_cli: RunCli, tmp_path: Path, write_graph: Callable[[Obj], Path]
    ) -> Harness:
        """A harness whose graph holds flask 1.0 alone and whose runs schedule solvers only."""
        harness = cls(fake, run_cli, tmp_path, write_graph)
        harness.graph(["flask"])
        harness.env["GRAPH_REFRESH_NO_PACKAGE_ANALYZERS"] = "1"
        return harness

    def graph(self, packages: list[str]) -> list[str]:
        """Import package versions ``<package>==1.0`` from PyPI into the embedded store."""
        path = self._write_graph({"package_versions": [version(p, "1.0") for p in packages]})
        result = self._run_cli(["import-graph", str(path)])
        assert result.exit_code == 0, result.output
        return packages

    def import_graph(self, document: Obj) -> None:
        """Import a graph document into the embedded store."""
        result = self._run_cli(["import-graph", str(self._write_graph(document))])
        assert result.exit_code == 0, result.output

    def run(self, *args: str, env: dict[str, str] | None = None, **obj: Any) -> tuple[Result, Obj]:
        """One run of the CLI; returns its result and its report (checked for balance), {} if none."""
        report = self._tmp_path / f"report-{next(self._runs)}.json"
        obj.setdefault("sleep", self.sleeps.append)
        result = self._run_cli(["--report", str(report), *args], env={**self.env, **(env or {})}, **obj)
        data: Obj = json.loads(report.read_text()) if report.exists() else {}
        if data:
            assert_balanced(data)
        return result, data

    def run_at(self, at: float, *args: str, env: dict[str, str] | None = None) -> tuple[Result, Obj]:
        """One run of the CLI at time ``at``, which must write a report."""
        result, report = self.run(*args, env=env, now=lambda: at)
        assert report, result.output
        return result, report

    def cli(self, *args: str, at: float = 0.0, env: dict[str, str] | None = None) -> Result:
        """Another command of the CLI (``request``, ``explain``, ``ledger``) with the run's settings."""
        return self._run_cli(list(args), env={**self.env, **(env or {})}, now=lambda: at)

    def jobs(self) -> dict[str, Obj]:
        return {job["metadata"]["name"]: job for job in self.fake.objects("jobs", MIDDLETIER)}

    def created(self) -> list[str]:
        """Names in the create requests so far, in order."""
        return [r.body["metadata"]["name"] for r in self.fake.requests_for("POST", JOBS_PATH)]

    def writes(self) -> list[Request]:
        return [r for r in self.fake.requests if r.method in WRITES]

    def job(self, attempt: int) -> Obj:
        """The first solver's Job for flask 1.0 at ``attempt``, which must exist."""
        item = WorkItem(SOLVER, SOLVER_NAME, Candidate("flask", "1.0", PYPI), attempt)
        job = self.fake.get("jobs", MIDDLETIER, item.job_name)
        assert job is not None, f"attempt {attempt} ({item.job_name}) was not created"
        return job

    def fail(self, job: Obj, *, at: float, reason: str = "BackoffLimitExceeded", pod_status: Obj | None = None) -> None:
        """End ``job`` as failed at time ``at``, with one pod of ``pod_status`` (none when None)."""
        name = job["metadata"]["name"]
        self.fake.set_job_status(MIDDLETIER, name, "Failed")
        stored = self.fake.get("jobs", MIDDLETIER, name)
        assert stored is not None
        condition = stored["status"]["conditions"][0]
        condition.update(reason=reason, lastTransitionTime=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at)))
        self.fake.add(stored)
        if pod_status is not None:
            labels = {**job["spec"]["template"]["metadata"]["labels"], "job-name": name}
            pod = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": f"{name}-abcde", "namespace": MIDDLETIER, "labels": labels},
                "spec": {"containers": [{"name": "solver", "image": "x"}]},
                "status": pod_status,
            }
            self.fake.add(pod)


def scheduled(report: Obj) -> dict[str, int]:
    """A run report's scheduled count per kind."""
    return {kind: report["totals"][kind]["scheduled"] for kind in report["totals"]}


def owned_job(name: str, kind: str = SOLVER, labels: dict[str, str] | None = None) -> Obj:
    """A Job in middletier labelled as graph-refresh's, without status (live)."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": MIDDLETIER,
            "labels": {**MANAGED, "thoth-station.ninja/kind": kind} if labels is None else labels,
        },
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "x", "image": "x"}]}}},
    }


def kubeconfig_without_ca(fake: FakeKube, path: Path) -> Path:
    """A kubeconfig that neither names a CA nor skips verification (the system CAs do not know the fake)."""
    fake.kubeconfig(path, ca=False)
    document = yaml.safe_load(path.read_text())
    del document["clusters"][0]["cluster"]["insecure-skip-tls-verify"]
    path.write_text(yaml.safe_dump(document))
    return path


# A solver Job and its pod as the API lists them once the Job failed (the shape of Thoth's 2019 solver Template,
# rendered), for the tests of how a failure is read and learned from.
LISTED_JOB = "solver-fedora-31-py38-0123456789"


def listed_job(
    *,
    conditions: list[dict[str, Any]] | None = None,
    memory: str | None = "1Gi",
    deadline: int | None = None,
    attempt: str | None = None,
) -> dict[str, Any]:
    """A batch/v1 Job as the API lists it (shape of Thoth's 2019 solver Template, rendered)."""
    labels = {"app.kubernetes.io/managed-by": "graph-refresh", "thoth-station.ninja/item": "0123456789"}
    if attempt is not None:
        labels["thoth-station.ninja/attempt"] = attempt
    resources = {"limits": {"cpu": "1"}, "requests": {"cpu": "1"}}
    if memory is not None:
        resources["limits"]["memory"] = memory
        resources["requests"]["memory"] = memory
    spec: dict[str, Any] = {
        "backoffLimit": 0,
        "template": {
            "metadata": {"labels": dict(labels)},
            "spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "solver", "image": "solver-fedora-31-py38:latest", "resources": resources}],
            },
        },
    }
    if deadline is not None:
        spec["activeDeadlineSeconds"] = deadline
    status: dict[str, Any] = {"startTime": "2024-05-01T09:00:00Z", "failed": 1}
    if conditions is not None:
        status["conditions"] = conditions
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": LISTED_JOB, "namespace": "middletier", "labels": labels},
        "spec": spec,
        "status": status,
    }


def failed_conditions(
    reason: str = "BackoffLimitExceeded", at: str | None = "2024-05-01T10:00:00Z"
) -> list[dict[str, Any]]:
    condition = {"type": "Failed", "status": "True", "reason": reason, "message": "Job has reached the limit"}
    if at is not None:
        condition["lastTransitionTime"] = at
    return [condition]


def terminated_state(reason: str, exit_code: int = 137) -> dict[str, Any]:
    return {"terminated": {"exitCode": exit_code, "reason": reason, "startedAt": "2024-05-01T09:00:01Z"}}


def listed_pod(
    *,
    reason: str | None = None,
    conditions: list[dict[str, Any]] | None = None,
    state: dict[str, Any] | None = None,
    last_state: dict[str, Any] | None = None,
    init_state: dict[str, Any] | None = None,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A Pod of the Job, as the API lists it."""
    status: dict[str, Any] = {
        "phase": "Failed",
        "conditions": conditions or [{"type": "Ready", "status": "False"}],
        "containerStatuses": [
            {
                "name": "solver",
                "ready": False,
                "restartCount": 0,
                "state": state or terminated_state("Error", 1),
                "lastState": last_state or {},
            }
        ],
    }
    if init_state is not None:
        status["initContainerStatuses"] = [{"name": "fetch", "ready": False, "state": init_state, "lastState": {}}]
    if reason is not None:
        status["reason"] = reason
    default_labels = {"job-name": LISTED_JOB, "batch.kubernetes.io/job-name": LISTED_JOB, "controller-uid": "u-1"}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"{LISTED_JOB}-x7k2p", "labels": default_labels if labels is None else labels},
        "status": status,
    }


def ledger(cluster: Harness) -> dict[str, Obj]:
    """The ledger ConfigMap's entries by key, read back from the fake cluster."""
    configmap = cluster.fake.get("configmaps", MIDDLETIER, "graph-refresh-ledger")
    assert configmap is not None, "the ledger was not written"
    data = dict(configmap.get("data") or {})
    assert "learned-until" not in data, "learning goes by attempt number, not by a time"
    return {key: json.loads(value) for key, value in data.items() if key not in ("fresh-cursors", "runs")}


def names(count: int, prefix: str = "p") -> list[str]:
    """``count`` package names that sort in the order they are made: p000000, p000001, ..."""
    return [f"{prefix}{n:06d}" for n in range(count)]


def another_writer_first(fake: FakeKube, name: str, key: str, value: str) -> None:
    """The next update of ConfigMap ``name`` in middletier loses a race: another writer stores ``key`` first
    (that write lands), and the update is answered 409 Conflict, as the API server would."""

    def write_first(request: Request) -> Obj:
        configmap = fake.get("configmaps", MIDDLETIER, name)
        assert configmap is not None
        configmap["data"] = {**(configmap.get("data") or {}), key: value}
        fake.add(configmap)
        return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Conflict", "code": 409}

    path = f"/api/v1/namespaces/{MIDDLETIER}/configmaps/{name}$"
    fake.inject(method="PUT", path=path, status=409, times=1, body=write_first)
