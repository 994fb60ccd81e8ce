"""L2 and L1 threat models against oracles: a linear model's analytic thresholds, exact projections and
8-bit rounding that stay inside the ball (Hypothesis), and APGD-L2/L1 as strong as fra31's own AutoAttack."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import grid_images, tiny_cnn
from pytest_advrobust import OptionError, attack
from pytest_advrobust.core.attacks.norms import ball, l1_projection, l1_steepest
from test_attacks import margin_of, two_class_problem

fast = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
one_step_floor = pytest.mark.filterwarnings("ignore:one (FGSM|FGM .L2.) step succeeded")
"""On a linear model the norm's steepest single step is the exact answer: a flip APGD-L1's sparse steps miss
there is the sanity check's to find (and to warn of), as it would be in a user's run."""


def _threshold(model: torch.nn.Module, norm: str) -> float:
    """The smallest budget that flips the two-class linear model: |margin| over the dual norm of w_0 − w_1
    (‖·‖₂ for an L2 ball, max |·| for an L1 ball), while the ball stays inside [0,1]."""
    weight = next(model.parameters()).detach()
    difference = weight[0] - weight[1]
    return 0.2 / float(difference.norm() if norm == "l2" else difference.abs().max())


ATTACKS_UNDER = {
    "l2": ["fgsm", "bim", "pgd", "apgd", "autoattack", "square"],
    "l1": ["fgsm", "bim", "pgd", "apgd", "autoattack"],
}


@one_step_floor
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("side", [0.97, 1.03])
@pytest.mark.parametrize(("norm", "method"), [(n, m) for n, methods in ATTACKS_UNDER.items() for m in methods])
def test_a_linear_model_flips_exactly_above_its_analytic_threshold(
    norm: str, method: str, side: float, seed: int
) -> None:
    model, x, _ = two_class_problem(margin=0.2, seed=seed)
    epsilon = _threshold(model, norm) * side
    assert epsilon < 0.45  # the image sits near 0.5: the ball stays inside [0,1]
    budget = {"queries": 200} if method in ("square", "autoattack") else {}
    steps = {} if method in ("fgsm", "square") else {"steps": 20}
    result = attack(model, x, epsilon=epsilon, norm=norm, method=method, verdict="float", labels=[0], **budget, **steps)
    record = result.records[0]
    assert record.flipped is (side > 1)
    assert record.norm == norm
    assert record.distance <= epsilon * (1 + 1e-5)
    assert record.distance == pytest.approx(float(ball(norm).distance(result.adversarial - x)), rel=1e-5)
    if method == "fgsm" or (method == "bim" and side < 1):  # the steepest steps reach margin − ε·‖w‖_dual
        assert margin_of(model, result.adversarial) == pytest.approx(0.2 - 0.2 * side, abs=2e-3)


# -- projections and rounding, for random perturbations -----------------------------------------------

norms = st.sampled_from(["l2", "l1"])
shapes = st.sampled_from([(2, 1, 4, 4), (3, 3, 5, 4), (1, 3, 8, 8)])


def _images(shape: tuple[int, ...], seed: int, scale: float, on_grid: bool) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    clean = torch.rand(shape, generator=generator)
    if on_grid:
        clean = (clean * 255).round() / 255
    return clean, torch.randn(shape, generator=generator) * scale


@fast
@given(norm=norms, shape=shapes, seed=st.integers(0, 2**16), scale=st.floats(0.001, 2.0), radius=st.floats(0.01, 5.0))
def test_a_projected_point_is_in_the_ball_and_in_0_1(norm: str, shape: tuple[int, ...], seed: int, scale: float,
                                                      radius: float) -> None:  # fmt: skip
    clean, delta = _images(shape, seed, scale, on_grid=False)
    eps = torch.full((shape[0],), radius).reshape(-1, 1, 1, 1)
    projected = ball(norm).project(clean + delta, clean, eps)
    assert projected.min() >= 0 and projected.max() <= 1
    assert bool(ball(norm).inside(projected, clean, eps).all())
    boxed = (clean + delta).clamp(0, 1)
    inside = ball(norm).inside(boxed, clean, eps, slack=0)
    # a point already inside the ball and [0,1] is left where it is
    for row in inside.nonzero().flatten().tolist():
        assert torch.allclose(ball(norm).project(boxed.clone(), clean, eps)[row], boxed[row], atol=1e-6)


@fast
@given(shape=shapes, seed=st.integers(0, 2**16), scale=st.floats(0.001, 2.0), radius=st.floats(0.01, 5.0))
def test_the_l1_projection_is_the_references_and_the_nearest_point(shape: tuple[int, ...], seed: int, scale: float,
                                                                    radius: float) -> None:  # fmt: skip
    """Croce & Hein's exact projection onto the L1 ball ∩ [0,1]: what fra31/auto-attack computes, and no
    random point of the set is nearer (in L2) to the point projected."""
    reference = pytest.importorskip("pyautoattack.autopgd_base")
    clean, delta = _images(shape, seed, scale, on_grid=False)
    eps = torch.full((shape[0],), radius)
    mine = l1_projection(clean, delta, eps)
    theirs = reference.L1_projection(clean, delta, radius).reshape(shape)
    # the reference runs in float32, resolving its thresholds to 1e-7 of ‖delta‖₁ (ours: float64)
    assert torch.allclose(mine, theirs, atol=1e-6 * max(float(delta.abs().sum()), 1.0))
    projected = ball("l1").project(clean + delta, clean, eps)
    assert torch.allclose(projected, clean + delta + mine, atol=1e-6)
    assert bool(ball("l1").inside(projected, clean, eps).all())
    generator = torch.Generator().manual_seed(seed + 1)
    for _ in range(5):
        other = clean + ball("l1").project(clean + torch.randn(shape, generator=generator), clean, eps) - clean
        assert bool(
            (
                (projected - clean - delta).flatten(1).norm(dim=1)
                <= (other - clean - delta).flatten(1).norm(dim=1) + 1e-5
            ).all()
        )


@fast
@given(norm=norms, shape=shapes, seed=st.integers(0, 2**16), scale=st.floats(0.001, 1.0), radius=st.floats(0.004, 3.0))
def test_8bit_rounding_stays_in_the_ball(norm: str, shape: tuple[int, ...], seed: int, scale: float,
                                         radius: float) -> None:  # fmt: skip
    """Rounding each pixel to its nearest 8-bit value can push an L2 or L1 perturbation outside the ball:
    the rounding used keeps it inside, on the 8-bit grid, no farther from the float image per pixel than
    one level, when the clean image is 8-bit (as images read from files are)."""
    clean, delta = _images(shape, seed, scale, on_grid=True)
    eps = torch.full((shape[0],), radius).reshape(-1, 1, 1, 1)
    adversarial = ball(norm).project(clean + delta, clean, eps)
    rounded = ball(norm).quantize(adversarial, clean, eps)
    assert torch.equal(rounded, (rounded * 255).round() / 255)
    assert rounded.min() >= 0 and rounded.max() <= 1
    assert bool(ball(norm).inside(rounded, clean, eps).all())
    assert (rounded - adversarial).abs().max() <= 1 / 255 + 1e-6


@fast
@given(seed=st.integers(0, 2**16), size=st.floats(0.01, 4.0))
def test_the_l1_steepest_step_solves_the_linear_program(seed: int, size: float) -> None:
    """max g·s over ‖s‖₁ ≤ size and x + s ∈ [0,1]: the pixels with the largest |g| filled to the box."""
    scipy_optimize = pytest.importorskip("scipy.optimize")
    generator = torch.Generator().manual_seed(seed)
    x, grad = torch.rand(1, 1, 3, 4, generator=generator), torch.randn(1, 1, 3, 4, generator=generator)
    step = l1_steepest(grad, x, torch.tensor([size]))
    assert float(step.abs().sum()) <= size + 1e-5
    assert (x + step).min() >= -1e-6 and (x + step).max() <= 1 + 1e-6
    g, xs = grad.flatten().double().numpy(), x.flatten().double().numpy()
    n = len(g)  # s = p − q, p, q ≥ 0: maximize g·(p − q) with Σ(p + q) ≤ size, p ≤ 1 − x, q ≤ x
    solution = scipy_optimize.linprog(
        c=[*(-g), *g], A_ub=[[1.0] * (2 * n)], b_ub=[size], bounds=[*((0, 1 - v) for v in xs), *((0, v) for v in xs)]
    )
    assert float((grad * step).sum()) == pytest.approx(-solution.fun, rel=1e-4, abs=1e-5)


# -- every returned image, under both verdicts ---------------------------------------------------------


@pytest.mark.filterwarnings("ignore:one (FGSM|FGM .L2.) step succeeded")
@pytest.mark.parametrize("verdict", ["rounded", "float"])
@pytest.mark.parametrize(("norm", "epsilon"), [("l2", 0.3), ("l1", 2.0)])
def test_every_returned_image_is_within_eps_and_is_what_the_verdict_says(
    norm: str, epsilon: float, verdict: str
) -> None:
    model, x = tiny_cnn(seed=1).eval(), (grid_images(8, size=8, seed=1) * 255).round() / 255
    for method in ATTACKS_UNDER[norm]:
        budget = {"queries": 100} if method in ("square", "autoattack") else {}
        result = attack(model, x, epsilon=epsilon, norm=norm, method=method, verdict=verdict, minimal_epsilon=True,
                        **budget)  # fmt: skip
        distances = ball(norm).distance
        for adversarial in (result.adversarial, result.adversarial_8bit):
            assert (distances(adversarial - x) <= epsilon * (1 + 1e-5)).all(), method
            assert adversarial.min() >= 0 and adversarial.max() <= 1
        assert torch.equal(result.adversarial_8bit, (result.adversarial_8bit * 255).round() / 255)
        with torch.no_grad():
            judged = model(result.adversarial_8bit if verdict == "rounded" else result.adversarial).argmax(1)
        assert judged.tolist() == [r.shown_label[0] for r in result.records], method
        assert result.settings.norm == norm and f"norm={norm}" in result.settings.describe
        for record in result.records:
            assert record.distance_8bit <= epsilon * (1 + 1e-5)
            if record.flipped and record.minimal_epsilon is not None:
                assert record.minimal_epsilon <= epsilon  # an image that flips at ε has its minimal ε at or below it


def test_square_has_no_l1_form_and_says_which_attacks_do() -> None:
    model, x = tiny_cnn(seed=0), grid_images(2, size=8)
    with pytest.raises(
        OptionError, match=r"attack=square has no form under norm=l1 .*use fgsm, bim, pgd, apgd, autoattack"
    ):
        attack(model, x, epsilon=1.0, norm="l1", method="square")
    with pytest.raises(OptionError, match=r"norm='l3' in pytest_advrobust.attack\(\): must be one of linf, l2, l1"):
        attack(model, x, epsilon=1.0, norm="l3")


def test_an_l2_budget_above_one_is_a_budget_and_an_linf_one_is_not() -> None:
    model, x = tiny_cnn(seed=0), grid_images(2, size=8)
    assert attack(model, x, epsilon=2.5, norm="l2", method="fgsm").settings.epsilon == 2.5
    with pytest.raises(OptionError, match=r"epsilon=2.5 in .*must be ≤ 1: ε is in \[0,1\] pixel units.*--adv-norm"):
        attack(model, x, epsilon=2.5, method="fgsm")


# -- as strong as the reference --------------------------------------------------------------------------


def _robust_accuracy(model: torch.nn.Module, adversarial: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(adversarial).argmax(1) == y).float().mean())


@pytest.mark.parametrize("targeted", [False, True], ids=["apgd-ce", "apgd-t-top9"])
@pytest.mark.parametrize(("norm", "epsilon"), [("l2", 0.5), ("l1", 1.5)])
def test_apgd_is_as_strong_as_fra31s_autoattack_under_each_norm(
    defended: tuple[torch.nn.Module, torch.Tensor, torch.Tensor], norm: str, epsilon: float, targeted: bool
) -> None:
    """Robust accuracy (lower = stronger) of APGD-L2/L1 and the reference's at equal steps, averaged over
    three random starts, on the defended digits CNN (the budgets leave about half the images robust)."""
    reference = pytest.importorskip("pyautoattack.autopgd_base")
    model, x, y = defended
    ours, theirs = [], []
    for seed in range(3):
        result = attack(model, x, y, epsilon=epsilon, norm=norm, method="apgd", steps=10, verdict="float",
                        batch_size="all", targets="top-9" if targeted else "untargeted", seed=seed,
                        sanity_checks=False)  # fmt: skip
        ours.append(result.robust_accuracy)
        with torch.no_grad():
            predicted = model(result.adversarial).argmax(1)
        assert [int(p) for p in predicted] == [record.adv_label for record in result.records]
        name = {"l2": "L2", "l1": "L1"}[norm]
        if targeted:
            other = reference.APGDAttack_targeted(model, norm=name, eps=epsilon, n_iter=10, n_restarts=1, device="cpu",
                                                  seed=seed, n_target_classes=9)  # fmt: skip
        else:
            other = reference.APGDAttack(model, norm=name, eps=epsilon, n_iter=10, n_restarts=1, loss="ce",
                                         device="cpu", seed=seed)  # fmt: skip
        theirs.append(_robust_accuracy(model, other.perturb(x, y), y))
    assert 0.2 < sum(theirs) / 3 < 0.9, "the budget should leave a share of the images robust"
    assert sum(ours) / 3 <= sum(theirs) / 3 + 0.01, (ours, theirs)


def test_autoattack_under_l1_ends_with_the_l1_steepest_stage(
    defended: tuple[torch.nn.Module, torch.Tensor, torch.Tensor],
) -> None:
    """In place of AutoAttack-L1's Square-L1 and FAB-T: what APGD-CE and APGD-T leave, L1-steepest steps
    toward the top-K flip more of (benchmarks/strength.py --norms)."""
    model, x, y = defended
    apgd = attack(model, x, y, epsilon=1.5, norm="l1", method="apgd", steps=10, verdict="float", batch_size="all")
    sequence = attack(model, x, y, epsilon=1.5, norm="l1", method="autoattack", steps=10, verdict="float",
                      batch_size="all")  # fmt: skip
    stages = {record.found_by for record in sequence.records}
    assert {"apgd-ce", "bim-l1"} <= stages
    assert sequence.robust_accuracy < apgd.robust_accuracy - 0.02
    with torch.no_grad():
        judged = model(sequence.adversarial).argmax(1)
    assert judged.tolist() == [record.adv_label for record in sequence.records]
    assert (ball("l1").distance(sequence.adversarial - x) <= 1.5 * (1 + 1e-5)).all()


@pytest.mark.parametrize(("norm", "epsilon", "widest"), [("l2", 8.0, "8"), ("l1", 70.0, "64")])
def test_a_budget_beyond_the_distance_between_any_two_images_warns(norm: str, epsilon: float, widest: str) -> None:
    """An l2 or l1 ε of at least the distance between an all-black and an all-white image lets the attack
    turn any image into any other: a run says so once, in a warning and a note."""
    images = torch.rand(3, 1, 8, 8)
    with pytest.warns(
        UserWarning,
        match=rf"epsilon={epsilon:g} under {norm} is at least the {norm} distance .* 1×8×8 image \({widest}\)",
    ):
        model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
        result = attack(model, images, epsilon=epsilon, norm=norm, method="fgsm")
    assert sum("is at least the" in note for note in result.settings.notes) == 1
