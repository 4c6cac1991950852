"""Memory and CPU of a run against a namespace full of owned Jobs, shaped as OpenShift lists them.

    .venv/bin/python bench/bench_namespace.py                          # 100k Jobs 5% failed, 50k 20% failed
    .venv/bin/python bench/bench_namespace.py --baseline e1da80d       # the same, beside the code at a rev
    .venv/bin/python bench/bench_namespace.py --quick                  # tiny sizes, seconds (tests/test_bench.py)

For each size (``--sizes JOBS:PERCENT_FAILED,...``) it generates owned Jobs (about 6 KB of JSON each:
managedFields, the Job controller's labels and selector, defaults, the SCC's fields) and their pods (about
10 KB: network annotations, volumes, tolerations, the kubelet's status), as ``tests/fakes/shapes.py``
builds them. Most Jobs completed (a Succeeded pod each), 2% are running, the failed ones failed for every
cause the run tells apart (OOM-killed, evicted, disrupted, deadline, error with a pod, error with the pods
gone). A stand-in API server in its own process serves them in pages with continue tokens, honouring the
label selector, ``limit`` and a pod ``status.phase`` field selector, over TLS; it serves one ResourceQuota
and a ledger ConfigMap of ``LEDGER_ENTRIES`` entries too. Then a real run, ``app.py --dry-run`` with
THOTH_MIDDLETIER_NAMESPACE set (it reads the quotas, every owned Job, the pods, the ledger, learns and
plans), runs as a child process under ``bench/measure.py``'s launcher; its peak RSS and CPU time (user + system)
come from ``wait4``, its modules compiled as the image ships them.

With ``--baseline REV`` the same run is made with the code at REV (a temporary git worktree, same
interpreter), and the reports of both are compared: the same report, or the bench fails. Measured, not
asserted: bench/README.md holds the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import http.server
import json
import re
import socketserver
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.baseline import Code, baseline_checkout  # noqa: E402
from bench.measure import BenchError, Sample, child_env, compile_code, run_child_output  # noqa: E402
from graph_refresh.items import ANALYZER, SOLVER, Candidate, WorkItem  # noqa: E402
from graph_refresh.retry.codec import LEDGER_NAME, to_data  # noqa: E402
from graph_refresh.retry.model import AttemptResources, Cause, ItemId, LedgerEntry  # noqa: E402
from graph_refresh.waiting.state import RUNS_KEY  # noqa: E402
from tests.fakes import shapes  # noqa: E402
from tests.fakes.kube import RESOURCES, make_table  # noqa: E402

NAMESPACE = "middletier"
TEMPLATES = ROOT / "openshift" / "templates"
SOLVERS = ("solver-fedora-34-py39", "solver-ubi-8-py38", "solver-rhel-9-py311")  # the example Templates'
PYPI = "https://pypi.org/simple"
TOKEN = "bench-token"
DEFAULT_SIZES = "100000:5,50000:20"
QUICK_SIZES = "300:5,200:20"
RUNNING_PERCENT = 2  # Jobs in flight; the rest of the Jobs that did not fail completed
LEDGER_ENTRIES = 1_000  # items of the ledger the namespace's Jobs no longer show
GRAPH_VERSIONS = 2_000  # package versions in the store: the plan's share of the run stays small
# What the failed Jobs died of, in turn: (Job condition reason, pod of it or None when its pods are gone).
FAILURES = (
    ("BackoffLimitExceeded", "oom"),
    ("BackoffLimitExceeded", "error"),
    ("BackoffLimitExceeded", "evicted"),
    ("BackoffLimitExceeded", None),
    ("DeadlineExceeded", "error"),
    ("BackoffLimitExceeded", "oom"),
    ("BackoffLimitExceeded", "disrupted"),
    ("BackoffLimitExceeded", "error"),
)
REPEAT = 3  # runs of each code per size: the tables show medians
# A real run as the CronJob makes it, without the client-side rate limit (5 creates a second would be most of
# the wall time, and none of the CPU).
RUN_ARGS = ("--template-dir", str(TEMPLATES), "--qps", "0")
QUICK_RUN_ARGS = ("--eager-stop", "20")  # a smoke run creates a few Jobs, not a thousand
COLUMNS = ("whole Jobs read", "Table rows read", "failed", "pods read", "Jobs created")
# What the run says it read (a log line wrapped to fit its width breaks it at any space).
SUMMARY = re.compile(r"(\d+)\s+items?\s+with\s+owned\s+Jobs\s+\((\d+)\s+live,\s+(\d+)\s+failed\)")
JOBS = RESOURCES["jobs"]
SERVED = ("jobs", "rows None", "rows Metadata", "pods")  # whole Jobs, Table rows without and with metadata, pods


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------- the objects


@dataclass(frozen=True)
class Owned:
    """One owned Job of the namespace: its item, its state, and how it failed."""

    item: WorkItem
    state: str  # running, complete, failed
    failure: int = 0  # index into FAILURES


def namespace_jobs(jobs: int, percent_failed: float) -> list[Owned]:
    """``jobs`` owned Jobs, the failed ones spread evenly, one item each (kinds and solvers in turn)."""
    failed_every = 100 / percent_failed if percent_failed else 0.0
    owned, failed = [], 0
    for i in range(jobs):
        kind = ANALYZER if i % 4 == 3 else SOLVER
        solver = None if kind == ANALYZER else SOLVERS[i % 3]
        attempt = 2 if i % 11 == 0 else 1
        item = WorkItem(kind, solver, Candidate(f"package-{i:07d}", "1.0", PYPI), attempt)
        if failed_every and int((i + 1) / failed_every) > int(i / failed_every):
            owned.append(Owned(item, "failed", failed % len(FAILURES)))
            failed += 1
        elif i % (100 // RUNNING_PERCENT) == 1:
            owned.append(Owned(item, "running"))
        else:
            owned.append(Owned(item, "complete"))
    return owned


class Shapes:
    """The JSON of each kind of object once, with the per-object values swapped in by text replacement:
    serialising 150k objects of 10 KB one by one would make the stand-in the slowest part."""

    def __init__(self, failed_at: str) -> None:
        self.failed_at = failed_at
        self._cache: dict[tuple[str, ...], tuple[str, WorkItem]] = {}

    def _model(self, key: tuple[str, ...], item: WorkItem) -> tuple[str, WorkItem]:
        """The JSON of one model object per ``key``, which names everything the text replacement cannot change:
        what is served (Job or pod), the state and failure, and the item's kind, solver and attempt (its labels,
        image and container names)."""
        if key not in self._cache:
            kind, what, reason, pod = key[:4]
            model = WorkItem(item.kind, item.solver, Candidate("zz-model-package", "1.0", PYPI), item.attempt)
            job = shapes.openshift_job(shapes.base_job(model), state=what, reason=reason, at=self.failed_at)
            if kind == "job":
                text = job
            elif kind.startswith("rows "):  # a row of the API server's Table, includeObject as the kind says
                text = make_table(JOBS, [job], {}, include_object=kind.removeprefix("rows "))["rows"][0]
            else:
                text = self._pod(job, what, pod)
            self._cache[key] = (shapes.compact(text), model)
        return self._cache[key]

    def _pod(self, job: dict[str, Any], what: str, pod: str) -> dict[str, Any]:
        at = self.failed_at
        if what == "complete":
            return shapes.openshift_pod(job, phase="Succeeded")
        if what == "running":
            return shapes.openshift_pod(job, phase="Running")
        if pod == "oom":
            return shapes.openshift_pod(job, phase="Failed", states={"solver": shapes.terminated("OOMKilled", 137, at)})
        if pod == "evicted":
            return shapes.openshift_pod(job, phase="Failed", reason="Evicted")
        if pod == "disrupted":
            condition = {"type": "DisruptionTarget", "status": "True", "reason": "PreemptionByScheduler"}
            return shapes.openshift_pod(job, phase="Failed", conditions=[condition])
        return shapes.openshift_pod(job, phase="Failed")

    def text(self, owned: Owned, kind: str) -> str:
        """The JSON of ``owned``'s Job (``kind`` "job"), pod ("pod") or Table row ("rows None", "rows Metadata")."""
        reason, pod = FAILURES[owned.failure] if owned.state == "failed" else ("", "")
        item = owned.item
        key = (kind, owned.state, reason, pod or "", item.kind, item.solver or "", str(item.attempt))
        model_text, model = self._model(key, item)
        return (
            model_text.replace(model.job_name, item.job_name)
            .replace(model.key, item.key)
            .replace("zz-model-package", item.candidate.package_name)
        )

    @staticmethod
    def has_pod(owned: Owned) -> bool:
        return owned.state != "failed" or FAILURES[owned.failure][1] is not None

    @staticmethod
    def phase(owned: Owned) -> str:
        return {"complete": "Succeeded", "running": "Running"}.get(owned.state, "Failed")

    @staticmethod
    def fields(owned: Owned) -> dict[str, str]:
        """The fields a field selector reads of ``owned``'s Job and pod."""
        return {"status.successful": "1" if owned.state == "complete" else "0", "status.phase": Shapes.phase(owned)}

    @staticmethod
    def labels(owned: Owned) -> dict[str, str]:
        return owned.item.labels


