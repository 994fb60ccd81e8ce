"""The one schema of report data: what an attack found, per image, per run and per test.

These dataclasses are what crosses every boundary: a pytest-xdist worker sends ``TestReport.to_wire()``
to the controller, which rebuilds it with ``TestReport.from_wire()``; the terminal summary, the JSON
report, the baselines and the HTML report all read the typed objects. Pure Python: no torch, no pytest.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ..baselines.identity import checked_fingerprint
from ..baselines.rule import BaselineStatus
from ..baselines.statistical import StatisticalVerdict
from ..display import quoted, shown
from ..settings.ranges import check_run_values
from ..settings.values import VERDICT_ROUNDED
from ..statistics import Proportion, robustness_curve
from ..wire import NAN_AS_NULL, build

PROBABILITY_DIGITS = 4
"""Probabilities in files are rounded to 4 places: what a report reader can use, without float noise."""
FOUND_BY_FLOOR = "fgsm sanity check"
FOUND_BY_SQUARE_ONLY = "square (gradient masking)"
"""attack=autoattack: a flip the gradient stages missed and square found, AutoAttack's sign that the
gradients mislead (robustness would be overestimated by them alone)."""


@dataclass
class ImageRecord:
    """One attacked image (or one image–target pair).

    Probabilities are softmax of the logits; ``*_8bit`` fields describe the adversarial image rounded to
    8-bit pixels within the ε-ball. ``first_flip_step`` is the number of steps after which the attack's
    goal (a flip, or the target) was first reached under the verdict, None if never. ``label_curve`` and
    ``target_curve`` hold the probability of the true label and of the target at every iterate (index 0
    is the start), ``path`` the top class at every iterate; they end where early stopping stopped.
    """

    name: str
    label: int
    label_name: str
    label_source: str
    clean_label: int
    clean_label_name: str
    clean_prob: float
    misclassified: bool
    target: int | None
    target_name: str | None
    adv_label: int
    adv_label_name: str
    adv_prob: float
    adv_label_8bit: int
    adv_label_8bit_name: str
    adv_prob_8bit: float
    flipped_float: bool
    flipped_8bit: bool
    target_reached_float: bool | None
    target_reached_8bit: bool | None
    linf: float
    linf_8bit: float
    first_flip_step: int | None
    steps_run: int
    steps: int
    epsilon: float
    verdict: str
    label_curve: list[float] = field(default_factory=list, metadata=NAN_AS_NULL)
    target_curve: list[float] | None = field(default=None, metadata=NAN_AS_NULL)
    path: list[int] = field(default_factory=list)
    path_names: list[str] = field(default_factory=list)
    top_curve: list[float] = field(default_factory=list, metadata=NAN_AS_NULL)
    """Probability of the top class at every iterate (which class that is: ``path_names``)."""
    found_by: str = ""
    """The attack that produced the returned image (its own name, or "fgsm sanity check")."""
    minimal_epsilon: float | None = None
    """Smallest ε at which the attack succeeded (minimal-ε search), None if not searched or not found."""
    artifacts: dict[str, str] | None = None
    """Where this image's artifact files were written (``--adv-artifacts``)."""
    saved_file_fools: bool | None = None
    """Whether the saved 8-bit adversarial PNG, read back from its bytes, still fools the model."""
    runner_ups_tried: int | None = None
    """``targets=top-K``: how many runner-up classes were tried, one after another (any flip counts)."""
    draws: int | None = None
    """``eot`` > 1: forward passes of the judged image through the randomized model (None: one)."""
    flip_draws: int | None = None
    """``eot`` > 1: in how many of the ``draws`` the judged image's top class was not its label; it
    counts as flipped when most draws flip."""
    norm: str = "linf"
    """The norm ``epsilon`` and ``distance`` are measured in."""
    distance: float = 0.0
    """The returned (float) image's distance to the clean image in ``norm`` (``linf`` under linf)."""
    distance_8bit: float = 0.0
    """The 8-bit image's distance to the clean image in ``norm``: at most ``epsilon`` (to float32 rounding)."""

    @property
    def judged_8bit(self) -> bool:
        return self.verdict == VERDICT_ROUNDED

    @property
    def flipped(self) -> bool:
        """Whether the label flipped in the image the verdict judges (8-bit rounded by default)."""
        return self.flipped_8bit if self.judged_8bit else self.flipped_float

    @property
    def target_reached(self) -> bool | None:
        return self.target_reached_8bit if self.judged_8bit else self.target_reached_float

    @property
    def failed(self) -> bool:
        return self.misclassified or self.flipped

    @property
    def shown_label(self) -> tuple[int, str, float]:
        """The adversarial class the verdict judged: index, name and probability."""
        if self.judged_8bit:
            return self.adv_label_8bit, self.adv_label_8bit_name, self.adv_prob_8bit
        return self.adv_label, self.adv_label_name, self.adv_prob

    def passed_through(self) -> list[str]:
        """Distinct top classes the iterates passed through, in order (clean class first)."""
        seen: list[str] = []
        for name in self.path_names:
            if not seen or seen[-1] != name:
                seen.append(name)
        return seen

    def _tags(self) -> list[str]:
        tags = []
        if self.runner_ups_tried is not None:
            tried = self.runner_ups_tried
            tags.append(
                f"while attacked toward {quoted(self.target_name)}, runner-up {tried}"
                if self.flipped
                else f"held against {tried} runner-up target{'s' if tried != 1 else ''}"
            )
        elif self.target is not None:
            tags.append("target reached" if self.target_reached else f"target {quoted(self.target_name)} not reached")
        if self.found_by == FOUND_BY_FLOOR:
            tags.append("found by the FGSM sanity check, not by the configured attack")
        if self.found_by == FOUND_BY_SQUARE_ONLY:
            tags.append("found only by square, not by the gradient attacks: gradient masking")
        if self.draws is not None and self.flip_draws is not None:
            tags.append(f"flips in {self.flip_draws} of {self.draws} draws")
        if (
            self.judged_8bit
            and self.flipped_8bit
            and (self.adv_label != self.adv_label_8bit or abs(self.adv_prob - self.adv_prob_8bit) > 0.05)
        ):
            tags.append(f"before 8-bit rounding: {quoted(self.adv_label_name)} {self.adv_prob:.2f}")
        if self.flipped_float != self.flipped_8bit:
            tags.append(
                "flip survives only in float, not after 8-bit rounding"
                if self.flipped_float
                else "flips only after 8-bit rounding"
            )
        if self.minimal_epsilon is not None:
            tags.append(f"minimal eps {self.minimal_epsilon:.4g}")
        return tags

    def line(self) -> str:
        """``chelsea.png: 'Egyptian cat' 0.78 -> 'paper towel' 0.91 at eps=0.007, step 4/10 [...]``; names
        shown escaped (:func:`~pytest_advrobust.core.display.shown`)."""
        clean = f"{quoted(self.clean_label_name)} {self.clean_prob:.2f}"
        name = shown(self.name)
        if self.misclassified:
            return (
                f"{name}: misclassified before any attack: {clean}, "
                f"but its label is {quoted(self.label_name)} ({shown(self.label_source)})"
            )
        _, adv_name, adv_prob = self.shown_label
        step = self.first_flip_step if self.first_flip_step is not None else self.steps_run
        unit = "query" if self.found_by in ("square", FOUND_BY_SQUARE_ONLY) else "step"
        tags = self._tags()
        suffix = f" [{'; '.join(tags)}]" if tags else ""
        eps = f"{'' if self.norm == 'linf' else self.norm + ' '}eps={self.epsilon:g}"
        if self.flipped:
            return f"{name}: {clean} -> {quoted(adv_name)} {adv_prob:.2f} at {eps}, {unit} {step}/{self.steps}{suffix}"
        steps = f"{self.steps_run} {'queries' if unit == 'query' else 'steps'}" if self.steps_run != 1 else f"1 {unit}"
        after = f"{quoted(adv_name)} {adv_prob:.2f}"
        return f"{name}: {clean} held at {eps} (after {steps}: {after}){suffix}"

    def details(self) -> list[str]:
        """For targeted attacks, the target's probability per step; the classes the iterates passed
        through when there were more than the start and the end."""
        out = []
        if self.target_curve is not None:
            curve = " ".join(f"{p:.3f}" for p in self.target_curve if not math.isnan(p))
            out.append(f"P({quoted(self.target_name)}) per step (float iterates): {curve}")
        path = self.passed_through()
        if len(path) > 2:
            out.append("passed through: " + " -> ".join(shown(name) for name in path))
        return out

    def to_json(self) -> dict[str, Any]:
        """Plain data for JSON files: the fields (unset optional ones left out), curves rounded and
        NaN-free, plus the derived verdict (``flipped``, ``shown_label``...)."""
        data = asdict(self)
        for key in ("artifacts", "saved_file_fools", "runner_ups_tried", "draws", "flip_draws"):
            if data[key] is None:
                del data[key]
        for key in ("label_curve", "target_curve", "top_curve"):
            if data[key] is not None:
                data[key] = [None if math.isnan(v) else round(v, PROBABILITY_DIGITS) for v in data[key]]
        for key in ("clean_prob", "adv_prob", "adv_prob_8bit"):
            data[key] = round(data[key], PROBABILITY_DIGITS)
        for key in ("linf", "linf_8bit", "distance", "distance_8bit"):
            data[key] = round(data[key], 7)  # float32 noise below 1e-7 of a [0,1] pixel
        data["flipped"] = self.flipped
        data["target_reached"] = self.target_reached
        data["shown_label"], data["shown_label_name"], data["shown_prob"] = self.shown_label
        data["shown_prob"] = round(data["shown_prob"], PROBABILITY_DIGITS)
        data["passed_through"] = self.passed_through()
        return data

    @classmethod
    def from_json(cls, data: Any, where: str = "image") -> ImageRecord:
        """Rebuild a record from :meth:`to_json`: derived keys are ignored, missing curve points are NaN,
        and anything else that is not what :meth:`to_json` writes is a ``ValueError`` naming its field."""
        return build(cls, data, where)


