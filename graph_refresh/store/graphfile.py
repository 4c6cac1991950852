"""Read and check a graph file (SPEC §6): the JSON form of a small knowledge graph.

Structure is checked, content is not: a hostile name or version is kept as given, because the
production graph can hold such data too; the planner skips it later.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graph_refresh.errors import ConfigError
from graph_refresh.items import Candidate


@dataclass(frozen=True)
class SolvedRecord:
    """A package version resolved by one solver; ``error`` means the solver ran and recorded a failure."""

    candidate: Candidate
    solver: str
    error: bool = False


@dataclass(frozen=True)
class GraphFile:
    """The three record lists of a graph file, checked."""

    package_versions: list[Candidate] = field(default_factory=list)
    solved: list[SolvedRecord] = field(default_factory=list)
    analyzed: list[Candidate] = field(default_factory=list)

    def all_versions(self) -> list[Candidate]:
        """Every version the file names, in file order: listed ones first, then those only solved or analyzed."""
        return [*self.package_versions, *(s.candidate for s in self.solved), *self.analyzed]

    def __len__(self) -> int:
        return len(self.package_versions) + len(self.solved) + len(self.analyzed)


_CANDIDATE_FIELDS = ("package_name", "package_version", "index_url")


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
    versions = [
        _candidate(record, f"{source}: package_versions[{i}]")
        for i, record in enumerate(_records(document, "package_versions", source))
    ]
    solved = []
    for i, record in enumerate(_records(document, "solved", source)):
        where = f"{source}: solved[{i}]"
        candidate = _candidate(record, where)
        error = record.get("error")
        error = False if error is None else error  # missing or null: false
        if not isinstance(error, bool):
            raise ConfigError(f"{where}: field 'error' must be true or false, not {error!r}")
        solved.append(SolvedRecord(candidate, _string(record, "solver", where), error))
    analyzed = [
        _candidate(record, f"{source}: analyzed[{i}]")
        for i, record in enumerate(_records(document, "analyzed", source))
    ]
    return GraphFile(versions, solved, analyzed)


def load_graph_file(path: Path) -> GraphFile:
    """Read a graph file; any problem (unreadable, not JSON, bad record) is a ConfigError naming it."""
    try:
        document = json.loads(path.read_bytes().decode("utf-8-sig"))  # UTF-8 only (a BOM is tolerated)
    except OSError as error:
        raise ConfigError(f"cannot read graph file {str(path)!r}: {error.strerror}") from error
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(f"graph file {str(path)!r} is not valid UTF-8 JSON: {error}") from error
    return parse_graph(document, source=str(path))
