"""How strong is the gate? Robust accuracy (lower = stronger attack) and time, per attack, against
torchattacks' AutoAttack (standard: APGD-CE, APGD-T, FAB-T, Square) as the reference; Square against
torchattacks' Square at equal queries; and, on the defended model behind input noise (a randomized defense),
PGD with and without EOT against torchattacks' EOTPGD.

Two models: a small CNN adversarially trained on scikit-learn's bundled digits (ε = 0.2, 397 held-out
images; ``tests/defended.py``), where weak attacks overestimate robustness, and EfficientNet-Lite0 on
the example photos (ε = 1/255, float verdict, so that not everything flips). Every attack here uses the
float verdict, as torchattacks does, and every attack on all images as one batch, as torchattacks runs them;
times are one run each, after a warm-up, on this machine.

    python benchmarks/strength.py              # both models
    python benchmarks/strength.py --digits     # the defended model only (and its noise-injection variant)
    python benchmarks/strength.py --norms      # the defended model under L2 and L1 budgets only

Under L2 (ε₂ = 0.5) and L1 (ε₁ = 1.5) the reference is fra31's own AutoAttack (``pyautoattack``, standard
version: APGD-CE, APGD-T, FAB-T, Square; under L1 with its 5 restarts and larger-ε schedule), and under L2
torchattacks' AutoAttack too.

Not part of the test suite (the suite checks APGD against the reference at equal steps,
tests/core/attacks/test_apgd.py).
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
    ("square, 1000 queries, untargeted", {"method": "square", "queries": 1000, **UNTARGETED}),
    ("square, 5000 queries, untargeted", {"method": "square", "queries": 5000, **UNTARGETED}),
    ("profile quick", {"profile": "quick"}),
    ("profile standard (the default)", {"profile": "standard"}),
    ("profile thorough", {"profile": "thorough"}),
]
NORM_BUDGETS = {"l2": 0.5, "l1": 1.5}
"""Budgets on the 8×8 digits that leave about half of the defended model's images robust."""
NORM_ATTACKS = [
    ("fgsm, untargeted", {"method": "fgsm", **UNTARGETED}),
    ("bim, 10 steps, untargeted", {"method": "bim", "steps": 10, **UNTARGETED}),
    ("apgd, 10 steps, untargeted", {"method": "apgd", "steps": 10, **UNTARGETED}),
    ("apgd top-9, 10 steps", {"method": "apgd", "steps": 10, "targets": "top-9"}),
    ("bim top-9, 10 steps", {"method": "bim", "steps": 10, "targets": "top-9"}),
    ("autoattack, 10 steps", {"method": "autoattack", "steps": 10}),
    ("square, 1000 queries, untargeted (l2)", {"method": "square", "queries": 1000, **UNTARGETED}),
    ("profile quick", {"profile": "quick"}),
    ("profile standard (the default)", {"profile": "standard"}),
    ("profile thorough", {"profile": "thorough"}),
]
EOT_SIGMA = 0.3
"""The noise-injection model's input noise (a randomized defense: fresh Gaussian noise in every forward)."""


def _ours(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, epsilon: float, **kwargs: object) -> float:
    from pytest_advrobust import attack

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return attack(model, x, y, epsilon=epsilon, verdict="float", batch_size="all", **kwargs).robust_accuracy


def _autoattack(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, epsilon: float, classes: int) -> float:
    import torchattacks

    adversarial = torchattacks.AutoAttack(model, norm="Linf", eps=epsilon, version="standard", n_classes=classes,
                                          seed=0)(x, y)  # fmt: skip
    with torch.no_grad():
        return float((model(adversarial).argmax(1) == y).float().mean())


def _square_reference(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, epsilon: float, queries: int) -> float:
    import torchattacks

    adversarial = torchattacks.Square(model, eps=epsilon, n_queries=queries, seed=0)(x, y)
    with torch.no_grad():
        return float((model(adversarial).argmax(1) == y).float().mean())


def _fra31_autoattack(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, norm: str, epsilon: float) -> float:
    from pyautoattack import AutoAttack

    reference = AutoAttack(model, norm={"l2": "L2", "l1": "L1"}[norm], eps=epsilon, version="standard", device="cpu",
                           seed=0)  # fmt: skip
    adversarial, _ = reference.run_standard_evaluation(x, y, batch_size=len(y))
    with torch.no_grad():
        return float((model(adversarial).argmax(1) == y).float().mean())


def _torchattacks_l2(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, epsilon: float, classes: int) -> float:
    import torchattacks

    adversarial = torchattacks.AutoAttack(model, norm="L2", eps=epsilon, version="standard", n_classes=classes,
                                          seed=0)(x, y)  # fmt: skip
    with torch.no_grad():
        return float((model(adversarial).argmax(1) == y).float().mean())


