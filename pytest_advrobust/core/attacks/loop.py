"""The building blocks every attack loop shares (Foolbox's ``attacks/base.py``): the ε-ball and its 8-bit
grid, the rows still attacked (:class:`Active`), the per-iterate record (:class:`Recorder`), what a run
returns (:class:`Trajectory`) and the :class:`Attack` base with its forward pass, verdict and gradient.

Every returned tensor lies in the ε-ball around its clean image and in [0,1], whatever a subclass does:
:meth:`Active.step` projects each step, and success is decided by re-predicting what is returned
(under the ``rounded`` verdict, its 8-bit image: see :func:`quantize_8bit`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ..models.model import WrappedModel
from ..settings.values import VERDICT_ROUNDED
from .checks import check_gradient, check_logits
from .goals import Goal
from .norms import LINF, Ball, ball, per_image

__all__ = ["Active", "Attack", "Recorder", "Trajectory", "quantize_8bit"]


def quantize_8bit(
    adversarial: torch.Tensor, clean: torch.Tensor, epsilon: float | torch.Tensor, norm: str = "linf"
) -> torch.Tensor:
    """Round ``adversarial`` (within the ε-ball around ``clean``) to 8-bit pixel values (k/255) without
    leaving the ε-ball (of ``norm``: for L2 and L1 see :meth:`~.norms.Ball.quantize`).

    For L∞:
    Each pixel goes to the nearer of its two neighbouring 8-bit values when that one lies within ε of
    the clean pixel, else to the other one (toward the clean pixel). When the clean pixel itself is on
    the 8-bit grid (as for images loaded from 8-bit files) the result always stays within ε; for an
    off-grid clean pixel and ε < 1/255 neither neighbour may fit, and the one closer to the clean pixel
    is used (``linf_8bit`` in the record shows the true distance).
    """
    eps = _per_image(epsilon, clean)
    if norm != "linf":
        return ball(norm).quantize(adversarial, clean, eps)
    return _round_into_ball(adversarial, *_grid_bounds(*_ball(clean, eps), clean, eps))


def _ball(clean: torch.Tensor, eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The ε-ball around each clean image, within [0,1]: its lower and upper bound per pixel."""
    return (clean - eps).clamp_(0, 1), (clean + eps).clamp_(0, 1)


_TOLERANCE_255 = 255 * 1e-6
"""How far (in pixel units, 1e-6) an 8-bit value may lie outside the ε-ball and still count as inside."""

_ALWAYS_ON_GRID = 1 / 510
"""A ball of at least this radius always holds an 8-bit value: it is 1/255 wide, or it reaches 0 or 1."""


