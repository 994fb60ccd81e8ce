"""The Markdown summary: what a CI page shows of a run (GitHub's job summary renders it).

A row per test, then a table of the images that failed, cut after :data:`SHOWN_FAILURES` rows with a
pointer to the full reports. GitHub-flavoured Markdown (tables, ``<sub>``); text from image, class and
test names is escaped, so a name cannot break a table or inject markup. Pure Python: no torch, no pytest.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .gates import baseline_text
from .report import ImageRecord, TestReport, merge_shards
from .summary import known_images, status

SHOWN_FAILURES = 20
"""How many failed images the table lists (a job summary is read at a glance; the reports have them all)."""

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&$@#])")
"""Markup, GitHub's math (``$``), mentions (``@``) and issue references (``#``): escaped with a backslash."""
_AUTOLINK = re.compile(r"(?<=[A-Za-z])(:)(?=//)|(?<=www)(\.)", re.IGNORECASE)
"""Where GitHub would turn text into a link (``https://``, ``www.``): the ``:`` or ``.`` is escaped."""
MAX_CELL = 300
"""The most characters of one name or value a cell shows (the reports have them whole)."""


def escape(text: object) -> str:
    """``text`` as literal Markdown inline text, safe in a table cell: one line, no markup, no link, no
    mention, no character that does not print, ``|`` escaped, at most :data:`MAX_CELL` characters."""
    one_line = " ".join(str(text).split())
    printable = "".join(char if char.isprintable() else repr(char)[1:-1] for char in one_line)
    if len(printable) > MAX_CELL:
        printable = printable[: MAX_CELL - 1] + "…"
    return _AUTOLINK.sub(r"\\\1\2", _MARKDOWN_SPECIAL.sub(r"\\\1", printable))


def _status(test: TestReport) -> str:
    """❌ the test failed, ⚠️ it passed with failures its baseline allows, ✅ nothing failed."""
    return {"failed": "❌", "known": "⚠️", "held": "✅"}[status(test)]


def _test_row(test: TestReport, minimal_column: bool, baseline_column: bool) -> str:
    counts = test.counts
    cells = [
        _status(test),
        escape(test.nodeid),
        str(counts.attacked),
        str(counts.flipped),
        str(counts.misclassified),
        escape(counts.accuracy(test.confidence).text()),
    ]
    if minimal_column:
        minimal = test.minimal_epsilons  # only images that flip within the search range have one
        median = f"{minimal[len(minimal) // 2]:.4g}" if minimal else "—"
        cells.append(
            median + (f" ({len(minimal)} of {counts.attacked})" if minimal and len(minimal) < counts.attacked else "")
        )
    if baseline_column:
        cells.append(escape(baseline_text(test)) if test.baseline is not None else "—")
    return "| " + " | ".join(cells) + " |"


def _failure_row(test: TestReport, image: ImageRecord, known: bool) -> str:
    clean = f"{escape(image.clean_label_name)} {image.clean_prob:.2f}"
    if image.misclassified:
        change = f"{clean}, but labelled {escape(image.label_name)}: misclassified before the attack"
        epsilon, step = "—", "—"
    else:
        _, name, prob = image.shown_label
        change = f"{clean} → **{escape(name)}** {prob:.2f}"
        epsilon = f"{image.epsilon:g}"
        step = f"{image.first_flip_step}/{image.steps}" if image.first_flip_step is not None else "—"
    if known:
        change += " (known to the baseline)"
    return f"| {escape(test.nodeid)} | {escape(image.name)} | {change} | {escape(epsilon)} | {escape(step)} |"


def render_markdown(tests: Iterable[TestReport], header: Mapping[str, Any], full_reports: Sequence[str] = ()) -> str:
    """The summary of the session's test reports (shards are merged here).

    ``full_reports`` names the files that list every image (the HTML and JSON reports the run writes);
    the cut-off note points to them, or to the options that write them.
    """
    tests = merge_shards(list(tests))
    attacked = sum(test.counts.attacked for test in tests)
    flipped = sum(test.counts.flipped for test in tests)
    minimal_column = any(test.minimal_epsilons for test in tests)
    baseline_column = any(test.baseline is not None for test in tests)
    lines = [f"## Adversarial robustness: {flipped} of {attacked} image(s) flipped", ""]
    if not tests:
        lines.append("No robustness test ran.")
    else:
        titles = ["", "test", "attacked", "flipped", "misclassified", "robust accuracy"]
        titles += ["median minimal ε"] * minimal_column + ["baseline"] * baseline_column
        alignment = ["---"] * 2 + ["--:"] * (len(titles) - 2 - baseline_column) + ["---"] * baseline_column
        lines += ["| " + " | ".join(titles) + " |", "|" + "|".join(alignment) + "|"]
        lines += [_test_row(test, minimal_column, baseline_column) for test in tests]
    failures = []
    for test in tests:
        allowed = known_images(test)
        failures += [(test, image, image.name in allowed) for image in test.images if image.failed]
    failures.sort(key=lambda row: row[2])  # what turned the run red first; flips the baselines allow last
    if failures:
        lines += ["", f"### Images that failed ({len(failures)})", ""]
        lines += ["| test | image | clean → adversarial | ε | step |", "|---|---|---|--:|--:|"]
        lines += [_failure_row(test, image, known) for test, image, known in failures[:SHOWN_FAILURES]]
        if len(failures) > SHOWN_FAILURES:
            where = (
                "all of them are in " + ", ".join(f"`{report}`" for report in full_reports)
                if full_reports
                else "`--adv-html=FILE` or `--adv-report=FILE` lists them all"
            )
            lines += ["", f"{SHOWN_FAILURES} of {len(failures)} shown; {where}."]
        elif full_reports:
            lines += ["", "Every attacked image is in " + ", ".join(f"`{report}`" for report in full_reports) + "."]
    lines += [
        "",
        f"<sub>run defaults (markers override them per test): {escape(header.get('defaults', ''))} · "
        f"pytest-advrobust {escape(header.get('pytest_advrobust', ''))}</sub>",
        "",
    ]
    return "\n".join(lines)
