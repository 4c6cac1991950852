"""Rendering: each Template compiled once per run gives exactly what processing (``oc process``) gives."""

from __future__ import annotations

import copy
import datetime
import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from graph_refresh.capacity import job_cost
from graph_refresh.config import PlanSettings
from graph_refresh.errors import TemplateError
from graph_refresh.items import ANALYZER, SOLVER, Candidate, WorkItem
from graph_refresh.render import Renderer
from graph_refresh.templates import JobTemplate, JobTemplates, load_job_templates, read_template_dir

from .helpers import EXAMPLE_TEMPLATES, PYPI, SHARED_2019

SLOTS = ("ID", "PKG", "IDX", "DOC", "NEVER_DECLARED")

# A Template that uses every processing rule at once, with per-item slots where they are hardest.
HOSTILE: dict[str, Any] = {
    "apiVersion": "template.openshift.io/v1",
    "kind": "Template",
    "metadata": {"name": "hostile", "labels": {"template": "package-analyzer"}},
    "labels": {"team": "${A}", "item": "${ID}", "kept": "${NEVER_DECLARED}"},
    "parameters": [
        {"name": "A", "value": "a-${B}-${ID}"},  # a fixed value holding parameters: never expanded again
        {"name": "B", "value": "b"},
        {"name": "J", "value": '{"x": ["${A}", 1, true, null, {"deep": [[{}]]}], "n": 1.5}'},
        {"name": "N", "value": "3600"},
        {"name": "NJ", "value": "not json"},
        {"name": "NAN", "value": "NaN"},
        {"name": "EMPTY"},
        {"name": "FALSE", "value": False},
        {"name": "ID", "required": True},
        {"name": "PKG"},
        {"name": "IDX", "value": "default-index"},
        {"name": "DOC", "generate": "expression", "from": "[a-z]{8}"},
    ],
    "objects": [
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": "${ID}",
                "labels": {"item": "mine", "own": "${PKG}"},
                "annotations": {
                    "k-${A}": "static key after fixed values",
                    "k-${ID}": "a key from the item",
                    "${ID}${PKG}": "${ID}${PKG}${ID}",
                    "${{N}}": "a key takes no JSON",
                    "k-x": "collides when ID is x",
                },
            },
            "spec": {
                "several": "${ID}-${A}-${ID}-${PKG}-${NEVER_DECLARED}-${UNDECLARED}",
                "whole": ["${{ID}}", "${{PKG}}", "${{J}}", "${{N}}", "${{NJ}}", "${{NAN}}", "${{EMPTY}}", "${{FALSE}}"],
                "not-whole": ["x${{N}}", "${{N}}x", "${{UNDECLARED}}", "${{NEVER_DECLARED}}", "$${A}", "${", "${A"],
                "plain": "no parameter here",
                "scalars": [1, 2.5, True, None, float("inf"), datetime.date(2019, 9, 1), b"bytes"],
                "keys": {1: "int", "1": "str", None: "none", 2.5: "float"},
                "empty": [{}, [], ""],
                "nested": {"deeper": [{"id": "${ID}", "fixed": "${B}", "json": "${{J}}"}]},
                "ttlSecondsAfterFinished": "${{N}}",
            },
        }
    ],
}

VALUES = [
    "x",
    "plain",
    "${A}",
    "${ID}",
    "${{N}}",
    "$",
    "${",
    '{"a": [1, {"b": null}]}',
    "[1, [2, [3]]]",
    "123",
    "-0.5e3",
    "true",
    "null",
    "NaN",
    '"quoted"',
    "ünïcode ✓",
    "two\nlines",
    "https://user@pypi.internal:8443/simple/?x=1&y=%20#frag",
    "flask===1.1.2",
]


def dumps(obj: Any) -> str:
    """JSON text keeping key order and types (1 vs 1.0 vs true); odd YAML scalars as their repr."""
    return json.dumps(obj, default=repr, allow_nan=True)


def outcome(render: Any, values: dict[str, str]) -> str:
    try:
        return dumps(render(values))
    except TemplateError as error:
        return f"TemplateError: {error}"


def test_compiled_rendering_equals_processing_for_hostile_templates_and_values() -> None:
    job = JobTemplate(HOSTILE, HOSTILE["objects"][0])
    fixed = {"B": "fixed-b", "N": "42", "NEVER_DECLARED": "ignored"}
    compiled = job.compile(fixed, SLOTS)
    values = [*VALUES, ""]  # "" for the required ID and the generated DOC is an error, as in processing
    rendered = errors = 0
    for id_, pkg, idx, doc in itertools.islice(itertools.product(values, repeat=4), 0, None, 29):
        item = {"ID": id_, "PKG": pkg, "IDX": idx, "DOC": doc, "NEVER_DECLARED": "item value"}
        expected = outcome(job.render, {**fixed, **item})
        assert outcome(compiled.render, item) == expected, item
        rendered += not expected.startswith("TemplateError")
        errors += expected.startswith("TemplateError")
    assert rendered > 1000
    assert errors > 100  # both paths exercised: renders and per-item errors
    assert outcome(compiled.render, {"ID": "x", "PKG": "p", "IDX": "i", "DOC": "d"}).startswith(
        "TemplateError: two keys become 'k-x'"
    )


