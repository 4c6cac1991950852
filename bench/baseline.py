"""The codes measured side by side: this checkout, and a baseline commit checked out into a temporary worktree.

Both run with the same interpreter, so only the code differs. The baseline commit is ``DEFAULT_BASELINE``
unless the command names another (``bench/run.py --baseline REV``).
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.measure import BenchError, log

DEFAULT_BASELINE = "e23f640"  # the code before the "speed at PyPI scale" round of work
ROOT = Path(__file__).resolve().parent.parent  # this checkout
THIS, PREVIOUS, LOOP_2019 = "this checkout", "previous", "2019 loop"  # what the tables' "code" column starts with


@dataclass(frozen=True)
class Code:
    """A checkout of graph-refresh to measure."""

    label: str
    root: Path

    def app(self, *args: str) -> list[str]:
        return [sys.executable, str(self.root / "app.py"), *args]


def git(*args: str) -> subprocess.CompletedProcess[str]:
    """``git args`` in this checkout, never raising; the caller reads the return code."""
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)


def this_checkout() -> Code:
    """This checkout, labelled with its commit (``+changes`` when tracked files are modified)."""
    short = git("rev-parse", "--short", "HEAD").stdout.strip() or "?"
    dirty = "+changes" if git("status", "--porcelain", "--untracked-files=no").stdout.strip() else ""
    return Code(f"{THIS} ({short}{dirty})", ROOT)


@contextlib.contextmanager
def baseline_checkout(rev: str) -> Iterator[Code | None]:
    """The code at ``rev`` in a temporary git worktree, removed afterwards; None when ``rev`` is unknown
    (a shallow clone, or ``--baseline ''``)."""
    if not rev or git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}").returncode != 0:
        log(f"baseline {rev!r} is not available here: measuring without it")
        yield None
        return
    folder = Path(tempfile.mkdtemp(prefix="graph-refresh-baseline-"))
    tree = folder / "tree"
    added = git("worktree", "add", "--detach", str(tree), rev)
    if added.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        raise BenchError(f"git worktree add {tree} {rev} failed: {added.stderr.strip()}")
    try:
        short = git("rev-parse", "--short", rev).stdout.strip()
        yield Code(f"{PREVIOUS} ({short})", tree)
    finally:
        git("worktree", "remove", "--force", str(tree))
        shutil.rmtree(folder, ignore_errors=True)
        git("worktree", "prune")
