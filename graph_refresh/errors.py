"""One error hierarchy; the CLI maps each class to an exit code (SPEC §7)."""

from __future__ import annotations

MAX_BODY_CHARS = 300  # API bodies are truncated before they reach a log line


def truncate(text: str, limit: int = MAX_BODY_CHARS) -> str:
    """Shorten ``text`` for a log line or a report field."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class GraphRefreshError(Exception):
    """Base of every error graph-refresh raises on purpose."""


class ConfigError(GraphRefreshError):
    """Usage or configuration error: exit 2, nothing was done."""


class StoreError(GraphRefreshError):
    """The graph store could not be read: exit 1."""


class Interrupted(GraphRefreshError):
    """A signal (SIGTERM, SIGINT) interrupted the run while it waited to retry a read: exit 1."""


class TemplateError(GraphRefreshError):
    """Job Templates are missing, ambiguous or invalid: exit 1."""


class ClusterError(GraphRefreshError):
    """The Kubernetes API refused or failed a request, or no credentials to reach it were found.

    ``status`` is the HTTP status (0 when no answer arrived); ``retry_after`` is the server's
    Retry-After in seconds, when it sent one; ``reached`` is False when the request surely never got to
    the server (no connection, TLS refused), so a create cannot have happened.
    """

    def __init__(
        self, message: str, *, status: int = 0, retry_after: float | None = None, reached: bool = True
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after
        self.reached = reached
