"""Draw docs/job-summary.png: the GitHub job summary of a real run of examples/custom_model.

Runs the example with ``--adv-markdown`` (the text GitHub's job summary receives), renders that Markdown
to HTML with the ``markdown`` package, styles it roughly like a job summary on github.com, and screenshots
it with headless Chromium. GitHub draws the status emoji as images; a machine without an emoji font gets
look-alike marks instead. A docs tool, not part of the package or its tests::

    pip install markdown && python docs/render_job_summary.py
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import markdown

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "custom_model"
OUTPUT = ROOT / "docs" / "job-summary.png"

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
    """The example's summary, from a real run (its muted colours flip on purpose)."""
    out = folder / "summary.md"
    subprocess.run(
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
        cwd=EXAMPLE,
        check=False,  # red on purpose
        capture_output=True,
    )
    return out.read_text(encoding="utf-8")


def page(text: str) -> str:
    body = markdown.markdown(text, extensions=["tables"])
    for emoji, look_alike in EMOJI.items():
        body = body.replace(emoji, look_alike)
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><style>{GITHUB_STYLE}</style></head><body>'
        '<div class="box"><div class="box-header">robustness summary <span>· pytest</span></div>'
        f'<div class="markdown-body">{body}</div></div></body></html>'
    )


def main() -> None:
    chromium = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    if chromium is None:
        sys.exit("needs Chromium (Debian: apt-get install chromium)")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        html_file = folder / "summary.html"
        html_file.write_text(page(summary_markdown(folder)), encoding="utf-8")
        subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                f"--user-data-dir={folder / 'profile'}",
                f"--screenshot={OUTPUT}",
                "--window-size=1000,700",
                html_file.as_uri(),
            ],
            check=True,
            capture_output=True,
        )


if __name__ == "__main__":
    main()
