"""graph-refresh installed as pip installs it (scripts/setup.sh does so into .venv): the ``graph-refresh`` command,
the kubectl/oc plugin ``kubectl-graph_refresh`` run by the real kubectl against the stand-in, and the shell
completion click gives the command (README: Operating graph-refresh)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from .fakes.kube import FakeKube
from .helpers import INFRA, MIDDLETIER, template_documents, version

pytestmark = pytest.mark.timeout(180)


def environment(installed: Path, **variables: str) -> dict[str, str]:
    """This process's environment (the tests' clean one) with the installed commands first on PATH, and no other
    folder of PATH holding them (``scripts/setup.sh`` installs them into ``.venv/bin`` too: kubectl refuses two
    plugins of one name)."""
    ours = ("graph-refresh", "kubectl-graph_refresh")
    others = [
        folder
        for folder in os.environ["PATH"].split(os.pathsep)
        if folder and not any((Path(folder) / name).exists() for name in ours)
    ]
    path = os.pathsep.join([str(installed / "bin"), *others])
    return {**os.environ, "PYTHONPATH": str(installed), "PATH": path, **variables}


def run(args: list[str], env: dict[str, str], cwd: Path, code: int = 0) -> str:
    done = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == code, f"{args}: {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_the_installed_command_and_the_kubectl_plugin_work_against_the_stand_in(
    installed: Path, fake: FakeKube, tmp_path: Path
) -> None:
    for document in template_documents():
        fake.add(document)
    graph = tmp_path / "graph.json"
    graph.write_text(json.dumps({"package_versions": [version("flask", "2.0")]}))
    env = environment(
        installed,
        KUBECONFIG=str(fake.kubeconfig(tmp_path / "kubeconfig", namespace=MIDDLETIER)),
        THOTH_INFRA_NAMESPACE=INFRA,
        THOTH_MIDDLETIER_NAMESPACE=MIDDLETIER,
    )
    assert run(["graph-refresh", "--version"], env, tmp_path) == "graph-refresh, version 0.1.0\n"
    run(["graph-refresh", "import-graph", str(graph)], env, tmp_path)
    run(["graph-refresh", "--quiet"], env, tmp_path)  # a real run: flask 2.0 for three solvers and the analyzer

    assert "kubectl-graph_refresh" in run(["kubectl", "plugin", "list"], env, tmp_path)
    assert run(["kubectl", "graph-refresh", "--help"], env, tmp_path).startswith("Usage: kubectl graph-refresh ")
    names = run(["kubectl", "graph-refresh", "explain", "flask==2.0", "-o", "name"], env, tmp_path).split()
    assert len(names) == 4
    assert all(name.startswith("job.batch/") for name in names)
    assert sorted(run(["kubectl", "get", *names, "-o", "name"], env, tmp_path).split()) == sorted(names)
    table = run(["kubectl", "graph-refresh", "explain", "flask==2.0"], env, tmp_path)
    assert table.splitlines()[0] == "flask==2.0 (https://pypi.org/simple)"
    run(["kubectl", "graph-refresh", "explain", "nosuch==1.0"], env, tmp_path, code=1)  # its exit code, through


def test_shell_completion_is_produced_and_completes_commands_and_choices(installed: Path, tmp_path: Path) -> None:
    env = environment(installed, _GRAPH_REFRESH_COMPLETE="bash_source")
    script = run(["graph-refresh"], env, tmp_path)
    assert "complete -o nosort -F _graph_refresh_completion graph-refresh" in script

    def completed(*words: str) -> list[str]:
        """What bash offers after ``graph-refresh WORDS`` (the last one being typed), through the script."""
        shell = (
            'eval "$(_GRAPH_REFRESH_COMPLETE=bash_source graph-refresh)"\n'
            f"COMP_WORDS=(graph-refresh {' '.join(repr(word) for word in words)}); COMP_CWORD={len(words)}\n"
            'complete -p graph-refresh >/dev/null && _graph_refresh_completion graph-refresh && echo "${COMPREPLY[*]}"'
        )
        return run(["bash", "--noprofile", "--norc", "-c", shell], environment(installed), tmp_path).split()

    assert completed("led") == ["ledger"]
    assert completed("ledger", "show", "-o", "") == ["table", "wide", "json", "yaml", "name"]
    assert completed("ledger", "show", "--state", "") == ["retry", "backing-off", "quarantined", "forgotten", "expired"]
    assert "--kubeconfig" in completed("explain", "--")
