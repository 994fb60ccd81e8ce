"""Baselines, the whole cycle: record, compare equal, regress, improve, refuse, update, xdist."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from helpers import color_net_conftest, color_project

BIASES = """{  # logits = 10 * channel means + bias: a bias toward green shrinks the red image's margin
    "a": (0.0, 0.0, 0.0),
    "weaker": (0.0, 0.3, 0.0),    # red's minimal eps drops from ~5/255 to ~2/255, still holds at 0.007
    "broken": (0.0, 0.38, 0.0),   # red flips at 0.007
    "stronger": (0.3, 0.0, 0.0),  # red's minimal eps rises
    "broken_blue": (0.0, 0.0, 0.72),  # red flips at 0.007, to blue
}"""
CONFTEST = color_net_conftest(BIASES)

TESTS = """
from pytest_advrobust import adv_robust

@adv_robust
def test_colors():
    pass
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    return color_project(pytester, CONFTEST, TESTS, {"r.png": (130, 120, 110), "g.png": (60, 200, 60)})


def _baseline(project: pytest.Pytester) -> dict:
    return json.loads((project.path / "advrobust-baselines" / "test_model.py.json").read_text())


def test_record_then_compare_equal(project: pytest.Pytester) -> None:
    recorded = project.runpytest("--adv-baseline-update")
    recorded.assert_outcomes(passed=1)
    recorded.stdout.fnmatch_lines(
        ["*baseline: recorded*", "advrobust: baseline written to advrobust-baselines/test_model.py.json"]
    )
    data = _baseline(project)
    text = (project.path / "advrobust-baselines" / "test_model.py.json").read_text()
    assert text == json.dumps(data, indent=2, sort_keys=True) + "\n", "sorted, diff-friendly JSON"
    entry = data["tests"]["test_colors"]
    assert data["schema_version"] == 1
    assert entry["settings"]["epsilon"] == 0.007 and entry["settings"]["attack"] == "bim"
    assert entry["settings"]["minimal_epsilon"] == {"max": 0.06274509804, "precision": 0.0002}  # no float noise
    assert entry["settings"]["step_size"] == 0.00175
    assert entry["model_fingerprint"].startswith("sha256:")
    assert set(entry["versions"]) >= {"torch", "torchvision", "pytest-advrobust", "python"}
    red = entry["images"]["r.png"]
    assert red["clean_label_name"] == "red" and red["flipped"] is False
    assert 5 / 255 <= red["minimal_epsilon"] <= 6 / 255 + 0.0002  # 8-bit: a 5-level tie keeps red

    again = project.runpytest()
    again.assert_outcomes(passed=1)
    again.stdout.fnmatch_lines(["*baseline: 0 regression(s), 0 improvement(s), 0 known flip(s)*"])


def test_a_weaker_model_fails_with_baseline_vs_now_and_how_to_accept(project: pytest.Pytester) -> None:
    project.runpytest("--adv-baseline-update").assert_outcomes(passed=1)
    result = project.runpytest("--which=weaker")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "robustness regressed against the baseline in advrobust-baselines/test_model.py.json: r.png: *",
            "against the baseline: 1 regression(s), 0 improvement(s), 0 known flip(s), 1 unchanged (model weights differ*",
            "regressions (baseline -> now):",
            "  r.png: minimal eps dropped 0.02355 -> 0.00788 (more than the tolerance 0.0005)",
            "accept the current results as the baseline with: pytest test_model.py::test_colors --which=weaker "
            "--adv-seed=0 --adv-baseline-update",
        ]
    )
    result.stdout.fnmatch_lines(  # the summary (and so a merge's log) names the regressed image too
        [
            "    baseline: 1 regression(s), 0 improvement(s), 0 known flip(s)",
            "      r.png: minimal eps dropped 0.02355 -> 0.00788 (more than the tolerance 0.0005)",
        ]
    )
    # a generous tolerance accepts the same drop
    project.runpytest("--which=weaker", "--adv-tolerance=0.02").assert_outcomes(passed=1)


