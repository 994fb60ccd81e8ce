"""Attack speed side by side: a bare torch loop, pytest-advrobust, and torchattacks / Foolbox if installed.

Targeted iterative L∞ attack (BIM: 10 sign steps of 2.5·ε/10 toward the least-likely class, no random
start) and one FGSM step, each with the plugin's default checks (rounded verdict, sanity checks, early
stop), and on the small CNN the plugin's default gate as a whole (apgd-10 toward each of the 9 runner-up
classes in turn, for each image that holds), ε = 0.007, on a small CNN (64 images, 32×32) and on
EfficientNet-Lite0 (8 photos, 224×224).
Everything runs in one process, side by side: after a warm-up, ``--repeats`` rounds run every attack once,
in a shuffled order (FGSM next to its floor; a call shorter than 1.5 s is timed as the mean of several back
to back); each attack's time is its median, and each ratio the median over rounds of the two times in the
same round (this machine's timings vary by ±10% from run to run, which pairing within a round partly
cancels: compare ratios within one table). Peak memory is the process's resident memory above what
it was before the attack, sampled every 2 ms while the attack runs. "Floor" is the bare loop (steps ×
(one forward + one backward with respect to the input, a sign step and the projection into the ε-ball))
plus one forward pass to predict what it returns, the least any attack of this kind can cost; FGSM rows
are compared with FGSM's floor (one step of size ε).

    python benchmarks/attack_speed.py                  # both models, every attack available
    python benchmarks/attack_speed.py --large          # 1000 images at 224×224, batches of 32: peak memory
    python benchmarks/attack_speed.py --profile lite0  # where one attack's time goes (torch profiler)
    python benchmarks/attack_speed.py --only fgsm      # FGSM, its floor and the bare loop, nothing else
    python benchmarks/attack_speed.py --threads 1      # one CPU thread: steadier ratios on a small machine

After the table it prints, per model, the defaults' time over their reference (the median of the paired
ratios, with a 90% bootstrap interval over rounds) against the speed targets (:data:`TARGETS`). The FGSM
floor check runs on every image that held, so checked bim is measured against the floor plus that
check's one forward pass (target ≤ 1.03×); fgsm against its own floor (≤ 1.10×). On a small machine
the C allocator moves these ratios by up to ±10% between processes (a process whose freed tensors go
back to the system faults their pages in again on the next call);
``MALLOC_MMAP_THRESHOLD_=1000000000 MALLOC_TRIM_THRESHOLD_=100000000000`` before the command keeps
freed memory in the process, which makes runs repeat within about 2% (set both: either one alone turns
off glibc's own tuning of the other, and the trim threshold alone made the small CNN 3× slower here).

Not part of the test suite: speed is measured here, never asserted in unit tests.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

HERE = Path(__file__).resolve().parent
PHOTOS = HERE.parent / "examples" / "imagenet" / "photos"
EPSILON, STEPS = 0.007, 10
ALPHA = 2.5 * EPSILON / STEPS
DEFAULT_GATE = "advrobust, the default gate: apgd-10 toward the top-9 runner-ups, untargeted"
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class Counted(nn.Module):
    """Counts forward passes of the wrapped model (every attack's calls are seen the same way)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.inner(x)


class Normalized(nn.Module):
    def __init__(self, inner: nn.Module, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.inner = inner
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner((x - self.mean) / self.std)


def small_cnn() -> tuple[nn.Module, torch.Tensor, tuple[float, ...] | None, tuple[float, ...] | None]:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.BatchNorm2d(64),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(64, 64, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(64, 10),
    ).eval()
    images = torch.randint(0, 256, (64, 3, 32, 32), generator=torch.Generator().manual_seed(0)).float() / 255
    return model, images, None, None


def lite0(count: int = 8) -> tuple[nn.Module, torch.Tensor, tuple[float, ...], tuple[float, ...]]:
    sys.path.insert(0, str(PHOTOS.parent))
    from efficientnet_lite import efficientnet_lite
    from pytest_advrobust import load_images

    photos = load_images(PHOTOS, input_size=224).pixels
    # more images than photos: mirrored and shifted copies, still real photos on the 8-bit grid
    variants = [photos, photos.flip(-1), photos.roll(16, -1), photos.roll(16, -2)]
    images = torch.cat(variants * (count // (4 * len(photos)) + 1))[:count]
    return efficientnet_lite(0), images, IMAGENET_MEAN, IMAGENET_STD


def least_likely(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(images).argmin(dim=1)


def bare_loop(
    model: nn.Module, images: torch.Tensor, targets: torch.Tensor, steps: int = STEPS, alpha: float = ALPHA
) -> torch.Tensor:
    """The reference: BIM toward the targets, gradients w.r.t. the input only, nothing else."""
    lower, upper = (images - EPSILON).clamp(0, 1), (images + EPSILON).clamp(0, 1)
    x = images.clone()
    for _ in range(steps):
        x.requires_grad_(True)
        loss = F.cross_entropy(model(x), targets, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x)
        x = torch.min(torch.max(x.detach() - alpha * grad.sign(), lower), upper)
    return x


def runners(model_name: str) -> tuple[dict[str, Callable[..., dict[str, Any]]], int]:
    """Each available attack as a function that runs it once and returns what it did."""
    inner, images, mean, std = small_cnn() if model_name == "cnn" else lite0()
    plain = (Normalized(inner, mean, std) if mean is not None and std is not None else inner).eval()
    targets = least_likely(plain, images)
    counted = Counted(plain).eval()
    counted_raw = Counted(inner).eval()  # for attacks that normalize themselves
    out: dict[str, Callable[..., dict[str, Any]]] = {}

    def measure(model: Counted, run: Callable[[], tuple[torch.Tensor, int]]) -> Callable[..., dict[str, Any]]:
        def once(sample_memory: bool = False) -> dict[str, Any]:
            calls = model.calls
            memory = PeakMemory() if sample_memory else None
            if memory is not None:
                memory.__enter__()
            start = time.perf_counter()
            adversarial, backward = run()
            seconds = time.perf_counter() - start
            if memory is not None:
                memory.__exit__()
            with torch.no_grad():
                reached = (plain(adversarial).argmax(dim=1) == targets).float().mean().item()
            return {
                "seconds": seconds,
                "success": reached,
                "forward": model.calls - calls,
                "backward": backward,
                "linf": (adversarial - images).abs().max().item(),
                "peak MiB": memory.peak_mib if memory is not None else None,
            }

        return once

    out["bare loop"] = measure(counted, lambda: (bare_loop(counted, images, targets), STEPS))

    from pytest_advrobust import attack

    for name, options in (
        ("advrobust, equal work", {"early_stop": False, "sanity_checks": False, "verdict": "float"}),
        ("advrobust, early stop", {"early_stop": True, "sanity_checks": False}),
        ("advrobust, bim + default checks", {}),
    ):

        def ours(options: dict[str, Any] = options) -> tuple[torch.Tensor, int]:
            result = attack(
                counted_raw,
                images,
                epsilon=EPSILON,
                method="bim",
                steps=STEPS,
                targets=targets,
                batch_size="all",
                mean=mean,
                std=std,
                **options,
            )
            return result.adversarial_8bit if options.get(
                "verdict"
            ) != "float" else result.adversarial, result.backward_passes

        out[name] = measure(counted_raw, ours)

    if available("torchattacks"):
        import torchattacks

        ta_model = Counted(inner).eval()
        atk = torchattacks.PGD(ta_model, eps=EPSILON, alpha=ALPHA, steps=STEPS, random_start=False)
        if mean is not None and std is not None:
            atk.set_normalization_used(mean=list(mean), std=list(std))
        atk.set_mode_targeted_by_label(quiet=True)
        out["torchattacks"] = measure(ta_model, lambda: (atk(images, targets), STEPS))
    if available("foolbox"):
        import foolbox as fb

        fb_model = Counted(inner).eval()
        preprocessing = {"mean": list(mean), "std": list(std), "axis": -3} if mean and std else None
        fmodel = fb.PyTorchModel(fb_model, bounds=(0, 1), preprocessing=preprocessing)
        fb_attack = fb.attacks.LinfBasicIterativeAttack(abs_stepsize=ALPHA, steps=STEPS, random_start=False)
        criterion = fb.criteria.TargetedMisclassification(targets)
        out["foolbox"] = measure(fb_model, lambda: (fb_attack(fmodel, images, criterion, epsilons=EPSILON)[1], STEPS))

    def fgsm_defaults() -> tuple[torch.Tensor, int]:
        result = attack(counted_raw, images, epsilon=EPSILON, method="fgsm", targets=targets, batch_size="all",
                        mean=mean, std=std)  # fmt: skip
        return result.adversarial_8bit, result.backward_passes

    out["advrobust, fgsm + default checks"] = measure(counted_raw, fgsm_defaults)

    if model_name == "cnn":  # where nothing flips, every image is attacked toward all 9 runner-up classes

        def default_gate() -> tuple[torch.Tensor, int]:
            result = attack(counted_raw, images, epsilon=EPSILON, batch_size="all", mean=mean, std=std)
            return result.adversarial_8bit, result.backward_passes

        out[DEFAULT_GATE] = measure(counted_raw, default_gate)

    def floor(steps: int, alpha: float, checked: bool = False) -> Callable[[], tuple[torch.Tensor, int]]:
        """The bare loop (its steps and projections included), and one forward pass of what it returns."""

        def run() -> tuple[torch.Tensor, int]:
            x = bare_loop(counted, images, targets, steps, alpha)
            with torch.no_grad():
                counted(x)  # predict what is returned
                if checked:
                    counted(x)  # the FGSM floor check's one forward pass of the images that held
            return x, steps

        return run

    out["floor"] = measure(counted, floor(STEPS, ALPHA))
    out["floor + check"] = measure(counted, floor(STEPS, ALPHA, checked=True))
    out["fgsm floor"] = measure(counted, floor(1, EPSILON))  # one FGSM step, of size ε
    return out, len(images)


class PeakMemory:
    """Peak resident memory above the starting point while the block runs (sampled every 2 ms)."""

    def __enter__(self) -> PeakMemory:
        import threading

        self.start = self.peak = _rss()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self) -> None:
        while not self.stop.wait(0.002):
            self.peak = max(self.peak, _rss())

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()
        self.peak = max(self.peak, _rss())

    @property
    def peak_mib(self) -> float:
        return (self.peak - self.start) / 2**20


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


def available(attack_name: str) -> bool:
    module = {"torchattacks": "torchattacks", "foolbox": "foolbox"}.get(attack_name)
    if module is None:
        return True
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def paired_ratios(samples: dict[str, list[dict[str, Any]]], name: str, reference: str) -> list[float]:
    """Per round, ``name``'s time over ``reference``'s in the same round: the machine's drift between
    rounds cancels out."""
    return [row["seconds"] / ref["seconds"] for row, ref in zip(samples[name], samples[reference], strict=True)]


def paired_ratio(samples: dict[str, list[dict[str, Any]]], name: str, reference: str) -> float:
    """The median over rounds of the paired ratios."""
    return statistics.median(paired_ratios(samples, name, reference))


def interval(ratios: list[float], level: float = 0.9, resamples: int = 2000) -> tuple[float, float]:
    """A bootstrap interval for the median of ``ratios`` (resampling rounds): how far the median could
    move if the table ran again on this machine."""
    draw = random.Random(0).choices
    medians = sorted(statistics.median(draw(ratios, k=len(ratios))) for _ in range(resamples))
    tail = (1 - level) / 2
    return medians[int(tail * resamples)], medians[int((1 - tail) * resamples) - 1]


MALLOC_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")
MEMORY_KEPT = all(name in os.environ for name in MALLOC_SETTINGS)
"""The allocator keeps freed memory (see the module's docstring): the peak-memory column is then not shown."""

TARGETS = {
    "advrobust, bim + default checks": ("floor + check", 1.03),
    "advrobust, fgsm + default checks": ("fgsm floor", 1.10),
}
"""The speed targets: row → (the row it is timed against, the largest ratio that meets the target). bim's
reference includes the forward pass of the FGSM floor check, which runs on every image that held (a
weaker-than-FGSM attack must never read as robustness), so only the plugin's own overhead is held to 3%."""


def table(models: list[str], repeats: int, only: str | None = None) -> None:
    print(
        "| model | attack | wall time (s) | × bare loop | × floor | target reached "
        "| forward / backward passes | peak memory (MiB) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    verdicts: list[str] = []
    for model_name in models:
        runs, count = runners(model_name)
        if only is not None:  # the rows named so, next to their floors and nothing else
            keep = {name for name in runs if only in name} | {"bare loop"}
            keep |= {"fgsm floor" if "fgsm" in name else "floor" for name in keep}
            keep |= {"floor + check" for name in keep if "bim" in name}
            runs = {name: run for name, run in runs.items() if name in keep}
        # warm-up, which also measures memory (sampling costs time, so timed runs do not sample)
        warm = {name: run(sample_memory=True) for name, run in runs.items()}
        peaks = {name: row["peak MiB"] for name, row in warm.items()}
        # a short call is timed as the mean of several back to back, so that one sample lasts ~1.5 s
        calls = {name: max(1, min(20, round(1.5 / row["seconds"]))) for name, row in warm.items()}
        samples: dict[str, list[dict[str, Any]]] = {name: [] for name in runs}
        # FGSM and its floor run next to each other (a half-second call drifts with whatever ran before it)
        groups = [[name for name in runs if "fgsm" in name]] + [[name] for name in runs if "fgsm" not in name]
        for round_number in range(repeats):  # a new order each round, so no attack always runs first
            shuffle = random.Random(round_number).shuffle
            shuffle(groups)
            for group in groups:
                shuffle(group)
                for name in group:
                    rows = [runs[name]() for _ in range(calls[name])]
                    samples[name].append({**rows[-1], "seconds": statistics.fmean(r["seconds"] for r in rows)})
        median = {name: statistics.median(s["seconds"] for s in rows) for name, rows in samples.items()}
        labels = {"floor": "floor: bare loop + 1 forward",
                  "floor + check": "floor + 1 forward (the FGSM floor check's)",
                  "fgsm floor": "fgsm floor: bare loop of one ε step + 1 forward"}  # fmt: skip
        for name, rows in samples.items():
            last = rows[-1]
            own_floor = "fgsm floor" if "fgsm" in name else "floor"
            # with freed memory kept in the process, growth above the start says little
            peak = "n/a (memory kept)" if MEMORY_KEPT else f"{peaks[name]:.0f}"
            bare = f"{paired_ratio(samples, name, 'bare loop'):.2f}" if "bare loop" in runs else ""
            print(
                f"| {model_name} ({count} images) | {labels.get(name, name)} | {median[name]:.3f} | "
                f"{bare} | "
                f"{paired_ratio(samples, name, own_floor):.2f} | "
                f"{'' if name in labels or name == DEFAULT_GATE else format(last['success'], '.0%')} | "
                f"{last['forward']} / {last['backward']} | {peak} |"
            )
        for name in ("torchattacks", "foolbox"):
            if name not in runs and only is None:
                print(f"| {model_name} | {name} | not installed | | | | | |")
        verdicts.extend(against_targets(samples, model_name))
    print()
    print(f"torch threads: {torch.get_num_threads()}, rounds: {repeats}; the defaults against their reference "
          "(median of the paired ratios, 90% bootstrap interval over rounds):")  # fmt: skip
    for line in verdicts:
        print(f"- {line}")


def against_targets(samples: dict[str, list[dict[str, Any]]], model_name: str) -> list[str]:
    """For each row with a target, its ratio to its floor with an interval, and whether the target holds."""
    lines = []
    for name, (reference, target) in TARGETS.items():
        if name not in samples or reference not in samples:
            continue
        ratios = paired_ratios(samples, name, reference)
        low, high = interval(ratios)
        median = statistics.median(ratios)
        verdict = "met" if median <= target else "not met"
        if low <= target < high:
            verdict += ", but the interval straddles it"
        short = name.removeprefix("advrobust, ")
        line = (
            f"{model_name}, {short}: {median:.3f}× {reference} ({low:.3f}–{high:.3f}), target ≤ {target:.2f}: {verdict}"
        )
        if name == "advrobust, bim + default checks" and "floor + check" in samples:
            check = paired_ratios(samples, "floor + check", "floor")
            check_low, check_high = interval(check)
            line += (
                f"; the FGSM check's forward pass alone (floor + 1 forward): {statistics.median(check):.3f}× "
                f"({check_low:.3f}–{check_high:.3f})"
            )
        lines.append(line)
    return lines


def large() -> None:
    """1000 images at 224×224 through EfficientNet-Lite0, one FGSM step, batches of 32: bounded memory."""
    from pytest_advrobust import attack

    inner, images, mean, std = lite0(count=1000)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    result = attack(
        inner, images, epsilon=EPSILON, method="fgsm", targets="untargeted", mean=mean, std=std, batch_size=32
    )
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"1000 images 224×224, EfficientNet-Lite0, FGSM, batch_size=32: {seconds:.0f} s, "
        f"{len(result.flips)} flipped, peak RSS {peak:.0f} MiB (before the attack: {before:.0f} MiB; "
        f"the images alone are {images.numel() * 4 / 2**20:.0f} MiB)"
    )


def profile(model_name: str) -> None:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    from pytest_advrobust import attack

    inner, images, mean, std = small_cnn() if model_name == "cnn" else lite0()
    attack(inner, images, epsilon=EPSILON, method="bim", steps=STEPS, targets="least-likely", mean=mean, std=std,
           early_stop=False)  # fmt: skip
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        attack(
            inner,
            images,
            epsilon=EPSILON,
            method="bim",
            steps=STEPS,
            targets="least-likely",
            mean=mean,
            std=std,
            early_stop=False,
            sanity_checks=False,
            verdict="float",
        )
    print(prof.key_averages().table(sort_by="cpu_time_total", row_limit=15))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--models", nargs="+", default=["cnn", "lite0"], choices=["cnn", "lite0"], help="which models (default: both)"
    )
    parser.add_argument("--repeats", type=int, default=15, help="rounds of every row (default: 15)")
    parser.add_argument(
        "--only", metavar="TEXT", help="only the rows whose name contains TEXT, the bare loop and their floors"
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="torch's CPU threads (default: torch's own choice, one per core); 1 gives "
        "steadier ratios on a small machine",
    )
    parser.add_argument(
        "--large",
        action="store_true",
        help="instead of the table: 1000 Lite0 images, FGSM in batches of 32 (peak memory)",
    )
    parser.add_argument(
        "--profile",
        metavar="MODEL",
        choices=["cnn", "lite0"],
        help="instead of the table: one bim attack under torch's profiler",
    )
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.large:
        large()
    elif args.profile:
        profile(args.profile)
    else:
        table(args.models, args.repeats, args.only)


if __name__ == "__main__":
    main()