def norm_table(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, norm: str) -> None:
    """The gate under ``norm`` against fra31's AutoAttack for that norm (and torchattacks' under L2)."""
    epsilon = NORM_BUDGETS[norm]
    print(f"\ndefended CNN under {norm}: {len(y)} images, eps={epsilon:g} ({norm})")
    print("| attack | robust accuracy | time |\n|---|---|---|")
    _ours(model, x[:4], y[:4], epsilon, method="bim", steps=2, norm=norm)  # warm-up
    rows = [
        (label, lambda kw=kw: _ours(model, x, y, epsilon, norm=norm, **kw))
        for label, kw in NORM_ATTACKS
        if norm == "l2" or kw.get("method") != "square"
    ]
    rows.append((f"fra31 AutoAttack {norm.upper()} (standard)", lambda: _fra31_autoattack(model, x, y, norm, epsilon)))
    if norm == "l2":
        rows.append(("torchattacks AutoAttack L2 (standard)", lambda: _torchattacks_l2(model, x, y, epsilon, 10)))
    for label, run in rows:
        start = time.perf_counter()
        accuracy = run()
        print(f"| {label} | {accuracy:.1%} | {time.perf_counter() - start:.1f} s |", flush=True)


def _majority(model: torch.nn.Module, images: torch.Tensor, y: torch.Tensor, draws: int = 21) -> float:
    """Robust accuracy of a randomized model: the share of images most of ``draws`` seeded passes get right."""
    with torch.random.fork_rng(), torch.no_grad():
        torch.manual_seed(2024)
        wrong = torch.stack([model(images).argmax(1) != y for _ in range(draws)]).sum(0)
    return float((wrong * 2 <= draws).float().mean())


def eot_table(inner: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, epsilon: float) -> None:
    """PGD (10 steps) on the defended CNN behind input noise, with and without EOT, and torchattacks' EOTPGD;
    every attack's images judged the same way (majority of 21 seeded draws)."""
    import torchattacks

    from defended import Noisy
    from pytest_advrobust import attack

    model = Noisy(inner, EOT_SIGMA).eval()
    print(f"\nnoise injection (sigma={EOT_SIGMA}) on the defended CNN: {len(y)} images, eps={epsilon:.4g}, "
          "robust accuracy by the majority of 21 draws")  # fmt: skip
    print("| attack | robust accuracy | time |\n|---|---|---|")
    settings = {"epsilon": epsilon, "method": "pgd", "steps": 10, "targets": "untargeted", "verdict": "float",
                "batch_size": "all"}  # fmt: skip

    def ours(eot: int) -> float:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = attack(model, x, y, eot=eot, sanity_checks=eot > 1, **settings)
        return _majority(model, result.adversarial, y)

    def theirs() -> float:
        torch.manual_seed(0)
        return _majority(model, torchattacks.EOTPGD(model, eps=epsilon, alpha=2.5 * epsilon / 10, steps=10,
                                                    eot_iter=20)(x, y), y)  # fmt: skip

    for label, run in [("pgd, 10 steps, no eot (refused unless sanity_checks=false)", lambda: ours(1)),
                       ("pgd, 10 steps, eot=20", lambda: ours(20)),
                       ("torchattacks EOTPGD, 10 steps, eot_iter=20", theirs)]:  # fmt: skip
        start = time.perf_counter()
        accuracy = run()
        print(f"| {label} | {accuracy:.1%} | {time.perf_counter() - start:.1f} s |", flush=True)


def table(name: str, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, epsilon: float, classes: int) -> None:
    print(f"\n{name}: {len(y)} images, eps={epsilon:.4g}")
    print("| attack | robust accuracy | time |\n|---|---|---|")
    _ours(model, x[:4], y[:4], epsilon, method="bim", steps=2)  # warm-up
    rows = [(label, lambda kw=kw: _ours(model, x, y, epsilon, **kw)) for label, kw in ATTACKS]
    for queries in (1000, 5000):
        rows.append((f"torchattacks Square, {queries} queries", lambda q=queries: _square_reference(model, x, y,
                     epsilon, q)))  # fmt: skip
    rows.append(("torchattacks AutoAttack (standard)", lambda: _autoattack(model, x, y, epsilon, classes)))
    for label, run in rows:
        start = time.perf_counter()
        accuracy = run()
        print(f"| {label} | {accuracy:.1%} | {time.perf_counter() - start:.1f} s |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--digits", action="store_true", help="the defended model only")
    parser.add_argument("--norms", action="store_true", help="the defended model under L2 and L1 only")
    args = parser.parse_args()
    torch.set_num_threads(2)
    from defended import EPSILON, defended_cnn, digits

    _, _, x, y = digits()
    defended = defended_cnn()
    if args.norms:
        for norm in NORM_BUDGETS:
            norm_table(defended, x, y, norm)
        return
    table("defended CNN (digits, PGD adversarial training)", defended, x, y, EPSILON, 10)
    for norm in NORM_BUDGETS:
        norm_table(defended, x, y, norm)
    eot_table(defended, x, y, EPSILON)
    if not args.digits:
        from efficientnet_lite import efficientnet_lite
        from pytest_advrobust import load_images
        from pytest_advrobust.core.models.model import WrappedModel

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
