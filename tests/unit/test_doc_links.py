"""Every relative link of the Markdown documents leads somewhere.

A link to a file names a file of the repository; a link with ``#anchor`` names a
heading of its target (as GitHub makes anchors of headings: lower case, punctuation
dropped, spaces as hyphens, ``-1``, ``-2`` for repeated headings).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCUMENTS = [
    REPO / "README.md",
    REPO / "deploy" / "README.md",
    REPO / "mappings" / "README.md",
    *sorted((REPO / "docs").glob("*.md")),
]
_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
_HEADING = re.compile(r"#{1,6} +(.*?) *#*$")


def prose_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of a Markdown file outside its fenced code blocks."""
    lines, fenced = [], False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced:
            lines.append((number, line))
    return lines


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    for _, line in prose_lines(path):
        heading = _HEADING.fullmatch(line)
        if heading:
            base = slug(heading[1])
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def broken_links(path: Path, root: Path = REPO) -> list[str]:
    """Each link of ``path`` that leads nowhere, with its line number."""
    broken = []
    for number, line in prose_lines(path):
        for target in _LINK.findall(line):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
                continue
            file_part, _, anchor = target.partition("#")
            dest = (path.parent / file_part).resolve() if file_part else path
            where = f"{path.relative_to(root)}:{number}: {target}"
            if not dest.exists():
                broken.append(f"{where} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                broken.append(f"{where} (no such heading)")
    return broken


def test_the_documents_are_found() -> None:
    assert all(p.is_file() for p in DOCUMENTS)
    assert len(DOCUMENTS) >= 6


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(path: Path) -> None:
    assert broken_links(path) == []


def test_a_broken_link_is_found(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    (tmp_path / "there.md").write_text("# A heading, with punctuation\n\n## Twice\n## Twice\n")
    doc.write_text(
        "[ok](there.md#a-heading-with-punctuation) [ok](there.md#twice-1) [ok](#mine)\n"
        "## Mine\n[gone](missing.md) [bad](there.md#nowhere) [web](https://example.org/x)\n"
        "```\n[in code](ignored.md)\n```\n"
    )
    found = [line.split(": ", 1)[1] for line in broken_links(doc, tmp_path)]
    assert found == ["missing.md (no such file)", "there.md#nowhere (no such heading)"]
