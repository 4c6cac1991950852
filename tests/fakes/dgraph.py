"""A Dgraph alpha stand-in that speaks Dgraph's gRPC API on localhost (pydgraph's own servicer).

It holds a small knowledge graph built from a graph file (README's "The graph store") the way Thoth's
graph writers lay it out (docs/dgraph.md: entity, solved-record, analyzer-run and index nodes with uids in
insertion order) and answers exactly the query shapes graph-refresh sends, with Dgraph's semantics: values come from the
request's GraphQL variables (never from the query text), root ``first``/``after`` page in uid order
with ``after`` exclusive, and a declared variable that is not used is rejected like Dgraph does.

Everything is recorded (method, query, variables, read-only flag, deadline, metadata) so tests assert
the wire traffic rather than mocks. Faults are injected per RPC; writes are always refused.

Run on its own::

    python -m tests.fakes.dgraph --graph FILE --port 0 [--tls-cert CRT --tls-key KEY [--client-ca CA]]

prints ``listening on localhost:PORT`` as its first line and serves until SIGINT/SIGTERM.
``python -m tests.fakes.dgraph --make-tls DIR`` writes a new CA with a server and a client pair
(``ca.crt``, ``client.user.crt``, ``client.user.key``, ``node.crt``, ``node.key``) into DIR and exits.
"""

from __future__ import annotations

import os

os.environ.setdefault("GRPC_VERBOSITY", "NONE")

import argparse
import itertools
import json
import re
import secrets
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import grpc
import trustme
from pydgraph.proto import api_pb2, api_pb2_grpc

from graph_refresh.config import StoreSettings
from graph_refresh.errors import TemplateError
from graph_refresh.items import Candidate, normalize_name, parse_solver_name
from graph_refresh.store.graphfile import GraphFile, load_graph_file, parse_graph

# Marker predicates and their values, as thoth-storages wrote them.
ENTITY = "python_package_version_entity_label"
SOLVED = "python_package_version_label"
INDEX = "python_package_index_label"
ANALYZER_RUN = "package_analyzer_run_label"
EDGES = ("installed_from", "package_analyzer_input", "provided_by", "depends_on")
UNPARSED = "<unparsed solver name>"  # os fields of a solved record whose solver name does not parse

# -- TLS material -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerTls:
    """What the fake serves TLS with; ``client_ca`` set ⇒ a verified client certificate is required."""

    cert_chain: bytes
    private_key: bytes
    client_ca: bytes | None = None


@dataclass(frozen=True)
class TlsFiles:
    """A GRAPH_TLS_PATH directory (``ca.crt``, ``client.user.crt``, ``client.user.key``) plus the server pair.

    The server pair is ``node.crt``/``node.key`` in the same directory, as ``dgraph cert`` names it;
    the store ignores those.
    """

    directory: Path
    ca: Path
    client_cert: Path
    client_key: Path
    server_cert: Path
    server_key: Path

    def server_tls(self, *, mutual: bool = False) -> ServerTls:
        """Server credentials; ``mutual`` requires clients to present a certificate from this CA."""
        return ServerTls(
            self.server_cert.read_bytes(),
            self.server_key.read_bytes(),
            self.ca.read_bytes() if mutual else None,
        )


def make_tls_files(
    directory: Path, *, hostnames: Iterable[str] = ("localhost", "127.0.0.1", "::1"), client: bool = True
) -> TlsFiles:
    """Write a new CA, a server certificate for ``hostnames`` and (if ``client``) a client pair.

    Each call makes a new CA, so two directories never trust each other (the wrong-CA case).
    """
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    files = TlsFiles(
        directory,
        directory / "ca.crt",
        directory / "client.user.crt",
        directory / "client.user.key",
        directory / "node.crt",
        directory / "node.key",
    )
    ca.cert_pem.write_to_path(str(files.ca))
    server = ca.issue_cert(*hostnames)
    server.cert_chain_pems[0].write_to_path(str(files.server_cert))
    for pem in server.cert_chain_pems[1:]:
        pem.write_to_path(str(files.server_cert), append=True)
    _write_private(files.server_key, server.private_key_pem.bytes())
    if client:
        user = ca.issue_cert("user", common_name="user")
        user.cert_chain_pems[0].write_to_path(str(files.client_cert))
        _write_private(files.client_key, user.private_key_pem.bytes())
    return files


