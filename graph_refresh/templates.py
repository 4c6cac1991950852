"""Select the solver and package-analyzer Templates and process them client-side (design: Templates).

Processing follows ``oc process``: ``${P}`` is replaced inside strings, a string that is exactly
``${{P}}`` becomes the value parsed as JSON (or the plain string when it is not JSON), undeclared
``${X}`` stays literal, values are substituted once, and the Template's top-level ``labels`` are
added to every object. Pure code except ``read_template_dir``, which reads the ``--template-dir``
folder; Templates from the cluster arrive as data from ``kube``.
"""

from __future__ import annotations

import ast
import copy
import json
import re
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from graph_refresh.errors import TemplateError
from graph_refresh.items import ANALYZER, SOLVER, Kind, SolverEnvironment, parse_solver_name

TEMPLATE_KINDS = {("template.openshift.io/v1", "Template"), ("v1", "Template")}  # v1: legacy form, 2019
SOLVER_NAME_LABELS = ("solver-type", "component")  # where the solver name is, in order of preference
# Template files and values are data from outside (design: Outputs and data from outside). A Job Template is
# about 12 levels deep and uses no YAML aliases; these bounds leave room for far larger ones yet keep memory
# and recursion bounded.
MAX_DEPTH = 100  # levels of nesting of a Template, and of a ${{P}} value parsed as JSON
MAX_ALIAS_NODES = 10_000  # nodes YAML aliases may add to a file once expanded (a "billion laughs" adds 10^9)

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present; it also caps nesting itself

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
    """Every Template document in the ``*.yaml``, ``*.yml`` and ``*.json`` files of a folder, in file-name order.

    A file that cannot be read, or whose YAML nests deeper than :data:`MAX_DEPTH`, refers to itself or
    expands aliases past :data:`MAX_ALIAS_NODES`, is a TemplateError naming the file.
    """
    found = []
    paths = sorted(p for p in folder.iterdir() if p.suffix in {".yaml", ".yml", ".json"} and p.is_file())
    for path in paths:
        what = f"Template file {str(path)!r}"
        try:
            documents = _load_yaml(path.read_text(encoding="utf-8"), what)
        except (OSError, UnicodeDecodeError, yaml.YAMLError, RecursionError) as error:
            # RecursionError: pure-Python PyYAML (no libyaml) parses nesting recursively
            raise TemplateError(f"cannot read {what}: {error}") from error
        for document in documents:
            if isinstance(document, dict) and str(document.get("kind", "")).endswith("List"):
                items = document.get("items") or []  # `oc get templates -o yaml` writes a List
                if not isinstance(items, list):
                    raise TemplateError(f"{what}: the items of a {document.get('kind')} must be a list")
                documents.extend(items)  # finite: the file was checked to hold no cycle
            elif isinstance(document, dict) and (document.get("apiVersion"), document.get("kind")) in TEMPLATE_KINDS:
                found.append(document)
    return found


def _load_yaml(text: str, what: str) -> list[Any]:
    """The documents of a YAML text, each checked as parsed nodes (before it becomes objects) by :func:`_check_node`."""
    loader = _Loader(text)
    try:
        documents = []
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                break
            _check_node(node, what)
            documents.append(loader.construct_document(node))
        return documents
    finally:
        loader.dispose()


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _check_node(root: yaml.Node, what: str) -> None:
    """TemplateError unless the node graph is a tree at most :data:`MAX_DEPTH` deep once aliases are expanded,
    and aliases add at most :data:`MAX_ALIAS_NODES` nodes to it.

    The composer turns an alias into a second reference to its anchor's node, so the graph is walked
    once per distinct node (no recursion, no expansion) and each node's expanded size is summed.
    """
    size: dict[int, int] = {}  # node id -> nodes once expanded; a node is here once all below it is
    on_path: set[int] = set()
    frames = [(root, iter(_children(root)))]
    on_path.add(id(root))
    while frames:
        node, below = frames[-1]
        child = next(below, None)
        if child is None:
            frames.pop()
            on_path.discard(id(node))
            size[id(node)] = 1 + sum(size[id(c)] for c in _children(node))
        elif id(child) in size:
            continue  # an alias of a node already walked
        elif id(child) in on_path:
            raise TemplateError(f"{what}: a YAML alias refers to a node that holds it (a structure inside itself)")
        elif len(frames) >= MAX_DEPTH and not isinstance(child, yaml.ScalarNode):
            raise TemplateError(f"{what}: nested deeper than {MAX_DEPTH} levels")
        else:
            on_path.add(id(child))
            frames.append((child, iter(_children(child))))
    if size[id(root)] - len(size) > MAX_ALIAS_NODES:
        raise TemplateError(f"{what}: YAML aliases expand to more than {MAX_ALIAS_NODES} extra nodes")


