"""Kubernetes resource quantities (``500m``, ``3Gi``, ``1e9``) without importing the kubernetes client.

``import kubernetes.utils.quantity`` runs ``kubernetes/__init__.py``, which imports the whole generated client
(about 0.3 s); a ``--template-dir`` dry run must not pay for that. So this module loads kubernetes' own
parser file, ``kubernetes/utils/quantity.py`` (it imports nothing but ``decimal``), as a standalone module and
wraps it:

- the text must have the shape of apimachinery's ``resource.Quantity`` grammar: an optional sign, a decimal
  number, then one suffix of ``Ki Mi Gi Ti Pi Ei``, ``n u m k M G T P E`` or ``e<integer>``/``E<integer>``
  (surrounding whitespace is ignored, as the API server's JSON decoding does). The kubernetes parser alone
  lets through what the API server refuses (``NaN``, ``Infinity``, ``1_000``, ``1 Gi``, ``2K``);
- the value must be finite.

Pure code: no I/O once loaded.
"""

from __future__ import annotations

import decimal
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from graph_refresh import standalone

_NUMBER = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
# sign, number, suffix; an exponent (e3, E-2) is tried before the exa suffix E so that "1E3" is 1000.
_QUANTITY_RE = re.compile(rf"([+-]?)({_NUMBER})([eE][+-]?[0-9]+|[KMGTPE]i|[numkMGTPE]?)")
# Doubling works in a context wide enough for any value a quantity can reasonably hold; past that the
# arithmetic traps (Overflow) and the value is refused rather than rounded.
_CONTEXT = decimal.Context(prec=60, Emax=10_000, Emin=-10_000, traps=[decimal.Overflow, decimal.InvalidOperation])


def _load_kubernetes_parser() -> Callable[[Any], Any]:
    """kubernetes' ``parse_quantity``, loaded from its file without running ``kubernetes/__init__.py``."""
    module = standalone.load("kubernetes", "utils/quantity.py", "graph_refresh._kubernetes_quantity")
    parser: Callable[[Any], Any] = module.parse_quantity
    return parser


_kubernetes_parse_quantity = _load_kubernetes_parser()


def parse_quantity(value: str | int | float) -> Decimal:
    """A Kubernetes quantity as a Decimal: ``"1Gi"`` → 1073741824, ``"500m"`` → 0.5, ``2`` → 2.

    Raises ValueError, naming the value, for anything that is not a finite quantity: text outside the
    grammar (see the module docstring), ``NaN``/``Infinity`` in any spelling, a bool, a non-finite float, a
    value too large to compute with (past about 1e10000), or any other type.
    """
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"{value!r} is not a Kubernetes quantity")
    if isinstance(value, str):
        text = value.strip()
        if _QUANTITY_RE.fullmatch(text) is None:
            raise ValueError(f"{value!r} is not a Kubernetes quantity")
        parsed: Any = text
    else:
        parsed = value
    try:
        with decimal.localcontext(_CONTEXT):
            result = Decimal(_kubernetes_parse_quantity(parsed))
            if not result.is_finite():
                raise ValueError(f"{value!r} is not a finite quantity")
            +result  # noqa: B018 - applying the context traps a value too large to work with
    except ArithmeticError as error:  # decimal.Overflow, InvalidOperation
        raise ValueError(f"{value!r} is not a usable quantity: {type(error).__name__}") from error
    return result


@dataclass(frozen=True)
class Cap:
    """An upper bound such as ``--max-memory``: its text as the operator wrote it and its value."""

    text: str
    value: Decimal

    @classmethod
    def parse(cls, text: str) -> Cap:
        """The cap ``text``; ValueError (naming it) when it is not a positive finite quantity."""
        value = parse_quantity(text)
        if value <= 0:
            raise ValueError(f"{text!r} is not a positive quantity")
        return cls(text.strip(), value)

    def __str__(self) -> str:
        return self.text


def double_quantity(value: str, cap: Cap) -> str | None:
    """Twice ``value``, written with the same suffix, but never more than ``cap``.

    ``"1Gi"`` → ``"2Gi"``, ``"1500Mi"`` → ``"3000Mi"``, ``"0.5Gi"`` → ``"1Gi"``, ``"1e9"`` → ``"2e9"``. When
    the double would exceed the cap the result is ``cap.text``; when ``value`` is already at or above the cap
    the result is None (nothing left to grow). Raises ValueError, naming the value, when ``value`` is not a
    quantity (see parse_quantity) or is not positive (zero doubled stays zero).
    """
    current = parse_quantity(value)
    if current <= 0:
        raise ValueError(f"{value!r} is not a positive quantity")
    if current >= cap.value:
        return None
    match = _QUANTITY_RE.fullmatch(value.strip())
    assert match is not None  # parse_quantity accepted it
    sign, number, suffix = match.groups()
    try:
        with decimal.localcontext(_CONTEXT):
            doubled = Decimal(sign + number) * 2
            if parse_quantity(f"{_plain(doubled)}{suffix}") > cap.value:
                return cap.text
    except (ArithmeticError, ValueError):  # a double past what can be computed is past any cap
        return cap.text
    return f"{_plain(doubled)}{suffix}"


def _plain(number: Decimal) -> str:
    """``number`` in positional notation without trailing zeros: 3000, 1.5, 0.25 (never 3E+3 or 1.0)."""
    text = format(number, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text
