"""How often does each baseline rule fail a retrain that is not less robust, and how often does it catch
one that is? Retrains of a small CNN on scikit-learn's bundled digits (``tests/defended.py``), gated at
ε = 0.1 on the 397 held-out digits with the default attack (apgd toward the 9 runner-ups, minimal ε
searched, as when baselines are in use):

- K retrains of one recipe (PGD adversarial training at ε = 0.15, 15 epochs), differing only in their
  seed: every ordered pair (baseline i, retrain j ≠ i) is a retrain that is not less robust, so a failure is
  a false alarm;
- weaker recipes (the same training at a smaller ε), a few seeds each: every pair (a same-recipe baseline,
  a weaker retrain) is a real drop, so a failure is a catch (the power at that drop).

For each rule, ``images`` (a baseline allows exactly its own flips) and ``statistical`` (McNemar on the
images whose outcome changed, Wilcoxon on minimal ε beyond the tolerance, at 1 - confidence), the share of
pairs that fail. Pairs share models, so they are not independent: read the rates as estimates.

    python benchmarks/statistical_rule.py                  # K = 8, weaker recipes at ε = 0.125, 0.10, 0.075, 0.05
    python benchmarks/statistical_rule.py --same 4 --weaker 0.05 --seeds 2   # quicker
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

EPSILON = 0.1
TRAIN_EPSILON = 0.15
EPOCHS = 15


def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[Any, Any]:
    """The model's baseline entry at ε: each image's outcome and minimal ε, as the plugin records it."""
    from pytest_advrobust import attack
    from pytest_advrobust.core.baselines.rule import baseline_entry

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = attack(model, x, y, epsilon=EPSILON, minimal_epsilon=True, epsilon_max=0.25)
    return baseline_entry(result.report(), "n/a", {}), result.accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--same", type=int, default=8, help="retrains of the recipe (K)")
    parser.add_argument("--weaker", type=float, nargs="*", default=[0.125, 0.10, 0.075, 0.05], help="their training ε")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per weaker recipe")
    parser.add_argument("--confidence", type=float, default=0.95)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from defended import defended_cnn, digits
    from pytest_advrobust.core.baselines.rule import compare
    from pytest_advrobust.core.baselines.statistical import StatisticalVerdict

    _, _, x, y = digits()
    tolerance = (0.0005, 0.0)
    start = time.perf_counter()
    recipe = {}
    for seed in range(args.same):
        recipe[seed] = evaluate(defended_cnn(EPOCHS, seed=seed, train_epsilon=TRAIN_EPSILON), x, y)
        print(f"recipe seed {seed}: robust accuracy {recipe[seed][1].text()}", flush=True)
    weaker = {}
    for train_epsilon in args.weaker:
        for seed in range(args.seeds):
            weaker[(train_epsilon, seed)] = evaluate(
                defended_cnn(EPOCHS, seed=100 + seed, train_epsilon=train_epsilon), x, y
            )
            print(
                f"weaker ε={train_epsilon:g} seed {seed}: robust accuracy {weaker[(train_epsilon, seed)][1].text()}",
                flush=True,
            )

    def rates(pairs: list[tuple[object, object]]) -> tuple[float, float, float]:
        images = statistical = 0
        drops = []
        for (before, before_accuracy), (now, now_accuracy) in pairs:
            comparison = compare(before, now, tolerance)
            images += comparison.failed(strict=False)
            statistical += StatisticalVerdict.of(comparison, args.confidence, tolerance).failed
            drops.append(100 * ((before_accuracy.value or 0) - (now_accuracy.value or 0)))
        return images / len(pairs), statistical / len(pairs), statistics.mean(drops)

    rows = []
    same_pairs = [(recipe[i], recipe[j]) for i, j in itertools.permutations(recipe, 2)]
    rows.append(("same recipe (false alarms)", len(same_pairs), *rates(same_pairs)))
    for train_epsilon in args.weaker:
        pairs = [(recipe[i], weaker[(train_epsilon, s)]) for i in recipe for s in range(args.seeds)]
        rows.append((f"trained at ε = {train_epsilon:g} (catches)", len(pairs), *rates(pairs)))
    print(
        f"\n{len(recipe) + len(weaker)} models in {time.perf_counter() - start:.0f} s; confidence {args.confidence}\n"
    )
    print("| retrain | pairs | mean drop (pt) | images rule fails | statistical rule fails |")
    print("|---|---|---|---|---|")
    for name, count, images, statistical_rate, drop in rows:
        print(f"| {name} | {count} | {drop:+.1f} | {images:.0%} | {statistical_rate:.0%} |")


if __name__ == "__main__":
    main()
