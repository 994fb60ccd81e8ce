"""examples/ci/github-actions-matrix.yml: its own commands, run here as the workflow runs them (the shard
jobs one after another, then the verdict job's merge), give the report, HTML, job summary and baseline
file one process gives, byte for byte; and the gate then passes against the baselines it recorded."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from helpers import WEAK_AND_STRONG_TESTS

yaml = pytest.importorskip("yaml", reason="PyYAML is in the test extra: pip install -e '.[test]'")

ROOT = Path(__file__).parents[2]
WORKFLOW = ROOT / "examples" / "ci" / "github-actions-matrix.yml"
BASELINE = Path("advrobust-baselines") / "test_the_matrix_commands_give_what_one_process_gives.py.json"
MERGED = ("reports/robustness.json", "reports/robustness.html", "summary.md", str(BASELINE))
"""What the verdict job publishes, and one process writes."""


def _workflow() -> dict[str, Any]:
    workflow: dict[str, Any] = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    return workflow


def _step(job: str, command: str) -> dict[str, Any]:
    """The step of ``job`` whose command starts with ``command``."""
    steps = _workflow()["jobs"][job]["steps"]
    (step,) = [step for step in steps if step.get("run", "").startswith(command)]
    return dict(step)


def _evaluated(text: str, context: dict[str, str]) -> str:
    """``${{ matrix.shard }}`` and the like, as the runner fills them in (only plain names are used)."""
    return re.sub(r"\$\{\{\s*([\w.-]+)\s*\}\}", lambda found: context[found[1]], text)


def _bash(command: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """A step's command as the runner's bash runs it, with this interpreter first on the PATH."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return subprocess.run(["bash", "-e", "-c", command], cwd=cwd, env={**os.environ, "PATH": path, **env},
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def _pytest_args(step: dict[str, Any], context: dict[str, str], cwd: Path) -> list[str]:
    """The arguments the step's bash gives ``pytest`` (its variables and quotes expanded), so that the run
    itself can be pytester's, in this process."""
    env = {name: _evaluated(str(value), context) for name, value in step.get("env", {}).items()}
    spy = 'pytest() { printf "%s\\0" "$@"; }\n'
    done = _bash(spy + step["run"], cwd, env)
    assert done.returncode == 0, done.stderr
    return done.stdout.split("\0")[:-1]


def _shards() -> list[int]:
    shards: list[int] = _workflow()["jobs"]["shard"]["strategy"]["matrix"]["shard"]
    return shards


def _run_matrix(project: pytest.Pytester, record: bool) -> subprocess.CompletedProcess[str]:
    """The shard jobs one after another, then the verdict job's merge (its downloads: the reports are
    where the jobs wrote them)."""
    gate = _step("shard", "pytest ")
    for shard in _shards():
        context = {"matrix.shard": str(shard), "inputs.record-baselines": "true" if record else ""}
        project.runpytest(*_pytest_args(gate, context, project.path))
    assert not (project.path / "advrobust-baselines").exists() or not record, "the jobs record into their reports"
    merge = _step("verdict", "python -m pytest_advrobust merge ")
    return _bash(merge["run"], project.path, {"GITHUB_STEP_SUMMARY": str(project.path / "summary.md")})


def test_the_workflow_is_a_matrix_and_a_verdict() -> None:
    workflow = _workflow()
    assert {"push", "pull_request", "workflow_dispatch"} <= set(workflow[True])  # YAML 1.1 reads `on` as true
    assert workflow["permissions"] == {"contents": "read"}
    shard, verdict = workflow["jobs"]["shard"], workflow["jobs"]["verdict"]
    count = len(_shards())
    assert shard["strategy"]["fail-fast"] is False and _shards() == list(range(1, count + 1))
    assert f'--adv-shard="$SHARD/{count}"' in _step("shard", "pytest ")["run"]
    assert f"robustness.shard*of{count}.json" in _step("verdict", "python -m pytest_advrobust merge ")["run"]
    upload = next(step for step in shard["steps"] if step.get("uses", "").startswith("actions/upload-artifact@"))
    download = next(step for step in verdict["steps"] if step.get("uses", "").startswith("actions/download-artifact@"))
    assert upload["with"]["name"] == "robustness-shard-${{ matrix.shard }}"
    assert download["with"] == {"pattern": "robustness-shard-*", "path": "reports/", "merge-multiple": True}
    assert verdict["needs"] == "shard" and verdict["if"] == "${{ !cancelled() }}", "a red shard still gets a verdict"


def test_the_ci_guide_shows_the_same_commands() -> None:
    guide = (ROOT / "docs" / "guides" / "ci.md").read_text(encoding="utf-8")
    section = guide.split("\n### A matrix of jobs\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    assert block is not None
    commands = [_step("shard", "pytest ")["run"], _step("verdict", "python -m pytest_advrobust merge ")["run"]]
    assert block.group(1).strip().splitlines() == [command.strip() for command in commands]


def test_the_matrix_commands_give_what_one_process_gives(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.makepyfile(WEAK_AND_STRONG_TESTS)
    one = project.path / "one-process"
    # one process: the shard job's command with all the shards (--adv-shards=N) instead of one (--adv-shard=K/N)
    args = _pytest_args(
        _step("shard", "pytest "), {"matrix.shard": "1", "inputs.record-baselines": "true"}, project.path
    )
    single = [f"--adv-shards={len(_shards())}" if arg.startswith("--adv-shard=") else arg for arg in args]
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(project.path / "summary.md"))
    project.runpytest(*single).assert_outcomes(passed=2 * len(_shards()))
    monkeypatch.delenv("GITHUB_STEP_SUMMARY")
    for name in ("reports", "advrobust-baselines", "summary.md"):
        shutil.move(project.path / name, one / name)

    recorded = _run_matrix(project, record=True)

    assert recorded.returncode == 0, recorded.stdout + recorded.stderr
    assert (
        "advrobust merge: 2 test(s) from 4 job report(s): 3 of 8 image(s) flipped, 0 test(s) failed" in recorded.stdout
    )
    for name in MERGED:
        assert (project.path / name).read_bytes() == (one / name).read_bytes(), name

    (project.path / "summary.md").unlink()
    gate = _run_matrix(project, record=False)  # the recorded baselines committed: test_weak's flips are known

    assert gate.returncode == 0, gate.stdout + gate.stderr
    assert "3 of 8 image(s) flipped, 0 test(s) failed; green" in gate.stdout
    assert "3 known flip(s)" in (project.path / "summary.md").read_text(encoding="utf-8")