def test_turning_the_minimal_eps_search_off_does_not_hide_a_drop_silently(project: pytest.Pytester) -> None:
    project.runpytest("--adv-baseline-update").assert_outcomes(passed=1)
    # the weaker model's drop shows only in the minimal eps: without the search nothing flips at 0.007
    result = project.runpytest("--which=weaker", "--adv-no-minimal-epsilon")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["*baseline: 0 regression(s), * not checked (fails with --adv-baseline-strict): minimal eps (in the baseline*"]
    )
    strict = project.runpytest("--which=weaker", "--adv-no-minimal-epsilon", "--adv-baseline-strict")
    strict.assert_outcomes(failed=1)
    project.runpytest("--which=weaker").assert_outcomes(failed=1)  # with the search, the drop is a regression


def test_an_image_that_held_and_now_flips_fails(project: pytest.Pytester) -> None:
    project.runpytest("--adv-baseline-update").assert_outcomes(passed=1)
    result = project.runpytest("--which=broken")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["  r.png: held -> flips to 'green' (minimal eps 0.0* -> 0.00*)"])


def test_improvements_are_reported_and_pass(project: pytest.Pytester) -> None:
    project.runpytest("--adv-baseline-update").assert_outcomes(passed=1)
    result = project.runpytest("--which=stronger")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*baseline: 0 regression(s), 1 improvement(s), 0 known flip(s)*"])


def test_a_known_flip_does_not_fail_by_itself(project: pytest.Pytester) -> None:
    project.runpytest("--adv-baseline-update", "--which=broken").assert_outcomes(passed=1)
    result = project.runpytest("--which=broken", "-q")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*: 2 attacked, 1 flipped, * [[]every failure known to the baseline]"])
    result = project.runpytest("--which=broken")
    result.stdout.fnmatch_lines(["*1 flipped*", "*baseline: 0 regression(s), 0 improvement(s), 1 known flip(s)*"])
    assert _baseline(project)["tests"]["test_colors"]["images"]["r.png"]["flipped"] is True


def test_update_accepts_a_regression(project: pytest.Pytester) -> None:
    project.runpytest("--adv-baseline-update").assert_outcomes(passed=1)
    project.runpytest("--which=weaker").assert_outcomes(failed=1)
    project.runpytest("--which=weaker", "--adv-baseline-update").assert_outcomes(passed=1)
    project.runpytest("--which=weaker").assert_outcomes(passed=1)


def test_different_settings_cannot_be_compared_and_are_judged_absolutely(project: pytest.Pytester) -> None:
    project.runpytest("--adv-baseline-update").assert_outcomes(passed=1)
    # nothing flips at 0.01: an absolute verdict passes, and the summary says why nothing was compared
    result = project.runpytest("--adv-epsilon=0.01")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["    baseline: cannot compare: settings differ"])
    result.stdout.no_fnmatch_line("*regress*")
    # red flips at 0.03: judged as if there were no baseline, under its own heading
    flips = project.runpytest("--adv-epsilon=0.03")
    flips.assert_outcomes(failed=1)
    flips.stdout.fnmatch_lines(
        [
            "cannot compare: the settings differ from the baseline's (epsilon 0.007 (baseline) vs 0.03 (now); "
            "step_size 0.00175 (baseline) vs 0.0075 (now)), so the verdict is absolute*",
            "1 of 2 image(s) flipped at eps=0.03 (bim): red -> green",
            "to replace the baseline in * (recorded with other settings) with these results: pytest "
            "test_model.py::test_colors --adv-epsilon=0.03 --adv-seed=0 --adv-baseline-update; to keep both, give "
            "these settings their own folder: add --adv-baseline-dir=DIR to this run's commands",
        ]
    )
    flips.stdout.no_fnmatch_line("*robustness regressed*")
    project.runpytest("--adv-epsilon=0.01", "--adv-baseline-strict").assert_outcomes(failed=1)


