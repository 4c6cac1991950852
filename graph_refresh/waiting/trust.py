"""Who may ask for what (docs/lanes.md, "Requests: who may ask for what"): a request only reorders work the deployment
would do anyway. Pure: the normal form of an index URL, the indexes a deployment trusts, and the matching of an
asked version to the store's spelling of it.

Anyone allowed to update the requests ConfigMap can write a request, so a request never names where a Job
fetches from: its index must be one the store lists or one the operator allowed (``--allowed-index``), and the
Job gets the store's own spelling of it (credentials included, which the ConfigMap never holds).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from packaging.version import InvalidVersion, Version

from graph_refresh.config import redact_url
from graph_refresh.items import normal_index


@dataclass(frozen=True)
class TrustedIndexes:
    """The indexes a deployment fetches from: normal form → the spelling a Job gets."""

    spellings: Mapping[str, str]
    _refusals: dict[str, str | None] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, store_urls: Iterable[str], allowed: Iterable[str] = ()) -> TrustedIndexes:
        """The store's indexes (its own spelling wins) and the operator's ``allowed`` ones. A store URL that is
        not a valid index URL (a ``$`` in it, say) is trusted by nobody."""
        spellings: dict[str, str] = {}
        for url in allowed:
            if (normal := normal_index(url)) is not None:
                spellings[normal] = url.strip()
        for url in sorted(store_urls):
            if (normal := normal_index(url)) is not None:
                spellings[normal] = url
        return cls(spellings)

    def spelling(self, url: str) -> str | None:
        """The spelling of the trusted index ``url`` names (in any spelling); None when it is not trusted."""
        normal = normal_index(url)
        return None if normal is None else self.spellings.get(normal)

    def refusal(self, url: str) -> str | None:
        """None when the deployment trusts the index ``url``; else why no Job fetches from it (an index the graph
        knows only from a dependency, say). Asked for every candidate a run examines: remembered per URL."""
        if url not in self._refusals:
            trusted = self.spelling(url) is not None
            self._refusals[url] = None if trusted else f"index {redact_url(url)} is not one the deployment trusts"
        return self._refusals[url]

    def described(self) -> str:
        """The trusted indexes as a message lists them (credentials masked)."""
        if not self.spellings:
            return "none (the graph lists no index and --allowed-index names none)"
        return ", ".join(sorted(redact_url(url) for url in self.spellings.values()))


def same_version(asked: str, known: str) -> bool:
    """Whether two spellings name one version: equal as written, or equal as PEP 440 versions (``1.0`` =
    ``1.0.0`` = ``v1.0``); a legacy version (no PEP 440 form) only as written."""
    if asked == known:
        return True
    try:
        return Version(asked) == Version(known)
    except InvalidVersion:
        return False


def store_spelling(asked: str, known: Iterable[str]) -> str | None:
    """The store's spelling of version ``asked`` among ``known`` (the store's versions of the package on the
    index): the same text if the store has it, else the first (in sorted order) equal by PEP 440; None when
    none is."""
    spellings = sorted(set(known))
    if asked in spellings:
        return asked
    return next((version for version in spellings if same_version(asked, version)), None)
