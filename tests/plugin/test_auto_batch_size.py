"""--adv-batch-size=auto end to end: in every spelling, its choice shown under -v and in the JSON report,
the printed reproduce command still reproducing; and a model that runs out of memory (simulated without a
GPU: it raises torch.cuda.OutOfMemoryError above a batch size) judged as one that does not."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pytest

CONFTEST = """
import os, pytest, torch
from torch import nn

class RunsOutAbove(nn.Module):  # a device that fits at most MOST rows per forward pass
    def __init__(self, inner, most):
        super().__init__()
        self.inner, self.most = inner, most
    def forward(self, x):
        if x.shape[0] > self.most:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.inner(x)

@pytest.fixture(scope="session")
def adv_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10))
    most = os.environ.get("MOST")
    return model if most is None else RunsOutAbove(model, int(most))

@pytest.fixture
def adv_images():
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, 256, (200, 3, 8, 8), generator=g).float() / 255
"""

TESTS = """
from pytest_advrobust import adv_robust

@adv_robust(attack="bim", steps=3, targets="untargeted")
def test_model():
    pass
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_model=TESTS)
    return pytester


def _report(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, dict[str, Any]]:
    report = Path(pytester.path) / "report.json"
    result = pytester.runpytest("-v", f"--adv-report={report}", *args)
    (entry,) = json.loads(report.read_text())["tests"]
    return result, entry


def _images(entry: dict[str, Any]) -> list[tuple[str, bool, int]]:
    return [(row["name"], row["flipped"], row["adv_label_8bit"]) for row in entry["images"]]


@pytest.mark.parametrize("spelling", [[], ["--adv-batch-size=auto"], ["-o", "adv_batch_size=auto"]])
def test_auto_in_every_spelling_judges_as_one_batch_and_says_what_it_chose(
    project: pytest.Pytester, spelling: list[str]
) -> None:
    result, entry = _report(project, "--adv-epsilon=0.05", *spelling)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["    batch_size=auto on cpu: batches of 32, 64*; *32, 64*"])
    (settings,) = entry["settings"]
    assert "batching" not in settings and "batch_sizes" not in settings, "timing-dependent: kept out of the report"
    _, whole = _report(project, "--adv-epsilon=0.05", "--adv-batch-size=all")
    assert _images(entry) == _images(whole)
    assert 0 < sum(flipped for _, flipped, _ in _images(entry)) < 200


@pytest.mark.parametrize(
    ("given", "spelled"),
    [("--adv-batch-size=16", "--adv-batch-size=16"), ("--adv-batch-size=auto", "--adv-batch-size=auto")],
)
def test_the_reproduce_command_spells_a_batch_size_that_is_not_auto_and_reproduces(
    project: pytest.Pytester, given: str, spelled: str | None
) -> None:
    first = project.runpytest("--adv-epsilon=0.05", given)
    first.assert_outcomes(failed=1)
    line = next(line for line in first.outlines if "reproduce with: " in line)
    command = shlex.split(line.split("reproduce with: ", 1)[1])
    assert command[0] == "pytest"
    # as given (a command-line value overrides the ini file, whatever it is): never a size auto measured
    assert [arg for arg in command if arg.startswith("--adv-batch-size")] == [spelled]
    again = project.runpytest(*command[1:])
    again.assert_outcomes(failed=1)


def test_a_model_that_runs_out_of_memory_is_judged_as_one_that_does_not(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, reference = _report(project, "--adv-epsilon=0.05")
    monkeypatch.setenv("MOST", "10")
    result, entry = _report(project, "--adv-epsilon=0.05")
    result.assert_outcomes(failed=1)
    assert _images(entry) == _images(reference)
    (line,) = [line for line in result.outlines if line.startswith("    batch_size=auto on cpu: ")]
    assert "out of memory at 32 images: halved to 16 and retried" in line
    assert "halved to 8 and retried" in line, line


def test_out_of_memory_at_one_image_fails_the_test_naming_the_setting(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MOST", "0")
    result = project.runpytest("--adv-epsilon=0.05")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*out of memory on cpu attacking one image (image 0) at a time*--adv-batch-size*"])


def test_a_bad_batch_size_is_a_usage_error_naming_auto(project: pytest.Pytester) -> None:
    result = project.runpytest("-o", "adv_batch_size=0")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*adv_batch_size=0*must be ≥ 1, 'auto' or 'all'*"])
