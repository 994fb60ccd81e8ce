"""Minimal-ε search: batched bisection vs a linear ε scan (IBM ART's ``minimal=True``), same precision.

Prints, for an analytic linear classifier and a small CNN: attack runs, forward/backward passes, wall
time, and the largest disagreement with the analytic answer (linear) or with the scan (CNN).

    python benchmarks/minimal_epsilon.py
"""

from __future__ import annotations

import math
import time

import torch
from torch import nn

from pytest_advrobust import attack

EPS_MAX, PRECISION = 16 / 255, 0.0002


def linear_problem(n: int = 32) -> tuple[nn.Module, torch.Tensor, list[float]]:
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(2, 48, generator=generator)
    direction = (weight[0] - weight[1]).view(1, 3, 4, 4)
    l1 = float(direction.abs().sum())
    margins = torch.linspace(0.05, 3.0, n)
    base = torch.full((1, 3, 4, 4), 0.5)
    images = torch.cat([base + (float(m) / float((direction**2).sum())) * direction for m in margins])
    layer = nn.Linear(48, 2)
    with torch.no_grad():
        layer.weight.copy_(weight)
        layer.bias.copy_(torch.tensor([-float(direction.flatten() @ base.flatten()), 0.0]))
    return nn.Sequential(nn.Flatten(), layer), images, [float(m) / l1 for m in margins]


def small_cnn(n: int = 16) -> tuple[nn.Module, torch.Tensor]:
    """A small random CNN on random 8×8 images: a mix of images that flip at different budgets."""
    torch.manual_seed(2)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(4),
        nn.Flatten(),
        nn.Linear(8 * 16, 10),
    ).eval()
    images = torch.randint(0, 256, (n, 3, 8, 8), generator=torch.Generator().manual_seed(2)).float() / 255
    return model, images


def linear_scan(
    model: nn.Module, images: torch.Tensor, labels: list[int] | None, **kw: object
) -> tuple[list[float | None], int, int, int]:
    """The smallest ε on the grid k·PRECISION at which the attack succeeds, one attack run per ε."""
    found: list[float | None] = [None] * len(images)
    runs = forward = backward = 0
    for k in range(1, math.ceil(EPS_MAX / PRECISION) + 1):
        todo = [i for i, v in enumerate(found) if v is None]
        if not todo:
            break
        result = attack(
            model,
            images[todo],
            None if labels is None else [labels[i] for i in todo],
            epsilon=k * PRECISION,
            sanity_checks=False,
            **kw,
        )  # type: ignore[arg-type]
        runs, forward, backward = runs + 1, forward + result.forward_passes, backward + result.backward_passes
        for i, record in zip(todo, result.records, strict=True):
            if record.flipped:
                found[i] = k * PRECISION
    return found, runs, forward, backward


def main() -> None:
    rows = []
    model, images, truth = linear_problem()
    for name, kw in (("linear, fgsm, float", {"method": "fgsm", "verdict": "float"}),):
        start = time.perf_counter()
        result = attack(
            model,
            images,
            [0] * len(images),
            epsilon=0.007,
            sanity_checks=False,
            minimal_epsilon=True,
            epsilon_max=EPS_MAX,
            epsilon_precision=PRECISION,
            **kw,
        )  # type: ignore[arg-type]
        bisect_time = time.perf_counter() - start
        errors = [
            r.minimal_epsilon - t
            for r, t in zip(result.records, truth, strict=True)
            if r.minimal_epsilon is not None and t <= EPS_MAX
        ]
        runs = next(n for n in result.settings["notes"] if n.startswith("minimal-ε"))
        start = time.perf_counter()
        _, scan_runs, scan_f, scan_b = linear_scan(model, images, [0] * len(images), **kw)
        rows.append(
            (
                name,
                runs,
                result.forward_passes,
                result.backward_passes,
                bisect_time,
                scan_runs,
                scan_f,
                scan_b,
                time.perf_counter() - start,
                f"bisection − analytic ∈ [{min(errors):.2e}, {max(errors):.2e}] (precision {PRECISION})",
            )
        )
    cnn, cnn_images = small_cnn()
    start = time.perf_counter()
    result = attack(
        cnn,
        cnn_images,
        epsilon=0.007,
        steps=10,
        sanity_checks=False,
        minimal_epsilon=True,
        epsilon_max=EPS_MAX,
        epsilon_precision=PRECISION,
    )
    bisect_time = time.perf_counter() - start
    runs = next(n for n in result.settings["notes"] if n.startswith("minimal-ε"))
    start = time.perf_counter()
    scanned, scan_runs, scan_f, scan_b = linear_scan(cnn, cnn_images, None, steps=10)
    gaps = [
        abs(r.minimal_epsilon - s)
        for r, s in zip(result.records, scanned, strict=True)
        if r.minimal_epsilon is not None and s is not None
    ]
    rows.append(
        (
            "small CNN, bim 10 steps, 8-bit",
            runs,
            result.forward_passes,
            result.backward_passes,
            bisect_time,
            scan_runs,
            scan_f,
            scan_b,
            time.perf_counter() - start,
            f"max |bisection − scan| = {max(gaps, default=0):.2e} over {len(gaps)} images",
        )
    )
    for row in rows:
        name, runs, f, b, t, sr, sf, sb, st, agreement = row
        print(
            f"{name}: bisection {runs.split(': ')[1]}, {f} fwd / {b} bwd passes, {t:.2f}s | "
            f"linear scan {sr} runs, {sf} fwd / {sb} bwd, {st:.2f}s | {agreement}"
        )


if __name__ == "__main__":
    main()
