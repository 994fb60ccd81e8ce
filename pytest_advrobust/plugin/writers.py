"""Writers that run at session end, each registered only when its option is set (as pytest registers
``LogXML`` only for ``--junitxml``): the JSON report, the HTML report, the Markdown summary (to a file,
and appended to GitHub's job summary), and the baseline files.

On pytest-xdist workers they write nothing; the controller, which receives every report, writes once.
Each writer fails alone: a file it cannot write is one line in the terminal summary (which file, and why),
the other writers still write theirs, and a run that was otherwise green exits with status 1
(``session.exitstatus``, as pytest-cov fails a run under its coverage threshold): a report that was asked
for and not written must not look green.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ..core.display import shown
from ..core.errors import AdvRobustError
from ..core.jsonfile import write_text
from ..core.results.summary import removed_text
from .collector import Collector
from .options import Settings


def _is_worker(session: pytest.Session) -> bool:
    return hasattr(session.config, "workerinput")


def _why(exc: OSError | AdvRobustError, target: Path, settings: Settings) -> str:
    """``[Errno 13] Permission denied``, naming the file that failed only when it is not ``target``."""
    cause = exc if isinstance(exc, OSError) else exc.__cause__
    if not isinstance(cause, OSError) or cause.strerror is None:
        return str(exc)
    why = f"[Errno {cause.errno}] {cause.strerror}"
    failed = cause.filename
    if failed is not None and Path(failed) != target and Path(failed).parent != target.parent:
        why += f": {settings.shown(failed)}"
    return why


@dataclass(eq=False)
class _Writer:
    collector: Collector
    settings: Settings
    written: list[Path] = field(default_factory=list)
    failure: str | None = None
    """Why the file could not be written (None: it was, or was not due)."""
    what = "file"

    @property
    def target(self) -> Path:
        """The file (or folder) this writer writes, as a failure names it."""
        raise NotImplementedError

    def write(self) -> list[Path]:
        raise NotImplementedError

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if _is_worker(session):
            return
        try:
            self.written = self.write()
        except (OSError, AdvRobustError) as exc:  # the others still write; the summary says what failed
            target = self.target
            self.failure = (
                f"could not write the {self.what} to {self.settings.shown(target)}: {_why(exc, target, self.settings)}"
            )
            if session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        for path in self.written:
            terminalreporter.write_line(f"advrobust: {self.what} written to {self.settings.shown(path)}")
        if self.failure is not None:
            terminalreporter.write_line(f"advrobust: {self.failure}", red=True)


@dataclass(eq=False)
class JsonReportWriter(_Writer):
    """``--adv-report=FILE``: every attacked image of the session. A job of a CI matrix (``--adv-shard``)
    adds what the merge needs, and prints the merge command."""

    what = "JSON report"

    @property
    def target(self) -> Path:
        assert self.settings.run.report is not None
        return self.settings.run.report

    def write(self) -> list[Path]:
        from ..core.results.summary import write_report

        header = {**self.settings.header(), **self.collector.shard_faults().header()}
        if self.settings.run.shard is None:
            write_report(self.target, self.collector.merged(), header)
            return []  # the JSON report is named on the command line; no line about it
        from ..core.results.merge import SHARD_KEY
        from .matrix import shard_job

        header[SHARD_KEY] = shard_job(self.settings, self.collector).to_json()
        write_report(self.target, self.collector.merged(), header)
        return [self.target]  # named for the shard: the line says where

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        super().pytest_terminal_summary(terminalreporter)
        if self.written and self.settings.run.shard is not None:
            from .matrix import merge_command

            shard = self.settings.run.shard
            terminalreporter.write_line(
                f"advrobust: job {shard.index} of {shard.count}; once every job has run, one verdict from their "
                f"reports: {shown(merge_command(self.settings))}"
            )


@dataclass(eq=False)
class HtmlReportWriter(_Writer):
    """``--adv-html=FILE``: one self-contained page."""

    what = "HTML report"

    @property
    def target(self) -> Path:
        assert self.settings.run.html is not None
        return self.settings.run.html

    def write(self) -> list[Path]:
        from ..core.results.html_report import render_html

        write_text(self.target, render_html(self.collector.merged(), self.settings.header()))
        return [self.target]


@dataclass(eq=False)
class MarkdownWriter(_Writer):
    """``--adv-markdown=FILE``: the summary GitHub shows, as a file anywhere."""

    what = "Markdown summary"
    full_reports: tuple[str, ...] = ()
    """The files of this run that list every image, named where the summary's table is cut."""

    @property
    def target(self) -> Path:
        assert self.settings.run.markdown is not None
        return self.settings.run.markdown

    def text(self) -> str:
        from ..core.results.markdown import render_markdown

        return render_markdown(self.collector.merged(), self.settings.header(), self.full_reports)

    def write(self) -> list[Path]:
        write_text(self.target, self.text())
        return [self.target]


@dataclass(eq=False)
class GithubSummaryWriter(MarkdownWriter):
    """GitHub Actions: the summary appended to the step's ``$GITHUB_STEP_SUMMARY`` file (other steps and
    other pytest runs of the step keep theirs), when robustness tests ran."""

    path: Path = field(kw_only=True)
    """The step's summary file, from ``$GITHUB_STEP_SUMMARY``."""
    what = "job summary"

    @property
    def target(self) -> Path:
        return self.path

    def write(self) -> list[Path]:
        from ..core.results.github import append_step_summary

        if not self.collector.reports:
            return []
        append_step_summary(self.path, self.text())
        return [self.path]

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.written:
            terminalreporter.write_line("advrobust: summary appended to $GITHUB_STEP_SUMMARY (the run's page)")
        if self.failure is not None:
            terminalreporter.write_line(f"advrobust: {self.failure} ($GITHUB_STEP_SUMMARY)", red=True)


@dataclass(eq=False)
class BaselineWriter(_Writer):
    """``--adv-baseline-update``: the recorded images merged into the baseline files once, image by image;
    after a full run, entries whose test is gone are removed. A test some of whose shards did not report
    (a crashed xdist worker, a failed set-up) keeps its stored entry as it was: the shards that did report
    would otherwise mix new rows with old ones."""

    what = "baseline"
    removed: dict[str, list[str]] = field(default_factory=dict)
    """The entries removed because their test is gone, {module: [test, ...]}."""
    kept: list[str] = field(default_factory=list)
    """Lines about the tests whose entry was left alone because shards are missing."""

    @property
    def target(self) -> Path:
        return self.settings.baseline_dir

    def write(self) -> list[Path]:
        from ..core.baselines.store import kept_text, recorded_updates, write_baselines

        updates, kept = recorded_updates(self.collector.merged())
        self.kept = [kept_text(self.collector.shown_id(test.nodeid), test) for test in kept]
        unused = self.collector.unused
        written = write_baselines(self.settings.baseline_dir, updates, unused) if updates or unused else []
        self.removed = unused
        return written

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        super().pytest_terminal_summary(terminalreporter)
        for line in self.kept:
            terminalreporter.write_line(f"advrobust: {line}", red=True)
        if self.removed:
            terminalreporter.write_line(f"advrobust: {removed_text(self.removed)}")


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
    if run.baseline_update and run.shard is None:  # a matrix's job: the updates go into its report
        wanted[baselines_name] = BaselineWriter(collector, settings)
    return wanted
