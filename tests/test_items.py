"""Work-item identity, names and validation (graph_refresh/items.py)."""

from __future__ import annotations

import re

import pytest

from graph_refresh.errors import TemplateError
from graph_refresh.items import (
    ANALYZER,
    SOLVER,
    Candidate,
    WorkItem,
    first_attempt_labels,
    invalid_reason,
    is_job_name,
    normalize_name,
    parse_solver_name,
)

PYPI = "https://pypi.org/simple"
DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("solver-fedora-31-py38", ("fedora", "31", "3.8")),
        ("solver-rhel-8.6-py38", ("rhel", "8.6", "3.8")),
        ("solver-ubi-9-py311", ("ubi", "9", "3.11")),
        ("solver-fedora-28-py27", ("fedora", "28", "2.7")),
    ],
)
def test_solver_names_parse_into_environments(name: str, expected: tuple[str, str, str]) -> None:
    env = parse_solver_name(name, template="solver")
    assert (env.os_name, env.os_version, env.python_version) == expected


@pytest.mark.parametrize(
    "name",
    [
        "fedora-31-py38",  # no prefix
        "solver-fedora-py38",  # two parts
        "solver-fedora-31-x-py38",  # four parts
        "solver-fedora-31-38",  # no py
        "solver-fedora-31-py3",  # one digit: no minor version
        "solver-Fedora-31-py38",  # not DNS-safe
        "solver-rhel-8.-py38",
        "solver-" + "a" * 40 + "-1-py38",  # longer than 46
    ],
)
def test_bad_solver_names_are_template_errors_naming_solver_and_template(name: str) -> None:
    with pytest.raises(TemplateError) as error:
        parse_solver_name(name, template="my-solver-template")
    assert name in str(error.value)
    assert "my-solver-template" in str(error.value)


def test_job_names_are_stable_short_dns_names_from_which_the_solver_is_recovered() -> None:
    solver = "solver-" + "o" * 30 + "-10-py311"
    assert len(solver) == 46
    item = WorkItem(SOLVER, solver, Candidate("flask", "1.1.2", PYPI))
    assert item.job_name == WorkItem(SOLVER, solver, Candidate("flask", "1.1.2", PYPI)).job_name
    assert len(item.job_name) == 57
    assert DNS_SUBDOMAIN.fullmatch(item.job_name)
    assert is_job_name(item.job_name)
    # The result API takes the pod hostname minus its last part, then rsplit("-", 1)[0].
    hostname = (item.job_name + "-x7k2p")[:63]
    assert hostname.rsplit("-", 1)[0].rsplit("-", 1)[0] == solver
    analyzer = WorkItem(ANALYZER, None, Candidate("flask", "1.1.2", PYPI))
    assert analyzer.job_name.startswith("package-analyzer-")
    assert len(analyzer.job_name) == 27
    assert is_job_name(analyzer.job_name)
    assert not is_job_name("kustomization")
    assert not is_job_name(f"{solver}-nothex0000")


def test_keys_differ_per_solver_kind_version_and_index() -> None:
    base = Candidate("flask", "1.1.2", PYPI)
    keys = {
        WorkItem(SOLVER, "solver-a-1-py38", base).key,
        WorkItem(SOLVER, "solver-b-1-py38", base).key,
        WorkItem(ANALYZER, None, base).key,
        WorkItem(ANALYZER, None, base._replace(package_version="1.1.3")).key,
        WorkItem(ANALYZER, None, base._replace(index_url="https://example.org/simple")).key,
    }
    assert len(keys) == 5


def test_labels_and_requirement() -> None:
    item = WorkItem(SOLVER, "solver-ubi-8-py38", Candidate("pytz", "2004d", PYPI))
    assert item.labels == {
        "app.kubernetes.io/managed-by": "graph-refresh",
        "thoth-station.ninja/kind": "solver",
        "thoth-station.ninja/solver": "solver-ubi-8-py38",
        "thoth-station.ninja/item": item.key,
        "thoth-station.ninja/attempt": "1",
    }
    assert item.requirement == "pytz===2004d"
    assert "thoth-station.ninja/solver" not in WorkItem(ANALYZER, None, item.candidate).labels


