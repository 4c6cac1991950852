"""The only module that talks to the Kubernetes API (kubernetes 11 client).

Objects travel as plain dicts (``_preload_content=False``): graph-refresh never needs the
generated models, and raw JSON keeps Template and Job bodies exactly as the server has them. The owned
Jobs and pods, the namespace's bulk, are parsed as each page streams in and cut down object by object
(``reduce``), so a page is never held whole.
Every client error is classified here, once, into a subclass of :class:`ClusterError` (already exists,
quota exceeded, throttled, no answer, ...; see ``errors.py``), with the HTTP status, the server's message
(secrets masked, then truncated) and which verb on which resource in which namespace failed.
The loaded Configuration holds the bearer token: it is registered as a secret at once and never logged.
"""

from __future__ import annotations

import base64
import binascii
import functools
import itertools
import json
import logging
import math
import os
import socket
import ssl
import time
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import ijson  # type: ignore[import-untyped]  # no stubs
import urllib3
import yaml

from graph_refresh import backoff, secrets, standalone
from graph_refresh.config import ClusterSettings, redact_url
from graph_refresh.errors import (
    AlreadyExists,
    ClusterError,
    Conflict,
    Forbidden,
    GarbledAnswer,
    NoAnswer,
    NoCredentials,
    NotFound,
    QuotaExceeded,
    QuotaPending,
    Rejected,
    ServerError,
    Throttled,
    TlsFailure,
    Unauthorized,
    truncate,
)
from graph_refresh.items import LABEL_ATTEMPT, LABEL_ITEM, OWNED_LABELS, OWNED_SELECTOR
from graph_refresh.runtime import collector_paused

# kubernetes 11 imports these on `import kubernetes` though graph-refresh never uses them: the dynamic client
# (with kubernetes-validate and jsonschema), the websocket client of `stream`, and the Google Cloud and OIDC
# log-ins of kubeconfig users (google-auth, oauthlib, requests). They are imported if a kubeconfig needs them.
UNUSED_BY_A_RUN = (
    "kubernetes.dynamic",
    "kubernetes.stream",
    "google.auth",
    "google.auth.transport",
    "google.auth.transport.requests",
    "oauthlib",
    "oauthlib.oauth2",
    "requests_oauthlib",
)
with standalone.standing_in(UNUSED_BY_A_RUN):
    from kubernetes import client, config
    from kubernetes.client.rest import ApiException
    from kubernetes.config.config_exception import ConfigException
    from kubernetes.config.incluster_config import (
        SERVICE_CERT_FILENAME,
        SERVICE_TOKEN_FILENAME,
        InClusterConfigLoader,
    )

logger = logging.getLogger(__name__)

Timeout = tuple[float, float]
REQUEST_TIMEOUT: Timeout = (10, 60)  # (connect, read) seconds; kubernetes 11 only honours ints or a tuple
LIST_PAGE_SIZE = 500  # objects per list call; the API server's continue token carries us on
TEMPLATE_SELECTOR = "template in (solver,package-analyzer)"
JSON = "application/json"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io, application/json"  # else the list itself will do
SUCCEEDED, NOT_SUCCEEDED = "status.successful=1", "status.successful!=1"  # the one Job status field selectable
FIRST_ATTEMPTS = f"{OWNED_SELECTOR},{LABEL_ATTEMPT}=1"  # a first attempt's name says whose it is
RETRIES = f"{OWNED_SELECTOR},{LABEL_ATTEMPT}!=1"  # and Jobs without the label (an earlier release's)
QUOTA_EXCEEDED_MARKER = "exceeded quota"  # how the API says a ResourceQuota refused an object
QUOTA_PENDING_MARKER = "status unknown for quota"  # a quota the controller has not calculated yet

T = TypeVar("T")
# Failures that happen before a request leaves: a create cannot have taken place.
_NEVER_SENT = (
    urllib3.exceptions.SSLError,
    urllib3.exceptions.NewConnectionError,
    urllib3.exceptions.ConnectTimeoutError,
)
# What kubernetes 11 raises for a kubeconfig it cannot use: a context naming a missing cluster or user is read
# as None (TypeError); YAML that is not a mapping fails on .get or item assignment.
_BAD_KUBECONFIG = (ConfigException, OSError, TypeError, ValueError, KeyError, AttributeError, RecursionError)


def _objects(body: dict[str, Any], what: str) -> list[dict[str, Any]]:
    """The ``items`` of a list answer; an item that is not an object makes the answer garbled."""
    items = body.get("items") or []
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise GarbledAnswer(f"{what}: the answer's items are not a list of objects")
    return items


