"""FakeKube, exercised through the real kubernetes 11 and openshift clients."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import urllib3
from kubernetes import client as k8s
from kubernetes.client.rest import ApiException
from kubernetes.config import new_client_from_config
from openshift.dynamic import DynamicClient

from .kube import JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH, ApiError, FakeKube, apply_patch, human_duration

pytestmark = pytest.mark.timeout(10)

NS = "middletier"


def job(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {
            "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "busybox"}]}}
        },
    }


def quota(name: str, jobs: int | str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"hard": {"count/jobs.batch": str(jobs), "pods": "10"}},
    }


def template(name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "template.openshift.io/v1",
        "kind": "Template",
        "metadata": {"name": name, "namespace": "infra", "labels": labels},
        "parameters": [
            {"name": "JOB_NAME", "required": True},
            {"name": "PARALLELISM", "value": "1"},
            {"name": "PACKAGE", "value": "flask"},
        ],
        "labels": {"template": name},
        "objects": [
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {"name": "${JOB_NAME}"},
                "spec": {
                    "parallelism": "${{PARALLELISM}}",
                    "template": {"metadata": {"name": "p-${PACKAGE}"}},
                },
            }
        ],
    }


def api_client(fake: FakeKube, tmp_path: Path, **kubeconfig: Any) -> k8s.ApiClient:
    path = fake.kubeconfig(tmp_path / "kubeconfig", **kubeconfig)
    return new_client_from_config(config_file=str(path))


@pytest.fixture
def fake() -> Iterator[FakeKube]:
    with FakeKube(tls="tls") as server:
        yield server
        assert server.server_errors == []


@pytest.fixture
def api(fake: FakeKube, tmp_path: Path) -> k8s.ApiClient:
    return api_client(fake, tmp_path)  # its connections end when the fake closes them


def names(items: list[Any]) -> list[str]:
    return [item.metadata.name for item in items]


def test_create_list_get_round_trip(fake: FakeKube, api: k8s.ApiClient) -> None:
    batch = k8s.BatchV1Api(api)
    created = batch.create_namespaced_job(NS, job("solver-a-1", {"app": "x"}))
    assert created.metadata.namespace == NS
    assert created.metadata.uid
    assert created.metadata.resource_version
    assert created.metadata.creation_timestamp is not None  # parsed from RFC 3339 'Z'

    listed = batch.list_namespaced_job(NS)
    assert names(listed.items) == ["solver-a-1"]
    assert listed.kind == "JobList"
    assert listed.api_version == "batch/v1"
    assert listed.items[0].kind is None  # list items carry no kind, as on a real API server
    assert listed.metadata._continue is None

    got = batch.read_namespaced_job("solver-a-1", NS)
    assert got.metadata.uid == created.metadata.uid
    assert fake.objects("jobs", NS)[0]["metadata"]["labels"] == {"app": "x"}
    assert fake.requests_for("POST", r"/jobs$")[0].body["metadata"]["name"] == "solver-a-1"

    with pytest.raises(ApiException) as missing:
        batch.read_namespaced_job("nope", NS)
    assert missing.value.status == 404
    assert json.loads(missing.value.body)["message"] == 'jobs.batch "nope" not found'


def test_duplicate_create_is_409(api: k8s.ApiClient) -> None:
    batch = k8s.BatchV1Api(api)
    batch.create_namespaced_job(NS, job("dup"))
    with pytest.raises(ApiException) as exc:
        batch.create_namespaced_job(NS, job("dup"))
    assert exc.value.status == 409
    status = json.loads(exc.value.body)
    assert (status["reason"], status["message"]) == ("AlreadyExists", 'jobs.batch "dup" already exists')


def test_invalid_name_is_422(api: k8s.ApiClient) -> None:
    body = job("x")
    body["metadata"].pop("name")
    with pytest.raises(ApiException) as exc:
        k8s.BatchV1Api(api).create_namespaced_job(NS, body)
    assert exc.value.status == 422
    assert json.loads(exc.value.body)["reason"] == "Invalid"


def test_dry_run_stores_nothing(fake: FakeKube, api: k8s.ApiClient) -> None:
    created = k8s.BatchV1Api(api).create_namespaced_job(NS, job("dry"), dry_run="All")
    assert created.metadata.name == "dry"
    assert fake.objects("jobs", NS) == []


def test_label_selectors(fake: FakeKube, api: k8s.ApiClient) -> None:
    for name, labels in [
        ("a", {"kind": "solver", "solver": "s1"}),
        ("b", {"kind": "solver", "solver": "s2"}),
        ("c", {"kind": "analyzer"}),
        ("d", {}),
    ]:
        fake.add({**job(name, labels), "metadata": {"name": name, "namespace": NS, "labels": labels}})
    batch = k8s.BatchV1Api(api)

    def select(selector: str) -> list[str]:
        return names(batch.list_namespaced_job(NS, label_selector=selector).items)

    assert select("kind=solver") == ["a", "b"]
    assert select("kind==analyzer") == ["c"]
    assert select("kind!=solver") == ["c", "d"]  # != also matches jobs without the label
    assert select("solver in (s1, s3)") == ["a"]
    assert select("kind=solver,solver notin (s1)") == ["b"]
    assert select("solver") == ["a", "b"]
    assert select("!solver") == ["c", "d"]
    field = batch.list_namespaced_job(NS, field_selector="metadata.name=c").items
    assert names(field) == ["c"]
    with pytest.raises(ApiException) as exc:
        select("kind in (")
    assert exc.value.status == 400


def test_field_selectors_on_a_pods_phase(fake: FakeKube, api: k8s.ApiClient) -> None:
    for name, status in [("a", {"phase": "Failed"}), ("b", {"phase": "Succeeded"}), ("c", {"phase": "Running"})]:
        fake.add({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS}, "status": status})
    fake.add({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "d", "namespace": NS}})  # no status yet
    core = k8s.CoreV1Api(api)

    def select(selector: str) -> list[str]:
        return names(core.list_namespaced_pod(NS, field_selector=selector).items)

    assert select("status.phase=Failed") == ["a"]
    assert select("status.phase!=Succeeded") == ["a", "c", "d"]
    assert select("status.phase!=Succeeded,metadata.name!=a") == ["c", "d"]
    with pytest.raises(ApiException) as exc:  # a Job has no such field label
        k8s.BatchV1Api(api).list_namespaced_job(NS, field_selector="status.phase=Failed")
    assert exc.value.status == 400
    assert json.loads(exc.value.body)["message"] == 'field label "status.phase" not supported for batchv1.Job'


def test_paging_returns_every_job_once(fake: FakeKube, api: k8s.ApiClient) -> None:
    batch = k8s.BatchV1Api(api)
    for i in (3, 1, 5, 2, 4):
        batch.create_namespaced_job(NS, job(f"job-{i}"))
    seen: list[str] = []
    token: str | None = None
    pages = 0
    while True:
        # kubernetes 11 sends an explicit None as the string "None": pass _continue only when set.
        extra = {"_continue": token} if token else {}
        page = batch.list_namespaced_job(NS, limit=2, **extra)
        pages += 1
        seen += names(page.items)
        token = page.metadata._continue
        if not token:
            break
        assert page.metadata.remaining_item_count == 5 - len(seen)
    assert seen == [f"job-{i}" for i in range(1, 6)]
    assert pages == 3


def test_explicit_none_parameters_reach_the_server_as_the_string_none(fake: FakeKube, api: k8s.ApiClient) -> None:
    fake.add({**job("a"), "metadata": {"name": "a", "namespace": NS}})
    batch = k8s.BatchV1Api(api)
    assert batch.list_namespaced_job(NS, label_selector=None).items == []  # selects label key "None"
    assert fake.requests[-1].query["labelSelector"] == ["None"]
    with pytest.raises(ApiException) as exc:
        batch.list_namespaced_job(NS, _continue=None)
    assert exc.value.status == 400  # a real API server rejects continue=None the same way


def test_templates_via_custom_objects_api(fake: FakeKube, api: k8s.ApiClient) -> None:
    fake.add(template("solver-fedora-31-py38", {"template": "solver"}))
    fake.add(template("package-analyzer", {"template": "package-analyzer"}))
    listed = k8s.CustomObjectsApi(api).list_namespaced_custom_object(
        "template.openshift.io", "v1", "infra", "templates", label_selector="template=solver"
    )
    assert listed["kind"] == "TemplateList"
    assert [t["metadata"]["name"] for t in listed["items"]] == ["solver-fedora-31-py38"]


def test_resource_quota_reports_job_count(fake: FakeKube, api: k8s.ApiClient) -> None:
    fake.add(quota("jobs-quota", 3))
    k8s.BatchV1Api(api).create_namespaced_job(NS, job("one"))
    quotas = k8s.CoreV1Api(api).list_namespaced_resource_quota(NS).items
    assert names(quotas) == ["jobs-quota"]
    assert quotas[0].spec.hard == {"count/jobs.batch": "3", "pods": "10"}
    assert quotas[0].status.used == {"count/jobs.batch": "1"}


@pytest.mark.parametrize("hard", ["2", "2e0", "2000m"])
def test_quota_forbids_job_create(hard: str, fake: FakeKube, api: k8s.ApiClient) -> None:
    fake.add(quota("jobs-quota", hard))
    batch = k8s.BatchV1Api(api)
    batch.create_namespaced_job(NS, job("j1"))
    batch.create_namespaced_job(NS, job("j2"))
    with pytest.raises(ApiException) as exc:
        batch.create_namespaced_job(NS, job("j3"))
    assert exc.value.status == 403
    status = json.loads(exc.value.body)
    assert status["reason"] == "Forbidden"
    assert status["message"] == (
        'jobs.batch "j3" is forbidden: exceeded quota: jobs-quota, requested: count/jobs.batch=1, '
        f"used: count/jobs.batch=2, limited: count/jobs.batch={hard}"
    )
    assert [j["metadata"]["name"] for j in fake.objects("jobs", NS)] == ["j1", "j2"]


def test_injected_429_exposes_retry_after(fake: FakeKube, api: k8s.ApiClient) -> None:
    fake.inject("POST", r"/jobs$", status=429, headers={"Retry-After": "2"})
    batch = k8s.BatchV1Api(api)
    with pytest.raises(ApiException) as exc:
        batch.create_namespaced_job(NS, job("throttled"))
    assert exc.value.status == 429
    assert exc.value.headers["Retry-After"] == "2"  # an HTTPHeaderDict: case-insensitive
    assert json.loads(exc.value.body)["details"] == {"retryAfterSeconds": 2}
    assert batch.create_namespaced_job(NS, job("throttled")).metadata.name == "throttled"


def test_injected_500_twice_then_success(fake: FakeKube, api: k8s.ApiClient) -> None:
    fault = fake.inject("POST", r"/namespaces/middletier/jobs$", status=500, times=2, match_name="flaky")
    batch = k8s.BatchV1Api(api)
    batch.create_namespaced_job(NS, job("steady"))  # other names are not affected
    for _ in range(2):
        with pytest.raises(ApiException) as exc:
            batch.create_namespaced_job(NS, job("flaky"))
        assert exc.value.status == 500
    assert batch.create_namespaced_job(NS, job("flaky")).metadata.name == "flaky"
    assert fault.hits == 2
    assert len(fake.requests_for("POST", r"/jobs$")) == 4


def test_delayed_create_times_out_on_the_client_but_lands(fake: FakeKube, api: k8s.ApiClient) -> None:
    fake.inject("POST", r"/jobs$", status=None, delay=0.15)
    with pytest.raises(urllib3.exceptions.ReadTimeoutError):  # POST is not retried by urllib3
        k8s.BatchV1Api(api).create_namespaced_job(NS, job("slow"), _request_timeout=(1, 0.1))
    deadline = time.monotonic() + 10
    while fake.get("jobs", NS, "slow") is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert fake.get("jobs", NS, "slow") is not None  # the ambiguous outcome a real client must handle


def test_request_timeout_int_and_tuple(api: k8s.ApiClient) -> None:
    batch = k8s.BatchV1Api(api)
    assert batch.list_namespaced_job(NS, _request_timeout=5).items == []
    assert batch.list_namespaced_job(NS, _request_timeout=(2, 5)).items == []


def test_float_request_timeout_is_silently_ignored_by_kubernetes_11(fake: FakeKube, api: k8s.ApiClient) -> None:
    fake.inject("GET", r"/jobs$", status=None, delay=0.2)
    started = time.monotonic()
    k8s.BatchV1Api(api).list_namespaced_job(NS, _request_timeout=0.05)  # neither int nor tuple: no timeout
    assert time.monotonic() - started >= 0.2


def test_get_read_timeout_is_retried_by_urllib3(fake: FakeKube, api: k8s.ApiClient) -> None:
    fault = fake.inject("GET", r"/jobs$", status=None, delay=0.2)
    assert k8s.BatchV1Api(api).list_namespaced_job(NS, _request_timeout=(1, 0.05)).items == []
    assert fault.hits == 1
    assert len(fake.requests_for("GET", r"/jobs$")) == 2  # the timed-out attempt and urllib3's retry


def test_set_job_status(fake: FakeKube, api: k8s.ApiClient) -> None:
    batch = k8s.BatchV1Api(api)
    batch.create_namespaced_job(NS, job("done"))
    batch.create_namespaced_job(NS, job("running"))
    fake.set_job_status(NS, "done", "Complete")
    fake.set_job_status(NS, "running", None, active=1)
    done = batch.read_namespaced_job("done", NS).status
    assert [(c.type, c.status) for c in done.conditions] == [("Complete", "True")]
    assert (done.succeeded, done.active, done.failed) == (1, None, None)
    running = batch.read_namespaced_job("running", NS).status
    assert (running.conditions, running.active) == (None, 1)


def test_openshift_dynamic_client_finds_jobs_and_templates(fake: FakeKube, api: k8s.ApiClient, tmp_path: Path) -> None:
    fake.add(template("solver-fedora-31-py38", {"template": "solver"}))
    dyn = DynamicClient(api, cache_file=str(tmp_path / "discovery.json"))
    jobs = dyn.resources.get(api_version="batch/v1", kind="Job")
    jobs.create(body=job("via-dynamic"), namespace=NS)
    assert [j.metadata.name for j in jobs.get(namespace=NS).items] == ["via-dynamic"]

    templates = dyn.resources.get(api_version="template.openshift.io/v1", name="templates")
    (tmpl,) = templates.get(namespace="infra", label_selector="template=solver").to_dict()["items"]
    assert tmpl["metadata"]["name"] == "solver-fedora-31-py38"


def test_unknown_path_is_404() -> None:
    with FakeKube(tls="none") as plain:
        request = urllib.request.Request(
            plain.url + "/apis/nope/v1/things", headers={"Authorization": "Bearer test-token"}
        )
        with pytest.raises(urllib.error.HTTPError) as exc:
            urllib.request.urlopen(request, timeout=5)
        assert exc.value.code == 404
        assert json.loads(exc.value.read())["reason"] == "NotFound"


def test_missing_or_wrong_token_is_401(fake: FakeKube, tmp_path: Path) -> None:
    for token in (False, "wrong-token"):
        batch = k8s.BatchV1Api(api_client(fake, tmp_path, token=token))
        with pytest.raises(ApiException) as exc:
            batch.list_namespaced_job(NS)
        assert exc.value.status == 401
        assert json.loads(exc.value.body)["reason"] == "Unauthorized"


def test_tls_with_right_ca_works(fake: FakeKube, api: k8s.ApiClient) -> None:
    assert api.configuration.ssl_ca_cert == str(fake.ca_pem)
    assert k8s.BatchV1Api(api).list_namespaced_job(NS, _request_timeout=5).items == []


def test_insecure_skip_tls_verify_works_and_warns(fake: FakeKube, tmp_path: Path) -> None:
    batch = k8s.BatchV1Api(api_client(fake, tmp_path, ca=False))
    with pytest.warns(urllib3.exceptions.InsecureRequestWarning):
        assert batch.list_namespaced_job(NS).items == []


def test_tls_with_wrong_ca_fails_verification(fake: FakeKube, tmp_path: Path) -> None:
    batch = k8s.BatchV1Api(api_client(fake, tmp_path, wrong_ca=True))
    # urllib3 retries the handshake 3 times, then raises MaxRetryError; kubernetes 11 only turns a
    # bare urllib3 SSLError (retries disabled) into ApiException(status=0).
    with pytest.raises(urllib3.exceptions.MaxRetryError) as exc:
        batch.list_namespaced_job(NS, _request_timeout=5)
    assert isinstance(exc.value.reason, urllib3.exceptions.SSLError)
    assert "CERTIFICATE_VERIFY_FAILED" in str(exc.value.reason)
    assert fake.wait_for_tls_failure()


def test_mtls_requires_client_certificate(tmp_path: Path) -> None:
    with FakeKube(tls="mtls") as server:
        without = k8s.BatchV1Api(api_client(server, tmp_path, client_cert=False))
        with pytest.raises(urllib3.exceptions.HTTPError):
            without.list_namespaced_job(NS, _request_timeout=5)
        assert server.wait_for_tls_failure()
        assert server.requests == []

        with_cert = k8s.BatchV1Api(api_client(server, tmp_path, client_cert=True, token=False))
        assert with_cert.list_namespaced_job(NS, _request_timeout=5).items == []
        assert server.requests[-1].client_cert_subject == "O=graph-refresh-tests,OU=tests,CN=graph-refresh-test"
        assert "authorization" not in server.requests[-1].headers


def configmap(name: str, data: dict[str, str], resource_version: str | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": NS}
    if resource_version is not None:
        metadata["resourceVersion"] = resource_version
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data}


def test_update_with_a_stale_resource_version_is_409_and_changes_nothing(fake: FakeKube, api: k8s.ApiClient) -> None:
    core = k8s.CoreV1Api(api)
    created = core.create_namespaced_config_map(NS, configmap("ledger", {"a": "1"}))
    first = created.metadata.resource_version
    updated = core.replace_namespaced_config_map("ledger", NS, configmap("ledger", {"a": "2"}, first))
    assert updated.data == {"a": "2"}
    assert int(updated.metadata.resource_version) > int(first)
    assert updated.metadata.uid == created.metadata.uid

    with pytest.raises(ApiException) as exc:
        core.replace_namespaced_config_map("ledger", NS, configmap("ledger", {"a": "3"}, first))
    assert exc.value.status == 409
    body = json.loads(exc.value.body)
    assert body["reason"] == "Conflict"
    assert "the object has been modified" in body["message"]
    assert (fake.get("configmaps", NS, "ledger") or {}).get("data") == {"a": "2"}

    unconditional = core.replace_namespaced_config_map("ledger", NS, configmap("ledger", {"a": "4"}))
    assert unconditional.data == {"a": "4"}


def test_update_of_a_missing_object_or_under_another_name_fails(api: k8s.ApiClient) -> None:
    core = k8s.CoreV1Api(api)
    with pytest.raises(ApiException) as missing:
        core.replace_namespaced_config_map("gone", NS, configmap("gone", {}))
    assert missing.value.status == 404
    core.create_namespaced_config_map(NS, configmap("mine", {}))
    with pytest.raises(ApiException) as renamed:
        core.replace_namespaced_config_map("mine", NS, configmap("other", {}))
    assert renamed.value.status == 400


def test_update_keeps_a_jobs_status_and_a_dry_run_update_stores_nothing(fake: FakeKube, api: k8s.ApiClient) -> None:
    batch, core = k8s.BatchV1Api(api), k8s.CoreV1Api(api)
    batch.create_namespaced_job(NS, job("done"))
    fake.set_job_status(NS, "done", "Complete")
    batch.replace_namespaced_job("done", NS, job("done", {"edited": "yes"}))
    stored = fake.get("jobs", NS, "done")
    assert stored is not None
    assert stored["metadata"]["labels"] == {"edited": "yes"}
    assert stored["status"]["conditions"][0]["type"] == "Complete"

    core.create_namespaced_config_map(NS, configmap("ledger", {"a": "1"}))
    core.replace_namespaced_config_map("ledger", NS, configmap("ledger", {"a": "2"}), dry_run="All")
    assert (fake.get("configmaps", NS, "ledger") or {}).get("data") == {"a": "1"}


def test_a_configmap_over_one_mebibyte_is_invalid(fake: FakeKube, api: k8s.ApiClient) -> None:
    core = k8s.CoreV1Api(api)
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_config_map(NS, configmap("big", {"k": "x" * (1024 * 1024)}))
    assert exc.value.status == 422
    assert "must have at most 1048576 bytes" in json.loads(exc.value.body)["message"]
    core.create_namespaced_config_map(NS, configmap("fits", {"k": "x" * (1024 * 1024 - 1)}))
    assert fake.get("configmaps", NS, "big") is None


def test_a_dry_run_create_is_quota_checked_and_stores_nothing(fake: FakeKube, api: k8s.ApiClient) -> None:
    fake.add(quota("jobs", 1))
    batch = k8s.BatchV1Api(api)
    assert batch.create_namespaced_job(NS, job("first"), dry_run="All").metadata.name == "first"
    assert fake.objects("jobs", NS) == []
    batch.create_namespaced_job(NS, job("first"))
    with pytest.raises(ApiException) as exc:
        batch.create_namespaced_job(NS, job("second"), dry_run="All")
    assert exc.value.status == 403
    assert "exceeded quota" in json.loads(exc.value.body)["message"]


def test_requests_record_the_connection_they_came_on(fake: FakeKube, api: k8s.ApiClient, tmp_path: Path) -> None:
    batch = k8s.BatchV1Api(api)
    for _ in range(3):
        batch.list_namespaced_job(NS)  # keep-alive: one connection
    k8s.BatchV1Api(api_client(fake, tmp_path)).list_namespaced_job(NS)  # another client: another connection
    assert [r.connection for r in fake.requests] == [1, 1, 1, 2]


BASE: dict[str, Any] = {
    "metadata": {"name": "x", "labels": {"a": "1"}},
    "data": {"k": "v", "path/with~": "p"},
    "status": {"conditions": [{"type": "Failed", "status": "True"}], "list": [1, 2]},
}


@pytest.mark.parametrize(
    ("content_type", "patch", "changed"),
    [
        (
            JSON_PATCH,
            [{"op": "add", "path": "/data/new", "value": "n"}],
            {"data": {"k": "v", "path/with~": "p", "new": "n"}},
        ),
        (JSON_PATCH, [{"op": "remove", "path": "/data/path~1with~0"}], {"data": {"k": "v"}}),
        (JSON_PATCH, [{"op": "replace", "path": "/status/list/0", "value": 9}], {"status.list": [9, 2]}),
        (JSON_PATCH, [{"op": "add", "path": "/status/list/-", "value": 3}], {"status.list": [1, 2, 3]}),
        (JSON_PATCH, [{"op": "move", "from": "/data/k", "path": "/data/m"}], {"data": {"path/with~": "p", "m": "v"}}),
        (
            JSON_PATCH,
            [{"op": "copy", "from": "/data/k", "path": "/data/c"}],
            {"data": {"k": "v", "path/with~": "p", "c": "v"}},
        ),
        (
            JSON_PATCH,
            [{"op": "test", "path": "/data/k", "value": "v"}, {"op": "remove", "path": "/data/k"}],
            {"data": {"path/with~": "p"}},
        ),
        (
            MERGE_PATCH,
            {"data": {"k": None}, "status": {"list": [5]}},
            {"data": {"path/with~": "p"}, "status.list": [5]},
        ),
        (
            MERGE_PATCH,
            {"status": {"conditions": [{"type": "Complete"}]}},
            {"status.conditions": [{"type": "Complete"}]},
        ),
        (
            STRATEGIC_MERGE_PATCH,
            {"status": {"conditions": [{"type": "Complete", "status": "True"}, {"type": "Failed", "status": "False"}]}},
            {"status.conditions": [{"type": "Failed", "status": "False"}, {"type": "Complete", "status": "True"}]},
        ),
        (
            STRATEGIC_MERGE_PATCH,
            {"status": {"conditions": [{"type": "Failed", "$patch": "delete"}]}},
            {"status.conditions": []},
        ),
        (STRATEGIC_MERGE_PATCH, {"data": {"$patch": "replace", "only": "o"}}, {"data": {"only": "o"}}),
    ],
)
def test_patch_types(content_type: str, patch: Any, changed: dict[str, Any]) -> None:
    expected = json.loads(json.dumps(BASE))
    for path, value in changed.items():
        *parents, last = path.split(".")
        node = expected
        for part in parents:
            node = node[part]
        node[last] = value
    assert apply_patch(BASE, patch, content_type) == expected


@pytest.mark.parametrize(
    ("content_type", "patch", "status"),
    [
        (JSON_PATCH, [{"op": "remove", "path": "/data/missing"}], 422),
        (JSON_PATCH, [{"op": "replace", "path": "/data/missing", "value": 1}], 422),
        (JSON_PATCH, [{"op": "test", "path": "/data/k", "value": "other"}], 422),
        (JSON_PATCH, [{"op": "add", "path": "/status/list/7", "value": 1}], 422),
        (JSON_PATCH, [{"op": "frobnicate", "path": "/data"}], 400),
        (JSON_PATCH, {"op": "add"}, 400),
        (MERGE_PATCH, [1], 400),
        (STRATEGIC_MERGE_PATCH, {"status": {"conditions": [{"status": "True"}]}}, 400),
        ("application/apply-patch+yaml", {}, 415),
    ],
)
def test_patches_that_cannot_apply_change_nothing(content_type: str, patch: Any, status: int) -> None:
    before = json.dumps(BASE)
    with pytest.raises(ApiError) as exc:
        apply_patch(BASE, patch, content_type)
    assert exc.value.code == status
    assert json.dumps(BASE) == before


# --------------------------------------------------------------------- representations and resource versions

TABLE_V1 = "application/json;as=Table;v=v1;g=meta.k8s.io"
METADATA_LIST_V1 = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"


def get_raw(api: k8s.ApiClient, path: str, accept: str = "application/json", **query: str) -> tuple[int, Any]:
    """GET ``path`` with these query parameters and Accept header through the client's own ApiClient: the
    status and the parsed JSON answer."""
    try:
        response = api.call_api(
            path,
            "GET",
            query_params=list(query.items()),
            header_params={"Accept": accept},
            auth_settings=["BearerToken"],
            _preload_content=False,
            _return_http_data_only=True,
        )
    except ApiException as error:
        return int(error.status), json.loads(error.body)
    return int(response.status), json.loads(response.data)


JOBS = f"/apis/batch/v1/namespaces/{NS}/jobs"


def finished_namespace(fake: FakeKube) -> None:
    """Jobs a, b, c: a complete, b failed, c running; c has a selector, as the Job controller gives."""
    for name in ("a", "b", "c"):
        fake.add({**job(name), "metadata": {"name": name, "namespace": NS, "labels": {"n": name}}})
    fake.set_job_status(NS, "a", "Complete")
    fake.set_job_status(NS, "b", "Failed")
    fake.set_job_status(NS, "c", None, active=1)
    running = fake.get("jobs", NS, "c") or {}
    running["spec"]["selector"] = {"matchLabels": {"controller-uid": "u-1", "batch.kubernetes.io/job-name": "c"}}
    fake.add(running)


def test_jobs_are_selected_by_how_many_pods_succeeded(fake: FakeKube, api: k8s.ApiClient) -> None:
    """``status.successful``, the one status field of a Job the API server selects by: status.succeeded as a
    number, 0 when the Job controller has not written it."""
    finished_namespace(fake)
    batch = k8s.BatchV1Api(api)
    assert names(batch.list_namespaced_job(NS, field_selector="status.successful=1").items) == ["a"]
    assert names(batch.list_namespaced_job(NS, field_selector="status.successful!=1").items) == ["b", "c"]
    assert names(batch.list_namespaced_job(NS, field_selector="status.successful=0").items) == ["b", "c"]
    with pytest.raises(ApiException) as exc:  # a pod's field, not a Job's
        batch.list_namespaced_job(NS, field_selector="status.phase!=Succeeded")
    assert exc.value.status == 400


@pytest.mark.parametrize("status_column", [False, True])
def test_a_table_of_jobs_has_the_api_servers_columns_and_rows(
    fake: FakeKube, api: k8s.ApiClient, status_column: bool
) -> None:
    finished_namespace(fake)
    fake.job_status_column = status_column
    answered, table = get_raw(api, JOBS, f"{TABLE_V1}, application/json")
    assert answered == 200
    assert (table["kind"], table["apiVersion"]) == ("Table", "meta.k8s.io/v1")
    columns = [(c["name"], c["priority"]) for c in table["columnDefinitions"]]
    wide = [("Containers", 1), ("Images", 1), ("Selector", 1)]
    status = [("Status", 0)] if status_column else []
    assert columns == [("Name", 0), *status, ("Completions", 0), ("Duration", 0), ("Age", 0), *wide]
    cells = [row["cells"] for row in table["rows"]]
    states = {"a": ["Complete"], "b": ["Failed"], "c": ["Running"]} if status_column else {"a": [], "b": [], "c": []}
    assert [row[: len(row) - 5] for row in cells] == [
        ["a", *states["a"], "1/1"],
        ["b", *states["b"], "0/1"],
        ["c", *states["c"], "0/1"],
    ]
    assert [row[-3:] for row in cells] == [
        ["main", "busybox", "<none>"],
        ["main", "busybox", "<none>"],
        ["main", "busybox", "batch.kubernetes.io/job-name=c,controller-uid=u-1"],
    ]
    assert all(row["object"]["kind"] == "PartialObjectMetadata" for row in table["rows"])  # includeObject=Metadata
    assert table["rows"][0]["object"]["metadata"]["labels"] == {"n": "a"}


def test_a_tables_rows_carry_no_object_the_metadata_or_the_object_as_asked(fake: FakeKube, api: k8s.ApiClient) -> None:
    finished_namespace(fake)
    _, none = get_raw(api, JOBS, TABLE_V1, includeObject="None")
    assert [row["object"] for row in none["rows"]] == [None, None, None]
    _, metadata = get_raw(api, JOBS, TABLE_V1, includeObject="Metadata")
    assert metadata["rows"][1]["object"] == {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": (fake.get("jobs", NS, "b") or {})["metadata"],
    }
    _, whole = get_raw(api, JOBS, TABLE_V1, includeObject="Object")
    assert whole["rows"][1]["object"]["status"]["failed"] == 1
    assert (whole["rows"][1]["object"]["kind"], whole["rows"][1]["object"]["apiVersion"]) == ("Job", "batch/v1")
    status, refused = get_raw(api, JOBS, TABLE_V1, includeObject="All")
    assert (status, refused["reason"]) == (400, "BadRequest")


def test_a_table_is_paged_with_the_lists_continue_token(fake: FakeKube, api: k8s.ApiClient) -> None:
    finished_namespace(fake)
    names_seen, token, pages = [], "", 0
    while True:
        _, table = get_raw(api, JOBS, TABLE_V1, limit="2", **({"continue": token} if token else {}))
        pages += 1
        names_seen += [row["cells"][0] for row in table["rows"]]
        token = table["metadata"].get("continue", "")
        if not token:
            break
    assert (names_seen, pages) == (["a", "b", "c"], 2)


def test_metadata_only_lists_carry_each_objects_metadata(fake: FakeKube, api: k8s.ApiClient) -> None:
    finished_namespace(fake)
    status, listed = get_raw(api, JOBS, METADATA_LIST_V1, fieldSelector="status.successful!=1")
    assert status == 200
    assert (listed["kind"], listed["apiVersion"]) == ("PartialObjectMetadataList", "meta.k8s.io/v1")
    assert [item["metadata"]["name"] for item in listed["items"]] == ["b", "c"]
    assert {item["kind"] for item in listed["items"]} == {"PartialObjectMetadata"}
    assert all(set(item) == {"kind", "apiVersion", "metadata"} for item in listed["items"])
    _, one = get_raw(api, f"{JOBS}/a", "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1")
    assert (one["kind"], one["metadata"]["name"]) == ("PartialObjectMetadata", "a")


def test_a_representation_the_fake_does_not_serve_is_406_unless_json_is_also_accepted(
    fake: FakeKube, api: k8s.ApiClient
) -> None:
    finished_namespace(fake)
    status, body = get_raw(api, JOBS, "application/json;as=Table;v=v2;g=meta.k8s.io")
    assert (status, body["reason"], body["code"]) == (406, "NotAcceptable", 406)
    assert body["message"].startswith("only the following media types are accepted: application/json")
    single = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"  # one object's form, for a list
    assert get_raw(api, JOBS, single)[0] == 406
    status, listed = get_raw(api, JOBS, f"application/json;as=Table;v=v2;g=meta.k8s.io, {TABLE_V1}")
    assert (status, listed["kind"]) == (200, "Table")
    status, listed = get_raw(api, JOBS, "application/json;as=Table;v=v2;g=meta.k8s.io, application/json")
    assert (status, listed["kind"]) == (200, "JobList")


@pytest.mark.parametrize(
    ("representations", "status", "kind"),
    [("served", 200, "Table"), ("refused", 406, None), ("ignored", 200, "JobList")],
)
def test_a_fault_option_refuses_or_ignores_tables_and_metadata(
    fake: FakeKube, api: k8s.ApiClient, representations: Any, status: int, kind: str | None
) -> None:
    """An older server, or a proxy in front of one: 406 even when JSON would do, or the plain list."""
    finished_namespace(fake)
    fake.representations = representations
    answered, body = get_raw(api, JOBS, f"{TABLE_V1}, application/json")
    assert (answered, body.get("kind") if kind else body["reason"]) == (status, kind or "NotAcceptable")
    assert get_raw(api, JOBS)[1]["kind"] == "JobList"  # plain JSON is always served


def test_a_list_at_a_resource_version_answers_as_the_namespace_was_then(fake: FakeKube, api: k8s.ApiClient) -> None:
    finished_namespace(fake)
    _, before = get_raw(api, JOBS, TABLE_V1, fieldSelector="status.successful=1", limit="500")
    version = before["metadata"]["resourceVersion"]
    fake.set_job_status(NS, "c", "Complete")  # finishes after the first list
    fake.delete("jobs", NS, "a")  # and the TTL controller removes a
    fake.add({**job("d"), "metadata": {"name": "d", "namespace": NS}})

    def succeeded(**query: str) -> list[str]:
        status, table = get_raw(api, JOBS, TABLE_V1, fieldSelector="status.successful=1", **query)
        assert status == 200, table
        return [row["cells"][0] for row in table["rows"]]

    assert succeeded(resourceVersion=version, resourceVersionMatch="Exact") == ["a"]
    assert succeeded(resourceVersion=version, limit="500") == ["a"]  # a version with a limit is exact too
    assert succeeded(resourceVersion=version, resourceVersionMatch="NotOlderThan") == ["c"]
    assert succeeded() == ["c"]
    _, table = get_raw(api, JOBS, TABLE_V1, resourceVersion=version, resourceVersionMatch="Exact")
    assert table["metadata"]["resourceVersion"] == version


def test_the_pages_of_a_list_are_one_snapshot(fake: FakeKube, api: k8s.ApiClient) -> None:
    for name in ("a", "b", "c", "d"):
        fake.add({**job(name), "metadata": {"name": name, "namespace": NS}})
    batch = k8s.BatchV1Api(api)
    first = batch.list_namespaced_job(NS, limit=2)
    fake.delete("jobs", NS, "c")
    fake.add({**job("e"), "metadata": {"name": "e", "namespace": NS}})
    rest = batch.list_namespaced_job(NS, limit=2, _continue=first.metadata._continue)
    assert names(first.items) + names(rest.items) == ["a", "b", "c", "d"]
    assert rest.metadata.resource_version == first.metadata.resource_version
    assert names(batch.list_namespaced_job(NS).items) == ["a", "b", "d", "e"]


@pytest.mark.parametrize(
    ("query", "status", "words"),
    [
        (
            {"resourceVersionMatch": "Exact"},
            422,
            "resourceVersionMatch is forbidden unless resourceVersion is provided",
        ),
        ({"resourceVersion": "0", "resourceVersionMatch": "Exact"}, 422, 'forbidden for resourceVersion "0"'),
        ({"resourceVersion": "2", "resourceVersionMatch": "Newest"}, 422, 'Unsupported value: "Newest"'),
        (
            {"resourceVersion": "2", "continue": "x"},
            400,
            "specifying resource version is not allowed when using continue",
        ),
        ({"resourceVersion": "99999", "resourceVersionMatch": "Exact"}, 504, "Too large resource version: 99999"),
        ({"resourceVersion": "two", "limit": "5"}, 400, "invalid resource version"),
    ],
)
def test_list_options_the_api_server_refuses_are_refused(
    api: k8s.ApiClient, query: dict[str, str], status: int, words: str
) -> None:
    answered, body = get_raw(api, JOBS, **query)
    assert answered == status
    assert words in body["message"]


@pytest.mark.parametrize(
    ("seconds", "printed"),
    [
        (-5, "<invalid>"),
        (0, "0s"),
        (119, "119s"),
        (120, "2m"),
        (303, "5m3s"),
        (600, "10m"),
        (10_799, "179m"),
        (10_800, "3h"),
        (11_220, "3h7m"),
        (72_000, "20h"),
        (190_800, "2d5h"),
        (2_592_000, "30d"),
        (63_072_000 + 864_000, "2y10d"),
        (86_400 * 365 * 9, "9y"),
    ],
)
def test_durations_are_printed_as_the_api_server_prints_them(seconds: int, printed: str) -> None:
    assert human_duration(seconds) == printed
