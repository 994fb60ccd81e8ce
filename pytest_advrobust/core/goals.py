"""What counts as success, and which way the loss goes: Foolbox's criteria, for the sign-gradient loop.

A goal owns the sign of the loss, so the loop always *ascends* ``goal.loss``: untargeted attacks ascend the
cross-entropy of the true label (:class:`Misclassification`), targeted ones descend the cross-entropy of
the target (:class:`TargetedMisclassification`, whose loss is the negated cross-entropy).
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F


class Goal(Protocol):
    """Per row of a batch: the true label, the target (if any), the success test and the loss."""

    labels: torch.Tensor
    """(N,) true classes."""

    @property
    def targets(self) -> torch.Tensor | None:
        """(N,) target classes, or None for an untargeted goal."""

    def reached(self, logits: torch.Tensor) -> torch.Tensor:
        """(N,) bool: whether each row's logits meet the goal."""

    def loss(self, logits: torch.Tensor) -> torch.Tensor:
        """A scalar the attack ascends (summed over rows, so each row's gradient is its own)."""

    def select(self, rows: torch.Tensor) -> Goal:
        """The goal of a subset of rows (a bool mask or indices)."""


class Misclassification:
    """Untargeted: success when the top class is not the label; ascend the label's cross-entropy."""

    def __init__(self, labels: torch.Tensor) -> None:
        self.labels = labels

    @property
    def targets(self) -> torch.Tensor | None:
        return None

    def reached(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.argmax(dim=1) != self.labels

    def loss(self, logits: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, self.labels, reduction="sum")

    def select(self, rows: torch.Tensor) -> Misclassification:
        return Misclassification(self.labels[rows])


class TargetedMisclassification:
    """Targeted: success when the top class is the target; descend the target's cross-entropy."""

    def __init__(self, labels: torch.Tensor, targets: torch.Tensor) -> None:
        self.labels = labels
        self._targets = targets

    @property
    def targets(self) -> torch.Tensor:
        return self._targets

    def reached(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.argmax(dim=1) == self._targets

    def loss(self, logits: torch.Tensor) -> torch.Tensor:
        return -F.cross_entropy(logits, self._targets, reduction="sum")

    def select(self, rows: torch.Tensor) -> TargetedMisclassification:
        return TargetedMisclassification(self.labels[rows], self._targets[rows])


def goal_for(labels: torch.Tensor, targets: torch.Tensor | None) -> Goal:
    """The goal of rows with these labels and (optionally) targets."""
    return Misclassification(labels) if targets is None else TargetedMisclassification(labels, targets)
