"""The collector: gathers each test's report (from this process or, on the xdist controller, from the
workers) and writes the terminal summary. The writers read what it gathered at session end.

It also notes which tests exist, so that after a full run it can name the baseline entries whose test is
gone (syrupy's unused snapshots): they are reported, and removed by a full ``--adv-baseline-update``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pytest

from ..core.report import TestReport, merge_shards, unsharded
from ..core.summary import summary_lines
from .options import Settings


def _is_partial(session: pytest.Session) -> bool:
    """Whether the run looked at only some tests of the modules it collected."""
    option = session.config.option
    selected = any("::" in str(arg) for arg in session.config.args)
    narrowed = any(
        getattr(option, name, None) for name in ("keyword", "markexpr", "deselect", "lf", "stepwise", "exitfirst")
    )
    return selected or narrowed or bool(session.shouldfail) or bool(session.shouldstop)


@dataclass(eq=False)  # registered as a plugin: must stay hashable
class Collector:
    """Test reports in arrival order; ``merged()`` joins the shards of each test."""

    settings: Settings
    reports: list[TestReport] = field(default_factory=list)
    collected: dict[str, set[str]] = field(default_factory=dict)
    """Per module (rootdir-relative path), the names of its collected tests (shards removed)."""
    collection_failed: bool = False
    unused: dict[str, list[str]] = field(default_factory=dict)
    """After a full run: baseline entries whose test is gone, {module: [test, ...]}."""

    def merged(self) -> list[TestReport]:
        return merge_shards(self.reports)

    def _note_collected(self, nodeids: Iterable[str]) -> None:
        for nodeid in nodeids:
            module, _, test = nodeid.partition("::")
            self.collected.setdefault(module, set()).add(unsharded(test))

    def _shown_id(self, nodeid: str) -> str:
        """A test id as pytest shows it in the folder it was started in (ids are rootdir-relative)."""
        module, sep, rest = nodeid.partition("::")
        return self.settings.shown(self.settings.rootpath / module) + sep + rest

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.collection_failed = True

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self._note_collected(item.nodeid for item in session.items)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        self._note_collected(ids)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        data = getattr(report, "adv_robust", None)
        if data is not None and report.when == "call":
            self.reports.append(TestReport.from_wire(data))

    @pytest.hookimpl(tryfirst=True)  # before the writers, which remove what it finds
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if hasattr(session.config, "workerinput") or self.collection_failed or _is_partial(session):
            return
        from ..core.baseline_store import find_unused

        self.unused = find_unused(self.settings.baseline_dir, self.settings.rootpath, self.collected)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.reports:
            terminalreporter.write_sep("-", "adversarial robustness")
            verbosity = terminalreporter.config.get_verbosity()
            shown = [dataclasses.replace(report, nodeid=self._shown_id(report.nodeid)) for report in self.reports]
            for line, colour in summary_lines(shown, verbosity):
                terminalreporter.write_line(line, **({colour: True} if colour else {}))
        if self.unused and not self.settings.run.baseline_update:
            entries = [f"{module}::{test}" for module, tests in sorted(self.unused.items()) for test in tests]
            terminalreporter.write_line(
                f"advrobust: {len(entries)} baseline entr{'y has' if len(entries) == 1 else 'ies have'} no test "
                f"any more (a full --adv-baseline-update removes them): {', '.join(entries)}"
            )


COLLECTOR_KEY: pytest.StashKey[Collector] = pytest.StashKey()
"""config.stash: the test reports gathered in this process (on the xdist controller: from all workers)."""