def test_a_retry_has_a_name_of_its_own_in_the_same_shape_and_keeps_the_item_key() -> None:
    first = WorkItem(SOLVER, "solver-fedora-31-py38", Candidate("flask", "1.1.2", PYPI))
    names = {WorkItem(SOLVER, first.solver, first.candidate, attempt=n).job_name for n in range(1, 6)}
    assert len(names) == 5
    assert first.job_name in names
    for n in range(2, 6):
        retry = WorkItem(SOLVER, first.solver, first.candidate, attempt=n)
        assert retry.key == first.key
        assert retry.labels["thoth-station.ninja/item"] == first.key
        assert retry.labels["thoth-station.ninja/attempt"] == str(n)
        assert is_job_name(retry.job_name)
        assert len(retry.job_name) == len(first.job_name)
        pod_hostname = (retry.job_name + "-abcde")[:63]  # the kubelet's cut
        assert pod_hostname.rsplit("-", 1)[0].rsplit("-", 1)[0] == "solver-fedora-31-py38"  # result-api's rule
    again = WorkItem(SOLVER, first.solver, first.candidate, attempt=3)
    assert again.job_name == WorkItem(SOLVER, first.solver, first.candidate, attempt=3).job_name  # a re-run: 409


@pytest.mark.parametrize("kind", [SOLVER, ANALYZER])
def test_a_first_attempts_name_says_its_labels(kind: str) -> None:
    """What a Table row of a first attempt (its name alone) tells the cluster view; a retry's name ends in
    another hash, so its labels must be read."""
    solver = "solver-fedora-31-py38" if kind == SOLVER else None
    first = WorkItem(SOLVER if kind == SOLVER else ANALYZER, solver, Candidate("flask", "1.1.2", PYPI))
    managed_by = {"app.kubernetes.io/managed-by": "graph-refresh"}
    assert first_attempt_labels(first.job_name) == {k: v for k, v in first.labels.items() if k not in managed_by}
    retry = WorkItem(first.kind, first.solver, first.candidate, attempt=2)
    assert (first_attempt_labels(retry.job_name) or {})["thoth-station.ninja/item"] != retry.key
    for other in ("solver-fedora-31-py38", "flask-0123456789", "solver-fedora-31-py38-0123456789x", ""):
        assert first_attempt_labels(other) is None


def test_names_are_compared_in_pep503_form() -> None:
    assert normalize_name("Zope.Interface") == normalize_name("zope_interface") == "zope-interface"


@pytest.mark.parametrize(
    "name", ["Django", "oslo.concurrency", "A__B", "a-_.b", "x.-_-.Y_z", "ruamel.yaml.clib", "Z", "1-2.3_4", "aB9"]
)
def test_a_name_is_normalised_as_pypa_packaging_does(name: str) -> None:
    from packaging.utils import canonicalize_name  # the reference, not a dependency of the run

    assert normalize_name(name) == canonicalize_name(name)


def test_names_that_are_not_pep508_names_stay_as_given() -> None:
    assert normalize_name("\u212aeras") == "\u212aeras"  # not "keras"
    assert normalize_name("Evil\nName") == "Evil\nName"


