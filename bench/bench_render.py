"""Benchmark: CPU per rendered Job, Template processing per item (the first release) vs compiled once per run.

Renders N solver items (and N analyzer items) of the example Templates both ways and reports µs of CPU
(process_time) and of wall time per item; the rendered Jobs are checked equal on the way.
Usage: python bench/bench_render.py [N]   (default 50,000; results are written down in bench/README.md)
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from graph_refresh.config import PlanSettings  # noqa: E402
from graph_refresh.items import ANALYZER, SOLVER, Candidate, WorkItem  # noqa: E402
from graph_refresh.render import Renderer  # noqa: E402
from graph_refresh.templates import JobTemplates, load_job_templates, read_template_dir  # noqa: E402


def first_release(renderer: Renderer, templates: JobTemplates) -> Callable[[WorkItem], dict[str, Any]]:
    """Rendering as the first release did it (process the whole Template for each item), with what learning adds
    to every Job (design: Learning), so both give the same Job."""

    def render(item: WorkItem) -> dict[str, Any]:
        template = templates.analyzer if item.kind == ANALYZER else templates.solvers[str(item.solver)][1]
        assert template is not None
        job = template.render(renderer.parameters(item))
        job["metadata"]["name"] = item.job_name
        job["metadata"]["namespace"] = renderer.namespace
        job["metadata"]["labels"] = {**(job["metadata"].get("labels") or {}), **item.labels}
        job["metadata"]["annotations"] = {**(job["metadata"].get("annotations") or {}), **item.annotations}
        pod_metadata = job["spec"]["template"].setdefault("metadata", {})
        pod_metadata["labels"] = {**(pod_metadata.get("labels") or {}), **item.labels}  # pods listed (design: Learning)
        if job["spec"].get("ttlSecondsAfterFinished") is None:
            job["spec"]["ttlSecondsAfterFinished"] = renderer.plan.job_ttl_seconds
        job.pop("status", None)
        return job

    return render


def measure(render: Callable[[WorkItem], object], items: list[WorkItem]) -> tuple[float, float]:
    """µs of CPU and of wall time per item."""
    cpu, wall = time.process_time(), time.perf_counter()
    for item in items:
        render(item)
    return (time.process_time() - cpu) / len(items) * 1e6, (time.perf_counter() - wall) / len(items) * 1e6


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    templates = load_job_templates(read_template_dir(ROOT / "openshift" / "templates"), where="examples")
    solver = next(iter(templates.solvers))
    print("| Template | items | first release µs CPU (wall) | compiled µs CPU (wall) | speed-up |")
    print("|---|---:|---:|---:|---:|")
    for kind, name in ((SOLVER, solver), (ANALYZER, None)):
        items = [WorkItem(kind, name, Candidate(f"package-{i}", "1.0.0", "https://pypi.org/simple")) for i in range(n)]
        for item in items:
            item.job_name  # noqa: B018 - keys computed beforehand: both ways then time rendering alone
        renderer = Renderer(templates, PlanSettings(), "middletier")
        old = first_release(renderer, templates)
        assert all(old(item) == renderer.render(item) for item in items[:100])
        old_cpu, old_wall = measure(old, items)
        new_cpu, new_wall = measure(renderer.render, items)
        label = name or "package-analyzer"
        print(
            f"| {label} | {n:,} | {old_cpu:.1f} ({old_wall:.1f}) | {new_cpu:.1f} ({new_wall:.1f}) "
            f"| {old_cpu / new_cpu:.0f}x |"
        )


if __name__ == "__main__":
    main()
