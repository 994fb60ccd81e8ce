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

from ..models.model import WrappedModel
from ..settings.values import VERDICT_ROUNDED
from .goals import Goal
from .loop import Active, Attack, Recorder

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
        """Per row and query, drawn from the row's seed: the window's top and left corner (as floats) and a
        sign per channel (±1). A query's window side is the same for every row (:meth:`side`)."""
        channels, height, width = noise.shape[1:]
        sides = torch.tensor([self.side(q, height, width) for q in range(self.steps)], dtype=torch.float32)
        rows = []
        for row in noise.detach().cpu():
            generator = torch.Generator().manual_seed(zlib.crc32(row.numpy().tobytes()))
            rows.append(torch.rand((self.steps, 2 + channels), generator=generator))
        if not rows:
            return torch.empty((0, self.steps, 2 + channels), device=noise.device)
        draws = torch.stack(rows)
        draws[:, :, 0] = (draws[:, :, 0] * (height - sides + 1)).floor_().minimum(height - sides)
        draws[:, :, 1] = (draws[:, :, 1] * (width - sides + 1)).floor_().minimum(width - sides)
        draws[:, :, 2:] = torch.where(draws[:, :, 2:] < 0.5, -1.0, 1.0)
        return draws.to(noise.device)  # float32 whatever the images' dtype: corners stay exact integers

    def side(self, query: int, height: int, width: int) -> int:
        """The window's side at ``query``: a square covering the schedule's share of the pixels, at least
        one pixel and (so that it can move) smaller than the image."""
        share = square_share(query, self.steps, self.p_init)
        return min(max(round(math.sqrt(share * height * width)), 1), max(min(height, width) - 1, 1))

    def _loop(
        self,
        model: WrappedModel,
        active: Active,
        record: Recorder,
        start: tuple[torch.Tensor, torch.Tensor] | None,
        names: Sequence[str] | None,
    ) -> None:
        rounded = self.verdict == VERDICT_ROUNDED
        windows = _Windows(active.clean.shape[2], active.clean.shape[3], active.clean.device)
        x, logits, _ = self._forward(model, active, 0, None, names, rounded=rounded)
        x, logits = x.detach(), logits.detach()
        best = margin(active.goal, logits)
        for k in range(self.steps + 1):
            if k > 0:
                x, logits, best = self._query(model, active, k - 1, x, logits, best, rounded, windows)
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
        best: torch.Tensor, rounded: bool, windows: _Windows,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
        """One query per row: a window moved to the other corner, kept where it lowers the margin."""
        assert active.stream is not None
        draws = active.stream[:, query]
        rows_in, cols_in = windows.masks(self.side(query, *windows.size), draws[:, 0], draws[:, 1])
        window = rows_in[:, None, :, None] & cols_in[:, None, None, :]  # N×1×H×W
        delta = torch.where(window, draws[:, 2:, None, None].to(x.dtype), 0.0)  # N×C×H×W: ±1 inside, 0 outside
        candidate = active.project(torch.addcmul(x, delta, 2 * active.eps))
        if rounded:
            candidate = active.rounded(candidate)
        candidate_logits = self.predict(model, candidate)
        candidate_margin = margin(active.goal, candidate_logits)
        better = candidate_margin < best
        x = torch.where(better[:, None, None, None], candidate, x)
        logits = torch.where(better[:, None], candidate_logits, logits)
        return x, logits, torch.minimum(candidate_margin, best)


class _Windows:
    """Row and column masks of a window of each side at each start, made once per side: a query's masks are
    then one lookup per row."""

    def __init__(self, height: int, width: int, device: torch.device) -> None:
        self.size = (height, width)
        self.device = device
        self._tables: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def masks(self, side: int, top: torch.Tensor, left: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """N×H and N×W bool: the rows ``top .. top + side − 1`` and columns ``left ..`` of each window."""
        tables = self._tables.get(side)
        if tables is None:
            tables = self._tables[side] = (
                _table(side, self.size[0], self.device),
                _table(side, self.size[1], self.device),
            )
        return tables[0][top.long()], tables[1][left.long()]


def _table(side: int, size: int, device: torch.device) -> torch.Tensor:
    """(size − side + 1)×size bool: row ``t`` marks positions ``t .. t + side − 1``."""
    positions = torch.arange(size, device=device)
    starts = torch.arange(size - side + 1, device=device)[:, None]
    return (positions >= starts) & (positions < starts + side)
