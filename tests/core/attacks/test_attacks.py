"""The sign-gradient loop against oracles: an analytic linear model and invariants (Hypothesis)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import grid_images, linear_model, tiny_cnn
from pytest_advrobust import NotRobustError, attack, quantize_8bit

SHAPE = (3, 4, 4)
FEATURES = 3 * 4 * 4


def two_class_problem(margin: float, seed: int = 0) -> tuple[torch.nn.Module, torch.Tensor, float]:
    """A two-class linear model and one image of class 0 whose logit margin is exactly ``margin``.

    Returns the model, the image, and ‖w_0 − w_1‖₁, so the untargeted FGSM step changes the margin by
    exactly ε·‖w_0 − w_1‖₁ (no pixel is clipped: the image sits near 0.5 and ε stays small).
    """
    generator = torch.Generator().manual_seed(seed)
    weight = torch.randn(2, FEATURES, generator=generator, dtype=torch.float64).float()
    x = (0.5 + 0.01 * torch.randn(1, *SHAPE, generator=generator)).float()
    raw_margin = float((weight[0] - weight[1]) @ x.flatten())
    bias = torch.tensor([margin - raw_margin, 0.0])
    l1 = float((weight[0] - weight[1]).abs().sum())
    return linear_model(weight, bias), x, l1


def margin_of(model: torch.nn.Module, x: torch.Tensor) -> float:
    with torch.no_grad():
        logits = model(x)
    return float(logits[0, 0] - logits[0, 1])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fgsm_changes_the_linear_margin_by_exactly_eps_times_l1(seed: int) -> None:
    model, x, l1 = two_class_problem(margin=0.5, seed=seed)
    epsilon = 0.003
    result = attack(model, x, epsilon=epsilon, method="fgsm", verdict="float", labels=[0])
    assert margin_of(model, result.adversarial) == pytest.approx(0.5 - epsilon * l1, abs=1e-4)
    assert result.records[0].linf == pytest.approx(epsilon, abs=1e-7)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("side", [0.99, 1.01])
def test_label_flips_iff_eps_exceeds_margin_over_l1(seed: int, side: float) -> None:
    model, x, l1 = two_class_problem(margin=0.2, seed=seed)
    threshold = 0.2 / l1
    result = attack(model, x, epsilon=threshold * side, method="fgsm", verdict="float", labels=[0])
    record = result.records[0]
    assert record.flipped is (side > 1)
    assert record.adv_label == (1 if side > 1 else 0)


def test_targeted_attack_descends_toward_the_target_and_untargeted_ascends_away() -> None:
    generator = torch.Generator().manual_seed(3)
    model = linear_model(torch.randn(5, FEATURES, generator=generator))
    x = grid_images(4, size=4, seed=3)
    with torch.no_grad():
        clean = model(x).softmax(1)
    target = 2
    targeted = attack(model, x, epsilon=0.01, method="fgsm", targets=[target], verdict="float")
    untargeted = attack(model, x, epsilon=0.01, method="fgsm", verdict="float")
    with torch.no_grad():
        toward = model(targeted.adversarial).softmax(1)
        away = model(untargeted.adversarial).softmax(1)
    labels = clean.argmax(1)
    for i, record in enumerate(targeted.records):
        if record.label == target:
            continue
        assert toward[i, target] > clean[i, target]
    assert (away.gather(1, labels[:, None]) < clean.gather(1, labels[:, None])).all()


def test_curves_record_the_probability_of_label_and_target_per_step() -> None:
    model = tiny_cnn(seed=1)
    x = grid_images(3, size=8, seed=1)
    result = attack(model, x, epsilon=0.1, method="bim", steps=5, targets="least-likely", early_stop=False)
    for record in result.records:
        assert len(record.label_curve) == record.steps_run + 1 == 6
        assert record.target_curve is not None and len(record.target_curve) == 6
        assert record.label_curve[0] == pytest.approx(record.clean_prob, abs=1e-6)
        assert record.target_curve[-1] > record.target_curve[0]
        assert record.path[0] == record.clean_label


def test_early_stop_does_not_change_the_verdict_and_costs_fewer_passes() -> None:
    model = tiny_cnn(seed=2)
    x = grid_images(16, size=8, seed=2)
    stopped = attack(model, x, epsilon=0.03, steps=10)
    full = attack(model, x, epsilon=0.03, steps=10, early_stop=False)
    assert [r.flipped for r in stopped] == [r.flipped for r in full]
    assert 0 < len(stopped.flips) < len(x), "need a mix of flips and holds for this test to mean anything"
    assert stopped.backward_passes <= full.backward_passes


def test_returned_images_are_re_predicted() -> None:
    model = tiny_cnn(seed=4)
    x = grid_images(8, size=8, seed=4)
    result = attack(model, x, epsilon=0.05, steps=5)
    model.eval()
    with torch.no_grad():
        float_pred = model(result.adversarial).argmax(1).tolist()
        rounded_pred = model(result.adversarial_8bit).argmax(1).tolist()
    assert float_pred == [r.adv_label for r in result.records]
    assert rounded_pred == [r.adv_label_8bit for r in result.records]
    assert torch.equal(result.adversarial_8bit * 255, (result.adversarial_8bit * 255).round())


def test_several_targets_attack_each_image_toward_each_target() -> None:
    model = tiny_cnn(seed=5)
    x = grid_images(2, size=8, seed=5)
    names = [f"c{i}" for i in range(10)]
    result = attack(model, x, epsilon=0.2, targets=["c1", "c2", "c3"], class_names=names)
    skipped = sum(1 for note in result.settings.notes if "is its own label" in note)
    assert len(result.records) == 6 - skipped
    assert all(" -> c" in record.name for record in result.records)
    assert all(record.target != record.label for record in result.records)


def test_assert_robust_lists_flipped_images() -> None:
    model, x, l1 = two_class_problem(margin=0.2)
    result = attack(model, x, epsilon=0.3 / l1, method="fgsm", labels=[0], class_names=["cat", "dog"])
    with pytest.raises(NotRobustError, match=r"image 0: 'cat' \d\.\d\d -> 'dog' \d\.\d\d at eps=.*step 1/1"):
        result.assert_robust()


def test_misclassified_clean_image_fails_and_says_so() -> None:
    model, x, _ = two_class_problem(margin=0.2)
    result = attack(model, x, epsilon=0.0, labels=[1], class_names=["cat", "dog"])
    assert result.records[0].misclassified
    with pytest.raises(NotRobustError, match="misclassified before any attack: 'cat'.*its label is 'dog'"):
        result.assert_robust()


# -- invariants, for random models, images and budgets -----------------------------------------------

methods = st.sampled_from(["fgsm", "bim", "pgd", "apgd"])
budgets = st.floats(min_value=0.0, max_value=0.5, allow_nan=False)
fast = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
below_one_level = pytest.mark.filterwarnings("ignore:epsilon=.* is below one 8-bit level:UserWarning")
"""Budgets drawn below 1/255 warn that nothing can flip under the rounded verdict: these tests draw them on purpose."""


@below_one_level
@fast
@given(method=methods, epsilon=budgets, seed=st.integers(0, 2**16))
def test_adversarial_images_stay_in_the_eps_ball_and_in_0_1(method: str, epsilon: float, seed: int) -> None:
    model = tiny_cnn(seed=seed % 7)
    x = grid_images(3, size=8, seed=seed)
    result = attack(model, x, epsilon=epsilon, method=method, steps=None if method == "fgsm" else 3, seed=seed)
    for adversarial in (result.adversarial, result.adversarial_8bit):
        assert (adversarial - x).abs().max() <= epsilon + 1e-6
        assert adversarial.min() >= 0 and adversarial.max() <= 1


@fast
@given(method=methods, seed=st.integers(0, 2**16))
def test_eps_zero_flips_nothing(method: str, seed: int) -> None:
    model = tiny_cnn(seed=seed % 7)
    x = grid_images(3, size=8, seed=seed)
    result = attack(model, x, epsilon=0.0, method=method, seed=seed)
    assert result.flips == []
    assert torch.equal(result.adversarial, x)


@below_one_level
@fast
@given(seed=st.integers(0, 2**16), epsilon=st.floats(0.001, 0.3))
def test_a_fixed_seed_gives_identical_output(seed: int, epsilon: float) -> None:
    model = tiny_cnn(seed=1)
    x = grid_images(4, size=8, seed=seed)
    first = attack(model, x, epsilon=epsilon, method="pgd", steps=3, seed=seed)
    second = attack(model, x, epsilon=epsilon, method="pgd", steps=3, seed=seed)
    assert torch.equal(first.adversarial, second.adversarial)
    assert [r.to_json() for r in first] == [r.to_json() for r in second]


@below_one_level
@fast
@given(seed=st.integers(0, 2**16), epsilon=st.floats(0.001, 0.3))
def test_fgsm_equals_one_step_bim_of_size_eps(seed: int, epsilon: float) -> None:
    model = tiny_cnn(seed=seed % 5)
    x = grid_images(4, size=8, seed=seed)
    fgsm = attack(model, x, epsilon=epsilon, method="fgsm")
    bim = attack(model, x, epsilon=epsilon, method="bim", steps=1, step_size=epsilon)
    assert torch.equal(fgsm.adversarial, bim.adversarial)


@fast
@given(seed=st.integers(0, 2**16), training=st.booleans(), method=methods)
def test_model_mode_params_grads_and_inputs_are_left_as_found(seed: int, training: bool, method: str) -> None:
    model = tiny_cnn(seed=seed % 3)
    model.train(training)
    model[0].eval()  # a mixed-mode model: each submodule's own mode must come back
    model[-1].weight.requires_grad_(False)
    model[0].weight.grad = torch.ones_like(model[0].weight)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flags = [p.requires_grad for p in model.parameters()]
    modes = [m.training for m in model.modules()]
    x = grid_images(3, size=8, seed=seed)
    x_copy = x.clone()
    rng = torch.get_rng_state()
    attack(model, x, epsilon=0.1, method=method, steps=2 if method != "fgsm" else None)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert [p.requires_grad for p in model.parameters()] == flags
    assert [m.training for m in model.modules()] == modes
    assert torch.equal(model[0].weight.grad, torch.ones_like(model[0].weight))
    assert all(p.grad is None for name, p in model.named_parameters() if not name.startswith("0."))
    assert torch.equal(x, x_copy) and not x.requires_grad
    assert torch.equal(torch.get_rng_state(), rng)


@fast
@given(
    clean=st.lists(st.integers(0, 255), min_size=1, max_size=20),
    offsets=st.lists(st.floats(-1.0, 1.0), min_size=20, max_size=20),
    epsilon=st.floats(0.0, 0.1),
)
def test_rounding_to_8_bits_stays_in_the_eps_ball(clean: list[int], offsets: list[float], epsilon: float) -> None:
    x0 = torch.tensor(clean, dtype=torch.float32) / 255
    adversarial = (x0 + torch.tensor(offsets[: len(clean)]) * epsilon).clamp(0, 1)
    rounded = quantize_8bit(adversarial, x0, epsilon)
    assert (rounded - x0).abs().max() <= epsilon + 1e-6
    assert torch.equal(rounded * 255, (rounded * 255).round())
    assert (rounded - adversarial).abs().max() <= 1 / 255 + 1e-6


def _rounding_rule(adversarial: float, clean: float, epsilon: float) -> float:
    """quantize_8bit's documented rule for one pixel, written out: the nearer 8-bit neighbour (ties
    down) if it is within ε (+1e-6) of the clean pixel, else the other one if that is, else the
    neighbour nearer the clean pixel."""
    low, high = math.floor(adversarial * 255) / 255, math.ceil(adversarial * 255) / 255
    nearest, other = (low, high) if adversarial - low <= high - adversarial else (high, low)
    for value in (nearest, other):
        if abs(value - clean) <= epsilon + 1e-6:
            return value
    return low if abs(low - clean) <= abs(high - clean) else high


@fast
@given(
    clean=st.lists(st.floats(0.0, 1.0, width=32), min_size=1, max_size=20),
    on_grid=st.booleans(),
    offsets=st.lists(st.floats(-1.0, 1.0, width=32), min_size=20, max_size=20),
    epsilon=st.sampled_from([0.001, 0.003, 0.007, 2 / 255, 0.01, 0.031, 8 / 255, 0.1]),
)
def test_rounding_follows_the_rule_pixel_by_pixel(
    clean: list[float], on_grid: bool, offsets: list[float], epsilon: float
) -> None:
    x0 = torch.tensor(clean)
    if on_grid:
        x0 = (x0 * 255).round() / 255
    adversarial = (x0 + torch.tensor(offsets[: len(clean)]) * epsilon).clamp(0, 1)
    adversarial = torch.minimum(torch.maximum(adversarial, x0 - epsilon), x0 + epsilon)  # in the ball in float32
    rounded = quantize_8bit(adversarial, x0, epsilon)
    for a, c, r in zip(adversarial.tolist(), x0.tolist(), rounded.tolist(), strict=True):
        expected = _rounding_rule(a, c, epsilon)
        # the rule's float64 arithmetic and the tensor's float32 may disagree by one step exactly at a tie
        # or at the ball's edge; elsewhere they must agree
        assert r * 255 == pytest.approx(expected * 255, abs=1e-3) or (
            abs(a * 255 - round(a * 255)) > 0.4999 or abs(abs(expected - c) - epsilon) < 1e-5
        ), (a, c, r, expected)


def test_rounding_goes_toward_the_clean_pixel_when_nearest_would_leave_the_ball() -> None:
    x0 = torch.tensor([100 / 255])
    epsilon = 0.007  # 1.785/255
    adversarial = x0 + epsilon  # 101.785/255: nearest is 102/255, outside the ball
    assert quantize_8bit(adversarial, x0, epsilon).item() * 255 == pytest.approx(101)


@pytest.mark.parametrize("method", ["bim", "pgd", "apgd"])
def test_batch_size_does_not_change_the_results(method: str) -> None:
    model = tiny_cnn(seed=6)
    x = grid_images(7, size=8, seed=6)
    whole = attack(model, x, epsilon=0.05, method=method, steps=4, batch_size="all")
    split = attack(model, x, epsilon=0.05, method=method, steps=4, batch_size=3)
    # the same images and verdicts; probabilities agree up to float rounding (BLAS blocks by batch size)
    assert torch.allclose(whole.adversarial, split.adversarial, atol=1e-6)
    for a, b in zip(whole, split, strict=True):
        assert (a.adv_label, a.adv_label_8bit, a.flipped, a.first_flip_step) == (
            b.adv_label,
            b.adv_label_8bit,
            b.flipped,
            b.first_flip_step,
        )
        assert a.adv_prob == pytest.approx(b.adv_prob, abs=1e-5)


def test_a_tensor_of_targets_gives_each_image_its_own_target() -> None:
    model = tiny_cnn(seed=7)
    x = grid_images(5, size=8, seed=7)
    targets = torch.tensor([1, 2, 3, 4, 5])
    result = attack(model, x, epsilon=0.3, targets=targets, batch_size=2)
    assert result.records, "an image whose target is its own label is skipped, not all of them"
    for record in result.records:
        assert record.target == targets[int(record.name.split()[1])]
        assert record.target_reached


def test_a_failure_names_the_flips_first_and_lists_at_most_twenty() -> None:
    generator = torch.Generator().manual_seed(9)
    model = linear_model(torch.randn(2, 3 * 4 * 4, generator=generator))
    x = grid_images(25, size=4, seed=9)
    result = attack(model, x, epsilon=0.5, method="fgsm", targets="untargeted", class_names=["cat", "dog"])
    assert len(result.flips) == 25
    message = result.failure_message()
    first = message.splitlines()[0]
    assert first.startswith("25 of 25 image(s) flipped at eps=0.5 (fgsm): ")
    assert set(first.split(": ", 1)[1].split(", ")) <= {"cat -> dog", "dog -> cat"}
    assert sum(1 for line in message.splitlines() if line.startswith("  image ")) == 20
    assert "  … and 5 more (full list in --adv-report)" in message


# -- the loop returns its own tensors without copying them: none may be the caller's or another result's ----


@below_one_level
@pytest.mark.parametrize("verdict", ["rounded", "float"])
@pytest.mark.parametrize("method", ["fgsm", "bim", "apgd"])
@pytest.mark.parametrize("epsilon", [0.001, 0.3])  # nothing flips (no copy is made at all) / most images flip
@pytest.mark.parametrize("targets", ["untargeted", "top-9"])
def test_result_tensors_belong_to_the_result(method: str, verdict: str, epsilon: float, targets: str) -> None:
    model = tiny_cnn(seed=3)
    x = grid_images(4, size=8, seed=3)
    x_copy = x.clone()
    steps = None if method == "fgsm" else 3
    result = attack(model, x, epsilon=epsilon, method=method, verdict=verdict, steps=steps, targets=targets)
    rounded, clean = result.adversarial_8bit.clone(), result.clean.clone()
    result.adversarial.add_(1)
    assert torch.equal(result.adversarial_8bit, rounded) and torch.equal(result.clean, clean)
    result.clean.add_(1)
    result.adversarial_8bit.add_(1)
    assert torch.equal(x, x_copy)


def test_rows_taken_into_a_trajectory_of_8bit_images_keep_float_and_8bit_apart() -> None:
    from pytest_advrobust.core.attacks.loop import Trajectory

    def trajectory(adversarial: torch.Tensor, rounded: torch.Tensor) -> Trajectory:
        n = adversarial.shape[0]
        curve = torch.zeros(n, 2)
        return Trajectory(adversarial, torch.zeros(n, 3), rounded, torch.zeros(n, 3), torch.full((n,), -1),
                          torch.zeros(n, dtype=torch.long), curve, None, curve.long(), curve)  # fmt: skip

    eight_bit = torch.full((3, 1, 2, 2), 10 / 255)
    mine = trajectory(eight_bit.clone(), None)  # type: ignore[arg-type]
    mine.rounded = mine.adversarial  # every returned image 8-bit already: one tensor for both
    float_image, its_rounding = torch.full((1, 1, 2, 2), 0.0401), torch.full((1, 1, 2, 2), 10 / 255)
    mine.take(torch.tensor([1]), trajectory(float_image, its_rounding), torch.tensor([0]))
    assert torch.equal(mine.adversarial[1], float_image[0]) and torch.equal(mine.rounded[1], its_rounding[0])
    assert torch.equal(mine.adversarial[[0, 2]], eight_bit[[0, 2]]) and torch.equal(mine.rounded, eight_bit)


def test_a_model_that_changes_its_input_in_place_never_changes_the_callers_images() -> None:
    class Halves(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = tiny_cnn(seed=4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner(x.mul_(0.5))

    x = grid_images(3, size=8, seed=4)
    x_copy = x.clone()
    for targets in ("untargeted", "top-3"):  # the clean forward pass with gradient (reused by the loop), without
        with pytest.raises(RuntimeError, match="in-place"):  # autograd refuses it on an iterate requiring grad
            attack(Halves(), x, epsilon=0.01, method="bim", steps=2, targets=targets)
        assert torch.equal(x, x_copy)


def test_bim_returns_exactly_the_iterates_of_a_plain_loop() -> None:
    """Later steps write into the loop's own iterate: the result is still a textbook BIM's, step by step,
    on a nonlinear model (gradient signs change between steps), and the caller's images are untouched."""
    model, x = tiny_cnn(seed=3).eval(), grid_images(6, size=8, seed=3)
    x_copy = x.clone()
    epsilon, steps, alpha = 0.004, 5, 0.0015
    result = attack(
        model, x, epsilon=epsilon, method="bim", steps=steps, step_size=alpha, targets="untargeted",
        verdict="float", early_stop=False, sanity_checks=False, batch_size="all",
    )  # fmt: skip
    with torch.no_grad():
        labels = model(x).argmax(dim=1)
    lower, upper = (x - epsilon).clamp(0, 1), (x + epsilon).clamp(0, 1)
    reference, signs = x.clone(), []
    for _ in range(steps):
        reference.requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(model(reference), labels, reduction="sum")
        (grad,) = torch.autograd.grad(loss, reference)
        signs.append(grad.sign())
        reference = torch.min(torch.max(reference.detach() + alpha * grad.sign(), lower), upper)
    assert not result.flips  # every image returns its last iterate
    assert any(not torch.equal(signs[0], later) for later in signs[1:])  # the steps differ
    torch.testing.assert_close(result.adversarial, reference, atol=1e-6, rtol=0)
    assert torch.equal(x, x_copy)