def _write_private(path: Path, data: bytes) -> None:
    """Write a private key readable by its owner alone (0600) from the moment it exists, whatever the umask."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        os.fchmod(file.fileno(), 0o600)  # a file that was already there keeps its old mode through O_CREAT
        file.write(data)


# -- recording and faults -----------------------------------------------------------------------


@dataclass
class RecordedRequest:
    """One RPC as the fake saw it (a Login's password is not kept); ``error`` = ``"CODE: details"`` if refused."""

    method: str
    query: str = ""
    vars: dict[str, str] = field(default_factory=dict)
    read_only: bool = False
    best_effort: bool = False
    start_ts: int = 0
    mutations: int = 0
    time_remaining: float | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    uids: list[str] = field(default_factory=list)
    """Query only: the uids of the rows answered, in order (empty page = [])."""


@dataclass
class Fault:
    """Injected misbehaviour for one RPC method: wait ``delay`` s, then fail with ``code`` (if set), or else
    answer ``answer`` (raw JSON bytes, if set) instead of the real answer.

    Applies ``times`` times, once ``after`` calls of that method have succeeded. With ``match``, only
    to requests it accepts, once ``after`` of those went by. ``hits`` counts uses.
    """

    method: str
    code: grpc.StatusCode | None
    details: str
    times: int
    delay: float
    after: int
    answer: bytes | None = None
    match: Callable[[RecordedRequest], bool] | None = None
    hits: int = 0
    passed: int = 0  # requests ``match`` accepted that went by before the fault applied


class _Refused(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


# -- the query language graph-refresh speaks ------------------------------------------------------

_HEADER = re.compile(r"\A\s*query(?:\s+\w+)?\s*(?:\((?P<decls>[^)]*)\))?\s*\{(?P<body>.*)\}\s*\Z", re.DOTALL)
_DECL = re.compile(r"\s*\$(?P<name>\w+)\s*:\s*(?P<type>\w+)\s*")
_VAR_BLOCK = re.compile(
    r"\s*var\s*\(\s*func\s*:\s*eq\s*\(\s*os_name\s*,\s*\$(?P<os>\w+)\s*\)\s*\)\s*"
    r"@filter\s*\(\s*eq\s*\(\s*os_version\s*,\s*\$(?P<osv>\w+)\s*\)\s+AND\s+"
    r"eq\s*\(\s*python_version\s*,\s*\$(?P<py>\w+)\s*\)\s+AND\s+"
    r"has\s*\(\s*python_package_version_label\s*\)\s*\)\s*"
    r"\{\s*(?P<done>\w+)\s+as\s+~installed_from\s*\}",
    re.DOTALL,
)
"""Entities with a solved record of one environment (through the reverse edge)."""
_UID_VAR_BLOCK = re.compile(
    r"\s*var\s*\(\s*func\s*:\s*has\s*\(\s*(?P<root>\w+)\s*\)\s*(?:,\s*after\s*:\s*\$(?P<after>\w+)\s*)?\)\s*"
    r"\{\s*(?P<name>\w+)\s+as\s+uid\s*\}",
    re.DOTALL,
)
"""Nodes holding a predicate, above a uid when ``after`` is given: the worker's ``has`` handler starts its
iteration past that uid whether or not ``first`` is given, so no ``first`` means every node above it."""
_TERM = r"NOT\s+(?:uid|has)\s*\(\s*\w+\s*\)"  # the filters graph-refresh sends: negations, ANDed
_FILTER = rf"(?:@filter\s*\(\s*(?P<filter>{_TERM}(?:\s+AND\s+{_TERM})*)\s*\)\s*)?"
_NEGATION = re.compile(r"NOT\s+(uid|has)\s*\(\s*(\w+)\s*\)")
_PAGE_BLOCK = re.compile(
    r"\s*(?P<alias>\w+)\s*\(\s*func\s*:\s*has\s*\(\s*(?P<root>\w+)\s*\)\s*,\s*"
    r"first\s*:\s*\$(?P<first>\w+)\s*,\s*after\s*:\s*\$(?P<after>\w+)\s*\)\s*"
    rf"{_FILTER}\{{(?P<fields>[\w\s]*)\}}\s*\Z",
    re.DOTALL,
)
_COUNT_BLOCK = re.compile(
    r"\s*(?P<alias>\w+)\s*\(\s*func\s*:\s*has\s*\(\s*(?P<root>\w+)\s*\)\s*(?:,\s*after\s*:\s*\$(?P<after>\w+)\s*)?\)\s*"
    rf"{_FILTER}\{{\s*(?P<count>\w+)\s*:\s*count\s*\(\s*uid\s*\)\s*\}}\s*\Z",
    re.DOTALL,
)
"""A block-level ``count(uid)``: Dgraph answers ``[{alias: number of root nodes the block matched}]``, counted
after the filters (and ``after``, which the root function applies)."""
_LAST_BLOCK = re.compile(
    r"\s*(?P<alias>\w+)\s*\(\s*func\s*:\s*uid\s*\(\s*(?P<var>\w+)\s*\)\s*,\s*first\s*:\s*(?P<first>-?\d+)\s*\)\s*"
    r"\{\s*uid\s*\}\s*\Z",
    re.DOTALL,
)
"""A ``uid(var)`` root with ``first`` and no ``after`` (Dgraph ignored ``after`` there until late 2020): the
block's pagination takes the first N uids of the variable, or the last N when N is negative."""
_VARIABLE = re.compile(r"\$(\w+)")


_TWIN = re.compile(
    r"\A\s*query\s+twin\s*\(\s*\$name\s*:\s*string\s*,\s*\$version\s*:\s*string\s*,\s*\$index\s*:\s*string\s*\)\s*"
    r"\{\s*twin\s*\(\s*func\s*:\s*eq\s*\(\s*package_name\s*,\s*\$name\s*\)\s*\)\s*"
    r"@filter\s*\(\s*eq\s*\(\s*package_version\s*,\s*\$version\s*\)\s+AND\s+eq\s*\(\s*index_url\s*,\s*\$index\s*\)"
    r"\s+AND\s+has\s*\(\s*python_package_version_entity_label\s*\)\s*\)\s*\{\s*uid\s*\}\s*\}\s*\Z",
    re.DOTALL,
)
"""graph-refresh's one point lookup: entities with exactly this name, version and index (all variables)."""

_STATUS = re.compile(
    r"\A\s*query\s+status\s*\(\s*\$name\s*:\s*string\s*,\s*\$version\s*:\s*string\s*,\s*\$index\s*:\s*string\s*\)\s*"
    r"\{\s*item\s*\(\s*func\s*:\s*eq\s*\(\s*package_name\s*,\s*\$name\s*\)\s*\)\s*"
    r"@filter\s*\(\s*eq\s*\(\s*package_version\s*,\s*\$version\s*\)\s+AND\s+eq\s*\(\s*index_url\s*,\s*\$index\s*\)"
    r"\s+AND\s+has\s*\(\s*python_package_version_entity_label\s*\)\s*\)\s*\{\s*uid\s+"
    r"installed_from\s*@filter\s*\(\s*has\s*\(\s*python_package_version_label\s*\)\s*\)\s*"
    r"\{\s*os_name\s+os_version\s+python_version\s*\}\s*"
    r"analyzed\s*:\s*count\s*\(\s*package_analyzer_input\s*\)\s*\}\s*\}\s*\Z",
    re.DOTALL,
)
"""One item's entities with their solved records' environments and their number of analyzer runs."""


_LIST = r"\[\s*(\$\w+(?:\s*,\s*\$\w+)*)\s*\]"
_LOOKUP = re.compile(
    r"\A\s*query\s+\w+\s*\((?P<decls>[^)]*)\)\s*\{\s*item\s*\(\s*func\s*:\s*"
    rf"eq\s*\(\s*package_name\s*,\s*{_LIST.replace('(', '(?P<names>', 1)}\s*\)\s*\)\s*@filter\s*\(\s*"
    rf"(?:eq\s*\(\s*package_version\s*,\s*{_LIST.replace('(', '(?P<versions>', 1)}\s*\)\s+AND\s+)?"
    rf"eq\s*\(\s*index_url\s*,\s*{_LIST.replace('(', '(?P<indexes>', 1)}\s*\)\s+AND\s+"
    r"has\s*\(\s*python_package_version_entity_label\s*\)\s*\)\s*\{\s*uid\s+package_name\s+package_version\s+"
    r"index_url\s*(?:(?P<status>installed_from\s*@filter\s*\(\s*has\s*\(\s*python_package_version_label\s*\)\s*\)\s*"
    r"\{\s*os_name\s+os_version\s+python_version\s*\}\s*analyzed\s*:\s*count\s*\(\s*package_analyzer_input\s*\)\s*)|"
    r"(?P<dependencies>installed_from\s*@filter\s*\(\s*has\s*\(\s*python_package_version_label\s*\)\s*\)\s*"
    r"\{\s*depends_on\s*@filter\s*\(\s*has\s*\(\s*python_package_version_entity_label\s*\)\s*\)\s*"
    r"\{\s*uid\s+package_name\s+package_version\s+index_url\s*\}\s*\}\s*))?"
    r"\}\s*\}\s*\Z",
    re.DOTALL,
)
"""graph-refresh's batched lookups: entities whose name, (version,) and index are among lists of variables, with
their solved records' environments and analyzer runs (statuses), with the entities their solved records depend on
(dependencies), or with their fields alone (versions)."""


@dataclass(frozen=True)
class _UidVariable:
    """A ``var`` block: ``env`` set ⇒ entities solved in that environment; else nodes with ``root``, above ``after``."""

    name: str
    env: tuple[str, str, str] | None
    root: str = ""
    after: int = 0


@dataclass(frozen=True)
class _PageQuery:
    alias: str
    root: str  # has(root) at the root; "" for a uid(var) root
    first: int | None  # None: no paging (a count, or every node)
    after: int
    variables: tuple[_UidVariable, ...]
    negations: tuple[tuple[str, str], ...]  # ("uid", var) or ("has", predicate), all ANDed
    fields: tuple[str, ...]
    count: str | None = None  # the alias of ``count(uid)``: answer the number of matches, not the rows
    uid_root: str | None = None  # the variable of a uid(var) root


def _parse_query(text: str, variables: Mapping[str, str]) -> _PageQuery:
    """Recognise graph-refresh's query shapes; anything else is INVALID_ARGUMENT, as Dgraph refuses it."""
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    if '"' in text or "'" in text:
        raise _Refused(invalid, "the fake accepts no literals in query text: pass values as variables")
    header = _HEADER.match(text)
    if header is None:
        raise _Refused(invalid, "unknown query: expected `query name($first: int, $after: string, ...) {...}`")
    declared: dict[str, str] = {}
    for decl in filter(str.strip, (header["decls"] or "").split(",")):
        match = _DECL.fullmatch(decl)
        if match is None:
            raise _Refused(invalid, f"cannot parse variable declaration {decl.strip()!r}")
        declared[match["name"]] = match["type"]
    text_body = header["body"]
    var_blocks: list[re.Match[str]] = []
    position = 0
    while block := _VAR_BLOCK.match(text_body, position) or _UID_VAR_BLOCK.match(text_body, position):
        var_blocks.append(block)
        position = block.end()
    body = (
        _PAGE_BLOCK.match(text_body, position)
        or _COUNT_BLOCK.match(text_body, position)
        or _LAST_BLOCK.match(text_body, position)
    )
    if body is None:
        raise _Refused(invalid, "unknown query shape (the fake knows graph-refresh's paged and count queries only)")
    groups = body.groupdict()
    used = set(_VARIABLE.findall(text_body))
    if unused := sorted(set(declared) - used):
        raise _Refused(invalid, "Variables are not used: " + ", ".join(f"${name}" for name in unused))
    if undeclared := sorted(used - set(declared)):
        raise _Refused(invalid, "Variables are not defined: " + ", ".join(f"${name}" for name in undeclared))
    given = {key.removeprefix("$"): value for key, value in variables.items()}
    if extra := sorted(set(given) - set(declared)):
        raise _Refused(invalid, "Variables passed but not declared: " + ", ".join(f"${n}" for n in extra))
    if missing := sorted(set(declared) - set(given)):
        raise _Refused(invalid, "Variables declared but not passed: " + ", ".join(f"${n}" for n in missing))
    for block in var_blocks:
        for name in (block.groupdict().get(key) for key in ("os", "osv", "py")):
            if name is not None and not given[name].strip():
                raise _Refused(invalid, f"Variable ${name} is empty")

    def uid_value(name: str | None) -> int:
        if name is None:
            return 0
        if not given[name].strip():
            raise _Refused(invalid, f"Variable ${name} is empty")
        try:
            value = int(given[name], 0)
        except ValueError as error:
            raise _Refused(invalid, f"bad after value: {error}") from None
        if value < 0:
            raise _Refused(invalid, "after must not be negative")
        return value

    uid_variables: list[_UidVariable] = []
    for block in var_blocks:
        parts = block.groupdict()
        if "done" in parts:
            env = (given[parts["os"]], given[parts["osv"]], given[parts["py"]])
            uid_variables.append(_UidVariable(parts["done"], env))
        else:
            uid_variables.append(_UidVariable(parts["name"], None, parts["root"], uid_value(parts["after"])))
    defined = [variable.name for variable in uid_variables]
    if len(set(defined)) != len(defined):
        raise _Refused(invalid, "a variable is defined twice")
    negations = tuple(_NEGATION.findall(groups.get("filter") or ""))
    wanted = [argument for kind, argument in negations if kind == "uid"]
    if groups.get("var") is not None:
        wanted.append(groups["var"])
    if undefined := sorted(set(wanted) - set(defined)):
        raise _Refused(invalid, f"Variable {undefined[0]} is not defined")
    if unused_vars := sorted(set(defined) - set(wanted)):
        raise _Refused(invalid, f"Variable {unused_vars[0]} is defined but not used")
    if groups.get("var") is not None:
        return _PageQuery(
            body["alias"], "", int(body["first"]), 0, tuple(uid_variables), (), ("uid",), None, body["var"]
        )
    if groups.get("count") is not None:
        return _PageQuery(
            body["alias"],
            body["root"],
            None,
            uid_value(body["after"]),
            tuple(uid_variables),
            negations,
            (),
            count=body["count"],
        )
    if declared[body["first"]] != "int":
        raise _Refused(invalid, f"${body['first']} is used as `first` and must be declared int")
    if not given[body["first"]].strip():
        raise _Refused(invalid, f"Variable ${body['first']} is empty")
    try:
        first = int(given[body["first"]])
    except ValueError as error:
        raise _Refused(invalid, f"bad first value: {error}") from None
    if first < 0:
        raise _Refused(invalid, "first and after must not be negative")
    fields = tuple(body["fields"].split())
    if not fields:
        raise _Refused(invalid, "empty selection")
    if bad := [f for f in fields if f in EDGES]:
        raise _Refused(invalid, f"edge predicates need a sub-selection: {bad}")
    return _PageQuery(
        body["alias"], body["root"], first, uid_value(body["after"]), tuple(uid_variables), negations, fields
    )


# -- the graph --------------------------------------------------------------------------------


class FakeGraph:
    """Dgraph-like nodes with uids in insertion order: ``nodes[uid] = {predicate: value or [uids]}``."""

    def __init__(self, graph: GraphFile, *, normalize_names: bool = True) -> None:
        self.nodes: dict[int, dict[str, Any]] = {}
        self._by_name: dict[object, list[int]] = {}
        """Entity uids by stored package name: the exact index a lookup uses (names are never rewritten)."""
        self._entities: dict[Candidate, int] = {}
        self._indexes: dict[str, int] = {}
        self._normalize = normalize_names
        own = {*graph.package_versions, *(record.candidate for record in graph.solved), *graph.analyzed}
        for candidate in graph.all_versions():  # what is named only as a dependency registers no index
            self.entity(candidate, dependency=candidate not in own)
        for record in graph.solved:
            try:
                env = parse_solver_name(record.solver, template="graph file")
                os_fields = (env.os_name, env.os_version, env.python_version)
            except TemplateError:
                os_fields = (UNPARSED, UNPARSED, UNPARSED)
            entity = self.entity(record.candidate)
            solved = self._add(
                {
                    SOLVED: "python_package_version",
                    **self._package_fields(record.candidate),
                    "os_name": os_fields[0],
                    "os_version": os_fields[1],
                    "python_version": os_fields[2],
                    "solver_error": record.error,
                }
            )
            self.nodes[entity].setdefault("installed_from", []).append(solved)
            self._depend(solved, record.depends_on)
        for candidate in graph.analyzed:
            entity = self.entity(candidate)
            run = self._add({ANALYZER_RUN: "package_analyzer_run", "package_analysis_document_id": ""})
            self.nodes[run]["package_analysis_document_id"] = f"package-analyzer-{run:x}"
            self.nodes[entity].setdefault("package_analyzer_input", []).append(run)

    def add(self, graph: GraphFile) -> None:
        """Write a later graph on top, as Thoth's writers sync new results: new versions get new entity nodes
        (higher uids), a solved record already there for an entity's environment is updated in place, an
        entity already analyzed gets no second run. Writing the same graph again changes nothing."""
        own = {*graph.package_versions, *(record.candidate for record in graph.solved), *graph.analyzed}
        for candidate in graph.all_versions():  # what is named only as a dependency registers no index
            self.entity(candidate, dependency=candidate not in own)
        for record in graph.solved:
            try:
                env = parse_solver_name(record.solver, template="graph file")
                os_fields = (env.os_name, env.os_version, env.python_version)
            except TemplateError:
                os_fields = (UNPARSED, UNPARSED, UNPARSED)
            entity = self.nodes[self.entity(record.candidate)]
            existing = [
                uid
                for uid in entity.get("installed_from", ())
                if (self.nodes[uid]["os_name"], self.nodes[uid]["os_version"], self.nodes[uid]["python_version"])
                == os_fields
            ]
            if existing:
                self.nodes[existing[0]]["solver_error"] = record.error
                self._depend(existing[0], record.depends_on)
                continue
            solved = self._add(
                {
                    SOLVED: "python_package_version",
                    **self._package_fields(record.candidate),
                    "os_name": os_fields[0],
                    "os_version": os_fields[1],
                    "python_version": os_fields[2],
                    "solver_error": record.error,
                }
            )
            entity.setdefault("installed_from", []).append(solved)
            self._depend(solved, record.depends_on)
        for candidate in graph.analyzed:
            entity = self.nodes[self.entity(candidate)]
            if not _has(entity, "package_analyzer_input"):
                run = self._add({ANALYZER_RUN: "package_analyzer_run", "package_analysis_document_id": ""})
                self.nodes[run]["package_analysis_document_id"] = f"package-analyzer-{run:x}"
                entity["package_analyzer_input"] = [run]

    def _depend(self, solved: int, dependencies: Iterable[Candidate]) -> None:
        """Add a ``depends_on`` edge from a solved record to each dependency's entity (made when new), once each:
        a later write adds the edges it lacks."""
        edges = self.nodes[solved].setdefault("depends_on", [])
        for dependency in dependencies:
            if (target := self.entity(dependency, dependency=True)) not in edges:
                edges.append(target)
        if not edges:
            del self.nodes[solved]["depends_on"]

    def _add(self, predicates: dict[str, Any]) -> int:
        uid = len(self.nodes) + 1
        self.nodes[uid] = predicates
        if ENTITY in predicates:
            self._by_name.setdefault(predicates.get("package_name"), []).append(uid)
        return uid

    def _package_fields(self, candidate: Candidate) -> dict[str, str]:
        name = normalize_name(candidate.package_name) if self._normalize else candidate.package_name
        return {
            "package_name": name,
            "package_version": candidate.package_version,
            "index_url": candidate.index_url,
            "ecosystem": "python",
        }

    def copy_entity(self, candidate: Candidate) -> int:
        """Add a second entity node of ``candidate`` (same predicates and edges), as two racing writers could;
        return its uid, the highest so far."""
        entity = self.nodes[self.entity(candidate)]
        return self._add({key: list(value) if isinstance(value, list) else value for key, value in entity.items()})

    def entity(self, candidate: Candidate, *, dependency: bool = False) -> int:
        """uid of the entity node of (normalised name, version, index); created (with its index) if new. An entity
        made as what another depends on (``dependency``) links to its index only when that index is registered
        already: a solver's result never registers an index (Thoth registers the indexes it solves from)."""
        fields = self._package_fields(candidate)
        key = Candidate(fields["package_name"], candidate.package_version, candidate.index_url)
        if key not in self._entities:
            if candidate.index_url not in self._indexes and not dependency:
                self._indexes[candidate.index_url] = self._add(
                    {INDEX: "python_package_index", "url": candidate.index_url}
                )
            uid = self._add({ENTITY: "python_package_version_entity", **fields})
            if candidate.index_url in self._indexes:
                self.nodes[uid]["provided_by"] = [self._indexes[candidate.index_url]]
            self._entities[key] = uid
        return self._entities[key]

    def twins(self, name: str, version: str, index: str) -> list[dict[str, Any]]:
        """Entities whose stored (not normalised) name, version and index are exactly these, in uid order."""
        return [
            {"uid": hex(uid)}
            for uid, node in sorted(self.nodes.items())
            if _has(node, ENTITY)
            and (node.get("package_name"), node.get("package_version"), node.get("index_url")) == (name, version, index)
        ]

    def answer(self, query: _PageQuery, short: bool) -> list[dict[str, Any]]:
        """One page: root ``has`` in uid order, filter, ``after`` exclusive, ``first`` rows (or fewer).

        A uid(var) root answers the variable's uids in uid order, its first N (the last N when N < 0).
        """
        uid_sets = {variable.name: self._uid_variable(variable) for variable in query.variables}
        if query.uid_root is not None:
            uids = sorted(uid_sets[query.uid_root])
            first = query.first or 0
            chosen = uids[first:] if first < 0 else uids[:first] if first > 0 else uids
            return [{"uid": hex(uid)} for uid in chosen]
        rows: list[dict[str, Any]] = []
        limit = len(self.nodes) if query.first is None else query.first
        limit = max(1, limit // 2) if short and limit > 1 else limit
        matched = 0
        for uid in sorted(self.nodes):
            node = self.nodes[uid]
            if query.count is None and len(rows) >= limit:
                break
            if uid <= query.after or not _has(node, query.root):
                continue
            if any(
                (kind == "uid" and uid in uid_sets[argument]) or (kind == "has" and _has(node, argument))
                for kind, argument in query.negations
            ):
                continue
            matched += 1
            if query.count is not None:
                continue
            row: dict[str, Any] = {}
            for name in query.fields:
                if name == "uid":
                    row["uid"] = hex(uid)
                elif name in node:
                    row[name] = node[name]
            rows.append(row)
        if query.count is not None:
            return [{query.count: matched}]
        return rows

    def _uid_variable(self, variable: _UidVariable) -> set[int]:
        if variable.env is None:
            return {uid for uid, node in self.nodes.items() if uid > variable.after and _has(node, variable.root)}
        solved = {
            uid
            for uid, node in self.nodes.items()
            if SOLVED in node
            and (node.get("os_name"), node.get("os_version"), node.get("python_version")) == variable.env
        }
        return {uid for uid, node in self.nodes.items() if solved.intersection(node.get("installed_from", ()))}

    def lookup(
        self, names: set[str], versions: set[str] | None, indexes: set[str], selection: str = "fields"
    ) -> list[dict[str, Any]]:
        """The batched lookup's answer: entities whose stored name, version (any when None) and index are among
        these, in uid order, each with its fields and, by ``selection``, what :meth:`status` gives of it
        ("status") or what its solved records depend on ("dependencies")."""
        rows = []
        for uid in sorted(uid for name in names for uid in self._by_name.get(name, ())):
            node = self.nodes[uid]
            if (
                _has(node, ENTITY)
                and node.get("package_name") in names
                and (versions is None or node.get("package_version") in versions)
                and node.get("index_url") in indexes
            ):
                row: dict[str, Any] = {"uid": hex(uid)}
                if selection == "status":
                    row = self._status_row(uid)
                elif selection == "dependencies":
                    row.update(self._dependencies_row(uid))
                rows.append({**row, **self._fields(node)})
        return rows

    def _dependencies_row(self, uid: int) -> dict[str, Any]:
        """An entity's solved records with the entities they depend on; as Dgraph answers, a record without any is
        left out, and so is ``installed_from`` when no record is left."""
        records = []
        for solved in self.nodes[uid].get("installed_from", ()):
            if SOLVED not in self.nodes[solved]:
                continue
            entities = [
                {"uid": hex(target), **self._fields(self.nodes[target])}
                for target in self.nodes[solved].get("depends_on", ())
                if _has(self.nodes[target], ENTITY)
            ]
            if entities:
                records.append({"depends_on": entities})
        return {"installed_from": records} if records else {}

    @staticmethod
    def _fields(node: Mapping[str, Any]) -> dict[str, Any]:
        return {key: node[key] for key in ("package_name", "package_version", "index_url") if key in node}

    def status(self, name: str, version: str, index: str) -> list[dict[str, Any]]:
        """The status query's answer: entities of exactly this name, version and index, in uid order, each with
        the environments of its solved records (left out when none, as Dgraph does) and its analyzer runs' count."""
        return [self._status_row(int(entity["uid"], 16)) for entity in self.twins(name, version, index)]

    def _status_row(self, uid: int) -> dict[str, Any]:
        node = self.nodes[uid]
        environments = [
            {key: self.nodes[solved][key] for key in ("os_name", "os_version", "python_version")}
            for solved in node.get("installed_from", ())
            if SOLVED in self.nodes[solved]
        ]
        row: dict[str, Any] = {"uid": hex(uid)}
        if environments:
            row["installed_from"] = environments
        row["analyzed"] = len(node.get("package_analyzer_input", ()))
        return row


def _has(node: Mapping[str, Any], predicate: str) -> bool:
    value = node.get(predicate)
    return value is not None and value != []


# -- the server -------------------------------------------------------------------------------


class FakeDgraph:
    """An in-process Dgraph alpha on ``localhost:<port>``; use as a context manager or start()/stop().

    ``graph``: a GraphFile, a decoded graph document (dict) or a path to a graph file.
    ``tls``: serve TLS (``client_ca`` set ⇒ mutual TLS). ``users``: enable ACL login.
    ``short_pages``: every other page has fewer rows than ``first`` (as Dgraph may do).
    ``latency``: seconds every Query waits before it is answered (a distant alpha; for benchmarks).
    """

    def __init__(
        self,
        graph: GraphFile | Mapping[str, Any] | Path | None = None,
        *,
        tls: ServerTls | None = None,
        users: Mapping[str, str] | None = None,
        short_pages: bool = False,
        normalize_names: bool = True,
        port: int = 0,
        latency: float = 0.0,
    ) -> None:
        if isinstance(graph, Path):
            graph = load_graph_file(graph)
        elif graph is None or isinstance(graph, Mapping):
            graph = parse_graph(dict(graph or {}), source="fake graph")
        self.graph = FakeGraph(graph, normalize_names=normalize_names)
        self.tls = tls
        self.users = dict(users) if users is not None else None
        self.short_pages = short_pages
        self.latency = latency
        self.requests: list[RecordedRequest] = []
        self.faults: list[Fault] = []
        self._requested_port = port
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)  # notified whenever a request is recorded
        self._succeeded: dict[str, int] = {}
        self._tokens: set[str] = set()
        self._refresh_tokens: dict[str, str] = {}
        self._ts = itertools.count(100)
        self._server: grpc.Server | None = None
        self.port = 0

    # -- lifecycle --

    def start(self) -> Self:
        """Bind ``localhost:<port>`` (0 = any free port) and serve in background threads."""
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=8), options=[("grpc.so_reuseport", 0)])
        api_pb2_grpc.add_DgraphServicer_to_server(_Servicer(self), server)
        address = f"localhost:{self._requested_port}"
        if self.tls is None:
            self.port = server.add_insecure_port(address)
        else:
            credentials = grpc.ssl_server_credentials(
                [(self.tls.private_key, self.tls.cert_chain)],
                root_certificates=self.tls.client_ca,
                require_client_auth=self.tls.client_ca is not None,
            )
            self.port = server.add_secure_port(address, credentials)
        if not self.port:
            raise RuntimeError(f"cannot bind {address}")
        server.start()
        self._server = server
        return self

    def stop(self) -> None:
        """Stop serving at once; in-flight RPCs are cancelled."""
        server, self._server = self._server, None
        if server is not None:
            server.stop(grace=None).wait()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def host(self) -> str:
        """``localhost:<port>``: the GRAPH_SERVICE_HOST of this fake."""
        return f"localhost:{self.port}"

    def settings(self, tls_path: Path | None = None, **overrides: Any) -> StoreSettings:
        """StoreSettings pointing at this fake (``tls_path`` = GRAPH_TLS_PATH), plus field ``overrides``."""
        return StoreSettings(graph_service_host=self.host, graph_tls_path=tls_path, **overrides)

    # -- test helpers --

    def inject(
        self,
        code: grpc.StatusCode | None = None,
        *,
        details: str = "",
        times: int = 1,
        delay: float = 0.0,
        after: int = 0,
        method: str = "Query",
        answer: bytes | None = None,
        match: Callable[[RecordedRequest], bool] | None = None,
    ) -> Fault:
        """Fail with ``code`` and/or stall ``delay`` s the next ``times`` calls of ``method``.

        ``answer`` (no ``code``): answer a Query with these raw JSON bytes instead, e.g. a wrong shape.
        The fault starts once ``after`` calls of ``method`` have succeeded (to fail mid-stream). ``match``
        picks requests by content rather than arrival order (a store reads pages ahead in the background):
        the fault applies only to requests it accepts, once ``after`` of them went by.
        """
        details = details or (code.name.lower() if code else "")
        fault = Fault(method, code, details, times, delay, after, answer, match)
        with self._lock:
            self.faults.append(fault)
        return fault

    def add_graph(self, graph: GraphFile | Mapping[str, Any]) -> None:
        """Write a later graph (a GraphFile or a decoded graph document) into the served one: see FakeGraph.add."""
        if isinstance(graph, Mapping):
            graph = parse_graph(dict(graph), source="fake graph")
        with self._lock:
            self.graph.add(graph)

    def calls(self, method: str = "Query") -> list[RecordedRequest]:
        """Recorded requests of one method, in arrival order."""
        with self._lock:
            return [r for r in self.requests if r.method == method]

    def wait_for_calls(self, count: int, method: str = "Query", timeout: float = 10.0) -> list[RecordedRequest]:
        """Block until ``count`` requests of ``method`` have arrived (or ``timeout`` s passed); return them all.

        For requests a client sends from a background thread (the store's prefetch of the next page).
        """
        with self._arrived:
            self._arrived.wait_for(lambda: sum(r.method == method for r in self.requests) >= count, timeout)
            return [r for r in self.requests if r.method == method]

    def clear(self) -> None:
        """Forget recorded requests and pending faults."""
        with self._lock:
            self.requests.clear()
            self.faults.clear()

    # -- RPC handling --

    def _record(self, method: str, context: grpc.ServicerContext, **fields: Any) -> RecordedRequest:
        record = RecordedRequest(
            method,
            time_remaining=context.time_remaining(),
            metadata={key: str(value) for key, value in context.invocation_metadata()},
            **fields,
        )
        with self._lock:
            self.requests.append(record)
            self._arrived.notify_all()
        return record

    def _apply_faults(self, record: RecordedRequest, context: grpc.ServicerContext) -> bytes | None:
        """Stall and/or refuse as a pending fault says; return the answer it substitutes, if any."""
        method = record.method
        with self._lock:
            succeeded = self._succeeded.get(method, 0)
            fault = None
            for candidate in self.faults:
                if candidate.method != method or candidate.hits >= candidate.times:
                    continue
                if candidate.match is None:
                    if succeeded >= candidate.after:
                        fault = candidate
                        break
                elif candidate.match(record):
                    if candidate.passed >= candidate.after:
                        fault = candidate
                        break
                    candidate.passed += 1
            if fault is not None:
                fault.hits += 1
        if fault is None:
            return None
        deadline = time.monotonic() + fault.delay
        while time.monotonic() < deadline and context.is_active():
            time.sleep(0.01)
        if fault.code is not None:
            raise _Refused(fault.code, fault.details)
        return fault.answer

    def _succeed(self, method: str) -> None:
        with self._lock:
            self._succeeded[method] = self._succeeded.get(method, 0) + 1

    def _authenticate(self, record: RecordedRequest) -> None:
        if self.users is None:
            return
        token = record.metadata.get("accessjwt", "")
        with self._lock:
            valid = token in self._tokens
        if not valid:
            raise _Refused(grpc.StatusCode.UNAUTHENTICATED, "no accessJwt available")

    def handle(self, method: str, request: Any, context: grpc.ServicerContext) -> Any:
        """Dispatch one RPC: record it, apply faults, then answer or refuse (refusals are recorded too)."""
        if method == "Query":
            record = self._record(
                method,
                context,
                query=request.query,
                vars=dict(request.vars),
                read_only=request.read_only,
                best_effort=request.best_effort,
                start_ts=request.start_ts,
                mutations=len(request.mutations),
            )
        elif method == "Login":  # the password is never recorded
            record = self._record(method, context, vars={"userid": request.userid})
        else:
            record = self._record(method, context)
        try:
            substitute = self._apply_faults(record, context)
            if self.latency and method == "Query":
                time.sleep(self.latency)
            if substitute is not None and method == "Query":
                response = api_pb2.Response(json=substitute, txn=api_pb2.TxnContext(start_ts=next(self._ts)))
            else:
                response = getattr(self, f"_rpc_{method}", self._rpc_write)(request, record)
        except _Refused as refused:
            record.error = f"{refused.code.name}: {refused.details}"
            context.abort(refused.code, refused.details)
        self._succeed(method)
        return response

    def _rpc_Query(self, request: api_pb2.Request, record: RecordedRequest) -> api_pb2.Response:
        self._authenticate(record)
        if request.mutations or not request.read_only:
            raise _Refused(
                grpc.StatusCode.PERMISSION_DENIED,
                "graph-refresh never writes: the fake serves read-only queries",
            )
        if _TWIN.match(request.query):
            given = {key.removeprefix("$"): value for key, value in request.vars.items()}
            if set(given) != {"name", "version", "index"}:
                raise _Refused(grpc.StatusCode.INVALID_ARGUMENT, "twin: pass exactly $name, $version and $index")
            with self._lock:
                rows = self.graph.twins(given["name"], given["version"], given["index"])
                start_ts = request.start_ts or next(self._ts)
            record.uids = [row["uid"] for row in rows]
            return api_pb2.Response(json=json.dumps({"twin": rows}).encode(), txn=api_pb2.TxnContext(start_ts=start_ts))
        if lookup := _LOOKUP.match(request.query):
            given = {key.removeprefix("$"): value for key, value in request.vars.items()}
            declared = {m["name"] for m in map(_DECL.fullmatch, lookup["decls"].split(",")) if m is not None}
            lists = {
                part: [name.strip().removeprefix("$") for name in (lookup[part] or "").split(",") if name.strip()]
                for part in ("names", "versions", "indexes")
            }
            used = {name for names in lists.values() for name in names}
            if used != declared or set(given) != declared:
                raise _Refused(grpc.StatusCode.INVALID_ARGUMENT, "lookup: declare, use and pass the same variables")
            wanted = {part: {given[name] for name in names} for part, names in lists.items()}
            selection = "status" if lookup["status"] else "dependencies" if lookup["dependencies"] else "fields"
            with self._lock:
                rows = self.graph.lookup(wanted["names"], wanted["versions"] or None, wanted["indexes"], selection)
                start_ts = request.start_ts or next(self._ts)
            record.uids = [row["uid"] for row in rows]
            return api_pb2.Response(json=json.dumps({"item": rows}).encode(), txn=api_pb2.TxnContext(start_ts=start_ts))
        if _STATUS.match(request.query):
            given = {key.removeprefix("$"): value for key, value in request.vars.items()}
            if set(given) != {"name", "version", "index"}:
                raise _Refused(grpc.StatusCode.INVALID_ARGUMENT, "status: pass exactly $name, $version and $index")
            with self._lock:
                rows = self.graph.status(given["name"], given["version"], given["index"])
                start_ts = request.start_ts or next(self._ts)
            record.uids = [row["uid"] for row in rows]
            return api_pb2.Response(json=json.dumps({"item": rows}).encode(), txn=api_pb2.TxnContext(start_ts=start_ts))
        query = _parse_query(request.query, request.vars)
        with self._lock:
            short = self.short_pages and self._succeeded.get("Query", 0) % 2 == 0
            rows = self.graph.answer(query, short)
            start_ts = request.start_ts or next(self._ts)
        record.uids = [row["uid"] for row in rows if "uid" in row]
        return api_pb2.Response(
            json=json.dumps({query.alias: rows}).encode(), txn=api_pb2.TxnContext(start_ts=start_ts)
        )

    def _rpc_Login(self, request: api_pb2.LoginRequest, record: RecordedRequest) -> api_pb2.Response:
        with self._lock:
            if request.refresh_token:
                user = self._refresh_tokens.pop(request.refresh_token, None)
                if user is None:
                    raise _Refused(grpc.StatusCode.UNAUTHENTICATED, "invalid refresh token")
            elif self.users is not None and self.users.get(request.userid) != request.password:
                raise _Refused(grpc.StatusCode.UNAUTHENTICATED, "invalid username or password")
            access, refresh = f"access-{secrets.token_hex(8)}", f"refresh-{secrets.token_hex(8)}"
            self._tokens.add(access)
            self._refresh_tokens[refresh] = request.userid
        return api_pb2.Response(json=api_pb2.Jwt(access_jwt=access, refresh_jwt=refresh).SerializeToString())

    def _rpc_CheckVersion(self, request: api_pb2.Check, record: RecordedRequest) -> api_pb2.Version:
        self._authenticate(record)
        return api_pb2.Version(tag="v25.0.0-fake")

    def _rpc_write(self, request: Any, record: RecordedRequest) -> Any:
        raise _Refused(grpc.StatusCode.PERMISSION_DENIED, f"graph-refresh never writes: {record.method} refused")


