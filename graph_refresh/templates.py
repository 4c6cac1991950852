"""Select the solver and package-analyzer Templates and process them client-side (SPEC §5).

Processing follows ``oc process``: ``${P}`` is replaced inside strings, a string that is exactly
``${{P}}`` becomes the value parsed as JSON (or the plain string when it is not JSON), undeclared
``${X}`` stays literal, values are substituted once, and the Template's top-level ``labels`` are
added to every object. Pure code except ``read_template_dir``, which reads the ``--template-dir``
folder; Templates from the cluster arrive as data from ``kube``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from graph_refresh.errors import TemplateError
from graph_refresh.items import SolverEnvironment, parse_solver_name

TEMPLATE_KINDS = {("template.openshift.io/v1", "Template"), ("v1", "Template")}  # v1: legacy form, 2019
SOLVER_NAME_LABELS = ("solver-type", "component")  # where the solver name is, in order of preference

_PARAM_RE = re.compile(r"\$\{([A-Za-z0-9_]+)\}")
_JSON_PARAM_RE = re.compile(r"\$\{\{([A-Za-z0-9_]+)\}\}")

Object = dict[str, Any]


def as_mapping(value: Any, what: str) -> dict[str, Any]:
    """``value`` when it is a mapping (None counts as empty); a TemplateError saying ``what`` otherwise."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TemplateError(f"{what} must be a mapping, not {type(value).__name__}")
    return value


def _name(template: Mapping[str, Any]) -> str:
    metadata = template.get("metadata")
    return str(metadata.get("name", "<unnamed>")) if isinstance(metadata, dict) else "<unnamed>"


def _labels(obj: Mapping[str, Any], what: str) -> dict[str, Any]:
    metadata = as_mapping(obj.get("metadata"), f"{what}: metadata")
    return as_mapping(metadata.get("labels"), f"{what}: metadata.labels")


def read_template_dir(folder: Path) -> list[Object]:
    """Every Template document in the ``*.yaml``, ``*.yml`` and ``*.json`` files of a folder, in file-name order."""
    found = []
    paths = sorted(p for p in folder.iterdir() if p.suffix in {".yaml", ".yml", ".json"} and p.is_file())
    for path in paths:
        try:
            documents = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
            raise TemplateError(f"cannot read Template file {str(path)!r}: {error}") from error
        for document in documents:
            if isinstance(document, dict) and str(document.get("kind", "")).endswith("List"):
                documents.extend(document.get("items") or [])  # `oc get templates -o yaml` writes a List
            elif isinstance(document, dict) and (document.get("apiVersion"), document.get("kind")) in TEMPLATE_KINDS:
                found.append(document)
    return found


def select_template(templates: list[Object], label: str, *, where: str) -> Object:
    """The one Template with ``metadata.labels.template == label``; TemplateError when zero or several."""
    matching = [t for t in templates if _labels(t, f"Template {_name(t)!r} in {where}").get("template") == label]
    if len(matching) != 1:
        names = ", ".join(sorted(_name(t) for t in matching)) or "none"
        everything = ", ".join(sorted(_name(t) for t in templates)) or "none"
        raise TemplateError(
            f"expected exactly one Template labelled template={label} in {where}, found {len(matching)} "
            f"({names}); Templates there: {everything}"
        )
    return matching[0]


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")  # Python's json reads NaN/Infinity; Go's (oc's) does not


def _substitute(value: Any, values: Mapping[str, str]) -> Any:
    """A copy of a JSON-like structure with parameters replaced in every string, once."""
    if isinstance(value, str):
        if "${" not in value:
            return value
        whole = _JSON_PARAM_RE.fullmatch(value)
        if whole and whole.group(1) in values:
            raw = values[whole.group(1)]
            try:
                return json.loads(raw, parse_constant=_not_json)
            except ValueError:
                return raw
        return _PARAM_RE.sub(lambda m: values.get(m.group(1), m.group(0)), value)
    if isinstance(value, dict):  # oc process replaces ${P} in keys too (not ${{P}}: a key stays a string)
        result: dict[Any, Any] = {}
        for key, item in value.items():
            new_key = _PARAM_RE.sub(lambda m: values.get(m.group(1), m.group(0)), key) if isinstance(key, str) else key
            if new_key in result:
                raise TemplateError(f"two keys become {new_key!r} once parameters are replaced")
            result[new_key] = _substitute(item, values)
        return result
    if isinstance(value, list):
        return [_substitute(item, values) for item in value]
    return value


