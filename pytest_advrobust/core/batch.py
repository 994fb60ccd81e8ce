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

from .attacks.checks import check_deterministic
from .attacks.goals import Goal, goal_for
from .attacks.loop import Attack, Trajectory
from .attacks.norms import LINF, ball
from .data.classes import ClassNames
from .data.sources import LabelSource
from .models.model import WrappedModel
from .results.report import FOUND_BY_SQUARE_ONLY, Count, ImageRecord
from .settings import AttackConfig
from .settings.values import VERDICT_ROUNDED


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
        self, like: torch.Tensor, names: Sequence[str], rows: Sequence[tuple[int, int | None]],
        attack: Attack | None = None,
    ) -> torch.Tensor | None:  # fmt: skip
        """The random start of each (image, target) row for ``attack`` (the context's own by default) if
        it starts at random, else None; each attack's draws are its own."""
        attack = self.attack if attack is None else attack
        if not attack.random_start or not rows:
            return None
        salt = "" if attack is self.attack else attack.name
        return _noise(like.shape[1:], self.config.seed, names, rows, salt).to(like.device)


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
    mean_probs: torch.Tensor | None = None
    """``eot`` > 1: the clean images' probabilities averaged over the draws (``logits`` are the draws' vote)."""

    def check_determinism(self, model: WrappedModel, names: Sequence[str]) -> None:
        """Compare the second look at the sample (taken along another forward pass) with the first."""
        if self.determinism_sample:
            sample = slice(0, self.determinism_sample)
            check_deterministic(model.along_logits(), self.logits.detach()[sample], names[sample])

    @property
    def probs(self) -> torch.Tensor:
        """Per class: softmax of the logits, or (``eot`` > 1) the mean over the draws."""
        return self.logits.detach().softmax(dim=1) if self.mean_probs is None else self.mean_probs

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
    notes: list[str | Count] = field(default_factory=list)
    tried: list[int | None] | None = None
    """top-K: per row, how many runner-up targets were tried (success is then any flip); None for a row
    that attack=autoattack's untargeted stage flipped before any target was tried."""
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
    notes: list[str | Count]
    outputs: int = 0
    """How many logits the model returns per image."""


def noise_seed(seed: int, name: str, target: int | None, salt: str = "") -> int:
    """A random start that depends on the seed, the image and the target only, not on batching (``salt``:
    another attack's draws for the same row)."""
    return (seed * 1_000_003 + zlib.crc32(f"{name}\0{target}{salt}".encode())) % (2**63)


def _noise(
    shape: torch.Size, seed: int, names: Sequence[str], rows: Sequence[tuple[int, int | None]], salt: str = ""
) -> torch.Tensor:
    """Uniform noise in [-1, 1] per row, drawn on the CPU so it is the same on every device."""
    draws = [
        torch.rand(shape, generator=torch.Generator().manual_seed(noise_seed(seed, names[i], t, salt))) for i, t in rows
    ]
    return torch.stack(draws) * 2 - 1


BY_QUERIES = ("square", FOUND_BY_SQUARE_ONLY)
"""What a row's ``found_by`` says when its budget was square's queries, not steps."""


def config_judges_8bit(config: AttackConfig) -> int:
    """1 when the verdict judges the 8-bit image, 0 for the float one (an index into a (float, 8-bit) pair)."""
    return int(config.verdict == VERDICT_ROUNDED)


def _distances(images: torch.Tensor, clean: torch.Tensor, norm: str) -> tuple[list[float], list[float]]:
    """Per image, the L∞ distance to its clean image and the distance in ``norm`` (the same for linf)."""
    delta = torch.sub(images, clean)
    linf = LINF.distance(delta).tolist()
    return linf, linf if norm == "linf" else ball(norm).distance(delta).tolist()


