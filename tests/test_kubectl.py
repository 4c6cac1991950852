"""The Kubernetes stand-in driven by the real kubectl, through a kubeconfig, as an operator would.

kubectl asks for more than the Python client does: discovery of every group (its kind → resource mapping
depends on the order resources are listed), Table answers for its columns, an OpenAPI document before
``create``/``replace``, the three patch types and the ``status`` subresource. Every command here is one
the README's walkthrough or its ledger recipes use. ``scripts/kubectl.sh`` (run by the test command)
installs kubectl where there is none.
"""

from __future__ import annotations

import functools
import json
import re
import shlex
import ssl
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from .fakes.kube import STRATEGIC_MERGE_PATCH, FakeKube
from .helpers import EXAMPLE_TEMPLATES

pytestmark = pytest.mark.timeout(60)

Obj = dict[str, Any]
NS = "middletier"
README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def kubectl(kubeconfig: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    """Run kubectl with this kubeconfig; ``ok``: it must succeed (else: it must fail)."""
    result = subprocess.run(
        ["kubectl", "--kubeconfig", str(kubeconfig), *args], capture_output=True, text=True, timeout=30, check=False
    )
    assert (result.returncode == 0) == ok, f"kubectl {' '.join(args)}: {result.returncode}\n{result.stderr}"
    return result


@functools.cache
def kubectl_patches_subresources() -> bool:
    """Whether this kubectl has ``patch --subresource`` (1.24 on; Debian's 1.20 has not)."""
    help_text = subprocess.run(["kubectl", "patch", "--help"], capture_output=True, text=True, check=True).stdout
    return "--subresource" in help_text


@pytest.fixture
def fake() -> Iterator[FakeKube]:
    with FakeKube(tls="tls") as server:
        yield server
        assert server.server_errors == []


@pytest.fixture
def kubeconfig(fake: FakeKube, tmp_path: Path) -> Path:
    return fake.kubeconfig(tmp_path / "kubeconfig", namespace=NS)


def rows(output: str) -> list[list[str]]:
    """kubectl's table output as rows of cells (split at runs of two or more spaces), header first."""
    return [re.split(r"\s{2,}", line.strip()) for line in output.strip().splitlines()]


def job(name: str) -> Obj:
    container = {"name": "solver", "image": "solver", "resources": {"limits": {"memory": "1Gi"}}}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": NS, "labels": {"app.kubernetes.io/managed-by": "graph-refresh"}},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [container]}}},
    }


def ledger(data: dict[str, str]) -> Obj:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "graph-refresh-ledger"}, "data": data}


def test_get_templates_by_their_qualified_name_lists_the_templates(fake: FakeKube, kubeconfig: Path) -> None:
    for path in sorted(EXAMPLE_TEMPLATES.glob("*.yaml")):
        document = yaml.safe_load(path.read_text())
        document["metadata"]["namespace"] = "infra"
        fake.add(document)
    output = kubectl(kubeconfig, "get", "templates.template.openshift.io", "-n", "infra").stdout
    assert [row[0] for row in rows(output)] == ["NAME", "package-analyzer", "solver"]
    assert rows(output)[0] == ["NAME", "DESCRIPTION", "PARAMETERS", "OBJECTS"]
    assert rows(output)[2][-2:] == ["13 (7 blank)", "3"]  # the solver Template: graph-refresh sets those seven
    assert fake.requests_for("GET", r"^/apis/template.openshift.io/v1/namespaces/infra/templates$")
    names = kubectl(kubeconfig, "get", "templates", "-n", "infra", "-o", "name").stdout.split()
    assert names == ["template.template.openshift.io/package-analyzer", "template.template.openshift.io/solver"]


