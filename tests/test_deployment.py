"""The manifests of openshift/ (README's "Deployment"), validated against the Kubernetes schemas with
kubernetes-validate."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from graph_refresh.config import PlanSettings
from graph_refresh.items import ANALYZER, SOLVER, Candidate, WorkItem
from graph_refresh.render import Renderer
from graph_refresh.templates import load_job_templates, read_template_dir

from .helpers import EXAMPLE_TEMPLATES, ROOT, SHARED_2019

OPENSHIFT = ROOT / "openshift"
KUBERNETES_VERSION = "1.30.0"  # OpenShift 4.17's Kubernetes; CronJob batch/v1 has been GA since 1.21


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def validate(document: dict[str, Any]) -> None:
    kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("name", ["cronjob.yaml", "rbac.yaml"])
def test_deployment_manifests_are_valid(name: str) -> None:
    for document in documents(OPENSHIFT / name):
        validate(document)


def test_cronjob_keeps_the_deployment_contract() -> None:
    (cronjob,) = documents(OPENSHIFT / "cronjob.yaml")
    assert (cronjob["apiVersion"], cronjob["kind"]) == ("batch/v1", "CronJob")
    spec = cronjob["spec"]
    assert spec["schedule"] == "0 * * * *"
    assert spec["concurrencyPolicy"] == "Forbid"
    job = spec["jobTemplate"]["spec"]
    pod = job["template"]["spec"]
    assert job["backoffLimit"] == 0
    assert pod["restartPolicy"] == "Never"
    (container,) = pod["containers"]
    assert container["resources"]["limits"]["memory"] == "256Mi"
    env = {e["name"]: e for e in container["env"]}
    assert env["GRAPH_SERVICE_HOST"]["valueFrom"]["configMapKeyRef"] == {"name": "thoth", "key": "graph-service-host"}
    pushgateway = env["PROMETHEUS_PUSHGATEWAY_URL"]["valueFrom"]["configMapKeyRef"]
    assert pushgateway == {"name": "thoth", "key": "metrics-pushgateway-url"}
    assert env["KUBERNETES_VERIFY_TLS"]["value"] == "1"
    tls_path = env["GRAPH_TLS_PATH"]["value"]
    (mount,) = container["volumeMounts"]
    assert mount["mountPath"] == tls_path
    assert mount["readOnly"] is True
    (volume,) = pod["volumes"]
    assert volume["name"] == mount["name"]
    assert volume["secret"]["secretName"] == "dgraph-tls"


def test_cronjob_reads_only_configmap_keys_the_2019_deployment_had() -> None:
    source = SHARED_2019 / "deployment" / "cronJob-template.yaml"
    if not source.is_file():
        pytest.skip(f"{source} is absent: the 2019 deployment lives in the shared folder beside the repository")
    known = set(re.findall(r"key: ([a-z0-9-]+)", source.read_text()))
    (cronjob,) = documents(OPENSHIFT / "cronjob.yaml")
    (container,) = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    refs = [e["valueFrom"]["configMapKeyRef"] for e in container["env"] if "configMapKeyRef" in e.get("valueFrom", {})]
    required = {ref["key"] for ref in refs if not ref.get("optional")}
    assert required
    assert required <= known, "a key the 2019 ConfigMap lacks must be optional"


RETRY_SETTINGS = {
    "THOTH_GRAPH_REFRESH_MAX_MEMORY": "graph-refresh-max-memory",
    "THOTH_GRAPH_REFRESH_MAX_DEADLINE": "graph-refresh-max-deadline",
    "THOTH_GRAPH_REFRESH_RETRY_BACKOFF": "graph-refresh-retry-backoff",
    "THOTH_GRAPH_REFRESH_MAX_ATTEMPTS": "graph-refresh-max-attempts",
    "THOTH_GRAPH_REFRESH_QUARANTINE": "graph-refresh-quarantine",
}


def test_cronjob_takes_the_retry_settings_from_optional_configmap_keys() -> None:
    (cronjob,) = documents(OPENSHIFT / "cronjob.yaml")
    (container,) = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    for variable, key in RETRY_SETTINGS.items():
        assert env[variable] == {
            "name": variable,
            "valueFrom": {"configMapKeyRef": {"name": "thoth", "key": key, "optional": True}},
        }


def test_rbac_grants_exactly_what_the_job_needs() -> None:
    roles = {
        (d["metadata"]["namespace"], d["metadata"]["name"]): d
        for d in documents(OPENSHIFT / "rbac.yaml")
        if d["kind"] == "Role"
    }
    grants = {
        (namespace, group, resource, name): sorted(rule["verbs"])
        for (namespace, _), role in roles.items()
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for name in rule.get("resourceNames", ["*"])
    }
    rule_count = sum(
        len(rule["apiGroups"]) * len(rule["resources"]) * len(rule.get("resourceNames", ["*"]))
        for role in roles.values()
        for rule in role["rules"]
    )
    assert rule_count == len(grants), "no grant is given twice"
    assert grants == {
        ("infra", "template.openshift.io", "templates", "*"): ["get", "list"],
        ("middletier", "batch", "jobs", "*"): ["create", "get", "list"],
        ("middletier", "", "resourcequotas", "*"): ["get", "list"],
        ("middletier", "", "pods", "*"): ["list"],
        ("middletier", "", "configmaps", "*"): ["create", "get"],
        ("middletier", "", "configmaps", "graph-refresh-ledger"): ["update"],
        ("middletier", "", "configmaps", "graph-refresh-requests"): ["update"],
    }
    assert all(
        set(rule) <= {"apiGroups", "resources", "resourceNames", "verbs"} for r in roles.values() for rule in r["rules"]
    )
    bindings = [d for d in documents(OPENSHIFT / "rbac.yaml") if d["kind"] == "RoleBinding"]
    assert {(b["metadata"]["namespace"], b["roleRef"]["name"]) for b in bindings} == set(roles)
    (cronjob,) = documents(OPENSHIFT / "cronjob.yaml")
    account = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["serviceAccountName"]
    assert all(s["name"] == account for b in bindings for s in b["subjects"])


def test_rendered_example_jobs_are_valid() -> None:
    templates = load_job_templates(read_template_dir(EXAMPLE_TEMPLATES), where="examples")
    candidate = Candidate("flask", "1.1.2", "https://pypi.org/simple")
    renderer = Renderer(templates, PlanSettings(), namespace="middletier")
    items = [WorkItem(SOLVER, name, candidate) for name in templates.solvers] + [WorkItem(ANALYZER, None, candidate)]
    for item in items:
        validate(renderer.render(item))
