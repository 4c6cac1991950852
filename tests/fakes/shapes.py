"""Jobs and pods shaped as an OpenShift 4 API server lists them, for tests and benchmarks.

What graph-refresh creates is a few hundred bytes; what it lists back is not. The API server and the
controllers add ``managedFields`` (one entry per field manager, each a tree of the fields it owns), the
Job controller's labels and selector, defaults for every pod and container field, the security context
constraint's fields (``openshift.io/scc``, SELinux levels, dropped capabilities, seccomp profiles), the
network plugins' annotations (Multus and OVN-Kubernetes write JSON documents into annotations) and the
kubelet's status. A Job here is about 6 KB of JSON and a pod about 10 KB, as on a real cluster.

Only what graph-refresh reads decides a run; everything else is there to weigh what a run must not keep.
"""

from __future__ import annotations

import copy
import json
import uuid
from typing import Any

from graph_refresh.items import WorkItem

Obj = dict[str, Any]

NAMESPACE = "thoth-middletier-stage"
REGISTRY = "image-registry.openshift-image-registry.svc:5000"
CREATED = "2026-12-05T10:00:00Z"
ENV_NAMES = (
    "THOTH_SOLVER",
    "THOTH_DOCUMENT_ID",
    "THOTH_LOG_SOLVER",
    "THOTH_SOLVER_NO_TRANSITIVE",
    "THOTH_SOLVER_PACKAGES",
    "THOTH_SOLVER_INDEXES",
    "THOTH_SOLVER_OUTPUT",
    "THOTH_SOLVER_SUBGRAPH_CHECK_API",
    "THOTH_DEPLOYMENT_NAME",
    "THOTH_ADVISE_REPORTER_OUTPUT",
    "THOTH_USER_API_HOST",
    "PROMETHEUS_PUSHGATEWAY_HOST",
)


def compact(obj: Obj) -> str:
    """The JSON of ``obj`` as the API server writes it (no spaces)."""
    return json.dumps(obj, separators=(",", ":"))


def _uid(seed: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, seed))


def _fields(keys: list[str]) -> Obj:
    """A ``fieldsV1`` tree: every key owned, each with an empty map ("f:name": {})."""
    return {key: {} for key in keys}


def _container(name: str, image: str, memory: str, package: str) -> Obj:
    return {
        "name": name,
        "image": image,
        "env": [{"name": env, "value": f"{package}-{env.lower()}"} for env in ENV_NAMES]
        + [
            {
                "name": "SENTRY_DSN",
                "valueFrom": {"secretKeyRef": {"name": "thoth", "key": "sentry-dsn", "optional": True}},
            }
        ],
        "resources": {"requests": {"cpu": "500m", "memory": memory}, "limits": {"cpu": "1", "memory": memory}},
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "imagePullPolicy": "IfNotPresent",
        "securityContext": {
            "capabilities": {"drop": ["ALL"]},
            "runAsUser": 1000680000,
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
        },
    }


def base_job(
    item: WorkItem, *, memory: str = "1Gi", deadline: int = 3600, containers: int = 1, namespace: str = NAMESPACE
) -> Obj:
    """A Job for ``item`` as graph-refresh creates it (labels, annotations, resources), before the server;
    ``containers`` beyond the first are sidecars with the same memory."""
    solver = item.solver or "package-analyzer"
    image = f"{REGISTRY}/thoth-infra-stage/{solver}:v1.2.3"
    package = item.candidate.package_name
    names = ["solver" if item.solver else "package-analyzer"] + [f"sidecar-{i}" for i in range(1, containers)]
    template_labels = {"app": "thoth", "component": solver, **item.labels}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": item.job_name,
            "namespace": namespace,
            "labels": {"app": "thoth", "component": solver, "task": "solver", **item.labels},
            "annotations": {"thoth-station.ninja/template-version": "0.7.3", **item.annotations},
        },
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": deadline,
            "ttlSecondsAfterFinished": 86400,
            "template": {
                "metadata": {"labels": template_labels},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "containers": [_container(name, image, memory, package) for name in names],
                },
            },
        },
    }