def check_depth(value: Any, what: str) -> None:
    """TemplateError naming ``what`` when a parsed structure nests deeper than :data:`MAX_DEPTH` levels.

    Walks without recursion; a structure that holds itself counts as too deep, so the walk ends.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        current, depth = stack.pop()
        children = current.values() if isinstance(current, dict) else current if isinstance(current, list) else ()
        for child in children:
            if isinstance(child, dict | list):
                if depth >= MAX_DEPTH:
                    raise TemplateError(f"{what} is nested deeper than {MAX_DEPTH} levels (or holds itself)")
                stack.append((child, depth + 1))


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


def json_value(raw: str, parameter: str, template: str) -> Any:
    """What a string that is exactly ``${{P}}`` becomes: the value parsed as JSON, else the value itself.

    JSON nested deeper than :data:`MAX_DEPTH` is a TemplateError naming the parameter and the Template.
    """
    what = f"Template {template!r}: the value of parameter {parameter}"
    try:
        value = json.loads(raw, parse_constant=_not_json)
    except ValueError:
        return raw
    except RecursionError as error:  # the C parser's own bound (about 1000 levels), raised before ours
        raise TemplateError(f"{what} is nested deeper than {MAX_DEPTH} levels") from error
    if isinstance(value, dict | list):
        check_depth(value, what)
    return value


def _replace(text: str, values: Mapping[str, str]) -> str:
    return _PARAM_RE.sub(lambda m: values.get(m.group(1), m.group(0)), text)


def _substitute(value: Any, values: Mapping[str, str], template: str) -> Any:
    """A copy of a JSON-like structure with parameters replaced in every string, once."""
    if isinstance(value, str):
        if "${" not in value:
            return value
        whole = _JSON_PARAM_RE.fullmatch(value)
        if whole and whole.group(1) in values:
            return json_value(values[whole.group(1)], whole.group(1), template)
        return _replace(value, values)
    if isinstance(value, dict):  # oc process replaces ${P} in keys too (not ${{P}}: a key stays a string)
        result: dict[Any, Any] = {}
        for key, item in value.items():
            new_key = _replace(key, values) if isinstance(key, str) else key
            if new_key in result:
                raise TemplateError(_clash(new_key))
            result[new_key] = _substitute(item, values, template)
        return result
    if isinstance(value, list):
        return [_substitute(item, values, template) for item in value]
    return value


def _clash(key: Any) -> str:
    return f"two keys become {key!r} once parameters are replaced"


def _check_value(template: str, parameter: Mapping[str, Any], name: str, value: Any) -> None:
    """TemplateError when a parameter that is generated or required gets no value."""
    if value is None or value == "":
        if parameter.get("generate"):
            raise TemplateError(
                f"Template {template!r}: parameter {name} would be generated "
                f"({parameter.get('generate')}); graph-refresh needs deterministic values, give it a value"
            )
        if parameter.get("required"):
            raise TemplateError(f"Template {template!r}: parameter {name} is required and has no value")


def _parameters(template: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each declared parameter with its name; TemplateError for one without a name."""
    for index, parameter in enumerate(template.get("parameters") or []):
        name = parameter.get("name") if isinstance(parameter, dict) else None
        if not isinstance(name, str) or not name:
            raise TemplateError(f"Template {_name(template)!r}: parameters[{index}] has no name")
        yield name, parameter


