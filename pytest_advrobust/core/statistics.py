"""The statistics a gate acts on, each from scipy.stats: robust accuracy with its exact interval, and the
paired tests that tell a less robust retrain from one that only differs image by image.

- :class:`Proportion`: k of n with its Clopper–Pearson interval (``binomtest(k, n).proportion_ci``).
- :class:`PairedChange`: two runs on the same images. McNemar's exact test is a binomial test on the
  images whose outcome changed (``lost``: robust in the baseline, not now; ``gained``: the reverse): the
  one-sided p-value is P(X ≥ lost) for X ~ Binomial(lost + gained, ½). The change in robust accuracy gets
  the interval that goes with that test, exact given the number of changed images.
- :class:`EpsilonShift`: the per-image minimal ε of both runs, Wilcoxon's signed-rank test
  (``scipy.stats.wilcoxon``, one-sided) of whether it dropped by more than a practical margin.

Pure Python on top of scipy, which is imported on first use (the plugin does not pay for it at load time).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any


def _stats() -> Any:
    import scipy.stats

    return scipy.stats


def significant(value: float) -> float:
    """``value`` to 6 significant digits, for files: a p-value of 1.15e-08 stays that, not 0."""
    return float(f"{value:.6g}")


def percent(value: float) -> str:
    """``0.872`` → ``87.2%``."""
    return f"{100 * value:.1f}%"


def confidence_text(confidence: float) -> str:
    """``0.95`` → ``95%``, ``0.999`` → ``99.9%``."""
    return f"{100 * confidence:.10g}%"


@dataclass(frozen=True)
class Proportion:
    """``successes`` of ``trials`` (robust accuracy: images that held of the images attacked), with its
    exact two-sided interval at ``confidence``."""

    successes: int
    trials: int
    confidence: float = 0.95

    @property
    def value(self) -> float | None:
        return self.successes / self.trials if self.trials else None

    @cached_property
    def interval(self) -> tuple[float, float] | None:
        """Clopper–Pearson: ``binomtest(k, n).proportion_ci(confidence, method="exact")``; None for n = 0."""
        if not self.trials:
            return None
        ci = _stats().binomtest(self.successes, self.trials).proportion_ci(self.confidence, method="exact")
        return float(ci.low), float(ci.high)

    def text(self) -> str:
        """``87.2% (95% CI 83.5–90.3%)``; ``n/a`` for no trials."""
        if self.value is None or self.interval is None:
            return "n/a"
        low, high = self.interval
        return f"{percent(self.value)} ({confidence_text(self.confidence)} CI {100 * low:.1f}–{percent(high)})"

    def interval_json(self) -> dict[str, Any]:
        """``{"low", "high", "confidence"}``: the bounds rounded to 6 places (None for n = 0)."""
        interval = self.interval
        return {
            "low": None if interval is None else round(interval[0], 6),
            "high": None if interval is None else round(interval[1], 6),
            "confidence": self.confidence,
        }

    def to_json(self) -> dict[str, Any]:
        """``{"successes", "trials", "value", "low", "high", "confidence"}``."""
        value = self.value
        return {
            "successes": self.successes,
            "trials": self.trials,
            "value": None if value is None else round(value, 6),
            **self.interval_json(),
        }


@dataclass(frozen=True)
class PairedChange:
    """Two runs on the same ``paired`` images: how many were robust in each, how many were ``lost``
    (robust in the baseline, not now) and ``gained`` (the reverse)."""

    paired: int
    robust_before: int
    robust_now: int
    lost: int
    gained: int
    confidence: float = 0.95

    @property
    def before(self) -> Proportion:
        return Proportion(self.robust_before, self.paired, self.confidence)

    @property
    def now(self) -> Proportion:
        return Proportion(self.robust_now, self.paired, self.confidence)

    @property
    def change(self) -> float | None:
        """Robust accuracy now minus in the baseline, on the paired images (a fraction; None for none)."""
        return (self.gained - self.lost) / self.paired if self.paired else None

    @cached_property
    def change_interval(self) -> tuple[float, float] | None:
        """The change's two-sided interval, exact given the number of changed images d = lost + gained
        (the conditioning of McNemar's exact test): the Clopper–Pearson interval of gained / d, mapped to
        d·(2π − 1) / paired. (0, 0) when no image changed."""
        if not self.paired:
            return None
        changed = self.lost + self.gained
        if not changed:
            return 0.0, 0.0
        ci = _stats().binomtest(self.gained, changed).proportion_ci(self.confidence, method="exact")
        scale = changed / self.paired
        return scale * (2 * float(ci.low) - 1), scale * (2 * float(ci.high) - 1)

    @cached_property
    def p_value(self) -> float:
        """McNemar's exact one-sided test that robustness dropped: P(X ≥ lost), X ~ Binomial(lost + gained,
        ½); 1 when no image changed."""
        changed = self.lost + self.gained
        if not changed:
            return 1.0
        return float(_stats().binomtest(self.lost, changed, 0.5, alternative="greater").pvalue)

    def change_text(self) -> str:
        """``-3.8 pt (95% CI -7.0 to -0.6 pt)``."""
        change, interval = self.change, self.change_interval
        if change is None or interval is None:
            return "n/a"
        low, high = interval
        return (
            f"{100 * change:+.1f} pt ({confidence_text(self.confidence)} CI {100 * low:+.1f} to {100 * high:+.1f} pt)"
        )

    def to_json(self) -> dict[str, Any]:
        interval = self.change_interval
        return {
            "paired": self.paired,
            "lost": self.lost,
            "gained": self.gained,
            "robust_accuracy_before": self.before.to_json(),
            "robust_accuracy_now": self.now.to_json(),
            "change": None if self.change is None else round(self.change, 6),
            "change_low": None if interval is None else round(interval[0], 6),
            "change_high": None if interval is None else round(interval[1], 6),
            "p_value": significant(self.p_value),
        }


@dataclass(frozen=True)
class EpsilonShift:
    """The minimal ε of the same images in the baseline (``before``) and now, and the practical
    ``margins`` (one per image): did it drop by more than the margin, across the images?"""

    before: Sequence[float]
    now: Sequence[float]
    margins: Sequence[float]

    @property
    def pairs(self) -> int:
        return len(self.before)

    @property
    def median_change(self) -> float | None:
        """The median of now − before (None for no pairs)."""
        if not self.pairs:
            return None
        changes = sorted(b - a for a, b in zip(self.before, self.now, strict=True))
        middle = len(changes) // 2
        return changes[middle] if len(changes) % 2 else (changes[middle - 1] + changes[middle]) / 2

    @cached_property
    def p_value(self) -> float:
        """Wilcoxon's signed-rank test, one-sided, of now − before + margin < 0 (a drop beyond the margin);
        images whose difference is zero are left out (``zero_method="wilcox"``); 1 when none is left."""
        differences = [
            now - before + margin for before, now, margin in zip(self.before, self.now, self.margins, strict=True)
        ]
        if not any(abs(d) > 1e-12 for d in differences):
            return 1.0
        result = _stats().wilcoxon(differences, alternative="less", zero_method="wilcox")
        p = float(result.pvalue)
        return 1.0 if math.isnan(p) else p

    def to_json(self) -> dict[str, Any]:
        median = self.median_change
        return {
            "pairs": self.pairs,
            "median_change": None if median is None else round(median, 7),
            "p_value": significant(self.p_value),
        }


def robustness_curve(
    correct: Sequence[bool], minimal_epsilons: Sequence[float | None], top: float
) -> list[tuple[float, float]]:
    """Robust accuracy as a function of ε, the curve robustness papers plot, from each image's minimal ε.

    At a budget ε, an image is robust when it is classified correctly and its minimal ε is above ε (an image
    with none found up to ``top`` is robust at every budget up to ``top``). The curve is a step function:
    one point (ε, robust accuracy at budgets from ε on) at 0, at each image's minimal ε, and at ``top``.
    """
    count = len(correct)
    if not count:
        return []
    found = sorted(
        {eps for ok, eps in zip(correct, minimal_epsilons, strict=True) if ok and eps is not None and eps <= top}
    )
    steps = [0.0, *(eps for eps in found if eps > 0)]
    if steps[-1] < top:
        steps.append(top)

    def accuracy(budget: float) -> float:
        held = sum(1 for ok, eps in zip(correct, minimal_epsilons, strict=True) if ok and (eps is None or eps > budget))
        return held / count

    return [(budget, accuracy(budget)) for budget in steps]
