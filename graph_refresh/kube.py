"""The only module that talks to the Kubernetes API (kubernetes 11 client).

Objects travel as plain dicts (``_preload_content=False``): graph-refresh never needs the
generated models, and raw JSON keeps Template and Job bodies exactly as the server has them.
Every client error is wrapped in :class:`ClusterError` at this boundary, with the HTTP status,
the server's message (truncated) and which verb on which resource in which namespace failed.
The loaded Configuration holds the bearer token: it is never logged.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import urllib3
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from kubernetes.config.config_exception import ConfigException
from kubernetes.config.incluster_config import SERVICE_CERT_FILENAME, SERVICE_TOKEN_FILENAME, InClusterConfigLoader
from kubernetes.utils.quantity import parse_quantity as _parse_quantity

from graph_refresh.config import ClusterSettings, redact_url
from graph_refresh.errors import ClusterError, truncate
from graph_refresh.items import OWNED_SELECTOR

logger = logging.getLogger(__name__)

REQUEST_TIMEOUT = (10, 60)  # (connect, read) seconds; kubernetes 11 only honours ints or a tuple
LIST_PAGE_SIZE = 500  # objects per list call; the API server's continue token carries us on
TEMPLATE_SELECTOR = "template in (solver,package-analyzer)"
READ_ATTEMPTS = 3  # a list is retried on 429/5xx/no answer: a blip must not cost the hourly run
READ_BACKOFF_SECONDS = 0.5  # then 1 s
MAX_READ_RETRY_AFTER_SECONDS = 30.0

T = TypeVar("T")
# Failures that happen before a request leaves: a create cannot have taken place.
_NEVER_SENT = (
    urllib3.exceptions.SSLError,
    urllib3.exceptions.NewConnectionError,
    urllib3.exceptions.ConnectTimeoutError,
)


def parse_quantity(value: str | int | float) -> Decimal:
    """A Kubernetes quantity (``500m``, ``3Gi``, ``1``) as a Decimal."""
    return Decimal(_parse_quantity(value))


def _load_configuration(settings: ClusterSettings) -> client.Configuration:
    """In-cluster service account first, then ``KUBECONFIG`` / ``~/.kube/config``, like oc and kubectl."""
    configuration = client.Configuration()
    # kubernetes 11 hands out shallow copies of one process-wide default Configuration: without dicts of
    # its own, the token set below would land in the shared api_key dict and reach every later client.
    configuration.api_key = {}
    configuration.api_key_prefix = {}
    loader = InClusterConfigLoader(token_filename=SERVICE_TOKEN_FILENAME, cert_filename=SERVICE_CERT_FILENAME)
    try:
        loader._load_config()  # the public load_and_set() would replace the process-wide default
        configuration.host = loader.host
        configuration.ssl_ca_cert = loader.ssl_ca_cert
        configuration.api_key["authorization"] = "bearer " + loader.token.strip()
        source = "in-cluster service account"
    except ConfigException:
        # kubernetes 11 reads KUBECONFIG once, when it is imported (KUBE_CONFIG_DEFAULT_LOCATION); pass
        # the path explicitly so the environment of this run is what counts, as the message says.
        kubeconfig = os.environ.get("KUBECONFIG") or "~/.kube/config"
        try:
            config.load_kube_config(config_file=kubeconfig, client_configuration=configuration, persist_config=False)
        except (ConfigException, OSError, TypeError, ValueError) as error:
            # kubernetes 11 reads a context naming a missing cluster or user as None: a TypeError.
            why = f"its context, cluster or user is incomplete ({error})" if isinstance(error, TypeError) else error
            raise ClusterError(  # a cluster failure (SPEC §7: exit 1, with a report), not a bad option value
                f"no cluster credentials: not in a cluster, and no usable kubeconfig ({kubeconfig}): {why}",
                reached=False,
            ) from error
        source = f"kubeconfig {kubeconfig}"
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
    return configuration


def _message(error: ApiException) -> str:
    try:
        body = json.loads(error.body or b"{}")
        return str(body.get("message") or error.reason)
    except (ValueError, AttributeError):
        return str(error.reason or error.body)


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


def _json_object(response: Any, what: str) -> dict[str, Any]:
    """The JSON object of a response read in full; a torn or foreign body is a ClusterError (no answer)."""
    try:
        body = json.loads(response.data)
    except (ValueError, TypeError) as error:
        raise ClusterError(f"{what}: the answer is not JSON: {truncate(str(error))}") from error
    if not isinstance(body, dict):
        raise ClusterError(f"{what}: the answer is not a JSON object")
    return body


class Cluster:
    """The cluster as graph-refresh sees it: Templates in infra, owned Jobs and quotas in middletier."""

    def __init__(self, settings: ClusterSettings, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self._configuration = _load_configuration(settings)
        self._api = client.ApiClient(self._configuration)
        # urllib3 would otherwise retry on its own (3 times, sleeping out a 429's Retry-After unseen):
        # every retry is decided here and in the scheduler, and waits through the sleep seam.
        self._api.rest_client.pool_manager.connection_pool_kw["retries"] = False
        self._batch = client.BatchV1Api(self._api)
        self._core = client.CoreV1Api(self._api)
        self._custom = client.CustomObjectsApi(self._api)
        self._sleep = sleep
        self._host = redact_url(self._configuration.host)  # a server URL may carry user:password@

    def _call(self, verb: str, resource: str, namespace: str, request: Callable[[], T]) -> T:
        """Send one request, wrapping failures in ClusterError.

        Reads (``list``) are retried on 429, 5xx and no answer, ``READ_ATTEMPTS`` times in all; creates are
        sent once here, their retry policy is the scheduler's.
        """
        attempts = READ_ATTEMPTS if verb == "list" else 1
        for attempt in range(attempts):
            try:
                return self._send(verb, resource, namespace, request)
            except ClusterError as error:
                transient = error.status in (0, 429) or error.status >= 500
                if attempt + 1 >= attempts or not transient or "TLS verification failed" in str(error):
                    raise
                wait = READ_BACKOFF_SECONDS * 2**attempt
                if error.status == 429 and error.retry_after is not None:
                    wait = min(error.retry_after, MAX_READ_RETRY_AFTER_SECONDS)
                logger.info("%s; retrying in %.1fs", error, wait)
                self._sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _send(self, verb: str, resource: str, namespace: str, request: Callable[[], T]) -> T:
        try:
            return request()
        except ApiException as error:
            status = int(error.status or 0)
            if status == 0:  # kubernetes 11 turns a bare urllib3 SSLError into ApiException(status=0)
                raise ClusterError(
                    f"{verb} {resource} in namespace {namespace!r}: TLS verification failed with "
                    f"{self._host}: {truncate(str(error.reason))}",
                    reached=False,
                ) from error
            raise ClusterError(
                f"{verb} {resource} in namespace {namespace!r} was refused ({status} {error.reason}): "
                f"{truncate(_message(error))}",
                status=status,
                retry_after=_retry_after(error),
            ) from error
        except urllib3.exceptions.HTTPError as error:
            cause = error.reason if isinstance(error, urllib3.exceptions.MaxRetryError) else error
            kind = "TLS verification failed" if isinstance(cause, urllib3.exceptions.SSLError) else "no answer"
            raise ClusterError(
                f"{verb} {resource} in namespace {namespace!r}: {kind} from {self._host}: {truncate(str(cause))}",
                reached=not isinstance(cause, _NEVER_SENT),
            ) from error

    def _list(self, resource: str, namespace: str, request: Callable[[], Any]) -> dict[str, Any]:
        """One list call, its body read and parsed inside the retried request."""
        what = f"list {resource} in namespace {namespace!r}"
        return self._call("list", resource, namespace, lambda: _json_object(request(), what))

    def list_templates(self, namespace: str) -> list[dict[str, Any]]:
        """The Templates labelled template=solver or template=package-analyzer in ``namespace``."""
        body = self._list(
            "templates.template.openshift.io",
            namespace,
            lambda: self._custom.list_namespaced_custom_object(
                "template.openshift.io",
                "v1",
                namespace,
                "templates",
                label_selector=TEMPLATE_SELECTOR,
                _preload_content=False,
                _request_timeout=REQUEST_TIMEOUT,
            ),
        )
        return list(body.get("items") or [])

    def list_owned_jobs(self, namespace: str) -> Iterator[dict[str, Any]]:
        """Jobs labelled as created by graph-refresh, paged with ``limit``/``continue``."""
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"label_selector": OWNED_SELECTOR, "limit": LIST_PAGE_SIZE}
            if token:
                kwargs["_continue"] = token
            body = self._list(
                "jobs.batch",
                namespace,
                lambda kwargs=kwargs: self._batch.list_namespaced_job(  # type: ignore[misc]
                    namespace, _preload_content=False, _request_timeout=REQUEST_TIMEOUT, **kwargs
                ),
            )
            yield from body.get("items") or []
            previous, token = token, (body.get("metadata") or {}).get("continue")
            if not token:
                return
            if token == previous:  # a proxy that drops ?continue= would have us list the first page forever
                raise ClusterError(
                    f"list jobs.batch in namespace {namespace!r}: the API answered the same continue token twice"
                )

    def list_owned_pods(self, namespace: str) -> Iterator[dict[str, Any]]:
        """Pods of the Jobs graph-refresh created (our labels are on the pod template too)."""
        body = self._list(
            "pods",
            namespace,
            lambda: self._core.list_namespaced_pod(
                namespace, label_selector=OWNED_SELECTOR, _preload_content=False, _request_timeout=REQUEST_TIMEOUT
            ),
        )
        yield from body.get("items") or []

    def list_quotas(self, namespace: str) -> list[dict[str, Any]]:
        """Every ResourceQuota in ``namespace``, as the API returns them."""
        body = self._list(
            "resourcequotas",
            namespace,
            lambda: self._core.list_namespaced_resource_quota(
                namespace, _preload_content=False, _request_timeout=REQUEST_TIMEOUT
            ),
        )
        return list(body.get("items") or [])

    def create_job(self, namespace: str, job: dict[str, Any]) -> None:
        """Create one Job; raises ClusterError (409 when it exists, 403 when refused, ...)."""
        response = self._call(
            "create",
            "jobs.batch",
            namespace,
            lambda: self._batch.create_namespaced_job(
                namespace, job, _preload_content=False, _request_timeout=REQUEST_TIMEOUT
            ),
        )
        # Drain the (small) answer so its connection goes back to the pool: with _preload_content=False an
        # unread response keeps the connection checked out, and every create would open a new TLS connection.
        response.drain_conn()
        response.release_conn()
