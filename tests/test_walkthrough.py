"""The README's "Rehearse learning against the stand-in" and its "Break the stand-in on purpose", run verbatim
with bash and kubectl.

Its code blocks go, one after another, into one bash (as an operator pastes them into one shell) in a
temporary folder laid out like the checkout; after each block the test checks what it should have done,
through the reports the runs wrote and kubectl with the walkthrough's kubeconfig.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .helpers import ROOT, unwrapped

pytestmark = pytest.mark.timeout(180)

Obj = dict[str, Any]
TITLE = "Rehearse learning against the stand-in"
BREAK = "Break the stand-in on purpose"  # its subsection
STEP_SECONDS = 60.0  # one block: a few runs and kubectl calls take seconds; the margin is for a loaded machine
DONE = "__walkthrough_block_done__"
CHECKOUT = ("app.py", "graph_refresh", "tests", "openshift", "data", ".venv")  # what the blocks use


def blocks(*, breaking: bool = False) -> list[str]:
    """The shell blocks of the walkthrough, or (``breaking``) of its subsection that breaks the stand-in."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index(f"\n## {TITLE}\n")
    end = readme.find("\n## ", start + 1)
    middle = readme.index(f"\n### {BREAK}\n", start, end)
    return re.findall(r"```sh\n(.*?)```", readme[middle:end] if breaking else readme[start:middle], re.S)


