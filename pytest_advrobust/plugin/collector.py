"""The collector: gathers each test's report (from this process or, on the xdist controller, from the
workers) and writes the terminal summary. The writers read what it gathered at session end.

It also notes which tests exist, so that after a full run it can name the baseline entries whose test is
gone (syrupy's unused snapshots): they are reported, and removed by a full ``--adv-baseline-update``.

And it notes which shards of a sharded test were selected, so that a shard that never reported (its
xdist worker crashed, its set-up failed, the run stopped early) is named: such a test is red, and the
baseline writer leaves its entry alone. A shard pytest skipped (one with no images) is not missing.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import pytest

from ..core.results.report import TestReport, merge_shards
from ..core.results.shards import Shard, ShardFaults
from ..core.results.summary import summary_lines, unused_text
from .options import Settings
from .sharding import item_shard, report_shard


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
    collected_ids: dict[str, None] = field(default_factory=dict)
    """The node ids of the collected items (on the xdist controller: the workers'), in order."""
    shards: dict[str, Shard] = field(default_factory=dict)
    """The plugin's own shards among them, by node id: from the items, or from the reports workers send."""
    collection_failed: bool = False
    unused: dict[str, list[str]] = field(default_factory=dict)
    """After a full run: baseline entries whose test is gone, {module: [test, ...]}."""
    accounted: set[str] = field(default_factory=set)
    """Node ids that sent results, or that pytest skipped."""
    complete: bool = False
    """At session end: whether the run looked at every test it collected (no -k, no -x stop, no
    collection error): only then are baseline entries without a test unused."""
    exit_status: int = 0
    """At session end: pytest's exit status as the tests left it."""
    judged: set[str] = field(default_factory=set)
    """Sharded tests (node ids without the shard) whose images were judged together, once all reported."""

    def merged(self) -> list[TestReport]:
        """One report per test, shards joined; a test with shards missing is marked failed."""
        return self.shard_faults().judged(self.reports)

    def expected_shards(self) -> dict[str, Shard]:
        """Every shard this run selected of each test the plugin split (those of one it knows, selected)."""
        tests: dict[str, Shard] = {}
        for shard in self.shards.values():
            tests.setdefault(shard.test, shard)
        return {
            sibling.nodeid: sibling
            for shard in tests.values()
            for sibling in shard.siblings()
            if sibling.nodeid in self.collected_ids
        }

    def shard_faults(self) -> ShardFaults:
        """The tests some of whose selected shards sent nothing while others reported."""
        return ShardFaults.find(self.reports, self.expected_shards(), self.accounted)

    def collected(self) -> dict[str, set[str]]:
        """Per module (rootdir-relative path), the names of its collected tests (shards joined)."""
        tests: dict[str, set[str]] = {}
        for nodeid in self.collected_ids:
            shard = self.shards.get(nodeid)
            module, _, test = (shard.test if shard is not None else nodeid).partition("::")
            tests.setdefault(module, set()).add(test)
        return tests

    def shown_id(self, nodeid: str) -> str:
        """A test id as pytest shows it in the folder it was started in (ids are rootdir-relative)."""
        module, sep, rest = nodeid.partition("::")
        return self.settings.shown(self.settings.rootpath / module) + sep + rest

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.collection_failed = True

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        for item in session.items:
            self.collected_ids[item.nodeid] = None
            shard = item_shard(item)
            if shard is not None:
                self.shards[item.nodeid] = shard

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        self.collected_ids.update(dict.fromkeys(ids))  # which of them are shards, their reports say

    @pytest.hookimpl(tryfirst=True)  # before the terminal, JUnit XML and the session count the outcome
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        shard = report_shard(report)
        if shard is not None:
            self.shards.setdefault(report.nodeid, shard)
        data = getattr(report, "adv_robust", None)
        if data is not None and report.when == "call":
            self.reports.append(TestReport.from_wire(data))
            self.accounted.add(report.nodeid)
            self._judge_whole(report)
        elif report.skipped:
            self.accounted.add(report.nodeid)
            self._judge_whole(report)

    def _judge_whole(self, report: pytest.TestReport) -> None:
        """A sharded test's gates on its images together (:mod:`~pytest_advrobust.core.results.gates`), once
        all its selected shards reported: the last one to report fails with their message. A job of a CI
        matrix has one shard of each test: the merge judges those."""
        shard = self.shards.get(report.nodeid)
        if shard is None or self.settings.run.shard is not None or shard.test in self.judged:
            return
        test = shard.test
        selected = {nodeid for nodeid, each in self.expected_shards().items() if each.test == test}
        if not selected or not selected <= self.accounted:
            return
        self.judged.add(test)
        shards = [part for part in self.reports if part.test_id == test]
        if not shards:
            return
        from ..core.results.gates import whole_test_failure
        from .commands import whole_command

        (whole,) = merge_shards(shards)
        runs = [run for part in shards if part.nodeid == report.nodeid for run in part.marker_runs]
        command = whole_command(runs[0].settings.reproduce or "", shard) if runs else ""
        shown_test = dataclasses.replace(whole, nodeid=self.shown_id(test))
        message = whole_test_failure(shown_test, len(selected), shard.count, command)
        if message is None:
            return
        if report.failed:  # failed on its own already: the whole test's verdict is added to its output
            report.sections.append(("adv_robust: all shards", message))
        else:
            report.outcome = "failed"
            report.longrepr = message
        last = next(part for part in reversed(self.reports) if part.test_id == test)
        last.failed = True

    @pytest.hookimpl(tryfirst=True)  # before the writers, which remove what it finds
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        self.complete = not (self.collection_failed or _is_partial(session))
        self.exit_status = int(session.exitstatus)
        if hasattr(session.config, "workerinput") or not self.complete or self.settings.run.shard is not None:
            return  # a job of a matrix runs only some tests: the merge finds the unused entries
        from ..core.baselines.store import find_unused

        self.unused = find_unused(self.settings.baseline_dir, self.settings.rootpath, self.collected())

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.reports:
            terminalreporter.write_sep("-", "adversarial robustness")
            verbosity = terminalreporter.config.get_verbosity()
            shown = [dataclasses.replace(report, nodeid=self.shown_id(report.nodeid)) for report in self.merged()]
            for line, colour in summary_lines(shown, verbosity):
                terminalreporter.write_line(line, **({colour: True} if colour else {}))
            faults = self.shard_faults()
            for test in faults.tests():
                terminalreporter.write_line(
                    f"advrobust: {self.shown_id(test)}: {faults.text(test)}; the counts above are the other "
                    "shards' only",
                    red=True,
                )
        if self.unused and not self.settings.run.baseline_update:
            terminalreporter.write_line(f"advrobust: {unused_text(self.unused)}")


COLLECTOR_KEY: pytest.StashKey[Collector] = pytest.StashKey()
"""config.stash: the test reports gathered in this process (on the xdist controller: from all workers)."""
