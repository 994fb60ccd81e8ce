"""A small CNN adversarially trained (PGD, Madry et al.) on scikit-learn's bundled digits: a defended model
in seconds, on which weak attacks overestimate robustness. Used by the strength tests and benchmarks."""

from __future__ import annotations

import torch
from torch import nn

EPSILON = 0.2
"""The L∞ budget it is trained and evaluated at ([0,1] pixels of 8×8 digits)."""


def digits() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(train x, train y, test x, test y): 1×8×8 images in [0,1]; the last 397 images are held out."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16
    y = torch.tensor(data.target, dtype=torch.long)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    x, y = x[order], y[order]
    return x[:-397], y[:-397], x[-397:], y[-397:]


def _pgd(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int, g: torch.Generator
) -> torch.Tensor:
    delta = (torch.rand(x.shape, generator=g) * 2 - 1) * eps
    for _ in range(steps):
        delta.requires_grad_(True)
        loss = nn.functional.cross_entropy(model((x + delta).clamp(0, 1)), y)
        (grad,) = torch.autograd.grad(loss, delta)
        delta = (delta.detach() + 2.5 * eps / steps * grad.sign()).clamp(-eps, eps)
    return (x + delta).clamp(0, 1).detach()


def defended_cnn(epochs: int = 25, seed: int = 0, train_epsilon: float = EPSILON) -> nn.Module:
    """Train the defended model (about 10–20 s on 2 CPU cores); deterministic for a given torch and
    ``seed`` (0: the model the tests use). ``train_epsilon``: the PGD budget it is trained at (0: no
    adversarial training), for retrains of a weaker recipe."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1, stride=2),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(32 * 4 * 4, 64),
        nn.ReLU(),
        nn.Linear(64, 10),
    )
    x, y, _, _ = digits()
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(1 + seed)
    for _ in range(epochs):
        for batch in torch.randperm(len(y), generator=g).split(128):
            model.eval()
            adversarial = _pgd(model, x[batch], y[batch], train_epsilon, 5, g) if train_epsilon else x[batch]
            model.train()
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(adversarial), y[batch]).backward()
            optimizer.step()
    return model.eval()


class Noisy(nn.Module):
    """Fresh Gaussian noise on the input in every forward pass (noise injection, a randomized defense)."""

    def __init__(self, inner: nn.Module, sigma: float) -> None:
        super().__init__()
        self.inner, self.sigma = inner, sigma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.inner(x + self.sigma * torch.randn_like(x))
        return out
