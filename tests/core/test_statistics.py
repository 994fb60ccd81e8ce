"""The statistics the gates act on, against scipy's published examples, exact binomial sums and the figures
of the retrain study that motivated them (issue: 397 digits, a baseline and four retrains)."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_advrobust.core.statistics import EpsilonShift, PairedChange, Proportion, robustness_curve


def test_the_interval_is_scipys_published_clopper_pearson_example() -> None:
    # scipy.stats.binomtest docs: binomtest(k=7, n=50).proportion_ci() -> (0.05819170033997342, 0.26739600249700846)
    low, high = Proportion(7, 50).interval or (0, 0)
    assert low == pytest.approx(0.05819170033997342, abs=1e-12)
    assert high == pytest.approx(0.26739600249700846, abs=1e-12)


@pytest.mark.parametrize(
    ("held", "attacked", "text"),
    [
        (346, 397, "87.2% (95% CI 83.5–90.3%)"),  # the validation set of the study
        (3, 4, "75.0% (95% CI 19.4–99.4%)"),  # four photos
        (0, 4, "0.0% (95% CI 0.0–60.2%)"),
        (4, 4, "100.0% (95% CI 39.8–100.0%)"),
    ],
)
def test_robust_accuracy_reads_with_its_interval(held: int, attacked: int, text: str) -> None:
    assert Proportion(held, attacked).text() == text


def test_no_images_have_no_interval() -> None:
    assert Proportion(0, 0).text() == "n/a" and Proportion(0, 0).interval is None
    assert Proportion(0, 0).interval_json() == {"low": None, "high": None, "confidence": 0.95}


def test_a_higher_confidence_gives_a_wider_interval() -> None:
    narrow, wide = Proportion(346, 397, 0.9).interval, Proportion(346, 397, 0.99).interval
    assert narrow and wide and wide[0] < narrow[0] < narrow[1] < wide[1]
    assert Proportion(346, 397, 0.999).text().startswith("87.2% (99.9% CI ")


@given(st.integers(0, 200), st.integers(1, 200), st.sampled_from([0.8, 0.9, 0.95, 0.99]))
def test_the_interval_holds_the_estimate_within_0_1(held: int, attacked: int, confidence: float) -> None:
    held = min(held, attacked)
    proportion = Proportion(held, attacked, confidence)
    low, high = proportion.interval or (math.nan, math.nan)
    assert 0 <= low <= held / attacked <= high <= 1
    assert (low == 0) == (held == 0) and (high == 1) == (held == attacked)


def _one_sided_binomial(lost: int, changed: int) -> float:
    """P(X ≥ lost), X ~ Binomial(changed, ½), summed exactly."""
    return sum(math.comb(changed, k) for k in range(lost, changed + 1)) / 2**changed


@pytest.mark.parametrize(
    ("lost", "gained", "p"),
    [(15, 24, 0.95), (13, 19, 0.89), (11, 19, 0.95), (31, 16, 0.02)],  # retrains B, D, E and the weaker C
)
def test_mcnemar_gives_the_studys_p_values(lost: int, gained: int, p: float) -> None:
    change = PairedChange(397, 346, 346 - lost + gained, lost, gained)
    assert change.p_value == pytest.approx(_one_sided_binomial(lost, lost + gained), rel=1e-9)
    assert round(change.p_value, 2) == p


def test_the_change_and_its_interval() -> None:
    weaker = PairedChange(397, 346, 331, lost=31, gained=16)
    assert weaker.change == pytest.approx(-15 / 397)
    low, high = weaker.change_interval or (0, 0)
    assert low < weaker.change < high < 0  # the interval of a significant drop stays below zero
    assert weaker.change_text() == f"{-1500 / 397:+.1f} pt (95% CI {100 * low:+.1f} to {100 * high:+.1f} pt)"
    mirrored = PairedChange(397, 331, 346, lost=16, gained=31).change_interval or (0, 0)
    assert mirrored == pytest.approx((-high, -low)), "gains and losses are symmetric"
    unchanged = PairedChange(397, 346, 346, lost=0, gained=0)
    assert unchanged.change == 0 and unchanged.change_interval == (0.0, 0.0) and unchanged.p_value == 1.0


def test_wilcoxon_is_scipys_published_example() -> None:
    # scipy.stats.wilcoxon docs: d = [6, 8, 14, ...]: two-sided p 0.041259765625, so one-sided 0.0206298828125
    d = [6, 8, 14, 16, 23, 24, 28, 29, 41, -48, 49, 56, 60, -67, 75]
    shift = EpsilonShift(before=[float(v) for v in d], now=[0.0] * len(d), margins=[0.0] * len(d))
    assert shift.p_value == pytest.approx(0.0206298828125, abs=1e-12)  # now - before = -d: a drop


def test_a_drop_within_the_margin_is_no_drop() -> None:
    before = [0.02 + 0.001 * k for k in range(40)]
    small = EpsilonShift(before, [b - 0.0004 for b in before], [0.0005] * 40)
    large = EpsilonShift(before, [b - 0.002 for b in before], [0.0005] * 40)
    same = EpsilonShift(before, list(before), [0.0005] * 40)
    assert small.p_value > 0.5 and large.p_value < 1e-6 and same.p_value > 0.99
    assert large.median_change == pytest.approx(-0.002) and EpsilonShift([], [], []).p_value == 1.0


def test_the_robustness_curve_of_three_images() -> None:
    # correct with minimal ε 0.01; correct with none found up to 0.05; misclassified
    curve = robustness_curve([True, True, False], [0.01, None, None], top=0.05)
    assert curve == [(0.0, 2 / 3), (0.01, 1 / 3), (0.05, 1 / 3)]
    assert robustness_curve([], [], 0.05) == []


@given(st.lists(st.tuples(st.booleans(), st.one_of(st.none(), st.floats(0.0001, 0.1))), min_size=1, max_size=30))
def test_the_curve_falls_from_the_clean_accuracy(images: list[tuple[bool, float | None]]) -> None:
    correct = [ok for ok, _ in images]
    curve = robustness_curve(correct, [eps for _, eps in images], top=0.0627)
    budgets, accuracies = [eps for eps, _ in curve], [accuracy for _, accuracy in curve]
    assert budgets[0] == 0 and budgets == sorted(budgets) and budgets[-1] == pytest.approx(0.0627)
    assert accuracies[0] == sum(correct) / len(correct)
    assert all(a >= b for a, b in itertools.pairwise(accuracies))


def test_files_keep_a_tiny_p_value() -> None:
    change = PairedChange(397, 346, 250, lost=100, gained=4)
    assert change.to_json()["p_value"] == pytest.approx(change.p_value, rel=1e-5)
    assert 0 < change.p_value < 1e-20
