"""Auto-PGD for L∞ and L2 (Croce & Hein, ICML 2020) and L1 (Croce & Hein, ICML 2021: :class:`AutoPGDL1`), on
the same loop guarantees as every other attack.

From a seeded random start, each step moves with momentum 0.75 (``x + a·(z − x) + (1 − a)·(x − x_prev)``
where ``z`` is the projected step along the norm's steepest direction, the gradient's sign for L∞ and the
gradient over its L2 length for L2; ``a = 1`` on the first step) and a step size that starts at 2ε.
At checkpoints (the first after 22% of the steps, the interval shrinking by 3% of the steps to at least
6%) a row's step size is halved, and the row restarts from its best point, when fewer than 75% of the
steps since the last checkpoint raised its loss, or when its best loss did not improve since the
previous checkpoint (at which it was not halved). The image returned for a row that never succeeds is
its best-loss iterate; any successful iterate is kept as soon as it is seen.

As in :class:`~pytest_advrobust.core.attacks.sign_gradient.SignGradientAttack`: every iterate is projected into the
ε-ball and [0,1], success is judged on the 8-bit image under the ``rounded`` verdict, a row leaves the
batch once it succeeded, and each step costs one forward and one backward pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..models.model import WrappedModel
from ..settings.attack import APGD_INITIAL_STEP
from .loop import Active, Attack, Recorder

MOMENTUM = 0.75
OSCILLATION_SHARE = 0.75


def checkpoint_intervals(steps: int) -> tuple[int, int, int]:
    """(first interval, decrease, minimum), in steps, as in fra31/auto-attack's integer schedule."""
    return max(int(0.22 * steps), 1), max(int(0.03 * steps), 1), max(int(0.06 * steps), 1)


@dataclass
class _Best:
    """Per batch row (indexed by its position in the batch): the best loss so far and where it was."""

    loss: torch.Tensor
    x: torch.Tensor
    grad: torch.Tensor
    logits: torch.Tensor
    loss_at_last_check: torch.Tensor
    halved_at_last_check: torch.Tensor
    history: torch.Tensor
    """N×(steps+1) loss at every iterate."""
    x_prev: torch.Tensor

    @classmethod
    def start(cls, clean: torch.Tensor, steps: int, classes: int) -> _Best:
        n = clean.shape[0]
        return cls(
            loss=torch.full((n,), float("-inf"), device=clean.device),
            x=clean.clone(),
            grad=torch.zeros_like(clean),
            logits=torch.zeros((n, classes), device=clean.device),
            loss_at_last_check=torch.full((n,), float("-inf"), device=clean.device),
            halved_at_last_check=torch.ones(n, dtype=torch.bool, device=clean.device),
            history=torch.zeros((n, steps + 1), device=clean.device),
            x_prev=clean.clone(),
        )

    def update(self, k: int, rows: torch.Tensor, x: torch.Tensor, grad: torch.Tensor, logits: torch.Tensor,
               loss: torch.Tensor) -> None:  # fmt: skip
        self.history[rows, k] = loss
        if k == 0:
            self.x_prev[rows] = x
            self.loss_at_last_check[rows] = loss
        self.keep_better(rows, x, logits, loss, grad)

    def keep_better(self, rows: torch.Tensor, x: torch.Tensor, logits: torch.Tensor, loss: torch.Tensor,
                    grad: torch.Tensor | None) -> None:  # fmt: skip
        """Remember the iterate of each row whose loss beats its best so far."""
        better = loss > self.loss[rows]
        if better.any():
            where = rows[better]
            self.loss[where], self.x[where], self.logits[where] = loss[better], x[better], logits[better]
            if grad is not None:
                self.grad[where] = grad[better]

    def stalled(self, k: int, rows: torch.Tensor, interval: int) -> torch.Tensor:
        """Rows to halve at the checkpoint after iterate ``k``: the loss rose in at most 75% of the last
        ``interval`` steps, or the best loss did not improve since the last checkpoint (not halved then)."""
        recent = self.history[rows, k - interval : k + 1]
        rises = (recent[:, 1:] > recent[:, :-1]).sum(dim=1)
        oscillating = rises <= interval * OSCILLATION_SHARE
        no_progress = ~self.halved_at_last_check[rows] & (self.loss_at_last_check[rows] >= self.loss[rows])
        halve = oscillating | no_progress
        self.halved_at_last_check[rows] = halve
        self.loss_at_last_check[rows] = self.loss[rows]
        return halve


