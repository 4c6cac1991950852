"""Kubernetes quantities: the grammar, kubernetes' own values, doubling up to a cap."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal

import pytest
from kubernetes.utils.quantity import parse_quantity as kubernetes_parse_quantity

from graph_refresh.quantity import Cap, double_quantity, parse_quantity

GI = 1024**3


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1Gi", Decimal(GI)),
        ("1500Mi", Decimal(1500 * 1024**2)),
        ("0.5Gi", Decimal(GI // 2)),
        ("512M", Decimal(512_000_000)),
        ("1073741824", Decimal(GI)),
        ("1e9", Decimal(10**9)),
        ("1E3", Decimal(1000)),  # an exponent, not exa
        ("1E", Decimal(10**18)),  # exa
        ("1e+20", Decimal(10**20)),
        ("1.5e-3", Decimal("0.0015")),
        ("100m", Decimal("0.1")),
        ("250u", Decimal("0.00025")),
        ("2k", Decimal(2000)),
        (".5", Decimal("0.5")),
        ("1.", Decimal(1)),
        ("+1Ki", Decimal(1024)),
        ("-1Ki", Decimal(-1024)),
        (" 3Gi\n", Decimal(3 * GI)),  # the API server trims JSON quantities too
        (3, Decimal(3)),
        (1.5, Decimal("1.5")),
    ],
)
def test_parse_quantity_reads_kubernetes_quantities(text: str | int | float, value: Decimal) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["1Gi", "1500Mi", "0.5Gi", "512M", "1e9", "1E3", "100m", "7Ei", "1.25Ti", "42"])
def test_parse_quantity_agrees_with_kubernetes(text: str) -> None:
    assert parse_quantity(text) == kubernetes_parse_quantity(text)


@pytest.mark.parametrize(
    "value",
    [
        "NaN",
        "nan",
        "Infinity",
        "-Infinity",
        "inf",
        "sNaN",  # all accepted by kubernetes 11's parser
        "1_000",  # accepted by Python's Decimal
        "1 Gi",
        "2K",  # upper-case kilo is not a Kubernetes suffix
        "1ki",
        "1e",
        "1e1.5",
        "Gi",
        "",
        "   ",
        "0x10",
        "1Gib",
        "1e999999999",  # too large to compute with
        float("nan"),
        float("inf"),
        True,
        None,
        [1],
    ],
)
def test_parse_quantity_refuses_what_is_not_a_finite_quantity(value: object) -> None:
    with pytest.raises(ValueError, match="quantity"):
        parse_quantity(value)  # type: ignore[arg-type]


CAP = Cap.parse("8Gi")


@pytest.mark.parametrize(
    ("value", "doubled"),
    [
        ("1Gi", "2Gi"),
        ("1500Mi", "3000Mi"),
        ("0.5Gi", "1Gi"),
        ("0.75Gi", "1.5Gi"),
        ("512M", "1024M"),
        ("1073741824", "2147483648"),
        ("1e9", "2e9"),
        ("1.5e3", "3e3"),
        ("+1Gi", "2Gi"),
        (" 1Gi ", "2Gi"),
        ("4Gi", "8Gi"),  # exactly the cap
        ("5Gi", "8Gi"),  # the double passes the cap: the cap, as written
        ("8000Mi", "8Gi"),
        ("7.9Gi", "8Gi"),
        ("8Gi", None),  # already at the cap
        ("8192Mi", None),
        ("9Gi", None),
        ("1Ei", None),
    ],
)
def test_double_quantity_keeps_the_suffix_and_stops_at_the_cap(value: str, doubled: str | None) -> None:
    assert double_quantity(value, CAP) == doubled
    if doubled is not None:
        assert parse_quantity(doubled) == min(2 * parse_quantity(value), CAP.value)


def test_double_quantity_writes_the_cap_as_the_operator_spelled_it() -> None:
    cap = Cap.parse(" 8192Mi ")
    assert cap == Cap("8192Mi", Decimal(8 * GI))
    assert double_quantity("6Gi", cap) == "8192Mi"


@pytest.mark.parametrize("value", ["0", "0Gi", "-1Gi", "NaN", "lots"])
def test_double_quantity_refuses_what_cannot_be_doubled(value: str) -> None:
    with pytest.raises(ValueError, match=repr(value)):
        double_quantity(value, CAP)


@pytest.mark.parametrize("text", ["0", "-1Gi", "NaN", "8 Gi"])
def test_a_cap_is_a_positive_quantity(text: str) -> None:
    with pytest.raises(ValueError, match=repr(text)):
        Cap.parse(text)


def test_reading_quantities_does_not_import_the_kubernetes_client() -> None:
    code = (
        "import sys, graph_refresh.quantity as q; q.parse_quantity('1Gi'); "
        "print(sorted(m for m in sys.modules if m.startswith('kubernetes')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
