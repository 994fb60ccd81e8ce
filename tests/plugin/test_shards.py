"""Shards: one decorated test over many images becomes N test cases; reports and baselines merge them."""

from __future__ import annotations

import json

import pytest

SHARDED = """
from pytest_advrobust import adv_robust

@adv_robust(epsilon=0.05, shards=3)
def test_many():
    pass
"""


def test_shards_are_separate_test_cases_merged_in_the_summary(project: pytest.Pytester) -> None:
    project.makepyfile(SHARDED)
    result = project.runpytest("-v", "--adv-report=r.json")
    result.stdout.fnmatch_lines(
        [
            "*test_many?shard1of3? *",
            "*test_many?shard2of3? *",
            "*test_many?shard3of3? *",
            "*::test_many: 4 attacked in 3 shards, 3 flipped, 0 misclassified, robust accuracy 25.0% (95% CI 0.6–80.6%)*",
        ]
    )
    data = json.loads((project.path / "r.json").read_text())
    (test,) = data["tests"]
    assert test["nodeid"].endswith("::test_many") and len(test["shards"]) == 3 and test["attacked"] == 4


def test_more_shards_than_images_skip_the_empty_ones(project: pytest.Pytester) -> None:
    project.makepyfile(SHARDED.replace("shards=3", "shards=6"))
    result = project.runpytest("-rs")
    result.assert_outcomes(failed=3, skipped=2, passed=1)
    result.stdout.fnmatch_lines(["*shard 1 of 6 has no images (there are 4)*"])


def test_shards_spread_over_xdist_workers_and_merge_into_one_baseline(project: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    project.makepyfile(SHARDED.replace("epsilon=0.05", "epsilon=0.0"))
    result = project.runpytest_subprocess("-n", "2", "--adv-baseline-update", "--adv-report=r.json")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*::test_many: 4 attacked in 3 shards*"])
    stored = json.loads(
        (
            project.path
            / "advrobust-baselines"
            / "test_shards_spread_over_xdist_workers_and_merge_into_one_baseline.py.json"
        ).read_text()
    )
    assert list(stored["tests"]) == ["test_many"]
    assert len(stored["tests"]["test_many"]["images"]) == 4
    compared = project.runpytest_subprocess("-n", "2")
    compared.assert_outcomes(passed=3)
    compared.stdout.fnmatch_lines(["*baseline: 0 regression(s), 0 improvement(s), 0 known flip(s)*"])


def test_progress_is_shown_per_batch(project: pytest.Pytester) -> None:
    project.makepyfile(SHARDED.replace(", shards=3", ", batch_size=2"))
    result = project.runpytest()
    result.stdout.fnmatch_lines(["advrobust: *::test_many: 2/4 images attacked, * failed so far"])
    assert "4/4 images attacked" not in result.stdout.str()


def test_progress_is_live_for_a_passing_test_too(project: pytest.Pytester) -> None:
    project.makepyfile(SHARDED.replace("epsilon=0.05, shards=3", "epsilon=0.0, batch_size=1"))
    result = project.runpytest()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["advrobust: *::test_many: 1/4 images attacked, 0 failed so far", "*3/4 images*"])
    assert "Captured stdout" not in result.stdout.str()
    quiet = project.runpytest("-q")
    assert "images attacked" not in quiet.stdout.str()
