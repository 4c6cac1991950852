"""A wire-level stand-in for the Kubernetes API server, for tests.

``FakeKube`` is a real HTTP(S) server on 127.0.0.1 (random port) built on the standard library's
``http.server``; certificates come from ``trustme``. Code under test reaches it with the real
``kubernetes`` and ``openshift`` clients through a kubeconfig the fake writes, so everything between the
client call and the socket (serialisation, TLS, auth headers, timeouts, retries, error mapping) is the
production code path. Tests arrange state with ``add``/``set_job_status``, break things with ``inject``,
and check what was sent with ``requests``/``requests_for``.

Faithful to Kubernetes (what a client can observe):

- URL layout of the core group (``/api/v1``) and named groups (``/apis/GROUP/VERSION``), namespaced and
  all-namespaces collections, and the discovery documents (``/version``, ``/api``, ``/api/v1``, ``/apis``,
  ``/apis/GROUP``, ``/apis/GROUP/VERSION``) in the shapes kubernetes-client and ``openshift.dynamic`` read.
- Errors are ``Status`` objects with the real ``reason``, ``code`` and ``details`` and messages worded like
  the API server's: NotFound, AlreadyExists, Invalid, Forbidden (with the exact quota-exceeded text),
  Unauthorized, BadRequest, MethodNotAllowed.
- Create sets ``uid``, ``resourceVersion``, ``creationTimestamp`` (RFC 3339, ``Z``), ``namespace`` and
  honours ``generateName``; ``resourceVersion`` is one cluster-wide counter, like etcd's revision. Create
  resets ``status`` of Jobs and ResourceQuotas, as the real registry does.
- Order of checks on create: validation (422), quota admission (403), then the store (409).
- Label selectors with the whole grammar (``=``, ``==``, ``!=``, ``in``, ``notin``, ``key``, ``!key``; a
  comma is AND; ``!=`` and ``notin`` also match objects without the label); field selectors on
  ``metadata.name`` and ``metadata.namespace``, and on a pod's ``status.phase``, ``spec.restartPolicy`` and
  ``spec.nodeName``; other fields answer 400 as the real server does.
- ``limit``/``continue`` paging with an opaque token; lists are sorted by (namespace, name) like etcd
  keys; ``metadata.continue`` is absent on the last page and ``remainingItemCount`` is only set when no
  selector was given (both as the real server does, so clients see ``None``, not ``""``).
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

- Only the resources in ``RESOURCES``. No watch, no PATCH, no deletecollection, no subresources, no
  controllers: Jobs never start Pods or finish on their own (use ``set_job_status``). Deleting a Job with
  ``propagationPolicy`` Background/Foreground removes Pods whose ownerReferences name it, at once.
- Namespaces always exist: GET of any namespace answers an Active Namespace, and creating into any
  namespace works.
- Validation covers metadata only (name required, DNS-1123 shape, at most 63 characters for Jobs because
  of their ``job-name`` label, body namespace matching the URL, kind/apiVersion matching the endpoint);
  specs are stored as sent, without defaulting.
- Pages are not a consistent snapshot: an object created behind the cursor between two pages is seen.
- Only ``count/jobs.batch`` is enforced by quota; other hard limits are stored, not enforced or counted.
- Every path, discovery included, needs credentials (real clusters let anonymous users read /version).
- ``processedtemplates`` substitutes ``${P}`` and ``${{P}}`` and applies the template's ``labels``; a
  parameter with ``generate: expression`` and no value gets 8 random ``[a-z0-9]`` characters instead of
  a value matching its ``from`` pattern.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import http.server
import json
import re
import secrets
import shutil
import socket
import ssl
import tempfile
import threading
import traceback
import uuid
from collections.abc import Callable
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
    verbs: tuple[str, ...] = ("create", "delete", "get", "list", "update")
    short_names: tuple[str, ...] = ()
    stored: bool = True
    """False for virtual resources (namespaces, processedtemplates) that hold nothing."""

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
        ResourceType("pods", "Pod", "", "v1", short_names=("po",)),
        ResourceType("resourcequotas", "ResourceQuota", "", "v1", short_names=("quota",)),
        ResourceType("jobs", "Job", "batch", "v1"),
        ResourceType("templates", "Template", "template.openshift.io", "v1"),
        ResourceType("processedtemplates", "Template", "template.openshift.io", "v1", verbs=("create",), stored=False),
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


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
# Fields some resources add, as the API server's field label conversions do (pods: a few of spec and status).
RESOURCE_FIELDS = {"pods": ("status.phase", "spec.restartPolicy", "spec.nodeName")}


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
            raise _bad_request(f"field label not supported: {name}")
        tests.append(_field_test(name.split("."), value, negate=op == "!="))
    return tests


def _field_test(path: list[str], value: str, *, negate: bool) -> ObjectTest:
    def test(obj: Obj) -> bool:
        found: Any = obj
        for step in path:
            found = found.get(step) if isinstance(found, dict) else None
        return bool((found if found is not None else "") == value) != negate

    return test


def _encode_continue(resource_version: int, after: str) -> str:
    raw = json.dumps({"v": "fakekube/v1", "rv": resource_version, "start": after}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_continue(token: str) -> str:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        after = data["start"]
        if data.get("v") != "fakekube/v1" or not isinstance(after, str):
            raise ValueError("unknown version")
    except (ValueError, KeyError, TypeError) as exc:
        raise _bad_request(f"continue key is not valid: {exc}") from None
    return after


# -------------------------------------------------------------------------------------- template process

_PARAM_RE = re.compile(r"\$\{(\{)?([A-Za-z0-9_]+)\}(?(1)\})")
_GENERATED_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789"


def process_template(template: Obj) -> Obj:
    """Do what OpenShift's ``processedtemplates`` endpoint does, in simplified form (see module doc)."""
    result = copy.deepcopy(template)
    template_name = (result.get("metadata") or {}).get("name", "")
    values: dict[str, str] = {}
    for index, param in enumerate(result.get("parameters") or []):
        name = param.get("name", "")
        value = param.get("value") or ""
        if not value and param.get("generate") == "expression":
            value = "".join(secrets.choice(_GENERATED_CHARS) for _ in range(8))
            param["value"] = value
        if param.get("required") and not value:
            field_path = f"template.parameters[{index}]"
            message = f"{field_path}: Required value: parameter {name} is required and must be specified"
            raise ApiError(
                422,
                f'Template.template.openshift.io "{template_name}" is invalid: {message}',
                "Invalid",
                {
                    "name": template_name,
                    "group": "template.openshift.io",
                    "kind": "Template",
                    "causes": [{"reason": "FieldValueRequired", "message": message, "field": field_path}],
                },
            )
        values[name] = str(value)

    def substitute(node: Any) -> Any:
        if isinstance(node, str):
            whole = _PARAM_RE.fullmatch(node)
            if whole and whole[1] and whole[2] in values:
                try:
                    return json.loads(values[whole[2]])
                except ValueError:
                    return values[whole[2]]
            return _PARAM_RE.sub(lambda m: values.get(m[2], m[0]), node)
        if isinstance(node, dict):
            return {key: substitute(value) for key, value in node.items()}
        if isinstance(node, list):
            return [substitute(item) for item in node]
        return node

    objects = [substitute(obj) for obj in result.get("objects") or []]
    labels = substitute(result.get("labels") or {})
    for obj in objects:
        if labels and isinstance(obj, dict):
            obj.setdefault("metadata", {}).setdefault("labels", {}).update(labels)
    result["objects"] = objects
    result.setdefault("kind", "Template")
    result.setdefault("apiVersion", "template.openshift.io/v1")
    return result


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
    hits: int = 0
    """How many requests this fault has answered so far."""

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.hits >= self.times

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

    def __init__(self, fake: FakeKube, ssl_context: ssl.SSLContext | None) -> None:
        self.fake = fake
        self.ssl_context = ssl_context
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._accepted = 0
        super().__init__(("127.0.0.1", 0), _Handler)

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
    r"(?:/namespaces/(?P<namespace>[^/]+))?/(?P<resource>[^/]+)(?:/(?P<name>[^/]+))?"
)
_NOT_FOUND = "the server could not find the requested resource"
_GENERATE_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"  # the API server's alphabet for generateName


