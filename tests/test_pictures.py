"""The pictures in the README and the docs never go stale: each one is drawn by a script from a real run.

Every ``scripts/render_*.py`` declares the picture it draws as ``OUTPUT`` (its ``--output`` default);
every picture a Markdown page shows must be one of those. Rerun the scripts after a change that shows
in them (``python scripts/render_job_summary.py``, ``python scripts/render_imagenet_card.py``).
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((ROOT / "scripts").glob("render_*.py"))

FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,}).*?^[ \t]*\1[`~]*[ \t]*$", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"(`+)(?!`).+?(?<!`)\1(?!`)")
COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
# ![alt](path), ![alt](<path with spaces>), ![alt](path "title"); alt text may hold [brackets]
INLINE_IMAGE = re.compile(
    r"!\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*(?:<([^>]*)>|([^\s)]+))(?:\s+(?:\"[^\"]*\"|'[^']*'|\([^)]*\)))?\s*\)"
)
# ![alt][label], ![alt][] and ![label], with a definition "[label]: path" somewhere in the file
REFERENCE_IMAGE = re.compile(r"!\[((?:[^\[\]]|\[[^\[\]]*\])*)\](?:\[([^\]]*)\])?(?![(\[:])")
DEFINITION = re.compile(r"^ {0,3}\[([^\]]+)\]:\s*(?:<([^>]*)>|(\S+))", re.MULTILINE)
HTML_IMAGE = re.compile(r"<img\b[^>]*?\bsrc\s*=\s*(?:\"([^\"]*)\"|'([^']*)'|([^\s>]+))", re.IGNORECASE)


def _label(text: str) -> str:
    return " ".join(text.split()).casefold()


def image_targets(markdown: str) -> list[str]:
    """The targets of the images a Markdown text shows, in order: inline and reference-style Markdown
    images and HTML ``<img src>``; not those inside code blocks, code spans or HTML comments."""
    text = CODE_SPAN.sub("", FENCE.sub("", COMMENT.sub("", markdown)))
    definitions = {_label(m[1]): m[2] if m[2] is not None else m[3] for m in DEFINITION.finditer(text)}
    found: list[tuple[int, str]] = []
    for m in INLINE_IMAGE.finditer(text):
        found.append((m.start(), m[1] if m[1] is not None else m[2]))
    for m in REFERENCE_IMAGE.finditer(text):
        label = _label(m[2] or m[1])  # ![alt][] and ![label] use the alt text as the label
        if label in definitions:
            found.append((m.start(), definitions[label]))
    for m in HTML_IMAGE.finditer(text):
        found.append((m.start(), next(group for group in m.groups() if group is not None)))
    return [target for _, target in sorted(found)]


def _local_picture(page: Path, target: str) -> Path | None:
    """The file a page's image target names, relative to the page (GitHub and MkDocs alike); None for a
    URL. A target starting with / is relative to the repository root, as on GitHub."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:  # https://…, data:…
        return None
    path = unquote(parts.path)
    return (ROOT / path.lstrip("/") if path.startswith("/") else page.parent / path).resolve()


def _pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def _declared_outputs() -> dict[Path, str]:
    """Each script's OUTPUT (a path, or a sequence of them), read by importing the script: the scripts
    import nothing heavy at module level and do their work under ``if __name__ == "__main__"``."""
    outputs: dict[Path, str] = {}
    for script in SCRIPTS:
        spec = importlib.util.spec_from_file_location(f"_picture_script_{script.stem}", script)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        declared = getattr(module, "OUTPUT", None)
        assert declared is not None, f"{script.relative_to(ROOT)} declares no OUTPUT"
        for output in [declared] if isinstance(declared, (str, Path)) else declared:
            outputs[Path(output).resolve()] = script.name
    return outputs


def test_image_targets_reads_every_way_markdown_shows_a_picture() -> None:
    text = """
![a card](images/card.png) and ![with "title"](<images/a b.png> "Title") and ![x [y] z](../up.png 'title')
![by reference][ref] ![ref] <img alt="html" src="images/html.png" width="600">
[ref]: images/ref.png "the reference"
`![in a code span](no1.png)`
<!-- ![in a comment](no2.png) -->
```markdown
![in a fence](no3.png)
```
[a link, not a picture](no4.png)
"""
    assert image_targets(text) == [
        "images/card.png",
        "images/a b.png",
        "../up.png",
        "images/ref.png",
        "images/ref.png",
        "images/html.png",
    ]


def test_every_script_declares_an_output_that_is_in_the_repository() -> None:
    assert SCRIPTS, "no scripts/render_*.py"
    for output, script in _declared_outputs().items():
        assert output.is_relative_to(ROOT), f"{script}: OUTPUT {output} is outside the repository"
        assert output.is_file(), f"{script}: its picture {output.relative_to(ROOT)} is missing; run the script"


def test_every_picture_in_the_readme_and_docs_is_drawn_by_a_script() -> None:
    outputs = _declared_outputs()
    stale: list[str] = []
    for page in _pages():
        if not page.is_file():
            continue
        for target in image_targets(page.read_text(encoding="utf-8")):
            picture = _local_picture(page, target)
            if picture is not None and picture not in outputs:
                stale.append(f"{page.relative_to(ROOT)}: {target} (-> {picture})")
    assert not stale, (
        "pictures drawn by no scripts/render_*.py script (give it one that draws it from a real run, with "
        "OUTPUT naming it, or fix the path):\n" + "\n".join(stale)
    )


def _chromium() -> str | None:
    return next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)


def test_the_job_summary_script_draws_its_picture(tmp_path: Path) -> None:
    """One real run of the custom_model example and two of headless Chromium: 11-17 s on 2 shared cores.
    (scripts/render_imagenet_card.py runs the real EfficientNet-Lite0 on the ImageNet example: 15 s on 2
    idle cores, minutes on busy ones; not run here.)"""
    if _chromium() is None:
        pytest.skip("needs Chromium (Debian: apt-get install chromium)")
    pytest.importorskip("markdown", reason="the job summary's Markdown is rendered with the markdown package")
    output = tmp_path / "pictures" / "job-summary.png"
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "render_job_summary.py"), f"--output={output}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    data = output.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n"), "not a PNG"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width > 0 and height > 0