def _job_managed_fields(job: Obj) -> list[Obj]:
    spec = job["spec"]
    labels = [f"f:{key}" for key in job["metadata"].get("labels", {})]
    annotations = [f"f:{key}" for key in job["metadata"].get("annotations", {})]
    containers = {
        f'k:{{"name":"{c["name"]}"}}': {
            ".": {},
            "f:env": {f'k:{{"name":"{e["name"]}"}}': {".": {}, "f:name": {}, "f:value": {}} for e in c.get("env", [])},
            "f:image": {},
            "f:name": {},
            "f:resources": {"f:limits": _fields(["f:cpu", "f:memory"]), "f:requests": _fields(["f:cpu", "f:memory"])},
            **_fields(["f:imagePullPolicy", "f:terminationMessagePath", "f:terminationMessagePolicy"]),
        }
        for c in spec["template"]["spec"].get("containers", [])
    }
    return [
        {
            "manager": "graph-refresh",
            "operation": "Update",
            "apiVersion": "batch/v1",
            "time": CREATED,
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:metadata": {"f:annotations": _fields([".", *annotations]), "f:labels": _fields([".", *labels])},
                "f:spec": {
                    **_fields([f"f:{key}" for key in spec if key != "template"]),
                    "f:template": {
                        "f:metadata": {"f:labels": _fields(labels)},
                        "f:spec": {"f:containers": containers, **_fields(["f:restartPolicy", "f:dnsPolicy"])},
                    },
                },
            },
        },
        {
            "manager": "kube-controller-manager",
            "operation": "Update",
            "apiVersion": "batch/v1",
            "time": CREATED,
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:status": {
                    "f:conditions": {},
                    **_fields(["f:active", "f:failed", "f:ready", "f:startTime", "f:uncountedTerminatedPods"]),
                }
            },
            "subresource": "status",
        },
    ]


def openshift_job(job: Obj, *, state: str = "running", reason: str = "BackoffLimitExceeded", at: str = CREATED) -> Obj:
    """``job`` as the API server lists it once admitted and run: ``state`` is running, complete or failed
    (the Failed condition with ``reason`` at ``at``). ``job`` itself is not changed."""
    shown = copy.deepcopy(job)
    metadata, spec = shown["metadata"], shown["spec"]
    uid = _uid(metadata["name"])
    shown.pop("kind", None)
    shown.pop("apiVersion", None)
    controller = {"batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": metadata["name"]}
    controller |= {"controller-uid": uid, "job-name": metadata["name"]}
    metadata.update(uid=uid, resourceVersion="1843362910", generation=1, creationTimestamp=CREATED)
    metadata.setdefault("namespace", NAMESPACE)
    metadata.setdefault("annotations", {})["batch.kubernetes.io/job-tracking"] = ""
    metadata["managedFields"] = _job_managed_fields(shown)
    spec.update(parallelism=1, completions=1, completionMode="NonIndexed", suspend=False)
    spec["podReplacementPolicy"] = "TerminatingOrFailed"
    spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    template = spec["template"]
    template.setdefault("metadata", {}).setdefault("labels", {}).update(controller)
    template["metadata"]["creationTimestamp"] = None
    pod_spec = template["spec"]
    pod_spec.update(dnsPolicy="ClusterFirst", schedulerName="default-scheduler", terminationGracePeriodSeconds=30)
    pod_spec["securityContext"] = {}
    status: Obj = {"startTime": CREATED, "uncountedTerminatedPods": {}}
    if state == "running":
        status.update(active=1, ready=0)
    elif state == "complete":
        status.update(succeeded=1, ready=0, completionTime=at)
        status["conditions"] = [
            {"type": "Complete", "status": "True", "lastProbeTime": at, "lastTransitionTime": at},
        ]
    else:
        status.update(failed=1, ready=0)
        status["conditions"] = [
            {
                "type": "FailureTarget",
                "status": "True",
                "reason": reason,
                "message": "Job has reached the specified backoff limit",
                "lastProbeTime": at,
                "lastTransitionTime": at,
            },
            {
                "type": "Failed",
                "status": "True",
                "reason": reason,
                "message": "Job has reached the specified backoff limit",
                "lastProbeTime": at,
                "lastTransitionTime": at,
            },
        ]
    shown["status"] = status
    return shown


def _network_status(ip: str) -> str:
    """What Multus writes into ``k8s.v1.cni.cncf.io/network-status``: a JSON document, as text."""
    return json.dumps(
        [
            {
                "name": "ovn-kubernetes",
                "interface": "eth0",
                "ips": [ip],
                "mac": "0a:58:0a:80:02:2f",
                "default": True,
                "dns": {},
            }
        ],
        indent=4,
    )


