"""One batch's objects: what every batch of a run shares, its images, their clean forward pass, the plan
of what is attacked, and the records built from them.

The functions that make and use these live in :mod:`~pytest_advrobust.core.pipeline`.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch

from .checks import check_deterministic
from .classes import ClassNames
from .goals import Goal, goal_for
from .loop import Attack, Trajectory
from .model import WrappedModel
from .report import ImageRecord
from .settings import AttackConfig
from .sources import LabelSource


@dataclass(frozen=True)
class BatchContext:
    """What every batch of one run shares: the settings, the attack (its hyperparameters bound), the
    wrapped model and the class names. Only the images change from one batch to the next."""

    config: AttackConfig
    attack: Attack
    model: WrappedModel
    classes: ClassNames

    def goal(
        self,
        labels: torch.Tensor,
        targets: torch.Tensor | None,
        num_classes: int,
        reach: Literal["target", "flip"] = "target",
    ) -> Goal:
        """The goal of rows with these labels and targets, with the loss the settings choose for a model
        with ``num_classes`` outputs."""
        loss = self.config.loss_for(num_classes)
        return goal_for(labels, targets, loss=loss, reach=reach, num_classes=num_classes)

    def noise(
        self, like: torch.Tensor, names: Sequence[str], rows: Sequence[tuple[int, int | None]]
    ) -> torch.Tensor | None:
        """The random start of each (image, target) row for attacks that start at random, else None."""
        if not self.attack.random_start or not rows:
            return None
        return _noise(like.shape[1:], self.config.seed, names, rows).to(like.device)


@dataclass
class BatchImages:
    """One batch as read: clean pixels (on the model's device) and, per image, its name, given label
    (None: the clean prediction) and where that label came from."""

    clean: torch.Tensor
    given: Sequence[int | None]
    sources: Sequence[LabelSource]
    names: list[str]


@dataclass
class CleanForward:
    """The clean images' forward pass; ``x``/``logits`` keep their graph when the attack reuses them as
    its iterate 0 (then ``reusable`` is True)."""

    x: torch.Tensor
    logits: torch.Tensor
    reusable: bool
    determinism_sample: int = 0
    """How many of the first images the model predicts a second time during the batch (see
    :meth:`check_determinism`)."""

    def check_determinism(self, model: WrappedModel, names: Sequence[str]) -> None:
        """Compare the second look at the sample (taken along another forward pass) with the first."""
        if self.determinism_sample:
            sample = slice(0, self.determinism_sample)
            check_deterministic(model.along_logits(), self.logits.detach()[sample], names[sample])

    @property
    def probs(self) -> torch.Tensor:
        return self.logits.detach().softmax(dim=1)

    @property
    def pred(self) -> torch.Tensor:
        return self.logits.detach().argmax(dim=1)


@dataclass
class BatchPlan:
    """What one batch attacks, one row per (image, target) pair (top-K: one row per image, its targets
    tried in :attr:`order`); built once, by :func:`~pytest_advrobust.core.pipeline.plan_batch`."""

    images: list[int]
    """The batch image each row attacks."""
    targets: list[int | None]
    labels: list[int]
    """Per batch image: its true class (given, or the clean prediction)."""
    sources: list[LabelSource]
    """Per batch image: where its label came from."""
    clean: torch.Tensor
    goal: Goal
    noise: torch.Tensor | None
    names: list[str]
    """Per row: the image name, with `` -> target`` when an image has several targets."""
    start: tuple[torch.Tensor, torch.Tensor] | None
    """The clean forward pass, when the attack can reuse it as its iterate 0."""
    notes: list[str] = field(default_factory=list)
    tried: list[int] | None = None
    """top-K: per row, how many runner-up targets were tried (success is then any flip)."""
    order: list[list[int]] | None = None
    """top-K: per image, its runner-up classes in the order they are tried (one row per image)."""

    def __len__(self) -> int:
        return len(self.images)


@dataclass
class BatchResult:
    """What one batch produced: a record per row, and the rows' clean and adversarial images."""

    records: list[ImageRecord]
    adversarial: torch.Tensor
    rounded: torch.Tensor
    clean: torch.Tensor
    notes: list[str]
    outputs: int = 0
    """How many logits the model returns per image."""


def noise_seed(seed: int, name: str, target: int | None) -> int:
    """A random start that depends on the seed, the image and the target only, not on batching."""
    return (seed * 1_000_003 + zlib.crc32(f"{name}\0{target}".encode())) % (2**63)


def _noise(shape: torch.Size, seed: int, names: Sequence[str], rows: Sequence[tuple[int, int | None]]) -> torch.Tensor:
    """Uniform noise in [-1, 1] per row, drawn on the CPU so it is the same on every device."""
    draws = [torch.rand(shape, generator=torch.Generator().manual_seed(noise_seed(seed, names[i], t))) for i, t in rows]
    return torch.stack(draws) * 2 - 1


def _linf(images: torch.Tensor, clean: torch.Tensor) -> list[float]:
    """Per image, the L∞ distance to its clean image."""
    return torch.sub(images, clean).abs_().flatten(1).amax(dim=1).tolist()


def records_from(
    context: BatchContext,
    plan: BatchPlan,
    forward: CleanForward,
    trajectory: Trajectory,
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
    classes, config = context.classes, context.config
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
                label_source=str(plan.sources[i]),
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
