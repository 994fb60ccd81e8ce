"""The collector: gathers each test's report (from this process or, on the xdist controller, from the
workers) and writes the terminal summary. The writers read what it gathered at session end."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from ..core.report import TestReport, merge_shards
from ..core.summary import summary_lines


@dataclass(eq=False)  # registered as a plugin: must stay hashable
class Collector:
    """Test reports in arrival order; ``merged()`` joins the shards of each test."""

    reports: list[TestReport] = field(default_factory=list)

    def merged(self) -> list[TestReport]:
        return merge_shards(self.reports)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        data = getattr(report, "adv_robust", None)
        if data is not None and report.when == "call":
            self.reports.append(TestReport.from_wire(data))

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.reports:
            terminalreporter.write_sep("-", "adversarial robustness")
            for line in summary_lines(self.reports):
                terminalreporter.write_line(line)
