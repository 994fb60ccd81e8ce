"""The images' settings: which images and labels, class names, batches, workers and shards.

Their defaults and auto rules (:func:`auto_workers`, and for the batch size :func:`auto_batch_limit`,
:func:`auto_batch_next`, :func:`auto_batch_larger` and :func:`auto_batch_take`) live here and nowhere else.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from . import parsers as p
from .option import Option
from .values import BatchSize

DEFAULT_BATCH_SIZE: BatchSize = "auto"
AUTO_BATCH_FIRST = 32
"""batch_size=auto times batches from this size on (on the CPU), and reads image files this many at a time."""
AUTO_BATCH_PIXELS = 32 * 224 * 224
"""On the CPU an auto batch holds at most this many pixels per channel (32 images at 224×224, 1568 at 32×32),
so memory stays bounded whatever the measurement finds."""
AUTO_BATCH_NEAR = 0.05
"""batch_size=auto on the CPU goes up to where a batch's fixed cost adds at most 5% per image (as fitted)."""
AUTO_BATCH_JUMP = 8
"""... but at most to 8 times the fastest size timed so far at once."""
AUTO_BATCH_PROBE = 4096
"""On CUDA the probe starts at this many images (or all of them, when fewer) and halves until one forward and
backward pass fits."""


def auto_workers(total: int | None, batch_size: BatchSize) -> int:
    """workers=auto: one decoding process when there is more than one batch (or the count is unknown);
    batch_size=auto reads :data:`AUTO_BATCH_FIRST` images at a time."""
    per_batch = AUTO_BATCH_FIRST if batch_size == "auto" else batch_size
    return 1 if total is None or (per_batch is not None and total > per_batch) else 0


def auto_batch_limit(height: int, width: int, rows_per_image: int = 1) -> int:
    """batch_size=auto on the CPU: the most images a batch may hold (:data:`AUTO_BATCH_PIXELS`); an image
    attacked toward several classes at once counts once per class (``rows_per_image``)."""
    return max(1, AUTO_BATCH_PIXELS // (max(height * width, 1) * max(rows_per_image, 1)))


def auto_batch_next(measured: Mapping[int, float], limit: int) -> int | None:
    """batch_size=auto on the CPU: the next batch size to time, or None once the fastest is known.

    ``measured`` maps each batch size timed so far to its seconds per image and forward pass. It starts
    at :data:`AUTO_BATCH_FIRST` and goes up while the largest size is the fastest (up to ``limit``, see
    :func:`auto_batch_larger`); when going up did not pay, it halves from the start while that pays. The
    fastest size measured is then kept (``min(measured, key=measured.get)``), as cuDNN's benchmark mode does.
    """
    first = min(AUTO_BATCH_FIRST, limit)
    if not measured:
        return first
    best = min(measured, key=lambda size: measured[size])
    larger = auto_batch_larger(measured, best, limit)
    if best == max(measured) and larger > best and larger not in measured:
        return larger
    if best == min(measured) and best <= first and best // 2 >= 1 and best // 2 not in measured:
        return best // 2
    return None


def auto_batch_larger(measured: Mapping[int, float], best: int, limit: int) -> int:
    """The size to time above the fastest so far, ``best`` (``best`` itself: none), never above ``limit``.

    Twice ``best``; or, with a smaller size timed too, as the two largest sizes timed say: their times fit
    ``overhead / size + floor`` per image, and the next size is where that comes within
    :data:`AUTO_BATCH_NEAR` of its floor (at least twice ``best``, at most :data:`AUTO_BATCH_JUMP` times
    it), or none when ``best`` is there already (larger batches would gain little and may lose more).
    """
    target = 2 * best
    smaller = [size for size in measured if size < best]
    if smaller:
        below = max(smaller)
        overhead = (measured[below] - measured[best]) / (1 / below - 1 / best)
        floor = measured[best] - overhead / best
        near = overhead / (AUTO_BATCH_NEAR * floor) if floor > 0 else math.inf
        if near <= best:
            return best
        target = max(target, min(AUTO_BATCH_JUMP * best, math.ceil(near) if near < math.inf else limit))
    return min(target, limit)


def auto_batch_take(size: int, remaining: int | None, limit: int) -> int:
    """How many images the next batch of a chosen ``size`` takes, of ``remaining`` (None: unknown), at most
    ``limit``: the last few (up to a quarter of ``size``) go with the batch before them, not alone."""
    if remaining is None or remaining > min(size * 5 // 4, limit):
        return size
    return remaining


OPTIONS: tuple[Option, ...] = (
    Option(
        "images",
        p.parse_paths,
        None,
        metavar="PATH",
        help="Image files or folders (PNG/JPEG; folders of <label>/<file> are read as labelled).",
        default_doc="none (define an adv_images fixture)",
    ),
    Option(
        "labels",
        p.parse_labels,
        None,
        metavar="FILE",
        help=(
            "Labels file: one 'filename,label' per line (label: class index or name), or 'prediction' to "
            "use the model's clean prediction."
        ),
        default_doc="folder names of an ImageFolder layout, else the model's clean prediction",
    ),
    Option(
        "class_names",
        p.parse_class_names,
        None,
        metavar="NAMES",
        help=(
            "Class names: 'imagenet' (from torchvision's metadata), a file with one name per line, or a "
            "comma-separated list."
        ),
        default_doc="none (classes are shown as indices)",
    ),
    Option(
        "batch_size",
        p.parse_batch_size,
        DEFAULT_BATCH_SIZE,
        metavar="N",
        help=(
            "Attack at most N images at once, so any number of images runs in bounded memory; results do "
            "not depend on it (up to float rounding). 'all' for one batch; 'auto' times the first batches "
            "at a few sizes on the CPU and keeps the fastest per image (at most 32 images' worth of "
            "224×224 pixels), and on CUDA takes the largest batch one forward and backward pass fits. Out of "
            "memory on CUDA, a batch is halved and retried. The sizes used, and why, are shown under -v."
        ),
    ),
    Option(
        "workers",
        p.parse_workers,
        None,
        metavar="N",
        help=(
            "Background processes that decode image files (or read a Dataset) while the attack runs "
            "(torch DataLoader workers); 0 decodes in the test's process."
        ),
        default_doc="auto: 1 when there is more than one batch, else 0",
    ),
    Option(
        "shards",
        p.parse_shards,
        1,
        metavar="N",
        help=(
            "Split a decorated test's images into N shards that run as separate test cases "
            "(test_x[shard1of4], ...), so pytest-xdist can spread them; reports and baselines merge them."
        ),
    ),
    Option(
        "shard",
        p.parse_job_shard,
        None,
        metavar="K/N",
        per_test=False,
        help=(
            "Run as job K of N of a CI matrix: every decorated test is split into N shards (whatever its "
            "shards setting) and only shard K runs; tests that call adv_attack themselves are dealt out over "
            "the jobs, other tests run in every job. --adv-report, --adv-html and --adv-markdown files get "
            ".shardKofN before their suffix; baseline updates go into the report, not the baseline folder. "
            "'python -m pytest_advrobust merge' makes the N reports one verdict, one report, one baseline."
        ),
    ),
)
