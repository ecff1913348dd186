"""Every relative link in the docs leads somewhere: the file exists, and a `#section` is a
heading of that file. Sections move (the README's Performance went to docs/performance.md);
a newcomer following a dead link learns nothing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted(
    [ROOT / "README.md", ROOT / "device_profiles" / "README.md", *(ROOT / "docs").glob("*.md")]
)
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_CODE_BLOCK = re.compile(r"^```.*?^```", re.M | re.S)


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = _CODE_BLOCK.sub("", page.read_text(encoding="utf-8"))
    return {_anchor(heading) for heading in re.findall(r"^#+ (.+)$", text, re.M)}


def _links(page: Path) -> list[str]:
    text = _CODE_BLOCK.sub("", page.read_text(encoding="utf-8"))
    return [target for target in _LINK.findall(text) if not re.match(r"[a-z]+:", target)]


def broken_links(page: Path) -> list[str]:
    broken = []
    for target in _links(page):
        path_part, _, anchor = target.partition("#")
        destination = (page.parent / path_part).resolve() if path_part else page
        if not destination.exists():
            broken.append(f"{target}: no such file")
        elif anchor and destination.suffix == ".md" and anchor not in _anchors(destination):
            broken.append(f"{target}: no heading #{anchor} in {destination.name}")
    return broken


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_relative_links_lead_to_a_file_and_a_heading(page: Path) -> None:
    assert broken_links(page) == [], page.relative_to(ROOT)


def test_a_moved_section_is_a_broken_link(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other\n\n## Results\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\nSee [results](other.md#results), [perf](#performance), "
        "[gone](gone.md) and [web](https://example.org/x.md).\n"
    )
    assert broken_links(page) == [
        "#performance: no heading #performance in page.md",
        "gone.md: no such file",
    ]


def test_an_anchor_is_made_as_github_makes_it() -> None:
    assert _anchor("Delivery guarantees") == "delivery-guarantees"
    assert _anchor("`decode` with `format: csv`") == "decode-with-format-csv"
    assert "troubleshooting" in _anchors(ROOT / "docs" / "operations.md")