@pytest.mark.parametrize("status_column", [False, True], ids=["kubernetes-1.15", "kubernetes-1.30"])
def test_get_jobs_and_resourcequotas_show_their_state(fake: FakeKube, kubeconfig: Path, status_column: bool) -> None:
    """Jobs printed as the API server prints them: Completions, Duration and Age (and Containers, Images and
    Selector with -o wide); from Kubernetes 1.30 on, a Status column after the name."""
    fake.job_status_column = status_column
    assert kubectl(kubeconfig, "get", "jobs").stderr.strip() == f"No resources found in {NS} namespace."
    fake.add(job("done"))
    fake.add(job("failed"))
    fake.add(job("running"))
    fake.set_job_status(NS, "done", "Complete")
    fake.set_job_status(NS, "failed", "Failed")
    fake.set_job_status(NS, "running", None, active=1)
    fake.add(
        {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": {"name": "jobs", "namespace": NS},
            "spec": {"hard": {"count/jobs.batch": "10", "limits.memory": "8Gi"}},
        }
    )
    table = rows(kubectl(kubeconfig, "get", "jobs").stdout)
    status = ["STATUS"] if status_column else []
    assert table[0] == ["NAME", *status, "COMPLETIONS", "DURATION", "AGE"]
    expected = [("done", "Complete", "1/1"), ("failed", "Failed", "0/1"), ("running", "Running", "0/1")]
    assert [row[:-2] for row in table[1:]] == [
        [name, *([state] if status_column else []), completions] for name, state, completions in expected
    ]
    assert all(re.fullmatch(r"[0-9]+s", cell) for row in table[1:] for cell in row[-2:])  # duration, age
    wide = rows(kubectl(kubeconfig, "get", "jobs", "-o", "wide").stdout)
    assert wide[0][-3:] == ["CONTAINERS", "IMAGES", "SELECTOR"]
    assert wide[1][-3:] == ["solver", "solver", "<none>"]
    quota = rows(kubectl(kubeconfig, "get", "resourcequota").stdout)
    assert quota[0] == ["NAME", "AGE", "REQUEST", "LIMIT"]
    assert quota[1][0] == "jobs"
    assert quota[1][2:] == ["count/jobs.batch: 3/10", "limits.memory: 0/8Gi"]
    assert all("as=Table" in r.headers["accept"] for r in fake.requests_for("GET", r"/(jobs|resourcequotas)$"))


def test_create_from_a_written_manifest(fake: FakeKube, kubeconfig: Path, tmp_path: Path) -> None:
    manifest = tmp_path / "objects.yaml"
    quota = {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "jobs"}}
    quota["spec"] = {"hard": {"count/jobs.batch": "1"}}
    manifest.write_text(yaml.safe_dump_all([quota, job("first"), job("second")]))
    result = kubectl(kubeconfig, "create", "-f", str(manifest), ok=False)  # the second Job exceeds the quota
    assert "resourcequota/jobs created" in result.stdout
    assert "job.batch/first created" in result.stdout
    assert "exceeded quota: jobs, requested: count/jobs.batch=1, used: count/jobs.batch=1" in result.stderr
    assert [j["metadata"]["name"] for j in fake.objects("jobs", NS)] == ["first"]
    assert fake.get("resourcequotas", NS, "jobs") is not None


def test_configmaps_get_replace_and_patch_of_every_type(fake: FakeKube, kubeconfig: Path, tmp_path: Path) -> None:
    fake.add({**ledger({"a": "1", "b": "2"}), "metadata": {"name": "led", "namespace": NS}})
    kubectl(kubeconfig, "patch", "configmap", "led", "--type=json", "-p", '[{"op": "remove", "path": "/data/a"}]')
    kubectl(kubeconfig, "patch", "configmap", "led", "--type=merge", "-p", '{"data": {"b": null, "c": "3"}}')
    kubectl(kubeconfig, "patch", "configmap", "led", "-p", '{"data": {"d": "4"}}')  # strategic, kubectl's default
    assert json.loads(kubectl(kubeconfig, "get", "configmap", "led", "-o", "jsonpath={.data}").stdout) == {
        "c": "3",
        "d": "4",
    }
    patch_types = [r.headers["content-type"] for r in fake.requests_for("PATCH", "/configmaps/led$")]
    assert patch_types == ["application/json-patch+json", "application/merge-patch+json", STRATEGIC_MERGE_PATCH]

    edited = tmp_path / "led.yaml"
    edited.write_text(kubectl(kubeconfig, "get", "configmap", "led", "-o", "yaml").stdout.replace('"4"', '"5"'))
    assert "configmap/led replaced" in kubectl(kubeconfig, "replace", "-f", str(edited)).stdout
    assert (fake.get("configmaps", NS, "led") or {})["data"] == {"c": "3", "d": "5"}
    stale = kubectl(kubeconfig, "replace", "-f", str(edited), ok=False)  # its resourceVersion is no longer current
    assert 'Operation cannot be fulfilled on configmaps "led": the object has been modified' in stale.stderr

    missing = kubectl(
        kubeconfig, "patch", "cm", "led", "--type=json", "-p", '[{"op": "remove", "path": "/data/x"}]', ok=False
    )
    assert "unable to remove nonexistent key: x" in missing.stderr
    assert (fake.get("configmaps", NS, "led") or {})["data"] == {"c": "3", "d": "5"}


