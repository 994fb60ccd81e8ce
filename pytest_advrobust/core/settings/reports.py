"""The reports' settings: artifacts, the HTML, JSON and Markdown reports, GitHub's job summary."""

from __future__ import annotations

from . import parsers as p
from .option import Option

REPORT_FILES = {"report": "report.json", "html": "report.html", "markdown": "summary.md"}
"""The report options, each with a file name that messages suggest when a folder was named instead."""


OPTIONS: tuple[Option, ...] = (
    Option(
        "artifacts",
        p.parse_optional_path,
        None,
        metavar="DIR",
        per_test=False,
        help=(
            "Write, per test folder, each flipped image's clean and adversarial 8-bit PNGs, the perturbation "
            "amplified, its probability curve and a JSON of its numbers."
        ),
    ),
    Option(
        "artifacts_all",
        p.parse_bool,
        False,
        metavar="BOOL",
        per_test=False,
        help="Write artifacts (and HTML cards) for every image, not only the flipped ones.",
    ),
    Option(
        "artifacts_max",
        p.parse_count,
        50,
        metavar="N",
        per_test=False,
        help=(
            "At most N images per test get artifacts and HTML cards (the first failures in order); only their "
            "tensors are kept while a test runs, so memory does not grow with the number of images."
        ),
    ),
    Option(
        "amplify",
        p.parse_amplify,
        50.0,
        metavar="X",
        per_test=False,
        help="How much the perturbation image is amplified, centred on grey.",
    ),
    Option(
        "html",
        p.file_path(REPORT_FILES["html"]),
        None,
        metavar="FILE",
        per_test=False,
        help=(
            "Write one self-contained HTML report (images inlined, works offline): a summary per test and "
            "a card per flipped image."
        ),
    ),
    Option(
        "report",
        p.file_path(REPORT_FILES["report"]),
        None,
        metavar="FILE",
        per_test=False,
        help="Write a JSON report of every attacked image to FILE at the end of the session.",
    ),
    Option(
        "markdown",
        p.file_path(REPORT_FILES["markdown"]),
        None,
        metavar="FILE",
        per_test=False,
        help=(
            "Write a Markdown summary to FILE (the GitHub job summary's text): a row per test and a table "
            "of the first flips."
        ),
    ),
    Option(
        "github_summary",
        p.parse_bool,
        True,
        metavar="BOOL",
        per_test=False,
        help=(
            "When $GITHUB_STEP_SUMMARY is set (GitHub Actions), append the Markdown summary to it, so it "
            "shows on the run's page."
        ),
    ),
)
