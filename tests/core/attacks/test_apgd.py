"""Auto-PGD: exact on the analytic linear model, at least as strong as the reference implementation on a
defended model, one forward and one backward pass per step, and top-K run the way AutoAttack runs it."""

from __future__ import annotations

import pytest
import torch

from helpers import grid_images, linear_model, tiny_cnn
from pytest_advrobust import OptionError, attack
from pytest_advrobust.core.attacks.apgd import _Best, checkpoint_intervals
from test_attacks import margin_of, two_class_problem


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("side", [0.97, 1.03])
def test_apgd_flips_exactly_where_the_linear_margin_says(seed: int, side: float) -> None:
    model, x, l1 = two_class_problem(margin=0.2, seed=seed)
    threshold = 0.2 / l1
    result = attack(model, x, epsilon=threshold * side, method="apgd", verdict="float", labels=[0], steps=20)
    assert result.records[0].flipped is (side > 1)
    if side < 1:  # the best it can do is the ball's corner along sign(w_1 - w_0): margin 0.2 - eps * l1
        assert margin_of(model, result.adversarial) == pytest.approx(0.2 - threshold * side * l1, abs=2e-3)


def test_the_checkpoint_schedule_is_the_papers() -> None:
    assert checkpoint_intervals(100) == (22, 3, 6)  # 22%, shrinking by 3% to at least 6%
    assert checkpoint_intervals(10) == (2, 1, 1)


def test_a_stalled_row_is_halved_and_a_rising_one_is_not() -> None:
    clean = torch.zeros(2, 1, 2, 2)
    best = _Best.start(clean, steps=4, classes=3)
    rows = torch.arange(2)
    # row 0: the loss rose at every step; row 1: it went up and down
    for k, losses in enumerate([(0.0, 0.0), (1.0, 1.0), (2.0, 0.5), (3.0, 1.0), (4.0, 0.2)]):
        best.update(k, rows, clean, clean, torch.zeros(2, 3), torch.tensor(losses))
    assert best.stalled(4, rows, interval=4).tolist() == [False, True]
    assert best.loss.tolist() == [4.0, 1.0]


def test_one_forward_and_one_backward_pass_per_step() -> None:
    generator = torch.Generator().manual_seed(0)
    model = linear_model(torch.randn(3, 3 * 4 * 4, generator=generator))
    x = grid_images(2, size=4, seed=0)
    result = attack(model, x, epsilon=1e-4, method="apgd", steps=12, verdict="float", sanity_checks=False,
                    targets="untargeted")  # fmt: skip
    assert result.flips == []
    assert result.backward_passes == 12
    assert result.forward_passes == 1 + 13 + 1  # clean, iterates 0..12, the final 8-bit re-prediction


def test_a_seed_fixes_the_random_start() -> None:
    model, x = tiny_cnn(seed=2), grid_images(4, size=8, seed=2)
    first = attack(model, x, epsilon=0.05, method="apgd", steps=5, seed=3)
    again = attack(model, x, epsilon=0.05, method="apgd", steps=5, seed=3)
    other = attack(model, x, epsilon=0.05, method="apgd", steps=5, seed=4)
    assert torch.equal(first.adversarial, again.adversarial)
    assert not torch.equal(first.adversarial, other.adversarial)


def test_top_k_stops_attacking_an_image_once_it_flipped() -> None:
    model, x = tiny_cnn(seed=3), grid_images(6, size=8, seed=3)
    one = attack(model, x, epsilon=0.3, method="apgd", steps=5, targets="top-1", sanity_checks=False)
    nine = attack(model, x, epsilon=0.3, method="apgd", steps=5, targets="top-9", sanity_checks=False)
    assert len(one.flips) == len(nine.flips) == 6, "all flip toward their first runner-up"
    assert [record.name for record in nine] == [f"image {i}" for i in range(6)], "one record per image"
    assert nine.backward_passes == one.backward_passes, "no image was attacked toward a second target"


def test_top_k_tries_the_next_target_for_images_that_held() -> None:
    # at x = 0.5: logits 1.0 (the label), 0.996 (first runner-up, out of reach: it can gain 0.0006 within
    # eps), 0.9 (second runner-up: it gains 0.12 within eps and wins), -5
    weight = torch.zeros(4, 3 * 2 * 2)
    weight[1, :] = -0.001  # pushing toward class 1 lowers every pixel, and so class 2
    weight[2, :] = 0.2
    model = linear_model(weight, torch.tensor([1.0, 1.002, -0.3, -5.0]))
    x = torch.full((1, 3, 2, 2), 0.5)
    result = attack(model, x, epsilon=0.05, method="apgd", steps=10, targets="top-2", verdict="float")
    (record,) = result.records
    assert record.flipped and record.target == 2 and record.adv_label == 2
    assert "top-2: 0 of 1 image(s) held against all 2 runner-up targets" in " ".join(result.settings.notes)