def test_the_seed_is_compared_only_where_it_plays_a_part(project: pytest.Pytester) -> None:
    project.runpytest("--adv-baseline-update").assert_outcomes(passed=1)
    same = project.runpytest("--adv-seed=4")  # bim (this project's attack) has no random start
    same.assert_outcomes(passed=1)
    same.stdout.fnmatch_lines(["    baseline: 0 regression(s), 0 improvement(s), 0 known flip(s)"])
    project.runpytest("--adv-attack=pgd", "--adv-baseline-update").assert_outcomes(passed=1)
    other = project.runpytest("--adv-attack=pgd", "--adv-seed=4")
    other.stdout.fnmatch_lines(["    baseline: cannot compare: settings differ"])
    other.assert_outcomes(passed=1)


def test_a_new_image_that_flips_fails_even_after_baselining(project: pytest.Pytester) -> None:
    project.runpytest("--adv-baseline-update").assert_outcomes(passed=1)
    # a user adds an image that flips (red-ish with a tiny margin) to the folder after recording
    Image.fromarray(np.full((8, 8, 3), (121, 120, 110), dtype=np.uint8)).save(project.path / "imgs" / "new.png")
    result = project.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "robustness regressed against the baseline in *",
            "regressions (baseline -> now):",
            "  new.png: new image, not in the baseline: flips 'red' -> 'green'",
        ]
    )
    project.runpytest("--adv-baseline-strict").assert_outcomes(failed=1)
    # a new image that holds is named, and passes
    (project.path / "imgs" / "new.png").unlink()
    Image.fromarray(np.full((8, 8, 3), (200, 20, 20), dtype=np.uint8)).save(project.path / "imgs" / "new.png")
    held = project.runpytest()
    held.assert_outcomes(passed=1)
    held.stdout.fnmatch_lines(["    baseline: *, 1 new image(s)"])


def test_a_missing_image_is_reported_and_fails_when_strict(project: pytest.Pytester) -> None:
    project.runpytest("--adv-baseline-update").assert_outcomes(passed=1)
    (project.path / "imgs" / "g.png").unlink()
    result = project.runpytest()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["    baseline: *, 1 missing"])
    strict = project.runpytest("--adv-baseline-strict")
    strict.assert_outcomes(failed=1)
    strict.stdout.fnmatch_lines(
        [
            "the results do not match the baseline in * exactly (--adv-baseline-strict)",
            "baseline images not attacked now (fail with --adv-baseline-strict):",
            "  g.png",
        ]
    )
    # re-recording the test drops the image that is gone
    project.runpytest("--adv-baseline-update").assert_outcomes(passed=1)
    assert sorted(_baseline(project)["tests"]["test_colors"]["images"]) == ["r.png"]


def test_a_known_flip_to_another_class_is_a_change(project: pytest.Pytester) -> None:
    project.runpytest("--adv-baseline-update", "--which=broken").assert_outcomes(passed=1)
    result = project.runpytest("--which=broken_blue")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["    baseline: 0 regression(s), 0 improvement(s), 0 known flip(s), 1 changed flip(s)"])
    strict = project.runpytest("--which=broken_blue", "--adv-baseline-strict")
    strict.assert_outcomes(failed=1)
    strict.stdout.fnmatch_lines(
        ["  r.png: known flip changed class: 'red' -> 'green' in the baseline, 'red' -> 'blue' now *"]
    )


def test_the_update_flag_takes_test_ids_after_it(project: pytest.Pytester) -> None:
    project.makepyfile(test_other=TESTS.replace("test_colors", "test_other"))
    result = project.runpytest("--adv-baseline-update", "test_model.py::test_colors")
    result.assert_outcomes(passed=1)
    assert sorted(_baseline(project)["tests"]) == ["test_colors"]
    assert not (project.path / "advrobust-baselines" / "test_other.py.json").exists()
    # and every boolean has an off switch that takes nothing either
    off = project.runpytest("--adv-no-early-stop", "--adv-no-sanity-checks", "test_other.py")
    off.assert_outcomes(passed=1)