def test_a_fixed_error_is_raised_when_compiling() -> None:
    clash = {**HOSTILE, "parameters": [{"name": "B", "value": "x"}], "objects": [{"k-${B}": 1, "k-x": 2}]}
    with pytest.raises(TemplateError, match="two keys become 'k-x'"):
        JobTemplate(clash, clash["objects"][0]).compile({}, SLOTS)
    required = {**HOSTILE, "parameters": [{"name": "R", "required": True}], "objects": [{}]}
    with pytest.raises(TemplateError, match="parameter R is required"):
        JobTemplate(required, {}).compile({}, SLOTS)


def containers(obj: Any) -> list[Any]:
    """Every dict and list in ``obj``, itself included."""
    found, stack = [], [obj]
    while stack:
        current = stack.pop()
        if isinstance(current, dict | list):
            found.append(current)
            stack.extend(current.values() if isinstance(current, dict) else current)
    return found


def vandalise(obj: Any) -> None:
    """Change every container of ``obj`` in place, as a caller editing a rendered Job might."""
    for container in containers(obj):
        if isinstance(container, dict):
            for key in list(container):
                container[key] = "changed"
            container["added"] = True
        else:
            container[:] = ["changed"]


def test_renders_share_no_container_with_each_other_or_the_template() -> None:
    job = JobTemplate(HOSTILE, HOSTILE["objects"][0])
    template_before = copy.deepcopy(HOSTILE)
    compiled = job.compile({}, SLOTS)
    item = {"ID": "id", "PKG": '{"a": [1]}', "IDX": "i", "DOC": "d"}
    first, second = compiled.render(item), compiled.render(item)
    pristine = dumps(second)
    assert not {id(c) for c in containers(first)} & {id(c) for c in containers(second)}
    assert not {id(c) for c in containers(first)} & {id(c) for c in containers(HOSTILE)}
    vandalise(first)
    assert dumps(second) == pristine
    assert dumps(compiled.render(item)) == pristine
    assert dumps(HOSTILE) == dumps(template_before)


def templates_of(folder: Path) -> JobTemplates:
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent: the 2019 Templates live in the shared folder beside the repository")
    return load_job_templates(read_template_dir(folder), where=str(folder))


def reference_render(renderer: Renderer, templates: JobTemplates, item: WorkItem) -> dict[str, Any]:
    """The first release's rendering (process the Template for the item, then name, label and TTL the Job),
    with what learning from failed Jobs needs (docs/learning.md): our labels on the pod template too, and the
    item in annotations."""
    template = templates.analyzer if item.kind == ANALYZER else templates.solvers[str(item.solver)][1]
    assert template is not None
    job = template.render(renderer.parameters(item))
    job["metadata"]["name"] = item.job_name
    if renderer.namespace:
        job["metadata"]["namespace"] = renderer.namespace
    job["metadata"]["labels"] = {**(job["metadata"].get("labels") or {}), **item.labels}
    job["metadata"]["annotations"] = {**(job["metadata"].get("annotations") or {}), **item.annotations}
    pod_metadata = job["spec"]["template"].setdefault("metadata", {})
    pod_metadata["labels"] = {**(pod_metadata.get("labels") or {}), **item.labels}
    if job["spec"].get("ttlSecondsAfterFinished") is None:
        job["spec"]["ttlSecondsAfterFinished"] = renderer.plan.job_ttl_seconds
    job.pop("status", None)
    return job


CANDIDATES = [
    Candidate("flask", "1.1.2", PYPI),
    Candidate("zope.interface", "7.2", "https://user@pypi.internal:8443/simple/?x=1&y=%20#frag"),
    Candidate("x" * 200, "1!2.0.post1-dev_3", "http://internal.example:8080/{simple}[1]"),
    Candidate("torch", "2.1.0+cpu", "https://download.pytorch.org/whl/cpu"),
]
PLANS = [
    PlanSettings(),
    PlanSettings(log_solver="DEBUG", solver_output="http://out/${THOTH_SOLVER_JOB_ID}", job_ttl_seconds=7),
    PlanSettings(log_solver="INFO", package_analyzer_output="${{THOTH_DOCUMENT_ID}}", subgraph_check_api=""),
]


@pytest.mark.parametrize("folder", [EXAMPLE_TEMPLATES, SHARED_2019 / "2019-09", SHARED_2019 / "2019-11"])
@pytest.mark.parametrize("plan", PLANS)
def test_renderer_gives_the_first_releases_jobs_for_real_templates(folder: Path, plan: PlanSettings) -> None:
    templates = templates_of(folder)
    for namespace in (None, "middletier"):
        renderer = Renderer(templates, plan, namespace)
        items = [WorkItem(SOLVER, solver, c) for solver in templates.solvers for c in CANDIDATES]
        items += [WorkItem(ANALYZER, None, c) for c in CANDIDATES]
        for item in items * 2:  # the second time from the compiled Template
            assert dumps(renderer.render(item)) == dumps(reference_render(renderer, templates, item)), item


def test_a_rendered_job_may_be_changed_without_changing_the_next() -> None:
    templates = templates_of(EXAMPLE_TEMPLATES)
    renderer = Renderer(templates, PlanSettings(), "middletier")
    item = WorkItem(SOLVER, next(iter(templates.solvers)), CANDIDATES[0])
    first = renderer.render(item)
    expected = dumps(reference_render(renderer, templates, item))
    container = first["spec"]["template"]["spec"]["containers"][0]
    container["resources"]["limits"]["memory"] = "8Gi"  # what escalation will do to a retried Job
    first["spec"]["activeDeadlineSeconds"] = 99_999
    vandalise(first)
    assert dumps(renderer.render(item)) == expected
    assert renderer.probe_cost(SOLVER, item.solver) == job_cost(reference_render(renderer, templates, item))
