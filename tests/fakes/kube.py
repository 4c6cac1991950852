"""A wire-level stand-in for the Kubernetes API server, for tests.

``FakeKube`` is a real HTTP(S) server on 127.0.0.1 (random port) built on the standard library's
``http.server``; certificates come from ``trustme``. Code under test reaches it with the real
``kubernetes`` and ``openshift`` clients through a kubeconfig the fake writes, so everything between the
client call and the socket (serialisation, TLS, auth headers, timeouts, retries, error mapping) is the
production code path. Tests arrange state with ``add``/``set_job_status``, break things with ``inject``,
and check what was sent with ``requests``/``requests_for``.

Run on its own, to drive it with kubectl (see the README's "Rehearse learning against the stand-in")::

    python -m tests.fakes.kube --make-tls DIR      # a CA, a server and a client pair; keys 0600; then exits
    python -m tests.fakes.kube [--tls-dir DIR] [--tls tls|mtls|none] [--port N] [--token T]
        [--namespace NS] [--load FILE ...] [--kubeconfig PATH [--context-namespace NS]]
        [--forbid RULE ...] [--fail RULE=ANSWER[@RATE] ...] [--quota RESOURCE=QUANTITY ...]
        [--latency SECONDS] [--seed N]

prints ``listening on URL`` as its first line, then writes the kubeconfig (whole, at once: a script waits
for the file) and serves until SIGINT/SIGTERM. Bad arguments and files get one line on stderr, exit 2.
The fault flags (``--help`` describes them) become ``inject`` faults, so an operator can break it on purpose
without writing Python. While it serves with ``--tls-dir DIR`` it holds a shared lock on ``DIR/stand-in.lock``
(its pid inside), and ``--make-tls DIR`` refuses to replace a CA that a running stand-in serves with.

Faithful to Kubernetes (what a client can observe):

- URL layout of the core group (``/api/v1``) and named groups (``/apis/GROUP/VERSION``), namespaced and
  all-namespaces collections, and the discovery documents (``/version``, ``/api``, ``/api/v1``, ``/apis``,
  ``/apis/GROUP``, ``/apis/GROUP/VERSION``) in the shapes kubernetes-client, ``openshift.dynamic`` and
  kubectl read: resources sorted by name, each ``status`` subresource listed (kubectl maps a kind to the
  last resource listed with it). A client asking for aggregated discovery gets the plain documents, as
  from an older server, and kubectl falls back to them.
- ``PATCH`` with a JSON patch, a JSON merge patch or a strategic merge patch (other types: 415), written
  like an update (a ``resourceVersion`` in the patch is a precondition). The ``status`` subresource of
  Jobs, Pods and ResourceQuotas: GET, PUT and PATCH write only ``status``; writes of the object keep it.
- The Accept header is negotiated as the API server does: the first media range it serves wins. A
  ``meta.k8s.io`` Table (``as=Table;v=v1`` or ``v1beta1``, what ``kubectl get`` asks for) with the list's
  ``metadata`` (continue token included) and, per ``includeObject``, each row's object as none, its
  PartialObjectMetadata (the default) or the whole object; Jobs with the columns Kubernetes 1.15 to 1.29
  print (Name, Completions, Duration, Age, and the wide Containers, Images, Selector; with
  ``job_status_column``, 1.30's Status after Name), durations written as ``HumanDuration`` writes them;
  Pods with their status as kubectl shows it, ConfigMaps their data count, quotas used/hard. Metadata only:
  ``as=PartialObjectMetadataList`` for a list, ``as=PartialObjectMetadata`` for one object. A request whose
  every range asks for something else answers 406 Not Acceptable. ``representations`` makes the fake
  refuse any such request with 406 or ignore the parameters and answer JSON, as an older server or a proxy.
- Errors are ``Status`` objects with the real ``reason``, ``code`` and ``details`` and messages worded like
  the API server's: NotFound, AlreadyExists, Invalid, Forbidden (with the exact quota-exceeded text),
  Unauthorized, BadRequest, MethodNotAllowed.
- Create sets ``uid``, ``resourceVersion``, ``creationTimestamp`` (RFC 3339, ``Z``) and ``namespace``;
  ``resourceVersion`` is one cluster-wide counter, like etcd's revision. Create resets ``status`` of Jobs
  and ResourceQuotas, as the real registry does.
- Order of checks on create: validation (422), quota admission (403), then the store (409).
- Label selectors with the whole grammar (``=``, ``==``, ``!=``, ``in``, ``notin``, ``key``, ``!key``; a
  comma is AND; ``!=`` and ``notin`` also match objects without the label); field selectors on
  ``metadata.name`` and ``metadata.namespace``, on a pod's ``status.phase``, ``spec.restartPolicy`` and
  ``spec.nodeName``, and on a Job's ``status.successful`` (``status.succeeded``, 0 when absent); other
  fields answer 400 in the real server's words.
- ``limit``/``continue`` paging with an opaque token; lists are sorted by (namespace, name) like etcd
  keys; ``metadata.continue`` is absent on the last page and ``remainingItemCount`` is only set when no
  selector was given (both as the real server does, so clients see ``None``, not ``""``). The pages of a
  list are one snapshot: a continue token resumes at the resourceVersion the list began at.
- ``resourceVersion`` on a list: with ``resourceVersionMatch=Exact``, or with a ``limit`` (the API server
  then reads etcd), the list answers as the store was at that version, every write since undone; otherwise
  with the latest. The combinations the API server refuses are refused with its status and words (422 for
  ``resourceVersionMatch`` without a version, with ``continue`` or ``Exact`` at "0"; 400 for a version with
  ``continue``; 504 for a version not reached yet). History is never compacted (no 410 Expired).
- Items of a list carry no ``kind``/``apiVersion``; only the list itself has them (the API server strips
  them from items, and code that relies on them breaks against a real cluster).
- ``?dryRun=All`` on create, update and delete runs validation and admission (quota included) and stores
  nothing.
- Update (PUT) with optimistic concurrency: a ``metadata.resourceVersion`` in the body that is not the
  stored one answers 409 Conflict with the API server's words; none means an unconditional update. The
  name in the body must be the URL's (400 otherwise), the object must exist (404), and ``uid``,
  ``creationTimestamp`` and a Job's or quota's ``status`` are kept from the stored object.
- A ConfigMap whose ``data`` and ``binaryData`` exceed 1 MiB is refused (422), as the real validation does.
- ResourceQuota admission for ``count/jobs.batch`` with the real 403 message; a quota's ``status.hard``
  mirrors ``spec.hard`` and ``status.used["count/jobs.batch"]`` is kept current, as the quota controller
  would.
- Job status written by ``set_job_status`` looks like the Job controller's: counts that are zero are
  omitted (the API omits them, clients see ``None``), conditions carry ``lastProbeTime`` and
  ``lastTransitionTime``, a Failed condition has reason ``BackoffLimitExceeded``.
- Bearer-token authentication (401 Status); TLS with a server certificate for ``127.0.0.1`` and
  ``localhost``; mutual TLS in which the handshake fails for a client without a certificate signed by
  the cluster CA, and in which a verified client certificate alone authenticates.
- HTTP/1.1 keep-alive with ``Content-Length`` and TCP_NODELAY, so a request costs well under a millisecond.

Simplified or absent:

- Only the resources in ``RESOURCES``. No watch, no deletecollection, no server-side apply, no
  subresource but ``status``, no controllers: Jobs never start Pods or finish on their own (use
  ``set_job_status``, or write the Job's status). Deleting a Job with ``propagationPolicy``
  Background/Foreground removes Pods whose ownerReferences name it, at once.
- A Pod created with a ``status`` keeps it (the real server resets it to Pending), so a pod that ended
  (OOM-killed, evicted) can be staged with ``kubectl create``; a Pod without one is Pending.
- A strategic merge patch merges by key the lists named in ``MERGE_KEYS`` (wherever they are) and
  honours ``$patch: replace``/``delete``; other directives are ignored and other lists replaced.
- Bodies are JSON: a protobuf body (which kubectl's typed commands such as ``create configmap`` send)
  answers 415. ``/openapi/v2`` describes no type, so kubectl validates nothing before sending; there is
  no ``/openapi/v3``.
- Namespaces always exist: GET of any namespace answers an Active Namespace, and creating into any
  namespace works.
- Validation covers metadata only (name required, DNS-1123 shape, at most 63 characters for Jobs because
  of their ``job-name`` label, body namespace matching the URL, kind/apiVersion matching the endpoint);
  specs are stored as sent, without defaulting.
- Only ``count/jobs.batch`` is enforced by quota; other hard limits are stored, not enforced or counted.
- Every path, discovery included, needs credentials (real clusters let anonymous users read /version).
- No ``generateName``: an object needs its ``name`` (graph-refresh names every Job itself).
- No ``processedtemplates``: graph-refresh processes Templates itself (graph_refresh/templates.py), and
  kubectl has no ``process`` command.
"""

from __future__ import annotations

import argparse
import base64
import bisect
import contextlib
import copy
import fcntl
import http.server
import itertools
import json
import math
import os
import random
import re
import secrets
import shutil
import signal
import socket
import ssl
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import trustme
import yaml
from kubernetes.utils.quantity import parse_quantity

Obj = dict[str, Any]
TlsMode = Literal["none", "tls", "mtls"]

IDLE_TIMEOUT_SECONDS = 30.0  # an idle keep-alive connection is closed after this long
HANDSHAKE_TIMEOUT_SECONDS = 5.0  # a client that stalls the TLS handshake is dropped after this long
POLL_INTERVAL_SECONDS = 0.05  # how quickly close() stops the accept loop
JOB_COUNT_QUOTA = "count/jobs.batch"
CONFIGMAP_MAX_BYTES = 1024 * 1024  # the API server's limit on a ConfigMap's data + binaryData

KUBE_VERSION: Obj = {
    "major": "1",
    "minor": "15",
    "gitVersion": "v1.15.0-fakekube",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2019-06-19T00:00:00Z",
    "goVersion": "go1.12.5",
    "compiler": "gc",
    "platform": "linux/amd64",
}


# --------------------------------------------------------------------------------------------- resources


@dataclass(frozen=True)
class ResourceType:
    """One REST resource the fake serves."""

    name: str
    """Plural, as in the URL: ``jobs``."""
    kind: str
    group: str
    """API group, ``""`` for the core group."""
    version: str
    namespaced: bool = True
    verbs: tuple[str, ...] = ("create", "delete", "get", "list", "patch", "update")
    short_names: tuple[str, ...] = ()
    stored: bool = True
    """False for virtual resources (namespaces) that hold nothing."""
    has_status: bool = False
    """Whether ``status`` is a subresource (``NAME/status``): written only there, kept by create and update."""

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified_name(self) -> str:
        """``jobs.batch`` / ``pods``: how the API server names the resource in messages."""
        return f"{self.name}.{self.group}" if self.group else self.name

    @property
    def qualified_kind(self) -> str:
        """``Job.batch`` / ``Pod``: how the API server names the kind in Invalid messages."""
        return f"{self.kind}.{self.group}" if self.group else self.kind

    def details(self, name: str, **extra: Any) -> Obj:
        """The ``details`` of a Status about one object of this resource."""
        details: Obj = {"name": name}
        if self.group:
            details["group"] = self.group
        details["kind"] = self.name
        details.update(extra)
        return details


RESOURCES: dict[str, ResourceType] = {
    rt.name: rt
    for rt in (
        ResourceType("namespaces", "Namespace", "", "v1", namespaced=False, verbs=("get", "list"), stored=False),
        ResourceType("configmaps", "ConfigMap", "", "v1", short_names=("cm",)),
        ResourceType("pods", "Pod", "", "v1", short_names=("po",), has_status=True),
        ResourceType("resourcequotas", "ResourceQuota", "", "v1", short_names=("quota",), has_status=True),
        ResourceType("jobs", "Job", "batch", "v1", has_status=True),
        ResourceType("templates", "Template", "template.openshift.io", "v1"),
    )
}
STORED = tuple(rt.name for rt in RESOURCES.values() if rt.stored)
GROUP_VERSIONS: tuple[tuple[str, str], ...] = (("batch", "v1"), ("template.openshift.io", "v1"))
_KIND_TO_RESOURCE: dict[tuple[str, str], str] = {
    (rt.api_version, rt.kind): rt.name for rt in RESOURCES.values() if rt.stored
}

_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


def status_body(code: int, message: str, reason: str | None = None, details: Obj | None = None) -> Obj:
    """A ``Status`` object as the API server sends it with an error (or a success without an object)."""
    body: Obj = {"kind": "Status", "apiVersion": "v1", "metadata": {}}
    if code < 400:
        body["status"] = "Success"
    else:
        body.update(status="Failure", message=message, reason=reason or _REASONS.get(code, ""))
    if details:
        body["details"] = details
    body["code"] = code
    return body


