"""pytest-html: when it writes a report (``--html``), each robustness test's row shows its first failed
images (clean, adversarial, perturbation amplified) and their lines, as one inlined HTML extra.

One HTML extra rather than a PNG extra per image: pytest-html shows PNG extras one at a time in a viewer,
and writes them as separate files unless ``--self-contained-html``; data URIs in HTML stay in the page.
Nothing here imports pytest-html until it is in use: it is no dependency.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING

import pytest

from .fixtures import RUNS_KEY

if TYPE_CHECKING:
    from ..core.results.report import HtmlCard

HTML_EXTRAS_NAME = "advrobust-pytest-html"
SHOWN_IMAGES = 5
"""Images drawn per test; the row's log lists every failed image."""
CARDS_KEY: pytest.StashKey[list[HtmlCard]] = pytest.StashKey()
"""item.stash: the first failed images' cards, for pytest-html's extras (only when pytest-html writes a report)."""


class PytestHtmlExtras:
    """Registered only when pytest-html writes a report; the cards come from the judge (``CARDS_KEY``)."""

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        cards = item.stash.get(CARDS_KEY, None)
        if call.when == "call" and cards:
            from pytest_html import extras

            from ..core.results.html_report import cards_fragment

            failed = sum(image.failed for run in item.stash.get(RUNS_KEY, []) for image in run.images)
            # pytest-html's own wrapper (outside this one) adds the extras set here to the row
            fragment = cards_fragment(cards, failed, test_failed=report.failed)
            report.extras = [*getattr(report, "extras", []), extras.html(fragment)]  # type: ignore[attr-defined]
        return report
