"""The statistical baseline rule: on the images both runs attacked, fail only a drop in robustness that
chance does not explain.

Two retrains of one recipe disagree on many single images while their robust accuracies agree within a
point or two, so a validation set needs a rule about the whole set, not each image. On the paired images
(both runs attacked them, by name):

- **robust accuracy**: McNemar's exact one-sided test of the images that changed (``lost``: held in the
  baseline and flips or is misclassified now; ``gained``: the reverse). An image misclassified before
  any attack is not robust, as in robust accuracy itself.
- **minimal ε**, where both runs searched it: Wilcoxon's signed-rank test, one-sided, of whether each
  image's minimal ε fell by more than the tolerance (the practical margin, so that a significant but tiny
  drop on a large set is not a regression), over the images correctly classified in both runs; an image
  with none found counts as the top of the search range.

The test fails when either is significant: each at α / 2 when both run (Bonferroni), α = 1 − confidence.
Images only one run has (new, or missing now) are left out of the tests and listed as the image rule
lists them; ``--adv-baseline-strict`` still fails missing and changed images and an unchecked minimal ε.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..display import shown
from ..statistics import EpsilonShift, PairedChange, confidence_text, percent
from .rule import Comparison


def paired_change(comparison: Comparison, confidence: float) -> PairedChange:
    """Robust accuracy on the images both runs attacked, before and now, and how many changed."""
    paired = comparison.paired()
    lost = sum(1 for o in paired if o.before == "held" and o.now != "held")
    gained = sum(1 for o in paired if o.before != "held" and o.now == "held")
    before = sum(1 for o in paired if o.before == "held")
    now = sum(1 for o in paired if o.now == "held")
    return PairedChange(len(paired), before, now, lost, gained, confidence)


def epsilon_shift(comparison: Comparison, tolerance: tuple[float, float]) -> EpsilonShift | None:
    """Minimal ε before and now of the images classified correctly in both runs; None when the runs did not
    both search it. Each image's margin is the tolerance: its absolute part, or its relative part of the
    baseline's ε, whichever is larger (a drop must exceed both, as under the image rule)."""
    top = comparison.epsilon_top
    if top is None:
        return None
    absolute, relative = tolerance
    before, now, margins = [], [], []
    for outcome in comparison.paired():
        if outcome.before == "misclassified" or outcome.now == "misclassified":
            continue
        old = outcome.minimal_epsilon_before if outcome.minimal_epsilon_before is not None else top
        new = outcome.minimal_epsilon_now if outcome.minimal_epsilon_now is not None else top
        before.append(old)
        now.append(new)
        margins.append(max(absolute, relative * old))
    return EpsilonShift(before, now, margins)


@dataclass(frozen=True)
class StatisticalVerdict:
    """The statistical rule's verdict on one comparison."""

    change: PairedChange
    shift: EpsilonShift | None
    confidence: float
    tolerance: tuple[float, float]
    comparison: Comparison

    @classmethod
    def of(cls, comparison: Comparison, confidence: float, tolerance: tuple[float, float]) -> StatisticalVerdict:
        shift = epsilon_shift(comparison, tolerance)
        shift = shift if shift and shift.pairs else None
        return cls(paired_change(comparison, confidence), shift, confidence, tolerance, comparison)

    @property
    def alpha(self) -> float:
        return 1 - self.confidence

    @property
    def threshold(self) -> float:
        """The level each test is held to: α, or α / 2 with both tests (Bonferroni)."""
        return self.alpha / (2 if self.shift is not None else 1)

    @property
    def accuracy_dropped(self) -> bool:
        return self.change.p_value < self.threshold

    @property
    def epsilon_dropped(self) -> bool:
        return self.shift is not None and self.shift.p_value < self.threshold

    @property
    def failed(self) -> bool:
        return self.accuracy_dropped or self.epsilon_dropped

    def headline(self) -> str:
        """``robust accuracy dropped significantly (87.2% -> 83.4%, McNemar's p = 0.02)``."""
        change = self.change
        if self.accuracy_dropped:
            before, now = change.before.value or 0.0, change.now.value or 0.0
            return (
                f"robust accuracy dropped significantly ({percent(before)} -> {percent(now)}, McNemar's p = "
                f"{change.p_value:.3g})"
            )
        if self.epsilon_dropped and self.shift is not None:
            return f"minimal eps dropped significantly (Wilcoxon's p = {self.shift.p_value:.3g})"
        return "no significant drop"

    def lines(self) -> list[str]:
        """The figures: both robust accuracies, the change, the counts both ways, the p-values and the level
        each is held to."""
        change = self.change
        level = f"fails below {self.threshold:.3g}" + (
            f": α = {self.alpha:.3g} over two tests"
            if self.shift is not None
            else f": α = 1 - {confidence_text(self.confidence)}"
        )
        out = [
            f"on the {change.paired} image(s) both runs attacked: robust accuracy {change.before.text()} in the "
            f"baseline -> {change.now.text()} now, change {change.change_text()}",
            f"{change.lost} image(s) held in the baseline and fail now, {change.gained} the other way: McNemar's "
            f"exact one-sided p = {change.p_value:.3g} ({level})",
        ]
        if self.shift is not None:
            median = self.shift.median_change
            absolute, relative = self.tolerance
            margin = f"{absolute:g}" + (f" or {relative:.0%}" if relative else "")
            out.append(
                f"minimal eps of {self.shift.pairs} image(s) classified correctly in both: median change "
                f"{median:+.4g}, Wilcoxon signed-rank one-sided p = {self.shift.p_value:.3g} for a drop beyond "
                f"the tolerance {margin}"
            )
        if self.left_out:
            out.append(self.left_out)
        return out

    @property
    def left_out(self) -> str:
        """``3 new image(s), not in the baseline (1 fails now), and 2 missing now: left out of the tests``."""
        comparison = self.comparison
        parts = []
        if comparison.fresh:
            failing = len(comparison.fresh) - len(comparison.new)  # the image rule files those that hold as new
            parts.append(f"{len(comparison.fresh)} new image(s), not in the baseline ({failing} fail now)")
        if comparison.missing:
            parts.append(f"{len(comparison.missing)} missing now")
        if not parts:
            return ""
        return " and ".join(parts) + ": left out of the tests; re-record the baseline to compare them"


def images_rule_hint(comparison: Comparison, confidence: float) -> str:
    """Under the image rule, on a large set: the same aggregate figures, and where to go from there."""
    change = paired_change(comparison, confidence)
    return shown(
        f"on all {change.paired} image(s) both runs attacked: robust accuracy {change.before.text()} -> "
        f"{change.now.text()}, change {change.change_text()}; {change.lost} lost, {change.gained} gained "
        f"(McNemar's exact one-sided p = {change.p_value:.3g}). On a validation set every retrain differs image "
        "by image: --adv-baseline-rule=statistical fails only a significant drop"
    )


LARGE_SET = 30
"""From this many paired images on, a failure under the image rule adds the aggregate figures."""
