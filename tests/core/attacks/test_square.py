"""The Square attack: its schedule, the ε-ball and 8-bit guarantees every attack keeps, the analytic bound of
a linear model, no gradient needed, seeded per image, and at least torchattacks' strength."""

from __future__ import annotations

import pytest
import torch

from helpers import grid_images, linear_model
from pytest_advrobust import FalseRobustnessError, attack
from pytest_advrobust.core.attacks.square import square_share

SHAPE = (3, 8, 8)


def test_the_square_size_schedule_is_the_papers_rescaled_to_the_budget() -> None:
    # the paper's points for 10,000 queries: p_init until 10, halved after 10, 50, 200, 500, 1000, ...
    assert [square_share(q, 10_000) for q in (0, 10, 11, 50, 51, 200, 201, 9999)] == [
        0.8, 0.8, 0.4, 0.4, 0.2, 0.2, 0.1, 0.8 / 512
    ]  # fmt: skip
    # at 1000 queries the same shape, ten times faster
    assert [square_share(q, 1000) for q in (0, 1, 2, 5, 6, 999)] == [0.8, 0.8, 0.4, 0.4, 0.2, 0.8 / 512]


def _two_classes(margin: float, seed: int = 0) -> tuple[torch.nn.Module, torch.Tensor, float]:
    """A two-class linear model, an image of class 0 with logit margin ``margin``, and ‖w_0 − w_1‖₁: no
    image within ε of it flips below ε = margin / ‖w_0 − w_1‖₁ (pixels near 0.5: the ball is never clipped)."""
    generator = torch.Generator().manual_seed(seed)
    features = SHAPE[0] * SHAPE[1] * SHAPE[2]
    weight = torch.randn(2, features, generator=generator)
    x = (torch.full((1, *SHAPE), 128.0) + torch.randint(-8, 9, (1, *SHAPE), generator=generator)) / 255
    raw = float((weight[0] - weight[1]) @ x.flatten())
    return linear_model(weight, torch.tensor([margin - raw, 0.0])), x, float((weight[0] - weight[1]).abs().sum())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_square_meets_the_analytic_bound_of_a_linear_model(seed: int) -> None:
    model, x, l1 = _two_classes(margin=1.0, seed=seed)
    bound = 1.0 / l1  # the smallest ε at which any image in the ball flips (at the ball's corner)
    below = attack(model, x, [0], epsilon=0.9 * bound, method="square", queries=300, targets="untargeted",
                   verdict="float", seed=seed)  # fmt: skip
    assert not below.records[0].flipped, "nothing within ε flips below the bound"
    above = attack(model, x, [0], epsilon=1.5 * bound, method="square", queries=300, targets="untargeted",
                   verdict="float", seed=seed)  # fmt: skip
    record = above.records[0]
    assert record.flipped and record.found_by == "square"
    assert 0 < record.first_flip_step <= 300 and record.steps == 300
    assert "query" in record.line() and f"/{300}" in record.line()
    delta = above.adversarial - x
    assert float(delta.abs().max()) <= 1.5 * bound + 1e-6 and float(above.adversarial.min()) >= 0
    with torch.no_grad():  # re-predicting what the attack returned: the flip is real
        assert int(model(above.adversarial).argmax(1)) == 1 == record.adv_label


def test_under_the_rounded_verdict_every_query_is_an_8bit_image_inside_the_ball() -> None:
    model = linear_model(torch.randn(5, 3 * 8 * 8, generator=torch.Generator().manual_seed(3)))
    x = grid_images(8, seed=3)
    result = attack(model, x, epsilon=4 / 255, method="square", queries=200, targets="untargeted", sanity_checks=False)
    assert torch.equal(result.adversarial_8bit, (result.adversarial_8bit * 255).round() / 255)
    assert float((result.adversarial_8bit - x).abs().max()) <= 4 / 255 + 1e-6
    with torch.no_grad():
        predicted = model(result.adversarial_8bit).argmax(1).tolist()
    assert predicted == [record.adv_label_8bit for record in result.records]
    assert any(record.flipped for record in result.records) and not all(record.flipped for record in result.records)


