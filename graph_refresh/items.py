"""Work items: what one Job does, its stable identity, and the checks it must pass (design: Items).

Pure code: no I/O. Everything that becomes a Job name, a label or a Template parameter is derived
here, so the planner, the scheduler and the cluster view agree on it.
"""

from __future__ import annotations

import functools
import hashlib
import re
import sys
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii
from typing import Literal, NamedTuple
from urllib.parse import urlsplit

from graph_refresh.config import redact_url
from graph_refresh.errors import TemplateError

Kind = Literal["solver", "package-analyzer"]
SOLVER: Kind = "solver"
ANALYZER: Kind = "package-analyzer"
KINDS: tuple[Kind, ...] = (SOLVER, ANALYZER)

KEY_LENGTH = 10  # hex chars of the item hash in names and labels: 40 bits, collisions negligible
MAX_SOLVER_NAME = 46  # "<solver>-<key>" fits 57: the kubelet cuts a pod hostname (name + "-xxxxx") at 63
MAX_PACKAGE_NAME = 200
MAX_INDEX_URL = 2048
NAMES_REMEMBERED = 4096  # package names whose check is kept: the streams' recent ones, at most ~1 MiB
VERSIONS_REMEMBERED = 4096  # version strings whose check is kept, at most ~1 MiB
INDEX_URLS_REMEMBERED = 256  # index URLs whose check is kept (a graph has a handful): at most ~0.5 MiB

LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_KIND = "thoth-station.ninja/kind"
LABEL_SOLVER = "thoth-station.ninja/solver"
LABEL_ITEM = "thoth-station.ninja/item"
LABEL_ATTEMPT = "thoth-station.ninja/attempt"
# The item itself, on every Job we create: a failed Job is learned from (design: Learning) even when its item is
# not met again before the Job's TTL removes it.
ANNOTATION_PACKAGE = "thoth-station.ninja/package"
ANNOTATION_VERSION = "thoth-station.ninja/version"
ANNOTATION_INDEX = "thoth-station.ninja/index"
MANAGER = "graph-refresh"
OWNED_SELECTOR = f"{LABEL_MANAGED_BY}={MANAGER}"
OWNED_LABELS = {LABEL_MANAGED_BY: MANAGER}  # on everything graph-refresh creates

# PEP 508 names: ASCII letters, digits, and . _ - inside. Spelled out rather than re.IGNORECASE, which
# would also let through the Kelvin sign and the long s (they case-fold to k and s).
_NAME_RE = re.compile(r"[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9]")
_SEPARATORS_RE = re.compile(r"[-_.]+")  # PEP 503: each run of them is one "-", and the name is lower-cased
_VERSION_RE = re.compile(r"[A-Za-z0-9.+!_-]{1,128}")
INDEX_URL_RULE = "an http(s) index URL with a host and without whitespace, quotes, '\\' or '$'"
"""What every index URL must be, as messages say it."""
# http(s), then printable ASCII without whitespace, quotes, backticks, "\" or "$" (no control characters either):
# the kubelet expands $(VAR) in a container's env values and arguments, so a "$" could send a secret elsewhere;
# parsers disagree on a "\" (urllib3 ends the host there, urlsplit does not), so one could make another host
# look like a trusted index.
_INDEX_RE = re.compile(r"https?://[!#%&(-\[\]-_a-~]+")
# solver-<os_name>-<os_version>-py<digits>; every part is DNS-safe so the Job name is too.
_SOLVER_RE = re.compile(r"solver-([a-z0-9]+)-([a-z0-9]+(?:\.[a-z0-9]+)*)-py([0-9]{2,})")


class Candidate(NamedTuple):
    """One (package, version, index) the graph store yields; the name is PEP 503 normalised."""

    package_name: str
    package_version: str
    index_url: str

    def __repr__(self) -> str:
        """As a log shows it: an index URL's credentials (``user:password@``, ``?token=``) hidden."""
        return f"Candidate({self.package_name!r}, {self.package_version!r}, {redact_url(self.index_url)!r})"


@dataclass(frozen=True)
class SolverEnvironment:
    """The runtime environment a solver resolves in, parsed from its name (DGRAPH.md)."""

    name: str
    os_name: str
    os_version: str
    python_version: str


