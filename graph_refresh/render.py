"""Render planned items into Jobs, and learn what one Job costs (pure code: no cluster, no clock).

Each Job Template is compiled once per run (:meth:`JobTemplate.compile`): the parameters fixed for the
run (outputs, log level, the Template's defaults) are substituted then, and a render only fills the
item's own slots (Job id, package, version, index, document id) into a new object.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from graph_refresh.capacity import JobCost, job_cost
from graph_refresh.config import PlanSettings
from graph_refresh.errors import TemplateError
from graph_refresh.items import ANALYZER, Candidate, Kind, WorkItem
from graph_refresh.retry.model import AttemptResources
from graph_refresh.retry.policy import apply
from graph_refresh.templates import CompiledJob, JobTemplate, JobTemplates, as_mapping

PROBE = Candidate("probe", "0", "https://probe.invalid/simple")  # renders a Template once before planning

# The parameters whose values differ per item; every other one is fixed for the run.
SOLVER_SLOTS = ("THOTH_SOLVER_JOB_ID", "THOTH_SOLVER_PACKAGES", "THOTH_SOLVER_INDEXES", "THOTH_DOCUMENT_ID")
ANALYZER_SLOTS = (
    "THOTH_PACKAGE_ANALYZER_JOB_ID",
    "THOTH_PACKAGE_ANALYZER_PACKAGE_NAME",
    "THOTH_PACKAGE_ANALYZER_PACKAGE_VERSION",
    "THOTH_PACKAGE_ANALYZER_INDEX_URL",
    "THOTH_DOCUMENT_ID",
)


def _section(parent: dict[str, Any], key: str, what: str, path: str = "") -> dict[str, Any]:
    """``parent[key]`` as a mapping (None becomes an empty one, put in place); a TemplateError naming
    ``path + key`` when it is something else. Cheap when it is already a mapping: this runs for every item."""
    value = parent.get(key)
    if type(value) is not dict:
        value = parent[key] = as_mapping(value, f"{what}: {path}{key}")
    return value


@dataclass(frozen=True)
class _Compiled:
    job: CompiledJob
    what: str  # how errors name the Job of this Template


@dataclass(frozen=True)
class Renderer:
    """Turns a work item into the batch/v1 Job to create in ``namespace``."""

    templates: JobTemplates
    plan: PlanSettings
    namespace: str | None = None
    _compiled: dict[str | None, _Compiled] = field(default_factory=dict, init=False, repr=False, compare=False)

    def _template(self, item: WorkItem) -> JobTemplate:
        if item.kind == ANALYZER:
            assert self.templates.analyzer is not None, "no analyzer items when the analyzer is turned off"
            return self.templates.analyzer
        assert item.solver is not None
        return self.templates.solvers[item.solver][1]

    def fixed_parameters(self, kind: Kind) -> dict[str, str]:
        """Template parameter values that are the same for every item of ``kind`` in this run."""
        plan = self.plan
        if kind == ANALYZER:
            values = {"THOTH_PACKAGE_ANALYZER_OUTPUT": plan.package_analyzer_output}
            if plan.log_solver == "DEBUG":
                values["THOTH_PACKAGE_ANALYZER_DEBUG"] = "1"
            return values
        values = {
            "THOTH_SOLVER_OUTPUT": plan.solver_output,
            "THOTH_SOLVER_NO_TRANSITIVE": "0",
            "THOTH_SOLVER_SUBGRAPH_CHECK_API": plan.subgraph_check_api,
        }
        if plan.log_solver:
            values["THOTH_LOG_SOLVER"] = plan.log_solver
        return values

    def item_parameters(self, item: WorkItem) -> dict[str, str]:
        """Template parameter values of one item alone: a value for each of its kind's slots."""
        name, version, index_url = item.candidate
        if item.kind == ANALYZER:
            return {
                "THOTH_PACKAGE_ANALYZER_JOB_ID": item.job_name,
                "THOTH_PACKAGE_ANALYZER_PACKAGE_NAME": name,
                "THOTH_PACKAGE_ANALYZER_PACKAGE_VERSION": version,
                "THOTH_PACKAGE_ANALYZER_INDEX_URL": index_url,
                "THOTH_DOCUMENT_ID": item.job_name,
            }
        return {
            "THOTH_SOLVER_JOB_ID": item.job_name,
            "THOTH_SOLVER_PACKAGES": item.requirement,
            "THOTH_SOLVER_INDEXES": index_url,
            "THOTH_DOCUMENT_ID": item.job_name,
        }

    def parameters(self, item: WorkItem) -> dict[str, str]:
        """Template parameter values for one item (undeclared ones are ignored by processing)."""
        return {**self.fixed_parameters(item.kind), **self.item_parameters(item)}

    def _compile(self, item: WorkItem) -> _Compiled:
        """The item's Template compiled for this run, once per solver (and once for the analyzer)."""
        compiled = self._compiled.get(item.solver)
        if compiled is None:
            template = self._template(item)
            slots = ANALYZER_SLOTS if item.kind == ANALYZER else SOLVER_SLOTS
            what = f"Template {template.template_name!r}: the Job of {item.solver or item.kind}"
            compiled = self._compiled[item.solver] = _Compiled(
                template.compile(self.fixed_parameters(item.kind), slots), what
            )
        return compiled

    def render(self, item: WorkItem, resources: AttemptResources | None = None) -> dict[str, Any]:
        """The Job for ``item``: the processed Template object with our name, labels (on the pod template too,
        so its pods can be listed), the item's annotations and the TTL; a retry's ``resources`` (escalated
        memory, a longer deadline) are written over the Template's.

        A new object each time, sharing nothing with other renders: the caller may change it.
        """
        compiled = self._compile(item)
        job = compiled.job.render(self.item_parameters(item))
        what = compiled.what  # the render is new throughout: its sections are changed in place
        metadata = _section(job, "metadata", what)
        metadata["name"] = item.job_name
        if self.namespace:
            metadata["namespace"] = self.namespace
        labels = item.labels
        _section(metadata, "labels", what, "metadata.").update(labels)
        _section(metadata, "annotations", what, "metadata.").update(item.annotations)
        spec = _section(job, "spec", what)
        if spec.get("ttlSecondsAfterFinished") is None:  # absent, or null in the Template
            spec["ttlSecondsAfterFinished"] = self.plan.job_ttl_seconds
        pod_metadata = _section(_section(spec, "template", what, "spec."), "metadata", what, "spec.template.")
        _section(pod_metadata, "labels", what, "spec.template.metadata.").update(labels)
        if resources is not None:
            apply(job, resources)
        job.pop("status", None)
        return job

    def probe_cost(self, kind: Kind, solver: str | None) -> JobCost:
        """Render a stand-in item to check the Template early and learn what one Job costs."""
        return self.cost(WorkItem(kind, solver, PROBE))

    def cost(self, item: WorkItem, resources: AttemptResources | None = None) -> JobCost:
        """What the Job of ``item`` (with a retry's ``resources``) takes from a ResourceQuota."""
        template = self._template(item)
        job = self.render(item, resources)
        try:
            return job_cost(job)
        except (ValueError, ArithmeticError, TypeError) as error:
            raise TemplateError(
                f"Template {template.template_name!r}: the Job's spec.parallelism or a container resource "
                f"quantity cannot be read: {error}"
            ) from error
