"""Progress shows on a terminal only: never in logs, pipes or CI output."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

from .conftest import ROOT, SAMPLE_GRAPH


def run_import(tmp_path: Path, *, terminal: bool) -> str:
    env = {**os.environ, "GRAPH_REFRESH_SQLITE_PATH": str(tmp_path / f"{terminal}.sqlite3")}
    cmd = [sys.executable, "app.py", "import-graph", str(SAMPLE_GRAPH)]
    if not terminal:
        done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True)
        return done.stderr
    primary, secondary = pty.openpty()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=secondary)
    os.close(secondary)
    chunks = []
    while True:
        try:
            chunk = os.read(primary, 4096)
        except OSError:  # the terminal closes when the child exits
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(primary)
    assert proc.wait(timeout=60) == 0
    return b"".join(chunks).decode(errors="replace")


def test_import_shows_a_progress_bar_on_a_terminal(tmp_path: Path) -> None:
    assert "Importing" in run_import(tmp_path, terminal=True)


def test_no_progress_bar_when_stderr_is_not_a_terminal(tmp_path: Path) -> None:
    assert "Importing" not in run_import(tmp_path, terminal=False)
