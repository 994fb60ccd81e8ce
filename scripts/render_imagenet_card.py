"""Draw docs/images/imagenet-card.png: the espresso → vulture card of the HTML report of a real run of
examples/imagenet.

Runs the example as its docstring says (``pytest --adv-epsilon=0.007``, red on purpose) with ``--adv-html``
in a copy of the folder, so nothing is written into the repository. Then it screenshots that report with
headless Chromium, cut down to its header (title, the run's defaults, the summary table) and the one card of
``test_photo_becomes_vulture`` for ``coffee.png``: the report's own markup and stylesheet, the other
tests' cards left out. The picture is as tall as that content, at README width. A docs tool, not part of
the package::

    pip install -e ".[examples]" && python scripts/render_imagenet_card.py [--output PATH]

``OUTPUT`` is the picture it draws by default; tests/test_pictures.py reads it to check that every picture
the README and docs show is drawn by a script.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "imagenet"
OUTPUT = ROOT / "docs" / "images" / "imagenet-card.png"

TEST = "test_photo_becomes_vulture"
IMAGE = "coffee.png"
WIDTH = 900  # CSS pixels: about the width of a README on github.com, so the text is read at its own size
# a CI runner's variables, left out of the example's environment: it must not write to a real job summary
CI_VARIABLES = ("GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY", "GITHUB_WORKSPACE")

# Run inside the report: remove every per-test section but TEST's card for IMAGE, then note whether that
# card was found and how tall the page is, for the second Chromium pass to size its window.
KEEP_ONE_CARD = """<script>
window.addEventListener("load", function () {
  var test = %(test)s, image = %(image)s, section = null, found = false;
  Array.prototype.slice.call(document.body.children).forEach(function (el) {
    if (el.tagName === "SCRIPT") return;
    if (el.tagName === "H2") {
      section = el.textContent;
      if (!section.endsWith("::" + test)) el.remove();
      return;
    }
    if (section === null) return;  // the title, the run's defaults and the summary table stay
    var h3 = el.querySelector("h3");
    var ours = section.endsWith("::" + test) && el.classList.contains("card") && h3 && h3.textContent === image;
    if (ours && !found) found = true; else el.remove();
  });
  document.body.setAttribute("data-card-found", found ? "yes" : "no");
  document.body.setAttribute("data-height", String(Math.ceil(document.documentElement.scrollHeight)));
});
</script>"""


def html_report(folder: Path) -> str:
    """The example's HTML report, from a real run in a copy of the example (three tests fail on purpose)."""
    copy = folder / "imagenet"
    shutil.copytree(EXAMPLE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    report = folder / "report.html"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--adv-epsilon=0.007", f"--adv-html={report}"],
        cwd=copy,
        env={key: value for key, value in os.environ.items() if key not in CI_VARIABLES},
        check=False,  # red on purpose: exit status 1
        capture_output=True,
        text=True,
    )
    if run.returncode != 1 or not report.is_file():
        tail = run.stdout[-4000:] + run.stderr[-2000:]
        sys.exit(f"examples/imagenet did not run as expected (exit status {run.returncode}):\n{tail}")
    return report.read_text(encoding="utf-8")


def render(chromium: str, report: str, folder: Path, output: Path) -> None:
    from headless import body_data, screenshot  # beside this script, on sys.path when it runs

    page = folder / "card.html"
    script = KEEP_ONE_CARD % {"test": json.dumps(TEST), "image": json.dumps(IMAGE)}
    if "</body>" not in report:
        sys.exit(
            "the HTML report has no </body>: has its markup changed? (pytest_advrobust/core/results/html_report.py)"
        )
    page.write_text(report.replace("</body>", script + "</body>", 1), encoding="utf-8")
    attributes = body_data(chromium, folder, page, WIDTH)
    if attributes.get("data-card-found") != "yes":
        sys.exit(f"no card for {IMAGE} under {TEST} in the HTML report: has the example or the report changed?")
    screenshot(chromium, folder, page, WIDTH, int(attributes["data-height"]), output)


def main(argv: list[str] | None = None) -> None:
    from headless import find_chromium, output_path  # beside this script, on sys.path when it runs

    output = output_path(__doc__.splitlines()[0], OUTPUT, ROOT, argv)
    chromium = find_chromium()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        render(chromium, html_report(folder), folder, output)
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
