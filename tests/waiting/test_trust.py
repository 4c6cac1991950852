"""Who may ask for what (graph_refresh/waiting/trust.py): the normal form of an index URL, the indexes a
deployment trusts, and the graph's spelling of a version."""

from __future__ import annotations

import itertools

import pytest

from graph_refresh.items import normal_index
from graph_refresh.waiting.trust import TrustedIndexes, same_version, store_spelling

PYPI = "https://pypi.org/simple"


@pytest.mark.parametrize(
    "spelling",
    [
        "https://pypi.org/simple",
        "https://pypi.org/simple/",
        "HTTPS://PyPI.ORG/simple",
        "https://pypi.org:443/simple",
        "https://user:secret@pypi.org/simple",
        "https://pypi.org/simple?token=abc",
        "https://pypi.org/simple#frag",
        " https://pypi.org/simple ",
    ],
)
def test_spellings_of_one_index_share_a_normal_form(spelling: str) -> None:
    assert normal_index(spelling) == PYPI


@pytest.mark.parametrize(
    "other",
    [
        "http://pypi.org/simple",  # another scheme
        "https://pypi.org:8443/simple",  # another port
        "https://pypi.org/Simple",  # paths are case-sensitive
        "https://pypi.org.evil.example/simple",
        "https://evil.example/pypi.org/simple",
    ],
)
def test_other_indexes_have_other_normal_forms(other: str) -> None:
    assert normal_index(other) not in (None, PYPI)


@pytest.mark.parametrize(
    "broken",
    ["ftp://pypi.org/simple", "pypi.org/simple", "https:///simple", "https://pypi.org:99999/simple", "https://a/$(X)"],
)
def test_what_is_no_index_url_has_no_normal_form(broken: str) -> None:
    assert normal_index(broken) is None


def test_the_store_spelling_wins_and_an_unusable_store_url_is_trusted_by_nobody() -> None:
    private = "https://u:p@private.example/simple/"
    trusted = TrustedIndexes.of(
        [private, PYPI, 'https://pypi.org/simple" -o /tmp/x'], ["https://private.example/simple"]
    )
    assert trusted.spelling("https://PRIVATE.example:443/simple") == private
    assert trusted.spelling("https://pypi.org/simple/") == PYPI
    assert trusted.spelling('https://pypi.org/simple" -o /tmp/x') is None
    assert trusted.described() == "https://***@private.example/simple/, https://pypi.org/simple"
    assert TrustedIndexes.of([]).described().startswith("none")


@pytest.mark.parametrize(
    ("asked", "known", "expected"),
    [
        ("1.0", ["1.0"], "1.0"),
        ("1.0.0", ["1.0", "2.0"], "1.0"),
        ("v1.0", ["1.0"], "1.0"),
        ("1.0", ["1.0.0", "1.0"], "1.0"),  # the same text first
        ("1.0", ["1.0.0", "1.0.0.0"], "1.0.0"),  # else the first equal one, in sorted order
        ("2004d", ["2004d"], "2004d"),  # a legacy version, as written
        ("2004D", ["2004d"], None),
        ("1.0", ["1.0.post1", "1.0a1"], None),
        ("1.0", [], None),
    ],
)
def test_a_version_is_matched_to_the_stores_spelling(asked: str, known: list[str], expected: str | None) -> None:
    assert store_spelling(asked, known) == expected


def test_version_equality_is_symmetric_over_many_spellings() -> None:
    spellings = ["1", "1.0", "1.0.0", "v1.0", "1.0.post0", "1.0a1", "01.0", "1.0+local", "2004d", "1!1.0"]
    for a, b in itertools.product(spellings, repeat=2):
        assert same_version(a, b) == same_version(b, a), (a, b)
