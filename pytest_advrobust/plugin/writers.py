"""Writers that run at session end, each registered only when its option is set (as pytest registers
``LogXML`` only for ``--junitxml``): the JSON report, the HTML report, and the baseline files.

On pytest-xdist workers they write nothing; the controller, which receives every report, writes once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .collector import Collector
from .options import Settings


def _is_worker(session: pytest.Session) -> bool:
    return hasattr(session.config, "workerinput")


@dataclass(eq=False)
class _Writer:
    collector: Collector
    settings: Settings
    written: list[Path] = field(default_factory=list)
    what = "file"

    def write(self) -> list[Path]:
        raise NotImplementedError

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if not _is_worker(session):
            self.written = self.write()

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        for path in self.written:
            terminalreporter.write_line(f"advrobust: {self.what} written to {self.settings.shown(path)}")


@dataclass(eq=False)
class JsonReportWriter(_Writer):
    """``--adv-report=FILE``: every attacked image of the session."""

    what = "JSON report"

    def write(self) -> list[Path]:
        from ..core.summary import write_report

        path = self.settings.run.report
        assert path is not None
        write_report(path, self.collector.reports, self.settings.header())
        return []  # the JSON report is named on the command line; no line about it


@dataclass(eq=False)
class HtmlReportWriter(_Writer):
    """``--adv-html=FILE``: one self-contained page."""

    what = "HTML report"

    def write(self) -> list[Path]:
        from ..core.html_report import render_html

        path = self.settings.run.html
        assert path is not None
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render_html(self.collector.merged(), self.settings.header()), encoding="utf-8")
        return [path]


@dataclass(eq=False)
class BaselineWriter(_Writer):
    """``--adv-baseline-update``: the recorded images merged into the baseline files once, image by image;
    after a full run, entries whose test is gone are removed."""

    what = "baseline"
    removed: list[str] = field(default_factory=list)

    def write(self) -> list[Path]:
        from ..core.baseline_store import Update, write_baselines

        updates = [
            Update(status.module, status.test, status.entry, status.image_names)
            for report in self.collector.merged()
            if (status := report.baseline) is not None and status.status == "recorded" and status.entry is not None
        ]
        unused = self.collector.unused
        self.removed = [f"{module}::{test}" for module, tests in sorted(unused.items()) for test in tests]
        return write_baselines(self.settings.baseline_dir, updates, unused) if updates or unused else []

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        super().pytest_terminal_summary(terminalreporter)
        if self.removed:
            terminalreporter.write_line(
                f"advrobust: removed {len(self.removed)} baseline entries without a test: {', '.join(self.removed)}"
            )


WRITER_NAMES = ("advrobust-json", "advrobust-html", "advrobust-baselines")
"""The plugin names the writers are registered under (and unregistered by, in pytest_unconfigure)."""


def writers_for(settings: Settings, collector: Collector) -> dict[str, _Writer]:
    """The writers the options ask for, by plugin name."""
    json_name, html_name, baselines_name = WRITER_NAMES
    wanted: dict[str, _Writer] = {}
    if settings.run.report is not None:
        wanted[json_name] = JsonReportWriter(collector, settings)
    if settings.run.html is not None:
        wanted[html_name] = HtmlReportWriter(collector, settings)
    if settings.run.baseline_update:
        wanted[baselines_name] = BaselineWriter(collector, settings)
    return wanted
