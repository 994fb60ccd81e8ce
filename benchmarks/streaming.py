"""Memory and throughput of a gate over many image files: peak RSS must not grow with the image count.

Writes N JPEG photos at 224×224 (crops and mirror images of the example photos, cached in
``--folder``), then, each in a fresh process, runs what the plugin runs for a marked test: the files read
batch by batch (``find_images``, decoding in a DataLoader worker while the attack runs), attacked, and
only per-image records kept (``keep_images=False``). Printed per model and N: wall time, images per
second, peak resident memory of the process, and, for comparison, the same attack on images already in
memory (no decoding: the attack's own floor; measured at the smallest N).

    python benchmarks/streaming.py                         # tiny CNN at 300, 1200, 5000 images
    python benchmarks/streaming.py --models tiny lite0 --counts 300 1200

Not part of the test suite: memory and speed are measured here, never asserted in unit tests.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def write_photos(folder: Path, count: int) -> Path:
    """``count`` distinct 224×224 JPEGs (random crops, scales and mirrors of real photos), written once."""
    import numpy as np
    from PIL import Image

    target = folder / f"photos-{count}"
    if target.exists() and len(list(target.glob("*.jpg"))) == count:
        return target
    target.mkdir(parents=True, exist_ok=True)
    photos = [
        Image.open(path).convert("RGB") for path in sorted((HERE.parent / "examples/imagenet/photos").glob("*.png"))
    ]
    rng = np.random.default_rng(0)
    for k in range(count):
        photo = photos[k % len(photos)]
        side = int(rng.integers(224, min(photo.size) + 1))
        left = int(rng.integers(0, photo.width - side + 1))
        top = int(rng.integers(0, photo.height - side + 1))
        crop = photo.crop((left, top, left + side, top + side)).resize((224, 224), Image.Resampling.BILINEAR)
        if rng.random() < 0.5:
            crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        crop.save(target / f"{k:05d}.jpg", quality=90)
    return target


def tiny_model() -> Any:
    import torch
    from torch import nn

    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 16, 5, stride=4), nn.ReLU(), nn.Conv2d(16, 32, 3, stride=2), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10),
    ).eval()  # fmt: skip


def lite0_model() -> Any:
    sys.path.insert(0, str(HERE.parent / "examples" / "imagenet"))
    from efficientnet_lite import efficientnet_lite

    return efficientnet_lite(0)


def child(model_name: str, folder: Path, in_memory: bool) -> dict[str, Any]:
    """One measurement in this (fresh) process."""
    import torch

    from pytest_advrobust.core.api import run_attack
    from pytest_advrobust.core.data.images import find_images
    from pytest_advrobust.core.settings import Source, resolve

    torch.set_num_threads(2)
    model = tiny_model() if model_name == "tiny" else lite0_model()
    normalization = {} if model_name == "tiny" else {"mean": "imagenet", "std": "imagenet"}
    config = resolve([({"epsilon": 0.007, "attack": "fgsm", "targets": "untargeted", **normalization},
                       Source("call", "benchmark"))])  # fmt: skip
    images: Any = find_images(folder)
    if in_memory:
        images = images.load()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    result = run_attack(config, model, images, keep_images=False)
    seconds = time.perf_counter() - start
    return {
        "images": len(result.records),
        "seconds": seconds,
        "flipped": len(result.flips),
        "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "before_mib": before,
    }


def measure(model_name: str, folder: Path, in_memory: bool = False) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", model_name, str(folder)] + (["--in-memory"] if in_memory else [])
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return dict(json.loads(output.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["tiny"], choices=["tiny", "lite0"])
    parser.add_argument("--counts", nargs="+", type=int, default=[300, 1200, 5000])
    parser.add_argument("--folder", type=Path, default=Path("/tmp/advrobust-streaming"))
    parser.add_argument("--child", nargs=2, metavar=("MODEL", "FOLDER"), help=argparse.SUPPRESS)
    parser.add_argument("--in-memory", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], Path(args.child[1]), args.in_memory)))
        return
    print("| model | images | source | wall time (s) | images/s | peak RSS (MiB) | flipped |")
    print("|---|---|---|---|---|---|---|")
    for model_name in args.models:
        for count in args.counts:
            folder = write_photos(args.folder, count)
            rows = [("files, streamed", measure(model_name, folder))]
            if count == min(args.counts):
                rows.append(("in memory (attack only)", measure(model_name, folder, in_memory=True)))
            for source, row in rows:
                print(
                    f"| {model_name} | {count} | {source} | {row['seconds']:.1f} "
                    f"| {row['images'] / row['seconds']:.0f} | {row['peak_mib']:.0f} | {row['flipped']} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
