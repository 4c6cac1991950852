"""The graph file reader (graph_refresh/store/graphfile.py): streaming, checked, with the same messages as
the in-memory check."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from graph_refresh.errors import ConfigError
from graph_refresh.items import Candidate
from graph_refresh.store.graphfile import (
    MAX_DEPENDENCIES_PER_RECORD,
    READ_CHUNK_BYTES,
    AnalyzedRecord,
    SolvedRecord,
    load_graph_file,
    parse_graph,
    read_graph_file,
)
from tests.helpers import PYPI, SAMPLE_GRAPH, version


def write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "graph.json"
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def test_the_sample_graph_reads_as_the_in_memory_check_reads_it() -> None:
    document = json.loads(SAMPLE_GRAPH.read_text())
    assert load_graph_file(SAMPLE_GRAPH) == parse_graph(document, source=str(SAMPLE_GRAPH))


def test_records_come_in_file_order_whatever_the_order_of_the_lists(tmp_path: Path) -> None:
    text = json.dumps(
        {
            "analyzed": [version("c", "3")],
            "comment": {"nested": [1, {"deep": [[], {}]}], "package_versions": "not this one"},
            "solved": [{**version("b", "2"), "solver": "solver-x-1-py38", "extra": {"k": [1, 2]}}],
            "package_versions": [version("a", "1")],
        }
    )
    assert list(read_graph_file(write(tmp_path, text))) == [
        AnalyzedRecord(Candidate("c", "3", PYPI)),
        SolvedRecord(Candidate("b", "2", PYPI), "solver-x-1-py38", False),
        Candidate("a", "1", PYPI),
    ]


def test_records_are_yielded_while_the_file_is_read(tmp_path: Path) -> None:
    records = [version(f"p{i}", "1") for i in range(50_000)]
    path = write(tmp_path, json.dumps({"package_versions": records}))
    read: list[int] = []
    stream = read_graph_file(path, on_read=read.append)
    assert next(stream) == Candidate("p0", "1", PYPI)
    size = path.stat().st_size
    assert size > 4 * READ_CHUNK_BYTES
    assert sum(read) < size, "the first record came before the whole file was read"
    assert sum(1 for _ in stream) == len(records) - 1
    assert sum(read) == size


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"package_versions": [7]}, "package_versions[0]: must be an object, not int"),
        ({"solved": ["x"]}, "solved[0]: must be an object, not str"),
        ({"analyzed": [[version("a", "1")]]}, "analyzed[0]: must be an object, not list"),
        ({"analyzed": [None]}, "analyzed[0]: must be an object, not NoneType"),
        (
            {"package_versions": [{**version("a", "1"), "package_name": {"a": 1}}]},
            "package_versions[0]: field 'package_name' must be a string, not dict",
        ),
        (
            {"package_versions": [version("a", "1"), {**version("a", "1"), "index_url": 1.5}]},
            "package_versions[1]: field 'index_url' must be a string, not float",
        ),
        (
            {"solved": [{**version("a", "1"), "solver": None}]},
            "solved[0]: field 'solver' must be a string, not NoneType",
        ),
        (
            {"solved": [{**version("a", "1"), "solver": "s", "error": 0}]},
            "solved[0]: field 'error' must be true or false",
        ),
        (
            {"solved": [{**version("a", "1"), "solver": "s", "depends_on": "b==1"}]},
            "solved[0]: field 'depends_on' must be a list, not str",
        ),
        (
            {"solved": [{**version("a", "1"), "solver": "s", "depends_on": version("b", "1")}]},
            "solved[0]: field 'depends_on' must be a list, not dict",
        ),
        (
            {"solved": [{**version("a", "1"), "solver": "s", "depends_on": [version("b", "1"), "c"]}]},
            "solved[0]: depends_on[1]: must be an object, not str",
        ),
        (
            {"solved": [{**version("a", "1"), "solver": "s", "depends_on": [[version("b", "1")]]}]},
            "solved[0]: depends_on[0]: must be an object, not list",
        ),
        (
            {"solved": [{**version("a", "1"), "solver": "s", "depends_on": [{"package_name": "b", "index_url": "u"}]}]},
            "solved[0]: depends_on[0]: missing field 'package_version'",
        ),
        (
            {"solved": [{**version("a", "1"), "solver": "s", "depends_on": [{**version("b", "1"), "index_url": [1]}]}]},
            "solved[0]: depends_on[0]: field 'index_url' must be a string, not list",
        ),
        (
            {
                "solved": [
                    {**version("a", "1"), "solver": "s", "depends_on": [{**version("b", "1"), "package_version": 1}]}
                ]
            },
            "solved[0]: depends_on[0]: field 'package_version' must be a string, not int",
        ),
        (
            {"solved": [{"depends_on": [version("b", "1")], "solver": "s", **version("a", "1"), "error": "no"}]},
            "solved[0]: field 'error' must be true or false",
        ),
        ({"solved": 5}, "'solved' must be a list, not int"),
        ({"analyzed": "x"}, "'analyzed' must be a list, not str"),
        ([], "the graph file must hold a JSON object, not list"),
        ("x", "the graph file must hold a JSON object, not str"),
    ],
)
def test_bad_records_are_named_with_the_in_memory_check_s_message(document: Any, message: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)) as streamed:
        list(read_graph_file(write(tmp_path, json.dumps(document))))
    with pytest.raises(ConfigError) as in_memory:
        parse_graph(document, source=str(tmp_path / "graph.json"))
    assert str(streamed.value) == str(in_memory.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is not valid UTF-8 JSON: parse error: premature EOF"),
        ('{"package_versions": []} []', "is not valid UTF-8 JSON: parse error: trailing garbage"),
        ('{"package_versions": [', "is not valid UTF-8 JSON"),
        (b'{"package_versions": [{"package_name": "\xff"}]}', "is not valid UTF-8 JSON: lexical error: invalid bytes"),
        ('{"solved": [], "solved": []}', "'solved' appears twice"),
    ],
)
def test_malformed_json_is_a_config_error_naming_the_file(text: str | bytes, message: str, tmp_path: Path) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as caught:
        list(read_graph_file(path))
    assert str(path) in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_byte_order_mark_is_skipped(tmp_path: Path) -> None:
    path = write(tmp_path, b"\xef\xbb\xbf" + json.dumps({"package_versions": [version("a", "1")]}).encode())
    assert list(read_graph_file(path)) == [Candidate("a", "1", PYPI)]


def test_escaped_surrogates_a_pair_is_text_a_lone_one_is_refused(tmp_path: Path) -> None:
    pair = '{"package_versions": [{"package_name": "a\\ud83d\\ude00", "package_version": "1", "index_url": "u"}]}'
    assert list(read_graph_file(write(tmp_path, pair))) == [Candidate("a\N{GRINNING FACE}", "1", "u")]
    lone = '{"package_versions": [{"package_name": "a", "package_version": "1\\udc00", "index_url": "u"}]}'
    with pytest.raises(ConfigError, match=r"package_versions\[0\]: field 'package_version' is not valid Unicode"):
        list(read_graph_file(write(tmp_path, lone)))


def test_non_ascii_text_is_kept(tmp_path: Path) -> None:
    path = write(tmp_path, json.dumps({"analyzed": [version("\u212aeras", "1.0\u00e9")]}, ensure_ascii=False))
    assert list(read_graph_file(path)) == [AnalyzedRecord(Candidate("\u212aeras", "1.0\u00e9", PYPI))]


def test_an_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read graph file .*missing\.json"):
        list(read_graph_file(tmp_path / "missing.json"))


def test_a_solved_record_carries_what_it_depends_on_in_either_reader(tmp_path: Path) -> None:
    a, b = version("a", "1"), version("b", "2", "https://other.example/simple")
    document = {
        "solved": [
            {**version("x", "1"), "solver": "s", "depends_on": [a, {**b, "version_range": ">=2"}, a]},
            {"depends_on": [b], **version("y", "1"), "solver": "s"},  # any field order
            {**version("z", "1"), "solver": "s", "depends_on": None},
            {**version("w", "1"), "solver": "s", "depends_on": []},
        ],
        "analyzed": [{**version("x", "1"), "depends_on": 7}],  # ignored outside solved, as any unknown key
    }
    records = list(read_graph_file(write(tmp_path, json.dumps(document))))
    dependency_a, dependency_b = Candidate(**a), Candidate(**b)
    assert records == [
        SolvedRecord(Candidate("x", "1", PYPI), "s", False, (dependency_a, dependency_b, dependency_a)),
        SolvedRecord(Candidate("y", "1", PYPI), "s", False, (dependency_b,)),
        SolvedRecord(Candidate("z", "1", PYPI), "s"),
        SolvedRecord(Candidate("w", "1", PYPI), "s"),
        AnalyzedRecord(Candidate("x", "1", PYPI)),
    ]
    assert list(parse_graph(document, source="t").records()) == records


def test_a_dependency_with_a_lone_surrogate_is_refused(tmp_path: Path) -> None:
    text = (
        '{"solved": [{"package_name": "a", "package_version": "1", "index_url": "u", "solver": "s",'
        ' "depends_on": [{"package_name": "b\\udc00", "package_version": "1", "index_url": "u"}]}]}'
    )
    with pytest.raises(ConfigError, match=r"solved\[0\]: depends_on\[0\]: field 'package_name' is not valid Unicode"):
        list(read_graph_file(write(tmp_path, text)))


def test_one_record_holds_a_bounded_number_of_dependencies(tmp_path: Path) -> None:
    many = [version("b", str(i)) for i in range(MAX_DEPENDENCIES_PER_RECORD + 1)]
    document = {"solved": [{**version("a", "1"), "solver": "s", "depends_on": many}]}
    message = f"solved[0]: field 'depends_on' has more than {MAX_DEPENDENCIES_PER_RECORD} entries"
    with pytest.raises(ConfigError, match=re.escape(message)) as streamed:
        list(read_graph_file(write(tmp_path, json.dumps(document))))
    with pytest.raises(ConfigError) as in_memory:
        parse_graph(document, source=str(tmp_path / "graph.json"))
    assert str(streamed.value) == str(in_memory.value)
    document["solved"][0]["depends_on"] = many[:-1]
    assert len(next(read_graph_file(write(tmp_path, json.dumps(document)))).depends_on) == len(many) - 1  # type: ignore[union-attr]
