"""What :func:`pytest_advrobust.attack` returns: the records of every image, and the images themselves."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

from ..display import shown
from ..errors import NotRobustError
from ..statistics import Proportion, percent
from .report import Counts, ImageRecord, RunReport, RunSettings

__all__ = ["AttackResult", "ImageRecord"]

FAILURE_LIST_LIMIT = 20
"""A failure message lists this many images per group; the JSON report has them all."""
HEADLINE_PAIRS = 5


@dataclass
class AttackResult:
    """The outcome of :func:`pytest_advrobust.attack`.

    ``adversarial``: the returned float images (N×C×H×W in [0,1], each within ε of its clean image);
    ``adversarial_8bit``: the same rounded to 8-bit values within ε. ``records``: one per image (per
    image–target pair for targeted attacks with several targets). ``settings``: what reproduces it.
    """

    adversarial: torch.Tensor = field(repr=False)
    adversarial_8bit: torch.Tensor = field(repr=False)
    records: list[ImageRecord] = field(repr=False)
    settings: RunSettings = field(repr=False)
    clean: torch.Tensor = field(default_factory=lambda: torch.empty(0), repr=False)
    """The clean image of each record (rows repeat an image attacked toward several targets)."""
    forward_passes: int = 0
    backward_passes: int = 0

    def __repr__(self) -> str:  # short: pytest shows it in assertion messages
        counts = self.counts
        return (
            f"AttackResult({counts.attacked} attacked, {counts.flipped} flipped, {counts.misclassified} "
            f"misclassified, robust accuracy {self.accuracy.text()}; {self.settings.how()})"
        )

    def __iter__(self) -> Iterator[ImageRecord]:
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)

    @property
    def counts(self) -> Counts:
        return Counts.of(self.records)

    @property
    def flips(self) -> list[ImageRecord]:
        """Records whose label flipped under the verdict (misclassified clean images excluded)."""
        return [r for r in self.records if r.flipped and not r.misclassified]

    @property
    def misclassified(self) -> list[ImageRecord]:
        return [r for r in self.records if r.misclassified]

    @property
    def failures(self) -> list[ImageRecord]:
        return [r for r in self.records if r.failed]

    @property
    def held(self) -> list[ImageRecord]:
        return [r for r in self.records if not r.failed]

    @property
    def robust_accuracy(self) -> float:
        """Fraction of records correctly classified before and after the attack (NaN for none)."""
        accuracy = self.counts.robust_accuracy
        return float("nan") if accuracy is None else accuracy

    @property
    def robust_accuracy_interval(self) -> tuple[float, float] | None:
        """The robust accuracy's exact (Clopper–Pearson) interval at ``settings.confidence`` (0.95 by
        default); None for no images."""
        return self.accuracy.interval

    @property
    def accuracy(self) -> Proportion:
        """Robust accuracy as held of attacked, with its interval (``.text()``: ``87.2% (95% CI 83.5–90.3%)``)."""
        return self.counts.accuracy(self.settings.confidence)

    def lines(self, limit: int | None = None) -> list[str]:
        """Flipped images first, then misclassified ones, then the ones that held (each group cut after
        ``limit`` images, with a pointer to the JSON report)."""
        out = [f"attacked {len(self.records)} image(s): {self.settings.describe}".rstrip()]
        for title, records, with_details in (
            ("flipped", self.flips, True),
            ("misclassified before the attack", self.misclassified, False),
            ("held", self.held, False),
        ):
            if not records:
                continue
            out.append(f"{title} ({len(records)}):")
            for record in records[:limit]:
                out += ["  " + record.line(), *("      " + line for line in record.details() if with_details)]
            if limit is not None and len(records) > limit:
                out.append(f"  … and {len(records) - limit} more (full list in --adv-report)")
        return out

    def headline(self) -> str:
        """What flipped, first: ``3 of 4 image(s) flipped at eps=0.007 (fgsm): cat -> tabby, ...`` (``at l2
        eps=0.5`` under another norm than linf, as the image lines say)."""
        norm = "" if self.settings.norm == "linf" else f"{self.settings.norm} "
        head = f"{len(self.flips)} of {len(self.records)} image(s) flipped at {norm}eps={self.settings.epsilon:g} "
        head += f"({self.settings.attack})"
        pairs = list(dict.fromkeys(f"{shown(r.clean_label_name)} -> {shown(r.shown_label[1])}" for r in self.flips))
        if pairs:
            head += ": " + ", ".join(pairs[:HEADLINE_PAIRS]) + (", …" if len(pairs) > HEADLINE_PAIRS else "")
        if self.misclassified:
            head += f"; {len(self.misclassified)} misclassified before the attack"
        return head

    def failure_message(self) -> str:
        reproduce = self.settings.reproduce
        tail = [f"seed {self.settings.seed}" + (f"; reproduce with: {reproduce}" if reproduce else "")]
        return "\n".join([self.headline(), *self.lines(limit=FAILURE_LIST_LIMIT)[1:], *tail])

    def assert_robust(self, min_accuracy: float | None = None) -> None:
        """Raise :class:`NotRobustError` listing each flipped or misclassified image: when any failed, or,
        with ``min_accuracy`` (a fraction in [0, 1]), when the robust accuracy is below it (flips alone then
        pass)."""
        if min_accuracy is None:
            if self.failures:
                raise NotRobustError(self.failure_message())
            return
        if isinstance(min_accuracy, bool) or not 0 <= min_accuracy <= 1:
            raise ValueError(f"min_accuracy must be a fraction between 0 and 1 (0.6 for 60%), not {min_accuracy!r}")
        accuracy = self.accuracy
        if accuracy.value is not None and accuracy.value < min_accuracy:
            below = f"robust accuracy {accuracy.text()} is below the minimum {percent(min_accuracy)}"
            raise NotRobustError(below + "\n" + self.failure_message())

    def report(self) -> RunReport:
        """This run as report data (no tensors): what the plugin collects and writes."""
        return RunReport(self.settings, list(self.records), self.forward_passes, self.backward_passes)
