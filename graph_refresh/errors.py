"""One error hierarchy; the CLI maps each class to an exit code (design: Exit codes)."""

from __future__ import annotations

MAX_BODY_CHARS = 300  # API bodies are truncated before they reach a log line


def truncate(text: str, limit: int = MAX_BODY_CHARS) -> str:
    """Shorten ``text`` for a log line or a report field."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class GraphRefreshError(Exception):
    """Base of every error graph-refresh raises on purpose."""


def advised(error: BaseException) -> str:
    """An error for the line that ends a command: what failed, then what to do when the error knows."""
    hint = getattr(error, "hint", None)
    return f"{error}; {hint}" if hint else str(error)


class ConfigError(GraphRefreshError):
    """Usage or configuration error: exit 2, nothing was done."""


class StoreError(GraphRefreshError):
    """The graph store could not be read: exit 1."""


class Interrupted(GraphRefreshError):
    """A signal (SIGTERM, SIGINT) interrupted the run while it waited to retry a read, or an import: exit 1."""


class TemplateError(GraphRefreshError):
    """Job Templates are missing, ambiguous or invalid: exit 1."""


class ClusterError(GraphRefreshError):
    """The Kubernetes API refused or failed a request, or no credentials to reach it were found.

    ``status`` is the HTTP status (0 when no answer arrived); ``retry_after`` is the server's
    Retry-After in seconds, when it sent one; ``reached`` is False when the request surely never got to
    the server (no connection, TLS refused), so a create cannot have happened; ``hint`` says what an operator
    can do about it, when that is known (see :func:`advised`).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        retry_after: float | None = None,
        reached: bool = True,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after
        self.reached = reached
        self.hint = hint


# What the API answered, classified once in ``kube.py`` where the answer is parsed (callers match on the
# class, never on a status number or on message text).


class NoCredentials(ClusterError):
    """Not in a cluster, and no usable kubeconfig (missing, not YAML, incomplete): nothing was sent."""


class NoAnswer(ClusterError):
    """No usable answer arrived (connection refused or dropped, timeout, a body that cannot be read).

    ``reached`` says whether the request may have got to the server: a create may then have happened.
    """


class TlsFailure(NoAnswer):
    """TLS verification failed: the request never left (``reached`` False); retrying a read cannot help."""


class GarbledAnswer(NoAnswer):
    """An answer arrived but is not what the API sends (not JSON, not an object, nested too deep)."""


class Throttled(ClusterError):
    """429 Too Many Requests; ``retry_after`` is the server's Retry-After in seconds, when it sent one."""


class ServerError(ClusterError):
    """5xx: the API server or something in front of it failed; the request may have taken effect."""


class AlreadyExists(ClusterError):
    """409 on a create: an object of that name exists."""


class Conflict(ClusterError):
    """409 on an update: the object changed since it was read (its resourceVersion is stale)."""


class QuotaExceeded(ClusterError):
    """403 from ResourceQuota admission: the object does not fit what a quota still admits."""


class QuotaPending(ClusterError):
    """403 because a new ResourceQuota is not calculated yet; it settles within seconds."""


class Unauthorized(ClusterError):
    """401: the credentials were not accepted."""


class Forbidden(ClusterError):
    """403 for anything but quota: the service account lacks a permission."""


class Rejected(ClusterError):
    """Any other 4xx (400, 404, 422, ...): the request itself is wrong; sending it again cannot help."""


class NotFound(Rejected):
    """404: no such object (or resource)."""
