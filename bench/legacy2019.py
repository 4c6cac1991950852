"""The 2019 way, as a yardstick measured in the same run as today's code (bench/run.py starts it).

``plan``: per solver (then for the analyzer) read every unsolved version at once (the 2019 graph query
returned them all), then for each one copy the whole Template, substitute its parameters by walking every
string, pick the object and serialise the Job as a create request would: one item after another, nothing
compiled or streamed. No validation, no dedup, no report: it is the loop's cost alone.

``create``: create the Jobs of a folder of manifests one after another with the kubernetes client, as
2019's graph-refresh did (one blocking request per Job, no concurrency, no rate limit).

Both print one JSON object with their counts on stdout. Written for this benchmark; not product code.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

_PARAMETER = re.compile(r"\$\{(\{)?([A-Za-z0-9_]+)\}(?(1)\})")
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_UNSOLVED = (
    "SELECT package_name, package_version, index_url FROM package_version AS pv"
    " WHERE NOT EXISTS (SELECT 1 FROM solved WHERE package_version_id = pv.id AND solver = ?)"
)
_UNANALYZED = (
    "SELECT package_name, package_version, index_url FROM package_version AS pv"
    " WHERE NOT EXISTS (SELECT 1 FROM analyzed WHERE package_version_id = pv.id)"
)


def _templates(folder: Path) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.glob("*.y*ml")):
        for document in yaml.load_all(path.read_text(), Loader=_Loader):
            kind = (document or {}).get("metadata", {}).get("labels", {}).get("template")
            if kind in ("solver", "package-analyzer"):
                found[kind] = document
    return found


def _process(template: dict[str, Any], values: dict[str, str]) -> list[dict[str, Any]]:
    """``oc process`` by hand, on a fresh copy of the whole Template for every item."""
    template = copy.deepcopy(template)
    for parameter in template.get("parameters", []):
        values.setdefault(parameter["name"], parameter.get("value", ""))

    def substitute(node: Any) -> Any:
        if isinstance(node, dict):
            return {key: substitute(value) for key, value in node.items()}
        if isinstance(node, list):
            return [substitute(value) for value in node]
        if isinstance(node, str):
            return _PARAMETER.sub(lambda m: values.get(m.group(2), m.group(0)), node)
        return node

    objects: list[dict[str, Any]] = substitute(template["objects"])
    return objects


def plan(sqlite_path: Path, template_dir: Path) -> dict[str, int]:
    db = sqlite3.connect(sqlite_path)
    templates = _templates(template_dir)
    examined = 0
    solver_template = templates["solver"]
    for position, obj in enumerate(solver_template["objects"]):
        solver = obj["metadata"]["labels"].get("solver-type") or obj["metadata"]["labels"]["component"]
        unsolved = db.execute(_UNSOLVED, (solver,)).fetchall()  # all of them, as the 2019 query returned
        for name, version, index_url in unsolved:
            job_id = f"{solver}-{examined:010x}"
            values = {
                "THOTH_SOLVER_JOB_ID": job_id,
                "THOTH_DOCUMENT_ID": job_id,
                "THOTH_SOLVER_PACKAGES": f"{name}==={version}",
                "THOTH_SOLVER_INDEXES": index_url,
                "THOTH_SOLVER_OUTPUT": "http://result-api/api/v1/solver-result",
                "THOTH_SOLVER_NO_TRANSITIVE": "0",
            }
            json.dumps(_process(solver_template, values)[position])
            examined += 1
    analyzer_template = templates["package-analyzer"]
    for name, version, index_url in db.execute(_UNANALYZED).fetchall():
        job_id = f"package-analyzer-{examined:010x}"
        values = {
            "THOTH_PACKAGE_ANALYZER_JOB_ID": job_id,
            "THOTH_DOCUMENT_ID": job_id,
            "THOTH_PACKAGE_ANALYZER_PACKAGE_NAME": name,
            "THOTH_PACKAGE_ANALYZER_PACKAGE_VERSION": version,
            "THOTH_PACKAGE_ANALYZER_INDEX_URL": index_url,
            "THOTH_PACKAGE_ANALYZER_OUTPUT": "http://result-api/api/v1/package-analysis-result",
        }
        json.dumps(_process(analyzer_template, values)[0])
        examined += 1
    db.close()
    return {"examined": examined}


def create(manifests: Path, kubeconfig: Path, namespace: str) -> dict[str, int]:
    from kubernetes import client, config
    from kubernetes.client.rest import ApiException

    api = client.BatchV1Api(config.new_client_from_config(str(kubeconfig)))
    bodies = [yaml.load(path.read_text(), Loader=_Loader) for path in sorted(manifests.glob("*.yaml"))]
    counts = {"created": 0, "exists": 0, "failed": 0}
    for body in bodies:
        try:
            api.create_namespaced_job(namespace, body)
            counts["created"] += 1
        except ApiException as error:
            counts["exists" if error.status == 409 else "failed"] += 1
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="command", required=True)
    plan_args = commands.add_parser("plan", help="the 2019 planning loop over a SQLite store, in dry run")
    plan_args.add_argument("--sqlite-path", type=Path, required=True)
    plan_args.add_argument("--template-dir", type=Path, required=True)
    create_args = commands.add_parser("create", help="create a folder of Job manifests one after another")
    create_args.add_argument("--manifests", type=Path, required=True)
    create_args.add_argument("--kubeconfig", type=Path, required=True)
    create_args.add_argument("--namespace", required=True)
    args = parser.parse_args(argv)
    run: Callable[[], dict[str, int]] = (
        (lambda: plan(args.sqlite_path, args.template_dir))
        if args.command == "plan"
        else (lambda: create(args.manifests, args.kubeconfig, args.namespace))
    )
    print(json.dumps(run()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