def test_entries_of_removed_tests_are_reported_and_removed_by_a_full_update(project: pytest.Pytester) -> None:
    project.runpytest("--adv-baseline-update").assert_outcomes(passed=1)
    project.makepyfile(test_model=TESTS.replace("test_colors", "test_renamed"))
    partial = project.runpytest("--adv-baseline-update", "-k", "renamed")
    partial.assert_outcomes(passed=1)
    assert sorted(_baseline(project)["tests"]) == ["test_colors", "test_renamed"], "a partial run removes nothing"
    full = project.runpytest()
    full.stdout.fnmatch_lines(
        [
            "advrobust: 1 baseline entry has no test any more (a full --adv-baseline-update removes them): "
            "test_model.py::test_colors"
        ]
    )
    update = project.runpytest("--adv-baseline-update")
    update.stdout.fnmatch_lines(["advrobust: removed 1 baseline entries without a test: test_model.py::test_colors"])
    assert sorted(_baseline(project)["tests"]) == ["test_renamed"]


def test_a_missing_baseline_is_reported_and_fails_only_when_strict(project: pytest.Pytester) -> None:
    # a project that never used baselines hears nothing about them, red or green
    silent = project.runpytest("--adv-epsilon=0.03")
    silent.assert_outcomes(failed=1)
    for mention in ("*baseline: *", "*advrobust-baselines*", "*--adv-baseline-update*"):
        silent.stdout.no_fnmatch_line(mention)
    # once the module has a baseline file, a test without an entry in it is reported
    project.makepyfile(test_other=TESTS.replace("test_colors", "test_other"))
    project.runpytest("--adv-baseline-update", "test_other.py").assert_outcomes(passed=1)
    (project.path / "advrobust-baselines" / "test_other.py.json").rename(
        project.path / "advrobust-baselines" / "test_model.py.json"
    )
    result = project.runpytest("test_model.py")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*baseline: none stored (in advrobust-baselines/test_model.py.json)*"])
    strict = project.runpytest("--adv-baseline-strict", "test_model.py")
    strict.assert_outcomes(failed=1)
    strict.stdout.fnmatch_lines(
        ["no baseline for test_colors in */test_model.py.json (--adv-baseline-strict); accept*"]
    )


def test_a_baseline_file_of_the_wrong_shape_fails_its_test_and_the_session_goes_on(project: pytest.Pytester) -> None:
    """``"tests": null`` used to kill the session with a traceback; now the test that reads it fails, naming
    the file and the field, and the session ends as usual (its summary is printed)."""
    (project.path / "advrobust-baselines").mkdir()
    (project.path / "advrobust-baselines" / "test_model.py.json").write_text('{"schema_version": 1, "tests": null}')
    result = project.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*baseline file */test_model.py.json is not a baseline file this pytest-advrobust wrote: tests must be "
            "an object of test name → entry, not NoneType None*",
            "*= 1 failed in *",
        ]
    )
    assert "Traceback" not in result.stdout.str()


def test_a_corrupt_baseline_file_is_named(project: pytest.Pytester) -> None:
    (project.path / "advrobust-baselines").mkdir()
    (project.path / "advrobust-baselines" / "test_model.py.json").write_text("{not json")
    result = project.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*baseline file */test_model.py.json cannot be read*re-record with --adv-baseline-update*"]
    )


def test_xdist_workers_results_are_written_once_by_the_controller(project: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    project.makepyfile(
        test_more="""
        import pytest
        from pytest_advrobust import adv_robust

        @pytest.mark.parametrize("seed", [pytest.param(s, marks=pytest.mark.adv_robust(seed=s)) for s in (1, 2, 3)])
        def test_seeded(seed):
            pass
        """
    )
    result = project.runpytest_subprocess("-n", "2", "--adv-baseline-update", "-p", "no:randomly")
    result.assert_outcomes(passed=4)
    stored = json.loads((project.path / "advrobust-baselines" / "test_more.py.json").read_text())
    assert sorted(stored["tests"]) == ["test_seeded[1]", "test_seeded[2]", "test_seeded[3]"]
    assert "test_colors" in _baseline(project)["tests"]
    project.runpytest_subprocess("-n", "2").assert_outcomes(passed=4)
