"""Threat models: the ball a perturbation stays in, per image, measured over the whole C×H×W image in [0,1]
pixel units. L∞ (the largest change of one pixel), L2 (the Euclidean length of the change) and L1 (the sum
of the changes' sizes).

Each :class:`Ball` says what an attack needs of its norm: the distance of a perturbation, the steepest
step for a gradient (the sign for L∞, the gradient over its L2 length for L2, the pixels with the largest
gradient filled to the box for L1: :func:`l1_steepest`), a random start inside the
ball, the projection of a point into the ball and [0,1] (L∞ and L2 exactly as AutoAttack does: clip, or
scale back onto the sphere then clip; L1 exactly onto the intersection of the ball and the box, Croce and
Hein's ``L1_projection``), and the rounding of an adversarial image to 8-bit pixels that stays inside the
ball (an 8-bit image a user could save).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..settings.values import NORMS, NormName

TINY = 1e-12
PIXEL_RESOLUTION = 2**-23
"""float32's spacing just below 1: how precisely a [0,1] pixel, and so its change, is stored."""


def per_image(value: float | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A scalar or per-image (N,) value as an N×1×1×1 tensor that broadcasts over each image."""
    tensor = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    if tensor.dim() == 0:
        tensor = tensor.expand(like.shape[0])
    return tensor.reshape(-1, *([1] * (like.dim() - 1)))


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1)


@dataclass(frozen=True)
class Ball:
    """A norm's ball around each clean image, intersected with [0,1]."""

    name: NormName

    def distance(self, delta: torch.Tensor) -> torch.Tensor:
        """(N,) the norm of each image's perturbation."""
        flat = _flat(delta).float()
        if self.name == "linf":
            return flat.abs().amax(dim=1) if flat.shape[1] else flat.new_zeros(flat.shape[0])
        if self.name == "l2":
            return flat.square().sum(dim=1).sqrt()
        return flat.abs().sum(dim=1)

    def direction(
        self, grad: torch.Tensor, x: torch.Tensor | None = None, size: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The steepest ascent direction of unit size for this norm: ``sign(grad)`` (L∞), ``grad / ‖grad‖₂``
        (L2), in place; for L1 it depends on where a step of ``size`` starts (``x``): :func:`l1_steepest`
        over ``size``."""
        if self.name == "linf":
            return grad.sign_()
        if self.name == "l2":
            return grad.div_(per_image(self.distance(grad), grad).clamp_min(TINY))
        if x is None or size is None:
            raise ValueError("an L1 step depends on where it starts: pass x and size")
        return l1_steepest(grad, x, size).div_(size.clamp_min(TINY))

    def start(self, clean: torch.Tensor, noise: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """A random start from the row's seeded uniform noise in [-1, 1] (before projection): ``clean +
        ε·noise`` (L∞); a point on the L2 sphere along Gaussian noise made from it; for L1, the Gaussian
        noise projected onto the L1 ball (as AutoAttack starts)."""
        eps = per_image(eps, clean)
        if self.name == "linf":
            return torch.addcmul(clean, noise, eps)
        gaussian = torch.erfinv(noise.clamp(-1 + 1e-6, 1 - 1e-6)).mul_(2**0.5)
        if self.name == "l2":
            unit = gaussian / per_image(self.distance(gaussian), gaussian).clamp_min(TINY)
            return torch.addcmul(clean, unit, eps)
        return self.project(clean + gaussian, clean, eps)

    def project(self, x: torch.Tensor, clean: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """``x`` moved into the ball around ``clean`` and into [0,1] (in place where it can be); ``eps`` a
        number, or one per image."""
        eps = per_image(eps, clean)
        if self.name == "linf":
            return torch.maximum(torch.minimum(x, clean + eps), clean - eps).clamp_(0, 1)
        delta = x - clean
        if self.name == "l2":
            length = per_image(self.distance(delta), delta)
            scale = torch.where(length > eps, eps / length.clamp_min(TINY), torch.ones_like(length))
            return clean.add(delta.mul_(scale)).clamp_(0, 1)
        delta += l1_projection(clean, delta, eps)
        # float32 rounding of the projected pixels can still overshoot ε by a hair: scaling toward the clean
        # image (inside [0,1]) takes the excess back
        length = per_image(self.distance(delta), delta)
        scale = torch.where(length > eps, eps / length.clamp_min(TINY), torch.ones_like(length))
        return clean.add(delta.mul_(scale)).clamp_(0, 1)  # (clipping only moves a pixel toward its clean value)

    def inside(
        self, adversarial: torch.Tensor, clean: torch.Tensor, eps: torch.Tensor, slack: float = 1e-5
    ) -> torch.Tensor:
        """(N,) whether each image is inside its ball (to ``slack``, relative, and to float32's resolution of
        a [0,1] pixel, :data:`PIXEL_RESOLUTION`, per changed pixel for L1 and over them in L2)."""
        eps_flat = eps.reshape(-1).to(torch.float32)
        return self.distance(adversarial - clean) <= eps_flat * (1 + slack) + self.resolution(adversarial, clean)

    def resolution(self, adversarial: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
        """(N,) how far float32 rounding alone can move the distance of ``adversarial`` from ``clean``: a
        pixel near 1 is stored to :data:`PIXEL_RESOLUTION`, so a sum over many changed pixels (L1) carries
        that much per pixel, an L2 length its root-sum-square."""
        changed = (_flat(adversarial) != _flat(clean)).sum(dim=1).float()
        if self.name == "linf":
            return torch.full_like(changed, PIXEL_RESOLUTION)
        return PIXEL_RESOLUTION * (changed if self.name == "l1" else changed.sqrt()).clamp_min(1)

    def quantize(self, adversarial: torch.Tensor, clean: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """``adversarial`` rounded to 8-bit pixels (k/255) without leaving the ball.

        Each pixel starts at its 8-bit neighbour nearer the clean pixel (so no pixel moves farther from
        it than the float image did, when the clean image is 8-bit itself); then, in order of how much
        nearer the other neighbour is to the float image, pixels take the other neighbour while the
        image stays inside the ball (L2: the sum of squares; L1: the sum). An image whose clean pixels are
        off the 8-bit grid may have no 8-bit image inside a small ball: it keeps the pixels nearer the
        clean ones (the record's distance shows how far that is).
        """
        eps = per_image(eps, clean)
        low = (adversarial * 255).floor_().clamp_(0, 255)
        high = (low + 1).clamp_(max=255)
        toward = torch.where((low - clean * 255).abs() <= (high - clean * 255).abs(), low, high)
        other = torch.where(toward == low, high, low)
        gain = (toward - adversarial * 255).abs() - (other - adversarial * 255).abs()  # > 0: other is nearer
        if self.name == "l2":
            base, extra = (toward / 255 - clean).square(), (other / 255 - clean).square()
        else:
            base, extra = (toward / 255 - clean).abs(), (other / 255 - clean).abs()
        cost = _flat(extra - base)
        budget = (eps.reshape(-1).to(cost.dtype) ** (2 if self.name == "l2" else 1)) - _flat(base).sum(dim=1)
        wanted = _flat(gain) > 1e-9
        order = torch.argsort(torch.where(wanted, _flat(gain), torch.full_like(cost, -1.0)), dim=1, descending=True)
        sorted_cost = torch.gather(torch.where(wanted, cost, torch.zeros_like(cost)), 1, order)
        fits = torch.cumsum(sorted_cost, dim=1) <= budget[:, None] * (1 - 1e-6)
        take_sorted = fits & torch.gather(wanted, 1, order)
        take = torch.zeros_like(wanted).scatter_(1, order, take_sorted)
        rounded = torch.where(take.reshape(adversarial.shape), other, toward)
        return rounded.div_(255)


def l1_steepest(grad: torch.Tensor, x: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
    """The L1 steepest-ascent step of L1 size ``size`` (per image) from ``x``, inside [0,1]: the pixels with
    the largest |gradient| each move along its sign as far as the box lets them, in that order, until the
    size is spent. It maximizes ``grad · step`` over ``‖step‖₁ ≤ size`` and ``x + step ∈ [0,1]``: one step
    of it is the exact answer for a linear model (the L1 analogue of FGSM's sign step)."""
    flat_grad, flat_x = _flat(grad).float(), _flat(x).float()
    room = torch.where(flat_grad > 0, 1 - flat_x, torch.where(flat_grad < 0, flat_x, torch.zeros_like(flat_x)))
    order = torch.argsort(flat_grad.abs(), dim=1, descending=True)
    sorted_room = torch.gather(room, 1, order)
    before = torch.cumsum(sorted_room, dim=1) - sorted_room
    budget = size.reshape(-1, 1).float()
    amount = torch.minimum((budget - before).clamp_min(0), sorted_room)
    moved = torch.zeros_like(flat_x).scatter_(1, order, amount)
    return (flat_grad.sign() * moved).reshape(grad.shape).to(grad.dtype)


def l1_projection(clean: torch.Tensor, delta: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """The change to ``delta`` that puts ``clean + delta`` into the L1 ball of radius ``eps`` around
    ``clean`` and into [0,1]: the exact projection onto their intersection (Croce & Hein, "Mind the box",
    ICML 2021; fra31/auto-attack's ``L1_projection``, by bisection over the sorted thresholds). Returns
    ``d`` with ``‖delta + d‖₁ ≤ eps`` and ``0 ≤ clean + delta + d ≤ 1`` (computed in float64; the reference's
    float32 can overshoot the ball by 1e-7 of ‖delta‖₁)."""
    shape = clean.shape
    # float64: the thresholds are cumulative sums as large as ‖delta‖₁, which float32 resolves to 1e-7 of it
    x = _flat(clean).double()
    y = _flat(delta).double()
    radius = eps.reshape(-1).double().to(x.device)
    sigma = y.sign()
    u = torch.minimum(torch.minimum(1 - x - y, x + y), torch.zeros_like(y))
    lower = -y.abs()
    d = u.clone()
    sorted_values, order = torch.sort(-torch.cat((u, lower), dim=1), dim=1)
    shifted = torch.cat((sorted_values[:, 1:], torch.zeros_like(sorted_values[:, :1])), dim=1)
    inu = 2 * (order < u.shape[1]).float() - 1
    size = inu.cumsum(dim=1)
    s1 = -u.sum(dim=1)
    c = radius - y.abs().sum(dim=1)
    rows = (s1 + c < 0).nonzero().squeeze(1)
    if rows.numel():
        s = s1[:, None] + torch.cumsum((shifted - sorted_values) * size, dim=1)
        lb = torch.zeros(rows.numel(), device=x.device, dtype=x.dtype)
        ub = torch.full_like(lb, sorted_values.shape[1] - 1)
        for _ in range(int(torch.ceil(torch.log2(torch.tensor(float(sorted_values.shape[1]))))) + 1):
            middle = torch.floor((lb + ub) / 2)
            below = s[rows, middle.long()] + c[rows] < 0
            lb = torch.where(below, middle, lb)
            ub = torch.where(below, ub, middle)
        at = lb.long()
        alpha = (-s[rows, at] - c[rows]) / size[rows, at + 1] + shifted[rows, at]
        d[rows] = -torch.minimum(torch.maximum(-u[rows], alpha[:, None]), -lower[rows])
    return (sigma * d).reshape(shape).to(delta.dtype)


def ball(name: str) -> Ball:
    """The :class:`Ball` of a norm by name."""
    for known in NORMS:
        if name == known:
            return Ball(known)
    raise ValueError(f"unknown norm {name!r}: one of {', '.join(NORMS)}")


LINF = ball("linf")
