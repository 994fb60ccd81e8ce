"""Minimal-ε search: batched bisection vs a linear ε scan (IBM ART's ``minimal=True``), same precision.

Prints, for an analytic linear classifier and a small CNN: attack runs, forward/backward passes, wall
time, and the largest disagreement with the analytic answer (linear) or with the scan (CNN). Then, on the
defended digits CNN (``tests/defended.py``) with the default apgd toward the top-9 runner-ups: the search's
cost and how many images the attack flips at the top of the range but the search finds no minimal ε for,
with every runner-up tried at each budget (as the plugin does) and with only the last one (as it did).

    python benchmarks/minimal_epsilon.py
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

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
            **{"method": "bim", "targets": "untargeted", **kw},
        )  # type: ignore[arg-type]
        runs, forward, backward = runs + 1, forward + result.forward_passes, backward + result.backward_passes
        for i, record in zip(todo, result.records, strict=True):
            if record.flipped:
                found[i] = k * PRECISION
    return found, runs, forward, backward


def compare(
    name: str,
    model: nn.Module,
    images: torch.Tensor,
    labels: list[int] | None,
    agreement: Callable[[list[float | None], list[float | None]], str],
    **kw: Any,
) -> None:
    """Run the bisection and the linear scan on the same problem and print one line."""
    start = time.perf_counter()
    result = attack(
        model,
        images,
        labels,
        epsilon=0.007,
        sanity_checks=False,
        minimal_epsilon=True,
        epsilon_max=EPS_MAX,
        epsilon_precision=PRECISION,
        **{"method": "bim", "targets": "untargeted", **kw},  # the attacks this benchmark was written for
    )
    bisect_time = time.perf_counter() - start
    runs = next(n for n in result.settings.notes if n.startswith("minimal-ε")).split(": ")[1]
    start = time.perf_counter()
    scanned, scan_runs, scan_f, scan_b = linear_scan(model, images, labels, **kw)
    print(
        f"{name}: bisection {runs}, {result.forward_passes} fwd / {result.backward_passes} bwd passes, "
        f"{bisect_time:.2f}s | linear scan {scan_runs} runs, {scan_f} fwd / {scan_b} bwd, "
        f"{time.perf_counter() - start:.2f}s | {agreement([r.minimal_epsilon for r in result.records], scanned)}"
    )


def main() -> None:
    model, images, truth = linear_problem()

    def against_truth(found: list[float | None], _: list[float | None]) -> str:
        errors = [f - t for f, t in zip(found, truth, strict=True) if f is not None and t <= EPS_MAX]
        return f"bisection − analytic ∈ [{min(errors):.2e}, {max(errors):.2e}] (precision {PRECISION})"

    compare("linear, fgsm, float", model, images, [0] * len(images), against_truth, method="fgsm", verdict="float")

    def against_scan(found: list[float | None], scanned: list[float | None]) -> str:
        gaps = [abs(f - s) for f, s in zip(found, scanned, strict=True) if f is not None and s is not None]
        return f"max |bisection − scan| = {max(gaps, default=0):.2e} over {len(gaps)} images"

    cnn, cnn_images = small_cnn()
    compare("small CNN, bim 10 steps, 8-bit", cnn, cnn_images, None, against_scan, steps=10)
    top_k_search()


def top_k_search(n: int = 200, epsilon: float = 0.15, top: float = 0.4) -> None:
    """Every runner-up at each budget vs the last one only: the search's cost, and the flips it misses."""
    import sys
    import warnings
    from pathlib import Path

    import pytest_advrobust.core.pipeline as pipeline

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from defended import defended_cnn, digits

    _, _, x, y = digits()
    model, x, y = defended_cnn(), x[:n], y[:n]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        at_top = attack(model, x, y, epsilon=top)
        flipped = {r.name for r in at_top.records if r.flipped and not r.misclassified}
        every = pipeline._search_tries
        for label, tries in (("every runner-up (now)", every), ("the last one only (before)", None)):
            if tries is None:
                pipeline._search_tries = lambda context, plan, outputs: [(plan.goal, None)]  # type: ignore[assignment]
            start = time.perf_counter()
            result = attack(model, x, y, epsilon=epsilon, minimal_epsilon=True, epsilon_max=top,
                            epsilon_precision=0.004)  # fmt: skip
            spent = time.perf_counter() - start
            pipeline._search_tries = every
            missed = sum(1 for r in result.records if r.name in flipped and r.minimal_epsilon is None)
            runs = next(note for note in result.settings.notes if note.startswith("minimal-ε search"))
            print(
                f"defended digits CNN, apgd top-9, eps {epsilon} .. {top}, {label}: {spent:.1f}s ({runs}); "
                f"{missed} of the {len(flipped)} images apgd flips at {top} have no minimal ε"
            )


if __name__ == "__main__":
    main()
