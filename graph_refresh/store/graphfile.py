"""Read and check a graph file (design: The graph store): the JSON form of a small knowledge graph.

Structure is checked, content is not: a hostile name or version is kept as given, because the
production graph can hold such data too; the planner skips it later.

:func:`read_graph_file` streams: it yields one checked record at a time while it parses (ijson, with
its C backend), so memory does not grow with the file. :func:`parse_graph` checks an already decoded
document (tests and the Dgraph stand-in build graphs that way). Both name the first bad record with the
same messages.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import ijson  # type: ignore[import-untyped]  # no stubs; used in this module only

from graph_refresh.errors import ConfigError
from graph_refresh.items import Candidate


@dataclass(frozen=True, slots=True)
class SolvedRecord:
    """A package version resolved by one solver; ``error`` means the solver ran and recorded a failure.

    ``depends_on``: the dependency versions that resolution found, as the file lists them (duplicates kept).
    """

    candidate: Candidate
    solver: str
    error: bool = False
    depends_on: tuple[Candidate, ...] = ()


@dataclass(frozen=True, slots=True)
class AnalyzedRecord:
    """A package version a package-analyzer ran on."""

    candidate: Candidate


GraphRecord = Candidate | SolvedRecord | AnalyzedRecord
"""One entry of a graph file: of ``package_versions`` (a bare Candidate), ``solved`` or ``analyzed``."""


@dataclass(frozen=True)
class GraphFile:
    """The three record lists of a graph file, checked."""

    package_versions: list[Candidate] = field(default_factory=list)
    solved: list[SolvedRecord] = field(default_factory=list)
    analyzed: list[Candidate] = field(default_factory=list)

    def all_versions(self) -> list[Candidate]:
        """Every version the file names: listed ones first, then those solved (each followed by what it depends
        on), then those analyzed."""
        solved = (version for s in self.solved for version in (s.candidate, *s.depends_on))
        return [*self.package_versions, *solved, *self.analyzed]

    @classmethod
    def of(cls, records: Iterable[GraphRecord]) -> GraphFile:
        """The records (checked already) sorted into their three lists."""
        graph = cls()
        for record in records:
            if isinstance(record, SolvedRecord):
                graph.solved.append(record)
            elif isinstance(record, AnalyzedRecord):
                graph.analyzed.append(record.candidate)
            else:
                graph.package_versions.append(record)
        return graph

    def records(self) -> Iterator[GraphRecord]:
        """The entries as :func:`read_graph_file` yields them."""
        yield from self.package_versions
        yield from self.solved
        yield from (AnalyzedRecord(candidate) for candidate in self.analyzed)

    def __len__(self) -> int:
        return len(self.package_versions) + len(self.solved) + len(self.analyzed)


SECTIONS = ("package_versions", "solved", "analyzed")
_CANDIDATE_FIELDS = ("package_name", "package_version", "index_url")
# A resolution lists every version each requirement admits: hundreds, a few thousand for a package with many
# open ranges. One solved record's list is held whole while it is read (~250 bytes an entry, ~5 MiB at most).
MAX_DEPENDENCIES_PER_RECORD = 20_000
READ_CHUNK_BYTES = 256 * 1024  # one read of the graph file: few Python calls per MiB, little memory
_BOM = b"\xef\xbb\xbf"
# A \uD800-\uDFFF escape (or a literal backslash before "ud8..", which only costs the slower parser).
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


# -- checks shared by both readers ------------------------------------------------------------------


def _string(record: dict[str, Any], key: str, where: str) -> str:
    if key not in record:
        raise ConfigError(f"{where}: missing field {key!r}")
    value = record[key]
    if not isinstance(value, str):
        raise ConfigError(f"{where}: field {key!r} must be a string, not {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:  # a lone surrogate escaped in the JSON ("\ud800")
        raise ConfigError(f"{where}: field {key!r} is not valid Unicode text: {error.reason}") from error
    return value


def _candidate(record: Any, where: str) -> Candidate:
    if not isinstance(record, dict):
        raise ConfigError(f"{where}: must be an object, not {type(record).__name__}")
    name, version, index_url = (_string(record, key, where) for key in _CANDIDATE_FIELDS)
    return Candidate(name, version, index_url)


def _solved(record: Any, where: str) -> SolvedRecord:
    candidate = _candidate(record, where)
    error = record.get("error")
    error = False if error is None else error  # missing or null: false
    if not isinstance(error, bool):
        raise ConfigError(f"{where}: field 'error' must be true or false, not {error!r}")
    solver = _string(record, "solver", where)
    return SolvedRecord(candidate, solver, error, _depends_on(record.get("depends_on"), where))


def _too_many_dependencies(where: str) -> ConfigError:
    return ConfigError(f"{where}: field 'depends_on' has more than {MAX_DEPENDENCIES_PER_RECORD} entries")


def _depends_on(entries: Any, where: str) -> tuple[Candidate, ...]:
    """A solved record's ``depends_on``: missing or null is none; else a list of (name, version, index) objects.

    An entry that is a Candidate already was checked by the streaming reader (decoded JSON never holds one).
    """
    if entries is None:
        return ()
    if not isinstance(entries, list):
        raise ConfigError(f"{where}: field 'depends_on' must be a list, not {type(entries).__name__}")
    if len(entries) > MAX_DEPENDENCIES_PER_RECORD:
        raise _too_many_dependencies(where)
    return tuple(
        entry if isinstance(entry, Candidate) else _candidate(entry, f"{where}: depends_on[{i}]")
        for i, entry in enumerate(entries)
    )


def _record(section: str, record: Any, where: str) -> GraphRecord:
    if section == "solved":
        return _solved(record, where)
    candidate = _candidate(record, where)
    return candidate if section == "package_versions" else AnalyzedRecord(candidate)


def _fast_candidate(record: dict[str, Any]) -> Candidate | None:
    """The candidate of an object whose three fields are plainly right (ASCII strings); else None."""
    name, version, index_url = record.get("package_name"), record.get("package_version"), record.get("index_url")
    if not (type(name) is str and type(version) is str and type(index_url) is str):
        return None
    if not (name.isascii() and version.isascii() and index_url.isascii()):
        return None  # the full check looks for lone surrogates
    return Candidate(name, version, index_url)


def _fast_record(section: str, record: dict[str, Any]) -> GraphRecord | None:
    """The record when every field is plainly right (ASCII strings, a bool or null error, dependencies the
    streaming reader checked); else None, and the caller runs the full check, which names what is wrong."""
    candidate = _fast_candidate(record)
    if candidate is None:
        return None
    if section == "package_versions":
        return candidate
    if section == "analyzed":
        return AnalyzedRecord(candidate)
    solver, error, depends_on = record.get("solver"), record.get("error"), record.get("depends_on")
    if type(solver) is not str or not solver.isascii() or not (error is None or type(error) is bool):
        return None
    if depends_on is None:
        return SolvedRecord(candidate, solver, bool(error))
    if type(depends_on) is not list or not all(type(entry) is Candidate for entry in depends_on):
        return None
    return SolvedRecord(candidate, solver, bool(error), tuple(depends_on))


def _records(document: dict[str, Any], key: str, where: str) -> list[Any]:
    records = document.get(key)
    if records is None:  # missing or null: none
        return []
    if not isinstance(records, list):
        raise ConfigError(f"{where}: {key!r} must be a list, not {type(records).__name__}")
    return records


def parse_graph(document: Any, *, source: str) -> GraphFile:
    """Check a decoded graph document; raise ConfigError naming the first bad record."""
    if not isinstance(document, dict):
        raise ConfigError(f"{source}: the graph file must hold a JSON object, not {type(document).__name__}")
    return GraphFile.of(
        _record(key, record, f"{source}: {key}[{i}]")
        for key in SECTIONS
        for i, record in enumerate(_records(document, key, source))
    )


# -- the streaming reader -----------------------------------------------------------------------------

_EVENT_TYPES = {"start_map": "dict", "start_array": "list", "string": "str", "boolean": "bool", "null": "NoneType"}
_END = ("end of file", None)  # what ``next`` gives past the last event; the parser raises before that
_OPENERS = frozenset(("start_map", "start_array"))
_CLOSERS = frozenset(("end_map", "end_array"))


def _type_name(event: str, value: Any) -> str:
    """The Python type name ``json.loads`` would have given the value an event starts (for messages)."""
    return _EVENT_TYPES.get(event) or type(value).__name__


def _skip(events: Iterator[tuple[str, Any]]) -> None:
    """Consume the rest of a map or array whose start event was just read."""
    depth = 1
    for event, _ in events:
        if event in _OPENERS:
            depth += 1
        elif event in _CLOSERS:
            depth -= 1
            if depth == 0:
                return


def _object(events: Iterator[tuple[str, Any]], where: str, *, dependencies: bool = False) -> dict[str, Any]:
    """The fields of an object whose start event was just read. A nested value stands in by its type only (an
    empty dict or list: the checks name the type), never its size; with ``dependencies``, a ``depends_on``
    list is read whole (:func:`_dependencies`)."""
    record: dict[str, Any] = {}
    for event, field_name in events:
        if event == "end_map":
            break
        event, value = next(events, _END)
        if dependencies and field_name == "depends_on" and event == "start_array":
            value = _dependencies(events, where)
        elif event in _OPENERS:
            _skip(events)
            value = {} if event == "start_map" else []
        record[field_name] = value
    return record


def _dependencies(events: Iterator[tuple[str, Any]], where: str) -> list[Any]:
    """The entries of a solved record's ``depends_on`` list, whose start event was just read: a plainly right
    entry as its Candidate, anything else as decoded, with stand-ins (the full check names what is wrong).
    At most MAX_DEPENDENCIES_PER_RECORD of them are held."""
    entries: list[Any] = []
    for event, value in events:
        if event == "end_array":
            break
        if len(entries) == MAX_DEPENDENCIES_PER_RECORD:
            raise _too_many_dependencies(where)
        if event == "start_map":
            entry = _object(events, where)
            entries.append(_fast_candidate(entry) or entry)
        else:
            if event in _OPENERS:
                _skip(events)
            entries.append([] if event == "start_array" else value)
    return entries


def _stream(events: Iterator[tuple[str, Any]], source: str) -> Iterator[GraphRecord]:
    """Checked records from ijson ``basic_parse`` events of a whole graph file, in file order."""
    event, value = next(events, _END)
    if event != "start_map":
        raise ConfigError(f"{source}: the graph file must hold a JSON object, not {_type_name(event, value)}")
    seen: set[str] = set()
    for event, key in events:
        if event == "end_map":
            break
        event, value = next(events, _END)  # the value of top-level ``key``
        if key not in SECTIONS:  # unknown keys are ignored
            if event in _OPENERS:
                _skip(events)
            continue
        if key in seen:  # json.loads would keep only the last list: refuse rather than guess
            raise ConfigError(f"{source}: {key!r} appears twice")
        seen.add(key)
        if event == "null":
            continue
        if event != "start_array":
            raise ConfigError(f"{source}: {key!r} must be a list, not {_type_name(event, value)}")
        for index, (event, value) in enumerate(events):  # the inner loops below read the same events
            if event == "end_array":
                break
            where = f"{source}: {key}[{index}]"
            record: Any
            if event == "start_map":
                record = _object(events, where, dependencies=key == "solved")
                checked = _fast_record(key, record)
            else:  # not an object: the full check says so
                if event in _OPENERS:
                    _skip(events)
                record, checked = ({} if event == "start_map" else [] if event == "start_array" else value), None
            yield checked if checked is not None else _record(key, record, where)
    for _ in events:  # the parser reports anything after the object (trailing garbage)
        pass


class _Reader:
    """A binary file that reports how many bytes were read (progress)."""

    def __init__(self, file: BinaryIO, on_read: Callable[[int], None] | None) -> None:
        self._file = file
        self._on_read = on_read

    def read(self, size: int = -1) -> bytes:
        data = self._file.read(size)
        if self._on_read is not None and data:
            self._on_read(len(data))
        return data


def _has_surrogate_escapes(file: BinaryIO) -> bool:
    """Whether the file holds a \\uD800-\\uDFFF escape. ijson's C backend turns a lone one into "?"
    silently; such files go through its Python backend, which keeps it so that the check can refuse it."""
    tail = b""
    while chunk := file.read(16 * READ_CHUNK_BYTES):
        if _SURROGATE_ESCAPE.search(tail + chunk):
            return True
        tail = chunk[-5:]
    return False


def read_graph_file(path: Path, *, on_read: Callable[[int], None] | None = None) -> Iterator[GraphRecord]:
    """Yield the checked records of a graph file while parsing it, in file order; memory stays flat.

    ``on_read`` is called with the number of bytes each read took from the file (a progress bar).
    Any problem (unreadable, not UTF-8 JSON, a bad record) raises ConfigError naming the file and,
    for a bad record, the record (``solved[3]``): records before it have been yielded already, so
    a caller that must import all or nothing runs in one transaction. A UTF-8 byte order mark is
    skipped. JSON integers beyond 64 bits are refused as malformed (the C parser's limit).
    """
    source = str(path)
    try:
        with path.open("rb") as file:
            backend = ijson.get_backend("python") if _has_surrogate_escapes(file) else ijson
            file.seek(0)
            if file.read(len(_BOM)) != _BOM:
                file.seek(0)
            events = backend.basic_parse(_Reader(file, on_read), buf_size=READ_CHUNK_BYTES, use_float=True)
            yield from _stream(events, source)
    except OSError as error:
        raise ConfigError(f"cannot read graph file {source!r}: {error.strerror}") from error
    except ijson.JSONError as error:
        raise ConfigError(f"graph file {source!r} is not valid UTF-8 JSON: {_first_line(error)}") from error


def _first_line(error: Exception) -> str:
    """The parser's message without the excerpt of the file it adds (the excerpt may be anything)."""
    text = error.args[0] if error.args else str(error)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return str(text).strip().splitlines()[0] if str(text).strip() else type(error).__name__


def load_graph_file(path: Path) -> GraphFile:
    """Read a whole graph file into memory (small graphs: tests, the Dgraph stand-in); errors as
    :func:`read_graph_file`."""
    return GraphFile.of(read_graph_file(path))
