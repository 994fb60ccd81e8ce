"""The statistical baseline rule against ``core.baselines`` directly: paired outcomes from real comparisons,
McNemar on the changed images, Wilcoxon on minimal ε beyond the tolerance, the Bonferroni level, and how
misclassified, new and missing images count. Entries are the plain dicts baseline files hold."""

from __future__ import annotations

import json

import pytest
from test_baseline_rule import TOP, entry, row

from pytest_advrobust.core.baselines.rule import BaselineEntry, Comparison, compare
from pytest_advrobust.core.baselines.statistical import StatisticalVerdict, images_rule_hint, paired_change


def _images(held: int, flipped: int, misclassified: int = 0, start: int = 0, eps: float = 0.02) -> dict:
    """``held`` images that hold, then ``flipped`` that flip, then ``misclassified``, named img000, img001..."""
    rows = [row("cat", minimal=eps)] * held + [row("cat", "dog", minimal=eps / 2)] * flipped
    rows += [row("cat", misclassified=True)] * misclassified
    return {f"img{start + k:03d}": image for k, image in enumerate(rows)}


def _swap(images: dict, names: list[str], flips: bool) -> dict:
    """The same images with ``names`` now flipping (``flips``) or holding."""
    return {**images, **{name: row("cat", "dog" if flips else None, minimal=0.01 if flips else 0.02) for name in names}}


def _verdict(before: dict, now: dict, confidence: float = 0.95, tolerance: tuple[float, float] = (0.0005, 0.0)):
    comparison = compare(entry(before), entry(now), tolerance)
    return comparison, StatisticalVerdict.of(comparison, confidence, tolerance)


def test_a_retrain_that_loses_about_as_many_images_as_it_gains_passes() -> None:
    baseline = _images(346, 51)
    # like retrain B of the study: 15 images held -> flip, 24 flipped -> hold
    now = _swap(
        _swap(baseline, [f"img{k:03d}" for k in range(15)], True), [f"img{346 + k:03d}" for k in range(24)], False
    )
    comparison, verdict = _verdict(baseline, now)
    assert len(comparison.regressions) == 15, "the image rule would fail it"
    assert (verdict.change.lost, verdict.change.gained, verdict.change.paired) == (15, 24, 397)
    assert verdict.change.p_value == pytest.approx(0.9459, abs=1e-4)
    assert not verdict.failed and verdict.headline() == "no significant drop"


def test_a_retrain_that_loses_significantly_more_fails_and_says_why() -> None:
    baseline = _images(346, 51)
    now = _swap(
        _swap(baseline, [f"img{k:03d}" for k in range(31)], True), [f"img{346 + k:03d}" for k in range(16)], False
    )
    _, verdict = _verdict(baseline, now)
    assert verdict.failed and verdict.accuracy_dropped
    text = "\n".join([verdict.headline(), *verdict.lines()])
    assert "robust accuracy dropped significantly (87.2% -> 83.4%, McNemar's p = 0.02)" in text
    assert "87.2% (95% CI 83.5–90.3%) in the baseline -> 83.4% (95% CI 79.3–86.9%) now" in text
    assert "31 image(s) held in the baseline and fail now, 16 the other way" in text
    assert "change -3.8 pt (95% CI " in text


def test_minimal_epsilon_adds_a_test_and_halves_the_level() -> None:
    baseline = _images(60, 0)
    same = _verdict(baseline, baseline)[1]
    assert same.shift is not None and same.shift.pairs == 60 and same.threshold == pytest.approx(0.025)
    assert not same.failed
    # every image still holds at the test's ε, but its minimal ε fell by 0.005 (> the tolerance 0.0005)
    lower = {name: row("cat", minimal=0.015) for name in baseline}
    _, dropped = _verdict(baseline, lower)
    assert dropped.change.lost == 0 and not dropped.accuracy_dropped
    assert dropped.epsilon_dropped and dropped.failed and "minimal eps dropped significantly" in dropped.headline()
    # the same drop within a tolerance of 0.01 is no regression
    assert not _verdict(baseline, lower, tolerance=(0.01, 0.0))[1].failed


def test_without_a_minimal_epsilon_search_only_mcnemar_runs_at_alpha() -> None:
    unsearched = {name: {**image, "minimal_epsilon": None} for name, image in _images(30, 0).items()}
    before = BaselineEntry.from_json({"settings": {"minimal_epsilon": None}, "images": unsearched})
    comparison = compare(before, before, (0.0005, 0.0))
    verdict = StatisticalVerdict.of(comparison, 0.9, (0.0005, 0.0))
    assert comparison.epsilon_top is None and verdict.shift is None
    assert verdict.threshold == pytest.approx(0.1)


def test_misclassified_images_count_as_not_robust_and_new_and_missing_ones_are_left_out() -> None:
    baseline = {**_images(10, 0), "gone.png": row("cat")}
    now = {**_images(10, 0), "new.png": row("cat", "dog")}
    now["img000"] = row("cat", misclassified=True)  # held -> misclassified: lost
    comparison, verdict = _verdict(baseline, now)
    assert comparison.missing == ["gone.png"] and any("new.png" in line for line in comparison.regressions)
    assert [o.name for o in comparison.paired()] == [f"img{k:03d}" for k in range(10)]
    assert (verdict.change.paired, verdict.change.lost, verdict.change.gained) == (10, 1, 0)
    assert verdict.shift is not None and verdict.shift.pairs == 9, "minimal ε only where both classify correctly"


def test_the_outcomes_travel_and_join_like_the_rest_of_a_comparison() -> None:
    baseline = {**_images(6, 2), "gone.png": row("cat")}
    first = compare(entry(baseline), entry({k: v for k, v in _images(6, 2).items() if k < "img004"}), (0.0005, 0.0),
                    image_names=list(_images(6, 2)))  # fmt: skip
    second = compare(entry(baseline), entry({k: v for k, v in _images(6, 2).items() if k >= "img004"}), (0.0005, 0.0),
                     image_names=list(_images(6, 2)))  # fmt: skip
    joined = Comparison.join([first, second])
    assert [o.name for o in joined.paired()] == sorted(_images(6, 2)) and joined.missing == ["gone.png"]
    assert [o.name for o in joined.outcomes if o.now is None] == ["gone.png"], "a missing image counts once"
    whole = compare(entry(baseline), entry(_images(6, 2)), (0.0005, 0.0))
    assert paired_change(joined, 0.95) == paired_change(whole, 0.95)
    again = Comparison.from_dict(json.loads(json.dumps(joined.to_dict())))
    assert again.outcomes == joined.outcomes and again.epsilon_top == TOP


def test_the_image_rules_hint_names_the_aggregate_figures() -> None:
    baseline = _images(346, 51)
    now = _swap(baseline, [f"img{k:03d}" for k in range(15)], True)
    comparison, _ = _verdict(baseline, now)
    hint = images_rule_hint(comparison, 0.95)
    assert hint.startswith("on all 397 image(s) both runs attacked: robust accuracy 87.2% (95% CI 83.5–90.3%) -> ")
    assert "15 lost, 0 gained" in hint and "--adv-baseline-rule=statistical" in hint
