"""Images per second at ``batch_size=auto`` against fixed batch sizes, and against the bare loop.

Targeted BIM (10 sign steps of 2.5·ε/10 toward the least-likely class, ε = 0.007, the default checks:
rounded verdict, sanity checks, early stop) on three models: the small CNN of ``attack_speed.py`` (32×32,
where nothing flips), a ResNet-18 at 32×32 (torchvision's, 10 classes, random weights: ResNet-sized work at
CIFAR's size) and EfficientNet-Lite0 at 224×224 (the example photos, mirrored and shifted). Each row is
one batch size: ``auto`` (what the plugin chooses, measuring included: what it remembered from an earlier
run is forgotten before each one), then fixed sizes. Beside each, the bare loop (``attack_speed.py``'s:
steps × (forward + input gradient + sign step + projection), plus one forward of what it returns) over the
same images in the same batches (for auto: the sizes it attacked, in order). Rounds run every row once in
a shuffled order; times are medians over rounds, and the ratio to the best fixed size is the median over
rounds of the two times in the same round.

    python benchmarks/batch_size.py                       # all three models, 3 rounds
    python benchmarks/batch_size.py --models cnn --repeats 5
    python benchmarks/batch_size.py --threads 2           # torch's CPU threads (the docs' table: 2)
    python benchmarks/batch_size.py --device cuda         # on a GPU (benchmarks/gpu_batch.py runs it)

Prints a Markdown table, then per model auto's time over the best fixed size's (target ≤ 1.10×). The
allocator settings of ``attack_speed.py`` (``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``) steady
the timings here too. Not part of the test suite: speed is measured here, never asserted in unit tests.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from attack_speed import EPSILON, STEPS, Normalized, bare_loop, least_likely, lite0, small_cnn  # noqa: E402

from pytest_advrobust.core.data.batching import forget, shown_sizes  # noqa: E402

TARGET = 1.10
"""auto's time over the best fixed size's, at most."""
MODELS: dict[str, dict[str, Any]] = {
    "cnn": {"images": 512, "sizes": [8, 16, 32, 64, 128, "all"]},
    "resnet18-32": {"images": 512, "sizes": [16, 32, 64, 128, 256, "all"]},
    "lite0": {"images": 64, "sizes": [8, 16, 32, "all"]},
}
"""Per model: how many images, and the fixed sizes auto is compared with, on the CPU."""
GPU_MODELS: dict[str, dict[str, Any]] = {
    "cnn": {"images": 8192, "sizes": [32, 256, 1024, 4096, "all"]},
    "resnet18-32": {"images": 8192, "sizes": [32, 256, 1024, 4096, "all"]},
    "lite0": {"images": 1024, "sizes": [32, 128, 256, 512, "all"]},
}
"""The same on CUDA, where batches are larger."""


def resnet18_32(count: int) -> tuple[nn.Module, torch.Tensor, None, None]:
    """torchvision's ResNet-18 (10 classes, random weights) on 32×32 images on the 8-bit grid."""
    from torchvision.models import resnet18

    torch.manual_seed(0)
    images = torch.randint(0, 256, (count, 3, 32, 32), generator=torch.Generator().manual_seed(0)).float() / 255
    return resnet18(num_classes=10).eval(), images, None, None