def selected(selector: str, values: dict[str, str]) -> bool:
    """Whether ``values`` (labels, or fields) pass ``selector``: ``key=value`` and ``key!=value`` terms, all of
    them (a missing key passes ``!=``), as the API server reads the selectors graph-refresh sends."""
    for term in filter(None, selector.split(",")):
        key, negated, value = re.fullmatch(r"([^!=]+)(!?)==?(.*)", term).groups()  # type: ignore[union-attr]
        if (values.get(key) == value) == bool(negated):
            return False
    return True


def ledger_data(now: float) -> dict[str, str]:
    """A ledger of ``LEDGER_ENTRIES`` items that failed a day ago (their Jobs gone), as a run writes it."""
    entries = []
    for i in range(LEDGER_ENTRIES):
        item = WorkItem(SOLVER, SOLVERS[i % 3], Candidate(f"gone-{i:05d}", "2.0", PYPI))
        resources = AttemptResources(deadline_seconds=3600)
        entries.append(LedgerEntry(ItemId.of(item), 1, 1, Cause.ERROR, now - 86_400 + i, resources))
    data = to_data(entries)
    data["learned-until"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 7_200))
    return data


# ------------------------------------------------------------------------------------------ the stand-in server


class Namespace:
    """What the stand-in serves: the owned Jobs and pods of one namespace, a quota and the ledger."""

    def __init__(self, owned: list[Owned], now: float) -> None:
        failed_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 1_800))
        self.owned = owned
        self.shapes = Shapes(failed_at)
        self.pods = [o for o in owned if Shapes.has_pod(o)]
        self.ledger = ledger_data(now)
        self.served = dict.fromkeys(SERVED, 0)
        self.created: list[str] = []
        self.written: dict[str, str] | None = None
        """The ledger's data as the last run wrote it."""
        self.selections: dict[tuple[str, str, str], list[Owned]] = {}
        self.lock = threading.Lock()

    def page(self, kind: str, query: dict[str, list[str]], accept: str) -> bytes:
        """One page of Jobs or pods, as selected; a Table of Jobs when ``accept`` asks for one (its rows carrying
        ``includeObject``). The namespace never changes: every resourceVersion answers the same."""
        labels, fields = (query.get("labelSelector") or [""])[0], (query.get("fieldSelector") or [""])[0]
        with self.lock:
            objects = self.selections.get((kind, labels, fields))
            if objects is None:  # once per list: its pages are slices of it
                objects = self.selections[(kind, labels, fields)] = [
                    o
                    for o in (self.owned if kind == "job" else self.pods)
                    if selected(labels, Shapes.labels(o)) and selected(fields, Shapes.fields(o))
                ]
        limit = int((query.get("limit") or ["0"])[0]) or len(objects)
        start = int((query.get("continue") or ["0"])[0])
        chosen = objects[start : start + limit]
        metadata: dict[str, Any] = {"resourceVersion": "1843363999"}
        if start + limit < len(objects):
            metadata["continue"] = str(start + limit)
        table = kind == "job" and "as=Table" in accept
        served = f"rows {(query.get('includeObject') or ['Metadata'])[0]}" if table else kind
        with self.lock:
            self.served[served if table else f"{kind}s"] += len(chosen)
        if table:
            head = json.dumps({**make_table(JOBS, [], metadata), "rows": None})
            rows = ",".join(self.shapes.text(o, served) for o in chosen)
            return f"{head.removesuffix('null}')}[{rows}]}}".encode()
        head = json.dumps({"kind": "JobList" if kind == "job" else "PodList", "apiVersion": "v1", "metadata": metadata})
        items = ",".join(self.shapes.text(o, kind) for o in chosen)
        return f'{head[:-1]},"items":[{items}]}}'.encode()

    def create(self, body: dict[str, Any]) -> bytes:
        """A Job created (answered, counted, not kept: every run finds the namespace as the first did)."""
        with self.lock:
            self.created.append(body["metadata"]["name"])
        body["metadata"].update(uid="0", resourceVersion="1843364000", creationTimestamp=shapes.CREATED)
        return json.dumps(body).encode()

    def write_ledger(self, body: dict[str, Any]) -> bytes:
        """The ledger replaced (kept aside for the comparison; the next run reads the first ledger again)."""
        with self.lock:
            self.written = body.get("data") or {}
        body["metadata"]["resourceVersion"] = "1843364001"
        return json.dumps(body).encode()

    def last_run(self) -> bytes:
        """What the last run created and wrote, then forgotten."""
        with self.lock:
            answer = {"served": self.served, "created": sorted(self.created), "ledger": self.written}
            self.served, self.created, self.written = dict.fromkeys(SERVED, 0), [], None
        return json.dumps(answer).encode()

    def quotas(self) -> bytes:
        hard = {"count/jobs.batch": "200000", "pods": "2000", "requests.memory": "4000Gi", "limits.memory": "4000Gi"}
        live = sum(o.state == "running" for o in self.owned)
        used = {"count/jobs.batch": str(len(self.owned)), "pods": str(live), "requests.memory": f"{live}Gi"}
        used["limits.memory"] = f"{live}Gi"
        quota = {
            "metadata": {"name": "middletier-quota", "namespace": NAMESPACE, "resourceVersion": "1"},
            "spec": {"hard": hard},
            "status": {"hard": hard, "used": used},
        }
        return json.dumps({"kind": "ResourceQuotaList", "apiVersion": "v1", "metadata": {}, "items": [quota]}).encode()

    def configmap(self) -> bytes:
        metadata = {"name": LEDGER_NAME, "namespace": NAMESPACE, "resourceVersion": "1843360000"}
        return json.dumps({"kind": "ConfigMap", "apiVersion": "v1", "metadata": metadata, "data": self.ledger}).encode()


