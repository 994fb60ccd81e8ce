"""GitHub Actions annotations: on a runner (``GITHUB_ACTIONS=true``) a failing robustness test (its marker's
verdict, or ``assert_robust()``) also shows as an error on its ``def`` line, with its failure message, in
the run's summary and the pull request's diff.

The command is built where the test ran (it travels on the report from a pytest-xdist worker) and printed
once, by the process that shows the terminal summary.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ..core.errors import NotRobustError
from ..core.results.github import error_command
from .judge import VERDICT_KEY

ANNOTATIONS_NAME = "advrobust-github-annotations"
MESSAGE_LINES = 25
"""An annotation shows the failure message's first lines (the headline first); the log has the rest."""


def def_line(item: pytest.Item) -> int:
    """The 1-based line of the test function's ``def`` (below its decorators), or pytest's own location."""
    fallback = (item.location[1] or 0) + 1
    function = getattr(item, "function", None)
    if function is None:
        return fallback
    try:
        lines, first = inspect.getsourcelines(inspect.unwrap(function))
    except (OSError, TypeError):
        return fallback
    for offset, text in enumerate(lines):
        if text.lstrip().startswith(("def ", "async def ")):
            return first + offset
    return first


def _failure(item: pytest.Item, call: pytest.CallInfo[None]) -> str | None:
    """The robustness failure of a test: its marker's verdict, or a ``NotRobustError`` it raised
    (``adv_attack(...).assert_robust()``); None for any other outcome."""
    verdict = item.stash.get(VERDICT_KEY, None)
    if verdict is not None and verdict.message is not None:
        return verdict.message
    if call.excinfo is not None and isinstance(call.excinfo.value, NotRobustError):
        return str(call.excinfo.value)
    return None


def _message(text: str) -> str:
    """The failure message without its list of images that held (what a reviewer of the diff needs is
    what failed), cut after :data:`MESSAGE_LINES` lines."""
    lines: list[str] = []
    in_held = False
    for line in text.splitlines():
        if not line.startswith(" "):
            in_held = line.startswith("held (")
        if not in_held:
            lines.append(line)
    cut = len(lines) - MESSAGE_LINES
    return "\n".join(lines[:MESSAGE_LINES] + ([f"… {cut} more line(s) in the job's log"] if cut > 0 else []))


@dataclass(eq=False)  # registered as a plugin: must stay hashable
class GithubAnnotations:
    """Registered when ``GITHUB_ACTIONS=true``; ``workspace`` is the repository root the paths start from."""

    workspace: Path
    commands: list[str] = field(default_factory=list)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        message = _failure(item, call) if call.when == "call" else None
        if message is not None:
            # both resolved: a workspace reached through a symlink still gives the repository's own path
            file = Path(os.path.relpath(os.path.realpath(item.path), os.path.realpath(self.workspace))).as_posix()
            command = error_command(
                _message(message), file=file, line=def_line(item), title=f"adversarial robustness: {item.name}"
            )
            report.adv_robust_annotation = command  # type: ignore[attr-defined]
        return report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        command = getattr(report, "adv_robust_annotation", None)
        if command is not None and report.failed:
            self.commands.append(command)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        for command in self.commands:
            terminalreporter.write_line(command)
