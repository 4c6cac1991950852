"""The repository explains itself: every pointer from the code into docs/ names a document and a heading that
exist, in one of two forms: ``(design: Heading[, Heading])`` for docs/design.md, and ``docs/FILE.md`` or
``(docs/FILE.md, "Heading")`` for the others."""

from __future__ import annotations

import re
from pathlib import Path

from .helpers import ROOT

SOURCES = sorted(
    path
    for folder in ("graph_refresh", "tests", "bench", "scripts")
    for path in (ROOT / folder).rglob("*.py")
    if path.name != "test_docs.py"
)
DESIGN = re.compile(r"\(([^()]*;\s*)?design: ([^()]+)\)")
DOCUMENT = re.compile(r"docs/([a-z0-9-]+)\.md(?:, \"([^\"]+)\")?")


def headings(document: Path) -> set[str]:
    return {
        line.lstrip("#").strip() for line in document.read_text(encoding="utf-8").splitlines() if line.startswith("#")
    }


def test_every_design_citation_names_a_heading_of_the_design() -> None:
    known = headings(ROOT / "docs" / "design.md")
    problems = []
    for path in SOURCES:
        text = path.read_text(encoding="utf-8")
        cited = {match.start(): match for match in DESIGN.finditer(text)}
        for found in re.finditer(r"design:", text):
            match = next((m for m in cited.values() if m.start() < found.start() < m.end()), None)
            if match is None:
                problems.append(f"{path.relative_to(ROOT)}: 'design:' outside a (design: Heading) citation")
                continue
        for match in cited.values():
            for heading in match.group(2).split(","):
                words = " ".join(word for word in heading.split() if word != "#")  # a citation may wrap
                if words not in known:
                    problems.append(f"{path.relative_to(ROOT)}: no heading {words!r} in docs/design.md")
    assert problems == []


def test_every_document_citation_names_a_document_and_heading_that_exist() -> None:
    problems = []
    for path in [*SOURCES, *sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]:  # tests/test_docs.py aside
        for match in DOCUMENT.finditer(path.read_text(encoding="utf-8")):
            document = ROOT / "docs" / f"{match.group(1)}.md"
            if not document.is_file():
                problems.append(f"{path.relative_to(ROOT)}: no {document.relative_to(ROOT)}")
            elif match.group(2) and match.group(2) not in headings(document):
                problems.append(f"{path.relative_to(ROOT)}: no heading {match.group(2)!r} in {match.group(0)}")
    assert problems == []


def test_the_checks_catch_a_heading_that_does_not_exist() -> None:
    assert DESIGN.search("a run (design: Nowhere)").group(2) == "Nowhere"  # type: ignore[union-attr]
    assert "Nowhere" not in headings(ROOT / "docs" / "design.md")
    assert DOCUMENT.search('see (docs/lanes.md, "Nowhere")').group(2) == "Nowhere"  # type: ignore[union-attr]