def readme_recipe(command: str) -> list[str]:
    """The README's ``oc -n middletier ... graph-refresh-ledger`` line that starts with ``command``, as kubectl
    arguments (the same client syntax)."""
    found = re.search(rf"^oc -n middletier {command} configmap graph-refresh-ledger (.*)$", README, re.M)
    assert found is not None, f"the README has no {command} recipe"
    return ["-n", NS, *command.split(), "configmap", "graph-refresh-ledger", *shlex.split(found[1])]


def test_the_readmes_recipes_read_the_ledger_and_drop_one_item(fake: FakeKube, kubeconfig: Path) -> None:
    drop = readme_recipe("patch")
    key = json.loads(drop[-1])[0]["path"].removeprefix("/data/")
    entry = '{"kind":"package-analyzer","package":"flask","version":"1.0","failures":1,"attempt":1}'
    fake.add(
        {**ledger({key: entry, "abcdefabcd": "{}"}), "metadata": {"name": "graph-refresh-ledger", "namespace": NS}}
    )
    listed = kubectl(kubeconfig, *readme_recipe("get")).stdout
    assert listed.splitlines() == [f"{key} {entry}", "abcdefabcd {}"], "one item key and its JSON a line"
    kubectl(kubeconfig, *drop)
    assert (fake.get("configmaps", NS, "graph-refresh-ledger") or {})["data"] == {"abcdefabcd": "{}"}


FAILED_STATUS = {
    "status": {
        "failed": 1,
        "conditions": [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded", "message": "too slow"}],
    }
}


def assert_failed(fake: FakeKube, name: str, reason: str) -> None:
    stored = fake.get("jobs", NS, name) or {}
    assert [(c["type"], c["reason"]) for c in stored["status"]["conditions"]] == [("Failed", reason)]
    assert stored["spec"] == job(name)["spec"]  # a status write leaves the rest alone


def test_a_job_is_marked_failed_by_replacing_its_status(fake: FakeKube, kubeconfig: Path, tmp_path: Path) -> None:
    """The walkthrough's way, which every kubectl from 1.20 on has: PUT of the ``status`` subresource."""
    fake.add(job("solver-1"))
    body = tmp_path / "failed.json"
    status = json.loads(json.dumps(FAILED_STATUS))
    status["status"]["conditions"][0]["reason"] = "BackoffLimitExceeded"
    body.write_text(json.dumps({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "solver-1"}, **status}))
    kubectl(kubeconfig, "replace", "--raw", f"/apis/batch/v1/namespaces/{NS}/jobs/solver-1/status", "-f", str(body))
    assert_failed(fake, "solver-1", "BackoffLimitExceeded")
    assert rows(kubectl(kubeconfig, "get", "job", "solver-1").stdout)[1][:2] == ["solver-1", "0/1"]
    # Through the object itself, status is not written (it is a subresource), as on a real cluster.
    kubectl(kubeconfig, "patch", "job", "solver-1", "--type=merge", "-p", '{"status": {"failed": 7}}')
    assert (fake.get("jobs", NS, "solver-1") or {})["status"]["failed"] == 1