@dataclass(frozen=True)
class Counts:
    """How the records of a run or a test came out; the one place flips are counted."""

    attacked: int
    flipped: int
    misclassified: int

    @classmethod
    def of(cls, records: list[ImageRecord]) -> Counts:
        flipped = sum(1 for r in records if r.flipped and not r.misclassified)
        misclassified = sum(1 for r in records if r.misclassified)
        return cls(len(records), flipped, misclassified)

    @property
    def held(self) -> int:
        return self.attacked - self.flipped - self.misclassified

    @property
    def robust_accuracy(self) -> float | None:
        """Fraction correctly classified before and after the attack; None for no images."""
        return self.held / self.attacked if self.attacked else None

    def accuracy(self, confidence: float) -> Proportion:
        """Robust accuracy with its exact interval at ``confidence``."""
        return Proportion(self.held, self.attacked, confidence)


@dataclass(frozen=True)
class Count:
    """A run note whose numbers add up over batches (``top-9: {} of {} image(s) held ...``): the same run
    gives the same note whatever its batch sizes. ``template`` has one ``{}`` per number."""

    template: str
    numbers: tuple[int, ...]

    def __str__(self) -> str:
        return self.template.format(*self.numbers)


def joined_notes(notes: Sequence[str | Count]) -> list[str]:
    """A run's notes, each once, in the order first seen; the :class:`Count` notes of one template summed."""
    totals: dict[str, tuple[int, ...]] = {}
    for note in notes:
        if isinstance(note, Count):
            seen = totals.get(note.template, (0,) * len(note.numbers))
            totals[note.template] = tuple(a + b for a, b in zip(seen, note.numbers, strict=True))
    shown: dict[str, None] = {}
    for note in notes:
        if isinstance(note, Count):
            shown[note.template.format(*totals[note.template])] = None
        else:
            shown[note] = None
    return list(shown)