def load(name: str, count: int) -> tuple[nn.Module, torch.Tensor, Any, Any]:
    if name == "cnn":
        model, images, mean, std = small_cnn()
        reps = -(-count // len(images))  # the 64 images, shifted, as many times as needed
        images = torch.cat([images.roll(k, -1) for k in range(reps)])[:count]
        return model, images, mean, std
    if name == "resnet18-32":
        return resnet18_32(count)
    return lite0(count)


def batches_of(sizes: list[int]) -> list[slice]:
    ends = [sum(sizes[: k + 1]) for k in range(len(sizes))]
    return [slice(end - size, end) for size, end in zip(sizes, ends, strict=True)]


def bare(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, sizes: list[int]) -> float:
    """Seconds for the bare loop over ``images`` in batches of ``sizes``, in order."""
    start = time.perf_counter()
    for part in batches_of(sizes):
        x = bare_loop(model, images[part], targets[part])
        with torch.no_grad():
            model(x)  # predict what is returned
    if images.is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start


def ours(
    model: nn.Module, images: torch.Tensor, targets: torch.Tensor, size: int | str, mean: Any, std: Any, device: str
) -> tuple[float, str, list[int]]:
    """Seconds for the plugin's attack in batches of ``size`` (auto measures afresh), its batching line and
    the sizes of its batches."""
    from pytest_advrobust import attack

    forget(model)
    start = time.perf_counter()
    result = attack(
        model, images, epsilon=EPSILON, method="bim", steps=STEPS, targets=targets, batch_size=size,
        mean=mean, std=std, device=device,
    )  # fmt: skip
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start, result.settings.batching, result.settings.batch_sizes


def run_model(name: str, repeats: int, device: str) -> tuple[list[str], dict[str, Any]]:
    spec = (GPU_MODELS if device.startswith("cuda") else MODELS)[name]
    inner, images, mean, std = load(name, spec["images"])
    inner = inner.to(device)
    images = images.to(device)
    plain = (Normalized(inner, mean, std) if mean is not None else inner).to(device).eval()
    targets = least_likely(plain, images)
    rows: list[int | str] = ["auto", *spec["sizes"]]
    ours(inner, images[:8], targets[:8], 8, mean, std, device)  # warm-up
    samples: dict[str, list[float]] = {str(size): [] for size in rows}
    bare_samples: dict[str, list[float]] = {str(size): [] for size in rows}
    lines: dict[str, str] = {}
    used: dict[str, list[int]] = {}
    for round_number in range(repeats):
        order = list(rows)
        random.Random(round_number).shuffle(order)
        for size in order:
            seconds, batching, sizes = ours(inner, images, targets, size, mean, std, device)
            samples[str(size)].append(seconds)
            lines[str(size)] = batching
            used[str(size)] = sizes
            bare_samples[str(size)].append(bare(plain, images, targets, sizes))
    count = len(images)
    median = {key: statistics.median(values) for key, values in samples.items()}
    fixed = [str(size) for size in spec["sizes"]]
    best = min(fixed, key=lambda key: median[key])
    ratios = [a / b for a, b in zip(samples["auto"], samples[best], strict=True)]
    table = []
    for key in samples:
        bare_median = statistics.median(bare_samples[key])
        label = f"auto ({shown_sizes(used[key])})" if key == "auto" else key
        table.append(
            f"| {name} ({count} images) | {label} | {count / median[key]:.1f} | {count / bare_median:.1f} | "
            f"{median[key] / bare_median:.2f} | {median[key] / median[best]:.2f} |"
        )
    verdict = {
        "model": name,
        "images": count,
        "best_fixed": best,
        "auto_over_best": statistics.median(ratios),
        "met": statistics.median(ratios) <= TARGET,
        "auto_batching": lines["auto"],
        "images_per_second": {key: count / median[key] for key in samples},
        "bare_images_per_second": {key: count / statistics.median(values) for key, values in bare_samples.items()},
    }
    return table, verdict


def main(argv: list[str] | None = None, write: Callable[[str], None] = print) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--repeats", type=int, default=3, help="rounds of every row (default: 3)")
    parser.add_argument("--threads", type=int, help="torch's CPU threads (default: torch's own choice)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--json", type=Path, help="also write the numbers to this JSON file")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    write("| model | batch size | advrobust images/s | bare loop images/s | × bare loop | × best fixed |")
    write("|---|---|---|---|---|---|")
    verdicts = []
    for name in args.models:
        table, verdict = run_model(name, args.repeats, args.device)
        for line in table:
            write(line)
        verdicts.append(verdict)
    write("")
    write(f"torch threads: {torch.get_num_threads()}, device: {args.device}, rounds: {args.repeats}")
    for verdict in verdicts:
        write(
            f"- {verdict['model']}: auto {verdict['auto_over_best']:.3f}× the best fixed size "
            f"({verdict['best_fixed']}), target ≤ {TARGET:.2f}: {'met' if verdict['met'] else 'not met'}; "
            f"{verdict['auto_batching']}"
        )
    if args.json is not None:
        args.json.write_text(json.dumps(verdicts, indent=2) + "\n")
    return verdicts


if __name__ == "__main__":
    main()
