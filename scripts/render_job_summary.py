"""Draw docs/images/job-summary.png: the GitHub job summary of a real run of examples/custom_model.

Runs the example in a copy of its folder (so nothing is written into the repository) with
``--adv-markdown`` (the text GitHub's job summary receives), renders that Markdown to HTML with the
``markdown`` package, styles it roughly like a job summary on github.com, and screenshots it with headless
Chromium, as tall as the summary. GitHub draws the status emoji as images; a machine without an emoji font
gets look-alike marks instead. A docs tool, not part of the package (tests/test_pictures.py runs it)::

    pip install markdown && python scripts/render_job_summary.py [--output PATH]

``OUTPUT`` is the picture it draws by default; tests/test_pictures.py reads it to check that every picture
the README and docs show is drawn by a script.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "custom_model"
OUTPUT = ROOT / "docs" / "images" / "job-summary.png"
WIDTH = 1000  # CSS pixels; the summary's widest table needs about 960
# a CI runner's variables, left out of the example's environment: it must not write to a real job summary
CI_VARIABLES = ("GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY", "GITHUB_WORKSPACE")

GITHUB_STYLE = """
body{margin:0;padding:16px;background:#f6f8fa;color:#1f2328;
font-family:-apple-system,BlinkMacSystemFont,"Segoe UI","Noto Sans",Helvetica,Arial,sans-serif;font-size:14px;
line-height:1.5}
.box{background:#fff;border:1px solid #d0d7de;border-radius:6px}
.box-header{padding:12px 16px;border-bottom:1px solid #d0d7de;font-weight:600}
.box-header span{color:#59636e;font-weight:400}
.markdown-body{padding:16px 24px}
h2{font-size:1.5em;font-weight:600;padding-bottom:.3em;border-bottom:1px solid #d1d9e0;margin:8px 0 16px}
h3{font-size:1.25em;font-weight:600;margin:24px 0 16px}
table{border-collapse:collapse;display:block;width:max-content;max-width:100%;overflow:auto;margin-bottom:16px}
th,td{border:1px solid #d1d9e0;padding:6px 10px}th{font-weight:600}
tr:nth-child(2n){background:#f6f8fa}
sub{color:#59636e}
.emoji{display:inline-block;width:18px;height:18px;border-radius:4px;text-align:center;line-height:18px;
font-weight:700;color:#fff}.ok{background:#1f883d}.fail{color:#cf222e}.warn{color:#9a6700}
"""
EMOJI = {
    "✅": '<span class="emoji ok">✔</span>',
    "❌": '<span class="emoji fail">✘</span>',
    "⚠️": '<span class="emoji warn">⚠</span>',
}


def summary_markdown(folder: Path) -> str:
    """The example's summary, from a real run in a copy of the example (its muted colours flip on purpose)."""
    copy = folder / "custom_model"
    shutil.copytree(EXAMPLE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    out = folder / "summary.md"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--adv-minimal-epsilon",
            f"--adv-markdown={out}",
        ],
        cwd=copy,
        env={key: value for key, value in os.environ.items() if key not in CI_VARIABLES},
        check=False,  # red on purpose: exit status 1
        capture_output=True,
        text=True,
    )
    text = out.read_text(encoding="utf-8") if out.is_file() else ""
    # the test that flips on purpose must be in the summary (an import error, say, gives "No robustness test ran")
    if run.returncode != 1 or "test_muted_colors_flip" not in text.replace("\\_", "_"):
        tail = run.stdout[-4000:] + run.stderr[-2000:]
        sys.exit(f"examples/custom_model did not run as expected (exit status {run.returncode}):\n{tail}")
    return text


# Run in the page once it is laid out: note how tall it is, for the second Chromium pass to size its window.
MEASURE = """<script>
window.addEventListener("load", function () {
  document.body.setAttribute("data-height", String(Math.ceil(document.documentElement.scrollHeight)));
});
</script>"""


def page(text: str) -> str:
    import markdown  # imported here: tests/test_pictures.py imports this file for OUTPUT alone

    body = markdown.markdown(text, extensions=["tables"])
    for emoji, look_alike in EMOJI.items():
        body = body.replace(emoji, look_alike)
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><style>{GITHUB_STYLE}</style></head><body>'
        '<div class="box"><div class="box-header">robustness summary <span>· pytest</span></div>'
        f'<div class="markdown-body">{body}</div></div>{MEASURE}</body></html>'
    )


def main(argv: list[str] | None = None) -> None:
    from headless import body_data, find_chromium, output_path, screenshot  # beside this script, on sys.path

    output = output_path(__doc__.splitlines()[0], OUTPUT, ROOT, argv)
    chromium = find_chromium()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        html_file = folder / "summary.html"
        html_file.write_text(page(summary_markdown(folder)), encoding="utf-8")
        height = body_data(chromium, folder, html_file, WIDTH).get("data-height")
        if height is None:
            sys.exit("Chromium did not lay the page out (no data-height on <body>)")
        screenshot(chromium, folder, html_file, WIDTH, int(height), output)
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
