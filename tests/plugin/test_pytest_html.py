"""pytest-html (``--html``): a robustness test's row shows its first failed images and their lines."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest

from helpers import MANY_FLIPS, WEAK_AND_STRONG_TESTS, run_chromium

pytest.importorskip("pytest_html", reason="pytest-html is in the test extra: pip install -e '.[test]'")


# the browser's verdict on each of our images: its decoded width and its width on the page
IMAGE_CHECK = """<script>
window.addEventListener("load", () => setTimeout(() => {
  const images = [...document.querySelectorAll(".advrobust-card img")];
  const out = document.createElement("div");
  out.id = "advrobust-check";
  out.textContent = images.map((img) => img.naturalWidth + "x" + Math.round(img.getBoundingClientRect().width)).join(",");
  document.body.appendChild(out);
}, 100));
</script>"""


@pytest.fixture
def report(project: pytest.Pytester) -> Path:
    project.makepyfile(test_few=WEAK_AND_STRONG_TESTS, test_many=MANY_FLIPS)
    result = project.runpytest("--html=ph/report.html", "--self-contained-html")
    result.assert_outcomes(passed=1, failed=2)
    return project.path / "ph" / "report.html"


def _extras(report: Path) -> dict[str, str]:
    """The HTML extras of each test's call, from the JSON that pytest-html's page renders its rows from."""
    blob = re.search(r'data-jsonblob="([^"]*)"', report.read_text(encoding="utf-8"))
    assert blob is not None
    tests = json.loads(html.unescape(blob.group(1)))["tests"]
    return {
        nodeid: "".join(extra["content"] for row in rows for extra in row["extras"] if extra["format_type"] == "html")
        for nodeid, rows in tests.items()
    }


def test_each_failed_image_is_drawn_in_the_row(report: Path) -> None:
    assert sorted(p.name for p in report.parent.iterdir()) == ["report.html"], "one self-contained file"
    extras = _extras(report)
    few, many = extras["test_few.py::test_weak"], extras["test_many.py::test_many"]
    assert extras["test_few.py::test_strong"] == "", "nothing failed, nothing drawn"
    assert few.startswith("<p><strong>adversarial robustness</strong>: 3 failed image(s)</p>")
    assert few.count('class="advrobust-card"') == 3
    assert few.count('src="data:image/png;base64,') == 3 * 3, "clean, adversarial and perturbation per image"
    assert "image 0: &#x27;c9&#x27; 0.14 -&gt; &#x27;c7&#x27; 0.14 at eps=0.05, step 1/10</pre>" in few
    assert "clean: c9 0.14" in few and "adversarial (8-bit): c7 0.14" in few
    assert re.search(r"the first 5 of \d\d failed images \(the failure message lists every one\)", many)
    assert many.count('class="advrobust-card"') == 5


def test_without_pytest_html_the_plugin_needs_nothing_of_it(project: pytest.Pytester) -> None:
    project.makepyfile(WEAK_AND_STRONG_TESTS)
    result = project.runpytest("-p", "no:html", "--adv-html=r.html")  # as if pytest-html were not installed
    result.assert_outcomes(passed=1, failed=1)
    assert "--html" not in project.runpytest("-p", "no:html", "--help").stdout.str()
    assert (project.path / "r.html").read_text(encoding="utf-8").count('class="card"') == 3


def test_a_real_browser_shows_the_images(report: Path, tmp_path: Path) -> None:
    page = tmp_path / "check.html"
    page.write_text(report.read_text(encoding="utf-8").replace("</body>", IMAGE_CHECK + "</body>"), encoding="utf-8")
    dom = run_chromium(
        f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000", "--dump-dom", page.as_uri()
    )
    found = re.search(r'<div id="advrobust-check">([^<]*)</div>', dom.stdout)
    assert found, dom.stderr[-2000:]
    sizes = [tuple(int(v) for v in size.split("x")) for size in found.group(1).split(",")]
    assert len(sizes) == 3 * (3 + 5)
    assert all(natural == 8 and shown > 0 for natural, shown in sizes), "every image decoded and on the page"