@dataclass(frozen=True)
class AutoPGD(Attack):
    """APGD (L∞ and L2): ``steps`` steps, each one forward and one backward pass; see the module docstring."""

    name: str = "apgd"
    random_start: bool = True

    @property
    def initial_step(self) -> float:
        return APGD_INITIAL_STEP

    def describe(self, epsilon: float) -> str:
        return f"{self.steps} steps from {APGD_INITIAL_STEP * epsilon:.4g}, adaptive"

    def _loop(
        self,
        model: WrappedModel,
        active: Active,
        record: Recorder,
        start: tuple[torch.Tensor, torch.Tensor] | None,
        names: Sequence[str] | None,
    ) -> None:
        best: _Best | None = None
        interval, decrease, shortest = checkpoint_intervals(self.steps)
        since_check = 0
        for k in range(self.steps + 1):
            reuse = start if k == 0 else None
            x, logits, draws = self._forward(model, active, k, reuse, names)
            success = self._judge(model, k, active, x, logits, record)
            if best is None:
                best = _Best.start(active.clean, self.steps, logits.shape[1])
            if k == self.steps:  # the last iterate competes for "best" too (no gradient needed)
                last = self._loss(active, logits.detach(), draws)
                best.keep_better(active.index, x.detach(), logits.detach(), last, None)
                record.finish(active, best.x[active.index], best.logits[active.index])
                break
            if self.early_stop and bool(success.all()):
                break
            loss = self._loss(active, logits, draws)
            grad = self._gradient(model, k, active, x, loss, success, names, draws)
            current = x.detach()
            best.update(k, active.index, current, grad, logits.detach(), loss.detach())
            since_check += 1 if k > 0 else 0
            if k > 0 and since_check == interval:
                current, grad = self._checkpoint(best, active, k, interval, current, grad)
                interval, since_check = max(interval - decrease, shortest), 0
            active.x = self._step(active, best, current, grad, k)
            if self.early_stop and success.any():
                active = active.keep(~success)

    @staticmethod
    def _checkpoint(best: _Best, active: Active, k: int, interval: int, x: torch.Tensor,
                    grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        """Halve the step size of stalled rows and restart them from their best point."""
        halve = best.stalled(k, active.index, interval)
        if halve.any():
            active.alpha[halve] = active.alpha[halve] / 2
            where = active.index[halve]
            x, grad = x.clone(), grad.clone()
            x[halve], grad[halve] = best.x[where], best.grad[where]
        return x, grad

    @staticmethod
    def _step(active: Active, best: _Best, x: torch.Tensor, grad: torch.Tensor, k: int) -> torch.Tensor:
        """The projected sign step, then momentum toward it, projected again."""
        a = 1.0 if k == 0 else MOMENTUM
        z = active.project(torch.addcmul(x, active.alpha, active.ball.direction(grad)))  # grad is this step's own
        change = x - best.x_prev[active.index]
        best.x_prev[active.index] = x
        # x + a·(z − x) + (1 − a)·(x − previous), in z's memory
        return active.project(z.sub_(x).mul_(a).add_(x).add_(change.mul_(1 - a)))


L1_CHECKPOINT = 0.04
"""APGD-L1 checks its progress every 4% of the steps."""
L1_TOPK = 0.2
"""APGD-L1's first steps move the 20% of the pixels with the largest gradients."""
L1_STEP_DECREASE = 1.5
L1_STEP_FLOOR = 10.0


@dataclass(frozen=True)
class AutoPGDL1(AutoPGD):
    """APGD for L1 (Croce & Hein, "Mind the box", ICML 2021), as fra31/auto-attack runs it: from a random
    start on the L1 ball, each step moves only the pixels whose gradient is among the largest (a share
    ``topk`` that starts at 20%), by ``step / ‖sign‖₁`` along their signs, then projects exactly onto the
    L1 ball ∩ [0,1]. Every 4% of the steps, a row whose best iterate became sparser (by 5% or more)
    restarts from it with the full step size ε, and the others divide their step by 1.5 (down to ε/10);
    ``topk`` follows the best iterate's sparsity (its share of changed pixels, over 1.5). No momentum."""

    name: str = "apgd"
    norm: str = "l1"

    @property
    def initial_step(self) -> float:
        return 1.0

    def describe(self, epsilon: float) -> str:
        return f"{self.steps} sparse steps from {epsilon:.4g}, adaptive"

    def _loop(
        self,
        model: WrappedModel,
        active: Active,
        record: Recorder,
        start: tuple[torch.Tensor, torch.Tensor] | None,
        names: Sequence[str] | None,
    ) -> None:
        best: _Best | None = None
        clean = active.clean
        features = clean[0].numel()
        n = clean.shape[0]
        topk = torch.full((n,), L1_TOPK, device=clean.device)
        sparsity = torch.full((n,), float(features), device=clean.device)
        interval = max(int(L1_CHECKPOINT * self.steps), 1)
        for k in range(self.steps + 1):
            reuse = start if k == 0 else None
            x, logits, draws = self._forward(model, active, k, reuse, names)
            success = self._judge(model, k, active, x, logits, record)
            if best is None:
                best = _Best.start(clean, self.steps, logits.shape[1])
            if k == self.steps:
                last = self._loss(active, logits.detach(), draws)
                best.keep_better(active.index, x.detach(), logits.detach(), last, None)
                record.finish(active, best.x[active.index], best.logits[active.index])
                break
            if self.early_stop and bool(success.all()):
                break
            loss = self._loss(active, logits, draws)
            grad = self._gradient(model, k, active, x, loss, success, names, draws)
            current = x.detach()
            best.update(k, active.index, current, grad, logits.detach(), loss.detach())
            if k > 0 and k % interval == 0:
                current, grad = self._l1_checkpoint(best, active, current, grad, topk, sparsity, features)
            active.x = self._sparse_step(active, current, grad, topk[active.index], features)
            if self.early_stop and success.any():
                active = active.keep(~success)

    @staticmethod
    def _l1_checkpoint(best: _Best, active: Active, x: torch.Tensor, grad: torch.Tensor, topk: torch.Tensor,
                       sparsity: torch.Tensor, features: int) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        rows = active.index
        now = (best.x[rows] != active.clean).reshape(len(rows), -1).sum(dim=1).float()
        sparser = now / sparsity[rows] < 0.95
        topk[rows] = now / features / L1_STEP_DECREASE
        full = active.eps.reshape(-1)
        step = active.alpha.reshape(-1)
        step = torch.where(sparser, full, step / L1_STEP_DECREASE)
        active.alpha = torch.minimum(torch.maximum(step, full / L1_STEP_FLOOR), full).reshape(active.alpha.shape)
        sparsity[rows] = now
        if sparser.any():
            x, grad = x.clone(), grad.clone()
            x[sparser], grad[sparser] = best.x[rows[sparser]], best.grad[rows[sparser]]
        return x, grad

    @staticmethod
    def _sparse_step(
        active: Active, x: torch.Tensor, grad: torch.Tensor, topk: torch.Tensor, features: int
    ) -> torch.Tensor:
        """Move the pixels with the largest |gradient| (a share ``topk`` of them) along their signs by
        ``step / ‖sign‖₁``, then project onto the L1 ball ∩ [0,1]."""
        flat = grad.reshape(grad.shape[0], -1)
        at = ((1 - topk) * features).clamp(0, features - 1).long()
        threshold = flat.abs().sort(dim=1).values.gather(1, at[:, None])
        sparse = torch.where(flat.abs() >= threshold, flat.sign(), torch.zeros_like(flat))
        size = sparse.abs().sum(dim=1, keepdim=True).clamp_min(1e-10)
        moved = x + active.alpha * (sparse / size).reshape(grad.shape)
        return active.project(moved)