def handler_for(space: Namespace) -> type[http.server.BaseHTTPRequestHandler]:
    jobs = f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs"
    ledger = f"/api/v1/namespaces/{NAMESPACE}/configmaps/{LEDGER_NAME}"
    Route = Callable[[dict[str, list[str]], str, Any], tuple[int, bytes]]
    routes: dict[tuple[str, str], Route] = {
        ("GET", jobs): lambda q, accept, _: (200, space.page("job", q, accept)),
        ("POST", jobs): lambda q, accept, body: (201, space.create(body)),
        ("GET", f"/api/v1/namespaces/{NAMESPACE}/pods"): lambda q, accept, _: (200, space.page("pod", q, accept)),
        ("GET", f"/api/v1/namespaces/{NAMESPACE}/resourcequotas"): lambda q, accept, _: (200, space.quotas()),
        ("GET", ledger): lambda q, accept, _: (200, space.configmap()),
        ("PUT", ledger): lambda q, accept, body: (200, space.write_ledger(body)),
        ("GET", "/bench/last-run"): lambda q, accept, _: (200, space.last_run()),
    }

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def do_GET(self) -> None:  # the standard library's name
            url = urlsplit(self.path)
            route = routes.get((self.command, url.path))
            length = int(self.headers.get("Content-Length") or 0)
            sent = json.loads(self.rfile.read(length)) if length else None
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                code, body = 401, b'{"kind":"Status","code":401,"reason":"Unauthorized"}'
            elif route is None:
                code, body = 404, b'{"kind":"Status","code":404,"reason":"NotFound","message":"not served"}'
            else:
                code, body = route(parse_qs(url.query), self.headers.get("Accept", ""), sent)
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_POST = do_PUT = do_GET

    return Handler


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