@pytest.mark.parametrize(
    "candidate",
    [
        Candidate("evil\nname", "1.0", PYPI),
        Candidate("name\n", "1.0", PYPI),
        Candidate("${THOTH_SOLVER_OUTPUT}", "1.0", PYPI),
        Candidate("-leading", "1.0", PYPI),
        Candidate("a" * 201, "1.0", PYPI),
        Candidate("ok", "1.0 ; rm -rf /", PYPI),
        Candidate("ok", "", PYPI),
        Candidate("ok", "1" * 129, PYPI),
        Candidate("ok", "1.0\n", PYPI),
        Candidate("ok", "1.0", "ftp://mirror.example.com/simple"),
        Candidate("ok", "1.0", "https://example.com/${X}"),
        Candidate("ok", "1.0", "https://example.com/$(KUBERNETES_SERVICE_HOST)/simple"),
        Candidate("ok", "1.0", "https://pypi.org/simple?t=$(THOTH_SOLVER_PACKAGES)"),
        Candidate("ok", "1.0", "https://example.com/$HOME"),
        Candidate("ok", "1.0", 'https://example.com/"q'),
        Candidate("ok", "1.0", "https://example.com/ a"),
        Candidate("ok", "1.0", "https://" + "a" * 2048),
        Candidate("\u212aeras", "1.0", PYPI),  # Kelvin sign: case-folds to k
        Candidate("flask\u017f", "1.0", PYPI),  # long s: case-folds to s
        Candidate("ok", "\u0661.0", PYPI),  # Arabic-Indic digit one
        Candidate("ok", "1.0", "https://pypi.org/sim\x00ple"),
        Candidate("ok", "1.0", "https://pypi.org/simple\x7f"),
        Candidate("ok", "1.0", "https://pypi.org/s\u00efmple"),
        Candidate("ok", "1.0", "https://pypi.org/simple`id`"),
    ],
)
def test_hostile_candidates_are_invalid(candidate: Candidate) -> None:
    assert invalid_reason(candidate)


@pytest.mark.parametrize(
    "candidate",
    [
        Candidate("a", "1", PYPI),
        Candidate("zope.interface", "7.2", PYPI),
        Candidate("pytz", "2004d", "http://internal.example:8080/simple"),
        Candidate("torch", "2.1.0+cpu", "https://download.pytorch.org/whl/cpu"),
        Candidate("private", "1.0", "https://user@pypi.internal:8443/simple/?x=1&y=%20#frag"),
        Candidate("x" * 200, "1!2.0.post1-dev_3", PYPI),
    ],
)
def test_ordinary_candidates_are_valid(candidate: Candidate) -> None:
    assert invalid_reason(candidate) is None


@pytest.mark.parametrize(
    ("item", "key"),
    [
        (WorkItem(SOLVER, "solver-fedora-31-py38", Candidate("flask", "1.1.2", PYPI)), "1089589296"),
        (WorkItem(ANALYZER, None, Candidate("flask", "1.1.2", PYPI)), "4d93bd18c6"),
        (
            WorkItem(SOLVER, "solver-ubi-9-py311", Candidate("zope-interface", "7.2", "https://u@pypi.internal/s?x=1")),
            "199d8c2391",
        ),
        (WorkItem(ANALYZER, None, Candidate("\u212aeras", "1.0", PYPI)), "6b90230dc5"),
        (WorkItem(ANALYZER, None, Candidate('evil"\\\n\x7f\u00e9\U0001f600', "1.0", PYPI)), "4d9db146bb"),  # escapes
    ],
)
def test_keys_and_job_names_are_the_golden_values_of_the_first_release(item: WorkItem, key: str) -> None:
    """Jobs already in the cluster carry these names: a change here would schedule every item again."""
    assert item.key == key
    assert item.job_name == f"{item.solver or ANALYZER}-{key}"
    assert item.labels["thoth-station.ninja/item"] == key


def test_a_key_is_computed_once_and_equal_items_stay_equal() -> None:
    item = WorkItem(SOLVER, "solver-fedora-31-py38", Candidate("flask", "1.1.2", PYPI))
    assert item.key is item.key
    assert item.job_name is item.job_name
    twin = WorkItem(SOLVER, "solver-fedora-31-py38", Candidate("flask", "1.1.2", PYPI))
    assert item == twin
    assert hash(item) == hash(twin)
    assert {item, twin} == {twin}