def test_top_k_beyond_the_class_count_tries_every_other_class() -> None:
    model, x, l1 = two_class_problem(margin=0.2)
    result = attack(model, x, epsilon=1.03 * 0.2 / l1, method="apgd", targets="top-9", loss="ce", verdict="float",
                    labels=[0])  # fmt: skip
    assert result.records[0].flipped and result.records[0].target == 1


def test_automatic_dlr_on_too_few_classes_runs_and_reports_cross_entropy() -> None:
    """APGD-T's DLR loss needs four classes: on a two-class model ``loss=auto`` runs cross-entropy, and the
    settings that reports and baselines keep name the loss that ran (a chosen dlr is refused)."""
    model, x, l1 = two_class_problem(margin=0.2)
    result = attack(model, x, epsilon=1.03 * 0.2 / l1, method="apgd", targets="top-9", verdict="float", labels=[0])
    assert result.records[0].flipped
    assert result.settings.loss == "ce" and "loss=" not in result.settings.describe
    assert any("cross-entropy was used" in note for note in result.settings.notes)
    with pytest.raises(OptionError, match="loss=dlr needs at least 4 classes.*--adv-loss=ce"):
        attack(model, x, epsilon=0.01, method="apgd", targets="top-9", loss="dlr", labels=[0])


def _robust_accuracy(model: torch.nn.Module, adversarial: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(adversarial).argmax(1) == y).float().mean())


@pytest.mark.parametrize("targeted", [False, True], ids=["apgd-ce", "apgd-t-top9"])
@pytest.mark.filterwarnings("ignore:one FGSM step succeeded")  # the floor counting a flip APGD missed is fine here
def test_apgd_is_as_strong_as_the_reference_on_a_defended_model(
    defended: tuple[torch.nn.Module, torch.Tensor, torch.Tensor], targeted: bool
) -> None:
    """Robust accuracy (lower = stronger), averaged over three random starts, at equal steps."""
    torchattacks = pytest.importorskip("torchattacks")
    from defended import EPSILON

    model, x, y = defended
    ours, theirs = [], []
    for seed in range(3):
        result = attack(model, x, y, epsilon=EPSILON, method="apgd", steps=10, verdict="float", batch_size="all",
                        targets="top-9" if targeted else "untargeted", seed=seed)  # fmt: skip
        ours.append(result.robust_accuracy)
        # re-predict what the attack returned: every flip it reports is a flip of the returned image
        with torch.no_grad():
            predicted = model(result.adversarial).argmax(1)
        assert [int(p) for p in predicted] == [record.adv_label for record in result.records]
        if targeted:
            reference = torchattacks.APGDT(model, eps=EPSILON, steps=10, n_restarts=1, n_classes=10, seed=seed)
        else:
            reference = torchattacks.APGD(model, eps=EPSILON, steps=10, n_restarts=1, loss="ce", seed=seed)
        theirs.append(_robust_accuracy(model, reference(x, y), y))
    bim = attack(model, x, y, epsilon=EPSILON, method="bim", steps=10, verdict="float", batch_size="all",
                 targets="untargeted")  # fmt: skip
    assert sum(ours) / 3 <= sum(theirs) / 3 + 0.01, (ours, theirs)
    if targeted:
        assert max(ours) < bim.robust_accuracy - 0.01, "top-9 APGD-T finds flips that fixed-step BIM misses"


def test_an_image_that_held_returns_its_best_iterate_even_after_one_step() -> None:
    generator = torch.Generator().manual_seed(4)
    model = linear_model(torch.randn(3, 3 * 4 * 4, generator=generator) * 0.1)
    x = grid_images(3, size=4, seed=4)
    result = attack(model, x, epsilon=0.01, method="apgd", steps=1, targets="untargeted", verdict="float")
    for row, record in enumerate(result.records):
        assert not record.flipped
        with torch.no_grad():
            returned = model(result.adversarial[row : row + 1]).softmax(1)[0, record.label]
        # the returned image is the iterate with the lowest label probability the loop saw (the best loss)
        assert float(returned) == pytest.approx(min(record.label_curve), abs=1e-5)
        assert float(returned) == pytest.approx(record.adv_prob, abs=1e-5)