def test_square_is_seeded_per_image_not_per_batch() -> None:
    model = linear_model(torch.randn(5, 3 * 8 * 8, generator=torch.Generator().manual_seed(4)) * 0.05)
    x = grid_images(7, seed=4)
    settings = {"epsilon": 2 / 255, "method": "square", "queries": 150, "targets": "untargeted"}
    whole = attack(model, x, batch_size="all", **settings)
    split = attack(model, x, batch_size=3, **settings)
    again = attack(model, x, batch_size="all", **settings)
    assert torch.equal(whole.adversarial_8bit, split.adversarial_8bit) and torch.equal(
        whole.adversarial_8bit, again.adversarial_8bit
    )
    assert [r.to_json() for r in whole.records] == [r.to_json() for r in again.records]
    other_seed = attack(model, x, batch_size="all", seed=1, **settings)
    assert not torch.equal(whole.adversarial_8bit, other_seed.adversarial_8bit)


class _Staircase(torch.nn.Module):
    """Non-differentiable preprocessing: the input is quantized (a straight-through-less round), so the
    input gradient is exactly zero and gradient attacks see nothing."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(torch.round(x * 16) / 16)


def test_square_needs_no_gradient() -> None:
    model, x, _ = _two_classes(margin=0.5, seed=5)
    staircase = _Staircase(model)
    with pytest.raises(FalseRobustnessError, match="exactly zero"):
        attack(staircase, x, [0], epsilon=0.1, method="apgd", targets="untargeted")
    result = attack(staircase, x, [0], epsilon=0.1, method="square", queries=200, targets="untargeted")
    assert result.records[0].flipped
    # an image that holds goes on to the FGSM floor check, which has no gradient to take: skipped, said
    sturdy, x, _ = _two_classes(margin=100.0, seed=5)
    held = attack(_Staircase(sturdy), x, [0], epsilon=0.1, method="square", queries=50, targets="untargeted")
    assert not held.records[0].flipped
    assert any("FGSM sanity check skipped" in note for note in held.settings.notes)


def test_square_is_within_a_point_of_torchattacks_at_equal_queries(
    defended: tuple[torch.nn.Module, torch.Tensor, torch.Tensor], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Robust accuracy on the adversarially trained digits CNN, 300 queries, four seeds.

    torchattacks' Square (like the paper's code) draws a window's corner with ``int(high * rand)`` from
    ``[0, h − s)``: a window never touches the last row and column, which on 8×8 images leaves pixels out of
    every small window and weakens it (about 6 points here). Ours draws from ``[0, h − s]``. So ours must be
    at least as strong as torchattacks as shipped, and within one point of it once its corner may be the last.
    """
    torchattacks = pytest.importorskip("torchattacks")
    from defended import EPSILON

    model, x, y = defended

    def theirs(seed: int) -> float:
        adversarial = torchattacks.Square(model, eps=EPSILON, n_queries=300, seed=seed)(x, y)
        with torch.no_grad():
            return float((model(adversarial).argmax(1) == y).float().mean())

    ours, shipped = [], []
    for seed in range(4):
        result = attack(model, x, y, epsilon=EPSILON, method="square", queries=300, targets="untargeted",
                        verdict="float", batch_size="all", seed=seed, sanity_checks=False)  # fmt: skip
        with torch.no_grad():  # every flip it reports is a flip of the image it returns
            assert model(result.adversarial).argmax(1).tolist() == [r.adv_label for r in result.records]
        assert float((result.adversarial - x).abs().max()) <= EPSILON + 1e-6
        ours.append(result.robust_accuracy)
        shipped.append(theirs(seed))
    corner = torchattacks.Square.random_int
    monkeypatch.setattr(torchattacks.Square, "random_int",
                        lambda self, low=0, high=1, shape=(1,): corner(self, low, high + 1, list(shape)))  # fmt: skip
    inclusive = [theirs(seed) for seed in range(4)]
    mean = sum(ours) / 4
    assert mean <= sum(shipped) / 4, (ours, shipped)
    assert abs(mean - sum(inclusive) / 4) <= 0.01, (ours, inclusive)
