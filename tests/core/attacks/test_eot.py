"""Expectation over transformation (``eot``) for models with randomness in ``forward``: the majority rule of
the verdict, reproducible draws that leave the caller's random state alone, the refusal without it, and the
strength of EOT-PGD (torchattacks' ``EOTPGD`` as the reference)."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest
import torch

from defended import Noisy
from helpers import grid_images, linear_model
from pytest_advrobust import ModelOutputError, attack
from pytest_advrobust.core.attacks.sign_gradient import SignGradientAttack
from pytest_advrobust.core.batch import DrawVerdict
from pytest_advrobust.core.models.model import WrappedModel


class Scripted(torch.nn.Module):
    """Answers class ``script[k]`` (one per image) in its k-th forward pass: draws whose outcome is known."""

    def __init__(self, script: Sequence[Sequence[int]], classes: int = 4) -> None:
        super().__init__()
        self.script, self.classes, self.calls = script, classes, 0
        self.anchor = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        chosen = torch.tensor(self.script[self.calls % len(self.script)])[: x.shape[0]]
        self.calls += 1
        logits = torch.nn.functional.one_hot(chosen, self.classes).float() * 3 + self.anchor
        return logits + x.flatten(1).mean(1, keepdim=True) * 0  # a graph to x, no effect


def test_an_image_flips_when_most_draws_flip() -> None:
    # five draws of three images whose label is 0
    script = [[0, 1, 1], [2, 0, 1], [2, 0, 2], [0, 3, 0], [1, 0, 0]]
    model = WrappedModel(Scripted(script))
    verdict = DrawVerdict.of(
        SignGradientAttack(eot=5), model, torch.zeros(3, 1, 2, 2), torch.zeros(3, dtype=torch.long)
    )
    assert verdict.flip_draws == [3, 2, 3]
    # image 0: 3 of 5 flip (to 2, 2, 1): flipped, shown as the class most flipped draws predict
    # image 1: 2 of 5 flip: held, shown as its label; image 2: 3 of 5 flip, to 1 and 2 (a tie: either)
    assert verdict.shown[:2] == [2, 0] and verdict.shown[2] in (1, 2)
    hit, miss = (float(torch.softmax(torch.tensor(logits), 0)[0]) for logits in ([3.0, 0, 0, 0], [0, 3.0, 0, 0]))
    assert verdict.shown_prob[1] == pytest.approx(0.6 * hit + 0.4 * miss, abs=1e-5)  # its mean probability


def _noisy_linear() -> tuple[torch.nn.Module, torch.Tensor]:
    weight = torch.randn(5, 3 * 8 * 8, generator=torch.Generator().manual_seed(0))
    return Noisy(linear_model(weight), 0.05).eval(), grid_images(6, seed=0)


def test_a_random_model_is_refused_without_eot_and_told_how() -> None:
    model, x = _noisy_linear()
    with pytest.raises(ModelOutputError, match=r"not deterministic.*--adv-eot=20"):
        attack(model, x, epsilon=4 / 255, method="bim")


def test_an_eot_run_is_reproducible_and_leaves_the_callers_random_state_alone() -> None:
    model, x = _noisy_linear()
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first = attack(model, x, epsilon=4 / 255, method="apgd", eot=5, batch_size=4)
    assert torch.equal(torch.get_rng_state(), state), "the caller's global random state is untouched"
    again = attack(model, x, epsilon=4 / 255, method="apgd", eot=5, batch_size=4)
    as_json = [json.dumps(r.to_json(), sort_keys=True) for r in first.records]
    assert as_json == [json.dumps(r.to_json(), sort_keys=True) for r in again.records]
    assert torch.equal(first.adversarial_8bit, again.adversarial_8bit)
    for record in first.records:
        assert record.draws == 5 and record.flip_draws is not None
        assert record.flipped == (record.flip_draws * 2 > 5)
        assert f"flips in {record.flip_draws} of 5 draws" in record.line()
    assert first.settings.eot == 5 and "eot=5" in first.settings.describe
    other = attack(model, x, epsilon=4 / 255, method="apgd", eot=5, batch_size=4, seed=1)
    assert [r.to_json() for r in other.records] != [r.to_json() for r in first.records]


def _majority_accuracy(model: torch.nn.Module, images: torch.Tensor, y: torch.Tensor, draws: int = 21) -> float:
    """The share of images most of ``draws`` seeded forward passes still classify correctly."""
    with torch.random.fork_rng(), torch.no_grad():
        torch.manual_seed(2024)
        wrong = torch.stack([model(images).argmax(1) != y for _ in range(draws)]).sum(0)
    return float((wrong * 2 <= draws).float().mean())


@pytest.mark.filterwarnings("ignore:one FGSM step succeeded")
def test_eot_is_within_two_points_of_torchattacks_eotpgd_and_stronger_than_no_eot(
    defended: tuple[torch.nn.Module, torch.Tensor, torch.Tensor],
) -> None:
    """PGD with 10 steps on the defended digits CNN behind input noise (σ = 0.3): robust accuracy by the
    majority of 21 seeded draws (lower = stronger) for each attack's returned images."""
    torchattacks = pytest.importorskip("torchattacks")
    from defended import EPSILON

    inner, x, y = defended
    model = Noisy(inner, 0.3).eval()
    settings = {"epsilon": EPSILON, "method": "pgd", "steps": 10, "targets": "untargeted", "verdict": "float",
                "batch_size": "all"}  # fmt: skip
    with_eot = attack(model, x, y, eot=10, **settings)
    without = attack(model, x, y, sanity_checks=False, **settings)  # refused with the checks on
    ours, blind = _majority_accuracy(model, with_eot.adversarial, y), _majority_accuracy(model, without.adversarial, y)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        reference = torchattacks.EOTPGD(model, eps=EPSILON, alpha=2.5 * EPSILON / 10, steps=10, eot_iter=10)
        theirs = _majority_accuracy(model, reference(x, y), y)
    assert ours < blind - 0.2, (ours, blind)
    assert abs(ours - theirs) <= 0.02, (ours, theirs)  # within two points of the reference
    assert abs(with_eot.robust_accuracy - ours) < 0.1, "its own verdict (10 fresh draws) agrees with 21 others"


def test_the_verdict_draws_do_not_depend_on_what_else_ran() -> None:
    """The minimal-ε search runs between the attack and the verdict: the verdict's draws are seeded on
    their own, so it does not change what flipped at ε."""
    model, x = _noisy_linear()
    settings = {"epsilon": 4 / 255, "method": "bim", "eot": 5, "targets": "untargeted"}
    plain = attack(model, x, **settings)
    searched = attack(model, x, minimal_epsilon=True, **settings)
    assert [(r.flipped, r.flip_draws) for r in plain.records] == [(r.flipped, r.flip_draws) for r in searched.records]
