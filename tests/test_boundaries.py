"""Module boundaries, enforced: pure modules import no I/O module, only ``kube.py`` imports
the Kubernetes client, only ``store/`` imports sqlite3 and pydgraph. Read from each module's own import
statements (ast), so an import hidden in a function counts too."""

from __future__ import annotations

import ast
import json
import os
import pty
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from .fakes.kube import FakeKube
from .helpers import INFRA, MIDDLETIER, ROOT, template_documents, version

PACKAGE = ROOT / "graph_refresh"
# Planning and rendering: no network, no files, no clock of their own.
PURE = [
    "items",
    "planner",
    "capacity",
    "quantity",
    "render",
    "templates",
    "compact",
    "owned",
    "retry/model",
    "retry/failures",
    "retry/policy",
    "retry/codec",
    "waiting/requests",
    "waiting/lanes",
    "waiting/explain",
    "backoff",
    "config",
    "errors",
    "secrets",
    "report",
    "listing",
]
IO_MODULES = {
    "graph_refresh.kube",
    "graph_refresh.store",
    "graph_refresh.metrics",
    "graph_refresh.retry.ledger_store",
    "graph_refresh.waiting.requests_store",
    "graph_refresh.configmaps",
    "graph_refresh.runtime",
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


def test_a_template_folder_dry_run_loads_no_http_client_and_urllib3_warnings_go_off_once_it_loads(
    tmp_path: Path,
) -> None:
    """thoth-common's set-up turns urllib3's warnings off, importing it (≈ 50 ms with http.client and ssl); a dry
    run from a Template folder never uses it, and what imports it later finds its warnings off all the same."""
    probe = (
        "import sys, runpy, warnings; sys.argv = ['app.py', *sys.argv[1:]]\n"
        "try:\n    runpy.run_path('app.py', run_name='__main__')\n"
        "except SystemExit as exit:\n    code = exit.code\n"
        "print('LOADED', sorted(m for m in ('urllib3', 'http.client', 'ssl') if m in sys.modules))\n"
        "import urllib3\n"
        "print('OFF', [f[:2] for f in warnings.filters if f[2] is urllib3.exceptions.HTTPWarning])\n"
        "sys.exit(code)"
    )
    store = tmp_path / "empty.sqlite3"
    graph = tmp_path / "graph.json"
    graph.write_text('{"package_versions": []}')
    env = {key: value for key, value in os.environ.items() if not key.startswith(("THOTH_", "SENTRY_", "STI_"))}
    subprocess.run(
        [sys.executable, "app.py", "import-graph", str(graph), "--sqlite-path", str(store)],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    args = ["--dry-run", "--template-dir", "openshift/templates", "--sqlite-path", str(store)]
    done = subprocess.run(
        [sys.executable, "-c", probe, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "LOADED []" in done.stdout, done.stdout
    assert "OFF [('ignore', None)]" in done.stdout, done.stdout


# Imported by the libraries we use though a run uses them in one set-up only, or never: thoth-common's logging
# (Sentry, JSON log lines, daiquiri's plain ones), the dynamic client, the Google Cloud and OIDC kubeconfig log-ins.
NOT_USED_BY_DEFAULT = ("sentry_sdk", "daiquiri", "jsonformatter", "kubernetes_validate", "jsonschema", "requests")
RUN_AND_LIST_MODULES = (
    "import importlib, runpy, sys\n"
    "for name in filter(None, sys.argv[1].split(',')):\n    importlib.import_module(name)\n"
    "sys.argv = ['app.py', *sys.argv[2:]]\n"
    "try:\n    runpy.run_path('app.py', run_name='__main__')\n"
    "except SystemExit as exit:\n    code = exit.code\n"
    f"print('LOADED', sorted({{m for m in sys.modules if m.split('.')[0] in {NOT_USED_BY_DEFAULT!r}}}))\n"
    "sys.exit(code)"
)


def app_listing_modules(
    args: list[str], env: dict[str, str], *, imported_first: str = "", tty: bool = False
) -> tuple[int, str, set[str]]:
    """Run app.py in a new process, having imported the modules ``imported_first`` (comma-separated) before;
    its exit code, its stderr (on a terminal when ``tty``) and which of NOT_USED_BY_DEFAULT it had loaded at exit."""
    command = [sys.executable, "-c", RUN_AND_LIST_MODULES, imported_first, *args]
    logging_set_up = ("SENTRY_", "THOTH_SENTRY_", "THOTH_LOG", "THOTH_ADJUST_LOGGING", "STI_SCRIPTS_PATH")
    full_env = {name: value for name, value in os.environ.items() if not name.startswith(logging_set_up)}
    full_env.update(env)  # the set-up is the test's alone, whatever the shell that runs the tests has
    if not tty:
        done = subprocess.run(command, cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=60, check=False)
        code, stdout, stderr = done.returncode, done.stdout, done.stderr
    else:
        reader, writer = pty.openpty()
        chunks: list[bytes] = []

        def read() -> None:
            while True:
                try:
                    chunk = os.read(reader, 65536)
                except OSError:  # the child's side closed
                    return
                if not chunk:
                    return
                chunks.append(chunk)

        thread = threading.Thread(target=read)
        thread.start()
        try:
            with subprocess.Popen(command, cwd=ROOT, env=full_env, stdout=subprocess.PIPE, stderr=writer) as child:
                os.close(writer)
                stdout = child.stdout.read().decode() if child.stdout else ""
                code = child.wait(timeout=60)
        finally:
            thread.join(timeout=10)
            os.close(reader)
        stderr = b"".join(chunks).decode().replace("\r\n", "\n")
    loaded = re.search(r"^LOADED (\[.*\])$", stdout, re.MULTILINE)
    assert loaded, (stdout[-500:], stderr[-2000:])
    return code, stderr, {name.split(".")[0] for name in ast.literal_eval(loaded.group(1))}


@pytest.fixture
def small_store(tmp_path: Path) -> dict[str, str]:
    """An embedded store of three package versions; the environment that names it."""
    graph = tmp_path / "graph.json"
    graph.write_text(json.dumps({"package_versions": [version(name, "1.0") for name in ("a", "b", "c")]}))
    env = {"GRAPH_REFRESH_SQLITE_PATH": str(tmp_path / "graph.sqlite3"), "GRPC_VERBOSITY": "NONE"}
    subprocess.run(
        [sys.executable, "app.py", "import-graph", str(graph)],
        cwd=ROOT,
        env={**os.environ, **env},
        check=True,
        capture_output=True,
    )
    return env


@pytest.mark.timeout(120)
def test_a_run_loads_no_module_that_its_set_up_does_not_use(tmp_path: Path, small_store: dict[str, str]) -> None:
    dry = ["--dry-run", "--template-dir", "openshift/templates"]
    code, stderr, loaded = app_listing_modules(dry, small_store)
    assert code == 0, (loaded, stderr[-2000:])
    assert not loaded, (loaded, stderr[-2000:])

    with FakeKube(tls="tls") as fake:
        for document in template_documents():
            fake.add(document)
        cluster = {
            "KUBECONFIG": str(fake.kubeconfig(tmp_path / "kubeconfig")),
            "THOTH_INFRA_NAMESPACE": INFRA,
            "THOTH_MIDDLETIER_NAMESPACE": MIDDLETIER,
        }
        code, stderr, loaded = app_listing_modules([], {**small_store, **cluster})
        assert code == 0, (loaded, stderr[-2000:])
        assert not loaded, (loaded, stderr[-2000:])
        assert len(fake.objects("jobs", MIDDLETIER)) == 12  # three versions: three solvers and the analyzer each


SENTRY = {"SENTRY_DSN": "http://public@127.0.0.1:9/1", "SENTRY_ENVIRONMENT": "graph-refresh-test"}
S2I = {"STI_SCRIPTS_PATH": "/usr/libexec/s2i"}  # thoth-common logs JSON in an s2i image
THOTH_COMMON_IMPORTS = "sentry_sdk,daiquiri,jsonformatter"


def comparable(stderr: str) -> list[Any]:
    """Log lines without what differs from one process to the next: time, process id, durations."""
    lines: list[Any] = []
    for line in stderr.splitlines():
        if " urllib3.connectionpool:" in line:  # Sentry's transport retrying the dead DSN in its own thread
            continue
        line = re.sub(r"\b\d+\.\d+s\b", "<seconds>", line)
        if line.startswith("{"):
            record = json.loads(line)
            for key in ("created", "asctime", "msecs", "relative_created", "process"):
                assert key in record, record
                del record[key]
            lines.append(record)
        else:
            lines.append(re.sub(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} +\d+ ", "<time> <pid> ", line))
    return lines


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("set_up", "env", "tty", "expected"),
    [
        pytest.param("plain", {}, False, set(), id="plain"),
        pytest.param("plain, on a terminal", {}, True, set(), id="terminal"),
        pytest.param("with Sentry", SENTRY, False, {"sentry_sdk"}, id="sentry"),
        pytest.param("JSON", S2I, False, {"jsonformatter"}, id="json"),
    ],
)
def test_log_lines_are_those_the_modules_thoth_common_imports_write(
    set_up: str, env: dict[str, str], tty: bool, expected: set[str], small_store: dict[str, str], tmp_path: Path
) -> None:
    """The same lines as with sentry_sdk, daiquiri and jsonformatter imported, while loading only what the set-up
    uses. Debug lines too, a warning, and a failing run (whose error line is red on a terminal)."""
    env = {**small_store, **env, "THOTH_LOG_GRAPH_REFRESH": "DEBUG"}
    for args, exit_code in (
        (["--dry-run", "--template-dir", "openshift/templates"], 0),
        (["--dry-run", "--template-dir", "openshift/templates", "--sqlite-path", str(tmp_path / "absent")], 1),
    ):
        code, lean, loaded = app_listing_modules(args, env, tty=tty)
        assert code == exit_code, (set_up, loaded, lean[-2000:])
        assert loaded == expected, (set_up, loaded, lean[-2000:])
        code, full, loaded = app_listing_modules(args, env, tty=tty, imported_first=THOTH_COMMON_IMPORTS)
        assert code == exit_code, (set_up, loaded)
        assert loaded >= {"sentry_sdk", "daiquiri", "jsonformatter"}, (set_up, loaded)
        assert comparable(lean) == comparable(full)
        assert "Would create Job" in lean or exit_code  # the debug lines are there
        assert ("\033[" in lean) == tty  # colours on a terminal only
        assert ("Sentry" in lean) == (env.get("SENTRY_DSN") is not None)  # said only when configured


GCP_KUBECONFIG = {
    "apiVersion": "v1",
    "kind": "Config",
    "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:9"}}],
    "users": [{"name": "u", "user": {"auth-provider": {"name": "gcp", "config": {}}}}],
    "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
    "current-context": "x",
}
KUBECONFIG_LOG_INS = "google.auth,google.auth.transport.requests,oauthlib.oauth2,requests_oauthlib"


@pytest.mark.timeout(60)
def test_a_google_cloud_kubeconfig_still_gets_its_token_from_google_auth(
    tmp_path: Path, small_store: dict[str, str]
) -> None:
    """google-auth is not imported at start any more: the kubeconfig's log-in imports it when it needs it."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps(GCP_KUBECONFIG))
    env = {
        **small_store,
        "KUBECONFIG": str(kubeconfig),
        "GOOGLE_APPLICATION_CREDENTIALS": str(tmp_path / "absent-credentials.json"),
        "THOTH_INFRA_NAMESPACE": INFRA,
        "THOTH_MIDDLETIER_NAMESPACE": MIDDLETIER,
    }
    errors: list[str] = []
    for imported_first in ("", KUBECONFIG_LOG_INS):
        report = tmp_path / f"report-{len(errors)}.json"
        code, stderr, _ = app_listing_modules(["--report", str(report)], env, imported_first=imported_first)
        assert code == 1, stderr[-2000:]
        errors.append(json.loads(report.read_text())["error"])
    assert errors[0] == errors[1]
    assert "DefaultCredentialsError" in errors[0]
    assert "absent-credentials.json was not found" in errors[0]