def parameter_values(template: Mapping[str, Any], given: Mapping[str, str]) -> dict[str, str]:
    """Each declared parameter's value: given if declared, else its default; TemplateError if none can be had."""
    values: dict[str, str] = {}
    for index, parameter in enumerate(template.get("parameters") or []):
        name = parameter.get("name") if isinstance(parameter, dict) else None
        if not isinstance(name, str) or not name:
            raise TemplateError(f"Template {_name(template)!r}: parameters[{index}] has no name")
        value = given.get(name, parameter.get("value"))
        if value is None or value == "":
            if parameter.get("generate"):
                raise TemplateError(
                    f"Template {_name(template)!r}: parameter {name} would be generated "
                    f"({parameter.get('generate')}); graph-refresh needs deterministic values, give it a value"
                )
            if parameter.get("required"):
                raise TemplateError(f"Template {_name(template)!r}: parameter {name} is required and has no value")
        values[name] = "" if value is None else value if isinstance(value, str) else json.dumps(value)
    return values


def process(template: Mapping[str, Any], objects: list[Object], given: Mapping[str, str]) -> list[Object]:
    """Process ``objects`` of ``template`` as ``oc process`` would, with ``given`` parameter values.

    Values for parameters the Template does not declare are ignored.
    """
    values = parameter_values(template, given)
    extra_labels = _substitute(as_mapping(template.get("labels"), f"Template {_name(template)!r}: labels"), values)
    processed = []
    for index, obj in enumerate(objects):
        result = _substitute(as_mapping(obj, f"Template {_name(template)!r}: objects[{index}]"), values)  # a copy
        if extra_labels:
            what = f"Template {_name(template)!r}: objects[{index}]"
            metadata = as_mapping(result.get("metadata"), f"{what}: metadata")
            metadata["labels"] = {**_labels(result, what), **extra_labels}
            result["metadata"] = metadata
        processed.append(result)
    return processed


@dataclass(frozen=True)
class JobTemplate:
    """One Job object of a Template, with the Template it came from."""

    template: Object
    job: Object

    @property
    def template_name(self) -> str:
        return _name(self.template)

    def render(self, given: Mapping[str, str]) -> Object:
        """The processed Job object."""
        return process(self.template, [self.job], given)[0]


@dataclass(frozen=True)
class JobTemplates:
    """The selected solver Jobs (by solver name) and the package-analyzer Job; a kind turned off has none."""

    solvers: dict[str, tuple[SolverEnvironment, JobTemplate]]
    analyzer: JobTemplate | None

    def solver_environments(self) -> Iterator[SolverEnvironment]:
        """Solvers in Template order."""
        return (environment for environment, _ in self.solvers.values())


def _job_objects(template: Object, *, where: str) -> list[Object]:
    objects = template.get("objects") or []
    if not isinstance(objects, list) or not objects:
        raise TemplateError(f"Template {_name(template)!r} in {where} has no objects")
    for index, obj in enumerate(objects):
        if not isinstance(obj, dict) or (obj.get("apiVersion"), obj.get("kind")) != ("batch/v1", "Job"):
            raise TemplateError(f"Template {_name(template)!r} in {where}: objects[{index}] is not a batch/v1 Job")
    return objects


def load_job_templates(
    templates: list[Object], *, where: str, solvers: bool = True, analyzer: bool = True
) -> JobTemplates:
    """Select and check the Templates of the kinds turned on from what was found in ``where`` (a namespace
    or a folder). A kind turned off needs no Template: its Template is not looked for."""
    return JobTemplates(
        _solver_jobs(templates, where=where) if solvers else {},
        _analyzer_job(templates, where=where) if analyzer else None,
    )


def _solver_jobs(templates: list[Object], *, where: str) -> dict[str, tuple[SolverEnvironment, JobTemplate]]:
    solver_template = select_template(templates, "solver", where=where)
    solvers: dict[str, tuple[SolverEnvironment, JobTemplate]] = {}
    for index, job in enumerate(_job_objects(solver_template, where=where)):
        labels = _labels(job, f"Template {_name(solver_template)!r} in {where}: objects[{index}]")
        name = next((labels[key] for key in SOLVER_NAME_LABELS if labels.get(key)), None)
        if not isinstance(name, str):
            raise TemplateError(
                f"Template {_name(solver_template)!r} in {where}: objects[{index}] has no solver name label "
                f"({' or '.join(SOLVER_NAME_LABELS)})"
            )
        if name in solvers:
            raise TemplateError(f"Template {_name(solver_template)!r} in {where}: solver {name!r} appears twice")
        environment = parse_solver_name(name, template=_name(solver_template))
        solvers[name] = (environment, JobTemplate(solver_template, job))
    return solvers


def _analyzer_job(templates: list[Object], *, where: str) -> JobTemplate:
    analyzer_template = select_template(templates, "package-analyzer", where=where)
    analyzer_jobs = _job_objects(analyzer_template, where=where)
    if len(analyzer_jobs) != 1:
        raise TemplateError(
            f"Template {_name(analyzer_template)!r} in {where} must hold one Job, it holds {len(analyzer_jobs)}"
        )
    return JobTemplate(analyzer_template, analyzer_jobs[0])
