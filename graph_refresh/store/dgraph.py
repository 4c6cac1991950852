"""The Dgraph graph store: reads Thoth's knowledge graph from a Dgraph alpha over gRPC (DGRAPH.md).

The only module that imports pydgraph and grpc. Every read is one read-only transaction holding one
``Query`` RPC with GraphQL variables and a deadline; the transaction is always discarded (no commit,
and for a read-only transaction pydgraph sends no RPC for the discard). Streams page by uid with
``first``/``after`` and stop on an empty page, so a consumer that stops iterating stops the queries.

Failures are wrapped at this boundary: a bad TLS directory is a :class:`ConfigError` (exit 2);
anything the server or the network does is a :class:`StoreError` (exit 1) that names the host and
what went wrong. Transient failures of a read (unavailable, deadline, aborted, "please retry") are
retried a bounded number of times with exponential backoff, resuming from the same cursor.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import ssl
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pydgraph

from graph_refresh.backoff import STORE_READS, Backoff
from graph_refresh.config import DEFAULT_DGRAPH_PORT, StoreSettings, redact_url
from graph_refresh.errors import ConfigError, StoreError, truncate
from graph_refresh.items import Candidate, SolverEnvironment, invalid_reason, normalize_name
from graph_refresh.store.base import PAGE_SIZE, ItemStatus

logger = logging.getLogger(__name__)

CA_FILE = "ca.crt"  # names `dgraph cert -c user` writes, read from GRAPH_TLS_PATH as in 2019
CLIENT_CERT_FILE = "client.user.crt"
CLIENT_KEY_FILE = "client.user.key"

RECONNECT_BACKOFF_MS = 250  # gRPC's first reconnect back-off (default 1 s) so a retry finds the channel up
FIRST_CURSOR = "0x0"  # below every uid Dgraph assigns
# One page's answer (gRPC's default): 8 KiB a row at 500 rows. Every stream's first page is held at once,
# so a bigger bound would let hostile giant values push the run past the CronJob's 256Mi.
MAX_ANSWER_BYTES = 4 * 2**20


_CANDIDATE_FIELDS = ("package_name", "package_version", "index_url")
_ENTITY_FIELDS = " ".join(("uid", *_CANDIDATE_FIELDS))

# GraphQL variables only: nothing from the graph or the settings is ever formatted into these texts.
SOLVER_QUERY = f"""query unsolved($first: int, $after: string, $os: string, $osv: string, $py: string) {{
  var(func: eq(os_name, $os)) @filter(eq(os_version, $osv) AND eq(python_version, $py)
      AND has(python_package_version_label)) {{
    done as ~installed_from
  }}
  page(func: has(python_package_version_entity_label), first: $first, after: $after) @filter(NOT uid(done)) {{
    {_ENTITY_FIELDS}
  }}
}}"""

ANALYZER_QUERY = f"""query unanalyzed($first: int, $after: string) {{
  page(func: has(python_package_version_entity_label), first: $first, after: $after)
      @filter(NOT has(package_analyzer_input)) {{
    {_ENTITY_FIELDS}
  }}
}}"""

# The backlog (design: Backlog): the candidate queries' filters, no paging, and a block-level count(uid), which Dgraph
# answers as [{"n": number of root nodes the block matched}].
SOLVER_COUNT_QUERY = """query unsolved_backlog($os: string, $osv: string, $py: string) {
  var(func: eq(os_name, $os)) @filter(eq(os_version, $osv) AND eq(python_version, $py)
      AND has(python_package_version_label)) {
    done as ~installed_from
  }
  backlog(func: has(python_package_version_entity_label)) @filter(NOT uid(done)) {
    n: count(uid)
  }
}"""

ANALYZER_COUNT_QUERY = """query unanalyzed_backlog {
  backlog(func: has(python_package_version_entity_label)) @filter(NOT has(package_analyzer_input)) {
    n: count(uid)
  }
}"""

# Counts over an arrival window (after < uid <= last): the backlog's filters plus two uid bounds. The lower
# bound is ``after`` on the root ``has``, the form the page queries use: Dgraph's ``has`` starts its
# iteration past that uid, and a block-level count(uid) counts the root nodes left after the filters. The
# upper bound is a set difference: the ``late`` block collects every entity above ``$last`` (the same
# ``has`` with ``after`` and no ``first``: all of them, not a page), and ``NOT uid(late)`` removes them.
# Neither needs a sort, a uid(var) root with ``after`` or a root @cascade, the forms docs/dgraph.md rules out.
SOLVER_WINDOW_COUNT_QUERY = """query unsolved_window($os: string, $osv: string, $py: string, $after: string,
    $last: string) {
  var(func: eq(os_name, $os)) @filter(eq(os_version, $osv) AND eq(python_version, $py)
      AND has(python_package_version_label)) {
    done as ~installed_from
  }
  var(func: has(python_package_version_entity_label), after: $last) {
    late as uid
  }
  backlog(func: has(python_package_version_entity_label), after: $after) @filter(NOT uid(done) AND NOT uid(late)) {
    n: count(uid)
  }
}"""

ANALYZER_WINDOW_COUNT_QUERY = """query unanalyzed_window($after: string, $last: string) {
  var(func: has(python_package_version_entity_label), after: $last) {
    late as uid
  }
  backlog(func: has(python_package_version_entity_label), after: $after)
      @filter(NOT has(package_analyzer_input) AND NOT uid(late)) {
    n: count(uid)
  }
}"""

# The highest entity uid. ``first: -1`` (the last one) is applied where the block's pagination runs, on a
# uid(var) root; on a ``has`` root without filters Dgraph hands ``first`` to its ``has`` handler, which
# stops after |first| uids from the front, so it would answer the lowest uid instead.
ARRIVAL_END_QUERY = """query arrival_end {
  var(func: has(python_package_version_entity_label)) {
    entities as uid
  }
  end(func: uid(entities), first: -1) {
    uid
  }
}"""

# One item's entity nodes (one, unless racing writers made two), each with the environments of its solved
# records and its number of analyzer runs: point lookups on the exact indexes, never a scan.
STATUS_QUERY = """query status($name: string, $version: string, $index: string) {
  item(func: eq(package_name, $name)) @filter(eq(package_version, $version) AND eq(index_url, $index)
      AND has(python_package_version_entity_label)) {
    uid
    installed_from @filter(has(python_package_version_label)) {
      os_name
      os_version
      python_version
    }
    analyzed: count(package_analyzer_input)
  }
}"""

# A point lookup, only for the rare row whose name is not in PEP 503 form: is the normalised spelling
# there too (then that one is the item)?
TWIN_QUERY = """query twin($name: string, $version: string, $index: string) {
  twin(func: eq(package_name, $name)) @filter(eq(package_version, $version) AND eq(index_url, $index)
      AND has(python_package_version_entity_label)) {
    uid
  }
}"""

LOOKUP_BATCH = 500  # items (or packages) per lookup query: three lists of at most this many variables (a page)

_STATUS_FIELDS = f"""{_ENTITY_FIELDS}
    installed_from @filter(has(python_package_version_label)) {{
      os_name
      os_version
      python_version
    }}
    analyzed: count(package_analyzer_input)"""

# Each item's solved records (every environment), and through their depends_on edges the entity of each version
# they depend on (docs/dgraph.md, "Dependencies").
_DEPENDENCY_FIELDS = f"""{_ENTITY_FIELDS}
    installed_from @filter(has(python_package_version_label)) {{
      depends_on @filter(has(python_package_version_entity_label)) {{
        {_ENTITY_FIELDS}
      }}
    }}"""


def lookup_query(name: str, values: Sequence[Sequence[str]], fields: str) -> tuple[str, dict[str, str]]:
    """A query for the entities whose name is among ``values[0]``, whose version is among ``values[1]`` (any
    version when empty) and whose index is among ``values[2]``: three ``eq`` functions over lists of GraphQL
    variables ($n0, $v0, $i0, ...), so no value is ever part of the query text. Returns the text and the
    variables."""
    variables: dict[str, str] = {}
    lists = []
    for prefix, predicate, wanted in zip("nvi", _CANDIDATE_FIELDS, values, strict=True):
        distinct = list(dict.fromkeys(wanted))
        for i, value in enumerate(distinct):
            variables[f"${prefix}{i}"] = value
        if distinct:
            lists.append(f"eq({predicate}, [{', '.join(f'${prefix}{i}' for i in range(len(distinct)))}])")
    declared = ", ".join(f"{variable}: string" for variable in variables)
    root, *filters = lists
    condition = " AND ".join([*filters, "has(python_package_version_entity_label)"])
    return (
        f"query {name}({declared}) {{\n  item(func: {root}) @filter({condition}) {{\n    {fields}\n  }}\n}}",
        variables,
    )


INDEX_QUERY = """query indexes($first: int, $after: string) {
  page(func: has(python_package_index_label), first: $first, after: $after) {
    uid url
  }
}"""


_READ_ERRORS = (
    grpc.RpcError,
    pydgraph.errors.AbortedError,
    pydgraph.errors.RetriableError,
    pydgraph.errors.ConnectionError,
)


class _TooLarge(StoreError):
    """An answer over the gRPC receive limit (giant values in the graph): a smaller page may do."""


@dataclass(frozen=True)
class _Failure:
    """A classified read failure: ``kind`` is what the StoreError says, ``retry`` whether to try again."""

    kind: str
    retry: bool


def dgraph_address(host: str) -> str:
    """``host[:port]`` → ``host:port``, with Dgraph's gRPC port 9080 when none is given (IPv6 in brackets).

    Raise ConfigError naming GRAPH_SERVICE_HOST when it is not of that shape (a URL, a bad port).
    """
    value = host.strip()
    if value.startswith("["):  # [v6]:port or [v6]; anything else after "]" is a bad port
        name, _, rest = value.partition("]")
        name, port = f"{name}]", (rest[1:] if rest.startswith(":") else rest or None)
    elif value.count(":") > 1:  # a bare IPv6 address, or garbage with colons
        try:
            ipaddress.IPv6Address(value)
        except ValueError:
            raise ConfigError(
                f"GRAPH_SERVICE_HOST {host!r} is not host[:port] (an IPv6 address goes in brackets)"
            ) from None
        name, port = f"[{value}]", None
    else:
        name, _, port_text = value.partition(":")
        port = port_text if ":" in value else None
    bad_port = port is not None and not (port.isascii() and port.isdigit() and 0 < int(port) < 65536)
    if not name.strip("[]") or bad_port or any(c.isspace() or c in "/@" for c in name):
        raise ConfigError(f"GRAPH_SERVICE_HOST {host!r} is not host[:port] with a port from 1 to 65535")
    return f"{name}:{port or DEFAULT_DGRAPH_PORT}"


def channel_credentials(tls_path: Path | None, address: str) -> tuple[Any, str]:
    """gRPC channel credentials from GRAPH_TLS_PATH, and the transport: "plaintext", "TLS" or "mutual TLS".

    Unset path: no credentials (plaintext), with a warning.
    ``ca.crt`` is required; ``client.user.crt`` and ``client.user.key`` go together and make it
    mutual TLS. Any missing or unreadable file is a ConfigError naming it.
    """
    if tls_path is None:
        logger.warning("GRAPH_TLS_PATH is not set: talking to Dgraph at %s in plaintext", address)
        return None, "plaintext"
    if not tls_path.is_dir():
        raise ConfigError(f"GRAPH_TLS_PATH {str(tls_path)!r} is not a directory")
    ca, cert, key = (tls_path / name for name in (CA_FILE, CLIENT_CERT_FILE, CLIENT_KEY_FILE))
    if not ca.is_file():
        raise ConfigError(f"GRAPH_TLS_PATH: the root CA certificate {str(ca)!r} is missing")
    if cert.is_file() != key.is_file():
        missing, present = (key, cert) if cert.is_file() else (cert, key)
        raise ConfigError(
            f"GRAPH_TLS_PATH: {str(missing)!r} is missing; {present.name} and {missing.name} "
            "are used together for mutual TLS"
        )
    mutual = cert.is_file()
    root = _read(ca)
    chain = _read(cert) if mutual else None
    private_key = _read(key) if mutual else None
    _check_pem(ca, cert if mutual else None, key if mutual else None)
    transport = "mutual TLS" if mutual else "TLS"
    logger.info("Dgraph at %s: %s", address, transport)
    return grpc.ssl_channel_credentials(root, private_key, chain), transport


def _check_pem(ca: Path, cert: Path | None, key: Path | None) -> None:
    """Load the files as TLS would, so a garbled or mismatched file is a ConfigError naming it, not a handshake."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        context.load_verify_locations(cafile=str(ca))
    except (ssl.SSLError, ValueError) as error:
        raise ConfigError(f"GRAPH_TLS_PATH: {str(ca)!r} is not a PEM CA certificate: {error}") from error
    if cert is not None and key is not None:
        try:  # an empty password: an encrypted key fails here instead of prompting on the terminal
            context.load_cert_chain(certfile=str(cert), keyfile=str(key), password=lambda: b"")
        except (ssl.SSLError, ValueError, OSError) as error:
            raise ConfigError(
                f"GRAPH_TLS_PATH: {str(cert)!r} and {str(key)!r} are not a PEM certificate and its unencrypted "
                f"key: {error}"
            ) from error


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise ConfigError(f"GRAPH_TLS_PATH: cannot read {str(path)!r}: {error.strerror}") from error


