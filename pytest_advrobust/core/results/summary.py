"""Session-wide view of robustness results: terminal lines and the JSON report.

Works on :class:`~pytest_advrobust.core.results.report.TestReport` objects, which travel from pytest-xdist
workers to the controller as plain data. Pure Python: no torch, no pytest.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from ..display import shown
from ..jsonfile import write_json
from .gates import baseline_text
from .report import RunReport, TestReport, merge_shards

REPORT_SCHEMA_VERSION = 1
SHOWN = 10
"""How many regressed, changed, new or missing images the summary names per test."""


Colour = Literal["red", "yellow", "green", ""]
"""How a summary line is marked where the terminal shows colour: flips red, what held green."""


def summary_lines(reports: Iterable[TestReport], verbosity: int = 0) -> list[tuple[str, Colour]]:
    """Per test and per group of runs with equal settings (the marker's attack, each ``adv_attack`` call,
    the shards of a test): counts, robust accuracy and flipped-class pairs (``cat -> paper towel ×2``).

    ``verbosity`` as pytest's: below 0 one line per group; 0 adds the pairs and the baseline status;
    above 0 also how the images were batched, and every image's line (held images with what they held
    against, minimal ε when known).
    Test ids, class and image names are shown escaped (:func:`~pytest_advrobust.core.display.shown`).
    """
    lines: list[tuple[str, Colour]] = []
    for report in merge_shards(list(reports)):
        groups: dict[str, list[RunReport]] = {}
        for run in report.runs:
            groups.setdefault(run.settings.describe, []).append(run)
        shards = f" in {len(report.shards)} shard{'s' if len(report.shards) > 1 else ''}" if report.shards else ""
        for runs in groups.values():
            part = TestReport(report.nodeid, runs)
            counts = part.counts
            accuracy = counts.accuracy(runs[0].settings.confidence).text()
            verdict = status(report)
            failures = bool(counts.flipped or counts.misclassified)
            colour: Colour = (
                ("red" if verdict == "failed" else "yellow")
                if failures
                else ("red" if verdict == "failed" and not any(image.failed for image in report.images) else "green")
            )  # a test that failed with nothing flipped (e.g. no baseline under --adv-baseline-strict) is red too
            note = (
                " [every failure known to the baseline]"
                if verdict == "known" and failures and all_known(report)
                else ""
            )
            lines.append(
                (
                    f"{shown(report.nodeid)}: {counts.attacked} attacked{shards}, {counts.flipped} flipped, "
                    f"{counts.misclassified} misclassified, robust accuracy {accuracy} "
                    f"({shown(runs[0].settings.how())}){note}",
                    colour,
                )
            )
            if verbosity >= 0:
                lines += [(f"    {shown(a)} -> {shown(b)} ×{count}", "red") for a, b, count in part.pairs()]
            if verbosity > 0:
                batching = dict.fromkeys(run.settings.batching for run in runs if run.settings.batching)
                lines += [(f"    {shown(line)}", "") for line in batching]
                lines += [(f"      {image.line()}", "red" if image.failed else "green") for image in part.images]
        if report.baseline is not None and verbosity >= 0:
            lines += _baseline_lines(report)
    return lines


Status = Literal["failed", "known", "held"]


def status(report: TestReport) -> Status:
    """``failed``: pytest failed the test (or, outcome unknown, the baseline does not allow its failures);
    ``known``: it passed with failures its baseline allows (or while recording one); ``held``: nothing failed."""
    counts = report.counts
    failures = bool(counts.flipped or counts.misclassified)
    if report.failed or (report.failed is None and failures and not all_known(report)):
        return "failed"
    return "known" if failures else "held"


def known_images(report: TestReport) -> set[str]:
    """Names of the images whose failure the test's baseline allows (its known flips)."""
    comparison = report.baseline.comparison if report.baseline is not None else None
    if comparison is None or comparison.incomparable is not None:
        return set()
    # a known flip's line starts with the image's shown name and ": " (a name may hold ": " itself)
    names = {shown(image.name): image.name for image in report.images}
    known: set[str] = set()
    for entry in comparison.known:
        ends = [i for i in range(len(entry)) if entry.startswith(": ", i)]
        known.update(names[entry[:end]] for end in ends if entry[:end] in names)
    return known


def all_known(report: TestReport) -> bool:
    """Whether the baseline allows every failure of the test (a comparable one without regressions)."""
    comparison = report.baseline.comparison if report.baseline is not None else None
    return comparison is not None and comparison.incomparable is None and not comparison.regressions


def _baseline_lines(report: TestReport) -> list[tuple[str, Colour]]:
    assert report.baseline is not None
    lines: list[tuple[str, Colour]] = [("    baseline: " + shown(baseline_text(report)), "")]
    comparison = report.baseline.comparison
    named = (
        []
        if comparison is None
        else [*comparison.regressions, *comparison.changed, *comparison.new, *comparison.missing]
    )
    lines += [(f"      {shown(item)}", "") for item in named[:SHOWN]]
    if len(named) > SHOWN:
        lines.append((f"      … and {len(named) - SHOWN} more (full list in --adv-report)", ""))
    return lines


def unused_text(unused: Mapping[str, Iterable[str]]) -> str:
    """``2 baseline entries have no test any more (...): m.py::test_a, m.py::test_b`` ({module: [test]})."""
    entries = [shown(f"{module}::{test}") for module, tests in sorted(unused.items()) for test in tests]
    return (
        f"{len(entries)} baseline entr{'y has' if len(entries) == 1 else 'ies have'} no test any more (a full "
        f"--adv-baseline-update removes them): {', '.join(entries)}"
    )


def removed_text(unused: Mapping[str, Iterable[str]]) -> str:
    """``removed 2 baseline entries without a test: m.py::test_a, m.py::test_b``."""
    entries = [shown(f"{module}::{test}") for module, tests in sorted(unused.items()) for test in tests]
    return f"removed {len(entries)} baseline entries without a test: " + ", ".join(entries)


def report_json(reports: Iterable[TestReport], header: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON report: schema version, the run's header, one entry per test (shards merged), totals."""
    tests = [report.to_json() for report in merge_shards(list(reports))]
    return {
        "schema_version": REPORT_SCHEMA_VERSION,
        **header,
        "tests": tests,
        "totals": {
            "tests": len(tests),
            "attacked": sum(t["attacked"] for t in tests),
            "flipped": sum(t["flipped"] for t in tests),
            "misclassified": sum(t["misclassified"] for t in tests),
        },
    }


def write_report(path: Path, reports: Iterable[TestReport], header: Mapping[str, Any]) -> None:
    """Write the JSON report atomically."""
    write_json(path, report_json(reports, header))