def parse_solver_name(name: str, *, template: str) -> SolverEnvironment:
    """Parse ``solver-<os>-<os_version>-py<digits>``; raise TemplateError naming the Template if it does not fit."""
    match = _SOLVER_RE.fullmatch(name)
    if match is None or len(name) > MAX_SOLVER_NAME:
        raise TemplateError(
            f"solver name {name!r} in Template {template!r} does not have the shape "
            f"solver-<os_name>-<os_version>-py<digits> (lowercase, at most {MAX_SOLVER_NAME} characters)"
        )
    os_name, os_version, py = match.groups()
    return SolverEnvironment(name, os_name, os_version, f"{py[0]}.{py[1:]}")


JOB_NAME_RE = re.compile(rf"(?:{_SOLVER_RE.pattern}|{ANALYZER})-[0-9a-f]{{{KEY_LENGTH}}}")


def is_job_name(name: str) -> bool:
    """Whether ``name`` has the shape of a Job name graph-refresh gives."""
    return JOB_NAME_RE.fullmatch(name) is not None


def first_attempt_labels(name: str) -> dict[str, str] | None:
    """The labels graph-refresh gives the Job ``name`` if it is an item's first attempt (kind, solver, item and
    attempt 1: a first attempt's name is its stream and its item's key); None when ``name`` is not a name
    graph-refresh gives. A retry's name ends in another hash: only its labels say whose it is."""
    if not is_job_name(name):
        return None
    stream, _, key = name.rpartition("-")
    return {**_stream_labels(stream), LABEL_ITEM: key}


@functools.lru_cache(maxsize=256)
def _stream_labels(stream: str) -> dict[str, str]:
    """The labels every first attempt of ``stream`` (a solver's name, or the analyzer's) has but the item; one
    shared string each (a run reads a hundred thousand of them). Copied by the caller, never changed."""
    labels = {LABEL_KIND: ANALYZER if stream == ANALYZER else SOLVER, LABEL_ATTEMPT: "1"}
    if stream != ANALYZER:
        labels[LABEL_SOLVER] = stream
    return {sys.intern(key): sys.intern(value) for key, value in labels.items()}


def normalize_name(name: str) -> str:
    """PEP 503 normal form; the only spelling of a package name graph-refresh compares.

    A name that is not a PEP 508 name stays as given, so that it is still skipped as invalid: lower-casing
    would otherwise turn a hostile "\u212aeras" (Kelvin sign) into a plausible "keras".
    """
    return _SEPARATORS_RE.sub("-", name).lower() if _NAME_RE.fullmatch(name) else name


def is_package_name(name: str) -> bool:
    """Whether ``name`` is a PEP 508 name of at most ``MAX_PACKAGE_NAME`` characters."""
    return _valid_name(name)


def is_version(version: str) -> bool:
    """Whether ``version`` has only the characters a run accepts in a version, and at most 128 of them."""
    return _valid_version(version)


def invalid_reason(candidate: Candidate) -> str | None:
    """Say why a candidate must never reach a manifest, or return None when it is fine."""
    name, version, index_url = candidate
    if not _valid_name(name):
        return "package name is not a PEP 508 name of at most 200 characters"
    if not _valid_version(version):
        return "version has characters outside [A-Za-z0-9.+!_-] or is longer than 128"
    if not _valid_index_url(index_url):
        return "index URL is not an http(s) URL without whitespace, quotes, '\\' or '$'"
    return None


@functools.lru_cache(maxsize=NAMES_REMEMBERED)
def _valid_name(name: str) -> bool:
    """Checked once per name while it stays in the cache: the streams meet each package's name once per version,
    in step (they read the store in one order)."""
    return len(name) <= MAX_PACKAGE_NAME and _NAME_RE.fullmatch(name) is not None


@functools.lru_cache(maxsize=VERSIONS_REMEMBERED)
def _valid_version(version: str) -> bool:
    """Checked once per version string while it stays in the cache: most are a few common ones ("1.0.0")."""
    return _VERSION_RE.fullmatch(version) is not None


