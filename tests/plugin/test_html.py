"""--adv-html: one self-contained page; a real browser renders its cards."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import WEAK_AND_STRONG_TESTS, run_chromium

pytest.importorskip("matplotlib", reason="the curves need the report extra: pip install -e '.[report]'")

TESTS = WEAK_AND_STRONG_TESTS


@pytest.fixture
def report(project: pytest.Pytester) -> Path:
    project.makepyfile(TESTS)
    result = project.runpytest("--adv-html=out/report.html")
    result.stdout.fnmatch_lines(["advrobust: HTML report written to out/report.html"])
    return project.path / "out" / "report.html"


def test_the_page_is_self_contained(report: Path) -> None:
    page = report.read_text()
    assert "<script" not in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page), "no external resources"
    assert page.count('class="card"') == 3
    assert page.count("data:image/png;base64,") == 12  # clean, adversarial, perturbation, curve per card
    assert "Adversarial robustness: 3 of 8 image(s) flipped" in page
    assert "<th>baseline</th>" not in page and "<th>minimal ε</th>" not in page, "no columns for what was not used"
    assert "still fools the model" in page
    assert '<meta name="viewport"' in page


@pytest.mark.parametrize("window", ["1280,900", "390,844"], ids=["laptop", "phone"])
def test_a_real_browser_renders_the_cards(report: Path, tmp_path: Path, window: str) -> None:
    profile = tmp_path / "profile"
    dom = run_chromium(f"--user-data-dir={profile}", "--dump-dom", report.as_uri())
    assert dom.stdout.count('class="card"') == 3, dom.stderr[-2000:]
    assert re.search(r"c9 0\.14 (→|&rarr;) <span class=\"bad\">c7 0\.1\d</span>", dom.stdout), "the class transition"
    shot = tmp_path / "shot.png"
    done = run_chromium(
        f"--user-data-dir={profile}2", f"--window-size={window}", f"--screenshot={shot}", report.as_uri()
    )
    assert shot.exists(), done.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float32)
    assert pixels.shape[1] == int(window.split(",")[0])
    assert pixels.std() > 10, "the screenshot shows content, not a blank page"