_GRPC_PREFIX = "failed to connect to all addresses; last error: "  # says nothing when there is one address
_SOCKET_CLOSED_HINTS = {
    "plaintext": " (a TLS-only server closes plaintext connections: is GRAPH_TLS_PATH needed?)",
    "TLS": (
        f" (a server requiring mutual TLS does this: GRAPH_TLS_PATH needs {CLIENT_CERT_FILE} and {CLIENT_KEY_FILE})"
    ),
    "mutual TLS": "",
}


def describe_failure(error: Exception, *, timeout: float, transport: str = "plaintext") -> _Failure:
    """Map a pydgraph/gRPC error to what the StoreError says and whether a read may be retried.

    pydgraph wraps only some errors (DGRAPH.md): ABORTED becomes AbortedError, "Please retry"
    RetriableError; connection problems, TLS failures, deadlines and authentication arrive as
    grpc.RpcError, told apart by status code and details text. ``transport`` ("plaintext", "TLS",
    "mutual TLS") picks the hint for a connection the server closed.
    """
    if isinstance(error, pydgraph.errors.AbortedError):
        return _Failure("aborted", retry=True)
    if isinstance(error, pydgraph.errors.RetriableError):
        return _Failure(f"asked to retry ({truncate(str(error), 120)})", retry=True)
    if isinstance(error, pydgraph.errors.ConnectionError):
        return _Failure("unavailable (unhealthy connection)", retry=True)
    code_of, details_of = getattr(error, "code", None), getattr(error, "details", None)
    code = code_of() if callable(code_of) else None
    details = str(details_of() or "") if callable(details_of) else ""
    if details.startswith(_GRPC_PREFIX):  # then "UNKNOWN: " is the connection attempt's status, not the call's
        details = details.removeprefix(_GRPC_PREFIX).removeprefix("UNKNOWN: ")
    details = truncate(details)
    text = details.lower()
    if code == grpc.StatusCode.UNAUTHENTICATED or "invalid username or password" in text:
        return _Failure(f"authentication failed ({details})", retry=False)
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return _Failure(f"permission denied ({details})", retry=False)
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return _Failure(f"deadline exceeded after {timeout:g} s", retry=True)
    if code == grpc.StatusCode.UNAVAILABLE:
        if any(word in text for word in ("handshake", "ssl_error", "certificate")):
            return _Failure(f"TLS handshake failed ({details})", retry=False)  # a setup problem: retrying won't help
        if "socket closed" in text:
            return _Failure(f"unavailable: connection closed{_SOCKET_CLOSED_HINTS.get(transport, '')}", retry=True)
        return _Failure(f"unavailable ({details})", retry=True)
    if code == grpc.StatusCode.ABORTED:
        return _Failure("aborted", retry=True)
    name = getattr(code, "name", type(error).__name__)
    return _Failure(f"request failed: {name} ({details or truncate(str(error))})", retry=False)


