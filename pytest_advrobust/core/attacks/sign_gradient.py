"""One sign-gradient loop serves every attack.

An attack binds its hyperparameters once and runs with an ε per call (Foolbox's ``LinfPGD(steps=…,
rel_stepsize=…)`` then ``attack(model, x, criterion, epsilons=…)``): FGSM is one step of size ε; BIM
(iterative FGSM) is ``steps`` steps of ``rel_stepsize·ε``; PGD is BIM from a random start. What counts as
success, and the sign of the loss, belong to the :mod:`goal <pytest_advrobust.core.attacks.goals>`. After every
step the iterate is projected into the ε-ball around the clean image and clipped to [0,1].

The loop reuses each step's own forward pass to decide success for the *current* iterate, so checking
costs no extra forward. Under the ``rounded`` verdict an iterate only counts as a success once its 8-bit
rounding (:func:`~pytest_advrobust.core.attacks.loop.quantize_8bit`) also succeeds; that check runs only on
the images that succeeded in float, and the last iterate is predicted once, as its 8-bit image (the
curves' last point is that image). With early stopping, an image that succeeded leaves the batch.
Without it, the returned image is the last iterate that succeeded (so a flip that a later step undoes is
not lost), else the final iterate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..models.model import WrappedModel
from ..settings import AttackConfig
from ..settings.values import VERDICT_ROUNDED
from .apgd import AutoPGD, AutoPGDL1
from .loop import Active, Attack, Recorder
from .square import SquareAttack, SquareL2

__all__ = ["SignGradientAttack", "build_attack"]


@dataclass(frozen=True)
class SignGradientAttack(Attack):
    """A gradient attack with its hyperparameters bound; :meth:`run` takes the ε.

    ``steps`` steps of ``rel_stepsize · ε`` each along the norm's steepest direction: the gradient's sign
    (L∞: FGSM, BIM, PGD) or the gradient over its L2 length (L2: FGM, PGD-L2). ``random_start``: the caller
    passes uniform noise in [-1, 1] (PGD's start ``clean + ε·noise``; under L2 a point of the sphere made from
    it), drawn from a seeded generator. ``verdict``: ``rounded``
    (an iterate succeeds only if its 8-bit rounding does) or ``float``.
    """

    rel_stepsize: float = 0.25

    @classmethod
    def fgsm(cls, verdict: str = VERDICT_ROUNDED, eot: int = 1, norm: str = "linf") -> SignGradientAttack:
        """One step of size ε (Goodfellow et al.; under L2, the fast gradient method's normalized step)."""
        return cls(name="fgsm", steps=1, rel_stepsize=1.0, verdict=verdict, eot=eot, norm=norm)

    @property
    def initial_step(self) -> float:
        return self.rel_stepsize

    def describe(self, epsilon: float) -> str:
        return f"{self.steps} steps of {self.rel_stepsize * epsilon:.4g}"

    def _loop(
        self,
        model: WrappedModel,
        active: Active,
        record: Recorder,
        start: tuple[torch.Tensor, torch.Tensor] | None,
        names: Sequence[str] | None,
    ) -> None:
        for k in range(self.steps + 1):
            reuse = start if k == 0 else None
            # Under the rounded verdict the last iterate is predicted once, as the 8-bit image that is judged
            last_rounded = k == self.steps and self.verdict == VERDICT_ROUNDED and reuse is None
            x, logits, draws = self._forward(model, active, k, reuse, names, rounded=last_rounded)
            success = self._judge(model, k, active, x, logits, record, rounded=last_rounded)
            if k == self.steps:
                # the 8-bit image is a new tensor; the float iterate is the loop's own once it stepped
                owned = last_rounded or active.owned
                record.finish(active, x.detach(), logits.detach(), rounded=last_rounded, owned=owned)
                break
            if self.early_stop and bool(success.all()):
                break  # every image still attacked reached its goal: no gradient is needed
            grad = self._gradient(model, k, active, x, self._loss(active, logits, draws), success, names, draws)
            direction = active.direction(grad)
            if k == 0 and not self.random_start and self.floor_checked and self.norm == "linf":
                record.first_sign = direction.to(torch.int8)  # every row is active at iterate 0
            active.step(direction)
            if self.early_stop and success.any():
                active = active.keep(~success)


def build_attack(config: AttackConfig) -> Attack:
    """The attack a resolved config names, its hyperparameters bound."""
    steps, verdict, eot = config.resolved_steps, config.verdict, config.eot
    # a randomized model: a flip one step's draws saw may not hold in the next draws, so every image runs
    # all its steps and returns the last iterate that flipped (as EOT-PGD returns its last iterate)
    early_stop = config.early_stop and eot == 1
    norm = config.norm
    if config.attack in ("apgd", "autoattack"):  # autoattack's gradient stages (see pipeline.run_sequence)
        apgd = AutoPGDL1 if norm == "l1" else AutoPGD
        return apgd(steps=steps, early_stop=early_stop, verdict=verdict, eot=eot, norm=norm)
    if config.attack == "square":
        square = SquareL2 if norm == "l2" else SquareAttack
        return square(steps=steps, early_stop=early_stop, verdict=verdict, eot=eot, norm=norm)
    return SignGradientAttack(
        name=config.attack,
        steps=steps,
        random_start=config.attack == "pgd",
        early_stop=early_stop,
        verdict=verdict,
        eot=eot,
        rel_stepsize=config.step_size_factor,
        norm=norm,
    )
