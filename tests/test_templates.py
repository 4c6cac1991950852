"""Template selection and client-side processing (graph_refresh/templates.py, README's "Templates")."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from graph_refresh.errors import TemplateError
from graph_refresh.templates import load_job_templates, process, read_template_dir, select_template

from .fakes.kube import FakeKube
from .helpers import EXAMPLE_TEMPLATES, SHARED_2019


def template(parameters: list[dict[str, Any]], objects: list[Any], **extra: Any) -> dict[str, Any]:
    return {
        "apiVersion": "template.openshift.io/v1",
        "kind": "Template",
        "metadata": {"name": "t"},
        "parameters": parameters,
        "objects": objects,
        **extra,
    }


def test_parameters_are_replaced_inside_strings_several_times() -> None:
    t = template([{"name": "A", "value": "x"}, {"name": "B"}], [{"s": "${A}-${B}-${A}", "n": ["${B}"]}])
    assert process(t, t["objects"], {"B": "y"}) == [{"s": "x-y-x", "n": ["y"]}]


def test_whole_string_json_parameters_become_typed_values() -> None:
    t = template(
        [
            {"name": "N", "value": "3600"},
            {"name": "B", "value": "true"},
            {"name": "O", "value": '{"a": 1}'},
            {"name": "S", "value": "plain text"},
        ],
        [{"n": "${{N}}", "b": "${{B}}", "o": "${{O}}", "s": "${{S}}", "inside": "x${{N}}", "q": "${N}"}],
    )
    (obj,) = process(t, t["objects"], {})
    assert obj == {"n": 3600, "b": True, "o": {"a": 1}, "s": "plain text", "inside": "x${{N}}", "q": "3600"}


def test_undeclared_parameters_stay_literal_and_given_undeclared_values_are_ignored() -> None:
    t = template([{"name": "A", "value": "a"}], [{"s": "${A} ${NOT_DECLARED}"}])
    assert process(t, t["objects"], {"NOT_DECLARED": "boom"}) == [{"s": "a ${NOT_DECLARED}"}]


def test_values_are_substituted_once() -> None:
    t = template([{"name": "A"}, {"name": "B", "value": "secret"}], [{"s": "${A}", "j": "${{A}}"}])
    assert process(t, t["objects"], {"A": "${B}"}) == [{"s": "${B}", "j": "${B}"}]


def test_required_parameter_without_value_is_an_error_naming_it() -> None:
    t = template([{"name": "NEEDED", "required": True}], [{}])
    with pytest.raises(TemplateError, match="NEEDED"):
        process(t, t["objects"], {})


def test_generated_parameter_without_value_is_an_error_naming_it() -> None:
    t = template([{"name": "RANDOM", "generate": "expression", "from": "[a-z]{8}"}], [{}])
    with pytest.raises(TemplateError, match="RANDOM"):
        process(t, t["objects"], {})
    assert process(t, [{"r": "${RANDOM}"}], {"RANDOM": "given"}) == [{"r": "given"}]


def test_top_level_labels_are_added_to_every_object() -> None:
    t = template(
        [{"name": "V", "value": "1"}],
        [{"metadata": {"labels": {"a": "b"}}}, {"kind": "X"}],
        labels={"team": "thoth", "v": "${V}"},
        metadata={"name": "t", "labels": {"template": "x"}},
    )
    objects = process(t, t["objects"], {})
    assert objects[0]["metadata"]["labels"] == {"a": "b", "team": "thoth", "v": "1"}
    assert objects[1]["metadata"]["labels"] == {"team": "thoth", "v": "1"}
    assert "template" not in objects[1]["metadata"]["labels"]


def test_processing_does_not_change_the_template() -> None:
    t = template([{"name": "A", "value": "a"}], [{"s": "${A}"}])
    process(t, t["objects"], {})
    assert t["objects"] == [{"s": "${A}"}]


def labelled(name: str, label: str) -> dict[str, Any]:
    return template([], [], metadata={"name": name, "labels": {"template": label}})


def test_selection_needs_exactly_one_template_and_says_what_was_found_where() -> None:
    found = [labelled("a", "solver"), labelled("b", "solver"), labelled("c", "package-analyzer")]
    with pytest.raises(TemplateError) as error:
        select_template(found, "solver", where="namespace 'infra'")
    message = str(error.value)
    assert "namespace 'infra'" in message
    assert "found 2" in message
    assert "a, b" in message
    with pytest.raises(TemplateError, match="found 0"):
        select_template(found[2:], "solver", where="folder 'x'")
    assert select_template(found, "package-analyzer", where="x")["metadata"]["name"] == "c"


def test_example_templates_load_with_three_solvers() -> None:
    templates = load_job_templates(read_template_dir(EXAMPLE_TEMPLATES), where="examples")
    assert len(templates.solvers) >= 3


def test_solver_object_without_name_label_is_an_error() -> None:
    documents = read_template_dir(EXAMPLE_TEMPLATES)
    solver = next(d for d in documents if d["metadata"]["name"] == "solver")
    del solver["objects"][1]["metadata"]["labels"]["solver-type"]
    del solver["objects"][1]["metadata"]["labels"]["component"]
    with pytest.raises(TemplateError, match=r"objects\[1\] has no solver name label"):
        load_job_templates(documents, where="examples")


def test_non_job_objects_are_rejected() -> None:
    documents = read_template_dir(EXAMPLE_TEMPLATES)
    analyzer = next(d for d in documents if d["metadata"]["name"] == "package-analyzer")
    analyzer["objects"][0]["kind"] = "Pod"
    with pytest.raises(TemplateError, match="not a batch/v1 Job"):
        load_job_templates(documents, where="examples")


def test_a_list_as_oc_get_writes_it_is_read(tmp_path: Path) -> None:
    items = [yaml.safe_load(p.read_text()) for p in sorted(EXAMPLE_TEMPLATES.glob("*.yaml"))]
    (tmp_path / "dump.yaml").write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": items}))
    templates = load_job_templates(read_template_dir(tmp_path), where="dump")
    assert len(templates.solvers) == 3


def test_unreadable_yaml_is_a_template_error_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text("objects: [unclosed\n")
    with pytest.raises(TemplateError, match=r"broken\.yaml"):
        read_template_dir(tmp_path)


@pytest.mark.parametrize("snapshot", ["2019-09", "2019-11"])
def test_thoth_2019_templates_are_selected(snapshot: str) -> None:
    folder = SHARED_2019 / snapshot
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent: the 2019 Templates live in the shared folder beside the repository")
    templates = load_job_templates(read_template_dir(folder), where=snapshot)
    assert templates.solvers
    assert templates.analyzer is not None
    assert templates.analyzer.template_name == "package-analyzer"


def test_parameters_are_replaced_in_keys_too() -> None:
    t = template([{"name": "K", "value": "team"}], [{"metadata": {"annotations": {"thoth/${K}": "${K}"}}}])
    assert process(t, t["objects"], {}) == [{"metadata": {"annotations": {"thoth/team": "team"}}}]


def test_nan_and_infinity_are_not_json_and_stay_strings() -> None:
    t = template([{"name": "N", "value": "NaN"}, {"name": "I", "value": "Infinity"}], [{"n": "${{N}}", "i": "${{I}}"}])
    assert process(t, t["objects"], {}) == [{"n": "NaN", "i": "Infinity"}]


def test_non_string_defaults_read_as_their_json_text() -> None:
    t = template([{"name": "B", "value": False}, {"name": "N", "value": 3}], [{"b": "${B}", "n": "${{N}}"}])
    assert process(t, t["objects"], {}) == [{"b": "false", "n": 3}]


def test_keys_take_plain_substitution_and_may_not_collide() -> None:
    t = template([{"name": "N", "value": "3"}, {"name": "K", "value": "b"}], [{"${{N}}": 1, "a-${K}": 2}])
    assert process(t, t["objects"], {}) == [{"${{N}}": 1, "a-b": 2}]
    clash = template([{"name": "K", "value": "b"}], [{"a-${K}": 1, "a-b": 2}])
    with pytest.raises(TemplateError, match="a-b"):
        process(clash, clash["objects"], {})


# --- Template files and values are data from outside, never trusted -----------------------------------


def hostile_run(run_cli: Any, tmp_path: Path, files: dict[str, str]) -> Any:
    """A dry run over the example Templates plus ``files`` (name -> text): exit 1 expected, no traceback."""
    folder = tmp_path / "templates"
    folder.mkdir()
    for path in EXAMPLE_TEMPLATES.glob("*.yaml"):
        (folder / path.name).write_text(path.read_text())
    for name, text in files.items():
        (folder / name).write_text(text)
    result = run_cli(["--dry-run", "--template-dir", str(folder), "--report", str(tmp_path / "report.json")])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.stderr
    assert json.loads((tmp_path / "report.json").read_text())["exit_code"] == 1
    return result


def billion_laughs(levels: int = 9, width: int = 10) -> str:
    """YAML of a few hundred bytes that expands to ``width ** levels`` strings (10^9 by default)."""
    lines = [f"a0: &a0 [{', '.join(['lol'] * width)}]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def test_a_yaml_alias_bomb_is_a_template_error_naming_the_file(
    run_cli: Any, tmp_path: Path, sample_store: None
) -> None:
    result = hostile_run(run_cli, tmp_path, {"laughs.yaml": billion_laughs()})
    assert "laughs.yaml" in result.stderr
    assert "aliases expand to more than" in result.stderr


def test_a_few_aliases_are_fine(tmp_path: Path) -> None:
    (tmp_path / "shared.yaml").write_text(billion_laughs(levels=3, width=4))  # 84 nodes once expanded
    assert read_template_dir(tmp_path) == []  # read without complaint; it holds no Template


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("&l {apiVersion: v1, kind: List, items: [*l]}\n", "a structure inside itself"),
        (
            "apiVersion: v1\nkind: Template\nmetadata: {name: loop, labels: {template: other}}\n"
            "objects: [&o {apiVersion: batch/v1, kind: Job, spec: {again: *o}}]\n",
            "a structure inside itself",
        ),
        ("x: " + "[" * 150 + "]" * 150 + "\n", "nested deeper than 100 levels"),
        ("x: " + "[" * 100_000 + "]" * 100_000 + "\n", "exceeded maximum nesting depth"),  # libyaml's own bound
        ("apiVersion: v1\nkind: List\nitems: {not: a list}\n", "must be a list"),
    ],
    ids=["list-holding-itself", "object-holding-itself", "deep", "very-deep", "items-not-a-list"],
)
def test_a_recursive_or_deep_file_is_a_template_error_naming_the_file(
    text: str, message: str, run_cli: Any, tmp_path: Path, sample_store: None
) -> None:
    result = hostile_run(run_cli, tmp_path, {"hostile.yaml": text})
    assert "hostile.yaml" in result.stderr
    assert message in result.stderr


@pytest.mark.parametrize("depth", [150, 100_000])
def test_a_deeply_nested_json_value_is_a_template_error_naming_parameter_and_template(
    depth: int, run_cli: Any, tmp_path: Path, sample_store: None
) -> None:
    analyzer = yaml.safe_load((EXAMPLE_TEMPLATES / "package-analyzer.yaml").read_text())
    analyzer["parameters"].append({"name": "DEEP", "value": "[" * depth + "]" * depth})
    analyzer["objects"][0]["metadata"]["annotations"] = {"deep": "${{DEEP}}"}
    result = hostile_run(run_cli, tmp_path, {"package-analyzer.yaml": yaml.safe_dump(analyzer)})
    assert "parameter DEEP" in result.stderr
    assert "'package-analyzer'" in result.stderr
    assert "nested deeper than 100 levels" in result.stderr


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"x": value}
    return value


def test_a_template_nested_too_deep_from_anywhere_is_a_template_error() -> None:
    """Templates from the cluster arrive parsed, so the bound is checked on the objects too."""
    documents = read_template_dir(EXAMPLE_TEMPLATES)
    analyzer = next(d for d in documents if d["metadata"]["name"] == "package-analyzer")
    analyzer["objects"][0]["metadata"]["annotations"] = {"deep": nested(100)}
    with pytest.raises(TemplateError, match=r"Template 'package-analyzer' in ns is nested deeper than 100"):
        load_job_templates(documents, where="ns")
    analyzer["objects"][0]["metadata"]["annotations"] = {"deep": nested(90)}
    assert load_job_templates(documents, where="ns").analyzer is not None
    loop: dict[str, Any] = {}
    loop["self"] = loop
    analyzer["objects"][0]["metadata"]["annotations"] = loop
    with pytest.raises(TemplateError, match="or holds itself"):
        load_job_templates(documents, where="ns")


def test_a_template_nested_too_deep_in_the_cluster_exits_1(run_cli: Any, tmp_path: Path, sample_store: None) -> None:
    with FakeKube() as fake:
        for path in sorted(EXAMPLE_TEMPLATES.glob("*.yaml")):
            document = yaml.safe_load(path.read_text())
            document["metadata"]["namespace"] = "infra"
            if document["metadata"]["name"] == "solver":
                document["objects"][0]["metadata"]["annotations"] = {"deep": nested(150)}
            fake.add(document)
        env = {
            "KUBECONFIG": str(fake.kubeconfig(tmp_path / "kubeconfig")),
            "THOTH_INFRA_NAMESPACE": "infra",
            "THOTH_MIDDLETIER_NAMESPACE": "middletier",
        }
        result = run_cli(["--dry-run"], env=env)
    assert result.exit_code == 1
    assert "Traceback" not in result.stderr
    assert "Template 'solver' in namespace 'infra' is nested deeper than 100 levels" in result.stderr


def test_process_bounds_json_values_too() -> None:
    t = template([{"name": "J", "value": "[" * 5000 + "]" * 5000}], [{"j": "${{J}}"}])
    with pytest.raises(TemplateError, match="parameter J is nested deeper"):
        process(t, t["objects"], {})
