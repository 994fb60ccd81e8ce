"""What :func:`pytest_advrobust.attack` returns, and the one function that builds its records."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from .classes import ClassNames
from .errors import NotRobustError
from .report import Counts, ImageRecord, RunReport, RunSettings
from .settings import AttackConfig

if TYPE_CHECKING:
    from .attacks import Trajectory
    from .pipeline import BatchPlan, CleanForward

__all__ = ["AttackResult", "ImageRecord", "records_from"]

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
            f"misclassified; {self.settings.how()})"
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
        """What flipped, first: ``3 of 4 image(s) flipped at eps=0.007 (fgsm): cat -> tabby, ...``."""
        head = f"{len(self.flips)} of {len(self.records)} image(s) flipped at eps={self.settings.epsilon:g} "
        head += f"({self.settings.attack})"
        pairs = list(dict.fromkeys(f"{r.clean_label_name} -> {r.shown_label[1]}" for r in self.flips))
        if pairs:
            head += ": " + ", ".join(pairs[:HEADLINE_PAIRS]) + (", …" if len(pairs) > HEADLINE_PAIRS else "")
        if self.misclassified:
            head += f"; {len(self.misclassified)} misclassified before the attack"
        return head

    def failure_message(self) -> str:
        reproduce = self.settings.reproduce
        tail = [f"seed {self.settings.seed}" + (f"; reproduce with: {reproduce}" if reproduce else "")]
        return "\n".join([self.headline(), *self.lines(limit=FAILURE_LIST_LIMIT)[1:], *tail])

    def assert_robust(self) -> None:
        """Raise :class:`NotRobustError` listing each flipped or misclassified image."""
        if self.failures:
            raise NotRobustError(self.failure_message())

    def report(self) -> RunReport:
        """This run as report data (no tensors): what the plugin collects and writes."""
        return RunReport(self.settings, list(self.records), self.forward_passes, self.backward_passes)


def _linf(images: torch.Tensor, clean: torch.Tensor) -> list[float]:
    """Per image, the L∞ distance to its clean image."""
    return torch.sub(images, clean).abs_().flatten(1).amax(dim=1).tolist()


def records_from(
    plan: BatchPlan,
    forward: CleanForward,
    trajectory: Trajectory,
    classes: ClassNames,
    config: AttackConfig,
    found_by: Sequence[str],
    minimal: Sequence[float | None],
) -> list[ImageRecord]:
    """One record per row of ``plan``, from the clean forward pass and what the attack found."""
    # every tensor goes to Python lists once: per-element indexing costs more than the attack on small models
    clean_probs = forward.probs
    adv_probs = trajectory.adversarial_logits.softmax(dim=1)
    q_probs = trajectory.rounded_logits.softmax(dim=1)
    adv_best, adv_pred = (v.tolist() for v in adv_probs.max(dim=1))
    q_best, q_pred = (v.tolist() for v in q_probs.max(dim=1))
    clean_best, clean_pred_list = (v.tolist() for v in clean_probs.max(dim=1))
    linf = _linf(trajectory.adversarial, plan.clean)
    linf_q = linf if trajectory.rounded is trajectory.adversarial else _linf(trajectory.rounded, plan.clean)
    steps_run, first_success = trajectory.steps_run.tolist(), trajectory.first_success.tolist()
    top_classes, top_probs = trajectory.top_classes.tolist(), trajectory.top_probs.tolist()
    label_probs = trajectory.label_probs.tolist()
    target_probs = None if trajectory.target_probs is None else trajectory.target_probs.tolist()
    records = []
    for r, (i, t) in enumerate(zip(plan.images, plan.targets, strict=True)):
        ran, first = steps_run[r], first_success[r]
        path = top_classes[r][: ran + 1]
        label, clean_label, adv, q = plan.labels[i], clean_pred_list[i], adv_pred[r], q_pred[r]
        records.append(
            ImageRecord(
                name=plan.names[r],
                label=label,
                label_name=classes.name(label),
                label_source=plan.sources[i],
                clean_label=clean_label,
                clean_label_name=classes.name(clean_label),
                clean_prob=clean_best[i],
                misclassified=clean_label != label,
                target=t,
                target_name=None if t is None else classes.name(t),
                adv_label=adv,
                adv_label_name=classes.name(adv),
                adv_prob=adv_best[r],
                adv_label_8bit=q,
                adv_label_8bit_name=classes.name(q),
                adv_prob_8bit=q_best[r],
                flipped_float=adv != label,
                flipped_8bit=q != label,
                target_reached_float=None if t is None else adv == t,
                target_reached_8bit=None if t is None else q == t,
                linf=linf[r],
                linf_8bit=linf_q[r],
                first_flip_step=first if first >= 0 else None,
                steps_run=ran,
                steps=config.resolved_steps,
                epsilon=config.epsilon,
                verdict=config.verdict,
                label_curve=label_probs[r][: ran + 1],
                target_curve=None if target_probs is None else target_probs[r][: ran + 1],
                path=path,
                path_names=[classes.name(c) for c in path],
                top_curve=top_probs[r][: ran + 1],
                found_by=found_by[r],
                # no budget is needed to get a misclassified image wrong: the search's answer means nothing
                minimal_epsilon=None if clean_label != label else minimal[r],
                runner_ups_tried=None if plan.tried is None else plan.tried[r],
            )
        )
    return records
