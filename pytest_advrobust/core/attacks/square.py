"""Square attack for L∞ and L2 (Andriushchenko et al., ECCV 2020): a score-based attack that needs no gradient.

Under L∞ (:class:`SquareAttack`):
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

Under L2, :class:`SquareL2` (its own windows and start, the same loop). Under ``rounded`` its queries are
rounded to 8-bit images inside the L2 ball (:meth:`~.norms.Ball.quantize`) before they are queried.
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

__all__ = ["SquareAttack", "SquareL2", "square_attack", "square_share"]

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

    POSITIONS = 1
    """Windows per query (Square-L2 moves mass from a second window into the first)."""

    @staticmethod
    def has_norm(norm: str) -> bool:
        """Whether Square has a form under ``norm`` (L∞ and L2; L1 is left out, see the docs)."""
        return norm in ("linf", "l2")

    def _stream(self, noise: torch.Tensor) -> torch.Tensor:
        """Per row and query, drawn from the row's seed: each window's top and left corner (as floats), then
        (Square-L2) a coin that transposes its pattern, then a sign per channel (±1). A query's window side
        is the same for every row (:meth:`side`)."""
        channels, height, width = noise.shape[1:]
        sides = torch.tensor([self.side(q, height, width) for q in range(self.steps)], dtype=torch.float32)
        signs = 2 * self.POSITIONS + (self.POSITIONS > 1)
        draws = _row_draws(noise, (self.steps, signs + channels))
        for w in range(self.POSITIONS):
            top, left = draws[:, :, 2 * w], draws[:, :, 2 * w + 1]
            draws[:, :, 2 * w] = (top * (height - sides + 1)).floor_().minimum(height - sides)
            draws[:, :, 2 * w + 1] = (left * (width - sides + 1)).floor_().minimum(width - sides)
        draws[:, :, 2 * self.POSITIONS :] = torch.where(draws[:, :, 2 * self.POSITIONS :] < 0.5, -1.0, 1.0)
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

    def _candidate(
        self, active: Active, draws: torch.Tensor, side: int, x: torch.Tensor, windows: _Windows
    ) -> torch.Tensor:
        """The query's image: a window of ``x`` moved to the other corner of the ball."""
        rows_in, cols_in = windows.masks(side, draws[:, 0], draws[:, 1])
        window = rows_in[:, None, :, None] & cols_in[:, None, None, :]  # N×1×H×W
        delta = torch.where(window, draws[:, 2:, None, None].to(x.dtype), 0.0)  # N×C×H×W: ±1 inside, 0 outside
        return active.project(torch.addcmul(x, delta, 2 * active.eps))

    def _query(
        self, model: WrappedModel, active: Active, query: int, x: torch.Tensor, logits: torch.Tensor,
        best: torch.Tensor, rounded: bool, windows: _Windows,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
        """One query per row: a window moved to the other corner, kept where it lowers the margin."""
        assert active.stream is not None
        candidate = self._candidate(active, active.stream[:, query], self.side(query, *windows.size), x, windows)
        if rounded:
            candidate = active.rounded(candidate)
        candidate_logits = self.predict(model, candidate)
        candidate_margin = margin(active.goal, candidate_logits)
        better = candidate_margin < best
        x = torch.where(better[:, None, None, None], candidate, x)
        logits = torch.where(better[:, None], candidate_logits, logits)
        return x, logits, torch.minimum(candidate_margin, best)


@dataclass(frozen=True)
class SquareL2(SquareAttack):
    """Square for L2 (Andriushchenko et al., as fra31/auto-attack runs it): the start tiles the image with
    blocks of a pattern of nested squares (``+`` in one half, ``−`` in the other, a random sign per block and
    channel), scaled onto the L2 sphere of radius ε. Each query picks two windows of the schedule's side
    (odd, at least 3): the second window's perturbation is cleared and its L2 mass, with what is left of the
    budget, goes into the first, as the pattern (a random sign per channel, transposed or not) added to the
    first window's own perturbation; the whole perturbation is then scaled back onto the sphere and clipped
    to [0,1]. A query is kept when it lowers the margin, as under L∞."""

    norm: str = "l2"
    POSITIONS = 2

    def side(self, query: int, height: int, width: int) -> int:
        """The windows' side at ``query``: odd, at least 3 (AutoAttack's L2 rule), at most the image's side."""
        share = square_share(query, self.steps, self.p_init)
        side = max(round(math.sqrt(share * height * width)), 3)
        side += 1 - side % 2
        return max(min(side, height, width), 1)

    def _start(self, clean: torch.Tensor, noise: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        channels, height, width = clean.shape[1:]
        block = max(min(height, width) // 5, 1)
        draws = _row_draws(noise, (height // block, width // block, channels + 1), salt=b"start").to(clean.device)
        top, left = (height - block * (height // block)) // 2, (width - block * (width // block)) // 2
        delta = torch.zeros_like(clean)
        pattern = _pattern(block, clean.device, clean.dtype)
        for i in range(height // block):
            for j in range(width // block):
                signs = torch.where(draws[:, i, j, :channels] < 0.5, -1.0, 1.0).to(clean.dtype)
                flip = (draws[:, i, j, channels] < 0.5)[:, None, None, None]
                shape = torch.where(flip, pattern.T, pattern)  # N×1×s×s
                rows = slice(top + i * block, top + (i + 1) * block)
                cols = slice(left + j * block, left + (j + 1) * block)
                delta[:, :, rows, cols] = shape * signs[:, :, None, None]
        return clean + _onto_sphere(delta, eps)

    def _candidate(
        self, active: Active, draws: torch.Tensor, side: int, x: torch.Tensor, windows: _Windows
    ) -> torch.Tensor:
        clean, eps = active.clean, active.eps
        n, channels = x.shape[:2]
        delta = x - clean
        first = _window_index(draws[:, 0], draws[:, 1], side)
        second = _window_index(draws[:, 2], draws[:, 3], side)
        in_first = _take(delta, first)  # N×C×s×s
        first_mask = _mask(x, first)
        union = first_mask | _mask(x, second)
        mass_first = in_first.square().sum(dim=(2, 3), keepdim=True).sqrt()  # N×C×1×1
        mass_union = (delta * union).square().sum(dim=(2, 3), keepdim=True).sqrt()
        length = delta.flatten(1).square().sum(dim=1).sqrt().reshape(n, 1, 1, 1)
        pattern = _pattern(side, x.device, x.dtype)
        pattern = torch.where((draws[:, 4] < 0)[:, None, None, None], pattern.T, pattern)
        new = pattern * draws[:, 5:, None, None].to(x.dtype) + in_first / (mass_first + 1e-12)
        budget = ((eps.square() - length.square()).clamp_min(0) / channels + mass_union.square()).sqrt()
        new = new / (new.square().sum(dim=(2, 3), keepdim=True).sqrt() + 1e-12) * budget
        delta = delta.masked_fill(_mask(x, second), 0.0)
        delta = _put(delta, first, new)
        return (clean + _onto_sphere(delta, eps)).clamp_(0, 1)


def square_attack(queries: int, like: Attack) -> SquareAttack:
    """Square with ``queries`` queries under ``like``'s norm, verdict, early stop and EOT."""
    kind = SquareL2 if like.norm == "l2" else SquareAttack
    return kind(steps=queries, early_stop=like.early_stop, verdict=like.verdict, eot=like.eot, norm=like.norm)


def _row_draws(noise: torch.Tensor, shape: tuple[int, ...], salt: bytes = b"") -> torch.Tensor:
    """Per row, uniform draws in [0,1) of ``shape``, from a generator seeded by the row's own noise."""
    rows = []
    for row in noise.detach().cpu():
        generator = torch.Generator().manual_seed(zlib.crc32(salt + row.numpy().tobytes()))
        rows.append(torch.rand(shape, generator=generator))
    return torch.stack(rows) if rows else torch.empty((0, *shape))


def _onto_sphere(delta: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """``delta`` scaled to L2 length ε per image."""
    length = delta.flatten(1).square().sum(dim=1).sqrt().reshape(-1, *([1] * (delta.dim() - 1)))
    return delta / (length + 1e-12) * eps


def _pattern(side: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Square-L2's side×side pattern (AutoAttack's ``eta``): nested squares weighted 1/(k+1)² around the
    centre of each half, ``+`` in the top half and ``−`` in the bottom one, of L2 length 1."""
    pattern = torch.zeros(side, side, dtype=torch.float64)
    pattern[: side // 2] = _rectangles(side // 2, side)
    pattern[side // 2 :] = -_rectangles(side - side // 2, side)
    return (pattern / pattern.square().sum().sqrt().clamp_min(1e-12)).to(device, dtype)


def _rectangles(height: int, width: int) -> torch.Tensor:
    """AutoAttack's ``eta_rectangles``: squares of growing size around the centre, each adding 1/(k+1)²."""
    out = torch.zeros(height, width, dtype=torch.float64)
    top, left = height // 2, width // 2
    for k in range(max(height // 2 + 1, width // 2 + 1)):
        out[max(top, 0) : min(top + 2 * k + 1, height), max(left, 0) : min(left + 2 * k + 1, width)] += 1 / (k + 1) ** 2
        top, left = top - 1, left - 1
    return out / out.square().sum().sqrt().clamp_min(1e-12) if out.numel() else out


def _window_index(top: torch.Tensor, left: torch.Tensor, side: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row, the window's row and column indices (N×s each)."""
    steps = torch.arange(side, device=top.device)
    return top.long()[:, None] + steps, left.long()[:, None] + steps


def _take(x: torch.Tensor, window: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """N×C×s×s: each row's window of ``x``."""
    rows, cols = window
    n = torch.arange(x.shape[0], device=x.device)[:, None, None]
    return x[n, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def _put(x: torch.Tensor, window: tuple[torch.Tensor, torch.Tensor], values: torch.Tensor) -> torch.Tensor:
    """``x`` with each row's window set to ``values`` (N×C×s×s)."""
    rows, cols = window
    n = torch.arange(x.shape[0], device=x.device)[:, None, None]
    out = x.clone()
    out[n, :, rows[:, :, None], cols[:, None, :]] = values.permute(0, 2, 3, 1)
    return out


def _mask(x: torch.Tensor, window: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """N×1×H×W bool: each row's window."""
    rows, cols = window
    in_rows = torch.zeros(x.shape[0], x.shape[2], dtype=torch.bool, device=x.device).scatter_(1, rows, True)
    in_cols = torch.zeros(x.shape[0], x.shape[3], dtype=torch.bool, device=x.device).scatter_(1, cols, True)
    return in_rows[:, None, :, None] & in_cols[:, None, None, :]


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
