"""A user's own small model: a three-class colour classifier (red, green, blue) with chosen weights.

Its logit for a colour is 10 × the mean of that channel, so it is exactly linear and its robustness is
analytic: an image whose top two channel means differ by Δ (in [0,1] units) flips under an untargeted
L∞ attack exactly when ε > Δ / 2 (the margin 10·Δ over ‖w_top − w_second‖₁ = 20).
"""

from __future__ import annotations

import torch
from torch import nn

CLASS_NAMES = ("red", "green", "blue")


class ColorNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(10.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * x.mean(dim=(2, 3))


def make() -> nn.Module:
    return ColorNet()