def _register_secrets(configuration: client.Configuration) -> None:
    """Every credential the Configuration sends, as the masking of logs and reports must know it (design: Outputs
    and data from outside)."""
    secrets.register(configuration.password)
    for value in (configuration.api_key or {}).values():
        scheme, _, credential = str(value).strip().partition(" ")
        secrets.register(str(value), credential)
        if scheme.lower() == "basic" and credential:  # a kubeconfig's username/password, as "Basic base64"
            try:
                decoded = base64.b64decode(credential, validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                continue
            secrets.register(decoded.partition(":")[2])


class _NotAMapping(ValueError):
    """A kubeconfig file whose YAML is not a mapping."""


def _check_yaml(kubeconfig: str) -> None:
    """Each existing file of ``kubeconfig`` (a KUBECONFIG list) holds a YAML mapping; kubernetes 11 would
    answer anything else with a traceback from deep inside its loader."""
    for name in kubeconfig.split(os.pathsep):
        path = os.path.expanduser(name)
        if not path or not os.path.exists(path):
            continue  # kubernetes 11 skips them as well, and says so when none is left
        with open(path, encoding="utf-8") as file:
            try:
                document = yaml.safe_load(file)
            except yaml.YAMLError as error:
                raise _NotAMapping(f"{path} is not valid YAML ({error})") from error
        if not isinstance(document, dict):
            raise _NotAMapping(f"{path} is not a YAML mapping but {type(document).__name__}")


def _load_configuration(settings: ClusterSettings) -> tuple[client.Configuration, str]:
    """In-cluster service account first, then ``KUBECONFIG`` / ``~/.kube/config``, like oc and kubectl; a
    kubeconfig or a context named in the settings (``--kubeconfig``, ``--context``) is used even in a cluster.
    Returns the configuration and where the credentials came from (``in-cluster service account``,
    ``kubeconfig <path>``, ``kubeconfig <path>, context <name>``)."""
    configuration = client.Configuration()
    # kubernetes 11 hands out shallow copies of one process-wide default Configuration: without dicts of
    # its own, the token set below would land in the shared api_key dict and reach every later client.
    configuration.api_key = {}
    configuration.api_key_prefix = {}
    loader = InClusterConfigLoader(token_filename=SERVICE_TOKEN_FILENAME, cert_filename=SERVICE_CERT_FILENAME)
    named = settings.kubeconfig is not None or settings.context is not None
    try:
        if named:
            raise ConfigException("a kubeconfig or a context was named")
        loader._load_config()  # the public load_and_set() would replace the process-wide default
        configuration.host = loader.host
        configuration.ssl_ca_cert = loader.ssl_ca_cert
        configuration.api_key["authorization"] = "bearer " + loader.token.strip()
        source = "in-cluster service account"
    except ConfigException:
        # kubernetes 11 reads KUBECONFIG once, when it is imported (KUBE_CONFIG_DEFAULT_LOCATION); pass
        # the path explicitly so the environment of this run is what counts, as the message says.
        kubeconfig = str(settings.kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config")
        try:
            _check_yaml(kubeconfig)
            config.load_kube_config(
                config_file=kubeconfig,
                context=settings.context,
                client_configuration=configuration,
                persist_config=False,
            )
        except _BAD_KUBECONFIG as error:
            if isinstance(error, _NotAMapping):
                why = truncate(str(error))
            elif settings.context is not None and f"name {settings.context} in" in str(error):
                why = f"it has no context {settings.context!r}"
            elif isinstance(error, TypeError):
                why = f"its context, cluster or user is incomplete ({error})"
            elif isinstance(error, ConfigException | OSError):
                why = str(error)
            else:
                why = f"it is not a kubeconfig ({type(error).__name__}: {truncate(str(error))})"
            raise NoCredentials(  # a cluster failure, exit 1 with a report, not a bad option (design: Exit codes)
                f"no cluster credentials: {'' if named else 'not in a cluster, and '}no usable kubeconfig "
                f"({kubeconfig}): {why}",
                reached=False,
            ) from error
        source = f"kubeconfig {kubeconfig}" + ("" if settings.context is None else f", context {settings.context}")
    _register_secrets(configuration)
    if not settings.verify_tls:
        configuration.verify_ssl = False
        configuration.assert_hostname = False
    if not configuration.verify_ssl:  # KUBERNETES_VERIFY_TLS=0, or the kubeconfig's insecure-skip-tls-verify
        why = "KUBERNETES_VERIFY_TLS=0" if not settings.verify_tls else f"insecure-skip-tls-verify in {source}"
        logger.warning(
            "%s: the API server's certificate is NOT verified; anyone on the network "
            "path can impersonate %s and read the service account token",
            why,
            redact_url(configuration.host),
        )
        # Said once, loudly, above; urllib3 would repeat it as an InsecureRequestWarning on every request.
        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    configuration.connection_pool_maxsize = max(settings.workers, 1) + 1
    logger.info("Cluster API %s (credentials from %s)", redact_url(configuration.host), source)
    return configuration, source


def _message(error: ApiException) -> str:
    try:
        body = json.loads(error.body or b"{}")
        return str(body.get("message") or error.reason)
    except (ValueError, AttributeError, RecursionError):
        return str(error.reason or error.body)


def _plainly(error: BaseException) -> str:
    """What went wrong on the way to the API server, in words, without the client library's internals (its
    connection objects, the C source line of an SSL error)."""
    chain: list[BaseException] = []
    cause: BaseException | None = error
    while cause is not None and cause not in chain:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    for cause in chain:  # what the operating system or TLS said first: it is the most precise
        if isinstance(cause, socket.gaierror):
            return "its host name does not resolve"
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"its certificate is not trusted ({cause.verify_message})"
    for cause in chain:
        if isinstance(cause, urllib3.exceptions.ReadTimeoutError):
            return "no answer within the read timeout"
        if isinstance(cause, urllib3.exceptions.ConnectTimeoutError):
            return "no connection within the connect timeout"
        if isinstance(cause, ConnectionResetError | BrokenPipeError | urllib3.exceptions.ProtocolError):
            return "the connection broke off"
        if isinstance(cause, ssl.SSLError):
            return f"TLS error ({cause.reason or cause.strerror})"
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror[:1].lower() + cause.strerror[1:]
    return truncate(secrets.mask(str(error)))


def _hints(source: str) -> dict[type[ClusterError], str]:
    """What to do about a failure that settings or the cluster's state cause, by error class, given where the
    credentials came from (``source``)."""
    return {
        NoAnswer: f"check that the cluster is up and that {source} names its API server",
        TlsFailure: f"check the certificate authority in {source}",
        Unauthorized: f"log in again (oc login), or check the credentials in {source}",
        Forbidden: "the account lacks a permission that graph-refresh needs: see the Role in openshift/",
    }


def _retry_after(error: ApiException) -> float | None:
    """Retry-After in seconds, from delta-seconds or an HTTP date; None when absent or unusable."""
    value = (error.headers or {}).get("Retry-After")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds()
        except (TypeError, ValueError):
            return None
    return max(seconds, 0.0) if math.isfinite(seconds) else None


def error_class(verb: str, status: int, message: str) -> type[ClusterError]:
    """The error class of an HTTP answer ``status`` with the server's ``message`` to ``verb``."""
    if status == 401:
        return Unauthorized
    if status == 403:
        if QUOTA_PENDING_MARKER in message:
            return QuotaPending
        return QuotaExceeded if QUOTA_EXCEEDED_MARKER in message else Forbidden
    if status == 404:
        return NotFound
    if status == 409:
        return Conflict if verb == "update" else AlreadyExists
    if status == 429:
        return Throttled
    if status >= 500:
        return ServerError
    return Rejected


def _json_object(response: Any, what: str) -> dict[str, Any]:
    """The JSON object of a response read in full; a torn or foreign body is a GarbledAnswer (no answer)."""
    try:
        body = json.loads(response.data)
    except RecursionError as error:
        raise GarbledAnswer(f"{what}: the answer is nested too deep to read") from error
    except (ValueError, TypeError) as error:
        raise GarbledAnswer(f"{what}: the answer is not JSON: {truncate(str(error))}") from error
    if not isinstance(body, dict):
        raise GarbledAnswer(f"{what}: the answer is not a JSON object")
    return body


def _drained(response: Any) -> Any:
    """Read the (small) answer in full so its connection goes back to the pool; with ``_preload_content=False``
    an unread response keeps the connection checked out, and every write would open a new TLS connection."""
    response.drain_conn()
    response.release_conn()
    return response


Reduce = Callable[[dict[str, Any]], dict[str, Any]]
"""What a listing keeps of each object it parses (``compact.job``, say)."""
MAX_NESTING = 10_000  # brackets open at once in a list answer; ijson takes 0.1 s to get there, a minute to 100k
_HEAD_SLICE = 512  # bytes the head parser is sent at a time
_ALL_BUT_BRACKETS = bytes(byte for byte in range(256) if byte not in b"[]{}")
_VALUE_END = frozenset({"end_map", "end_array", "null", "boolean", "integer", "double", "number", "string"})


class _TooDeep(Exception):
    """A list answer nested deeper than MAX_NESTING."""


class _ListHead:
    """What a list answer says outside its items, read from the parser's events as the answer streams in:
    whether it is an object, whether its ``items`` are a list (or empty), and its ``metadata``.

    Fed until it has seen the start of ``items`` and the whole ``metadata`` (the API server writes
    ``metadata`` first, so that is a few dozen events); an answer in another order is read to the end."""

    def __init__(self) -> None:
        self.is_object: bool | None = None
        self.items_ok: bool | None = None
        """True: a list, or empty (null, {}, "", 0, false: what a lenient reader takes for none); False: not."""
        self.metadata: Any = None
        self._metadata_done = False
        self._builder: Any = None
        self._items_opened = False

    @property
    def done(self) -> bool:
        return self.items_ok is not None and self._metadata_done

    def events(self) -> Generator[None, tuple[str, str, Any], None]:
        """The coroutine the parser sends ``(prefix, event, value)`` to."""
        while True:
            prefix, event, value = yield
            if self.is_object is None:
                self.is_object = prefix == "" and event == "start_map"
            if self._items_opened:  # "items" opened an object: only an empty one reads as no items
                self._items_opened = False
                self.items_ok = prefix == "items" and event == "end_map"
            elif prefix == "items" and self.items_ok is None and event != "map_key":
                if event == "start_map":
                    self._items_opened = True
                else:
                    self.items_ok = event in ("start_array", "null") or (event != "end_map" and not value)
            elif prefix == "metadata" or prefix.startswith("metadata."):
                if self._builder is None:
                    self._builder = ijson.ObjectBuilder()
                self._builder.event(event, value)
                if prefix == "metadata" and event in _VALUE_END:
                    self.metadata, self._metadata_done = self._builder.value, True


class _Tee:
    """A file over a streamed response for the item parser, that also sends each chunk to a second parser
    (the list's head) until that one has what it needs."""

    def __init__(self, response: Any, head: _ListHead) -> None:
        self._response = response
        self._head = head
        self._depth = 0
        target = head.events()
        next(target)
        self._parser: Any = ijson.parse_coro(target)

    def read(self, size: int = -1) -> bytes:
        chunk: bytes = self._response.read(size)
        # ijson's cost grows with the square of the nesting depth (each event's prefix is the path to it):
        # an answer nested thousands deep would hold the run for minutes. Brackets are counted without
        # telling those inside strings apart, which a real answer (a few dozen deep) never brings near.
        brackets = chunk.translate(None, _ALL_BUT_BRACKETS)  # one pass; then counts over a few KB
        self._depth = max(self._depth + 2 * (brackets.count(b"[") + brackets.count(b"{")) - len(brackets), 0)
        if self._depth > MAX_NESTING:
            raise _TooDeep
        # In small slices: the head is in the first few hundred bytes, and every event the head parser
        # sees past it is a call into Python.
        for start in range(0, len(chunk) if self._parser is not None else 0, _HEAD_SLICE):
            self._parser.send(chunk[start : start + _HEAD_SLICE])
            if self._head.done:
                self._parser = None
                break
        return chunk

    def finish(self) -> None:
        """The answer ended: let the head parser see the end too."""
        if self._parser is not None:
            self._parser.close()
            self._parser = None


@dataclass(frozen=True)
class _Page:
    objects: list[dict[str, Any]]
    token: Any
    """``metadata.continue``: where the next page starts; None (or empty) on the last page."""
    version: Any = None
    """``metadata.resourceVersion``: the version of the store the list answers at."""
    rows: bool = False
    """The objects are the records of a Table's rows (else: whole objects, each reduced)."""
    whole_names: tuple[str, ...] = ()
    """Rows of Jobs that must be read whole (a Table's Status says they failed)."""


def _list_metadata(metadata: Any) -> tuple[Any, Any]:
    """The continue token and resourceVersion of a list answer's ``metadata``."""
    if not isinstance(metadata, dict):
        return None, None
    return metadata.get("continue"), metadata.get("resourceVersion")


def _streamed_page(request: Callable[[], Any], what: str, reduce: Reduce | None) -> _Page:
    """One page of a list (the answer to ``request``), parsed as it streams in (ijson), each item reduced
    as soon as it is parsed.

    The same answers fail as with a whole-body parse: not JSON, not an object, ``items`` not a list of
    objects; each is a GarbledAnswer (no answer: the read is retried). The connection goes back to the pool
    however it ends."""
    response = request()
    head = _ListHead()
    objects: list[dict[str, Any]] = []
    try:
        with collector_paused():  # nothing parsed is cyclic: reference counting frees it all
            stream = _Tee(response, head)
            for obj in ijson.items(stream, "items.item", use_float=True):
                if not isinstance(obj, dict):
                    raise GarbledAnswer(f"{what}: the answer's items are not a list of objects")
                objects.append(reduce(obj) if reduce is not None else obj)
            stream.finish()
    except (RecursionError, _TooDeep) as error:
        raise GarbledAnswer(f"{what}: the answer is nested too deep to read") from error
    except ijson.JSONError as error:
        raise GarbledAnswer(f"{what}: the answer is not JSON: {truncate(str(error))}") from error
    finally:
        _drained(response)
    if not head.is_object:
        raise GarbledAnswer(f"{what}: the answer is not a JSON object")
    if head.items_ok is False:
        raise GarbledAnswer(f"{what}: the answer's items are not a list of objects")
    return _Page(objects, *_list_metadata(head.metadata))


TableRows = Callable[[Sequence[str]], Callable[[Mapping[str, Any]], "dict[str, Any] | str"]]
"""How the rows of a Table of Jobs are read, given its column names (``compact.table_rows``): each row as the
record ``reduce`` would make of the whole Job, or the Job's name when it must be read whole."""


def _table_page(request: Callable[[], Any], what: str, reduce: Reduce | None, rows: TableRows) -> _Page:
    """One page of Jobs asked for as a Table (the answer to ``request``), read whole (a page of rows is small).
    A server that ignored ``as=Table`` answers with the list itself: its items are reduced as
    :func:`_streamed_page` would, and the page says so (``rows`` False). Any other answer is a GarbledAnswer."""
    response = request()
    try:
        body = _json_object(response, what)
    finally:
        _drained(response)
    token, version = _list_metadata(body.get("metadata"))
    if body.get("kind") != "Table":
        return _Page([reduce(obj) if reduce else obj for obj in _objects(body, what)], token, version)
    columns, listed = body.get("columnDefinitions"), body.get("rows") or []
    if not isinstance(columns, list) or not all(isinstance(column, dict) for column in columns):
        raise GarbledAnswer(f"{what}: the Table's columnDefinitions are not a list of objects")
    if not isinstance(listed, list) or not all(isinstance(row, dict) for row in listed):
        raise GarbledAnswer(f"{what}: the Table's rows are not a list of objects")
    read = rows([str(column.get("name")) for column in columns])
    objects, whole = [], []
    for row in listed:
        record = read(row)
        if isinstance(record, str):
            whole.append(record)
        else:
            objects.append(record)
    return _Page(objects, token, version, rows=True, whole_names=tuple(whole))


def _name_of(record: Mapping[str, Any]) -> Any:
    try:
        return record["metadata"]["name"]
    except (KeyError, TypeError, IndexError):  # a malformed object (its metadata not an object, or absent)
        return None


def _next_token(what: str, previous: Any, page: _Page) -> Any:
    """Where the list goes on after ``page`` (asked for with ``previous``); None after the last page."""
    if page.token and page.token == previous:  # a proxy that drops ?continue= would have us list a page forever
        raise GarbledAnswer(f"{what}: the API answered the same continue token twice")
    return page.token or None


class Cluster:
    """The cluster as graph-refresh sees it: Templates in infra; owned Jobs and pods, quotas and the ledger
    ConfigMap in middletier.

    ``page_size`` (objects per list call), ``request_timeout`` ((connect, read) seconds per request) and
    ``reads`` (how lists and gets are retried) default to production values; tests pass smaller ones.
    """

    def __init__(
        self,
        settings: ClusterSettings,
        *,
        sleep: Callable[[float], None] = time.sleep,
        page_size: int = LIST_PAGE_SIZE,
        request_timeout: Timeout = REQUEST_TIMEOUT,
        reads: backoff.Backoff = backoff.READS,
        budget_seconds: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``budget_seconds``: what every request of this client together may take (None: no bound); a read
        is then tried once, within what is left, and fails with NoAnswer once the budget is spent."""
        self._configuration, source = _load_configuration(settings)
        self._api = client.ApiClient(self._configuration)
        # urllib3 would otherwise retry on its own (3 times, sleeping out a 429's Retry-After unseen):
        # every retry is decided here and in the scheduler, and waits through the sleep seam.
        self._api.rest_client.pool_manager.connection_pool_kw["retries"] = False
        self._batch = client.BatchV1Api(self._api)
        self._core = client.CoreV1Api(self._api)
        self._custom = client.CustomObjectsApi(self._api)
        self._sleep = sleep
        self._page_size = page_size
        self._request_timeout = request_timeout
        self._reads = reads if budget_seconds is None else backoff.Backoff(attempts=1, base_seconds=0)
        self._clock = clock
        self._deadline = None if budget_seconds is None else clock() + budget_seconds
        self._host = redact_url(self._configuration.host)  # a server URL may carry user:password@
        self._hints = _hints(source)
        self._whole_jobs: str | None = None
        """Why Jobs that succeeded are listed as whole objects (the server refused what would cost less); None
        while it has not."""

    @property
    def _timeout(self) -> Timeout:
        """(connect, read) seconds for the next request: the client's, or what is left of its budget."""
        if self._deadline is None:
            return self._request_timeout
        left = self._deadline - self._clock()
        if left <= 0:
            raise NoAnswer(f"no answer from {self._host} within the time this command may take", reached=False)
        connect, read = self._request_timeout
        return (min(connect, left), min(read, left))

    # --- sending ---------------------------------------------------------------------------------

    def _send(self, verb: str, resource: str, namespace: str, request: Callable[[], T]) -> T:
        """Send one request; turn any failure into the ClusterError subclass that says what happened, in words
        (``_plainly``) and with what to do about it when that is known (``ClusterError.hint``)."""
        where = f"{verb} {resource} in namespace {namespace!r}"
        try:
            return request()
        except ApiException as error:
            status = int(error.status or 0)
            if status == 0:  # kubernetes 11 turns a bare urllib3 SSLError into ApiException(status=0)
                raise TlsFailure(
                    f"{where}: TLS with the API server at {self._host} failed: {_plainly(error)}",
                    reached=False,
                    hint=self._hints[TlsFailure],
                ) from error
            message = _message(error)
            kind = error_class(verb, status, message)
            raise kind(
                secrets.mask(f"{where} was refused ({status} {error.reason}): {truncate(secrets.mask(message))}"),
                status=status,
                retry_after=_retry_after(error),
                hint=self._hints.get(kind),
            ) from error
        except urllib3.exceptions.HTTPError as error:
            cause = (error.reason if isinstance(error, urllib3.exceptions.MaxRetryError) else None) or error
            if isinstance(cause, urllib3.exceptions.SSLError):
                raise TlsFailure(
                    f"{where}: TLS with the API server at {self._host} failed: {_plainly(cause)}",
                    reached=False,
                    hint=self._hints[TlsFailure],
                ) from error
            if isinstance(cause, _NEVER_SENT):
                raise NoAnswer(
                    f"{where}: cannot reach the API server at {self._host}: {_plainly(cause)}",
                    reached=False,
                    hint=self._hints[NoAnswer],
                ) from error
            raise NoAnswer(f"{where}: no answer from the API server at {self._host}: {_plainly(cause)}") from error

    def _read(self, verb: str, resource: str, namespace: str, request: Callable[[], T]) -> T:
        """Send a read, retried on 429, 5xx and no answer (not on a TLS failure) as ``reads`` says."""
        attempt = 0
        while True:
            try:
                return self._send(verb, resource, namespace, request)
            except (Throttled, ServerError, NoAnswer) as error:
                if isinstance(error, TlsFailure) or not self._reads.retries_left(attempt):
                    raise
                wait = self._reads.delay(
                    attempt, retry_after=error.retry_after if isinstance(error, Throttled) else None
                )
                logger.info("%s; retrying in %.1fs", error, wait)
                self._sleep(wait)
                attempt += 1

    def _get_object(self, verb: str, resource: str, namespace: str, request: Callable[[], Any]) -> dict[str, Any]:
        """One read whose body is read and parsed inside the retried request."""
        what = f"{verb} {resource} in namespace {namespace!r}"
        return self._read(verb, resource, namespace, lambda: _json_object(request(), what))

    def _list_owned(
        self,
        resource: str,
        namespace: str,
        list_page: Callable[..., Any],
        *,
        field_selector: str | None = None,
        reduce: Reduce | None = None,
    ) -> Iterator[dict[str, Any]]:
        """The objects labelled as graph-refresh's, page by page (``limit``/``continue``); ``list_page`` is the
        client's list call for ``resource``, taking the namespace and keyword arguments.

        Each page is parsed as it streams in and each object is passed through ``reduce`` (when given) as soon
        as it is parsed, so a page is never held whole; a page is read in full (and retried as a whole) before
        its objects are yielded."""
        for page in self._owned_pages(resource, namespace, list_page, field_selector=field_selector, reduce=reduce):
            yield from page.objects

    def _owned_pages(
        self,
        resource: str,
        namespace: str,
        list_page: Callable[..., Any],
        *,
        field_selector: str | None = None,
        reduce: Reduce | None = None,
    ) -> Iterator[_Page]:
        """The pages of :meth:`_list_owned`."""
        what = f"list {resource} in namespace {namespace!r}"
        selectors: dict[str, Any] = {"field_selector": field_selector} if field_selector else {}
        token: Any = None
        while True:
            paging: dict[str, Any] = {"_continue": token} if token else {}
            request = functools.partial(
                list_page,
                namespace,
                label_selector=OWNED_SELECTOR,
                limit=self._page_size,
                _preload_content=False,
                _request_timeout=self._timeout,
                **selectors,
                **paging,
            )
            page = self._read("list", resource, namespace, functools.partial(_streamed_page, request, what, reduce))
            yield page
            token = _next_token(what, token, page)
            if not token:
                return

    # --- Jobs by state (design: Finished Jobs cost little) -------------------------------------------

    def _jobs_by_state(
        self, namespace: str, reduce: Reduce | None, rows: TableRows, with_metadata: bool
    ) -> Iterator[dict[str, Any]]:
        """Every owned Job: first those that did not succeed, whole (``status.successful!=1``: live and failed
        Jobs, what a run learns from); then those that did, as Tables pinned to the first list's
        resourceVersion, so that a Job finishing between the lists is in exactly one of them. A Job the second
        lists name again (a server that does not honour the pin) counts as the first list saw it."""
        unsucceeded = self._owned_pages(
            "jobs.batch", namespace, self._batch.list_namespaced_job, field_selector=NOT_SUCCEEDED, reduce=reduce
        )
        try:
            first = next(unsucceeded)
        except Rejected as error:
            if error.status != 400:
                raise
            self._list_whole(f"the API server does not select Jobs by status.successful: {error}")
            yield from self.list_owned_jobs(namespace, reduce=reduce)
            return
        listed: set[Any] = set()  # the names of the Jobs listed whole: live and failed, a few thousand
        for page in itertools.chain([first], unsucceeded):
            for record in page.objects:
                listed.add(_name_of(record))
                yield record
        tables = [(OWNED_SELECTOR, "Metadata")] if with_metadata else [(FIRST_ATTEMPTS, "None"), (RETRIES, "Metadata")]
        for selector, include_object in tables:
            for record in self._succeeded_jobs(namespace, selector, include_object, first.version, reduce, rows):
                if _name_of(record) not in listed:
                    yield record

    def _succeeded_jobs(
        self,
        namespace: str,
        selector: str,
        include_object: str,
        version: Any,
        reduce: Reduce | None,
        rows: TableRows,
    ) -> Iterator[dict[str, Any]]:
        """The owned Jobs ``selector`` selects that succeeded, as a Table whose rows carry ``include_object``
        ("None", "Metadata"), at resourceVersion ``version`` (exactly; any when None). Once the server refuses
        Tables, or answers with whole Jobs, the rest is listed whole (and said once)."""
        what = f"list jobs.batch in namespace {namespace!r}"
        token: Any = None
        whole_names: list[str] = []
        while True:
            query: list[tuple[str, Any]] = [
                ("labelSelector", selector),
                ("fieldSelector", SUCCEEDED),
                ("limit", self._page_size),
            ]
            if token:
                query.append(("continue", token))
            elif version:
                query += [("resourceVersion", version), ("resourceVersionMatch", "Exact")]
            if self._whole_jobs is None:
                request = functools.partial(self._jobs, namespace, [*query, ("includeObject", include_object)], TABLE)
                read = functools.partial(_table_page, request, what, reduce, rows)
            else:
                request = functools.partial(self._jobs, namespace, query, JSON)
                read = functools.partial(_streamed_page, request, what, reduce)
            try:
                page = self._read("list", "jobs.batch", namespace, read)
            except Rejected as error:
                if error.status != 406 or self._whole_jobs is not None:
                    raise
                self._list_whole(f"the API server does not serve Jobs as Tables: {error}")
                continue
            if not page.rows and self._whole_jobs is None:
                self._list_whole("the API server answered a request for a Table of Jobs with the Jobs themselves")
            yield from page.objects
            whole_names += page.whole_names
            token = _next_token(what, token, page)
            if not token:
                break
        for name in whole_names:
            job = self._read_job(namespace, name)
            if job is not None:
                yield reduce(job) if reduce else job

    def _jobs(self, namespace: str, query: list[tuple[str, Any]], accept: str) -> Any:
        """One list request for Jobs with these query parameters and Accept header (the client's typed call
        knows neither ``resourceVersionMatch`` nor ``includeObject``); the response unread."""
        return self._api.call_api(
            "/apis/batch/v1/namespaces/{namespace}/jobs",
            "GET",
            path_params={"namespace": namespace},
            query_params=query,
            header_params={"Accept": accept},
            auth_settings=["BearerToken"],
            _return_http_data_only=True,
            _preload_content=False,
            _request_timeout=self._timeout,
        )

    def _read_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The Job ``name``, whole; None when it is gone."""
        try:
            return self._get_object(
                "get",
                f"jobs.batch {name!r}",
                namespace,
                lambda: self._batch.read_namespaced_job(
                    name, namespace, _preload_content=False, _request_timeout=self._timeout
                ),
            )
        except NotFound:
            return None

    def _list_whole(self, why: str) -> None:
        """From now on, list the Jobs that succeeded as whole objects; say so (once a run: one Cluster a run)."""
        if self._whole_jobs is None:
            logger.warning(
                "%s; the Jobs that succeeded are listed as whole objects, which costs this run several times the "
                'CPU and the transfer (docs/design.md, "Finished Jobs cost little")',
                secrets.mask(why),
            )
        self._whole_jobs = why

    # --- reads -----------------------------------------------------------------------------------

    def list_templates(self, namespace: str) -> list[dict[str, Any]]:
        """The Templates labelled template=solver or template=package-analyzer in ``namespace``."""
        body = self._get_object(
            "list",
            "templates.template.openshift.io",
            namespace,
            lambda: self._custom.list_namespaced_custom_object(
                "template.openshift.io",
                "v1",
                namespace,
                "templates",
                label_selector=TEMPLATE_SELECTOR,
                _preload_content=False,
                _request_timeout=self._timeout,
            ),
        )
        return _objects(body, f"list templates.template.openshift.io in namespace {namespace!r}")

    def list_owned_jobs(
        self,
        namespace: str,
        *,
        reduce: Reduce | None = None,
        rows: TableRows | None = None,
        with_metadata: bool = False,
    ) -> Iterator[dict[str, Any]]:
        """Jobs labelled as created by graph-refresh, paged; each passed through ``reduce`` as it is parsed.

        With ``rows``, the Jobs that succeeded (most of them) are listed as server-side Tables instead, each
        row read by ``rows``: their names alone for items' first attempts (``with_metadata`` False), their
        metadata (labels and annotations) for the others; the rest whole. Where the server refuses that,
        everything is listed whole, and the run says so once (design: Finished Jobs cost little)."""
        if rows is None or self._whole_jobs is not None:
            return self._list_owned("jobs.batch", namespace, self._batch.list_namespaced_job, reduce=reduce)
        return self._jobs_by_state(namespace, reduce, rows, with_metadata)

    def list_owned_pods(
        self, namespace: str, *, field_selector: str | None = None, reduce: Reduce | None = None
    ) -> Iterator[dict[str, Any]]:
        """Pods of the Jobs graph-refresh created (their pod templates carry our labels), paged, only those
        ``field_selector`` selects (``status.phase=Failed``, say); each passed through ``reduce``."""
        return self._list_owned(
            "pods", namespace, self._core.list_namespaced_pod, field_selector=field_selector, reduce=reduce
        )

    def list_item_jobs(self, namespace: str, keys: Sequence[str]) -> list[dict[str, Any]]:
        """The owned Jobs of the items ``keys`` (their ``thoth-station.ninja/item`` labels): a few, one request."""
        selector = f"{OWNED_SELECTOR},{LABEL_ITEM} in ({','.join(sorted(set(keys)))})"
        body = self._get_object(
            "list",
            "jobs.batch",
            namespace,
            lambda: self._batch.list_namespaced_job(
                namespace, label_selector=selector, _preload_content=False, _request_timeout=self._timeout
            ),
        )
        return _objects(body, f"list jobs.batch in namespace {namespace!r}")

    def list_item_pods(self, namespace: str, keys: Sequence[str], field_selector: str) -> list[dict[str, Any]]:
        """The owned pods of the items ``keys`` that ``field_selector`` selects: a few, one request."""
        selector = f"{OWNED_SELECTOR},{LABEL_ITEM} in ({','.join(sorted(set(keys)))})"
        body = self._get_object(
            "list",
            "pods",
            namespace,
            lambda: self._core.list_namespaced_pod(
                namespace,
                label_selector=selector,
                field_selector=field_selector,
                _preload_content=False,
                _request_timeout=self._timeout,
            ),
        )
        return _objects(body, f"list pods in namespace {namespace!r}")

    def list_quotas(self, namespace: str) -> list[dict[str, Any]]:
        """Every ResourceQuota in ``namespace``, as the API returns them."""
        body = self._get_object(
            "list",
            "resourcequotas",
            namespace,
            lambda: self._core.list_namespaced_resource_quota(
                namespace, _preload_content=False, _request_timeout=self._timeout
            ),
        )
        return _objects(body, f"list resourcequotas in namespace {namespace!r}")

    def read_configmap(self, namespace: str, name: str) -> tuple[dict[str, str], str] | None:
        """The ``data`` of ConfigMap ``name`` and its ``resourceVersion``; None when it does not exist.

        Retried like every read; any other failure raises. A ConfigMap without data has ``{}``.
        """
        what = f"get configmaps {name!r} in namespace {namespace!r}"
        try:
            body = self._get_object(
                "get",
                f"configmaps {name!r}",
                namespace,
                lambda: self._core.read_namespaced_config_map(
                    name, namespace, _preload_content=False, _request_timeout=self._timeout
                ),
            )
        except NotFound:
            return None
        data = body.get("data") or {}
        version = (body.get("metadata") or {}).get("resourceVersion")
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise GarbledAnswer(f"{what}: its data is not a map of strings")
        if not isinstance(version, str) or not version:
            raise GarbledAnswer(f"{what}: the answer has no metadata.resourceVersion")
        return {str(key): value for key, value in data.items()}, version

    # --- writes (sent once: what to do on failure is the caller's decision) ----------------------------

    def create_job(self, namespace: str, job: dict[str, Any], *, dry_run: bool = False) -> None:
        """Create one Job; raise a ClusterError subclass (AlreadyExists, QuotaExceeded, Throttled, ...).

        ``dry_run``: send ``dryRun=All``, so the API server validates, admits and quota-checks the Job and
        stores nothing: ``--server-dry-run`` (design: A run).
        """
        extra: dict[str, Any] = {"dry_run": "All"} if dry_run else {}
        self._send(
            "create",
            "jobs.batch",
            namespace,
            lambda: _drained(
                self._batch.create_namespaced_job(
                    namespace, job, _preload_content=False, _request_timeout=self._timeout, **extra
                )
            ),
        )

    def create_configmap(self, namespace: str, name: str, data: Mapping[str, str], labels: Mapping[str, str]) -> str:
        """Create ConfigMap ``name`` with ``data`` and ``labels``; return its resourceVersion.

        Raises AlreadyExists (409) when it exists (read it, merge, then replace), or another ClusterError.
        """
        body = _configmap(namespace, name, data, labels)
        return self._write(
            "create",
            name,
            namespace,
            lambda: self._core.create_namespaced_config_map(
                namespace, body, _preload_content=False, _request_timeout=self._timeout
            ),
        )

    def replace_configmap(
        self,
        namespace: str,
        name: str,
        data: Mapping[str, str],
        resource_version: str,
        *,
        labels: Mapping[str, str] = OWNED_LABELS,
    ) -> str:
        """Replace ConfigMap ``name``'s data, if it is still at ``resource_version``; return the new version.

        Raises Conflict (409) when it changed since it was read (read it again, merge, retry), NotFound when
        it is gone, or another ClusterError. A replace sets the labels too: ``labels`` are those it keeps.
        """
        body = _configmap(namespace, name, data, labels)
        body["metadata"]["resourceVersion"] = resource_version
        return self._write(
            "update",
            name,
            namespace,
            lambda: self._core.replace_namespaced_config_map(
                name, namespace, body, _preload_content=False, _request_timeout=self._timeout
            ),
        )

    def _write(self, verb: str, name: str, namespace: str, request: Callable[[], Any]) -> str:
        what = f"{verb} configmaps {name!r} in namespace {namespace!r}"
        body = self._send(verb, f"configmaps {name!r}", namespace, lambda: _json_object(request(), what))
        version = (body.get("metadata") or {}).get("resourceVersion")
        return version if isinstance(version, str) else ""


def _configmap(namespace: str, name: str, data: Mapping[str, str], labels: Mapping[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "data": dict(data),
    }
