"""examples/ci/github-actions.yml: it parses, the README shows its commands, and its gate command runs; and
every workflow in examples/ is one zizmor (the GitHub Actions security linter) finds nothing in."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from helpers import WEAK_AND_STRONG_TESTS

yaml = pytest.importorskip("yaml", reason="PyYAML is in the test extra: pip install -e '.[test]'")

ROOT = Path(__file__).parents[2]
WORKFLOW = ROOT / "examples" / "ci" / "github-actions.yml"
WORKFLOWS = sorted(path for path in (ROOT / "examples").rglob("*.y*ml") if "jobs" in yaml.safe_load(path.read_text()))


def _steps() -> list[dict[str, Any]]:
    workflow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as true
    assert {"push", "pull_request"} <= set(triggers)
    (job,) = workflow["jobs"].values()
    assert job["runs-on"] == "ubuntu-latest"
    steps: list[dict[str, Any]] = job["steps"]
    return steps


def _commands() -> list[str]:
    return [step["run"].strip() for step in _steps() if "run" in step]


def test_the_workflow_is_copy_ready() -> None:
    steps = {step.get("uses", step.get("name", "")).split("@")[0]: step for step in _steps()}
    assert "actions/checkout" in steps
    assert steps["actions/setup-python"]["with"]["cache"] == "pip"
    upload = steps["actions/upload-artifact"]
    assert upload["if"] == "always()", "the reports are uploaded when the gate is red too"
    gate = next(command for command in _commands() if command.startswith("pytest "))
    folders = {Path(arg.partition("=")[2]).parent.as_posix() for arg in shlex.split(gate) if "html=" in arg}
    assert folders == {upload["with"]["path"].rstrip("/")}, "the HTML reports are in the uploaded folder"


def test_every_example_workflow_is_safe_to_copy() -> None:
    """No finding (pinned actions, no persisted credentials, least permissions...), ignore comments not honoured."""
    zizmor = shutil.which("zizmor", path=str(Path(sys.executable).parent)) or shutil.which("zizmor")
    if zizmor is None:
        pytest.skip("zizmor is in the test extra: pip install -e '.[test]'")
    assert {path.name for path in WORKFLOWS} >= {"github-actions.yml", "github-actions-matrix.yml"}
    done = subprocess.run([zizmor, "--offline", "--no-ignores", "--no-progress", "--color=never", *map(str, WORKFLOWS)],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No findings" in done.stdout


def test_the_readme_shows_the_same_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## CI\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    assert block is not None
    assert block.group(1).strip().splitlines() == _commands()


def test_the_gate_command_runs_against_committed_baselines(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("pytest_html", reason="the workflow installs pytest-html")
    project.makepyfile(WEAK_AND_STRONG_TESTS)
    project.runpytest("--adv-baseline-update").assert_outcomes(passed=2)  # what a project commits
    summary = project.path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    gate = next(command for command in _commands() if command.startswith("pytest "))
    result = project.runpytest(*shlex.split(gate)[1:])
    result.assert_outcomes(passed=2)  # test_weak's three flips are known to its baseline
    assert sorted(path.name for path in (project.path / "reports").iterdir()) == [
        "pytest.html",
        "robustness.html",
        "robustness.json",
    ]
    text = summary.read_text(encoding="utf-8")
    assert re.search(
        r"\| ⚠️ \| \S+::test\\_weak \| 4 \| 3 \| 0 \| 25\.0% \(95% CI 0\.6–80\.6%\) \| .*3 known flip", text
    ), text
    assert "| baseline |" in text
