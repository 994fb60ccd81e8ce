"""What counts as success, and which way the loss goes: Foolbox's criteria, for the attack loops.

A goal owns the sign of the loss, so every loop *ascends* ``goal.loss_rows``: untargeted attacks ascend a
loss of the true label (:class:`Misclassification`), targeted ones descend a loss of the target
(:class:`TargetedMisclassification`, whose loss is negated). Two losses: cross-entropy (``ce``) and Croce
& Hein's scale-invariant difference of logits ratio (``dlr``), in its untargeted and targeted forms.

A targeted goal succeeds when the target is reached (``reach="target"``: the article's "panda → vulture"),
or, as AutoAttack's APGD-T counts it, as soon as the label flips (``reach="flip"``: a robustness
evaluation toward the runner-up classes, where any flip means "not robust").
"""

from __future__ import annotations

from typing import Literal, Protocol

import torch
import torch.nn.functional as F

from ..errors import OptionError
from ..settings.attack import DLR_CLASSES
from ..settings.values import LossKind


def dlr_untargeted(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """−(z_y − max_{i≠y} z_i) / (z_π1 − z_π3): ascend it to push the label below the runner-up."""
    ordered, order = logits.sort(dim=1)
    top_is_label = (order[:, -1] == labels).to(logits.dtype)
    z_y = logits.gather(1, labels[:, None]).squeeze(1)
    best_other = ordered[:, -2] * top_is_label + ordered[:, -1] * (1 - top_is_label)
    return -(z_y - best_other) / (ordered[:, -1] - ordered[:, -3] + 1e-12)


def dlr_targeted(logits: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """−(z_y − z_t) / (z_π1 − (z_π3 + z_π4)/2): ascend it to pull the target above the label."""
    ordered = logits.sort(dim=1).values
    z_y = logits.gather(1, labels[:, None]).squeeze(1)
    z_t = logits.gather(1, targets[:, None]).squeeze(1)
    return -(z_y - z_t) / (ordered[:, -1] - 0.5 * (ordered[:, -3] + ordered[:, -4]) + 1e-12)


class Goal(Protocol):
    """Per row of a batch: the true label, the target (if any), the success test and the loss."""

    labels: torch.Tensor
    """(N,) true classes."""

    @property
    def targets(self) -> torch.Tensor | None:
        """(N,) target classes, or None for an untargeted goal."""

    def reached(self, logits: torch.Tensor) -> torch.Tensor:
        """(N,) bool: whether each row's logits meet the goal."""

    def loss_rows(self, logits: torch.Tensor) -> torch.Tensor:
        """(N,) losses the attack ascends (each row's gradient is its own)."""

    def select(self, rows: torch.Tensor) -> Goal:
        """The goal of a subset of rows (a bool mask or indices)."""


class Misclassification:
    """Untargeted: success when the top class is not the label; ascend the label's loss."""

    def __init__(self, labels: torch.Tensor, loss: LossKind = "ce") -> None:
        self.labels = labels
        self.loss = loss

    @property
    def targets(self) -> torch.Tensor | None:
        return None

    def reached(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.argmax(dim=1) != self.labels

    def loss_rows(self, logits: torch.Tensor) -> torch.Tensor:
        if self.loss == "dlr":
            return dlr_untargeted(logits, self.labels)
        return F.cross_entropy(logits, self.labels, reduction="none")

    def select(self, rows: torch.Tensor) -> Misclassification:
        return Misclassification(self.labels[rows], self.loss)


class TargetedMisclassification:
    """Targeted: descend the target's loss; success when the target is reached (or any flip)."""

    def __init__(
        self,
        labels: torch.Tensor,
        targets: torch.Tensor,
        loss: LossKind = "ce",
        reach: Literal["target", "flip"] = "target",
    ) -> None:
        self.labels = labels
        self._targets = targets
        self.loss = loss
        self.reach = reach

    @property
    def targets(self) -> torch.Tensor:
        return self._targets

    def reached(self, logits: torch.Tensor) -> torch.Tensor:
        top = logits.argmax(dim=1)
        return top == self._targets if self.reach == "target" else top != self.labels

    def loss_rows(self, logits: torch.Tensor) -> torch.Tensor:
        if self.loss == "dlr":
            return dlr_targeted(logits, self.labels, self._targets)
        return -F.cross_entropy(logits, self._targets, reduction="none")

    def select(self, rows: torch.Tensor) -> TargetedMisclassification:
        return TargetedMisclassification(self.labels[rows], self._targets[rows], self.loss, self.reach)


def goal_for(
    labels: torch.Tensor,
    targets: torch.Tensor | None,
    *,
    loss: LossKind = "ce",
    reach: Literal["target", "flip"] = "target",
    num_classes: int | None = None,
) -> Goal:
    """The goal of rows with these labels and (optionally) targets. DLR needs enough classes: without
    them it is refused (``loss=auto`` never chooses it then: see :meth:`AttackConfig.loss_for`)."""
    targeted = targets is not None
    if loss == "dlr" and num_classes is not None and num_classes < DLR_CLASSES[targeted]:
        kind = "a targeted" if targeted else "an untargeted"
        raise OptionError(
            f"loss=dlr needs at least {DLR_CLASSES[targeted]} classes for {kind} attack; the model has "
            f"{num_classes}. Use --adv-loss=ce"
        )
    if targets is None:
        return Misclassification(labels, loss)
    return TargetedMisclassification(labels, targets, loss, reach)
