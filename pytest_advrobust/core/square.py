"""Square attack for L∞ (Andriushchenko et al., ECCV 2020): a score-based attack that needs no gradient.

It starts at a corner of the ε-ball made of vertical stripes (each column of each channel at ``+ε`` or
``−ε``, at random) and then, once per query, moves one random square window of every image to the other
corner (``±2ε``, one random sign per channel, projected back into the ε-ball and [0,1]), keeping the move
only when it lowers the margin ``z_label − max_{j≠label} z_j`` (toward a target: ``max_{j≠t} z_j − z_t``).
The window covers a share ``p`` of the pixels that starts at ``p_init`` = 0.8 and is halved after 10, 50,
200, 500, 1000, 2000, 4000, 6000 and 8000 of 10,000 queries, the schedule rescaled to the budget (as
torchattacks' ``Square(resc_schedule=True)`` does).

Like every attack it stops per image once the goal is reached, and judges under the verdict: under
``rounded`` every query is an 8-bit image inside the ε-ball (a window moves between the ball's 8-bit
corners), so what is queried is what is judged. Its random choices come from each image's seeded start,
so a result depends on the seed, the image and the target only. One query is one forward pass (``eot``
of them for a randomized model); it never takes a gradient, which is why it sees through masked ones.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .goals import Goal
from .loop import Active, Attack, Recorder
from .model import WrappedModel
from .report import VERDICT_ROUNDED

__all__ = ["SquareAttack", "square_share"]

P_INIT = 0.8
SCHEDULE = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)
"""Queries (of 10,000) after which the window's share of the pixels is halved."""


def square_share(query: int, queries: int, p_init: float = P_INIT) -> float:
    """The share of the pixels the window covers at ``query`` (0-based) of ``queries``: the paper's
    schedule for 10,000 queries, rescaled to the budget."""
    at = int(query / queries * 10_000)
    halvings = sum(1 for point in SCHEDULE if at > point)
    return float(p_init / 2**halvings)


def margin(goal: Goal, logits: torch.Tensor) -> torch.Tensor:
    """(N,) the margin Square lowers: below 0 the label is no longer on top (toward a target: the target is)."""
    targets = goal.targets
    key = goal.labels if targets is None else targets
    own = logits.gather(1, key[:, None]).squeeze(1)
    others = logits.scatter(1, key[:, None], float("-inf")).amax(dim=1)
    return own - others if targets is None else others - own


@dataclass(frozen=True)
class SquareAttack(Attack):
    """Square (L∞) with ``steps`` queries per image; see the module docstring."""

    name: str = "square"
    random_start: bool = True  # its stripes and every later choice come from the row's seeded noise
    p_init: float = P_INIT

    @property
    def initial_step(self) -> float:
        return 2.0  # a window moves from one corner of the ε-ball to the other

    @property
    def takes_gradient(self) -> bool:
        return False

    def describe(self, epsilon: float) -> str:
        return f"{self.steps} queries, p_init {self.p_init:g}"

    def _start(self, clean: torch.Tensor, noise: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        stripes = torch.where(noise[:, :, :1, :] < 0, -1.0, 1.0).to(clean.dtype)  # N×C×1×W: vertical stripes
        return torch.addcmul(clean, stripes.expand_as(clean), eps)

    def _stream(self, noise: torch.Tensor) -> torch.Tensor:
        """Per row, query and draw: the window's two corners (uniform in [0, 1)) and a sign per channel."""
        channels = noise.shape[1]
        rows = []
        for row in noise.detach().cpu():
            generator = torch.Generator().manual_seed(zlib.crc32(row.numpy().tobytes()))
            rows.append(torch.rand((self.steps, 2 + channels), generator=generator))
        return torch.stack(rows).to(noise.device) if rows else noise.new_empty((0, self.steps, 2 + channels))

    def _loop(
        self,
        model: WrappedModel,
        active: Active,
        record: Recorder,
        start: tuple[torch.Tensor, torch.Tensor] | None,
        names: Sequence[str] | None,
    ) -> None:
        rounded = self.verdict == VERDICT_ROUNDED
        height, width = active.clean.shape[2:]
        x, logits, _ = self._forward(model, active, 0, None, names, rounded=rounded)
        x, logits = x.detach(), logits.detach()
        best = margin(active.goal, logits)
        for k in range(self.steps + 1):
            if k > 0:
                x, logits, best = self._query(model, active, k - 1, x, logits, best, rounded, height, width)
            success = self._judge(model, k, active, x, logits, record, rounded=rounded)
            if k == self.steps:
                record.finish(active, x, logits, rounded=rounded)
                break
            if self.early_stop and bool(success.all()):
                break
            if self.early_stop and success.any():
                keep = ~success
                active = active.keep(keep)
                x, logits, best = x[keep], logits[keep], best[keep]

    def _query(
        self, model: WrappedModel, active: Active, query: int, x: torch.Tensor, logits: torch.Tensor,
        best: torch.Tensor, rounded: bool, height: int, width: int,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
        """One query per row: a window moved to the other corner, kept where it lowers the margin."""
        assert active.stream is not None
        channels = x.shape[1]
        share = square_share(query, self.steps, self.p_init)
        side = min(max(round(math.sqrt(share * height * width)), 1), max(min(height, width) - 1, 1))
        draws = active.stream[:, query]
        top = (draws[:, 0] * (height - side + 1)).long().clamp_(max=height - side)
        left = (draws[:, 1] * (width - side + 1)).long().clamp_(max=width - side)
        rows_in = _window(top, side, height, x.device)  # N×H
        cols_in = _window(left, side, width, x.device)  # N×W
        window = (rows_in[:, :, None] & cols_in[:, None, :])[:, None].to(x.dtype)  # N×1×H×W
        signs = torch.where(draws[:, 2 : 2 + channels] < 0.5, -1.0, 1.0).to(x.dtype)[:, :, None, None]
        candidate = active.project(torch.addcmul(x, window * signs, 2 * active.eps))
        if rounded:
            candidate = active.rounded(candidate)
        candidate_logits = self.predict(model, candidate)
        candidate_margin = margin(active.goal, candidate_logits)
        better = candidate_margin < best
        x = torch.where(better[:, None, None, None], candidate, x)
        logits = torch.where(better[:, None], candidate_logits, logits)
        return x, logits, torch.minimum(candidate_margin, best)


def _window(start: torch.Tensor, side: int, size: int, device: torch.device) -> torch.Tensor:
    """N×size bool: positions ``start .. start + side − 1`` of each row."""
    positions = torch.arange(size, device=device)[None, :]
    return (positions >= start[:, None]) & (positions < start[:, None] + side)
