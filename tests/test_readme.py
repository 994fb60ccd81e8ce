"""The README stays a newcomer's page, its links and the docs' links lead somewhere, and CI runs its
test command."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
PAGES = sorted((ROOT / "docs").rglob("*.md"))
MAX_README_LINES = 250

FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,}).*?^[ \t]*\1[`~]*[ \t]*$", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"(`+)(?!`).+?(?<!`)\1(?!`)")
COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
# [text](path), ![alt](path), [text](<path with spaces>), [text](path "title"); text may hold [brackets]
LINK = re.compile(
    r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*(?:<([^>]*)>|([^\s)]+))(?:\s+(?:\"[^\"]*\"|'[^']*'|\([^)]*\)))?\s*\)"
)
DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(?:<([^>]*)>|(\S+))", re.MULTILINE)


def relative_links(markdown: str) -> list[str]:
    """The targets of the links and images (inline, or reference definitions) that point into the
    repository: no URL, no bare ``#anchor``, nothing inside code or HTML comments; without their
    ``#anchor`` or ``?query``, percent-decoded."""
    text = CODE_SPAN.sub("", FENCE.sub("", COMMENT.sub("", markdown)))
    targets = [m[1] if m[1] is not None else m[2] for pattern in (LINK, DEFINITION) for m in pattern.finditer(text)]
    parts = (urlsplit(target) for target in targets)
    return [unquote(part.path) for part in parts if not part.scheme and not part.netloc and part.path]


def test_relative_links_finds_links_and_images_but_not_urls_anchors_or_code() -> None:
    markdown = (
        "[a](docs/a.md) ![b](images/b.png) [c](https://x.org/c.md) [d](#d) [e](e.md#part) [f [g]](<f g.md>)\n"
        "`[h](h.md)` <!-- [i](i.md) -->\n  ```\n  [j](j.md)\n  ```\n[k]: k%20l.md\n[m]: mailto:x@y.org\n"
    )
    assert relative_links(markdown) == ["docs/a.md", "images/b.png", "e.md", "f g.md", "k l.md"]


def test_the_readme_is_a_newcomers_page() -> None:
    lines = len(README.splitlines())
    assert lines <= MAX_README_LINES, (
        f"README.md has {lines} lines; move details into docs/ (at most {MAX_README_LINES})"
    )


@pytest.mark.parametrize("page", [ROOT / "README.md", *PAGES], ids=lambda page: page.relative_to(ROOT).as_posix())
def test_every_relative_link_points_at_a_file(page: Path) -> None:
    links = relative_links(page.read_text(encoding="utf-8"))
    # a link starting with / is relative to the repository root, as on GitHub
    broken = [link for link in links if not (ROOT / link[1:] if link.startswith("/") else page.parent / link).exists()]
    assert not broken, f"{page.relative_to(ROOT)} links to files that do not exist: {broken}"


def test_ci_runs_the_readme_test_command() -> None:
    command = 'python3 -m venv .venv && . .venv/bin/activate && pip install -e ".[test,examples]" && python -m pytest'
    assert command in README
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert command in ci