def terminated(reason: str, exit_code: int, at: str = CREATED) -> Obj:
    """A container state ``terminated`` with ``reason``."""
    return {
        "terminated": {
            "exitCode": exit_code,
            "reason": reason,
            "startedAt": CREATED,
            "finishedAt": at,
            "containerID": f"cri-o://{uuid.uuid5(uuid.NAMESPACE_DNS, reason + at).hex * 2}",
        }
    }


def openshift_pod(
    job: Obj,
    *,
    phase: str,
    states: dict[str, Obj] | None = None,
    last_states: dict[str, Obj] | None = None,
    reason: str | None = None,
    conditions: list[Obj] | None = None,
    suffix: str = "x7k2p",
) -> Obj:
    """A pod of ``job`` (as listed: ``openshift_job`` of it or the Job as created) in ``phase``.

    ``states`` and ``last_states`` give a container's ``state``/``lastState`` by name (default: terminated
    with exit 0 when Succeeded, 1 when Failed, running otherwise); ``reason`` is the pod's status reason
    (``Evicted``); ``conditions`` are added to the kubelet's five.
    """
    name = f"{job['metadata']['name']}-{suffix}"
    template = copy.deepcopy(job["spec"]["template"])
    labels = dict(template.get("metadata", {}).get("labels", {}))
    labels.setdefault("job-name", job["metadata"]["name"])
    labels.setdefault("batch.kubernetes.io/job-name", job["metadata"]["name"])
    ip = "10.128.2.47"
    owner = job["metadata"].get("uid") or _uid(job["metadata"]["name"])
    spec = template["spec"]
    for container in spec.get("containers", []):
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        container.setdefault("imagePullPolicy", "IfNotPresent")
        container["securityContext"] = {
            "capabilities": {"drop": ["ALL"]},
            "runAsUser": 1000680000,
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
        }
        container["volumeMounts"] = [
            {
                "name": "kube-api-access-8x2vd",
                "readOnly": True,
                "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
            }
        ]
    spec.update(
        nodeName="worker-3.ocp4.example.com",
        serviceAccountName="default",
        serviceAccount="default",
        priority=0,
        enableServiceLinks=True,
        preemptionPolicy="PreemptLowerPriority",
        dnsPolicy="ClusterFirst",
        schedulerName="default-scheduler",
        terminationGracePeriodSeconds=30,
        imagePullSecrets=[{"name": "default-dockercfg-7kq5w"}],
    )
    spec["securityContext"] = {
        "seLinuxOptions": {"level": "s0:c26,c5"},
        "fsGroup": 1000680000,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    spec["tolerations"] = [
        {"key": f"node.kubernetes.io/{taint}", "operator": "Exists", "effect": effect, "tolerationSeconds": seconds}
        for taint, effect, seconds in (
            ("not-ready", "NoExecute", 300),
            ("unreachable", "NoExecute", 300),
            ("memory-pressure", "NoSchedule", None),
        )
    ]
    spec["volumes"] = [
        {
            "name": "kube-api-access-8x2vd",
            "projected": {
                "sources": [
                    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                    {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                    {
                        "downwardAPI": {
                            "items": [
                                {
                                    "path": "namespace",
                                    "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                                }
                            ]
                        }
                    },
                    {
                        "configMap": {
                            "name": "openshift-service-ca.crt",
                            "items": [{"key": "service-ca.crt", "path": "service-ca.crt"}],
                        }
                    },
                ],
                "defaultMode": 420,
            },
        }
    ]
    default_state = terminated("Completed", 0) if phase == "Succeeded" else terminated("Error", 1)
    if phase not in ("Succeeded", "Failed"):
        default_state = {"running": {"startedAt": CREATED}}
    statuses = [
        {
            "name": c["name"],
            "state": (states or {}).get(c["name"], default_state),
            "lastState": (last_states or {}).get(c["name"], {}),
            "ready": False,
            "restartCount": 0,
            "image": c.get("image", ""),
            "imageID": f"{REGISTRY}/thoth-infra-stage/solver@sha256:{'4f' * 32}",
            "containerID": f"cri-o://{'9a' * 32}",
            "started": False,
        }
        for c in spec.get("containers", [])
    ]
    kubelet = [
        {"type": kind, "status": "True", "lastProbeTime": None, "lastTransitionTime": CREATED}
        for kind in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")
    ]
    status: Obj = {
        "phase": phase,
        "conditions": kubelet + (conditions or []),
        "hostIP": "10.0.91.17",
        "hostIPs": [{"ip": "10.0.91.17"}],
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "startTime": CREATED,
        "containerStatuses": statuses,
        "qosClass": "Burstable",
    }
    if reason is not None:
        status["reason"] = reason
        status["message"] = f"The node was low on resource: memory. {reason}."
    network = _network_status(ip)
    return {
        "metadata": {
            "name": name,
            "generateName": f"{job['metadata']['name']}-",
            "namespace": job["metadata"].get("namespace", NAMESPACE),
            "uid": _uid(name),
            "resourceVersion": "1843363207",
            "creationTimestamp": CREATED,
            "labels": labels,
            "annotations": {
                "k8s.ovn.org/pod-networks": json.dumps(
                    {
                        "default": {
                            "ip_addresses": [f"{ip}/23"],
                            "mac_address": "0a:58:0a:80:02:2f",
                            "gateway_ips": ["10.128.2.1"],
                            "routes": [{"dest": "10.128.0.0/14", "nextHop": "10.128.2.1"}],
                            "ip_address": f"{ip}/23",
                            "gateway_ip": "10.128.2.1",
                            "role": "primary",
                        }
                    }
                ),
                "k8s.v1.cni.cncf.io/network-status": network,
                "openshift.io/scc": "restricted-v2",
                "seccomp.security.alpha.kubernetes.io/pod": "runtime/default",
                "batch.kubernetes.io/job-tracking": "",
            },
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": job["metadata"]["name"],
                    "uid": owner,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
            "finalizers": ["batch.kubernetes.io/job-tracking"] if phase not in ("Succeeded", "Failed") else [],
            "managedFields": _pod_managed_fields(labels, spec, statuses),
        },
        "spec": spec,
        "status": status,
    }


def _pod_managed_fields(labels: Obj, spec: Obj, statuses: list[Obj]) -> list[Obj]:
    containers = {
        f'k:{{"name":"{c["name"]}"}}': {
            ".": {},
            "f:env": {f'k:{{"name":"{e["name"]}"}}': {".": {}, "f:name": {}, "f:value": {}} for e in c.get("env", [])},
            **_fields(["f:image", "f:imagePullPolicy", "f:name", "f:terminationMessagePath"]),
            "f:resources": {"f:limits": _fields(["f:cpu", "f:memory"]), "f:requests": _fields(["f:cpu", "f:memory"])},
            "f:securityContext": _fields(["f:allowPrivilegeEscalation", "f:capabilities", "f:runAsNonRoot"]),
        }
        for c in spec.get("containers", [])
    }

    def entry(manager: str, fields: Obj, subresource: str | None = None) -> Obj:
        found: Obj = {
            "manager": manager,
            "operation": "Update",
            "apiVersion": "v1",
            "time": CREATED,
            "fieldsType": "FieldsV1",
            "fieldsV1": fields,
        }
        if subresource:
            found["subresource"] = subresource
        return found

    return [
        entry(
            "kube-controller-manager",
            {
                "f:metadata": {
                    "f:finalizers": _fields([".", 'v:"batch.kubernetes.io/job-tracking"']),
                    "f:generateName": {},
                    "f:labels": _fields(["."] + [f"f:{key}" for key in labels]),
                    "f:ownerReferences": {".": {}, 'k:{"uid":"x"}': {}},
                },
                "f:spec": {"f:containers": containers, **_fields(["f:dnsPolicy", "f:restartPolicy", "f:volumes"])},
            },
        ),
        entry(
            "multus-daemon",
            {"f:metadata": {"f:annotations": _fields(["f:k8s.v1.cni.cncf.io/network-status"])}},
            "status",
        ),
        entry("worker-3", {"f:metadata": {"f:annotations": _fields(["f:k8s.ovn.org/pod-networks"])}}, "status"),
        entry(
            "kubelet",
            {
                "f:status": {
                    "f:conditions": {
                        f'k:{{"type":"{kind}"}}': _fields([".", "f:lastProbeTime", "f:lastTransitionTime", "f:status"])
                        for kind in ("ContainersReady", "Initialized", "PodReadyToStartContainers", "Ready")
                    },
                    "f:containerStatuses": {},
                    **_fields(["f:hostIP", "f:hostIPs", "f:phase", "f:podIP", "f:podIPs", "f:startTime"]),
                }
            },
            "status",
        ),
    ]
