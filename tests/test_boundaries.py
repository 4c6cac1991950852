"""Module boundaries, enforced (STYLE.md 5 and 19): pure modules import no I/O module, only ``kube.py`` imports
the Kubernetes client, only ``store/`` imports sqlite3 and pydgraph. Read from each module's own import
statements (ast), so an import hidden in a function counts too."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT

PACKAGE = ROOT / "graph_refresh"
# Planning and rendering: no network, no files, no clock of their own.
PURE = [
    "items",
    "planner",
    "capacity",
    "quantity",
    "render",
    "templates",
    "outcomes",
    "compact",
    "ledger",
    "learning",
    "view",
    "retry",
    "config",
    "errors",
    "secrets",
    "report",
]
IO_MODULES = {
    "graph_refresh.kube",
    "graph_refresh.store",
    "graph_refresh.metrics",
    "graph_refresh.memory",
    "graph_refresh.output",
}
ONLY_IN = {
    "kubernetes": {"graph_refresh/kube.py"},
    "openshift": {"graph_refresh/kube.py"},
    "urllib3": {"graph_refresh/kube.py"},
    "sqlite3": {"graph_refresh/store/sqlite.py"},
    "pydgraph": {"graph_refresh/store/dgraph.py"},
    "grpc": {"graph_refresh/store/dgraph.py"},
    "prometheus_client": {"graph_refresh/metrics.py"},
}


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports, absolute, anywhere in the file."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("name", PURE)
def test_pure_modules_import_no_io_module(name: str) -> None:
    imported = imports_of(PACKAGE / f"{name}.py")
    touching = {m for m in imported if any(m == io or m.startswith(io + ".") for io in IO_MODULES)}
    assert not touching, f"graph_refresh.{name} imports {touching}"
    assert not {m for m in imported if m.split(".")[0] in ONLY_IN}, f"graph_refresh.{name} imports a client"


@pytest.mark.parametrize("library", sorted(ONLY_IN))
def test_each_client_library_is_imported_in_one_place(library: str) -> None:
    users = {str(p.relative_to(ROOT)) for p in modules() if any(m.split(".")[0] == library for m in imports_of(p))}
    assert users <= ONLY_IN[library], f"{library} is imported by {users - ONLY_IN[library]}"


def test_help_and_a_template_folder_dry_run_load_no_cluster_client(tmp_path: Path) -> None:
    """--help and a dry run from a Template folder never import the Kubernetes client (start-up time)."""
    probe = (
        "import sys, runpy; sys.argv = ['app.py', *sys.argv[1:]]\n"
        "try:\n    runpy.run_path('app.py', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "print('LOADED', sorted(m for m in sys.modules if m.split('.')[0] in ('kubernetes', 'openshift')))"
    )
    store = tmp_path / "empty.sqlite3"
    graph = tmp_path / "graph.json"
    graph.write_text('{"package_versions": []}')
    env_args = ["--sqlite-path", str(store)]
    subprocess.run(
        [sys.executable, "app.py", "import-graph", str(graph), *env_args], cwd=ROOT, check=True, capture_output=True
    )
    for args in (["--help"], ["--dry-run", "--template-dir", "openshift/templates", *env_args]):
        done = subprocess.run(
            [sys.executable, "-c", probe, *args], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
        )
        assert "LOADED []" in done.stdout, (args, done.stdout[-300:], done.stderr[-500:])