def serve(jobs: int, percent_failed: float, tls: Path) -> None:
    """Child process: serve a namespace of ``jobs`` owned Jobs until stdin closes; print the URL first."""
    space = Namespace(namespace_jobs(jobs, percent_failed), time.time())
    server = Server(("127.0.0.1", 0), handler_for(space))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(tls / "node.crt"), str(tls / "node.key"))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"https://127.0.0.1:{server.server_address[1]}", flush=True)
    sys.stdin.read()
    server.shutdown()


# --------------------------------------------------------------------------------------------------- the runs


@dataclass(frozen=True)
class Measured:
    """One run of one code: what it cost, what it read, and what it did."""

    code: str
    sample: Sample
    items: int
    live: int
    failed: int
    served: dict[str, int]
    outcome: dict[str, Any]
    """The report (times aside), the Jobs created and the ledger written (the runs' times aside): the same for
    every code, or the bench fails."""


def kubeconfig(path: Path, url: str, ca: Path) -> Path:
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "bench", "cluster": {"server": url, "certificate-authority": str(ca)}}],
        "users": [{"name": "bench", "user": {"token": TOKEN}}],
        "contexts": [{"name": "bench", "context": {"cluster": "bench", "user": "bench"}}],
        "current-context": "bench",
    }
    path.write_text(json.dumps(document))
    return path


