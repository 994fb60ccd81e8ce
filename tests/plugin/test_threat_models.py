"""--adv-norm the way users run it: each spelling, the analytic L2 and L1 thresholds of a linear model
through the plugin, the minimal-ε search in the norm's units, reports that name the norm, and a baseline
recorded under one norm that a run under another cannot compare with."""

from __future__ import annotations

import json

import pytest

from helpers import color_net_conftest, color_project

CONFTEST = color_net_conftest('{"a": (0.0, 0.0, 0.0)}')
TESTS = """
from pytest_advrobust import adv_robust

@adv_robust
def test_colors():
    pass
"""
MUTED = {"muted.png": (130, 120, 20)}
"""Red by a logit margin of 10·(130 − 120)/255 ≈ 0.392 over green, ColorNet's logits being 10 × the channel
means: the red−green margin's gradient is ±10/64 on each of the 128 red and green pixels, so an L2 ball
flips it from ε₂ = 0.392/(10/64·√128) ≈ 0.2218 and an L1 ball from ε₁ = 0.392/(10/64) ≈ 2.51. Blue is far
behind (its probability 2% of green's), so the cross-entropy's gradient points at green alone."""
L2_THRESHOLD = (10 * 10 / 255) / (10 / 64 * 128**0.5)
L1_THRESHOLD = (10 * 10 / 255) / (10 / 64)


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    return color_project(pytester, CONFTEST, TESTS, MUTED)


def _report(project: pytest.Pytester, name: str = "r.json") -> dict:
    data: dict = json.loads((project.path / name).read_text())
    return data["tests"][0]


@pytest.mark.parametrize(("norm", "threshold"), [("l2", L2_THRESHOLD), ("l1", L1_THRESHOLD)])
def test_the_image_flips_exactly_above_the_norms_threshold(
    project: pytest.Pytester, norm: str, threshold: float
) -> None:
    common = [f"--adv-norm={norm}", "--adv-verdict=float", "--adv-report=r.json"]
    held = project.runpytest(*common, f"--adv-epsilon={threshold * 0.97}")
    held.assert_outcomes(passed=1)
    held.stdout.fnmatch_lines([f"advrobust: attack=bim norm={norm} epsilon=*", f"*(bim {norm} eps=* seed=0)"])
    flipped = project.runpytest(*common, f"--adv-epsilon={threshold * 1.03}", "--adv-minimal-epsilon")
    flipped.assert_outcomes(failed=1)
    flipped.stdout.fnmatch_lines([f"*muted.png: 'red' * -> 'green' * at {norm} eps={threshold * 1.03:g}, step *"])
    entry = _report(project)
    settings, record = entry["settings"][0], entry["images"][0]
    assert settings["norm"] == norm and record["norm"] == norm
    assert record["distance"] <= threshold * 1.03 * (1 + 1e-5)
    precision = settings["minimal_epsilon"]["precision"]
    assert settings["minimal_epsilon"]["max"] == pytest.approx(4 * threshold * 1.03)  # auto: 4ε under l2 and l1
    assert record["minimal_epsilon"] == pytest.approx(threshold, abs=precision + 1e-6)


def test_every_spelling_of_the_norm(project: pytest.Pytester) -> None:
    """CLI (any case), -o, ini, and the marker, which overrides them."""
    for args in (["--adv-norm=L2", "--adv-epsilon=0.5"], ["-o", "adv_norm=l2", "-o", "adv_epsilon=0.5"]):
        project.runpytest(*args).stdout.fnmatch_lines(["advrobust: attack=bim norm=l2 epsilon=0.5 *"])
    project.makeini(
        "[pytest]\nadv_images = imgs\nadv_class_names = red,green,blue\nadv_attack = bim\nadv_norm = l1\n"
        "adv_epsilon = 2\n"
    )
    project.runpytest().stdout.fnmatch_lines(["advrobust: attack=bim norm=l1 epsilon=2 *"])
    project.makepyfile(
        test_model="""
from pytest_advrobust import adv_robust

@adv_robust(norm="l2", epsilon=3.0, verdict="float", targets="untargeted")
def test_colors():
    pass
"""
    )
    result = project.runpytest("--adv-report=r.json")
    result.assert_outcomes(failed=1)  # ε₂ = 3 is far above the muted image's 0.22
    result.stdout.fnmatch_lines(["*1 of 1 image(s) flipped at l2 eps=3 (bim)*", "*at l2 eps=3, step*"])
    assert _report(project)["settings"][0]["norm"] == "l2"


def test_a_norm_without_its_own_epsilon_is_refused_naming_both(project: pytest.Pytester) -> None:
    """linf's default ε (0.007) is no l2 or l1 budget: a norm set without ε is an error, at the start for
    the command line, in the test for a marker; given anywhere (CLI, -o, ini, marker), ε is taken."""
    result = project.runpytest("--adv-norm=l2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: --adv-norm=l2 with epsilon left at its default, 0.007, a linf budget *set it (--adv-epsilon*e.g. 0.5*"]
    )
    project.makepyfile(
        test_model="""
from pytest_advrobust import adv_robust

@adv_robust(norm="l1")
def test_colors():
    pass

@adv_robust(norm="l1", epsilon=0.5)
def test_colors_with_a_budget():
    pass
"""
    )
    result = project.runpytest("-rA")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        ["*norm='l1' in the adv_robust marker on test_colors with epsilon left at its default*"]
    )
    project.runpytest("--adv-epsilon=0.5").assert_outcomes(passed=2)


def test_a_marker_with_an_attack_the_norm_lacks_fails_at_import_naming_both(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_model="""
from pytest_advrobust import adv_robust

@adv_robust(norm="l1", attack="square")
def test_colors():
    pass
"""
    )
    result = project.runpytest()
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(
        ["*attack='square' in @adv_robust(...): attack=square has no form under norm=l1 (norm='l1' in @adv_robust*"]
    )


def test_a_linf_budget_in_pixel_levels_is_refused_and_the_fix_named(project: pytest.Pytester) -> None:
    result = project.runpytest("--adv-epsilon=8")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --adv-epsilon=8: must be ≤ 1: *did you mean 0.03137?*set --adv-norm"])
    project.runpytest("--adv-epsilon=8", "--adv-norm=l1").assert_outcomes(failed=1)  # an L1 budget of 8


def test_a_baseline_recorded_under_one_norm_cannot_compare_under_another(project: pytest.Pytester) -> None:
    recorded = project.runpytest("--adv-norm=l2", "--adv-epsilon=0.1", "--adv-baseline-update")
    recorded.assert_outcomes(passed=1)
    stored = json.loads((project.path / "advrobust-baselines" / "test_model.py.json").read_text())
    assert stored["tests"]["test_colors"]["settings"]["norm"] == "l2"
    again = project.runpytest("--adv-norm=l2", "--adv-epsilon=0.1")
    again.assert_outcomes(passed=1)
    again.stdout.fnmatch_lines(["*baseline: 0 regression(s), 0 improvement(s), 0 known flip(s)"])
    other = project.runpytest("--adv-epsilon=0.1", "--adv-baseline-strict")
    other.stdout.fnmatch_lines(
        ["*cannot compare: the settings differ from the baseline's (norm 'l2' (baseline) vs 'linf' (now)*"]
    )