@dataclass
class RunSettings:
    """What one attack run used: enough to reproduce it and to compare it with a baseline."""

    epsilon: float
    attack: str
    steps: int
    step_size: float
    targets: str
    loss: str
    seed: int
    verdict: str
    early_stop: bool
    device: str
    mean: list[float] | None
    std: list[float] | None
    minimal_epsilon: dict[str, float] | None
    describe: str
    profile: str = "standard"
    eot: int = 1
    """Forward passes per prediction (expectation over transformation); 1: one."""
    queries: int | None = None
    """The square attack's query budget, for the attacks that run it (square, autoattack)."""
    notes: list[str] = field(default_factory=list)
    reproduce: str | None = None
    from_model: list[str] = field(default_factory=list)
    """The settings the model's own metadata supplied, with where each came from
    (``mean=(0.485, 0.456, 0.406) from timm pretrained_cfg``), and how image files were fitted to it."""
    batching: str = ""
    """How the images were batched, and why: ``batch_size=auto on cpu: batches of 32, 64, 128 ×3; 64 is the
    fastest ...``. Under auto on the CPU it depends on timing (the verdicts never do)."""
    batch_sizes: list[int] = field(default_factory=list)
    """The size of each batch attacked, in order (after any halving on out of memory)."""
    confidence: float = 0.95
    """The confidence level of the robust accuracy's interval and of the statistical baseline rule."""
    min_robust_accuracy: float | None = None
    """The robust accuracy the test must reach (None: any flip fails it)."""
    baseline_rule: str = "images"
    tolerance: list[float] = field(default_factory=lambda: [0.0005, 0.0])
    """How far minimal ε may drop (absolute, relative) before a baseline comparison fails."""
    norm: str = "linf"
    """The threat model: the norm ε is measured in (``linf``, ``l2`` or ``l1``)."""

    def __post_init__(self) -> None:
        check_run_values(self)  # a report read back (a CI matrix's job) holds only what a run can have used

    def how(self) -> str:
        """``bim linf eps=0.007 seed=0`` (``eot=20`` added under EOT): the short label of a run in summaries."""
        eot = f" eot={self.eot}" if self.eot > 1 else ""
        return f"{self.attack} {self.norm} eps={self.epsilon:g} seed={self.seed}{eot}"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        del data["reproduce"]  # machine- and run-specific: it goes to failure messages only
        # timing-dependent under batch_size=auto (no verdict depends on them): kept out of the report so that
        # two runs, or a CI matrix and one process, write the same file; shown under -v
        del data["batching"], data["batch_sizes"]
        return data


BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
"""What an HTML card's PNG fields are made of: they go into ``src="data:image/png;base64,..."`` as they are."""


@dataclass
class HtmlCard:
    """What the HTML report shows of one image: its lines and its PNGs, base64-encoded."""

    name: str
    line: str
    details: list[str]
    clean: str
    adversarial: str
    amplify: float
    saved_file_fools: bool | None
    saved_file_label: str | None
    clean_png: str
    adversarial_png: str
    perturbation_png: str
    curve_png: str | None

    def __post_init__(self) -> None:
        for name in ("clean_png", "adversarial_png", "perturbation_png", "curve_png"):
            value = getattr(self, name)
            if value is not None and not BASE64.fullmatch(value):
                bad = next((k for k, char in enumerate(value) if not BASE64.fullmatch(char)), len(value) - 1)
                around = value[max(0, bad - 8) : bad + 24]
                raise ValueError(f"{name} must be base64 (A-Z, a-z, 0-9, +, /, = padding), not {around!r} (at {bad})")


@dataclass
class RunReport:
    """One attack run within a test (the marker's, or one ``adv_attack`` call)."""

    settings: RunSettings
    images: list[ImageRecord]
    forward_passes: int = 0
    backward_passes: int = 0
    artifacts: str | None = None
    cards: list[HtmlCard] = field(default_factory=list)
    model_fingerprint: str | None = None
    """The attacked model's fingerprint, where it was taken (baselines, jobs of a CI matrix)."""
    marker: bool = False
    """The run of the ``adv_robust`` marker, which the test's verdict, gates and baseline judge (not an
    ``adv_attack`` call in its body)."""

    def __post_init__(self) -> None:
        if self.model_fingerprint is not None:
            checked_fingerprint(self.model_fingerprint, "model_fingerprint")

    @property
    def counts(self) -> Counts:
        return Counts.of(self.images)

    @classmethod
    def from_wire(cls, data: Any, where: str = "run") -> RunReport:
        """Rebuild a run from :meth:`TestReport.to_wire`'s data, every field checked (``ValueError`` names it)."""
        return build(cls, data, where)