class _Servicer(api_pb2_grpc.DgraphServicer):  # type: ignore[misc]
    """pydgraph's generated servicer; every RPC goes to FakeDgraph.handle."""

    def __init__(self, fake: FakeDgraph) -> None:
        self._fake = fake

    def Login(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._fake.handle("Login", request, context)

    def Query(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._fake.handle("Query", request, context)

    def Alter(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._fake.handle("Alter", request, context)

    def CommitOrAbort(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._fake.handle("CommitOrAbort", request, context)

    def CheckVersion(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._fake.handle("CheckVersion", request, context)

    def RunDQL(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._fake.handle("RunDQL", request, context)


# -- command line -----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Serve a graph file until SIGINT/SIGTERM; the first stdout line is ``listening on localhost:PORT``."""
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.dgraph", description=__doc__.splitlines()[0])
    parser.add_argument("--graph", type=Path, help="graph file, as import-graph reads (default: an empty graph)")
    parser.add_argument("--port", type=int, default=0, help="port on localhost; 0 picks a free one")
    parser.add_argument("--tls-cert", type=Path, help="server certificate chain (PEM): serve TLS")
    parser.add_argument("--tls-key", type=Path, help="server private key (PEM)")
    parser.add_argument("--client-ca", type=Path, help="require client certificates issued by this CA")
    parser.add_argument("--user", action="append", default=[], metavar="NAME:PASSWORD", help="enable ACL login")
    parser.add_argument("--short-pages", action="store_true", help="answer every other page short")
    parser.add_argument("--latency", type=float, default=0.0, metavar="SECONDS", help="delay every query's answer")
    parser.add_argument(
        "--make-tls",
        type=Path,
        metavar="DIR",
        help="write a new CA, a localhost server pair (node.crt, node.key) and a client pair (ca.crt, "
        "client.user.crt, client.user.key: a GRAPH_TLS_PATH) into DIR, then exit",
    )
    args = parser.parse_args(argv)
    if args.make_tls:
        if args.graph or args.tls_cert or args.tls_key or args.client_ca or args.user or args.short_pages:
            parser.error("--make-tls writes the TLS files and exits; serve in a second command")
        files = make_tls_files(args.make_tls)
        print(f"GRAPH_TLS_PATH={files.directory}  (ca.crt, client.user.crt, client.user.key)")
        print(f"--tls-cert {files.server_cert} --tls-key {files.server_key} --client-ca {files.ca}")
        return 0
    if bool(args.tls_cert) != bool(args.tls_key) or (args.client_ca and not args.tls_cert):
        parser.error("--tls-cert and --tls-key go together; --client-ca needs them")
    tls = None
    if args.tls_cert:
        client_ca = args.client_ca.read_bytes() if args.client_ca else None
        tls = ServerTls(args.tls_cert.read_bytes(), args.tls_key.read_bytes(), client_ca)
    users = dict(user.split(":", 1) for user in args.user) if args.user else None
    fake = FakeDgraph(
        args.graph, tls=tls, users=users, short_pages=args.short_pages, port=args.port, latency=args.latency
    )
    stopped = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopped.set())
    with fake:
        print(f"listening on {fake.host}", flush=True)
        stopped.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
