"""The README's requests, run verbatim with bash against the stand-in: what it says they print is what they print.

A stand-in cluster holds the example Templates in infra; the sample graph is imported; the blocks of the
README's "**Requests.**" paragraph then run one after another in one bash, with the run's settings exported
as an operator has them, and ``oc`` standing for ``kubectl`` (the same arguments).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

from tests.fakes.kube import FakeKube
from tests.helpers import INFRA, MIDDLETIER, ROOT, SAMPLE_GRAPH, template_documents

README = (ROOT / "README.md").read_text(encoding="utf-8")


def request_blocks() -> list[str]:
    start = README.index("**Requests.**")
    end = README.index("**Pacing.**", start)
    return re.findall(r"```sh\n(.*?)```", README[start:end], re.S)


def test_the_readmes_request_commands_do_what_it_says(tmp_path: Path) -> None:
    blocks = request_blocks()
    assert len(blocks) == 2
    with FakeKube(tls="tls") as fake:
        for document in template_documents():
            fake.add(document)
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("THOTH_", "GRAPH_"))},
            "KUBECONFIG": str(fake.kubeconfig(tmp_path / "kubeconfig", namespace=MIDDLETIER)),
            "THOTH_INFRA_NAMESPACE": INFRA,
            "THOTH_MIDDLETIER_NAMESPACE": MIDDLETIER,
            "GRAPH_REFRESH_SQLITE_PATH": str(tmp_path / "graph.sqlite3"),
        }
        python = str(ROOT / ".venv" / "bin" / "python3")
        imported = subprocess.run(
            [python, "app.py", "import-graph", str(SAMPLE_GRAPH)], cwd=ROOT, env=env, capture_output=True, timeout=60
        )
        assert imported.returncode == 0, imported.stderr
        outputs = []
        for block in blocks:
            done = subprocess.run(
                ["bash", "--noprofile", "--norc", "-e", "-o", "pipefail", "-c", 'oc() { kubectl "$@"; }\n' + block],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert done.returncode == 0, done.stdout + done.stderr
            outputs.append(done.stdout)
        filed, by_hand = outputs
        lines = filed.splitlines()
        assert lines[0].startswith("Requested pytz==2026.6 (https://pypi.org/simple) as key r-")
        assert lines[1].startswith("pytz==2026.6 (https://pypi.org/simple) was already requested at ")
        assert lines[1].endswith("by alice (key " + lines[0].split(" as key ")[1].split(":")[0] + "): nothing changed.")
        assert lines[2].startswith("Nothing to do: every solver and analyzer of this deployment has jinja2==3.1.6")
        assert lines[3] == "refused: 2"
        assert lines[4].split() == ["KEY", "PACKAGE", "INDEX", "BY", "AGE", "STATE"]
        row = lines[5].split()
        assert row[1:4] == ["pytz==2026.6", "https://pypi.org/simple", "alice"]
        assert re.fullmatch(r"[0-9]+s", row[4])
        assert row[5] == "open"
        listed = json.loads(by_hand[by_hand.index("[") : by_hand.rindex("]") + 1])
        assert {row["key"] for row in listed} >= {"flask-3.1.3"}
        assert "Cancelled: removed 1 key (flask-3.1.3)." in by_hand
        assert by_hand.rstrip().endswith("no such request: 1")
        configmap = fake.get("configmaps", MIDDLETIER, "graph-refresh-requests")
        assert configmap is not None
        assert [json.loads(v)["package"] for v in configmap["data"].values()] == ["pytz"]