@dataclass
class TestReport:
    """Everything one robustness test reports: its runs and its baseline status.

    A sharded test arrives as one report per shard; :func:`merge_shards` joins them (``shards`` then
    lists the shards' node ids).
    """

    __test__ = False  # not a pytest test class, whatever its name

    nodeid: str
    runs: list[RunReport]
    baseline: BaselineStatus | None = None
    shards: list[str] = field(default_factory=list)
    failed: bool | None = None
    """Whether pytest failed the test (any shard); None when not known (reports written by 0.1)."""
    test: str = ""
    """For one shard of a test the plugin split: the test's node id without the shard; else empty."""
    shard: str = ""
    """For one shard of a test the plugin split: which (``shard2of4``, as the plugin named it); else empty."""

    @property
    def test_id(self) -> str:
        """The whole test's node id: its own, or, for a shard, the test's."""
        return self.test or self.nodeid

    @property
    def images(self) -> list[ImageRecord]:
        return [image for run in self.runs for image in run.images]

    @property
    def counts(self) -> Counts:
        return Counts.of(self.images)

    @property
    def marker_runs(self) -> list[RunReport]:
        """The ``adv_robust`` marker's runs (one per shard), which the verdict judges; every run when none is
        marked (the report of an ``attack()`` call)."""
        return [run for run in self.runs if run.marker] or list(self.runs)

    @property
    def gate_settings(self) -> RunSettings | None:
        """The settings the test's gates judge with: its marker's (None: no run)."""
        runs = self.marker_runs
        return runs[0].settings if runs else None

    @property
    def confidence(self) -> float:
        settings = self.gate_settings
        return settings.confidence if settings is not None else 0.95

    def robust_accuracy(self) -> Proportion:
        """The marker's robust accuracy (every image of every shard) with its exact interval."""
        return Counts.of([image for run in self.marker_runs for image in run.images]).accuracy(self.confidence)

    def curve(self) -> list[tuple[float, float]] | None:
        """Robust accuracy as a function of ε (:func:`~pytest_advrobust.core.statistics.robustness_curve`),
        from the marker's images' minimal ε; None when it was not searched."""
        settings = self.gate_settings
        if settings is None or not settings.minimal_epsilon:
            return None
        images = [image for run in self.marker_runs for image in run.images]
        return robustness_curve(
            [not image.misclassified for image in images],
            [image.minimal_epsilon for image in images],
            float(settings.minimal_epsilon["max"]),
        )

    @property
    def minimal_epsilons(self) -> list[float]:
        """The images' minimal adversarial ε where it was searched and found, smallest first."""
        return sorted(image.minimal_epsilon for image in self.images if image.minimal_epsilon is not None)

    def pairs(self) -> list[tuple[str, str, int]]:
        """(clean class, adversarial class, count) of the flips, most common first."""
        counter = Counter(
            (image.clean_label_name, image.shown_label[1])
            for image in self.images
            if image.flipped and not image.misclassified
        )
        return [(a, b, count) for (a, b), count in counter.most_common()]

    def to_wire(self) -> dict[str, Any]:
        """Plain data that survives pytest-xdist's transport (``from_wire`` rebuilds it exactly)."""
        data = asdict(self)
        for run, wire_run in zip(self.runs, data["runs"], strict=True):
            wire_run["images"] = [image.to_json() for image in run.images]
        return data

    @classmethod
    def from_wire(cls, data: Any, where: str = "test") -> TestReport:
        """Rebuild a report from :meth:`to_wire`'s data (from an xdist worker, or a CI matrix's job report),
        every field checked: ``ValueError`` names the first that is not what :meth:`to_wire` writes."""
        return build(cls, data, where)

    def to_json(self) -> dict[str, Any]:
        """The test's entry in the JSON report: counts, flipped pairs, settings per run, every image."""
        counts = self.counts
        data: dict[str, Any] = {
            "nodeid": self.nodeid,
            "attacked": counts.attacked,
            "flipped": counts.flipped,
            "misclassified": counts.misclassified,
            "robust_accuracy": counts.robust_accuracy,
            "robust_accuracy_interval": counts.accuracy(self.confidence).interval_json(),
            "pairs": [list(pair) for pair in self.pairs()],
            "settings": [run.settings.to_json() for run in self.runs],
            "images": [{**image.to_json(), "run": k} for k, run in enumerate(self.runs) for image in run.images],
        }
        artifacts = [run.artifacts for run in self.runs if run.artifacts]
        if artifacts:
            data["artifacts"] = artifacts[0]
        if self.shards:
            data["shards"] = list(self.shards)
        curve = self.curve()
        if curve is not None:
            data["robustness_curve"] = curve_json(curve)
        if self.baseline is not None:
            data["baseline"] = self.baseline.to_json()
            data["baseline"].update(self._baseline_statistics())
        return data

    def _baseline_statistics(self) -> dict[str, Any]:
        """The paired figures against a comparable baseline, and the baseline's robustness curve."""
        comparison = self.baseline.comparison if self.baseline is not None else None
        settings = self.gate_settings
        if comparison is None or comparison.incomparable is not None or settings is None:
            return {}
        absolute, relative = settings.tolerance
        verdict = StatisticalVerdict.of(comparison, settings.confidence, (absolute, relative))
        statistics = {
            **verdict.change.to_json(),
            "epsilon": None if verdict.shift is None else verdict.shift.to_json(),
            "threshold": round(verdict.threshold, 6),
            "failed": verdict.failed,
        }
        data: dict[str, Any] = {"statistics": statistics}
        curve = self.baseline_curve()
        if curve is not None:
            data["robustness_curve"] = curve_json(curve)
        return data

    def baseline_curve(self) -> list[tuple[float, float]] | None:
        """The stored baseline's robustness curve over its images, when both runs searched minimal ε."""
        comparison = self.baseline.comparison if self.baseline is not None else None
        if comparison is None or comparison.incomparable is not None or comparison.epsilon_top is None:
            return None
        outcomes = comparison.outcomes
        return robustness_curve(
            [outcome.before != "misclassified" for outcome in outcomes],
            [outcome.minimal_epsilon_before for outcome in outcomes],
            comparison.epsilon_top,
        )