@dataclass
class DrawVerdict:
    """``eot`` > 1: the verdict on images of a randomized model, over ``draws`` forward passes. An image
    flips when most draws flip (their top class is not its label); the class shown is then the one most
    of the flipped draws predict, else the label, each with its mean probability over the draws."""

    draws: int
    flip_draws: list[int]
    shown: list[int]
    shown_prob: list[float]

    @classmethod
    def of(cls, attack: Attack, model: WrappedModel, images: torch.Tensor, labels: torch.Tensor) -> DrawVerdict:
        classes, probs = attack.draw_classes(model, images)  # B×draws, B×K
        flipped = classes != labels[:, None]
        flip_draws = flipped.sum(dim=1)
        # the most frequent class among the flipped draws (label votes do not count)
        counts = torch.zeros_like(probs).scatter_add_(1, classes, flipped.to(probs.dtype))
        counts += probs * 1e-6  # ties: the higher mean probability
        most_draws_flip = flip_draws * 2 > attack.eot
        shown = torch.where(most_draws_flip, counts.argmax(dim=1), labels)
        shown_prob = probs.gather(1, shown[:, None]).squeeze(1)
        return cls(attack.eot, flip_draws.tolist(), shown.tolist(), shown_prob.tolist())


def records_from(
    context: BatchContext,
    plan: BatchPlan,
    forward: CleanForward,
    trajectory: Trajectory,
    found_by: Sequence[str],
    minimal: Sequence[float | None],
    draws: tuple[DrawVerdict, DrawVerdict] | None = None,
) -> list[ImageRecord]:
    """One record per row of ``plan``, from the clean forward pass and what the attack found (``draws``:
    under ``eot`` > 1, the verdicts on the float and the 8-bit images over the draws)."""
    # every tensor goes to Python lists once: per-element indexing costs more than the attack on small models
    clean_probs = forward.probs
    if draws is None:
        adv_best, adv_pred = (v.tolist() for v in trajectory.adversarial_logits.softmax(dim=1).max(dim=1))
        q_best, q_pred = (v.tolist() for v in trajectory.rounded_logits.softmax(dim=1).max(dim=1))
    else:
        (adv_pred, adv_best), (q_pred, q_best) = ((d.shown, d.shown_prob) for d in draws)
    judged = None if draws is None else draws[config_judges_8bit(context.config)]
    clean_pred = forward.pred  # under eot the draws' vote, which the mean probabilities may not top
    clean_best = clean_probs.gather(1, clean_pred[:, None]).squeeze(1).tolist()
    clean_pred_list = clean_pred.tolist()
    norm = context.config.norm
    linf, distance = _distances(trajectory.adversarial, plan.clean, norm)
    linf_q, distance_q = (
        (linf, distance)
        if trajectory.rounded is trajectory.adversarial
        else _distances(trajectory.rounded, plan.clean, norm)
    )
    steps_run, first_success = trajectory.steps_run.tolist(), trajectory.first_success.tolist()
    top_classes, top_probs = trajectory.top_classes.tolist(), trajectory.top_probs.tolist()
    label_probs = trajectory.label_probs.tolist()
    target_probs = None if trajectory.target_probs is None else trajectory.target_probs.tolist()
    classes, config = context.classes, context.config
    names = [classes.name(c) for c in range(clean_probs.shape[1])]  # a path names a class at every step
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
                norm=norm,
                distance=distance[r],
                distance_8bit=distance_q[r],
                first_flip_step=first if first >= 0 else None,
                steps_run=ran,
                steps=context.config.queries if found_by[r] in BY_QUERIES else config.resolved_steps,
                epsilon=config.epsilon,
                verdict=config.verdict,
                label_curve=label_probs[r][: ran + 1],
                target_curve=None if target_probs is None else target_probs[r][: ran + 1],
                path=path,
                path_names=[names[c] for c in path],
                top_curve=top_probs[r][: ran + 1],
                found_by=found_by[r],
                # no budget is needed to get a misclassified image wrong: the search's answer means nothing
                minimal_epsilon=None if clean_label != label else minimal[r],
                runner_ups_tried=None if plan.tried is None else plan.tried[r],
                draws=None if judged is None else judged.draws,
                flip_draws=None if judged is None else judged.flip_draws[r],
            )
        )
    return records
