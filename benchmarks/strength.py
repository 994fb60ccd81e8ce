"""How strong is the gate? Robust accuracy (lower = stronger attack) and time, per attack, against
torchattacks' AutoAttack (standard: APGD-CE, APGD-T, FAB-T, Square) as the reference.

Two models: a small CNN adversarially trained on scikit-learn's bundled digits (ε = 0.2, 397 held-out
images; ``tests/defended.py``), where weak attacks overestimate robustness, and EfficientNet-Lite0 on
the example photos (ε = 1/255, float verdict, so that not everything flips). Every attack here uses the
float verdict, as torchattacks does; times are one run each, after a warm-up, on this machine.

    python benchmarks/strength.py              # both models
    python benchmarks/strength.py --digits     # the defended model only

Not part of the test suite (the suite checks APGD against the reference at equal steps, tests/core/test_apgd.py).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE.parent / "examples" / "imagenet"))

UNTARGETED = {"targets": "untargeted"}  # the default is top-9: each untargeted row says so
ATTACKS = [
    ("fgsm, untargeted", {"method": "fgsm", **UNTARGETED}),
    ("bim, 10 steps, untargeted", {"method": "bim", "steps": 10, **UNTARGETED}),
    ("pgd, 10 steps, untargeted", {"method": "pgd", "steps": 10, **UNTARGETED}),
    ("apgd, 10 steps, untargeted", {"method": "apgd", "steps": 10, **UNTARGETED}),
    ("apgd, 20 steps, untargeted", {"method": "apgd", "steps": 20, **UNTARGETED}),
    ("apgd, 100 steps, untargeted", {"method": "apgd", "steps": 100, **UNTARGETED}),
    ("fgsm top-9", {"method": "fgsm", "targets": "top-9"}),
    ("apgd top-9, 10 steps", {"method": "apgd", "steps": 10, "targets": "top-9"}),
    ("apgd top-9, 20 steps", {"method": "apgd", "steps": 20, "targets": "top-9"}),
]


def _ours(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, epsilon: float, **kwargs: object) -> float:
    from pytest_advrobust import attack

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return attack(model, x, y, epsilon=epsilon, verdict="float", batch_size=64, **kwargs).robust_accuracy


def _autoattack(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, epsilon: float, classes: int) -> float:
    import torchattacks

    adversarial = torchattacks.AutoAttack(model, norm="Linf", eps=epsilon, version="standard", n_classes=classes,
                                          seed=0)(x, y)  # fmt: skip
    with torch.no_grad():
        return float((model(adversarial).argmax(1) == y).float().mean())


def table(name: str, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, epsilon: float, classes: int) -> None:
    print(f"\n{name}: {len(y)} images, eps={epsilon:.4g}")
    print("| attack | robust accuracy | time |\n|---|---|---|")
    _ours(model, x[:4], y[:4], epsilon, method="bim", steps=2)  # warm-up
    rows = [(label, lambda kw=kw: _ours(model, x, y, epsilon, **kw)) for label, kw in ATTACKS]
    rows.append(("torchattacks AutoAttack (standard)", lambda: _autoattack(model, x, y, epsilon, classes)))
    for label, run in rows:
        start = time.perf_counter()
        accuracy = run()
        print(f"| {label} | {accuracy:.1%} | {time.perf_counter() - start:.1f} s |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--digits", action="store_true", help="the defended model only")
    args = parser.parse_args()
    torch.set_num_threads(2)
    from defended import EPSILON, defended_cnn, digits

    _, _, x, y = digits()
    table("defended CNN (digits, PGD adversarial training)", defended_cnn(), x, y, EPSILON, 10)
    if not args.digits:
        from efficientnet_lite import efficientnet_lite
        from pytest_advrobust import load_images
        from pytest_advrobust.core.model import WrappedModel

        photos = load_images(HERE.parent / "examples" / "imagenet" / "photos", input_size=224)
        net = efficientnet_lite(0).eval()
        model = WrappedModel(net, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))

        class Normalized(torch.nn.Module):
            def forward(self, pixels: torch.Tensor) -> torch.Tensor:
                return model.logits(pixels)

        normalized = Normalized().eval()
        with torch.no_grad():
            labels = normalized(photos.pixels).argmax(1)
        table("EfficientNet-Lite0 (4 photos, labels = clean predictions)", normalized, photos.pixels, labels, 1 / 255,
              1000)  # fmt: skip


if __name__ == "__main__":
    main()
