"""A shard that never reports (its xdist worker died): the test is red, the summary and the JSON report
name the missing shard, and a baseline update leaves the test's stored entry exactly as it was."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("xdist")

CRASHING_CONFTEST = """
import os
from pathlib import Path

import pytest, torch
from torch import nn

RETRAINED = Path("retrained")
CURRENT = [""]

@pytest.fixture(autouse=True)
def _current_test(request):
    CURRENT[0] = request.node.name


class Model(nn.Module):
    # once retrained, the xdist worker that attacks shard 2 dies (as if killed for memory) when it calls it

    def __init__(self, seed):
        super().__init__()
        torch.manual_seed(seed)
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10))

    def forward(self, x):
        if RETRAINED.exists() and "shard2of2" in CURRENT[0] and os.environ.get("PYTEST_XDIST_WORKER"):
            os._exit(1)
        return self.net(x)


@pytest.fixture(scope="session")
def adv_model():
    return Model(1 if RETRAINED.exists() else 0)


@pytest.fixture
def adv_images():
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, 256, (8, 3, 8, 8), generator=g).float() / 255
"""

TESTS = """
from pytest_advrobust import adv_robust

@adv_robust(epsilon=0.05)
def test_many():
    pass
"""


def test_a_crashed_shard_is_named_and_its_baseline_entry_is_left_alone(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CRASHING_CONFTEST)
    pytester.makepyfile(test_model=TESTS)
    update = ("-n", "2", "--adv-shards=2", "--adv-baseline-update", "--adv-report=r.json")
    recorded = pytester.runpytest("--adv-shards=2", "--adv-baseline-update")  # in this process: no crash
    recorded.assert_outcomes(passed=2)
    baseline = pytester.path / "advrobust-baselines" / "test_model.py.json"
    before = baseline.read_bytes()
    assert len(json.loads(before)["tests"]["test_many"]["images"]) == 8

    (pytester.path / "retrained").write_text("")
    result = pytester.runpytest_subprocess(*update)
    result.assert_outcomes(passed=1, failed=1)  # xdist fails the item its worker was running
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*crashed while running*test_many?shard2of2?*",
            "test_model.py::test_many: 4 attacked in 1 shard, *",
            "advrobust: test_model.py::test_many: shard 2 of 2 did not report; the counts above are the other "
            "shards' only",
            "advrobust: baseline of test_model.py::test_many left as it was: shard 2 of 2 did not report",
        ]
    )
    assert baseline.read_bytes() == before, "no mix of the new model's rows (shard 1) and the old one's (shard 2)"
    assert "    baseline: left as it was: shard 2 of 2 did not report" in result.stdout.str(), "not 'recorded'"
    report = json.loads((pytester.path / "r.json").read_text())
    assert report["missing_shards"] == {"test_model.py::test_many": ["test_model.py::test_many[shard2of2]"]}


def test_a_skipped_empty_shard_is_not_missing(project: pytest.Pytester) -> None:
    project.makepyfile(TESTS)
    result = project.runpytest("--adv-shards=6", "--adv-baseline-update")
    result.assert_outcomes(passed=4, skipped=2)
    assert "did not report" not in result.stdout.str()
    baseline = project.path / "advrobust-baselines" / "test_a_skipped_empty_shard_is_not_missing.py.json"
    stored = json.loads(baseline.read_text())
    assert len(stored["tests"]["test_many"]["images"]) == 4


def test_shards_left_out_on_purpose_are_not_missing(project: pytest.Pytester) -> None:
    project.makepyfile(TESTS)
    result = project.runpytest("--adv-shards=2", "--adv-baseline-update", "-k", "shard1of2")
    result.assert_outcomes(passed=1, deselected=1)
    assert "did not report" not in result.stdout.str()
    result.stdout.fnmatch_lines(["advrobust: baseline written to *"])