def patch_status(fake: FakeKube, kubeconfig: Path, name: str, patch: Obj) -> None:
    """``kubectl patch job NAME --subresource=status -p PATCH`` (kubectl 1.24 on): a strategic merge patch.

    With an older kubectl (Debian's 1.20 has no ``--subresource``) the same request, as kubectl sends it, goes
    over HTTPS with the kubeconfig's credentials, so the server side is proven with every kubectl.
    """
    if kubectl_patches_subresources():
        kubectl(kubeconfig, "patch", "job", name, "--subresource=status", "-p", json.dumps(patch))
        return
    config = yaml.safe_load(kubeconfig.read_text())
    context = ssl.create_default_context(cafile=config["clusters"][0]["cluster"]["certificate-authority"])
    request = urllib.request.Request(
        f"{fake.url}/apis/batch/v1/namespaces/{NS}/jobs/{name}/status",
        data=json.dumps(patch).encode(),
        method="PATCH",
        headers={
            "Content-Type": STRATEGIC_MERGE_PATCH,
            "Authorization": f"Bearer {config['users'][0]['user']['token']}",
        },
    )
    with urllib.request.urlopen(request, context=context, timeout=10) as answer:
        assert answer.status == 200


def test_a_job_is_marked_failed_by_patching_its_status(fake: FakeKube, kubeconfig: Path) -> None:
    fake.add(job("solver-2"))
    patch_status(fake, kubeconfig, "solver-2", FAILED_STATUS)
    sent = fake.requests_for("PATCH", r"/jobs/solver-2/status$")
    assert [r.headers["content-type"] for r in sent] == [STRATEGIC_MERGE_PATCH]
    assert_failed(fake, "solver-2", "DeadlineExceeded")
    # A strategic merge patch merges conditions by their type: another type is added, the same type merged.
    target = {"type": "FailureTarget", "status": "True", "reason": "DeadlineExceeded"}
    patch_status(fake, kubeconfig, "solver-2", {"status": {"conditions": [target]}})
    patch_status(fake, kubeconfig, "solver-2", {"status": {"conditions": [{"type": "Failed", "message": "slow"}]}})
    conditions = (fake.get("jobs", NS, "solver-2") or {})["status"]["conditions"]
    assert [(c["type"], c["reason"], c.get("message")) for c in conditions] == [
        ("Failed", "DeadlineExceeded", "slow"),
        ("FailureTarget", "DeadlineExceeded", None),
    ]


def pod(name: str, job_name: str, status: Obj) -> Obj:
    labels = {"app.kubernetes.io/managed-by": "graph-refresh", "job-name": job_name}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "solver", "image": "solver"}]},
        "status": status,
    }


def test_created_pods_keep_the_status_they_ended_with(fake: FakeKube, kubeconfig: Path, tmp_path: Path) -> None:
    oom = {
        "phase": "Failed",
        "containerStatuses": [{"name": "solver", "state": {"terminated": {"reason": "OOMKilled", "exitCode": 137}}}],
    }
    evicted = {"phase": "Failed", "reason": "Evicted", "message": "The node was low on resource: memory."}
    manifest = tmp_path / "pods.yaml"
    manifest.write_text(yaml.safe_dump_all([pod("a-oom", "a", oom), pod("b-evicted", "b", evicted)]))
    kubectl(kubeconfig, "create", "-f", str(manifest))
    assert (fake.get("pods", NS, "a-oom") or {})["status"] == oom
    assert (fake.get("pods", NS, "b-evicted") or {})["status"] == evicted
    table = rows(kubectl(kubeconfig, "get", "pods").stdout)
    assert [row[:2] for row in table[1:]] == [["a-oom", "OOMKilled"], ["b-evicted", "Evicted"]]
    selected = kubectl(kubeconfig, "get", "pods", "-l", "job-name=a", "-o", "jsonpath={.items[*].metadata.name}")
    assert selected.stdout == "a-oom"
    kubectl(kubeconfig, "delete", "pod", "-l", "app.kubernetes.io/managed-by=graph-refresh")
    assert fake.objects("pods", NS) == []