def _grid_bounds(
    lower: torch.Tensor, upper: torch.Tensor, clean: torch.Tensor, eps: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The smallest and largest 8-bit value (in 1/255 units) inside ``[lower, upper]``, the ball in [0,1];
    where there is none (an off-grid clean pixel and ε < 1/510), the 8-bit value nearest the clean pixel."""
    low = (lower * 255).sub_(_TOLERANCE_255).ceil_()
    high = (upper * 255).add_(_TOLERANCE_255).floor_()
    if eps.numel() and float(eps.min()) < _ALWAYS_ON_GRID:
        empty = low > high
        if bool(empty.any()):
            nearest_clean = (clean * 255).sub_(0.5).ceil_().expand_as(low)
            low = torch.where(empty, nearest_clean, low)
            high = torch.where(empty, nearest_clean, high)
    return low, high


def _round_into_ball(adversarial: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """:func:`quantize_8bit` given the 8-bit values' bounds (:func:`_grid_bounds`): the nearest 8-bit
    value (ties down), clamped to the 8-bit values inside the ball. For a point in the ball this is
    exactly the rule above: when the nearest value leaves the ball, the clamp lands on the other neighbour."""
    return (adversarial * 255).sub_(0.5).ceil_().clamp_(low, high).div_(255)


@dataclass
class Trajectory:
    """What the loop found, per row of the batch (``N`` rows).

    ``first_success``: the iterate index (0 = start) at which the attack's goal was first reached under
    the verdict, or -1. ``label_probs``/``target_probs``/``top_classes``: N×(steps+1) per-iterate curves,
    NaN/-1 after an image stopped. ``adversarial`` is the returned float image, ``adversarial_logits``
    its logits from the loop's own forward pass; ``rounded`` its 8-bit image, the very same tensor when
    every returned image is 8-bit already (the rounded verdict's final iterates).
    """

    adversarial: torch.Tensor
    adversarial_logits: torch.Tensor
    rounded: torch.Tensor
    rounded_logits: torch.Tensor
    first_success: torch.Tensor
    steps_run: torch.Tensor
    label_probs: torch.Tensor
    target_probs: torch.Tensor | None
    top_classes: torch.Tensor
    top_probs: torch.Tensor
    first_sign: torch.Tensor | None = None
    """sign of the first step's gradient at the clean image (attacks without a random start): one FGSM
    step's direction, so the FGSM floor check needs no backward pass of its own."""

    def take(self, rows: torch.Tensor, other: Trajectory, other_rows: torch.Tensor, *, curves: bool = False) -> None:
        """Replace this trajectory's returned images at ``rows`` by ``other``'s at ``other_rows`` (and,
        with ``curves``, its per-step curves too)."""
        if self.rounded is self.adversarial:  # two results from now on
            self.rounded = self.rounded.clone()
        names = ["adversarial", "adversarial_logits", "rounded", "rounded_logits", "first_success"]
        if curves:
            names += ["steps_run", "label_probs", "target_probs", "top_classes", "top_probs"]
        for name in names:
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine is not None and theirs is not None:
                if mine.dim() == 2 and mine.shape[1] != theirs.shape[1]:  # curves of another budget
                    width = max(mine.shape[1], theirs.shape[1])
                    mine, theirs = _widen(mine, width), _widen(theirs, width)
                    setattr(self, name, mine)
                mine[rows] = theirs[other_rows]


def _widen(curves: torch.Tensor, width: int) -> torch.Tensor:
    """N×W per-iterate curves padded to ``width`` columns with their "stopped" value (NaN, or -1)."""
    if curves.shape[1] >= width:
        return curves
    fill = -1 if curves.dtype == torch.long else float("nan")
    return torch.cat([curves, curves.new_full((curves.shape[0], width - curves.shape[1]), fill)], dim=1)


_per_image = per_image


@dataclass
class Active:
    """The rows still being attacked, with everything the loop indexes per row.

    The loop allocates as few image-sized tensors as it can (on the CPU each new one costs page faults
    comparable to the arithmetic on it): the first step makes one, later steps write into it, the checks
    make none; iterate 0 is never changed in place, so it may be the clean images themselves."""

    index: torch.Tensor
    """Each active row's position in the batch."""
    x: torch.Tensor
    clean: torch.Tensor
    lower: torch.Tensor
    upper: torch.Tensor
    eps: torch.Tensor
    alpha: torch.Tensor
    goal: Goal
    grid: tuple[torch.Tensor, torch.Tensor] | None = None
    """The 8-bit values' bounds inside each row's ball (see :func:`_grid_bounds`), once needed."""
    whole: bool = True
    """Every row of the batch, in order (``index`` is ``arange(N)``): then ``rows`` is a slice."""
    owned: bool = False
    """``x`` is the loop's own tensor, which nothing else holds between steps: a step may write into it."""
    stream: torch.Tensor | None = None
    """Per row, the loop's own random draws (see :meth:`Attack._stream`), or None."""
    ball: Ball = LINF
    """The threat model: the ball the iterates stay in (L∞: ``lower`` and ``upper`` are its bounds)."""

    @property
    def rows(self) -> torch.Tensor | slice:
        """The active rows' positions in the batch, for indexing (a slice is cheaper to write through)."""
        return slice(None) if self.whole else self.index

    def keep(self, mask: torch.Tensor) -> Active:
        return Active(
            self.index[mask],
            self.x[mask],
            self.clean[mask],
            self.lower[mask],
            self.upper[mask],
            self.eps[mask],
            self.alpha[mask],
            self.goal.select(mask),
            None if self.grid is None else (self.grid[0][mask], self.grid[1][mask]),
            whole=False,  # the loop keeps rows only when some left
            owned=True,  # indexing copied them
            stream=None if self.stream is None else self.stream[mask],
            ball=self.ball,
        )

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """Into the ε-ball around each clean image, and into [0,1] (in place for L∞)."""
        if self.ball.name == "linf":
            return x.clamp_(self.lower, self.upper)
        return self.ball.project(x, self.clean, self.eps)

    def rounded(self, x: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` (the active rows, or those at ``rows``) rounded to 8 bits inside the ε-ball."""
        if self.ball.name != "linf":
            clean, eps = (self.clean, self.eps) if rows is None else (self.clean[rows], self.eps[rows])
            return self.ball.quantize(x.detach(), clean, eps)
        if self.grid is None:
            self.grid = _grid_bounds(self.lower, self.upper, self.clean, self.eps)
        low, high = self.grid if rows is None else (self.grid[0][rows], self.grid[1][rows])
        return _round_into_ball(x.detach(), low, high)

    def direction(self, grad: torch.Tensor) -> torch.Tensor:
        """The norm's steepest ascent direction for ``grad`` at the current iterate (unit size: a step
        multiplies it by ``alpha``); in ``grad``'s memory for L∞ and L2."""
        if self.ball.name == "l1":
            return self.ball.direction(grad, self.x.detach(), self.alpha)
        return self.ball.direction(grad)

    def step(self, direction: torch.Tensor) -> None:
        """One step along ``direction`` (the norm's steepest direction for the gradient of the goal's loss:
        its sign for L∞), projected into the ε-ball and clipped to [0,1]: into ``x`` itself when the loop
        owns it (its graph is gone once the gradient is taken), else into a new tensor (iterate 0 may be
        the clean images)."""
        if self.owned:
            self.x = self.project(self.x.addcmul_(self.alpha, direction))
        else:
            self.x, self.owned = self.project(torch.addcmul(self.x.detach(), self.alpha, direction)), True


class Recorder:
    """Per-iterate curves and the returned image of every row, filled in as the loop runs."""

    def __init__(self, clean: torch.Tensor, steps: int, targeted: bool) -> None:
        n, device, columns = clean.shape[0], clean.device, steps + 1
        self.label_probs = torch.full((n, columns), float("nan"), device=device)
        self.target_probs = torch.full((n, columns), float("nan"), device=device) if targeted else None
        self.top_classes = torch.full((n, columns), -1, dtype=torch.long, device=device)
        self.top_probs = torch.full((n, columns), float("nan"), device=device)
        self.first_success = torch.full((n,), -1, dtype=torch.long, device=device)
        self.steps_run = torch.zeros(n, dtype=torch.long, device=device)
        self.clean = clean
        self.returned: torch.Tensor | None = None
        """The returned images: made on the first success, or the last iterate itself when no row succeeded."""
        self.returned_logits = torch.empty(0)
        self.rounded_logits = torch.empty(0)
        self.rounded_known = torch.zeros(n, dtype=torch.bool, device=device)
        self.returned_is_8bit = torch.zeros(n, dtype=torch.bool, device=device)
        self.first_sign: torch.Tensor | None = None

    def observe(self, k: int, active: Active, logits: torch.Tensor) -> None:
        """Curves at iterate ``k`` for the active rows."""
        if k == 0:
            self.returned_logits = logits.new_empty((self.clean.shape[0], logits.shape[1]))
            self.rounded_logits = torch.empty_like(self.returned_logits)
        probs = logits.softmax(dim=1)
        rows = active.rows
        self.label_probs[rows, k] = probs.gather(1, active.goal.labels[:, None]).squeeze(1)
        targets = active.goal.targets
        if self.target_probs is not None and targets is not None:
            self.target_probs[rows, k] = probs.gather(1, targets[:, None]).squeeze(1)
        self.top_probs[rows, k], self.top_classes[rows, k] = probs.max(dim=1)
        self.steps_run[rows] = k

    def rounded_predicted(self, rows: torch.Tensor, logits: torch.Tensor) -> None:
        """Rows (batch positions) whose 8-bit image the loop predicted, with its logits."""
        self.rounded_logits[rows] = logits
        self.rounded_known[rows] = True

    def succeed(self, k: int, active: Active, success: torch.Tensor, x: torch.Tensor, logits: torch.Tensor) -> None:
        """Remember iterate ``k`` as the returned image of the active rows that reached the goal."""
        rows = active.index[success]
        self.first_success[rows] = torch.where(self.first_success[rows] < 0, k, self.first_success[rows])
        self._return(rows, x[success])
        self.returned_logits[rows] = logits[success]

    def finish(
        self, active: Active, x: torch.Tensor, logits: torch.Tensor, *, rounded: bool = False, owned: bool = True
    ) -> None:
        """After the last step: rows that never succeeded return their final iterate (``rounded``: its
        8-bit image, which is then both the float and the 8-bit result). ``owned``: ``x`` is the loop's
        own tensor (not the clean images), so it can be returned as it is."""
        never = self.first_success[active.index] < 0
        if self.returned is None and active.whole and bool(never.all()):
            self.returned = x if owned else x.clone()  # no row succeeded or left the batch: no copy
            rows = active.index
        else:
            rows = active.index[never]
            self._return(rows, x[never])
        self.returned_logits[rows] = logits[never]
        if rounded:
            self.rounded_predicted(rows, logits[never])
            self.returned_is_8bit[rows] = True

    def _return(self, rows: torch.Tensor, images: torch.Tensor) -> None:
        if self.returned is None:
            self.returned = self.clean.clone()
        self.returned[rows] = images

    def trajectory(
        self, predict: Callable[[torch.Tensor], torch.Tensor], clean: torch.Tensor, eps: torch.Tensor,
        repredict_rounded: bool, norm: str = "linf",
    ) -> Trajectory:  # fmt: skip
        """What the loop found; ``predict`` gives the logits of images (the attack's :meth:`Attack.predict`)."""
        returned = clean.clone() if self.returned is None else self.returned  # None: no rows
        if bool(self.returned_is_8bit.all()):
            rounded = returned  # the same images, 8-bit already (Trajectory.take keeps them apart)
        else:
            rounded = returned.clone()
            todo = ~self.returned_is_8bit
            rounded[todo] = quantize_8bit(returned[todo], clean[todo], eps[todo], norm)
        # The loop re-predicted the rounded image of every success under the rounded verdict; the rest
        # are re-predicted here, in one batch.
        unknown = ~self.rounded_known
        if repredict_rounded and unknown.any():
            self.rounded_logits[unknown] = predict(rounded[unknown])
        return Trajectory(
            adversarial=returned,
            adversarial_logits=self.returned_logits,
            rounded=rounded,
            rounded_logits=self.rounded_logits,
            first_success=self.first_success,
            steps_run=self.steps_run,
            label_probs=self.label_probs,
            target_probs=self.target_probs,
            top_classes=self.top_classes,
            top_probs=self.top_probs,
            first_sign=self.first_sign,
        )


@dataclass
class Draws:
    """Expectation over transformation (Athalye et al. 2018): what ``N`` forward passes of one iterate
    through a randomized model give. ``loss``: (B,) the goal's loss averaged over the draws; ``grad``:
    the input gradient of that mean (one backward pass per draw), None without gradient."""

    loss: torch.Tensor
    grad: torch.Tensor | None


def vote_logits(votes: torch.Tensor, probs: torch.Tensor, draws: int) -> torch.Tensor:
    """The prediction of ``draws`` passes as logits: softmax of the result is (almost) the share of draws
    that predicted each class, so its top class is the one most draws predicted; a tie goes to the class
    with the higher mean probability (``probs``: summed over the draws; it weighs less than one vote)."""
    score = votes.add(probs, alpha=1 / (draws * (draws + 1)))
    return score.clamp_(min=1e-30).log_()


@dataclass(frozen=True)
class Attack:
    """What every attack loop shares: the forward pass of an iterate and the verdict on it.

    ``eot`` (≥ 1): forward passes per prediction, for models with randomness in ``forward``; above 1 each
    gradient is the mean over that many forward/backward passes and each prediction their vote (see
    :class:`Draws` and :func:`vote_logits`), at ``eot`` times the cost."""

    name: str = "bim"
    steps: int = 10
    random_start: bool = False
    early_stop: bool = True
    verdict: str = VERDICT_ROUNDED
    eot: int = 1
    norm: str = "linf"
    """The threat model (:mod:`.norms`): ``linf``, ``l2`` or ``l1``; ε is measured in it."""

    @property
    def ball(self) -> Ball:
        return ball(self.norm)

    def predict(self, model: WrappedModel, pixels: torch.Tensor) -> torch.Tensor:
        """Logits of ``pixels`` without gradient: one forward pass, or (``eot`` > 1) the draws' vote."""
        with torch.no_grad():
            if self.eot == 1:
                return model.logits(pixels)
            votes, probs = _vote(model, pixels, self.eot, None, None)[:2]
            return vote_logits(votes, probs, self.eot)

    def draw_classes(self, model: WrappedModel, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``eot`` forward passes without gradient: each draw's top class (B×eot) and the mean
        probabilities (B×K)."""
        classes, probs = [], None
        with torch.no_grad():
            for _ in range(self.eot):
                p = model.logits(pixels).softmax(dim=1)
                classes.append(p.argmax(dim=1))
                probs = p if probs is None else probs.add_(p)
        assert probs is not None
        return torch.stack(classes, dim=1), probs.div_(self.eot)

    def run(
        self,
        model: WrappedModel,
        clean: torch.Tensor,
        goal: Goal,
        epsilon: float | torch.Tensor,
        *,
        noise: torch.Tensor | None = None,
        start: tuple[torch.Tensor, torch.Tensor] | None = None,
        names: Sequence[str] | None = None,
        repredict_rounded: bool = True,
    ) -> Trajectory:
        """Attack ``clean`` (N×C×H×W in [0,1], on the model's device) toward ``goal`` within ``epsilon``
        (a float, or one budget per image).

        ``noise`` (N×C×H×W in [-1, 1]) starts at ``clean + ε·noise``. ``start`` passes ``(x, logits)`` for
        iterate 0, computed on ``x = clean`` requiring grad, so the caller's clean forward pass is reused
        (ignored with noise). ``repredict_rounded=False`` skips re-predicting rounded images the loop did
        not check (their ``rounded_logits`` are then undefined): for callers that need ``first_success``.
        """
        eps = _per_image(epsilon, clean)
        lower, upper = _ball(clean, eps)
        index = torch.arange(clean.shape[0], device=clean.device)
        active = Active(index, clean, clean, lower, upper, eps, eps * self.initial_step, goal, ball=self.ball)
        if noise is not None:  # iterate 0 is never changed in place, so it may be the clean images themselves
            active.x, active.owned = active.project(self._start(clean, noise.to(clean.device), eps)), True
            active.stream = self._stream(noise)
        record = Recorder(clean, self.steps, targeted=goal.targets is not None)
        self._loop(model, active, record, None if noise is not None else start, names)
        predict = lambda pixels: self.predict(model, pixels)  # noqa: E731
        return record.trajectory(predict, clean, eps, repredict_rounded, self.norm)

    @property
    def initial_step(self) -> float:
        """The (first) step size as a multiple of ε."""
        raise NotImplementedError

    def _start(self, clean: torch.Tensor, noise: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """Iterate 0 from the rows' seeded noise (N×C×H×W in [-1, 1]), before projection: ``clean + ε·noise``
        for L∞, a point of the ball's surface for L2 and L1 (:meth:`~.norms.Ball.start`)."""
        return self.ball.start(clean, noise, eps)

    def _stream(self, noise: torch.Tensor) -> torch.Tensor | None:
        """Per row, the random draws the loop makes after its start (None: it makes none), drawn from the
        row's own noise so that they depend on the seed, the image and the target only, not on batching."""
        return None

    @property
    def floor_checked(self) -> bool:
        """Whether the sanity checks hold this attack to one FGSM step's result (every attack but FGSM; under
        L2 and L1 the norm's own steepest step: :meth:`~.norms.Ball.direction`)."""
        return self.name != "fgsm"

    def describe(self, epsilon: float) -> str:
        """Its steps and step size at a budget, for messages."""
        raise NotImplementedError

    def _loop(
        self,
        model: WrappedModel,
        active: Active,
        record: Recorder,
        start: tuple[torch.Tensor, torch.Tensor] | None,
        names: Sequence[str] | None,
    ) -> None:
        """Steps 0..``steps`` on the active rows, filling ``record``; ``start`` is iterate 0 if given."""
        raise NotImplementedError

    def _forward(
        self,
        model: WrappedModel,
        active: Active,
        k: int,
        reuse: tuple[torch.Tensor, torch.Tensor] | None,
        names: Sequence[str] | None,
        *,
        rounded: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, Draws | None]:
        """The iterate (requiring grad unless this is the last one), its logits and (``eot`` > 1) its
        draws; with ``rounded``, the iterate's 8-bit image instead."""
        if reuse is not None:
            return reuse[0], reuse[1], None  # the caller's clean forward pass, already checked there
        need_grad = k < self.steps and self.takes_gradient
        x = active.rounded(active.x) if rounded else active.x.detach()
        x = x.requires_grad_(need_grad)
        if self.eot > 1:
            votes, probs, draws = _vote(model, x, self.eot, active.goal, names if k == 0 else None)
            return x, vote_logits(votes, probs, self.eot), draws
        with torch.set_grad_enabled(need_grad):
            logits = model.logits(x)
        if k == 0:
            check_logits(logits.detach(), names)
        return x, logits, None

    def _judge(
        self, model: WrappedModel, k: int, active: Active, x: torch.Tensor, logits: torch.Tensor, record: Recorder,
        *, rounded: bool = False,
    ) -> torch.Tensor:  # fmt: skip
        """Record iterate ``k`` and return which active rows reached the goal under the verdict
        (re-predicting the 8-bit image of those that did in float; ``rounded``: ``x`` is 8-bit already)."""
        x, logits = x.detach(), logits.detach()
        record.observe(k, active, logits)
        success = active.goal.reached(logits)
        if not bool(success.any()):
            return success  # the robust case: nothing more to record
        if rounded:
            record.rounded_predicted(active.index[success], logits[success])
        elif self.verdict == VERDICT_ROUNDED:
            rows = success.nonzero().flatten()
            rounded_logits = self.predict(model, active.rounded(x[rows], rows))
            rounded_success = active.goal.select(rows).reached(rounded_logits)
            record.rounded_predicted(active.index[rows[rounded_success]], rounded_logits[rounded_success])
            success[rows] = rounded_success
        record.succeed(k, active, success, x, logits)
        return success

    @property
    def takes_gradient(self) -> bool:
        """Whether the loop needs input gradients (every attack but the score-based ones)."""
        return True

    def _loss(self, active: Active, logits: torch.Tensor, draws: Draws | None) -> torch.Tensor:
        """The goal's loss per row: of the logits, or (``eot`` > 1) its mean over the draws."""
        return active.goal.loss_rows(logits) if draws is None else draws.loss

    def _gradient(
        self, model: WrappedModel, k: int, active: Active, x: torch.Tensor, loss_rows: torch.Tensor,
        success: torch.Tensor, names: Sequence[str] | None, draws: Draws | None = None,
    ) -> torch.Tensor:  # fmt: skip
        """The input gradient of the summed loss (one backward pass, or the draws' mean gradient);
        checked on the first step."""
        if draws is not None:
            assert draws.grad is not None
            grad = draws.grad
        else:
            (grad,) = torch.autograd.grad(loss_rows.sum(), x)
            model.backward_passes += 1
        if k == 0:
            if bool(success.any()):  # those that reached the goal need no gradient
                check_gradient(grad[~success], active.index[~success], names)
            else:
                check_gradient(grad, active.index, names)
        return grad


def _vote(
    model: WrappedModel, x: torch.Tensor, eot: int, goal: Goal | None, names: Sequence[str] | None
) -> tuple[torch.Tensor, torch.Tensor, Draws | None]:
    """``eot`` forward passes of ``x``: the votes per class (B×K), the summed probabilities and, given a
    goal, the mean loss and (``x`` requiring grad) its gradient, one backward pass per draw so that only
    one graph is alive at a time. ``names``: check the logits of every draw (the first step)."""
    votes = probs = loss = grad = None
    need_grad = x.requires_grad and goal is not None
    for _ in range(eot):
        with torch.set_grad_enabled(need_grad):
            logits = model.logits(x)
            draw_loss = goal.loss_rows(logits) if goal is not None else None
        if need_grad:
            assert draw_loss is not None
            (g,) = torch.autograd.grad(draw_loss.sum(), x)
            model.backward_passes += 1
            grad = g if grad is None else grad.add_(g)
        detached = logits.detach()
        if names is not None:
            check_logits(detached, names)
        p = detached.softmax(dim=1)
        if votes is None:
            votes, probs = torch.zeros_like(p), p
        else:
            assert probs is not None
            probs = probs.add_(p)
        votes.scatter_add_(1, p.argmax(dim=1, keepdim=True), torch.ones_like(p[:, :1]))
        if draw_loss is not None:
            loss = draw_loss.detach() if loss is None else loss.add_(draw_loss.detach())
    assert votes is not None and probs is not None
    draws = None if loss is None else Draws(loss.div_(eot), None if grad is None else grad.div_(eot))
    return votes, probs, draws