def parameter_values(template: Mapping[str, Any], given: Mapping[str, str]) -> dict[str, str]:
    """Each declared parameter's value: given if declared, else its default; TemplateError if none can be had."""
    values: dict[str, str] = {}
    for name, parameter in _parameters(template):
        value = given.get(name, parameter.get("value"))
        _check_value(_name(template), parameter, name, value)
        values[name] = "" if value is None else value if isinstance(value, str) else json.dumps(value)
    return values


def _add_labels(obj: Object, extra_labels: Mapping[str, Any], what: str) -> None:
    """Add the Template's top-level ``labels`` to a processed object's (they win over the object's own)."""
    metadata = as_mapping(obj.get("metadata"), f"{what}: metadata")
    metadata["labels"] = {**_labels(obj, what), **extra_labels}
    obj["metadata"] = metadata


def process(template: Mapping[str, Any], objects: list[Object], given: Mapping[str, str]) -> list[Object]:
    """Process ``objects`` of ``template`` as ``oc process`` would, with ``given`` parameter values.

    Values for parameters the Template does not declare are ignored. This is the reference
    implementation: :meth:`JobTemplate.compile` gives the same objects, faster.
    """
    name = _name(template)
    values = parameter_values(template, given)
    extra_labels = _substitute(as_mapping(template.get("labels"), f"Template {name!r}: labels"), values, name)
    processed = []
    for index, obj in enumerate(objects):
        what = f"Template {name!r}: objects[{index}]"
        result = _substitute(as_mapping(obj, what), values, name)  # a copy
        if extra_labels:
            _add_labels(result, extra_labels, what)
        processed.append(result)
    return processed


# Scalars an ast.Constant holds as they are (immutable); anything else YAML makes (a date, a !!set) is
# handed to the compiled code as a constant and deep-copied on each render.
_LITERALS = (str, int, float, bool, type(None), bytes)


def _keyed(pairs: tuple[tuple[Any, Any], ...]) -> dict[Any, Any]:
    """A mapping whose keys hold per-item parameters; TemplateError when two of them become one."""
    result: dict[Any, Any] = {}
    for key, value in pairs:
        if key in result:
            raise TemplateError(_clash(key))
        result[key] = value
    return result