class Shell:
    """One bash reading commands from a pipe, like a terminal session; ``-e``: a failing command ends it."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            ["bash", "--noprofile", "--norc", "-e", "-o", "pipefail"],
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group: the stand-in it starts is stopped with it
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.transcript: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def run(self, block: str) -> tuple[str, dict[str, str]]:
        """Run ``block``; return its output and the shell's variables ``item``, ``job``, ``retry``, ``kube``."""
        assert self.process.stdin is not None
        self.process.stdin.write(
            f'{block}\necho "{DONE} item=${{item:-}} job=${{job:-}} retry=${{retry:-}} kube=${{kube:-}}"\n'
        )
        self.process.stdin.flush()
        output: list[str] = []
        deadline = time.monotonic() + STEP_SECONDS
        while True:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                # The stand-in bash started keeps the pipe open after bash itself ended: watch bash, not the pipe.
                if self.process.poll() is not None and self.lines.empty():
                    pytest.fail(f"bash ended ({self.process.returncode}) in the block:\n{block}\n{''.join(output)}")
                if time.monotonic() > deadline:
                    pytest.fail(f"the block did not finish in {STEP_SECONDS}s:\n{block}\n{''.join(output)}")
                continue
            if line is None:
                pytest.fail(f"bash ended ({self.process.wait()}) in the block:\n{block}\n{''.join(output)}")
            if line.startswith(DONE):
                self.transcript += output
                variables = dict(pair.split("=", 1) for pair in line.split()[1:])
                return "".join(output), variables
            output.append(line)

    def close(self) -> None:
        """End bash and whatever it started and left running (the stand-in when a block failed)."""
        with contextlib.suppress(ProcessLookupError):  # the group is gone once all of it ended
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.communicate()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A folder laid out like the checkout, where the walkthrough writes its ``rehearsal/``."""
    work = tmp_path / "checkout"
    work.mkdir()
    for name in CHECKOUT:
        (work / name).symlink_to(ROOT / name)
    return work


@pytest.fixture
def shell(folder: Path) -> Iterator[Shell]:
    env = {k: v for k, v in os.environ.items() if k != "GRAPH_REFRESH_SQLITE_PATH"}  # none set, as for a user
    session = Shell(folder, env)
    yield session
    session.close()


def kubectl(folder: Path, *args: str) -> str:
    result = subprocess.run(
        ["kubectl", "--kubeconfig", str(folder / "rehearsal" / "kubeconfig"), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def jobs_of(folder: Path, item: str) -> list[Obj]:
    listed: list[Obj] = json.loads(
        kubectl(folder, "get", "jobs", "-l", f"thoth-station.ninja/item={item}", "-o", "json")
    )["items"]
    return sorted(listed, key=lambda job: int(job["metadata"]["labels"]["thoth-station.ninja/attempt"]))


def memory(job: Obj) -> str:
    return str(job["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"])


def failed_reason(job: Obj) -> str | None:
    conditions = (job.get("status") or {}).get("conditions") or []
    return next((c.get("reason") for c in conditions if c["type"] == "Failed" and c["status"] == "True"), None)


def report(folder: Path, run: int | str) -> Obj:
    loaded: Obj = json.loads(
        (folder / "rehearsal" / f"{run if isinstance(run, str) else f'run-{run}'}.json").read_text()
    )
    assert loaded["exit_code"] == 0, loaded
    return loaded


def test_the_walkthrough_runs_verbatim_and_does_what_it_says(folder: Path, shell: Shell) -> None:
    start, first_run, fail_one, retry, quarantine, forget, stop = blocks()

    output, _ = shell.run(start)
    assert re.search(r"^package-analyzer\s", output, re.M)
    assert re.search(r"^solver\s", output, re.M)
    assert (folder / "rehearsal" / "tls" / "server.key").stat().st_mode & 0o777 == 0o600

    output, _ = shell.run(first_run)
    assert report(folder, 1)["totals"]["solver"]["scheduled"] == 6
    assert "count/jobs.batch: 6/40" in output

    output, state = shell.run(fail_one)
    item, job = state["item"], state["job"]
    assert re.fullmatch(r"[0-9a-f]{10}", item)
    (attempt_1,) = jobs_of(folder, item)
    assert attempt_1["metadata"]["name"] == job
    assert failed_reason(attempt_1) == "BackoffLimitExceeded"
    assert memory(attempt_1) == "1Gi"
    assert output.rstrip().endswith("1Gi")
    assert re.search(rf"^{job}-\S+\s+OOMKilled\s", output, re.M)

    output, state = shell.run(retry)
    assert report(folder, 2)["totals"]["solver"]["retried"]["oom"] == 1
    _, attempt_2 = jobs_of(folder, item)
    assert attempt_2["metadata"]["labels"]["thoth-station.ninja/attempt"] == "2"
    assert attempt_2["metadata"]["name"] == state["retry"]
    assert memory(attempt_2) == "2Gi"
    assert output.rstrip().endswith("2Gi")

    output, _ = shell.run(quarantine)
    third = report(folder, 3)
    assert [entry["item"] for entry in third["quarantined"]] == [item]
    assert third["totals"]["solver"]["skipped"]["quarantined"] == 1
    assert [job["metadata"]["labels"]["thoth-station.ninja/attempt"] for job in jobs_of(folder, item)] == ["1", "2"]
    entry = json.loads(output.strip().splitlines()[-1])  # the ledger's value for the item, as kubectl printed it
    assert (entry["failures"], entry["attempt"], entry["cause"]) == (2, 2, "oom")

    output, state = shell.run(forget)
    assert re.search(rf"^{item}\s+\S+\s+\S+\s+2\s+oom\s+quarantined until ", output, re.M), "ledger show"
    assert f"forgot {item}" in output
    assert "1 entry of graph-refresh-ledger" in output
    data = json.loads(kubectl(folder, "get", "configmap", "graph-refresh-ledger", "-o", "json"))["data"]
    assert (json.loads(data[item])["failures"], json.loads(data[item])["attempt"]) == (0, 2)
    assert report(folder, 4)["quarantined"] == []
    *_, again = jobs_of(folder, item)  # scheduled again, from the Template's resources
    assert again["metadata"]["labels"]["thoth-station.ninja/attempt"] == "3"
    assert failed_reason(again) is None
    assert memory(again) == "1Gi"

    port = int(re.findall(r"server: https://127.0.0.1:(\d+)", (folder / "rehearsal" / "kubeconfig").read_text())[0])
    shell.run(stop)
    deadline = time.monotonic() + STEP_SECONDS
    while listening(port):  # the stand-in is bash's child, not ours: it is gone when its port is closed
        assert time.monotonic() < deadline, "the stand-in still listens after kill"
        time.sleep(0.05)


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def test_the_stand_in_broken_on_purpose_shows_what_a_run_does(folder: Path, shell: Shell) -> None:
    start, first_run, *_, stop = blocks()
    forbidden, slow = blocks(breaking=True)
    for block in (start, first_run, stop):  # the walkthrough's set-up, as a user who skips its middle runs it
        shell.run(block)

    output, state = shell.run(forbidden)
    output = unwrapped(output)
    refused = report(folder, "forbidden")
    assert refused["totals"]["solver"]["scheduled"] == 4
    assert refused["totals"]["solver"]["skipped"]["capacity"] > 0, "the quota stops the rest"
    assert refused["ledger"]["written"] is False
    assert 'User "fake-user" cannot create resource "configmaps"' in refused["ledger"]["reason"]
    assert re.search(r"WARNING .*The ledger graph-refresh-ledger could not be written: .*403 Forbidden", output)
    assert '"written": false' in output
    assert "count/jobs.batch: 4/4" in output
    gone(state["kube"])

    output, state = shell.run(slow)
    output = unwrapped(output)
    slowed = report(folder, "slow")
    assert slowed["totals"]["solver"]["scheduled"] == 6
    assert slowed["totals"]["solver"]["failed"] == 0
    assert re.search(r"INFO .*Create of solver-\S+ got 500, retrying", output), "some creates were answered 500"
    assert re.search(r"INFO .*list jobs\.batch .*429 Too Many Requests.*retrying", output)
    assert len(re.findall(r"^solver-\S+\s+(?:Running\s+)?0/1\s", output, re.M)) == 6
    assert "fault: every answer waits 0.2 s" in (folder / "rehearsal" / "kube.log").read_text()
    gone(state["kube"])


def gone(pid: str) -> None:
    """Wait until the stand-in ``pid`` (bash's child, not ours) has ended after the block's kill."""
    deadline = time.monotonic() + STEP_SECONDS
    while Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text(errors="replace"):
        assert time.monotonic() < deadline, "the stand-in still runs after kill"
        time.sleep(0.05)