@functools.lru_cache(maxsize=INDEX_URLS_REMEMBERED)
def _valid_index_url(index_url: str) -> bool:
    """Checked once per URL while it stays in the cache: a graph has a few index URLs, met millions of times."""
    return len(index_url) <= MAX_INDEX_URL and _INDEX_RE.fullmatch(index_url) is not None


def _hash(canonical: str) -> str:
    return hashlib.sha256(canonical.encode()).hexdigest()[:KEY_LENGTH]


@dataclass(frozen=True, init=False)
class WorkItem:
    """One Job's worth of work: a candidate for one solver, or for the package-analyzer (solver None)."""

    kind: Kind
    solver: str | None
    candidate: Candidate
    attempt: int = 1
    """1 for an item's first Job; n >= 2 for its n-th, a retry after failures (design: Learning)."""

    def __init__(self, kind: Kind, solver: str | None, candidate: Candidate, attempt: int = 1) -> None:
        # The planner makes one item per candidate it examines; a frozen dataclass's own __init__ sets each field
        # through object.__setattr__, twice as slow as filling the instance's dict at once. Frozen all the same.
        fields = self.__dict__
        fields["kind"], fields["solver"], fields["candidate"], fields["attempt"] = kind, solver, candidate, attempt

    @functools.cached_property
    def key(self) -> str:
        """Stable hash of the canonical item: the same item always gets the same key, whatever the attempt.

        Computed when first read, then kept: a run reads it several times for an item it plans or looks up in
        the cluster view, and never for the many a dry run without one only counts."""
        return _hash(self._canonical())

    @functools.cached_property
    def job_name(self) -> str:
        """``<solver>-<key>`` or ``package-analyzer-<key>``: a DNS-1123 name of at most 57 characters. A retry's
        key is taken from the canonical item and its attempt number, in the same shape."""
        if self.attempt == 1:
            return f"{self.solver or ANALYZER}-{self.key}"
        return f"{self.solver or ANALYZER}-{_hash(f'{self._canonical()[:-1]}, {self.attempt}]')}"

    def _canonical(self) -> str:
        """The bytes ``json.dumps([kind, solver or "", name, version, index], ensure_ascii=True)`` gives, without
        its encoder's overhead per call."""
        parts = (self.kind, self.solver or "", *self.candidate)
        return "[" + ", ".join(map(encode_basestring_ascii, parts)) + "]"

    @property
    def labels(self) -> dict[str, str]:
        """Labels graph-refresh adds to every Job it creates, and to its pod template."""
        labels = {
            LABEL_MANAGED_BY: MANAGER,
            LABEL_KIND: self.kind,
            LABEL_ITEM: self.key,
            LABEL_ATTEMPT: str(self.attempt),
        }
        if self.solver:
            labels[LABEL_SOLVER] = self.solver
        return labels

    @property
    def annotations(self) -> dict[str, str]:
        """The item on the Job: what a later run learns a failure of, after the candidate stream moved on (the
        index URL with its credentials masked: the Job's parameters carry it whole, its annotations never)."""
        name, version, index_url = self.candidate
        return {ANNOTATION_PACKAGE: name, ANNOTATION_VERSION: version, ANNOTATION_INDEX: redact_url(index_url)}

    @property
    def requirement(self) -> str:
        """The solver requirement string; arbitrary equality keeps legacy versions working."""
        return f"{self.candidate.package_name}==={self.candidate.package_version}"


DEFAULT_PORTS = {"http": 80, "https": 443}


def normal_index(url: str) -> str | None:
    """The form two spellings of one index share: scheme and host lower-cased, the default port left out, no
    user-info, query or fragment, no trailing ``/``. None when ``url`` is no http(s) URL with a host (or holds
    what an index URL must not: whitespace, quotes, ``$``)."""
    scheme, separator, rest = url.strip().partition("://")
    if not separator or invalid_reason(Candidate("a", "1", f"{scheme.lower()}://{rest}")) is not None:
        return None
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if scheme not in DEFAULT_PORTS or not host:
        return None
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    netloc = host if port is None or port == DEFAULT_PORTS[scheme] else f"{host}:{port}"
    return f"{scheme}://{netloc}{parts.path.rstrip('/')}"