class _Compiler:
    """Turns a Template structure into a Python function that builds it afresh for each item.

    The function is compiled from an ``ast`` tree of constants, names and displays (never from source
    text, so no value can become code): parameters fixed for the run are already in its constants,
    constant containers are rebuilt by a few bytecodes each, and the per-item ``slots`` are read from
    the mapping it is called with. Every container it returns is new: nothing is shared between calls.
    """

    def __init__(self, values: Mapping[str, str], slots: Collection[str], template: str) -> None:
        self._values = values  # declared parameters; a slot's own value here is a placeholder
        self._slots = slots  # declared parameters whose value comes with each item
        self._template = template
        self._locals: dict[str, str] = {}  # slot -> local variable, in order of first use
        self._constants: list[Any] = []  # objects an ast.Constant cannot hold

    def _slot(self, name: str) -> ast.expr:
        variable = self._locals.setdefault(name, f"s{len(self._locals)}")
        return ast.Name(variable, ast.Load())

    def _scalar(self, value: Any) -> ast.expr:
        if type(value) in _LITERALS:
            return ast.Constant(value)
        self._constants.append(value)
        constant = ast.Subscript(ast.Name("_k", ast.Load()), ast.Constant(len(self._constants) - 1), ast.Load())
        return ast.Call(ast.Name("_copy", ast.Load()), [constant], [])

    def _text(self, text: str) -> str | ast.expr:
        """``text`` with ``${P}`` replaced, as :func:`_replace` would: a str when no slot is in it."""
        pieces: list[str | ast.expr] = []
        start = 0
        for match in _PARAM_RE.finditer(text):
            before = text[start : match.start()]
            if match.group(1) in self._slots:
                pieces += [before, self._slot(match.group(1))]
            else:
                pieces.append(before + self._values.get(match.group(1), match.group(0)))
            start = match.end()
        pieces.append(text[start:])
        if all(isinstance(piece, str) for piece in pieces):
            return "".join(str(piece) for piece in pieces)
        parts: list[ast.expr] = []
        for piece in pieces:
            if isinstance(piece, ast.expr):
                parts.append(ast.FormattedValue(piece, -1, None))
            elif piece:
                parts.append(ast.Constant(piece))
        if len(parts) == 1 and isinstance(parts[0], ast.FormattedValue):
            return parts[0].value  # the slot's value itself, a str
        return ast.JoinedStr(parts)

    def _data(self, value: Any) -> ast.expr:
        """A parsed ``${{P}}`` value as it is: values are substituted once."""
        if isinstance(value, dict):
            return ast.Dict([self._scalar(k) for k in value], [self._data(v) for v in value.values()])
        if isinstance(value, list):
            return ast.List([self._data(v) for v in value], ast.Load())
        return self._scalar(value)

    def node(self, value: Any) -> ast.expr:
        """The expression that builds what :func:`_substitute` makes of ``value``."""
        if isinstance(value, str):
            if "${" not in value:
                return ast.Constant(value)
            whole = _JSON_PARAM_RE.fullmatch(value)
            if whole and whole.group(1) in self._values:
                name = whole.group(1)
                if name in self._slots:
                    arguments = [self._slot(name), ast.Constant(name), ast.Constant(self._template)]
                    return ast.Call(ast.Name("_json", ast.Load()), arguments, [])
                return self._data(json_value(self._values[name], name, self._template))
            text = self._text(value)
            return ast.Constant(text) if isinstance(text, str) else text
        if isinstance(value, dict):
            keys: list[ast.expr] = []
            seen: set[Any] = set()
            for key in value:
                new_key = self._text(key) if isinstance(key, str) else key
                if not isinstance(new_key, ast.expr):
                    if new_key in seen:
                        raise TemplateError(_clash(new_key))
                    seen.add(new_key)
                keys.append(new_key if isinstance(new_key, ast.expr) else self._scalar(new_key))
            items = [self.node(item) for item in value.values()]
            if len(seen) == len(keys):
                return ast.Dict(list[ast.expr | None](keys), items)
            pairs: list[ast.expr] = [ast.Tuple([key, item], ast.Load()) for key, item in zip(keys, items, strict=True)]
            return ast.Call(ast.Name("_keyed", ast.Load()), [ast.Tuple(pairs, ast.Load())], [])
        if isinstance(value, list):
            return ast.List([self.node(item) for item in value], ast.Load())
        return self._scalar(value)

    def function(self, expression: ast.expr) -> Callable[[Mapping[str, str]], Any]:
        """``def build(v): s0 = v[slot0]; ...; return <expression>``, compiled."""
        body: list[ast.stmt] = [
            ast.Assign(
                [ast.Name(variable, ast.Store())],
                ast.Subscript(ast.Name("v", ast.Load()), ast.Constant(name), ast.Load()),
            )
            for name, variable in self._locals.items()
        ]
        body.append(ast.Return(expression))
        arguments = ast.arguments(posonlyargs=[], args=[ast.arg("v")], kwonlyargs=[], kw_defaults=[], defaults=[])
        module = ast.Module([ast.FunctionDef("build", arguments, body, [], None)], [])
        code = compile(ast.fix_missing_locations(module), f"<Template {self._template!r}>", "exec")
        namespace: dict[str, Any] = {"_json": json_value, "_keyed": _keyed, "_copy": copy.deepcopy}
        namespace["_k"] = tuple(self._constants)
        exec(code, namespace)  # noqa: S102 - code compiled from the ast built above, not from any text
        build: Callable[[Mapping[str, str]], Any] = namespace["build"]
        return build