def curve_json(curve: Sequence[tuple[float, float]]) -> dict[str, list[float]]:
    """A robustness curve in the JSON report: ``{"epsilon": [...], "robust_accuracy": [...]}``."""
    return {
        "epsilon": [round(eps, 7) for eps, _ in curve],
        "robust_accuracy": [round(accuracy, 6) for _, accuracy in curve],
    }


def merge_shards(reports: list[TestReport]) -> list[TestReport]:
    """One report per decorated test, sorted by node id: the shards of a test (from any xdist worker)
    merged, their runs concatenated in shard order and their baseline statuses combined."""
    groups: dict[str, list[TestReport]] = {}
    for report in reports:
        groups.setdefault(report.test_id, []).append(report)
    merged = []
    for nodeid, parts in sorted(groups.items()):
        if len(parts) == 1 and parts[0].nodeid == nodeid:
            merged.append(parts[0])
            continue
        parts = sorted(parts, key=lambda part: part.nodeid)
        statuses = [part.baseline for part in parts if part.baseline is not None]
        outcomes = [part.failed for part in parts if part.failed is not None]
        merged.append(
            TestReport(
                nodeid=nodeid,
                runs=[run for part in parts for run in part.runs],
                baseline=BaselineStatus.merge(statuses) if statuses else None,
                shards=[part.nodeid for part in parts],
                failed=any(outcomes) if outcomes else None,
            )
        )
    return merged
