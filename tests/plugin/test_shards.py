"""Shards: one decorated test over many images becomes N test cases; reports and baselines merge them."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from helpers import color_net_conftest, color_project

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


NAMED_LIKE_SHARDS = """
from pytest_advrobust import adv_robust

@adv_robust(images="imgs/red")
def test_data_shard1of3():
    pass

@adv_robust(images="imgs/green")
def test_data_shard2of3():
    pass
"""


@pytest.mark.parametrize("shards", [1, 2])
def test_tests_named_like_shards_are_tests_of_their_own(pytester: pytest.Pytester, shards: int) -> None:
    """Only what the plugin itself split is a shard: two tests whose names end in shardKofN keep their own
    verdicts, summary lines and baseline entries (they were once one test, ``test_data_``, the second's rows
    replacing the first's, so the first's regressions went unseen)."""
    images = {"red/r1.png": (130, 120, 110), "red/r2.png": (131, 120, 110), "green/g1.png": (60, 200, 60),
              "green/g2.png": (50, 210, 60)}  # fmt: skip
    project = color_project(
        pytester, color_net_conftest('{"a": [0.0, 0.0, 0.0], "b": [0.0, 0.38, 0.0]}'), NAMED_LIKE_SHARDS, {}
    )
    for folder in ("red", "green"):
        (project.path / "imgs" / folder).mkdir()
    for name, rgb in images.items():
        write_color(project.path / "imgs" / name, rgb)
    spread = [f"--adv-shards={shards}"]
    project.runpytest("--adv-baseline-update", *spread).assert_outcomes(passed=2 * shards)
    stored = json.loads((project.path / "advrobust-baselines" / "test_model.py.json").read_text())
    assert sorted(stored["tests"]) == ["test_data_shard1of3", "test_data_shard2of3"]
    assert sorted(stored["tests"]["test_data_shard1of3"]["images"]) == ["r1.png", "r2.png"]
    result = project.runpytest("--which=b", *spread)  # the retrained model flips the red images
    result.assert_outcomes(failed=shards, passed=shards)
    result.stdout.fnmatch_lines(
        [
            "test_model.py::test_data_shard1of3: 2 attacked*, 2 flipped, *",
            "    baseline: 2 regression(s), 0 improvement(s), 0 known flip(s)*",
            "test_model.py::test_data_shard2of3: 2 attacked*, 0 flipped, *",
            "    baseline: 0 regression(s), 0 improvement(s), 0 known flip(s)*",
        ]
    )


def write_color(path, rgb) -> None:
    Image.fromarray(np.full((8, 8, 3), rgb, dtype=np.uint8)).save(path)


@pytest.mark.parametrize(
    ("option", "says"),
    [
        ("--adv-shards=1000000000", "--adv-shards=1000000000: must be ≤ 1000 (each shard is a test case of its own)"),
        ("--adv-shard=1/1000000000", "--adv-shard=1/1000000000: must be K/N with N ≤ 1000"),
        ("--adv-shard=1/" + "9" * 5000, "must be K/N, this job's number K of N jobs"),
    ],
)
def test_a_shard_count_without_bound_is_a_usage_error(project: pytest.Pytester, option: str, says: str) -> None:
    project.makepyfile(SHARDED)
    result = project.runpytest(option)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert says in result.stderr.str()