def graph(path: Path) -> Path:
    versions = [
        {"package_name": f"package-{i:07d}", "package_version": "1.0", "index_url": PYPI} for i in range(GRAPH_VERSIONS)
    ]
    path.write_text(json.dumps({"package_versions": versions}))
    return path


def comparable(report: dict[str, Any]) -> dict[str, Any]:
    """A run report without what differs from one run to the next (times, durations)."""
    return {k: v for k, v in report.items() if not re.search(r"time|duration|started|finished|seconds", k)}


def comparable_ledger(data: dict[str, str] | None) -> dict[str, Any] | None:
    """The ledger a run wrote, of its recent runs what each scheduled (their times are each run's own clock; an
    older release recorded nothing else)."""
    if data is None:
        return None
    runs = [{k: v for k, v in run.items() if k == "scheduled"} for run in json.loads(data.get(RUNS_KEY, "[]"))]
    return {**{k: v for k, v in data.items() if k != RUNS_KEY}, RUNS_KEY: runs}


def measure(code: Code, url: str, work: Path, tls: Path, store: Path, *, quick: bool = False) -> Measured:
    """One real run of ``code`` against the stand-in at ``url``: it reads the namespace, learns, plans, creates
    and writes the ledger."""
    report = work / f"report-{code.label.split()[0]}.json"
    env = child_env(
        work / "home",
        KUBECONFIG=str(kubeconfig(work / "kubeconfig", url, tls / "ca.crt")),
        THOTH_MIDDLETIER_NAMESPACE=NAMESPACE,
        GRAPH_REFRESH_SQLITE_PATH=str(store),
    )
    cmd = code.app(*RUN_ARGS, *(QUICK_RUN_ARGS if quick else ()), "--report", str(report))
    last_run(url, tls)  # forget what an earlier run did
    try:
        sample, _, stderr = run_child_output(cmd, cwd=code.root, env=env)
    except BenchError as error:
        raise SystemExit(f"{code.label}: the run failed: {error}") from None
    found = SUMMARY.search(stderr)
    if found is None:
        raise SystemExit(f"{code.label}: the run did not say what it read:\n{stderr[-2000:]}")
    did = last_run(url, tls)
    items, live, failed = (int(n) for n in found.groups())
    outcome = {
        "report": comparable(json.loads(report.read_text())),
        "created": did["created"],
        "ledger": comparable_ledger(did["ledger"]),
    }
    return Measured(code.label, sample, items, live, failed, did["served"], outcome)


def last_run(url: str, tls: Path) -> dict[str, Any]:
    """What the stand-in served to the last run, what that run created and the ledger it wrote."""
    import urllib.request

    context = ssl.create_default_context(cafile=str(tls / "ca.crt"))
    request = urllib.request.Request(f"{url}/bench/last-run", headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, context=context) as answer:
        did: dict[str, Any] = json.loads(answer.read())
        return did


def median(runs: list[Measured]) -> Sample:
    """The median wall time, CPU time and peak RSS of ``runs`` (each figure on its own)."""
    return Sample(*(statistics.median(getattr(run.sample, figure.name) for run in runs) for figure in fields(Sample)))


@dataclass(frozen=True)
class Size:
    jobs: int
    percent_failed: float

    @property
    def label(self) -> str:
        return f"{self.jobs:,} owned Jobs, {self.percent_failed:g}% failed"