# ---------------------------------------------------------------------------------------------- FakeKube


class FakeKube:
    """An in-memory Kubernetes API server on 127.0.0.1; see the module docstring.

    ``tls``: ``"none"`` (plain HTTP), ``"tls"`` (server certificate from a throw-away CA) or ``"mtls"``
    (additionally requires a client certificate signed by that CA). ``token``: the bearer token every
    request must carry (None: no token check). In mtls mode a verified client certificate is enough.
    """

    def __init__(self, tls: TlsMode = "none", token: str | None = "test-token") -> None:
        if tls not in ("none", "tls", "mtls"):
            raise ValueError(f"tls must be 'none', 'tls' or 'mtls', not {tls!r}")
        self.tls: TlsMode = tls
        self.token = token
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
        self._resource_version = 1
        self._started_at = _now()
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
            ca = trustme.CA()
            self.ca_pem = self._tmp / "ca.pem"
            ca.cert_pem.write_to_path(str(self.ca_pem))
            ssl_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ca.issue_cert("127.0.0.1", "localhost").configure_cert(ssl_context)
            if tls == "mtls":
                client = ca.issue_cert(
                    "graph-refresh-test",
                    common_name="graph-refresh-test",
                    organization_name="graph-refresh-tests",
                    organization_unit_name="tests",
                )
                self.client_cert_pem = self._tmp / "client.pem"
                self.client_key_pem = self._tmp / "client-key.pem"
                client.cert_chain_pems[0].write_to_path(str(self.client_cert_pem))
                client.private_key_pem.write_to_path(str(self.client_key_pem))
                ssl_context.verify_mode = ssl.CERT_REQUIRED
                ca.configure_trust(ssl_context)

        self._server = _Server(self, ssl_context)
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
    ) -> Fault:
        """Answer matching requests with ``status`` instead of handling them.

        ``method`` None matches any method; ``path`` is a regex searched in the path (no query string);
        ``match_name`` also requires that name in the JSON body's ``metadata.name``. Each match uses one
        of ``times`` (None: forever). The answer has ``headers`` and ``body`` (a dict is sent as JSON,
        str/bytes as is; a callable is called with the Request and its result sent so, as a server that
        echoes the request back; default: a Status for ``status``). ``delay`` seconds pass before answering; with
        ``status`` None the request is then handled normally. Faults are checked before authentication,
        in order of registration. Returns the Fault, whose ``hits`` counts the requests it answered.
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
        )
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take_fault(self, method: str, path: str, body: Any) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path, body):
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
            meta.setdefault("creationTimestamp", _now())
            meta["resourceVersion"] = self._next_resource_version()
            self._store[resource].setdefault(namespace, {})[name] = stored
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
            removed = self._store[resource].get(namespace, {}).pop(name, None)
            if removed is not None:
                self._next_resource_version()
            return removed is not None

    def set_job_status(
        self,
        namespace: str,
        name: str,
        condition: Literal["Complete", "Failed"] | None,
        active: int = 0,
    ) -> Obj:
        """Write a Job's status as the Job controller would; returns a copy of the Job.

        ``condition`` "Complete" adds that condition and ``succeeded`` (= spec.completions or 1),
        "Failed" adds that condition (reason BackoffLimitExceeded) and ``failed: 1``, None leaves the Job
        running. ``active`` pods are reported as ``status.active``. Zero counts are omitted, as the API
        server omits them.
        """
        if condition not in ("Complete", "Failed", None):
            raise ValueError(f"condition must be 'Complete', 'Failed' or None, not {condition!r}")
        with self._lock:
            job = self._store["jobs"].get(namespace, {}).get(name)
            if job is None:
                raise KeyError(f"no job {namespace}/{name}")
            now = _now()
            status: Obj = {"startTime": job["metadata"].get("creationTimestamp", now)}
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
            job["metadata"]["resourceVersion"] = self._next_resource_version()
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
        body_error: str | None = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError as exc:
                body_error = f"the body of the request was in an unknown format: {exc}"
        headers = {key.lower(): value for key, value in handler.headers.items()}
        subject = _subject_of(handler.connection)
        request = Request(method, path, query, headers, body, subject, handler.connection_number)
        with self._lock:
            self.requests.append(request)

        fault = self._take_fault(method, path, body)
        if fault is not None:
            if fault.delay and self._stopping.wait(fault.delay):
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
                raise _bad_request(body_error)
            code, payload = self._route(method, path, query, body)
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

    def _route(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, Obj]:
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
        namespace, name = match["namespace"], match["name"]
        if namespace is not None and not rt.namespaced:
            raise ApiError(404, _NOT_FOUND)
        if "true" in query.get("watch", []):
            raise _bad_request("FakeKube does not support watch")

        if method == "GET":
            verb = "get" if name is not None else "list"
        elif method == "POST" and name is None:
            verb = "create"
        elif method == "DELETE" and name is not None:
            verb = "delete"
        elif method == "PUT" and name is not None:
            verb = "update"
        else:
            verb = ""
        if verb not in rt.verbs or (rt.namespaced and namespace is None and verb != "list"):
            raise ApiError(405, "the server does not allow this method on the requested resource")

        if rt.name == "namespaces":
            return 200, (self._namespace(name) if name is not None else self._namespace_list())
        if rt.name == "processedtemplates":
            assert namespace is not None
            return self._process(namespace, body, query)
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
            return 200, self._update(rt, namespace, name, body, query)
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
        resources = []
        for rt in RESOURCES.values():
            if (rt.group, rt.version) != (group, version):
                continue
            entry: Obj = {
                "name": rt.name,
                "singularName": "",
                "namespaced": rt.namespaced,
                "kind": rt.kind,
                "verbs": list(rt.verbs),
            }
            if rt.short_names:
                entry["shortNames"] = list(rt.short_names)
            resources.append(entry)
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
        token = _first(query, "continue")
        after = _decode_continue(token) if token else None
        with self._lock:
            resource_version = self._resource_version
            buckets = self._store[rt.name]
            namespaces = [namespace] if namespace is not None else list(buckets)
            keyed = [(f"{ns}/{name}", obj) for ns in namespaces for name, obj in buckets.get(ns, {}).items()]
            keyed.sort(key=lambda pair: pair[0])
            matching = [
                (key, obj)
                for key, obj in keyed
                if (after is None or key > after)
                and all(test(obj["metadata"].get("labels") or {}) for test in label_tests)
                and all(test(obj) for test in field_tests)
            ]
            page = matching[:limit] if limit > 0 else matching
            items = [self._present(rt, obj, in_list=True) for _, obj in page]
        metadata: Obj = {"resourceVersion": str(resource_version)}
        remaining = len(matching) - len(page)
        if remaining > 0:
            metadata["continue"] = _encode_continue(resource_version, page[-1][0])
            if not label_selector and not field_selector:
                metadata["remainingItemCount"] = remaining
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
                del bucket[name]
                self._next_resource_version()
                if policy in ("Background", "Foreground"):
                    pods = self._store["pods"].get(namespace, {})
                    for pod_name, pod in list(pods.items()):
                        if any(ref.get("uid") == uid for ref in pod["metadata"].get("ownerReferences") or []):
                            del pods[pod_name]
        return status_body(200, "", details=rt.details(name, uid=uid))

    def _create(self, rt: ResourceType, namespace: str, body: Any, query: dict[str, list[str]]) -> Obj:
        dry_run = _dry_run(query, None)
        obj = self._admit_body(rt, namespace, body)
        meta = obj["metadata"]
        with self._lock:
            name = meta.get("name") or ""
            if not name and meta.get("generateName"):
                name = meta["generateName"] + "".join(secrets.choice(_GENERATE_NAME_CHARS) for _ in range(5))
                meta["name"] = name
            self._validate_name(rt, name)
            if rt.name == "jobs":
                self._check_job_quota(namespace, name)
            bucket = self._store[rt.name].setdefault(namespace, {})
            if name in bucket:
                raise ApiError(409, f'{rt.qualified_name} "{name}" already exists', "AlreadyExists", rt.details(name))
            meta["namespace"] = namespace
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = _now()
            for server_owned in ("deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
                meta.pop(server_owned, None)
            if rt.name in ("jobs", "resourcequotas"):
                obj["status"] = {}
            elif rt.name == "pods":
                obj["status"] = {"phase": "Pending"}
            if dry_run:
                meta.pop("resourceVersion", None)
                return self._present(rt, obj)
            meta["resourceVersion"] = self._next_resource_version()
            bucket[name] = obj
            return self._present(rt, obj)

    def _update(self, rt: ResourceType, namespace: str, name: str, body: Any, query: dict[str, list[str]]) -> Obj:
        dry_run = _dry_run(query, None)
        obj = self._admit_body(rt, namespace, body)
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
            meta["namespace"] = namespace
            for kept in ("uid", "creationTimestamp"):
                meta[kept] = stored["metadata"].get(kept)
            if rt.name in ("jobs", "resourcequotas", "pods"):  # status is a subresource: a PUT leaves it
                obj["status"] = copy.deepcopy(stored.get("status") or {})
            if dry_run:
                meta["resourceVersion"] = current
                return self._present(rt, obj)
            meta["resourceVersion"] = self._next_resource_version()
            bucket[name] = obj
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

    def _process(self, namespace: str, body: Any, query: dict[str, list[str]]) -> tuple[int, Obj]:
        rt = RESOURCES["processedtemplates"]
        obj = self._admit_body(rt, namespace, body)
        obj["metadata"]["namespace"] = namespace
        return 201, process_template(obj)


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