def _compile(value: Any, values: Mapping[str, str], slots: Collection[str], template: str) -> Callable[..., Any]:
    compiler = _Compiler(values, slots, template)
    return compiler.function(compiler.node(value))


@dataclass(frozen=True)
class CompiledJob:
    """A Job object of a Template with the run's fixed parameters in place; :meth:`render` fills an item's slots."""

    template_name: str
    slots: frozenset[str]
    """The declared per-item parameters: every render must give a value for each."""
    _build: Callable[[Mapping[str, str]], Object]
    _labels: Callable[[Mapping[str, str]], dict[str, Any]] | None
    _needed: tuple[tuple[str, dict[str, Any]], ...]  # slots that are required or generated

    def render(self, values: Mapping[str, str]) -> Object:
        """The processed Job for one item's slot values (other keys are ignored).

        Equal to :meth:`JobTemplate.render` with the compile's fixed values and these, and a new object
        throughout: it shares no container with the Template or with another render.
        """
        for name, parameter in self._needed:
            _check_value(self.template_name, parameter, name, values[name])
        job: Object = self._build(values)
        if self._labels is not None:
            _add_labels(job, self._labels(values), f"Template {self.template_name!r}: objects[0]")
        return job


@dataclass(frozen=True)
class JobTemplate:
    """One Job object of a Template, with the Template it came from."""

    template: Object
    job: Object

    @property
    def template_name(self) -> str:
        return _name(self.template)

    def render(self, given: Mapping[str, str]) -> Object:
        """The processed Job object (the reference: :func:`process`)."""
        return process(self.template, [self.job], given)[0]

    def compile(self, fixed: Mapping[str, str], slots: Collection[str]) -> CompiledJob:
        """Process the Job once for a run: ``fixed`` values are substituted now, ``slots`` on each render.

        ``compile(fixed, slots).render(item)`` equals ``render({**fixed, **item})`` when ``item`` gives
        every slot. Raises the TemplateError processing would raise for every item.
        """
        name = self.template_name
        placeholders = {slot: "<per item>" for slot in slots}  # passes `required`; checked again per render
        values = parameter_values(self.template, {**fixed, **placeholders})
        declared = frozenset(slots) & values.keys()
        job = as_mapping(self.job, f"Template {name!r}: objects[0]")
        labels = as_mapping(self.template.get("labels"), f"Template {name!r}: labels")
        needed = tuple(
            (slot, parameter)
            for slot, parameter in _parameters(self.template)
            if slot in declared and (parameter.get("generate") or parameter.get("required"))
        )
        return CompiledJob(
            name,
            declared,
            _compile(job, values, declared, name),
            _compile(labels, values, declared, name) if labels else None,
            needed,
        )


@dataclass(frozen=True)
class JobTemplates:
    """The selected solver Jobs (by solver name) and the package-analyzer Job; a kind turned off has none."""

    solvers: dict[str, tuple[SolverEnvironment, JobTemplate]]
    analyzer: JobTemplate | None

    def solver_environments(self) -> Iterator[SolverEnvironment]:
        """Solvers in Template order."""
        return (environment for environment, _ in self.solvers.values())

    def streams(self) -> list[tuple[Kind, SolverEnvironment | None]]:
        """The candidate streams these Templates serve: each solver in Template order, then the analyzer (its
        environment None); a kind turned off has none."""
        streams: list[tuple[Kind, SolverEnvironment | None]] = [(SOLVER, e) for e in self.solver_environments()]
        return [*streams, (ANALYZER, None)] if self.analyzer is not None else streams


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
    selected = JobTemplates(
        _solver_jobs(templates, where=where) if solvers else {},
        _analyzer_job(templates, where=where) if analyzer else None,
    )
    for template in {id(t.template): t.template for _, t in selected.solvers.values()}.values():
        check_depth(template, f"Template {_name(template)!r} in {where}")
    if selected.analyzer is not None:
        check_depth(selected.analyzer.template, f"Template {selected.analyzer.template_name!r} in {where}")
    return selected


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