def sizes(text: str) -> list[Size]:
    found = []
    for part in text.split(","):
        jobs, colon, percent = part.partition(":")
        try:
            if not colon:
                raise ValueError(part)
            size = Size(int(jobs), float(percent))
        except ValueError:
            raise argparse.ArgumentTypeError(f"not JOBS:PERCENT_FAILED: {part!r}") from None
        if size.jobs < 1 or not 0 <= size.percent_failed <= 100:
            raise argparse.ArgumentTypeError(f"not JOBS:PERCENT_FAILED: {part!r}")
        found.append(size)
    return found


@dataclass
class Stand:
    url: str
    proc: subprocess.Popen[str]


@contextlib.contextmanager
def stand_in(size: Size, tls: Path) -> Iterator[Stand]:
    """The stand-in API server for ``size``, in its own process, stopped afterwards."""
    cmd = [sys.executable, __file__, "--serve", str(size.jobs), str(size.percent_failed), str(tls)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdin is not None
    url = proc.stdout.readline().strip()
    try:
        if not url.startswith("https://"):
            raise SystemExit(f"the stand-in API server did not start: {url!r}")
        yield Stand(url, proc)
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", type=sizes, default=None, help=f"JOBS:PERCENT_FAILED,... (default {DEFAULT_SIZES})")
    parser.add_argument("--baseline", default="", help="also measure the code at this git rev (e.g. e1da80d)")
    parser.add_argument("--quick", action="store_true", help=f"tiny sizes ({QUICK_SIZES}), one run each: a smoke run")
    parser.add_argument("--repeat", type=int, default=None, help=f"runs of each code per size (default {REPEAT})")
    parser.add_argument("--serve", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    repeat = args.repeat or (1 if args.quick else REPEAT)
    if args.serve:
        serve(int(args.serve[0]), float(args.serve[1]), Path(args.serve[2]))
        return 0
    chosen: list[Size] = args.sizes or sizes(QUICK_SIZES if args.quick else DEFAULT_SIZES)

    from tests.fakes.dgraph import make_tls_files

    with tempfile.TemporaryDirectory(prefix="bench-namespace-") as folder, baseline_checkout(args.baseline) as base:
        work = Path(folder)
        tls = make_tls_files(work / "tls", client=False).directory
        store = work / "graph.sqlite3"
        imported = subprocess.run(
            [sys.executable, "app.py", "import-graph", "--sqlite-path", str(store), str(graph(work / "graph.json"))],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
            env=child_env(work / "home"),
        )
        if imported.returncode != 0:
            raise SystemExit(f"import-graph failed: {imported.stderr}")
        codes = [Code("this checkout", ROOT)] + ([base] if base is not None else [])
        for code in codes:  # compiled as the image ships them, outside any measurement
            compile_code(code.root)
        print(f"| namespace | code | {' | '.join(COLUMNS)} | wall s | CPU s | peak RSS MiB |")
        print(f"|---|---|{'---:|' * (len(COLUMNS) + 3)}")
        for size in chosen:
            log(f"{size.label}: generating and serving")
            with stand_in(size, tls) as stand:
                results: list[list[Measured]] = []
                for code in codes:
                    log(f"{size.label}: {code.label}, {repeat} run(s)")
                    runs = [measure(code, stand.url, work, tls, store, quick=args.quick) for _ in range(repeat)]
                    results.append(runs)
                    m, sample = runs[-1], median(runs)
                    read = [m.served["jobs"], m.served["rows None"] + m.served["rows Metadata"], m.failed]
                    counts = " | ".join(f"{n:,}" for n in [*read, m.served["pods"], len(m.outcome["created"])])
                    print(
                        f"| {size.label} | {m.code} | {counts} | "
                        f"{sample.wall:.1f} | {sample.cpu:.2f} | {sample.rss_mib:.0f} |",
                        flush=True,
                    )
                first = results[0][0]
                for other in (run for runs in results for run in runs):
                    if other.outcome != first.outcome:
                        difference = next(key for key in first.outcome if other.outcome[key] != first.outcome[key])
                        raise SystemExit(f"{size.label}: {other.code} {difference} otherwise than {first.code}")
                    if (other.items, other.live, other.failed) != (first.items, first.live, first.failed):
                        raise SystemExit(f"{size.label}: {other.code} read otherwise than {first.code}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