class ApiError(Exception):
    """Unwinds request handling into a Status response."""

    def __init__(self, code: int, message: str, reason: str | None = None, details: Obj | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.body = status_body(code, message, reason, details)


def _stamp(at: float) -> str:
    """Epoch seconds as the API server writes a time (RFC 3339, whole seconds, ``Z``)."""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------------------------- selectors

LabelTest = Callable[[dict[str, str]], bool]
ObjectTest = Callable[[Obj], bool]

_DNS_LABEL = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?"
_DNS_SUBDOMAIN_RE = re.compile(rf"{_DNS_LABEL}(?:\.{_DNS_LABEL})*")
_LABEL_NAME = r"[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_LABEL_KEY_RE = re.compile(rf"(?:{_DNS_LABEL}(?:\.{_DNS_LABEL})*/)?{_LABEL_NAME}")
_LABEL_VALUE_RE = re.compile(rf"(?:{_LABEL_NAME})?")
_SET_REQ_RE = re.compile(r"(?P<key>[^\s=!(),]+)\s+(?P<op>in|notin)\s*\((?P<values>[^()]*)\)")
_EQ_REQ_RE = re.compile(r"(?P<key>[^\s=!(),]+)\s*(?P<op>==|=|!=)\s*(?P<value>[^\s=!(),]*)")
_EXISTS_REQ_RE = re.compile(r"(?P<neg>!)?\s*(?P<key>[^\s=!(),]+)")
_FIELD_REQ_RE = re.compile(r"\s*(?P<field>[^\s=!]+)\s*(?P<op>==|=|!=)\s*(?P<value>[^,]*?)\s*")
SUPPORTED_FIELDS = ("metadata.name", "metadata.namespace")  # every resource
# Fields some resources add, as the API server's field label conversions do (pods: a few of spec and status; Jobs:
# how many pods succeeded).
RESOURCE_FIELDS = {"pods": ("status.phase", "spec.restartPolicy", "spec.nodeName"), "jobs": ("status.successful",)}
# Fields whose value the API server computes rather than reads: a Job's status.successful is status.succeeded
# as a number, 0 when absent.
COMPUTED_FIELDS: dict[str, Callable[[Obj], str]] = {
    "status.successful": lambda job: str((job.get("status") or {}).get("succeeded") or 0),
}
# How a resource's field label conversion words a field it does not know (the core group's generic words else).
UNSUPPORTED_FIELD = {"jobs": 'field label "{}" not supported for batchv1.Job'}


def _bad_request(message: str) -> ApiError:
    return ApiError(400, message, "BadRequest")


def _label_key(key: str) -> str:
    if not _LABEL_KEY_RE.fullmatch(key) or len(key) > 317:
        raise _bad_request(f"unable to parse requirement: invalid label key {key!r}")
    return key


def _label_value(value: str) -> str:
    if not _LABEL_VALUE_RE.fullmatch(value):
        raise _bad_request(f"unable to parse requirement: invalid label value: {value!r}")
    return value


def _split_requirements(text: str) -> list[str]:
    """Split at the commas that are not inside ``( )``."""
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    if depth != 0:
        raise _bad_request(f"unable to parse requirement: unbalanced parentheses in {text!r}")
    return parts


def _parse_label_requirement(text: str) -> LabelTest:
    if match := _SET_REQ_RE.fullmatch(text):
        key = _label_key(match["key"])
        if not match["values"].strip():
            message = "for 'in', 'notin' operators, values set can't be empty"
            raise _bad_request(f"unable to parse requirement: {message}: {text!r}")
        values = {_label_value(v.strip()) for v in match["values"].split(",")}
        if match["op"] == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    if match := _EQ_REQ_RE.fullmatch(text):
        key, value = _label_key(match["key"]), _label_value(match["value"])
        if match["op"] == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: labels.get(key) == value
    if match := _EXISTS_REQ_RE.fullmatch(text):
        key = _label_key(match["key"])
        if match["neg"]:
            return lambda labels: key not in labels
        return lambda labels: key in labels
    raise _bad_request(f"unable to parse requirement: {text!r}")


def parse_label_selector(selector: str) -> list[LabelTest]:
    """Compile a label selector into tests that must all pass; raise ApiError(400) if it does not parse."""
    if not selector.strip():
        return []
    return [_parse_label_requirement(part.strip()) for part in _split_requirements(selector)]


def parse_field_selector(selector: str, resource: str = "") -> list[ObjectTest]:
    """Compile a field selector on metadata.name / metadata.namespace, and on the fields ``resource`` adds
    (``RESOURCE_FIELDS``: a pod's ``status.phase``, say); other fields answer 400. A field the object lacks
    reads as "", as on the real server (so ``status.phase!=Succeeded`` selects a pod without status)."""
    if not selector.strip():
        return []
    tests: list[ObjectTest] = []
    for part in selector.split(","):
        match = _FIELD_REQ_RE.fullmatch(part)
        if match is None:
            raise _bad_request(f"invalid selector: '{selector}'; can't understand '{part}'")
        name, op, value = match["field"], match["op"], match["value"]
        if name not in SUPPORTED_FIELDS + RESOURCE_FIELDS.get(resource, ()):
            raise _bad_request(UNSUPPORTED_FIELD.get(resource, "field label not supported: {}").format(name))
        tests.append(_field_test(name, value, negate=op == "!="))
    return tests


def _field_test(name: str, value: str, *, negate: bool) -> ObjectTest:
    computed, path = COMPUTED_FIELDS.get(name), name.split(".")

    def test(obj: Obj) -> bool:
        if computed is not None:
            return (computed(obj) == value) != negate
        found: Any = obj
        for step in path:
            found = found.get(step) if isinstance(found, dict) else None
        return bool((found if found is not None else "") == value) != negate

    return test


def _encode_continue(resource_version: int, after: str) -> str:
    raw = json.dumps({"v": "fakekube/v1", "rv": resource_version, "start": after}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_continue(token: str) -> tuple[int, str]:
    """The resourceVersion the list started at and the key its next page starts after."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        version, after = data["rv"], data["start"]
        if data.get("v") != "fakekube/v1" or not isinstance(after, str) or not isinstance(version, int):
            raise ValueError("unknown version")
    except (ValueError, KeyError, TypeError) as exc:
        raise _bad_request(f"continue key is not valid: {exc}") from None
    return version, after


RESOURCE_VERSION_MATCHES = ("Exact", "NotOlderThan")


def _invalid_list_options(message: str) -> ApiError:
    """A 422 about the query of a list, worded as the API server's ListOptions validation."""
    cause = {"reason": "FieldValueForbidden", "message": message, "field": "resourceVersionMatch"}
    return ApiError(
        422,
        f'ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: {message}',
        "Invalid",
        {"group": "meta.k8s.io", "kind": "ListOptions", "causes": [cause]},
    )


def list_version(query: dict[str, list[str]], current: int, limit: int) -> tuple[int, str | None]:
    """The resourceVersion a list answers at (``current``: the latest) and where its page starts (a continue
    token's key, or None), from ``resourceVersion``, ``resourceVersionMatch``, ``limit`` and ``continue`` as the
    API server reads them: a continue token resumes the list at the version it began at; ``Exact`` (or a version
    with a ``limit``, which the API server serves from etcd) answers at that very version; otherwise the
    latest. Raises ApiError as the API server does for combinations it refuses."""
    version, match, token = (
        _first(query, "resourceVersion"),
        _first(query, "resourceVersionMatch"),
        _first(query, "continue"),
    )
    if match:
        if match not in RESOURCE_VERSION_MATCHES:
            supported = ", ".join(f'"{m}"' for m in RESOURCE_VERSION_MATCHES)
            raise _invalid_list_options(f'Unsupported value: "{match}": supported values: {supported}')
        if not version:
            raise _invalid_list_options(
                "Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided"
            )
        if token:
            raise _invalid_list_options("Forbidden: resourceVersionMatch is forbidden when continue is provided")
        if match == "Exact" and version == "0":
            raise _invalid_list_options('Forbidden: resourceVersionMatch "exact" is forbidden for resourceVersion "0"')
    if token:
        if version not in ("", "0"):
            raise _bad_request("specifying resource version is not allowed when using continue")
        return _decode_continue(token)
    if version in ("", "0"):
        return current, None
    if not version.isdigit():
        raise _bad_request(f"invalid resource version: {version!r}")
    if int(version) > current:
        cause = {"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}
        message = f"Too large resource version: {version}, current: {current}"
        raise ApiError(504, message, "Timeout", {"causes": [cause], "retryAfterSeconds": 1})
    exact = match == "Exact" or (not match and limit > 0)
    return (int(version) if exact else current), None


# ----------------------------------------------------------------------------------------------- patches

JSON_PATCH = "application/json-patch+json"
JSON_TYPES = ("application/json", "application/yaml")
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH)
# Lists that a strategic merge patch merges element by element, by the field that names an element. The real
# server takes these from each type's Go struct tags; here the field's name decides, whatever its parent.
MERGE_KEYS = {
    "conditions": "type",
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ownerReferences": "uid",
}


def _unsupported_media_type(accepted: tuple[str, ...]) -> ApiError:
    message = "the body of the request was in an unknown format - accepted media types include: "
    return ApiError(415, message + ", ".join(accepted), "UnsupportedMediaType")


def apply_patch(obj: Obj, patch: Any, content_type: str) -> Obj:
    """``obj`` with ``patch`` applied as ``content_type`` says: a JSON patch (RFC 6902), a JSON merge patch
    (RFC 7386) or a strategic merge patch (a merge patch that merges the ``MERGE_KEYS`` lists by key and
    honours ``$patch: replace|delete``). Raises ApiError: 415 for another type, 422 when a JSON patch's
    operation cannot apply."""
    if content_type not in PATCH_TYPES:
        raise _unsupported_media_type(PATCH_TYPES)
    if content_type == JSON_PATCH:
        if not isinstance(patch, list):
            raise _bad_request("the body of the request was in an unknown format: a JSON patch is a list")
        return _json_patch(obj, patch)
    if not isinstance(patch, dict):
        raise _bad_request("the body of the request was in an unknown format: a merge patch is an object")
    merged = _merge_patch(obj, patch, strategic=content_type == STRATEGIC_MERGE_PATCH)
    assert isinstance(merged, dict)
    return merged


def _merge_patch(target: Any, patch: Any, *, strategic: bool) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if strategic and patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if strategic and patch.get("$patch") == "delete":
        return None
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if strategic and key.startswith("$"):
            continue
        if value is None:
            result.pop(key, None)
        elif strategic and key in MERGE_KEYS and isinstance(value, list) and isinstance(result.get(key), list):
            result[key] = _merge_list(result[key], value, MERGE_KEYS[key])
        else:
            merged = _merge_patch(result.get(key), value, strategic=strategic)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
    return result


def _merge_list(current: list[Any], patch: list[Any], key: str) -> list[Any]:
    """Strategic merge of a list of objects by ``key``: patched elements merge into the one with their key (or
    are appended), ``$patch: delete`` removes one, ``{"$patch": "replace"}`` in the list replaces the whole list."""
    if any(isinstance(item, dict) and item.get("$patch") == "replace" and key not in item for item in patch):
        return [copy.deepcopy(i) for i in patch if not (isinstance(i, dict) and i.get("$patch") == "replace")]
    result = copy.deepcopy(current)
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            raise _bad_request(f"map: {item!r} does not contain declared merge key: {key}")
        index = next((i for i, old in enumerate(result) if isinstance(old, dict) and old.get(key) == item[key]), None)
        if item.get("$patch") == "delete":
            if index is not None:
                del result[index]
        elif index is None:
            result.append(_merge_patch({}, item, strategic=True))
        else:
            result[index] = _merge_patch(result[index], item, strategic=True)
    return result


def _pointer(path: Any) -> list[str]:
    if not isinstance(path, str) or (path and not path.startswith("/")):
        raise ApiError(422, f"the server rejected our request due to an error in our request: bad path {path!r}")
    return [part.replace("~1", "/").replace("~0", "~") for part in path.split("/")[1:]] if path else []


def _json_patch(obj: Obj, operations: list[Any]) -> Obj:
    document: Any = copy.deepcopy(obj)

    def fail(message: str) -> ApiError:
        return ApiError(422, f"the server rejected our request due to an error in our request: {message}")

    def parent(parts: list[str], path: Any) -> tuple[Any, str]:
        node = document
        for part in parts[:-1]:
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                raise fail(f"doc is missing path: {path!r}")
        return node, parts[-1]

    def get(path: Any) -> Any:
        parts = _pointer(path)
        if not parts:
            return document
        node, last = parent(parts, path)
        if isinstance(node, dict) and last in node:
            return node[last]
        if isinstance(node, list) and last.isdigit() and int(last) < len(node):
            return node[int(last)]
        raise fail(f"doc is missing path: {path!r}")

    def remove(path: Any) -> Any:
        node, last = parent(_pointer(path) or [""], path)
        if isinstance(node, dict) and last in node:
            return node.pop(last)
        if isinstance(node, list) and last.isdigit() and int(last) < len(node):
            return node.pop(int(last))
        raise fail(f"unable to remove nonexistent key: {last}: missing value")

    def add(path: Any, value: Any, *, replace: bool) -> None:
        nonlocal document
        parts = _pointer(path)
        if not parts:
            document = value
            return
        node, last = parent(parts, path)
        if isinstance(node, dict):
            if replace and last not in node:
                raise fail(f"replace operation does not apply: doc is missing key: {path}")
            node[last] = value
        elif isinstance(node, list):
            if last == "-" and not replace:
                node.append(value)
            elif last.isdigit() and int(last) <= len(node) - (1 if replace else 0):
                if replace:
                    node[int(last)] = value
                else:
                    node.insert(int(last), value)
            else:
                raise fail(f"index out of range: {path}")
        else:
            raise fail(f"doc is missing path: {path!r}")

    for operation in operations:
        if not isinstance(operation, dict) or not isinstance(operation.get("op"), str):
            raise _bad_request(f"the body of the request was in an unknown format: bad operation {operation!r}")
        op, path = operation["op"], operation.get("path")
        if op in ("add", "replace", "test") and "value" not in operation:
            raise fail(f"{op} operation needs a value")
        if op == "add":
            add(path, copy.deepcopy(operation["value"]), replace=False)
        elif op == "replace":
            add(path, copy.deepcopy(operation["value"]), replace=True)
        elif op == "remove":
            remove(path)
        elif op == "move":
            add(path, remove(operation.get("from")), replace=False)
        elif op == "copy":
            add(path, copy.deepcopy(get(operation.get("from"))), replace=False)
        elif op == "test":
            if get(path) != operation["value"]:
                raise fail(f"testing value {path} failed")
        else:
            raise _bad_request(f"Unexpected kind: {op}")
    if not isinstance(document, dict):
        raise fail("the patched document is not an object")
    return document


# --------------------------------------------------------------------------------------- representations

META_GROUP = "meta.k8s.io"
META_VERSIONS = ("v1", "v1beta1")  # the Table and PartialObjectMetadata versions a 1.15 API server serves
TABLE, METADATA, METADATA_LIST = "Table", "PartialObjectMetadata", "PartialObjectMetadataList"
INCLUDE_OBJECT = ("None", "Metadata", "Object")  # a Table row's object: none, PartialObjectMetadata, the object
NOT_ACCEPTABLE = (
    "only the following media types are accepted: application/json, application/yaml, "
    "application/vnd.kubernetes.protobuf"
)
Representations = Literal["served", "refused", "ignored"]


@dataclass(frozen=True)
class Representation:
    """What a GET is answered with: the object or list itself (``as_`` None), a ``Table``, or its metadata only
    (``PartialObjectMetadata`` for an object, ``PartialObjectMetadataList`` for a list), in ``version`` of
    meta.k8s.io."""

    as_: str | None = None
    version: str = "v1"


PLAIN = Representation()


def negotiate(accept: str, *, listing: bool) -> Representation | None:
    """The first media range of ``accept`` the fake answers, as the API server picks one: ``as=Table`` or
    ``as=PartialObjectMetadata[List]`` with ``g=meta.k8s.io`` and a version it serves, or any range without
    ``as`` (answered with JSON, whatever type it names). None when every range asks for a representation the
    fake does not serve (the API server answers 406 Not Acceptable)."""
    if not accept.strip():
        return PLAIN
    wanted = METADATA_LIST if listing else METADATA
    for media_range in accept.split(","):
        _, *parameters = (part.strip() for part in media_range.split(";"))
        values = {key.strip().lower(): value.strip() for key, _, value in (p.partition("=") for p in parameters)}
        as_ = values.get("as")
        if as_ is None:
            return PLAIN
        if values.get("g") == META_GROUP and values.get("v") in META_VERSIONS and as_ in (TABLE, wanted):
            return Representation(as_, values["v"])
    return None


def asks_for_a_representation(accept: str) -> bool:
    """Whether any media range of ``accept`` asks for another representation (``as=...``)."""
    return any("as=" in part.replace(" ", "").lower() for part in accept.split(","))


def human_duration(seconds: float) -> str:
    """A duration as the API server prints it in Tables (apimachinery's ``HumanDuration``): two or three
    significant figures, ``42s``, ``5m3s``, ``17m``, ``3h7m``, ``20h``, ``2d5h``, ``30d``, ``2y10d``."""
    whole = int(seconds)
    if whole < -1:
        return "<invalid>"
    if whole < 0:
        return "0s"
    if whole < 120:
        return f"{whole}s"
    minutes = whole // 60
    if minutes < 10:
        return f"{minutes}m{whole % 60}s" if whole % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = whole // 3600
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = hours // 24 % 365
        return f"{hours // 24 // 365}y{days}d" if days else f"{hours // 24 // 365}y"
    return f"{hours // 24 // 365}y"


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _since(value: Any, now: float) -> str:
    """Time from ``value`` (RFC 3339) to ``now`` as Table cells show it; ``<unknown>`` without one."""
    at = _time(value)
    return "<unknown>" if at is None else human_duration(now - at.timestamp())


def _age(obj: Obj, now: float) -> str:
    return _since((obj.get("metadata") or {}).get("creationTimestamp"), now)


def _true_condition(job: Obj, kind: str) -> bool:
    conditions = (job.get("status") or {}).get("conditions") or []
    return any(c.get("type") == kind and c.get("status") == "True" for c in conditions if isinstance(c, dict))


def _job_status(job: Obj) -> str:
    """The Status column of a Job, as Kubernetes 1.30 and later print it."""
    if _true_condition(job, "Complete"):
        return "Complete"
    if _true_condition(job, "Failed"):
        return "Failed"
    if (job.get("metadata") or {}).get("deletionTimestamp"):
        return "Terminating"
    for condition in ("Suspended", "FailureTarget"):
        if _true_condition(job, condition):
            return condition
    return "Running"


def _job_completions(job: Obj) -> str:
    spec, succeeded = job.get("spec") or {}, (job.get("status") or {}).get("succeeded") or 0
    if spec.get("completions") is not None:
        return f"{succeeded}/{spec['completions']}"
    parallelism = spec.get("parallelism") or 0
    return f"{succeeded}/1 of {parallelism}" if parallelism > 1 else f"{succeeded}/1"


def _job_duration(job: Obj, now: float) -> str:
    """From start to completion, or to ``now`` while it runs; empty before the Job controller started it."""
    status = job.get("status") or {}
    started = _time(status.get("startTime"))
    if started is None:
        return ""
    ended = _time(status.get("completionTime"))
    return human_duration((now if ended is None else ended.timestamp()) - started.timestamp())


def _containers(job: Obj, field: str) -> str:
    containers = ((((job.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers")) or []
    return ",".join(str(c.get(field, "")) for c in containers if isinstance(c, dict))


def _label_selector(selector: Any) -> str:
    """A label selector as ``metav1.FormatLabelSelector`` writes it: requirements sorted by key, ``<none>`` for
    none."""
    if not isinstance(selector, dict):
        return "<none>"
    requirements = [(key, f"{key}={value}") for key, value in (selector.get("matchLabels") or {}).items()]
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression.get("key", ""), expression.get("operator", "")
        values = ",".join(sorted(expression.get("values") or []))
        shown = {"In": f"{key} in ({values})", "NotIn": f"{key} notin ({values})", "Exists": key}
        requirements.append((key, shown.get(operator, f"!{key}")))
    return ",".join(text for _, text in sorted(requirements)) or "<none>"


def _pod_status(pod: Obj) -> str:
    status = pod.get("status") or {}
    for container in status.get("containerStatuses") or []:
        state = container.get("state") or {}
        for key in ("terminated", "waiting"):
            reason = (state.get(key) or {}).get("reason")
            if reason:
                return str(reason)
    return str(status.get("reason") or status.get("phase") or "Unknown")


def _quota_usage(quota: Obj, prefix: str) -> str:
    status = quota.get("status") or {}
    hard, used = status.get("hard") or {}, status.get("used") or {}
    names = sorted(n for n in hard if n.startswith("limits.") == (prefix == "limits."))
    return ", ".join(f"{n}: {used.get(n, '0')}/{hard[n]}" for n in names)


def _template_parameters(template: Obj) -> str:
    """``13 (5 blank)`` as ``oc get templates`` shows it: how many parameters, and how many have no value."""
    parameters = template.get("parameters") or []
    blank = sum(1 for p in parameters if not p.get("value") and not p.get("generate"))
    return f"{len(parameters)} ({f'{blank} blank' if blank else 'all set'})"


@dataclass(frozen=True)
class Column:
    """One column of a resource's Table: its name, type and cell; ``priority`` 1 for those ``-o wide`` adds;
    ``timed`` when the cell also takes the server's time (epoch seconds: Age, Duration)."""

    name: str
    type: str
    cell: Callable[..., Any]
    priority: int = 0
    timed: bool = False

    def value(self, obj: Obj, now: float) -> Any:
        return self.cell(obj, now) if self.timed else self.cell(obj)


_NAME = Column("Name", "string", lambda o: o["metadata"].get("name", ""))
_AGE = Column("Age", "string", _age, timed=True)
JOB_STATUS = Column("Status", "string", _job_status)
"""The Jobs' column that Kubernetes 1.30 added after Name (``FakeKube.job_status_column``)."""
COLUMNS: dict[str, list[Column]] = {
    "jobs": [  # as Kubernetes 1.15 to 1.29 print a Job
        _NAME,
        Column("Completions", "string", _job_completions),
        Column("Duration", "string", _job_duration, timed=True),
        _AGE,
        Column("Containers", "string", lambda o: _containers(o, "name"), 1),
        Column("Images", "string", lambda o: _containers(o, "image"), 1),
        Column("Selector", "string", lambda o: _label_selector((o.get("spec") or {}).get("selector")), 1),
    ],
    "pods": [
        _NAME,
        Column("Status", "string", _pod_status),
        Column(
            "Restarts",
            "integer",
            lambda o: sum(c.get("restartCount", 0) for c in (o.get("status") or {}).get("containerStatuses") or []),
        ),
        _AGE,
    ],
    "configmaps": [
        _NAME,
        Column("Data", "integer", lambda o: len(o.get("data") or {}) + len(o.get("binaryData") or {})),
        _AGE,
    ],
    "resourcequotas": [
        _NAME,
        _AGE,
        Column("Request", "string", lambda o: _quota_usage(o, "")),
        Column("Limit", "string", lambda o: _quota_usage(o, "limits.")),
    ],
    "templates": [
        _NAME,
        Column(
            "Description", "string", lambda o: ((o["metadata"].get("annotations") or {}).get("description") or "")[:60]
        ),
        Column("Parameters", "string", _template_parameters),
        Column("Objects", "integer", lambda o: len(o.get("objects") or [])),
    ],
    "namespaces": [_NAME, Column("Status", "string", lambda o: (o.get("status") or {}).get("phase", "")), _AGE],
}


def _partial(obj: Obj, version: str) -> Obj:
    return {"kind": METADATA, "apiVersion": f"{META_GROUP}/{version}", "metadata": obj["metadata"]}


def make_table(
    rt: ResourceType,
    objects: list[Obj],
    metadata: Obj,
    *,
    include_object: str = "Metadata",
    version: str = "v1",
    job_status_column: bool = False,
    now: float | None = None,
) -> Obj:
    """A ``meta.k8s.io`` Table of ``objects`` with the list's ``metadata`` (resourceVersion, continue) and the
    columns the API server prints for ``rt``, the wide ones included (priority 1); each row's object as
    ``include_object`` says: none (null), PartialObjectMetadata, or the object with its kind. Ages and
    durations run to ``now`` (epoch seconds; None: the wall clock)."""
    clock = time.time() if now is None else now
    columns = list(COLUMNS.get(rt.name, [_NAME, _AGE]))
    if rt.name == "jobs" and job_status_column:
        columns.insert(1, JOB_STATUS)

    def row_object(obj: Obj) -> Obj | None:
        if include_object == "None":
            return None
        if include_object == "Object":
            return {"kind": rt.kind, "apiVersion": rt.api_version, **obj}
        return _partial(obj, version)

    return {
        "kind": TABLE,
        "apiVersion": f"{META_GROUP}/{version}",
        "metadata": metadata,
        "columnDefinitions": [
            {
                "name": column.name,
                "type": column.type,
                "format": "name" if column.name == "Name" else "",
                "description": "",
                "priority": column.priority,
            }
            for column in columns
        ],
        "rows": [
            {"cells": [column.value(obj, clock) for column in columns], "object": row_object(obj)} for obj in objects
        ],
    }


# ----------------------------------------------------------------------------------------------- openapi

OPENAPI_V2_PROTOBUF = (
    "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"  # the type the API server answers with
)


def _protobuf_field(number: int, payload: bytes) -> bytes:
    """One length-delimited protobuf field (lengths here stay under 128, so the length is one byte)."""
    assert len(payload) < 128
    return bytes([number << 3 | 2, len(payload)]) + payload


def _openapi_v2(accept: str) -> tuple[bytes, str]:
    """An OpenAPI v2 document that describes no type, in protobuf (what kubectl asks for) or JSON.

    kubectl downloads it before ``create -f`` to validate the manifest on the client; with no schema for a
    kind it validates nothing, so the stand-in checks what it stores itself (see the module doc). Fields of
    the protobuf ``openapi.v2.Document``: 1 swagger, 2 info (1 title, 2 version), 8 paths.
    """
    title, version = b"FakeKube", KUBE_VERSION["gitVersion"].encode()
    if "protobuf" in accept:
        info = _protobuf_field(1, title) + _protobuf_field(2, version)
        document = _protobuf_field(1, b"2.0") + _protobuf_field(2, info) + _protobuf_field(8, b"")
        return document, OPENAPI_V2_PROTOBUF
    text = {"swagger": "2.0", "info": {"title": title.decode(), "version": version.decode()}, "paths": {}}
    return json.dumps(text).encode(), "application/json"


# ------------------------------------------------------------------------------------ requests and faults


@dataclass(frozen=True)
class Request:
    """One request the fake received (recorded before faults and auth are applied)."""

    method: str
    path: str
    """Without the query string."""
    query: dict[str, list[str]]
    headers: dict[str, str]
    """Header names lower-cased."""
    body: Any
    """Parsed JSON, or None when there was no (JSON) body."""
    client_cert_subject: str | None
    """``O=...,OU=...,CN=...`` of a verified client certificate (mtls mode), else None."""
    connection: int = 0
    """Serial number of the (keep-alive) connection it came on: 1 for the first the server accepted."""


@dataclass(frozen=True)
class _Change:
    """One write to the store: which object, at which resourceVersion, and what it replaced (None: nothing)."""

    version: int
    resource: str
    namespace: str
    name: str
    before: Obj | None


@dataclass
class Fault:
    """An injected answer; see ``FakeKube.inject``."""

    method: str | None
    path: re.Pattern[str]
    status: int | None
    times: int | None
    headers: dict[str, str]
    body: Any
    delay: float
    match_name: str | None
    rate: float = 1.0
    """The share of matching requests it answers, drawn from ``rng``; the others go on to the next fault."""
    rng: random.Random | None = None
    drop: bool = False
    """Close the connection without an answer (after ``delay``), as a server that never answers."""
    hits: int = 0
    """How many requests this fault has answered so far."""

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.hits >= self.times

    def draw(self) -> bool:
        """Whether this matching request is one of the ``rate`` it answers (call with the fake's lock held)."""
        if self.rate >= 1:
            return True
        if self.rng is None:
            self.rng = random.Random(0)
        return self.rng.random() < self.rate

    def matches(self, method: str, path: str, body: Any) -> bool:
        if self.exhausted or (self.method is not None and self.method.upper() != method):
            return False
        if not self.path.search(path):
            return False
        if self.match_name is not None:
            metadata = body.get("metadata") if isinstance(body, dict) else None
            return isinstance(metadata, dict) and metadata.get("name") == self.match_name
        return True


# ---------------------------------------------------------------------------------------------- the wire


def _subject_of(sock: socket.socket) -> str | None:
    if not isinstance(sock, ssl.SSLSocket):
        return None
    cert = sock.getpeercert()
    if not cert:
        return None
    short = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU"}
    subject: tuple[tuple[tuple[str, str], ...], ...] = cert.get("subject", ())  # type: ignore[assignment]
    return ",".join(f"{short.get(key, key)}={value}" for rdn in subject for key, value in rdn)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; every response carries Content-Length
    disable_nagle_algorithm = True  # else delayed ACK + Nagle cost ~40 ms per request
    timeout = IDLE_TIMEOUT_SECONDS
    server_version = "FakeKube/1.0"
    sys_version = ""
    server: _Server
    connection_number = 0

    def setup(self) -> None:
        super().setup()
        self.connection_number = self.server.number_connection()

    def _serve(self) -> None:
        try:
            self.server.fake._serve(self)
        except (ConnectionError, TimeoutError, ssl.SSLError):
            self.close_connection = True  # the client went away (e.g. after its read timeout)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # keep-alive handler threads must not block close()
    allow_reuse_address = True

    def __init__(self, fake: FakeKube, ssl_context: ssl.SSLContext | None, port: int = 0) -> None:
        self.fake = fake
        self.ssl_context = ssl_context
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._accepted = 0
        super().__init__(("127.0.0.1", port), _Handler)

    def number_connection(self) -> int:
        """The serial number of a new connection."""
        with self._connections_lock:
            self._accepted += 1
            return self._accepted

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The TLS handshake runs here, in the connection's own thread, so that one slow or failing
        # client never stalls the accept loop.
        sock: socket.socket = request
        with self._connections_lock:
            self._connections.add(sock)
        try:
            if self.ssl_context is not None:
                sock.settimeout(HANDSHAKE_TIMEOUT_SECONDS)
                try:
                    tls_sock = self.ssl_context.wrap_socket(sock, server_side=True)
                except (ssl.SSLError, OSError) as exc:
                    self.fake._note_tls_failure(exc)
                    return
                with self._connections_lock:
                    self._connections.discard(sock)
                    self._connections.add(tls_sock)
                sock = tls_sock
            _Handler(sock, client_address, self)
        except (ConnectionError, TimeoutError, ssl.SSLError):
            pass
        finally:
            with self._connections_lock:
                self._connections.discard(sock)
            sock.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        self.fake._note_server_error(traceback.format_exc())

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for sock in connections:
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)  # the plain socket's, also for TLS ones


def _read_body(handler: _Handler) -> bytes:
    if "chunked" in handler.headers.get("Transfer-Encoding", "").lower():
        parts: list[bytes] = []
        while True:
            size = int(handler.rfile.readline(65537).split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while handler.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(parts)
            parts.append(handler.rfile.read(size))
            handler.rfile.readline(65537)
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length > 0 else b""


_CORE_PATH_RE = re.compile(
    r"/(?:api/(?P<core_version>[^/]+)|apis/(?P<group>[^/]+)/(?P<version>[^/]+))"
    r"(?:/namespaces/(?P<namespace>[^/]+))?/(?P<resource>[^/]+)(?:/(?P<name>[^/]+)(?:/(?P<subresource>[^/]+))?)?"
)
_NOT_FOUND = "the server could not find the requested resource"


# ---------------------------------------------------------------------------------------------- TLS files


@dataclass(frozen=True)
class KubeTlsFiles:
    """A cluster CA with a server pair (for ``127.0.0.1`` and ``localhost``) and a client pair, as PEM files."""

    directory: Path
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    @classmethod
    def in_directory(cls, directory: Path) -> KubeTlsFiles:
        """The file names ``make_kube_tls_files`` writes in ``directory``."""
        return cls(
            directory,
            directory / "ca.crt",
            directory / "server.crt",
            directory / "server.key",
            directory / "client.crt",
            directory / "client.key",
        )

    def missing(self) -> list[Path]:
        return [
            p
            for p in (self.ca, self.server_cert, self.server_key, self.client_cert, self.client_key)
            if not p.is_file()
        ]


def _write_private(path: Path, data: bytes) -> None:
    """Write a private key readable by its owner only (0600), also when the file existed with wider rights."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as file:
        os.fchmod(file.fileno(), 0o600)
        file.write(data)


def make_kube_tls_files(directory: Path) -> KubeTlsFiles:
    """Write a new CA, a server pair and a client pair into ``directory``; private keys are mode 0600.

    Each call makes a new CA, so two directories never trust each other. The client certificate's subject is
    ``O=graph-refresh-tests,OU=tests,CN=graph-refresh-test``.
    """
    directory.mkdir(parents=True, exist_ok=True)
    files = KubeTlsFiles.in_directory(directory)
    ca = trustme.CA()
    files.ca.write_bytes(ca.cert_pem.bytes())
    server = ca.issue_cert("127.0.0.1", "localhost")
    files.server_cert.write_bytes(b"".join(pem.bytes() for pem in server.cert_chain_pems))
    _write_private(files.server_key, server.private_key_pem.bytes())
    client = ca.issue_cert(
        "graph-refresh-test",
        common_name="graph-refresh-test",
        organization_name="graph-refresh-tests",
        organization_unit_name="tests",
    )
    files.client_cert.write_bytes(client.cert_chain_pems[0].bytes())
    _write_private(files.client_key, client.private_key_pem.bytes())
    return files


# ---------------------------------------------------------------------------------------------- FakeKube


class FakeKube:
    """An in-memory Kubernetes API server on 127.0.0.1; see the module docstring.

    ``tls``: ``"none"`` (plain HTTP), ``"tls"`` (server certificate from a throw-away CA) or ``"mtls"``
    (additionally requires a client certificate signed by that CA). ``token``: the bearer token every
    request must carry (None: no token check). In mtls mode a verified client certificate is enough.
    ``clock``: the server's time in epoch seconds (default the wall clock), for every time it writes
    (``creationTimestamp``, the times of ``set_job_status``) and the Age and Duration of Tables; a simulation
    passes its own.
    """

    def __init__(
        self,
        tls: TlsMode = "none",
        token: str | None = "test-token",
        *,
        port: int = 0,
        tls_files: KubeTlsFiles | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if tls not in ("none", "tls", "mtls"):
            raise ValueError(f"tls must be 'none', 'tls' or 'mtls', not {tls!r}")
        if tls_files is not None and tls == "none":
            raise ValueError("tls_files need tls='tls' or 'mtls'")
        self.tls: TlsMode = tls
        self.token = token
        self.clock = clock
        self.requests: list[Request] = []
        """Every request received, in arrival order."""
        self.tls_failures: list[str] = []
        """Server-side TLS handshake failures (wrong CA, missing client certificate, ...).

        The server notes a failure in its own thread, possibly after the client has already given up;
        use ``wait_for_tls_failure`` rather than reading this right after a failed call.
        """
        self._tls_failed = threading.Event()
        self.server_errors: list[str] = []
        """Tracebacks of bugs in the fake itself; a test may assert this stays empty."""
        self._lock = threading.RLock()
        self._store: dict[str, dict[str, dict[str, Obj]]] = {name: {} for name in STORED}
        self._faults: list[Fault] = []
        self.latency = 0.0
        """Seconds every request waits before it is handled (a slow server); faults wait on top of it."""
        self._resource_version = 1
        self._changes: list[_Change] = []
        self._snapshots: dict[tuple[str, str | None, int], list[tuple[str, Obj]]] = {}
        """The last snapshots made, by resource, namespace and version: the pages of one list share one."""
        """Every write, oldest first, with what it replaced: lists at an earlier resourceVersion undo them."""
        self.representations: Representations = "served"
        """How a GET that asks for a Table or for metadata only (``as=`` in Accept) is answered: "served" as
        asked; "refused" with 406 Not Acceptable, whatever else the client would take (a server, or a proxy in
        front of it, that serves no such representation); "ignored" with the object or list itself (an older
        server, or a proxy that drops the media type's parameters)."""
        self.job_status_column: bool = False
        """Print Jobs in Tables as Kubernetes 1.30 and later do, with a Status column after Name (default: as
        1.15 to 1.29, whose /version this fake answers: Name, Completions, Duration, Age, and the wide
        Containers, Images, Selector)."""
        self._started_at = self._now()
        self._stopping = threading.Event()
        self._closed = False
        self._tmp = Path(tempfile.mkdtemp(prefix="fakekube-"))

        self.ca_pem: Path | None = None
        """The cluster CA (signs the server certificate and, in mtls mode, the client certificate)."""
        self.client_cert_pem: Path | None = None
        """mtls mode: a client certificate signed by the cluster CA."""
        self.client_key_pem: Path | None = None
        """mtls mode: the key of ``client_cert_pem``."""
        self._wrong_ca_pem: Path | None = None
        ssl_context: ssl.SSLContext | None = None
        if tls != "none":
            files = tls_files or make_kube_tls_files(self._tmp)
            self.ca_pem = files.ca
            ssl_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ssl_context.load_cert_chain(files.server_cert, files.server_key)
            if tls == "mtls":
                self.client_cert_pem, self.client_key_pem = files.client_cert, files.client_key
                ssl_context.verify_mode = ssl.CERT_REQUIRED
                ssl_context.load_verify_locations(cafile=files.ca)

        self._server = _Server(self, ssl_context, port)
        self.port: int = self._server.server_address[1]
        self.url = f"{'http' if tls == 'none' else 'https'}://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": POLL_INTERVAL_SECONDS},
            name=f"FakeKube-{self.port}",
            daemon=True,
        )
        self._thread.start()

    # ----------------------------------------------------------------------------------------- lifecycle

    def __enter__(self) -> FakeKube:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FakeKube(url={self.url!r}, tls={self.tls!r})"

    def close(self) -> None:
        """Stop serving, drop open connections, cut injected delays short, remove the certificate files."""
        if self._closed:
            return
        self._closed = True
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._server.close_connections()
        self._thread.join(timeout=5)
        shutil.rmtree(self._tmp, ignore_errors=True)

    # ---------------------------------------------------------------------------------------- kubeconfig

    @property
    def wrong_ca_pem(self) -> Path:
        """A CA that did not sign the server certificate (created on first use)."""
        with self._lock:
            if self._wrong_ca_pem is None:
                self._wrong_ca_pem = self._tmp / "wrong-ca.pem"
                trustme.CA().cert_pem.write_to_path(str(self._wrong_ca_pem))
            return self._wrong_ca_pem

    def kubeconfig(
        self,
        path: str | Path,
        *,
        ca: bool = True,
        client_cert: bool | None = None,
        token: bool | str = True,
        server: str | None = None,
        namespace: str | None = None,
        wrong_ca: bool = False,
    ) -> Path:
        """Write a kubeconfig for this server and return its path.

        ``ca``: trust the cluster CA (False: ``insecure-skip-tls-verify``); ``wrong_ca``: trust another
        CA instead, so TLS verification fails. ``client_cert``: include the client certificate (None:
        only in mtls mode). ``token``: True = this server's token, a string = that token, False = none.
        ``server``: override the URL; ``namespace``: the context's namespace.
        """
        path = Path(path)
        cluster: Obj = {"server": server or self.url}
        if self.tls != "none":
            if wrong_ca:
                cluster["certificate-authority"] = str(self.wrong_ca_pem)
            elif ca:
                cluster["certificate-authority"] = str(self.ca_pem)
            else:
                cluster["insecure-skip-tls-verify"] = True
        elif wrong_ca:
            raise ValueError("wrong_ca needs a TLS server (tls='tls' or 'mtls')")
        user: Obj = {}
        token_value = self.token if token is True else (token or None)
        if token_value:
            user["token"] = token_value
        if client_cert if client_cert is not None else self.tls == "mtls":
            if self.client_cert_pem is None or self.client_key_pem is None:
                raise ValueError("client certificates exist only in mtls mode")
            user["client-certificate"] = str(self.client_cert_pem)
            user["client-key"] = str(self.client_key_pem)
        context: Obj = {"cluster": "fake-kube", "user": "fake-user"}
        if namespace:
            context["namespace"] = namespace
        document = {
            "apiVersion": "v1",
            "kind": "Config",
            "preferences": {},
            "clusters": [{"name": "fake-kube", "cluster": cluster}],
            "users": [{"name": "fake-user", "user": user}],
            "contexts": [{"name": "fake", "context": context}],
            "current-context": "fake",
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        return path

    # ------------------------------------------------------------------------------------------- faults

    def inject(
        self,
        method: str | None = "POST",
        path: str = r".*",
        status: int | None = 500,
        times: int | None = 1,
        headers: dict[str, str] | None = None,
        body: Any = None,
        delay: float = 0.0,
        match_name: str | None = None,
        rate: float = 1.0,
        rng: random.Random | None = None,
        drop: bool = False,
    ) -> Fault:
        """Answer matching requests with ``status`` instead of handling them.

        ``method`` None matches any method; ``path`` is a regex searched in the path (no query string);
        ``match_name`` also requires that name in the JSON body's ``metadata.name``. Each match uses one
        of ``times`` (None: forever). The answer has ``headers`` and ``body`` (a dict is sent as JSON,
        str/bytes as is; a callable is called with the Request and its result sent so, as a server that
        echoes the request back; default: a Status for ``status``). ``delay`` seconds pass before answering; with
        ``status`` None the request is then handled normally; ``drop`` closes the connection instead, without
        an answer. ``rate`` below 1 answers only that share of the matching requests, drawn from ``rng`` (one
        seeded generator: the same requests in the same order get the same answers); the others go on to the
        next fault. Faults are checked before authentication, in order of registration. Returns the Fault,
        whose ``hits`` counts the requests it answered.
        """
        fault = Fault(
            method=method,
            path=re.compile(path),
            status=status,
            times=times,
            headers=dict(headers or {}),
            body=body,
            delay=delay,
            match_name=match_name,
            rate=rate,
            rng=rng,
            drop=drop,
        )
        with self._lock:
            self._faults.append(fault)
        return fault

    def _take_fault(self, method: str, path: str, body: Any) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path, body) and fault.draw():
                    fault.hits += 1
                    return fault
        return None

    # ------------------------------------------------------------------------------------------ records

    def requests_for(self, method: str | None, path_regex: str = r".*") -> list[Request]:
        """The recorded requests with this method (None: any) whose path matches ``path_regex`` (search)."""
        pattern = re.compile(path_regex)
        with self._lock:
            return [
                r for r in self.requests if (method is None or r.method == method.upper()) and pattern.search(r.path)
            ]

    def clear_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    def _note_tls_failure(self, exc: BaseException) -> None:
        with self._lock:
            self.tls_failures.append(f"{type(exc).__name__}: {exc}")
        self._tls_failed.set()

    def wait_for_tls_failure(self, timeout: float = 5.0) -> bool:
        """Whether the server noted a TLS handshake failure within ``timeout`` seconds."""
        return self._tls_failed.wait(timeout)

    def _note_server_error(self, text: str) -> None:
        with self._lock:
            self.server_errors.append(text)

    def _now(self) -> str:
        return _stamp(self.clock())

    # ------------------------------------------------------------------------------------- test helpers

    def add(self, obj: Obj) -> Obj:
        """Store ``obj`` as is (replacing one of the same name), filling in server-set metadata.

        The resource follows from ``apiVersion``/``kind`` (Job, Template, ResourceQuota, Pod, ConfigMap);
        the namespace is ``metadata.namespace``. Returns a copy of the stored object.
        """
        resource = _KIND_TO_RESOURCE.get((obj.get("apiVersion", ""), obj.get("kind", "")))
        if resource is None:
            known = ", ".join(f"{kind} ({api_version})" for api_version, kind in _KIND_TO_RESOURCE)
            raise ValueError(f"cannot add {obj.get('apiVersion')}/{obj.get('kind')}; known: {known}")
        metadata = obj.get("metadata") or {}
        namespace, name = metadata.get("namespace"), metadata.get("name")
        if not namespace or not name:
            raise ValueError("add() needs metadata.namespace and metadata.name")
        stored = copy.deepcopy(obj)
        with self._lock:
            meta = stored["metadata"]
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", self._now())
            self._put(resource, namespace, name, stored)
            return copy.deepcopy(stored)

    def objects(self, resource: str, namespace: str | None = None) -> list[Obj]:
        """Deep copies of the stored objects of ``resource`` (all namespaces if None), sorted by name."""
        rt = self._stored_type(resource)
        with self._lock:
            namespaces = [namespace] if namespace is not None else sorted(self._store[resource])
            return [
                self._present(rt, obj)
                for ns in namespaces
                for _, obj in sorted(self._store[resource].get(ns, {}).items())
            ]

    def get(self, resource: str, namespace: str, name: str) -> Obj | None:
        """A deep copy of one stored object, or None."""
        rt = self._stored_type(resource)
        with self._lock:
            obj = self._store[resource].get(namespace, {}).get(name)
            return None if obj is None else self._present(rt, obj)

    def delete(self, resource: str, namespace: str, name: str) -> bool:
        """Remove one object; False if there was none."""
        self._stored_type(resource)
        with self._lock:
            if name not in self._store[resource].get(namespace, {}):
                return False
            self._put(resource, namespace, name, None)
            return True

    def set_job_status(
        self,
        namespace: str,
        name: str,
        condition: Literal["Complete", "Failed"] | None,
        active: int = 0,
        *,
        started: float | None = None,
        ended: float | None = None,
    ) -> Obj:
        """Write a Job's status as the Job controller would; returns a copy of the Job.

        ``condition`` "Complete" adds that condition and ``succeeded`` (= spec.completions or 1),
        "Failed" adds that condition (reason BackoffLimitExceeded) and ``failed: 1``, None leaves the Job
        running. ``active`` pods are reported as ``status.active``. Zero counts are omitted, as the API
        server omits them. ``started`` is the ``startTime`` (epoch seconds; default the Job's creation),
        ``ended`` the time of the condition and of a Complete Job's ``completionTime`` (default the clock's now).
        """
        if condition not in ("Complete", "Failed", None):
            raise ValueError(f"condition must be 'Complete', 'Failed' or None, not {condition!r}")
        with self._lock:
            stored = self._store["jobs"].get(namespace, {}).get(name)
            if stored is None:
                raise KeyError(f"no job {namespace}/{name}")
            job = copy.deepcopy(stored)  # a stored object is never changed in place: lists at its version see it
            now = self._now() if ended is None else _stamp(ended)
            start = job["metadata"].get("creationTimestamp", now) if started is None else _stamp(started)
            status: Obj = {"startTime": start}
            if active:
                status["active"] = active
            if condition is not None:
                entry: Obj = {
                    "type": condition,
                    "status": "True",
                    "lastProbeTime": now,
                    "lastTransitionTime": now,
                }
                if condition == "Complete":
                    status["succeeded"] = (job.get("spec") or {}).get("completions") or 1
                    status["completionTime"] = now
                else:
                    status["failed"] = 1
                    entry.update(reason="BackoffLimitExceeded", message="Job has reached the specified backoff limit")
                status["conditions"] = [entry]
            job["status"] = status
            self._put("jobs", namespace, name, job)
            return copy.deepcopy(job)

    # ------------------------------------------------------------------------------------------ serving

    def _serve(self, handler: _Handler) -> None:
        """Answer one HTTP request (called in the connection's thread)."""
        method = handler.command
        split = urlsplit(handler.path)
        path = split.path.rstrip("/") or "/"
        query = parse_qs(split.query, keep_blank_values=True)
        try:
            raw = _read_body(handler)
        except ValueError:
            handler.close_connection = True
            self._send(handler, 400, status_body(400, "malformed request body framing"))
            return
        body: Any = None
        body_error: ApiError | None = None
        headers = {key.lower(): value for key, value in handler.headers.items()}
        if raw and "protobuf" in headers.get("content-type", ""):
            # Only JSON is understood: kubectl's typed commands (`create configmap`) send protobuf and get 415.
            body_error = _unsupported_media_type(JSON_TYPES)
        elif raw:
            try:
                body = json.loads(raw)
            except ValueError as exc:
                body_error = _bad_request(f"the body of the request was in an unknown format: {exc}")
        subject = _subject_of(handler.connection)
        request = Request(method, path, query, headers, body, subject, handler.connection_number)
        with self._lock:
            self.requests.append(request)

        if self.latency and self._stopping.wait(self.latency):
            handler.close_connection = True
            return
        fault = self._take_fault(method, path, body)
        if fault is not None:
            if fault.delay and self._stopping.wait(fault.delay):
                handler.close_connection = True
                return
            if fault.drop:
                handler.close_connection = True
                return
            if fault.status is not None:
                self._send_fault(handler, fault, request)
                return

        code: int
        payload: Obj
        try:
            if not self._authenticated(headers, subject):
                raise ApiError(401, "Unauthorized")
            if body_error is not None:
                raise body_error
            if method == "GET" and path == "/openapi/v2":
                self._send_raw(handler, 200, *_openapi_v2(headers.get("accept", "")))
                return
            code, payload = self._route(method, path, query, body, headers)
        except ApiError as exc:
            code, payload = exc.code, exc.body
        except Exception:
            self._note_server_error(traceback.format_exc())
            code, payload = 500, status_body(500, "Internal error occurred: FakeKube bug, see server_errors")
        self._send(handler, code, payload)

    def _authenticated(self, headers: dict[str, str], subject: str | None) -> bool:
        if self.token is None or subject is not None:  # a verified client certificate authenticates
            return True
        scheme, _, credential = headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and credential.strip() == self.token

    def _send(self, handler: _Handler, code: int, payload: Obj, headers: dict[str, str] | None = None) -> None:
        self._send_raw(handler, code, json.dumps(payload).encode(), "application/json", headers)

    @staticmethod
    def _send_raw(
        handler: _Handler, code: int, data: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        extra = dict(headers or {})
        handler.send_response(code)
        handler.send_header("Content-Type", extra.pop("Content-Type", content_type))
        handler.send_header("Cache-Control", "no-cache, private")
        for key, value in extra.items():
            handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _send_fault(self, handler: _Handler, fault: Fault, request: Request) -> None:
        assert fault.status is not None
        method, path = request.method, request.path
        payload = fault.body(request) if callable(fault.body) else fault.body
        if isinstance(payload, (str, bytes)):
            data = payload.encode() if isinstance(payload, str) else payload
            self._send_raw(handler, fault.status, data, "text/plain; charset=utf-8", fault.headers)
            return
        if payload is None:
            details: Obj = {}
            retry_after = {k.lower(): v for k, v in fault.headers.items()}.get("retry-after", "")
            if retry_after.isdigit():
                details["retryAfterSeconds"] = int(retry_after)
            payload = status_body(
                fault.status, f"FakeKube injected {fault.status} for {method} {path}", details=details
            )
        self._send(handler, fault.status, payload, fault.headers)

    # ------------------------------------------------------------------------------------------- routing

    def _route(
        self, method: str, path: str, query: dict[str, list[str]], body: Any, headers: dict[str, str]
    ) -> tuple[int, Obj]:
        accept = headers.get("accept", "")
        wanted = PLAIN
        if method == "GET" and self._discovery(path) is None and self.representations != "ignored":
            match = _CORE_PATH_RE.fullmatch(path)
            wanted_or_none = negotiate(accept, listing=match is not None and match["name"] is None)
            if wanted_or_none is None or (self.representations == "refused" and asks_for_a_representation(accept)):
                raise ApiError(406, NOT_ACCEPTABLE, "NotAcceptable")
            wanted = wanted_or_none
        include_object = _first(query, "includeObject") or "Metadata"
        if wanted.as_ == TABLE and include_object not in INCLUDE_OBJECT:
            supported = ", ".join(f'"{value}"' for value in INCLUDE_OBJECT)
            raise _bad_request(f'includeObject: Unsupported value: "{include_object}": supported values: {supported}')
        code, payload = self._answer(method, path, query, body, headers)
        kind, api_version = str(payload.get("kind", "")), str(payload.get("apiVersion", ""))
        listed = kind.endswith("List") and isinstance(payload.get("items"), list)
        rt = next(
            (
                rt
                for rt in RESOURCES.values()
                if (rt.kind, rt.api_version) == (kind.removesuffix("List") if listed else kind, api_version)
            ),
            None,
        )
        if wanted.as_ is None or rt is None:  # the object or list itself; discovery and the like have no other
            return code, payload
        objects = payload["items"] if listed else [payload]
        metadata = dict(payload.get("metadata") or {}) if listed else {}
        if not listed:
            metadata["resourceVersion"] = str(payload["metadata"].get("resourceVersion", ""))
        if wanted.as_ == TABLE:
            table = make_table(
                rt,
                objects,
                metadata,
                include_object=include_object,
                version=wanted.version,
                job_status_column=self.job_status_column,
                now=self.clock(),
            )
            return code, table
        if wanted.as_ == METADATA:
            return code, _partial(payload, wanted.version)
        items = [_partial(obj, wanted.version) for obj in objects]
        return code, {
            "kind": METADATA_LIST,
            "apiVersion": f"{META_GROUP}/{wanted.version}",
            "metadata": metadata,
            "items": items,
        }

    def _answer(
        self, method: str, path: str, query: dict[str, list[str]], body: Any, headers: dict[str, str]
    ) -> tuple[int, Obj]:
        discovery = self._discovery(path)
        if discovery is not None:
            if method != "GET":
                raise ApiError(405, "the server does not allow this method on the requested resource")
            return 200, discovery
        match = _CORE_PATH_RE.fullmatch(path)
        if match is None:
            raise ApiError(404, _NOT_FOUND)
        group, version = ("", match["core_version"]) if match["core_version"] else (match["group"], match["version"])
        rt = RESOURCES.get(match["resource"])
        if rt is None or (rt.group, rt.version) != (group, version):
            raise ApiError(404, _NOT_FOUND)
        namespace, name, subresource = match["namespace"], match["name"], match["subresource"]
        if namespace is not None and not rt.namespaced:
            raise ApiError(404, _NOT_FOUND)
        if subresource is not None and (subresource != "status" or not rt.has_status):
            raise ApiError(404, _NOT_FOUND)
        if "true" in query.get("watch", []):
            raise _bad_request("FakeKube does not support watch")

        if method == "GET":
            verb = "get" if name is not None else "list"
        elif method == "POST" and name is None:
            verb = "create"
        elif method == "DELETE" and name is not None and subresource is None:
            verb = "delete"
        elif method == "PUT" and name is not None:
            verb = "update"
        elif method == "PATCH" and name is not None:
            verb = "patch"
        else:
            verb = ""
        if verb not in rt.verbs or (rt.namespaced and namespace is None and verb != "list"):
            raise ApiError(405, "the server does not allow this method on the requested resource")

        if rt.name == "namespaces":
            return 200, (self._namespace(name) if name is not None else self._namespace_list())
        if verb == "list":
            return 200, self._list(rt, namespace, query)
        assert namespace is not None
        if verb == "get":
            assert name is not None
            return 200, self._get_one(rt, namespace, name)
        if verb == "delete":
            assert name is not None
            return 200, self._delete_one(rt, namespace, name, query, body)
        if verb == "update":
            assert name is not None
            if subresource == "status":
                return 200, self._update_status(rt, namespace, name, body, query)
            return 200, self._update(rt, namespace, name, body, query)
        if verb == "patch":
            assert name is not None
            return 200, self._patch(rt, namespace, name, body, query, headers, status=subresource == "status")
        return 201, self._create(rt, namespace, body, query)

    def _discovery(self, path: str) -> Obj | None:
        if path == "/version":
            return dict(KUBE_VERSION)
        if path == "/api":
            return {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": f"127.0.0.1:{self.port}"}],
            }
        if path == "/apis":
            return {
                "kind": "APIGroupList",
                "apiVersion": "v1",
                "groups": [self._api_group(g) for g, _ in GROUP_VERSIONS],
            }
        if path == "/api/v1":
            return self._resource_list("", "v1")
        for group, version in GROUP_VERSIONS:
            if path == f"/apis/{group}":
                return {"kind": "APIGroup", "apiVersion": "v1", **self._api_group(group)}
            if path == f"/apis/{group}/{version}":
                return self._resource_list(group, version)
        return None

    @staticmethod
    def _api_group(group: str) -> Obj:
        versions = [{"groupVersion": f"{g}/{v}", "version": v} for g, v in GROUP_VERSIONS if g == group]
        return {"name": group, "versions": versions, "preferredVersion": versions[0]}

    @staticmethod
    def _resource_list(group: str, version: str) -> Obj:
        # Sorted by name, as the API server lists them. Order matters to clients: kubectl maps a kind to the
        # last resource listed with it.
        resources = []
        for rt in sorted(RESOURCES.values(), key=lambda rt: rt.name):
            if (rt.group, rt.version) != (group, version):
                continue
            entry: Obj = {
                "name": rt.name,
                "singularName": rt.kind.lower() if rt.stored else "",
                "namespaced": rt.namespaced,
                "kind": rt.kind,
                "verbs": list(rt.verbs),
            }
            if rt.short_names:
                entry["shortNames"] = list(rt.short_names)
            resources.append(entry)
            if rt.has_status:
                status: Obj = {"name": f"{rt.name}/status", "singularName": "", "namespaced": rt.namespaced}
                resources.append({**status, "kind": rt.kind, "verbs": ["get", "patch", "update"]})
        group_version = f"{group}/{version}" if group else version
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": group_version,
            "resources": resources,
        }

    # ------------------------------------------------------------------------------------------- storage

    def _stored_type(self, resource: str) -> ResourceType:
        rt = RESOURCES.get(resource)
        if rt is None or not rt.stored:
            raise ValueError(f"unknown resource {resource!r}; known: {', '.join(STORED)}")
        return rt

    def _next_resource_version(self) -> str:
        with self._lock:
            self._resource_version += 1
            return str(self._resource_version)

    def _put(self, resource: str, namespace: str, name: str, obj: Obj | None) -> None:
        """Store ``obj`` under a new resourceVersion (None: remove the object), remembering what it replaced, so
        that a list at an earlier resourceVersion is still answered as it was then (call with the lock held). A
        stored object is never changed in place afterwards."""
        bucket = self._store[resource].setdefault(namespace, {})
        version = self._next_resource_version()
        self._changes.append(_Change(int(version), resource, namespace, name, bucket.get(name)))
        if obj is None:
            bucket.pop(name, None)
        else:
            obj["metadata"]["resourceVersion"] = version
            bucket[name] = obj

    def _snapshot(self, resource: str, namespace: str | None, at: int) -> list[tuple[str, Obj]]:
        """The objects of ``resource`` in ``namespace`` (all when None) as they were at resourceVersion ``at``,
        keyed ``namespace/name`` and sorted by key, as etcd lists them (call with the lock held)."""
        cached = self._snapshots.get((resource, namespace, at))
        if cached is not None and at == self._resource_version:
            return cached
        buckets = self._store[resource]
        state = {
            (ns, name): obj
            for ns, bucket in buckets.items()
            if namespace is None or ns == namespace
            for name, obj in bucket.items()
        }
        for change in reversed(self._changes):
            if change.version <= at:
                break
            if change.resource != resource or (namespace is not None and change.namespace != namespace):
                continue
            if change.before is None:
                state.pop((change.namespace, change.name), None)
            else:
                state[(change.namespace, change.name)] = change.before
        snapshot = sorted((f"{ns}/{name}", obj) for (ns, name), obj in state.items())
        if at == self._resource_version:  # nothing changed since: the next pages of this list read it again
            self._snapshots = {(resource, namespace, at): snapshot}
        return snapshot

    def _present(self, rt: ResourceType, obj: Obj, *, in_list: bool = False) -> Obj:
        """A copy of a stored object as the API shows it (call with the lock held)."""
        shown = copy.deepcopy(obj)
        if rt.name == "resourcequotas":
            hard = (shown.get("spec") or {}).get("hard") or {}
            if hard:
                status = shown.setdefault("status", {})
                status["hard"] = dict(hard)
                if JOB_COUNT_QUOTA in hard:
                    namespace = shown["metadata"]["namespace"]
                    used = len(self._store["jobs"].get(namespace, {}))
                    status["used"] = {**(status.get("used") or {}), JOB_COUNT_QUOTA: str(used)}
        if in_list:
            shown.pop("kind", None)
            shown.pop("apiVersion", None)
        return shown

    def _list(self, rt: ResourceType, namespace: str | None, query: dict[str, list[str]]) -> Obj:
        label_selector = _first(query, "labelSelector")
        field_selector = _first(query, "fieldSelector")
        label_tests = parse_label_selector(label_selector)
        field_tests = parse_field_selector(field_selector, rt.name)
        try:
            limit = int(_first(query, "limit") or 0)
        except ValueError:
            raise _bad_request(f"invalid limit: {_first(query, 'limit')!r}") from None
        with self._lock:
            resource_version, after = list_version(query, self._resource_version, limit)
            keyed = self._snapshot(rt.name, namespace, resource_version)
            start = 0 if after is None else bisect.bisect_right(keyed, after, key=lambda pair: pair[0])
            matching: list[tuple[str, Obj]] = []
            for key, obj in itertools.islice(keyed, start, None):  # a page reads no further than it needs
                if all(test(obj["metadata"].get("labels") or {}) for test in label_tests) and all(
                    test(obj) for test in field_tests
                ):
                    matching.append((key, obj))
                    if 0 < limit < len(matching):
                        break
            page = matching[:limit] if limit > 0 else matching
            items = [self._present(rt, obj, in_list=True) for _, obj in page]
        metadata: Obj = {"resourceVersion": str(resource_version)}
        if len(matching) > len(page):
            metadata["continue"] = _encode_continue(resource_version, page[-1][0])
            if not label_selector and not field_selector:
                metadata["remainingItemCount"] = len(keyed) - start - len(page)
        return {"kind": f"{rt.kind}List", "apiVersion": rt.api_version, "metadata": metadata, "items": items}

    def _get_one(self, rt: ResourceType, namespace: str, name: str) -> Obj:
        with self._lock:
            obj = self._store[rt.name].get(namespace, {}).get(name)
            if obj is None:
                raise ApiError(404, f'{rt.qualified_name} "{name}" not found', details=rt.details(name))
            return self._present(rt, obj)

    def _delete_one(self, rt: ResourceType, namespace: str, name: str, query: dict[str, list[str]], body: Any) -> Obj:
        dry_run = _dry_run(query, body)
        policy = _first(query, "propagationPolicy") or (
            body.get("propagationPolicy") if isinstance(body, dict) else None
        )
        with self._lock:
            bucket = self._store[rt.name].get(namespace, {})
            obj = bucket.get(name)
            if obj is None:
                raise ApiError(404, f'{rt.qualified_name} "{name}" not found', details=rt.details(name))
            uid = obj["metadata"].get("uid", "")
            if not dry_run:
                self._put(rt.name, namespace, name, None)
                if policy in ("Background", "Foreground"):
                    pods = self._store["pods"].get(namespace, {})
                    for pod_name, pod in list(pods.items()):
                        if any(ref.get("uid") == uid for ref in pod["metadata"].get("ownerReferences") or []):
                            self._put("pods", namespace, pod_name, None)
        return status_body(200, "", details=rt.details(name, uid=uid))

    def _create(self, rt: ResourceType, namespace: str, body: Any, query: dict[str, list[str]]) -> Obj:
        dry_run = _dry_run(query, None)
        obj = self._admit_body(rt, namespace, body)
        meta = obj["metadata"]
        with self._lock:
            name = meta.get("name") or ""
            self._validate_name(rt, name)
            if rt.name == "jobs":
                self._check_job_quota(namespace, name)
            bucket = self._store[rt.name].setdefault(namespace, {})
            if name in bucket:
                raise ApiError(409, f'{rt.qualified_name} "{name}" already exists', "AlreadyExists", rt.details(name))
            meta["namespace"] = namespace
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = self._now()
            for server_owned in ("deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
                meta.pop(server_owned, None)
            if rt.name in ("jobs", "resourcequotas"):
                obj["status"] = {}
            elif rt.name == "pods":  # kept when given, so that a pod that ended can be staged (see module doc)
                obj["status"] = obj.get("status") or {"phase": "Pending"}
            if dry_run:
                meta.pop("resourceVersion", None)
                return self._present(rt, obj)
            self._put(rt.name, namespace, name, obj)
            return self._present(rt, obj)

    def _update(self, rt: ResourceType, namespace: str, name: str, body: Any, query: dict[str, list[str]]) -> Obj:
        return self._write(rt, namespace, name, self._admit_body(rt, namespace, body), query, status=False)

    def _update_status(
        self, rt: ResourceType, namespace: str, name: str, body: Any, query: dict[str, list[str]]
    ) -> Obj:
        """PUT of ``NAME/status``: only the body's ``status`` is taken; the rest stays as stored."""
        return self._write(rt, namespace, name, self._admit_body(rt, namespace, body), query, status=True)

    def _patch(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        body: Any,
        query: dict[str, list[str]],
        headers: dict[str, str],
        *,
        status: bool,
    ) -> Obj:
        """PATCH of ``NAME`` or ``NAME/status``: apply the patch to the stored object, then write it as an update.

        The patched object carries the stored ``resourceVersion`` unless the patch sets one, so a patch is
        unconditional unless it asks for a precondition, as on the API server.
        """
        content_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        with self._lock:  # read, patch and write as one step
            current = self._get_one(rt, namespace, name)
            try:
                patched = apply_patch(current, body, content_type)
            except ApiError as exc:
                if exc.code != 422:
                    raise
                cause = {"reason": "FieldValueInvalid", "message": str(exc), "field": "patch"}
                raise ApiError(422, str(exc), "Invalid", rt.details(name, causes=[cause])) from None
            obj = self._admit_body(rt, namespace, patched)
            return self._write(rt, namespace, name, obj, query, status=status)

    def _write(
        self, rt: ResourceType, namespace: str, name: str, obj: Obj, query: dict[str, list[str]], *, status: bool
    ) -> Obj:
        """Store an admitted object over the stored one of ``name``: the whole object but a status subresource's
        ``status`` (``status`` False), or only ``status`` (True). ``uid`` and ``creationTimestamp`` are kept."""
        dry_run = _dry_run(query, None)
        meta = obj["metadata"]
        if meta.get("name") != name:
            raise _bad_request(
                f"the name of the object ({meta.get('name') or ''}) does not match the name on the URL ({name})"
            )
        self._validate_name(rt, name)
        with self._lock:
            bucket = self._store[rt.name].setdefault(namespace, {})
            stored = bucket.get(name)
            if stored is None:
                raise ApiError(404, f'{rt.qualified_name} "{name}" not found', details=rt.details(name))
            current = stored["metadata"].get("resourceVersion")
            if meta.get("resourceVersion") not in (None, "", current):
                raise ApiError(
                    409,
                    f'Operation cannot be fulfilled on {rt.qualified_name} "{name}": the object has been modified; '
                    "please apply your changes to the latest version and try again",
                    "Conflict",
                    rt.details(name),
                )
            if status:
                new_status = obj.get("status") or {}
                obj = copy.deepcopy(stored)
                obj["status"] = copy.deepcopy(new_status)
                meta = obj["metadata"]
            else:
                meta["namespace"] = namespace
                for kept in ("uid", "creationTimestamp"):
                    meta[kept] = stored["metadata"].get(kept)
                if rt.has_status:  # status is a subresource: a write of the object leaves it
                    obj["status"] = copy.deepcopy(stored.get("status") or {})
            if dry_run:
                meta["resourceVersion"] = current
                return self._present(rt, obj)
            self._put(rt.name, namespace, name, obj)
            return self._present(rt, obj)

    @staticmethod
    def _admit_body(rt: ResourceType, namespace: str, body: Any) -> Obj:
        """Check kind, apiVersion and namespace of a create body; return a copy with them filled in."""
        if not isinstance(body, dict):
            raise _bad_request("the body of the request was in an unknown format: expected a JSON object")
        obj = copy.deepcopy(body)
        if obj.get("apiVersion") not in (None, "", rt.api_version):
            raise _bad_request(
                f"the API version in the data ({obj['apiVersion']}) does not match the expected API version "
                f"({rt.api_version})"
            )
        if obj.get("kind") not in (None, "", rt.kind):
            raise _bad_request(f'{obj["kind"]} in version "{rt.version}" cannot be handled as a {rt.kind}')
        obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise _bad_request("the body of the request was in an unknown format: metadata is not an object")
        if meta.get("namespace") not in (None, "", namespace):
            raise _bad_request("the namespace of the provided object does not match the namespace sent on the request")
        if rt.name == "configmaps":
            size = sum(len(str(k).encode()) + len(str(v).encode()) for k, v in (obj.get("data") or {}).items())
            size += sum(len(str(k)) + len(str(v)) * 3 // 4 for k, v in (obj.get("binaryData") or {}).items())
            if size > CONFIGMAP_MAX_BYTES:
                name = meta.get("name") or ""
                message = f"Too long: must have at most {CONFIGMAP_MAX_BYTES} bytes"
                cause = {"reason": "FieldValueTooLong", "message": message, "field": "[]"}
                raise ApiError(
                    422,
                    f'ConfigMap "{name}" is invalid: []: {message}',
                    "Invalid",
                    rt.details(name, kind=rt.kind, causes=[cause]),
                )
        return obj

    @staticmethod
    def _validate_name(rt: ResourceType, name: str) -> None:
        def invalid(message: str, cause_reason: str, field_path: str = "metadata.name") -> ApiError:
            cause = {"reason": cause_reason, "message": message, "field": field_path}
            return ApiError(
                422,
                f'{rt.qualified_kind} "{name}" is invalid: {field_path}: {message}',
                "Invalid",
                rt.details(name, kind=rt.kind, causes=[cause]),
            )

        if not name:
            raise invalid("Required value: name or generateName is required", "FieldValueRequired")
        if len(name) > 253 or not _DNS_SUBDOMAIN_RE.fullmatch(name):
            raise invalid(
                f'Invalid value: "{name}": a DNS-1123 subdomain must consist of lower case alphanumeric '
                "characters, '-' or '.', and must start and end with an alphanumeric character",
                "FieldValueInvalid",
            )
        if rt.name == "jobs" and len(name) > 63:
            raise invalid(
                f'Invalid value: "{name}": must be no more than 63 characters',
                "FieldValueInvalid",
                "spec.template.labels",
            )

    def _check_job_quota(self, namespace: str, name: str) -> None:
        """The ResourceQuota admission check for count/jobs.batch (call with the lock held)."""
        used = len(self._store["jobs"].get(namespace, {}))
        quotas = self._store["resourcequotas"].get(namespace, {})
        for quota_name, quota in sorted(quotas.items()):
            hard = ((quota.get("spec") or {}).get("hard") or {}).get(JOB_COUNT_QUOTA)
            if hard is None or used + 1 <= parse_quantity(hard):
                continue
            raise ApiError(
                403,
                f'jobs.batch "{name}" is forbidden: exceeded quota: {quota_name}, '
                f"requested: {JOB_COUNT_QUOTA}=1, used: {JOB_COUNT_QUOTA}={used}, "
                f"limited: {JOB_COUNT_QUOTA}={hard}",
                "Forbidden",
                RESOURCES["jobs"].details(name),
            )

    def _namespace(self, name: str) -> Obj:
        return {
            "kind": "Namespace",
            "apiVersion": "v1",
            "metadata": {
                "name": name,
                "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"fakekube:{self.port}:{name}")),
                "resourceVersion": "1",
                "creationTimestamp": self._started_at,
            },
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        }

    def _namespace_list(self) -> Obj:
        with self._lock:
            names = {"default"}
            for buckets in self._store.values():
                names.update(ns for ns, objs in buckets.items() if objs)
        items = []
        for name in sorted(names):
            item = self._namespace(name)
            del item["kind"], item["apiVersion"]
            items.append(item)
        return {
            "kind": "NamespaceList",
            "apiVersion": "v1",
            "metadata": {"resourceVersion": "1"},
            "items": items,
        }


def _first(query: dict[str, list[str]], key: str) -> str:
    values = query.get(key)
    return values[0] if values else ""


def _dry_run(query: dict[str, list[str]], body: Any) -> bool:
    values = list(query.get("dryRun", []))
    if isinstance(body, dict) and isinstance(body.get("dryRun"), list):
        values += body["dryRun"]
    for value in values:
        if value != "All":
            raise _bad_request(f'dryRun: Unsupported value: "{value}": supported values: "All"')
    return bool(values)


# ------------------------------------------------------------------------------------------ command line

PROG = "python -m tests.fakes.kube"


class LoadError(Exception):
    """A file given to ``--load`` that cannot be read or stored; the message names the file."""


def load_objects(fake: FakeKube, path: Path, namespace: str) -> list[str]:
    """Create every object in ``path`` (YAML documents or JSON; a ``...List`` is unpacked) as a client's create
    would; objects that name no namespace go to ``namespace``. Returns ``resource namespace/name`` per object."""
    try:
        documents = [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]
    except OSError as exc:
        raise LoadError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        problem = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise LoadError(f"{path}: not YAML or JSON: {problem}") from None
    objects: list[Any] = []
    for document in documents:
        if isinstance(document, dict) and str(document.get("kind", "")).endswith("List") and "items" in document:
            objects.extend(document["items"] or [])
        else:
            objects.append(document)
    loaded: list[str] = []
    for obj in objects:
        if not isinstance(obj, dict):
            raise LoadError(f"{path}: an object is a {type(obj).__name__}, not a mapping")
        resource = _KIND_TO_RESOURCE.get((obj.get("apiVersion", ""), obj.get("kind", "")))
        if resource is None:
            known = ", ".join(f"{kind} ({api_version})" for api_version, kind in _KIND_TO_RESOURCE)
            raise LoadError(f"{path}: cannot load {obj.get('kind')} ({obj.get('apiVersion')}); known: {known}")
        rt = RESOURCES[resource]
        target = (obj.get("metadata") or {}).get("namespace") or namespace
        try:
            created = fake._create(rt, target, obj, {})
        except ApiError as exc:
            raise LoadError(f"{path}: {exc}") from None
        loaded.append(f"{rt.qualified_name} {target}/{created['metadata']['name']}")
    return loaded


# Faults given on the command line: a RULE is VERBS:RESOURCE[/NAME], as RBAC names what a client may do.

VERB_METHODS = {"get": "GET", "list": "GET", "create": "POST", "update": "PUT", "patch": "PATCH", "delete": "DELETE"}
HANG_SECONDS = 300.0  # a "timeout" answer: the request is held this long, then its connection closed unanswered
RETRY_AFTER_SECONDS = 1  # what a 429 answer asks the client to wait, as the API server's priority and fairness does
STAND_IN_USER = "fake-user"  # the user the kubeconfig names, as a Forbidden message names the requester
QUOTA_NAME = "stand-in"  # the ResourceQuota --quota creates
SERVING_LOCK = "stand-in.lock"  # beside the files of --tls-dir while a stand-in serves with them (its pid inside)
FAULTS_GRAMMAR = """\
Each flag may be given again. RULE is VERBS:RESOURCE[/NAME], as RBAC names what a client may do:
  VERBS     get, list, create, update, patch or delete, several joined by commas, or * for all
  RESOURCE  configmaps (cm), jobs (jobs.batch), pods (po), resourcequotas (quota), templates, namespaces, or *
  NAME      only the object of that name (for create, the name in the body)
The first matching rule answers (--forbid before --fail, each in the order given); the status subresource is
never matched; faults are answered before authentication."""
FAULTS_EXAMPLES = """\
examples:
  --forbid create,update:configmaps/graph-refresh-ledger    the ledger cannot be written
  --fail create:jobs=500@0.3 --latency 0.2                  a slow server that fails 3 creates in 10
  --fail list:jobs=timeout                                  listing Jobs never answers
  --quota count/jobs.batch=5                                at most 5 Jobs in the context namespace
"""


@dataclass(frozen=True)
class Rule:
    """What a fault given on the command line applies to: ``VERBS:RESOURCE[/NAME]``."""

    verbs: tuple[str, ...]
    resources: tuple[ResourceType, ...]
    name: str | None

    @classmethod
    def parse(cls, text: str) -> Rule:
        """The rule ``text`` names; ValueError says what is wrong with it."""
        verbs_text, colon, target = text.partition(":")
        resource_text, slash, name = target.partition("/")
        if not colon or not verbs_text or not resource_text or (slash and not name):
            raise ValueError(f"{text!r} is not VERBS:RESOURCE[/NAME] (such as update:configmaps/graph-refresh-ledger)")
        verbs = tuple(VERB_METHODS) if verbs_text == "*" else tuple(v.strip() for v in verbs_text.split(","))
        if unknown := [verb for verb in verbs if verb not in VERB_METHODS]:
            raise ValueError(f"{text!r}: {unknown[0]!r} is not a verb ({', '.join(VERB_METHODS)} or *)")
        if resource_text == "*":
            resources = tuple(RESOURCES.values())
        else:
            found = [rt for rt in RESOURCES.values() if resource_text in (rt.name, rt.qualified_name, *rt.short_names)]
            if not found:
                raise ValueError(f"{text!r}: {resource_text!r} is not a resource ({', '.join(RESOURCES)} or *)")
            resources = tuple(found)
            if missing := [verb for verb in verbs if verb not in found[0].verbs]:
                raise ValueError(f"{text!r}: the stand-in serves no {missing[0]} of {found[0].name}")
        return cls(verbs, resources, name or None)

    def inject(self, fake: FakeKube, status: int | None, body: Any = None, **options: Any) -> None:
        """Register one fault with ``fake`` per verb and resource of the rule (``options``: ``inject``'s)."""
        for rt in self.resources:
            prefix = f"/apis/{rt.group}/{rt.version}" if rt.group else f"/api/{rt.version}"
            collection = f"^{re.escape(prefix)}(?:/namespaces/[^/]+)?/{re.escape(rt.name)}"
            one = f"/{re.escape(self.name)}$" if self.name else "/[^/]+$"
            for verb in (v for v in self.verbs if v in rt.verbs):
                if verb == "list" and self.name:
                    continue  # a list names no object
                path = collection + ("$" if verb in ("list", "create") else one)
                answer = body(verb, rt) if callable(body) else body
                name = self.name if verb == "create" else None
                fake.inject(VERB_METHODS[verb], path, status, body=answer, match_name=name, **options)


def _forbidden(verb: str, rt: ResourceType) -> Callable[[Request], Obj]:
    """The Status RBAC answers ``verb`` on ``rt`` with, for the request it refuses."""

    def answer(request: Request) -> Obj:
        match = _CORE_PATH_RE.fullmatch(request.path)
        namespace = match["namespace"] if match else None
        name = match["name"] if match and verb not in ("list", "create") else None
        where = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
        if rt.name == "namespaces" and name:
            where = "at the cluster scope"
        what = f'{rt.qualified_name} "{name}"' if name else rt.qualified_name
        message = (
            f'{what} is forbidden: User "{STAND_IN_USER}" cannot {verb} resource "{rt.name}" in API group '
            f'"{rt.group}" {where}'
        )
        details: Obj = {"name": name} if name else {}
        details.update({"group": rt.group} if rt.group else {}, kind=rt.name)
        return status_body(403, message, "Forbidden", details)

    return answer


def _failure(status: int, rule: str) -> Callable[[str, ResourceType], Callable[[Request], Obj]]:
    """The Status a ``--fail`` rule answers with: worded as the API server words that status."""

    def for_verb(verb: str, rt: ResourceType) -> Callable[[Request], Obj]:
        def answer(request: Request) -> Obj:
            match = _CORE_PATH_RE.fullmatch(request.path)
            metadata = request.body.get("metadata") if isinstance(request.body, dict) else None
            name = str((metadata or {}).get("name", "")) if verb == "create" else (match["name"] if match else "")
            details: Obj = rt.details(name)
            if not name:  # a list names no object
                del details["name"]
            if status == 409 and verb == "create":
                return status_body(409, f'{rt.qualified_name} "{name}" already exists', "AlreadyExists", details)
            if status == 409:
                message = (
                    f'Operation cannot be fulfilled on {rt.qualified_name} "{name}": the object has been modified; '
                    "please apply your changes to the latest version and try again"
                )
                return status_body(409, message, "Conflict", details)
            if status == 429:
                details["retryAfterSeconds"] = RETRY_AFTER_SECONDS
                return status_body(429, "Too many requests, please try again later.", details=details)
            told = f"the stand-in's --fail {rule}"
            return status_body(status, f"Internal error occurred: {told}" if status == 500 else told, details=details)

        return answer

    return for_verb


def add_faults(fake: FakeKube, forbid: list[str], fail: list[str], seed: int) -> list[str]:
    """Register the faults of ``--forbid`` and ``--fail`` rules with ``fake``, in the order given (forbidden
    first); returns one line describing each. ValueError names a rule that cannot be read."""
    described = []
    for text in forbid:
        try:
            rule = Rule.parse(text)
        except ValueError as exc:
            raise ValueError(f"--forbid {exc}") from None
        rule.inject(fake, 403, _forbidden, times=None)
        described.append(f"fault: {text} is forbidden")
    for text in fail:
        rule_text, equals, answer_text = text.partition("=")
        answer, at, rate_text = answer_text.partition("@")
        try:
            if not equals or not answer:
                raise ValueError(f"{text!r} is not RULE=ANSWER[@RATE] (such as create:jobs=500@0.3)")
            rule = Rule.parse(rule_text)
        except ValueError as exc:
            raise ValueError(f"--fail {exc}") from None
        try:
            rate = float(rate_text) if at else 1.0
        except ValueError:
            rate = math.nan
        if not 0 < rate <= 1:
            raise ValueError(f"--fail {text!r}: the rate {rate_text!r} is not a number above 0 and at most 1")
        rng = random.Random(f"{seed}:{text}")  # one sequence per rule: adding a rule changes no other's draws
        share = "" if rate == 1 else f" ({rate:.0%} of them, seed {seed})"
        if answer == "timeout":
            rule.inject(fake, None, times=None, delay=HANG_SECONDS, drop=True, rate=rate, rng=rng)
            described.append(f"fault: {rule_text} gets no answer{share}")
            continue
        if not answer.isdigit() or not 400 <= int(answer) <= 599:
            raise ValueError(f"--fail {text!r}: {answer!r} is neither an HTTP status from 400 to 599 nor timeout")
        status = int(answer)
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if status == 429 else None
        rule.inject(fake, status, _failure(status, text), times=None, headers=headers, rate=rate, rng=rng)
        described.append(f"fault: {rule_text} is answered {status}{share}")
    return described


def quota_object(limits: list[str], namespace: str) -> Obj:
    """The ResourceQuota of ``--quota RESOURCE=QUANTITY`` flags; ValueError names one that cannot be read."""
    hard: dict[str, str] = {}
    for text in limits:
        resource, equals, quantity = (part.strip() for part in text.partition("="))
        if not equals or not resource or any(c.isspace() for c in resource):
            raise ValueError(f"{text!r} is not RESOURCE=QUANTITY (such as count/jobs.batch=5)")
        try:
            parse_quantity(quantity)
        except ValueError:
            raise ValueError(f"{text!r}: {quantity!r} is not a Kubernetes quantity") from None
        hard[resource] = quantity
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": QUOTA_NAME, "namespace": namespace},
        "spec": {"hard": hard},
    }


def serving_pid(directory: Path) -> str | None:
    """The pid of a running stand-in serving with the TLS files in ``directory``, or None; the lock file left by
    one that was killed outright is removed."""
    path = directory / SERVING_LOCK
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return os.read(fd, 32).decode(errors="replace").strip() or "?"
        path.unlink(missing_ok=True)
        return None
    finally:
        os.close(fd)


@contextlib.contextmanager
def serving_with(directory: Path) -> Iterator[None]:
    """Mark the TLS files in ``directory`` as in use while the block runs (a shared lock on a file holding our
    pid), so that ``--make-tls`` refuses to replace the CA under a running stand-in. A folder that cannot be
    written is not marked (``--make-tls`` cannot write there either)."""
    path = directory / SERVING_LOCK
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pass  # another stand-in serves with the same files: the mark stays
        else:
            path.unlink(missing_ok=True)
        os.close(fd)


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGINT/SIGTERM; the first stdout line is ``listening on URL``, then the kubeconfig is written."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="A stand-in for the Kubernetes API server (Jobs, Pods, ConfigMaps, ResourceQuotas, OpenShift "
        "Templates) on 127.0.0.1, for rehearsing runs with kubectl and graph-refresh, and for breaking on purpose. "
        "See the module doc.",
        epilog=FAULTS_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1; 0 (default) picks a free one")
    parser.add_argument(
        "--tls",
        choices=("tls", "mtls", "none"),
        default="tls",
        help="serve HTTPS (default), HTTPS requiring a client certificate from the CA, or plain HTTP",
    )
    parser.add_argument(
        "--tls-dir",
        type=Path,
        metavar="DIR",
        help="serve with the files --make-tls wrote in DIR (default: a new CA that lives as long as the server)",
    )
    parser.add_argument(
        "--make-tls",
        type=Path,
        metavar="DIR",
        help="write a new CA (ca.crt), a server pair (server.crt, server.key) and a client pair (client.crt, "
        "client.key) into DIR, private keys mode 0600, then exit",
    )
    parser.add_argument("--token", help="bearer token every request must carry (default: a new random one)")
    parser.add_argument(
        "--load",
        type=Path,
        nargs="+",
        action="extend",
        default=[],
        metavar="FILE",
        help="create the objects in these YAML or JSON files at start (Templates, ResourceQuotas, Jobs, Pods, "
        "ConfigMaps; a List is unpacked)",
    )
    parser.add_argument(
        "--namespace",
        default="default",
        help="namespace of loaded objects that name none (default: default)",
    )
    parser.add_argument(
        "--kubeconfig",
        type=Path,
        metavar="PATH",
        help="write a kubeconfig for this server to PATH once it listens (mode 0600; written whole at once, so "
        "a script can wait for the file)",
    )
    parser.add_argument("--context-namespace", metavar="NS", help="the kubeconfig context's namespace")
    faults = parser.add_argument_group("faults", FAULTS_GRAMMAR)
    faults.add_argument(
        "--forbid",
        action="append",
        default=[],
        metavar="RULE",
        help="answer 403 Forbidden, worded as RBAC refuses a missing permission",
    )
    faults.add_argument(
        "--fail",
        action="append",
        default=[],
        metavar="RULE=ANSWER[@RATE]",
        help=f"ANSWER is an HTTP status from 400 to 599 (409 is AlreadyExists to a create and Conflict otherwise, "
        f"429 says Retry-After: {RETRY_AFTER_SECONDS}) or timeout (no answer: the connection is closed after "
        f"{HANG_SECONDS:.0f} s, so the client gives up first); RATE (above 0, at most 1; default 1) is the share of "
        "matching requests that get it, drawn from --seed: the same requests in the same order get the same answers",
    )
    faults.add_argument(
        "--quota",
        action="append",
        default=[],
        metavar="RESOURCE=QUANTITY",
        help=f'a hard limit of the ResourceQuota "{QUOTA_NAME}" in the --context-namespace (else default); '
        "count/jobs.batch is enforced, other limits are there to be read",
    )
    faults.add_argument(
        "--latency",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="every request waits this long before it is answered (a slow API server)",
    )
    faults.add_argument(
        "--seed", type=int, default=0, metavar="N", help="seeds the draws of --fail's rates (default 0)"
    )
    args = parser.parse_args(argv)

    def fail(message: str) -> int:
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return 2

    if args.make_tls:
        serving = [args.load, args.kubeconfig, args.tls_dir, args.token, args.port, args.forbid, args.fail, args.quota]
        if any(serving) or args.latency:
            return fail("--make-tls writes the TLS files and exits; serve in a second command")
        if pid := serving_pid(args.make_tls):
            return fail(
                f"--make-tls {args.make_tls}: a running stand-in (pid {pid}) serves with its CA, and a new CA would "
                f'break its clients ("x509: certificate signed by unknown authority"): stop it first (kill {pid})'
            )
        try:
            files = make_kube_tls_files(args.make_tls)
        except OSError as exc:
            return fail(f"--make-tls {args.make_tls}: {exc.strerror or exc}")
        print(f"wrote {files.ca}, {files.server_cert}, {files.server_key}, {files.client_cert}, {files.client_key}")
        print(f"serve with: {PROG} --tls-dir {files.directory}")
        return 0
    if not 0 <= args.port <= 65535:
        return fail(f"--port {args.port}: not a port (0 to 65535)")
    tls_files = None
    if args.tls_dir:
        if args.tls == "none":
            return fail("--tls-dir needs --tls tls or mtls")
        tls_files = KubeTlsFiles.in_directory(args.tls_dir.resolve())
        if missing := tls_files.missing():
            names = ", ".join(p.name for p in missing)
            return fail(f"--tls-dir {args.tls_dir}: missing {names} (write them with --make-tls {args.tls_dir})")
    if args.context_namespace and not args.kubeconfig:
        return fail("--context-namespace needs --kubeconfig")
    if not (math.isfinite(args.latency) and 0 <= args.latency <= HANG_SECONDS):
        return fail(f"--latency {args.latency:g}: not a number of seconds from 0 to {HANG_SECONDS:g}")
    try:
        quota = quota_object(args.quota, args.context_namespace or "default") if args.quota else None
    except ValueError as exc:
        return fail(f"--quota {exc}")
    for path in args.load:
        if not path.is_file():
            return fail(f"--load {path}: no such file")
    token = args.token if args.token is not None else secrets.token_urlsafe(24)
    if not token or any(c.isspace() for c in token):
        return fail("--token must be non-empty and without spaces")
    try:
        fake = FakeKube(args.tls, token, port=args.port, tls_files=tls_files)
    except OSError as exc:
        return fail(f"cannot listen on 127.0.0.1:{args.port}: {exc.strerror or exc}")
    except ssl.SSLError as exc:
        return fail(f"--tls-dir {args.tls_dir}: unusable certificate or key: {exc}")
    stopped = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopped.set())
    marked = serving_with(tls_files.directory) if tls_files is not None else contextlib.nullcontext()
    with fake, marked:
        try:
            described = add_faults(fake, args.forbid, args.fail, args.seed)
        except ValueError as exc:
            return fail(str(exc))
        fake.latency = args.latency
        loaded: list[str] = []
        try:
            for path in args.load:
                loaded += load_objects(fake, path, args.namespace)
        except LoadError as exc:
            return fail(str(exc))
        if quota is not None:
            rt = RESOURCES["resourcequotas"]
            fake._create(rt, quota["metadata"]["namespace"], quota, {})
            hard = ", ".join(f"{k}={v}" for k, v in quota["spec"]["hard"].items())
            loaded.append(f"{rt.qualified_name} {quota['metadata']['namespace']}/{QUOTA_NAME} ({hard})")
        print(f"listening on {fake.url}", flush=True)
        for line in loaded:
            print(f"loaded {line}", flush=True)
        for line in described + ([f"fault: every answer waits {args.latency:g} s"] if args.latency else []):
            print(line, flush=True)
        if args.kubeconfig:
            partial = args.kubeconfig.with_name(f".{args.kubeconfig.name}.partial")
            try:
                fake.kubeconfig(partial, namespace=args.context_namespace)
                partial.chmod(0o600)
                partial.replace(args.kubeconfig)
            except OSError as exc:
                return fail(f"--kubeconfig {args.kubeconfig}: {exc.strerror or exc}")
            print(f"kubeconfig written: export KUBECONFIG={args.kubeconfig.resolve()}", flush=True)
        stopped.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
