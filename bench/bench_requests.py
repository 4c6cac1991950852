"""A run with a flood of open requests and pacing on, against the Dgraph stand-in at a latency per query.

    .venv/bin/python bench/bench_requests.py                     # 10,000 requests, 50,000 completed Jobs, 5 ms
    .venv/bin/python bench/bench_requests.py --quick             # tiny sizes, seconds (tests/test_bench.py)

The graph (served by ``tests/fakes/dgraph.py`` in its own process, answering every query after
``--latency-ms``) holds the requested versions, the versions of the completed Jobs (solved by every solver:
the graph sync is healthy, so pacing must look at every completed Job and finds none waiting) and a backlog.
The cluster (``tests/fakes/kube.py`` in this process) holds the example Templates, the completed owned Jobs
and the requests ConfigMap. A real run (``app.py``, solvers only, ``--max-in-flight``) runs as a child
process twice: with the requests and ``--max-awaiting-sync`` set, and without either. For each it reports
the time to the first create (when the stand-in first sees a Job POST), the wall and CPU time of the run,
and the store queries it sent. Measured, not asserted: bench/README.md holds the figures.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.measure import child_env, run_child  # noqa: E402
from graph_refresh.items import SOLVER, Candidate, WorkItem  # noqa: E402
from tests.fakes.kube import FakeKube  # noqa: E402
from tests.helpers import INFRA, MIDDLETIER, template_documents  # noqa: E402

SOLVERS = ("solver-fedora-34-py39", "solver-ubi-8-py38", "solver-rhel-9-py311")
PYPI = "https://pypi.org/simple"
# An hour before the bench runs: a time ahead of the run's clock would be stamped, one past --request-ttl expired.
REQUESTED_AT = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600))


def version(name: str) -> dict[str, str]:
    return {"package_name": name, "package_version": "1.0", "index_url": PYPI}


def graph(requests: int, completed: int, backlog: int) -> dict[str, list[dict[str, object]]]:
    done = [version(f"done{n:06d}") for n in range(completed)]
    return {
        "package_versions": [
            *(version(f"req{n:06d}") for n in range(requests)),
            *done,
            *(version(f"old{n:06d}") for n in range(backlog)),
        ],
        "solved": [{**record, "solver": solver} for record in done for solver in SOLVERS],
    }


def completed_job(n: int) -> dict[str, object]:
    """A solver Job of graph-refresh's that completed, its item since synced into the graph."""
    item = WorkItem(SOLVER, SOLVERS[n % 3], Candidate(f"done{n:06d}", "1.0", PYPI))
    labels = {**item.labels, "controller-uid": f"uid-{n}", "job-name": item.job_name}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": item.job_name,
            "namespace": MIDDLETIER,
            "labels": labels,
            "annotations": item.annotations,
            "creationTimestamp": "2027-01-15T06:00:00Z",
        },
        "spec": {"template": {"metadata": {"labels": labels}, "spec": {"restartPolicy": "Never"}}},
        "status": {
            "succeeded": 1,
            "conditions": [{"type": "Complete", "status": "True", "lastTransitionTime": "2027-01-15T06:30:00Z"}],
        },
    }


def first_post(fake: FakeKube, started: float, stop: threading.Event, found: list[float], seen: int) -> None:
    """Poll the stand-in's requests after the first ``seen``: when the first Job POST arrives, keep its time since
    ``started``."""
    while not stop.is_set():
        requests = fake.requests
        for request in requests[seen:]:
            if request.method == "POST" and request.path.endswith("/jobs"):
                found.append(time.monotonic() - started)
                return
        seen = len(requests)
        time.sleep(0.002)


