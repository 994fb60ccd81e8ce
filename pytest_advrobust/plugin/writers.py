"""Writers that run at session end, each registered only when its option is set (as pytest registers
``LogXML`` only for ``--junitxml``): the JSON report, the HTML report, the Markdown summary (to a file,
and appended to GitHub's job summary), and the baseline files.

On pytest-xdist workers they write nothing; the controller, which receives every report, writes once.
"""

from __future__ import annotations

from collections.abc import Mapping
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
class MarkdownWriter(_Writer):
    """``--adv-markdown=FILE``: the summary GitHub shows, as a file anywhere."""

    what = "Markdown summary"
    full_reports: tuple[str, ...] = ()
    """The files of this run that list every image, named where the summary's table is cut."""

    def text(self) -> str:
        from ..core.markdown import render_markdown

        return render_markdown(self.collector.reports, self.settings.header(), self.full_reports)

    def write(self) -> list[Path]:
        path = self.settings.run.markdown
        assert path is not None
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.text(), encoding="utf-8")
        return [path]


@dataclass(eq=False)
class GithubSummaryWriter(MarkdownWriter):
    """GitHub Actions: the summary appended to the step's ``$GITHUB_STEP_SUMMARY`` file (other steps and
    other pytest runs of the step keep theirs), when robustness tests ran."""

    path: Path = field(kw_only=True)
    """The step's summary file, from ``$GITHUB_STEP_SUMMARY``."""

    def write(self) -> list[Path]:
        if not self.collector.reports:
            return []
        separator = "\n" if self.path.exists() and self.path.stat().st_size else ""
        with self.path.open("a", encoding="utf-8") as summary:
            summary.write(separator + self.text())
        return [self.path]

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.written:
            terminalreporter.write_line("advrobust: summary appended to $GITHUB_STEP_SUMMARY (the run's page)")


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


WRITER_NAMES = (
    "advrobust-json",
    "advrobust-html",
    "advrobust-markdown",
    "advrobust-github-summary",
    "advrobust-baselines",
)
"""The plugin names the writers are registered under (and unregistered by, in pytest_unconfigure)."""


def writers_for(
    settings: Settings, collector: Collector, environ: Mapping[str, str], pytest_html: str | None = None
) -> dict[str, _Writer]:
    """The writers the options (and, for GitHub's job summary, the environment) ask for, by plugin name.

    ``pytest_html``: the file pytest-html writes (``--html``), named by the summaries as a full report.
    """
    json_name, html_name, markdown_name, github_name, baselines_name = WRITER_NAMES
    run = settings.run
    full_reports = tuple(settings.shown(path) for path in (run.html, run.report) if path is not None)
    full_reports += (pytest_html,) if pytest_html else ()
    wanted: dict[str, _Writer] = {}
    if run.report is not None:
        wanted[json_name] = JsonReportWriter(collector, settings)
    if run.html is not None:
        wanted[html_name] = HtmlReportWriter(collector, settings)
    if run.markdown is not None:
        wanted[markdown_name] = MarkdownWriter(collector, settings, full_reports=full_reports)
    step_summary = environ.get("GITHUB_STEP_SUMMARY")
    if run.github_summary and step_summary:
        wanted[github_name] = GithubSummaryWriter(
            collector, settings, full_reports=full_reports, path=Path(step_summary)
        )
    if run.baseline_update:
        wanted[baselines_name] = BaselineWriter(collector, settings)
    return wanted
