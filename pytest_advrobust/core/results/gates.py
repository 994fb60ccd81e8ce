"""The gates that judge a test's images together: a minimum robust accuracy (``min_robust_accuracy``) and
the statistical baseline rule (``baseline_rule=statistical``).

They cannot be judged shard by shard: a test split into shards is judged on all of them where they meet,
by the same functions. In one pytest process that is the last of its shards to report (the plugin's
collector); in a CI matrix, the merge. An unsharded test is judged where it runs.
"""

from __future__ import annotations

from ..baselines.rule import Comparison
from ..baselines.statistical import StatisticalVerdict
from ..display import shown
from ..statistics import percent
from .report import TestReport


def comparable(test: TestReport) -> Comparison | None:
    """The test's baseline comparison, when there is one whose settings match."""
    comparison = test.baseline.comparison if test.baseline is not None else None
    return comparison if comparison is not None and comparison.incomparable is None else None


def accuracy_failure(test: TestReport) -> str | None:
    """``robust accuracy 58.0% (95% CI …) is below the minimum 60% (min_robust_accuracy=0.6)``, or None."""
    settings = test.gate_settings
    if settings is None or settings.min_robust_accuracy is None:
        return None
    accuracy = test.robust_accuracy()
    minimum = settings.min_robust_accuracy
    if accuracy.value is None or accuracy.value >= minimum:
        return None
    return (
        f"robust accuracy {accuracy.text()} of {accuracy.trials} image(s) is below the minimum {percent(minimum)} "
        f"(min_robust_accuracy={minimum:g})"
    )


def statistical_verdict(test: TestReport) -> StatisticalVerdict | None:
    """The statistical rule's verdict, for a test judged by it against a comparable baseline."""
    settings = test.gate_settings
    comparison = comparable(test)
    if settings is None or settings.baseline_rule != "statistical" or comparison is None:
        return None
    absolute, relative = settings.tolerance
    return StatisticalVerdict.of(comparison, settings.confidence, (absolute, relative))


def gate_failures(test: TestReport) -> list[str]:
    """Why the test's images taken together fail (lines; empty: they pass): the minimum robust accuracy,
    then the statistical baseline rule with its figures."""
    lines = []
    accuracy = accuracy_failure(test)
    if accuracy is not None:
        lines.append(accuracy)
    verdict = statistical_verdict(test)
    if verdict is not None and verdict.failed:
        assert test.baseline is not None
        lines += [f"robustness regressed against the baseline in {shown(test.baseline.file)}: {verdict.headline()}"]
        lines += verdict.lines()
    return lines


def whole_test_failure(test: TestReport, shards: int, count: int | None = None, reproduce: str = "") -> str | None:
    """The failure message of a sharded test whose gates fail on its ``shards`` shards together (None: they
    pass): what was judged (of ``count`` shards, when fewer ran), the gates' lines, the flips of every
    shard, and ``reproduce``, a command that runs them all."""
    lines = gate_failures(test)
    if not lines:
        return None
    flips = [image for image in test.images if image.failed]
    which = (
        f"the {shards} of {count} shards this run selected of {shown(test.nodeid)}, the others not run"
        if count is not None and shards < count
        else f"all {shards} shards of {shown(test.nodeid)}"
    )
    head = f"judged on {which} together ({len(test.images)} image(s)):"
    listed = [f"  {image.line()}" for image in flips[:FLIPS_LISTED]]
    if len(flips) > FLIPS_LISTED:
        listed.append(f"  … and {len(flips) - FLIPS_LISTED} more (full list in --adv-report)")
    tail = [f"reproduce with: {reproduce}"] if reproduce else []
    return "\n".join([head, *lines, *listed, *tail])


FLIPS_LISTED = 20
"""A whole test's failure lists this many of its flips; the JSON report has them all."""


def baseline_text(test: TestReport) -> str:
    """The test against its baseline in a phrase (summary, Markdown, HTML): under the statistical rule its
    figures (``statistical: 87.2% -> 89.4%, 15 lost, 24 gained, p = 0.95``), else the status's own."""
    assert test.baseline is not None
    verdict = statistical_verdict(test)
    if verdict is None:
        return test.baseline.text()
    change = verdict.change
    before, now = change.before.value, change.now.value
    figures = "n/a" if before is None or now is None else f"{percent(before)} -> {percent(now)}"
    drop = "; a significant drop" if verdict.failed else ""
    comparison = verdict.comparison
    left = [f"{len(comparison.fresh)} new", f"{len(comparison.missing)} missing"]
    left_out = f"; not compared: {', '.join(left)}" if comparison.fresh or comparison.missing else ""
    return (
        f"statistical: {figures} on {change.paired} image(s), {change.lost} lost, {change.gained} gained, "
        f"p = {change.p_value:.3g}{drop}{left_out}"
    )