def one_run(
    fake: FakeKube, dgraph: str, kubeconfig: Path, home: Path, *, lanes: bool, requests: int, creates: int
) -> dict[str, float]:
    """One real run; its first-create time, wall and CPU time, Jobs created and store queries sent."""
    for job in fake.objects("jobs", MIDDLETIER):
        if not job["metadata"]["name"].startswith(tuple(f"{solver}-" for solver in SOLVERS)) or not str(
            (job.get("metadata") or {}).get("labels", {}).get("controller-uid", "")
        ).startswith("uid-"):
            fake.delete("jobs", MIDDLETIER, job["metadata"]["name"])  # what the previous measured run created
    fake.delete("configmaps", MIDDLETIER, "graph-refresh-ledger")
    fake.delete("configmaps", MIDDLETIER, "graph-refresh-requests")
    if lanes:
        data = {
            f"k{n:06d}": json.dumps({"package": f"req{n:06d}", "version": "1.0", "requested_at": REQUESTED_AT})
            for n in range(requests)
        }
        fake.add(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "graph-refresh-requests", "namespace": MIDDLETIER},
                "data": data,
            }
        )
    env = child_env(
        home,
        KUBECONFIG=str(kubeconfig),
        THOTH_INFRA_NAMESPACE=INFRA,
        THOTH_MIDDLETIER_NAMESPACE=MIDDLETIER,
        GRAPH_SERVICE_HOST=dgraph,
        GRAPH_REFRESH_NO_PACKAGE_ANALYZERS="1",
        THOTH_GRAPH_REFRESH_MAX_IN_FLIGHT=str(creates),
        THOTH_GRAPH_REFRESH_QPS="0",
        THOTH_GRAPH_REFRESH_QUIET="1",
    )
    if lanes:
        env["THOTH_GRAPH_REFRESH_MAX_AWAITING_SYNC"] = str(10**6)  # pacing on; the sync is healthy
    report = home / f"report-{'lanes' if lanes else 'plain'}.json"
    found: list[float] = []
    stop = threading.Event()
    started = time.monotonic()
    watcher = threading.Thread(target=first_post, args=(fake, started, stop, found, len(fake.requests)), daemon=True)
    watcher.start()
    sample, _ = run_child([sys.executable, "app.py", "--report", str(report)], cwd=ROOT, env=env)
    stop.set()
    watcher.join()
    document = json.loads(report.read_text())
    return {
        "first": found[0] if found else float("nan"),
        "wall": sample.wall,
        "cpu": sample.cpu,
        "created": document["totals"]["solver"]["scheduled"],
        "requested": document["totals"]["solver"]["lanes"]["requested"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--completed", type=int, default=50_000)
    parser.add_argument("--backlog", type=int, default=10_000)
    parser.add_argument("--latency-ms", type=float, default=5.0)
    parser.add_argument("--creates", type=int, default=200, help="--max-in-flight of the runs")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a check that the bench runs")
    args = parser.parse_args(argv)
    if args.quick:
        args.requests, args.completed, args.backlog, args.creates, args.repeat = 50, 200, 50, 20, 1
    with tempfile.TemporaryDirectory(prefix="bench-requests-") as work_dir:
        work = Path(work_dir)
        graph_file = work / "graph.json"
        graph_file.write_text(json.dumps(graph(args.requests, args.completed, args.backlog)))
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.fakes.dgraph",
                "--graph",
                str(graph_file),
                "--latency",
                f"{args.latency_ms / 1000}",
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert server.stdout is not None
            dgraph = server.stdout.readline().split()[-1]
            with FakeKube(tls="tls") as fake:
                for document in template_documents():
                    fake.add(document)
                for n in range(args.completed):
                    fake.add(completed_job(n))
                kubeconfig = fake.kubeconfig(work / "kubeconfig")
                rows = []
                for lanes in (True, False):
                    samples = []
                    for _ in range(args.repeat):
                        before = len(fake.requests)
                        sample = one_run(
                            fake,
                            dgraph,
                            kubeconfig,
                            work,
                            lanes=lanes,
                            requests=args.requests,
                            creates=args.creates,
                        )
                        sample["api"] = len(fake.requests) - before
                        samples.append(sample)
                    rows.append((lanes, samples))
        finally:
            server.terminate()
            server.wait(timeout=10)
    print(
        f"{args.requests} requests, {args.completed} completed owned Jobs, {args.backlog} backlog, Dgraph stand-in at "
        f"{args.latency_ms:g} ms a query, --max-in-flight {args.creates}; medians of {args.repeat}"
    )
    print()
    print("| run | first create s | wall s | CPU s | Jobs created | of them requested |")
    print("|---|---:|---:|---:|---:|---:|")
    for lanes, samples in rows:

        def median(key: str, samples: list[dict[str, float]] = samples) -> float:
            return sorted(sample[key] for sample in samples)[len(samples) // 2]

        name = "requests and pacing" if lanes else "neither"
        print(
            f"| {name} | {median('first'):.2f} | {median('wall'):.2f} | {median('cpu'):.2f} | "
            f"{median('created'):.0f} | {median('requested'):.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