class DgraphStore:
    """GraphStore over a Dgraph alpha (DGRAPH.md): read-only, paged by uid, retried with back-off.

    Construction checks the TLS files (ConfigError) and, when a user is configured, logs in
    (StoreError on failure). Nothing else touches the network until a stream is iterated.
    """

    name: str = "dgraph"
    may_repeat_items: bool = True  # Dgraph enforces no uniqueness: racing writers can leave two nodes of an item

    def __init__(
        self,
        settings: StoreSettings,
        *,
        page_size: int = PAGE_SIZE,
        sleep: Callable[[float], None] = time.sleep,
        prefetch: bool = True,
        reads: Backoff = STORE_READS,
    ) -> None:
        """``prefetch``: read each stream's next page while the current one is consumed (see ``_pages``);
        ``reads``: how often and after which waits a failed read is tried again."""
        if not settings.graph_service_host:
            raise ConfigError("GRAPH_SERVICE_HOST is not set: no Dgraph alpha to read from")
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        self.address = dgraph_address(settings.graph_service_host)
        self._timeout = float(settings.timeout_seconds)
        self._page_size = page_size
        self._prefetch = prefetch
        self._sleep = sleep
        self._reads = reads
        self._secret = settings.dgraph_password or None
        credentials, self.transport = channel_credentials(settings.graph_tls_path, self.address)
        options = [
            ("grpc.initial_reconnect_backoff_ms", RECONNECT_BACKOFF_MS),
            ("grpc.max_receive_message_length", MAX_ANSWER_BYTES),
        ]
        self._stub: Any = pydgraph.DgraphClientStub(self.address, credentials=credentials, options=options)
        self._client: Any = pydgraph.DgraphClient(self._stub)
        if settings.dgraph_user:
            try:
                self._login(settings.dgraph_user, settings.dgraph_password or "")
            except BaseException:
                self.close()
                raise

    # -- GraphStore ---------------------------------------------------------------------------

    def arrival_end(self) -> int:
        """The highest entity uid (an entity's arrival position is its uid: Dgraph leases uids in increasing
        blocks, so a node written later has a higher one); 0 when the graph holds no entity."""
        action = "reading the arrival end"
        document = self._read(lambda: self._query(ARRIVAL_END_QUERY, {}), action=action)
        rows = self._rows(document, "end", action)
        if not rows:
            return 0
        end = _uid_value(rows[-1]["uid"])
        if end < 1:
            raise StoreError(f"Dgraph at {self.address}: {action}: the answer's uid {rows[-1]['uid']!r} is no uid")
        return end

    def solver_candidates(self, solver: SolverEnvironment, *, up_to: int | None = None) -> Iterator[Candidate]:
        """Entities with no solved record of ``solver``'s (os_name, os_version, python_version), uid order;
        ``up_to``: the stream stops at the first uid above it."""
        variables = _environment(solver)
        return _until(self._entities(SOLVER_QUERY, variables, f"unsolved for {solver.name}"), up_to)

    def analyzer_candidates(self, *, up_to: int | None = None) -> Iterator[Candidate]:
        """Entities with no package_analyzer_input edge, uid order; ``up_to`` as in :meth:`solver_candidates`."""
        return _until(self._entities(ANALYZER_QUERY, {}, "unanalyzed"), up_to)

    def fresh_solver_candidates(self, solver: SolverEnvironment, *, after: int) -> Iterator[tuple[int, Candidate]]:
        """:meth:`solver_candidates` from the first uid above ``after`` on, with their uids: uid order is
        arrival order, so the same query simply starts its pages at that cursor."""
        variables = _environment(solver)
        return self._entities(SOLVER_QUERY, variables, f"fresh unsolved for {solver.name}", after=_cursor(after))

    def fresh_analyzer_candidates(self, *, after: int) -> Iterator[tuple[int, Candidate]]:
        """:meth:`analyzer_candidates` above uid ``after``, with their uids."""
        return self._entities(ANALYZER_QUERY, {}, "fresh unanalyzed", after=_cursor(after))

    def status(self, candidate: Candidate, solvers: Sequence[SolverEnvironment]) -> ItemStatus:
        """One query on the exact indexes of name, version and index (the name PEP 503 normalised).

        With two nodes of the item, its arrival is the lower uid, and a solved record or an analyzer run
        on either counts: the solver or the analyzer did run for the item. A node whose stored name is not
        in PEP 503 form is not found here (an exact index cannot match every spelling); the streams still
        yield it, normalised. Thoth's writers store normalised names.
        """
        name = normalize_name(candidate.package_name)
        variables = {"$name": name, "$version": candidate.package_version, "$index": candidate.index_url}
        action = f"looking up {name}"
        document = self._read(lambda: self._query(STATUS_QUERY, variables), action=action)
        return self._status(self._rows(document, "item", action), solvers, action)

    def statuses(self, candidates: Sequence[Candidate], solvers: Sequence[SolverEnvironment]) -> list[ItemStatus]:
        """One query per batch of items: every entity whose name, version and index are among the batch's (exact
        indexes, lists of variables), matched to the items here."""
        keys = [(normalize_name(name), version, index) for name, version, index in candidates]
        rows: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        for row in self._lookup("statuses", keys, _STATUS_FIELDS, "{} items"):
            key = tuple(self._string(row, field, "looking up items") for field in _CANDIDATE_FIELDS)
            rows.setdefault(key, []).append(row)  # type: ignore[arg-type]
        return [self._status(rows.get(key, []), solvers, "looking up items") for key in keys]

    def known_versions(self, packages: Sequence[tuple[str, str]]) -> dict[tuple[str, str], list[str]]:
        """One query per batch of packages: the entities of the batch's names on the batch's indexes."""
        pairs = list(dict.fromkeys((normalize_name(name), index) for name, index in packages))
        wanted, found = set(pairs), dict[tuple[str, str], set[str]]()
        action = "looking up the versions of packages"
        lookups = [(name, None, index) for name, index in pairs]
        for row in self._lookup("versions", lookups, _ENTITY_FIELDS, "the versions of {} packages"):
            name, version, index = (self._string(row, field, action) for field in _CANDIDATE_FIELDS)
            if (name, index) in wanted:
                found.setdefault((name, index), set()).add(version)
        return {pair: sorted(versions) for pair, versions in found.items()}

    def dependencies(self, items: Sequence[Candidate]) -> list[list[Candidate]]:
        """One query per batch of items: the batch's entities (as :meth:`statuses` finds them), their solved
        records in every environment, and the entity each of those ``depends_on``. Two nodes of one item, or of
        one dependency, count as one."""
        keys = [(normalize_name(name), version, index) for name, version, index in items]
        wanted, found = set(keys), dict[tuple[str, str, str], set[Candidate]]()
        action = "looking up dependencies"
        for row in self._lookup(
            "dependencies", list(dict.fromkeys(keys)), _DEPENDENCY_FIELDS, "the dependencies of {} items"
        ):
            name, version, index = (self._string(row, field, action) for field in _CANDIDATE_FIELDS)
            if (name, version, index) not in wanted:  # the lookup matches any mix of the batch's names, versions
                continue  # and indexes
            dependencies = found.setdefault((name, version, index), set())
            for record in self._children(row, "installed_from", action):
                for entity in self._children(record, "depends_on", action):
                    dep_name, dep_version, dep_index = (
                        self._string(entity, field, action) for field in _CANDIDATE_FIELDS
                    )
                    dependencies.add(Candidate(normalize_name(dep_name), dep_version, dep_index))
        return [sorted(found.get(key, ())) for key in keys]

    def _status(self, rows: list[dict[str, Any]], solvers: Sequence[SolverEnvironment], action: str) -> ItemStatus:
        """The status of one item from its entity rows (each with ``installed_from`` and ``analyzed``)."""
        if not rows:
            return ItemStatus(None, frozenset(), analyzed=False)
        problem = f"Dgraph at {self.address}: {action}: the answer"
        environments: set[tuple[str, str, str]] = set()
        analyzed = False
        for row in rows:
            for record in self._children(row, "installed_from", action):
                environments.add(
                    (
                        self._string(record, "os_name", action),
                        self._string(record, "os_version", action),
                        self._string(record, "python_version", action),
                    )
                )
            runs = row.get("analyzed", 0)
            if isinstance(runs, bool) or not isinstance(runs, int) or runs < 0:
                raise StoreError(
                    f"{problem}'s analyzer run count is not a non-negative integer: {truncate(repr(runs))}"
                )
            analyzed = analyzed or runs > 0
        arrival = min(_uid_value(row["uid"]) for row in rows)
        if arrival < 1:
            raise StoreError(f"{problem} holds a uid that is no uid: {truncate(repr([row['uid'] for row in rows]))}")
        solved_by = frozenset(s.name for s in solvers if (s.os_name, s.os_version, s.python_version) in environments)
        return ItemStatus(arrival, solved_by, analyzed)

    def solver_backlog(
        self,
        solver: SolverEnvironment,
        *,
        up_to: int | None = None,
        before: tuple[int, Candidate] | None = None,
    ) -> int:
        """Entities with no solved record of ``solver``'s environment: one ``count(uid)`` query (design: Backlog).

        Counts nodes, so two nodes of one item count twice (the stream drops such repeats). The stream's
        order is uid order, so ``before`` bounds the uids like ``up_to`` does: below the item's uid.
        """
        what = f"unsolved for {solver.name}"
        last = _last_before(up_to, before)
        if last is None:
            return self._count(SOLVER_COUNT_QUERY, _environment(solver), what)
        return self._window_count(SOLVER_WINDOW_COUNT_QUERY, _environment(solver), what, 0, last)

    def analyzer_backlog(self, *, up_to: int | None = None, before: tuple[int, Candidate] | None = None) -> int:
        """Entities with no package_analyzer_input edge: one ``count(uid)`` query; as :meth:`solver_backlog`."""
        last = _last_before(up_to, before)
        if last is None:
            return self._count(ANALYZER_COUNT_QUERY, {}, "unanalyzed")
        return self._window_count(ANALYZER_WINDOW_COUNT_QUERY, {}, "unanalyzed", 0, last)

    def solver_fresh_ahead(self, solver: SolverEnvironment, *, after: int, before: int) -> int:
        """Unsolved entities with ``after < uid < before``: one ``count(uid)`` query over that window."""
        what = f"fresh unsolved for {solver.name}"
        return self._window_count(SOLVER_WINDOW_COUNT_QUERY, _environment(solver), what, after, before - 1)

    def analyzer_fresh_ahead(self, *, after: int, before: int) -> int:
        """Unanalyzed entities with ``after < uid < before``: one ``count(uid)`` query over that window."""
        return self._window_count(ANALYZER_WINDOW_COUNT_QUERY, {}, "fresh unanalyzed", after, before - 1)

    def index_urls(self) -> list[str]:
        """Every index node's ``url``, deduplicated and sorted."""
        urls: set[str] = set()
        for row in self._pages(INDEX_QUERY, {}, "index URLs"):
            if url := self._string(row, "url", "index URLs"):
                urls.add(url)
            else:
                logger.debug("Dgraph index node %s has no url; skipped", row["uid"])
        return sorted(urls)

    def close(self) -> None:
        """Close the gRPC channel; the store is unusable afterwards. Safe to call twice."""
        stub, self._stub = self._stub, None
        if stub is not None:
            stub.close()

    # -- internals ----------------------------------------------------------------------------

    def _lookup(
        self, name: str, keys: Sequence[tuple[str, str | None, str]], fields: str, what: str
    ) -> Iterator[dict[str, Any]]:
        """The rows of :func:`lookup_query` over ``keys`` (name, version or None for any, index) selecting
        ``fields``: one query per batch of keys (a page, at most ``LOOKUP_BATCH``). ``what`` names the batch in
        messages, ``{}`` standing for its size.

        A batch whose answer is too large for gRPC (an item with very many dependencies) is asked again as two
        halves; a single key whose answer is too large is a StoreError naming it.
        """
        size = min(self._page_size, LOOKUP_BATCH)
        batches = [keys[start : start + size] for start in range(0, len(keys), size)]
        while batches:
            batch = batches.pop(0)
            values = [[k[0] for k in batch], [k[1] for k in batch if k[1] is not None], [k[2] for k in batch]]
            query, variables = lookup_query(name, values, fields)
            action = f"looking up {what.format(len(batch))}"
            try:
                document = self._read(lambda q=query, v=variables: self._query(q, v), action=action)  # type: ignore[misc]
            except _TooLarge as error:
                if len(batch) == 1:
                    package, version, index = batch[0]
                    item = " ".join(repr(value) for value in (package, version, redact_url(index)) if value is not None)
                    raise StoreError(
                        f"{error}; the answer for {item} alone is over {MAX_ANSWER_BYTES} bytes"
                    ) from error
                half = len(batch) // 2
                batches[:0] = [batch[:half], batch[half:]]
                continue
            yield from self._rows(document, "item", action)

    def _children(self, row: Mapping[str, Any], edge: str, action: str) -> list[dict[str, Any]]:
        """The nodes a row's ``edge`` leads to ([] when Dgraph left it out: none matched); anything but a list
        of nodes is a StoreError."""
        nodes = row.get(edge) or []
        if not isinstance(nodes, list) or not all(isinstance(node, dict) for node in nodes):
            problem = f"Dgraph at {self.address}: {action}: the answer"
            raise StoreError(f"{problem}'s {edge} is not a list of nodes: {truncate(repr(nodes))}")
        return nodes

    def _entities(
        self, query: str, variables: Mapping[str, str], what: str, *, after: str = FIRST_CURSOR
    ) -> Iterator[tuple[int, Candidate]]:
        """(uid, candidate) of the rows above uid ``after``, names normalised; each spelling of an item counts once.

        Thoth's writers store PEP 503 names, so a row with another spelling is rare. Such a row is
        dropped when an entity with the normalised spelling exists (one point lookup): that entity is
        the item, listed here or already done. Spellings met are remembered (a small set), so a second
        unnormalised spelling is dropped too. Normalised rows need no memory at all.
        """
        respelled: set[Candidate] = set()
        last: Candidate | None = None
        for row in self._pages(query, variables, what, after=after):
            # A missing predicate becomes "": the planner then skips the node as invalid and counts it,
            # rather than the node vanishing from the run's numbers. A value of another type is no node
            # of the DGRAPH.md schema: a store failure, not a candidate.
            name, version, index_url = (self._string(row, key, what) for key in _CANDIDATE_FIELDS)
            candidate = Candidate(normalize_name(name), version, index_url)
            if candidate == last:  # the same item on two neighbouring nodes
                continue
            if candidate.package_name != name and invalid_reason(candidate) is None:
                if candidate in respelled or self._has_twin(candidate):
                    continue
                respelled.add(candidate)
            last = candidate
            yield _uid_value(row["uid"]), candidate

    def _has_twin(self, candidate: Candidate) -> bool:
        """Whether an entity with exactly this (normalised) name, version and index exists."""
        name, version, index_url = candidate
        variables = {"$name": name, "$version": version, "$index": index_url}
        document = self._read(lambda: self._query(TWIN_QUERY, variables), action=f"looking up {name}")
        return bool(self._rows(document, "twin", f"looking up {name}"))

    def _pages(
        self, query: str, variables: Mapping[str, str], what: str, *, after: str = FIRST_CURSOR
    ) -> Iterator[dict[str, Any]]:
        """Yield the rows of every page: from uid ``after`` (0x0: all), each page after the last uid of the one before.

        Stops on an empty page only (Dgraph may return short pages). A retried page resumes from
        the same cursor. Lazy: nothing is sent until the first row is asked for, and the first page
        is read in the caller's thread. While the caller consumes a page, the next one is read in
        the background (``prefetch``): at most one page ahead per stream. Its failure (StoreError,
        or whatever the sleep seam raised between retries) surfaces when the caller reaches it; a
        caller that stops early leaves it to finish or fail unread, and waits for nothing.
        """
        rows, size = self._fetch_page(query, variables, what, after, self._page_size)
        pages = 1
        executor: ThreadPoolExecutor | None = None
        ahead: Future[tuple[list[dict[str, Any]], int]] | None = None
        try:
            while rows:
                last_uid = rows[-1]["uid"]  # a string: checked by _rows
                if _uid_value(last_uid) <= _uid_value(after):
                    raise StoreError(
                        f"Dgraph at {self.address}: page after uid {after} ended at uid {last_uid!r}; "
                        "the cursor does not advance"
                    )
                after = last_uid
                if self._prefetch:
                    executor = executor or ThreadPoolExecutor(max_workers=1, thread_name_prefix="dgraph-prefetch")
                    ahead = executor.submit(self._fetch_page, query, variables, what, after, size)
                yield from rows
                if ahead is not None:
                    rows, size = ahead.result()  # bounded: each try has a deadline, the tries are counted
                    ahead = None
                else:
                    rows, size = self._fetch_page(query, variables, what, after, size)
                pages += 1
            logger.debug("Dgraph %s: %d pages read, done", what, pages)
        finally:
            if ahead is not None:
                ahead.cancel()  # not started yet: never sent; running: finishes unread
            if executor is not None:
                executor.shutdown(wait=False, cancel_futures=True)

    def _fetch_page(
        self, query: str, variables: Mapping[str, str], what: str, after: str, size: int
    ) -> tuple[list[dict[str, Any]], int]:
        """One page after uid ``after`` of up to ``size`` rows, and the size to ask for next.

        An answer too large for gRPC is asked again with half the rows from the same cursor; the
        size then grows back towards the full page.
        """
        while True:
            page_vars = {**variables, "$first": str(size), "$after": after}
            try:
                rows = self._page(query, page_vars, what)
            except _TooLarge as error:
                if size == 1:
                    raise StoreError(
                        f"{error}; one node after uid {after} is larger than {MAX_ANSWER_BYTES} bytes"
                    ) from error
                size = max(size // 2, 1)  # hostile giant values: smaller pages, same cursor
                logger.warning(
                    "Dgraph at %s: a page of %s was too large; reading %d rows a page", self.address, what, size
                )
                continue
            return rows, min(size * 2, self._page_size)

    def _count(self, query: str, variables: Mapping[str, str], what: str) -> int:
        """Run a count query under the per-query deadline; StoreError when it fails or the answer is no count.

        Retried like any read, except a deadline: the count walks the posting lists and would only time
        out again (the caller reports no backlog and the run goes on).
        """
        action = f"counting the backlog of {what}"
        document = self._read(lambda: self._query(query, variables), action=action, retry_deadline=False)
        problem = f"Dgraph at {self.address}: {action}: the answer"
        if not isinstance(document, dict):
            raise StoreError(f"{problem} is a JSON {_json_type(document)}, not an object")
        block = document.get("backlog")
        if block is None or block == []:  # Dgraph may leave out a block that matched nothing
            return 0
        if not (isinstance(block, list) and len(block) == 1 and isinstance(block[0], dict)):
            raise StoreError(f"{problem}'s 'backlog' is not a list of one object: {truncate(repr(block))}")
        count = block[0].get("n")
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise StoreError(f"{problem}'s count is not a non-negative integer: {truncate(repr(count))}")
        return count

    def _window_count(self, query: str, variables: Mapping[str, str], what: str, after: int, last: int) -> int:
        """Count the candidates with ``after < uid <= last``; an empty window needs no query."""
        if last <= after:
            return 0
        window = {**variables, "$after": _cursor(after), "$last": _cursor(last)}
        return self._count(query, window, what)

    def _page(self, query: str, variables: Mapping[str, str], what: str) -> list[dict[str, Any]]:
        document = self._read(lambda: self._query(query, variables), action=f"reading {what}")
        return self._rows(document, "page", f"reading {what}")

    def _rows(self, document: Any, block: str, action: str) -> list[dict[str, Any]]:
        """The rows of ``block`` in a decoded answer; anything but an object holding a list of nodes
        with string uids is a StoreError naming the host and what was wrong (never an empty graph).

        A missing or null block is no rows: Dgraph leaves out a block that matched nothing.
        """
        problem = f"Dgraph at {self.address}: {action}: the answer"
        if not isinstance(document, dict):
            raise StoreError(f"{problem} is a JSON {_json_type(document)}, not an object")
        rows = document.get(block)
        if rows is None:
            return []
        if not isinstance(rows, list):
            raise StoreError(f"{problem}'s {block!r} is a JSON {_json_type(rows)}, not a list of nodes")
        for i, row in enumerate(rows):
            if not isinstance(row, dict):
                raise StoreError(f"{problem}'s {block}[{i}] is a JSON {_json_type(row)}, not a node")
            if not isinstance(row.get("uid"), str):
                raise StoreError(f"{problem}'s {block}[{i}] has no string 'uid' (got {truncate(repr(row.get('uid')))})")
        return rows

    def _string(self, row: Mapping[str, Any], key: str, what: str) -> str:
        """A node's string predicate, "" when the node lacks it; another type is a StoreError."""
        value = row.get(key)
        if value is None:
            return ""
        if not isinstance(value, str):
            raise StoreError(
                f"Dgraph at {self.address}: reading {what}: node {row.get('uid')}'s {key!r} is a JSON "
                f"{_json_type(value)}, not a string (is the schema the one DGRAPH.md describes?)"
            )
        return value

    def _query(self, query: str, variables: Mapping[str, str]) -> Any:
        if self._client is None or self._stub is None:
            raise StoreError(f"Dgraph at {self.address}: the store is closed")
        txn = self._client.txn(read_only=True)
        try:
            response = txn.query(query, variables=dict(variables), timeout=self._timeout)
        finally:
            txn.discard()
        try:
            return json.loads(response.json or b"{}")
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise StoreError(f"Dgraph at {self.address}: the answer is not JSON") from error

    def _login(self, user: str, password: str) -> None:
        self._read(lambda: self._client.login(user, password, timeout=self._timeout), action=f"login as {user!r}")
        logger.info("Dgraph at %s: logged in as %r", self.address, user)

    def _read(self, call: Callable[[], Any], *, action: str, retry_deadline: bool = True) -> Any:
        """Run ``call``; retry transient failures with back-off; raise StoreError naming host and kind.

        ``retry_deadline=False``: a deadline exceeded is final, not retried.
        """
        attempt = 1
        while True:
            try:
                return call()
            except _READ_ERRORS as error:
                failure = describe_failure(error, timeout=self._timeout, transport=self.transport)
                if getattr(error, "code", None) and error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                    raise _TooLarge(self._redact(f"Dgraph at {self.address}: {action}: {failure.kind}")) from error
                deadline = getattr(error, "code", None) and error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
                if not failure.retry or attempt >= self._reads.attempts or (deadline and not retry_deadline):
                    tries = f" after {attempt} attempts" if attempt > 1 else ""
                    message = f"Dgraph at {self.address}: {action} failed{tries}: {failure.kind}"
                    raise StoreError(self._redact(message)) from error
            delay = self._reads.delay(attempt - 1)
            attempt += 1
            logger.warning(
                "Dgraph at %s: %s failed (%s); attempt %d of %d in %.1f s",
                self.address,
                action,
                self._redact(failure.kind),
                attempt,
                self._reads.attempts,
                delay,
            )
            self._sleep(delay)

    def _redact(self, text: str) -> str:
        """Never let the password reach a message, whatever a server echoes back."""
        return text.replace(self._secret, "***") if self._secret else text


def _json_type(value: Any) -> str:
    """JSON's name for a decoded value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    for kind, name in ((dict, "object"), (list, "array"), (str, "string"), ((int, float), "number")):
        if isinstance(value, kind):
            return name
    return type(value).__name__


def _uid_value(uid: str) -> int:
    try:
        return int(uid, 0)
    except ValueError:
        return -1


def _environment(solver: SolverEnvironment) -> dict[str, str]:
    """The GraphQL variables of a solver's environment, as the solver queries declare them."""
    return {"$os": solver.os_name, "$osv": solver.os_version, "$py": solver.python_version}


def _cursor(position: int) -> str:
    """An arrival position as a uid cursor; a negative position is a caller's bug."""
    if position < 0:
        raise ValueError(f"an arrival position is not negative, got {position}")
    return hex(position)


def _last_before(up_to: int | None, before: tuple[int, Candidate] | None) -> int | None:
    """The highest uid a backlog count covers: at most ``up_to``, below ``before``'s uid; None: no bound."""
    bounds = [bound for bound in (up_to, None if before is None else before[0] - 1) if bound is not None]
    return min(bounds) if bounds else None


def _until(entities: Iterator[tuple[int, Candidate]], up_to: int | None) -> Iterator[Candidate]:
    """The candidates of a uid-ordered stream up to uid ``up_to`` (all when None); stops reading past it."""
    try:
        for position, candidate in entities:
            if up_to is not None and position > up_to:
                return
            yield candidate
    finally:
        close = getattr(entities, "close", None)
        if close is not None:
            close()
