"""No false robustness and no side effects: the checks that stand between a green test and a lie."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from helpers import grid_images, linear_model, tiny_cnn, write_png
from pytest_advrobust import ImageLoadError, ModelOutputError, attack, load_images


class Noisy(nn.Module):
    """Random in eval mode: a verdict on it could not be reproduced."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = tiny_cnn()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x) + torch.randn(x.shape[0], 10)


class FailsOnCall(nn.Module):
    """Raises on its n-th forward pass: the attack must still leave everything as it found it."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.inner = tiny_cnn()
        self.calls = 0
        self.n = n

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls == self.n:
            raise RuntimeError("boom")
        return self.inner(x)


@pytest.mark.parametrize(
    ("method", "epsilon", "labels"),
    [
        ("fgsm", 0.01, None),
        ("bim", 0.01, None),
        ("apgd", 0.01, None),
        ("bim", 1.0, None),  # every image flips at once: the loop makes no forward pass without gradient
        ("bim", 0.01, [9, 9]),  # labels no clean prediction matches: nothing is attacked at all
    ],
)
def test_a_nondeterministic_model_is_refused(method: str, epsilon: float, labels: list[int] | None) -> None:
    with pytest.raises(ModelOutputError, match="not deterministic in eval mode.*image 0"):
        attack(Noisy(), grid_images(2), epsilon=epsilon, method=method, labels=labels, steps=None)


def test_a_model_that_depends_on_the_rest_of_the_batch_is_refused_with_the_cause() -> None:
    # batch norm without running statistics normalizes with the batch's own, in eval mode too
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4, track_running_stats=False), nn.Flatten(),
                          nn.LazyLinear(10))  # fmt: skip
    model(grid_images(2))
    with pytest.raises(ModelOutputError, match="not deterministic.*batch norm using batch statistics"):
        attack(model, grid_images(4, seed=3), epsilon=0.01, method="fgsm")


class BatchSizes(nn.Module):
    """Records the batch size of every forward pass, and whether it needed a gradient."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.calls: list[tuple[int, bool]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append((x.shape[0], torch.is_grad_enabled()))
        return self.inner(x)


def test_the_determinism_look_rides_along_a_forward_pass_without_gradient() -> None:
    generator = torch.Generator().manual_seed(1)
    model = BatchSizes(linear_model(torch.randn(3, 48, generator=generator) * 0.01))
    x = torch.rand(6, 3, 4, 4, generator=generator)
    result = attack(model, x, epsilon=1e-3, method="fgsm", targets="untargeted")
    assert result.flips == []
    # the clean forward (with gradient, reused as FGSM's iterate 0), then the 8-bit FGSM images plus the
    # first clean image a second time
    assert model.calls == [(6, True), (7, False)]


def test_a_weaker_than_fgsm_attack_is_caught_and_fgsm_result_counts() -> None:
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(2, 48, generator=generator)
    x = torch.full((1, 3, 4, 4), 0.5)
    l1 = float((weight[0] - weight[1]).abs().sum())
    margin = float((weight[0] - weight[1]) @ x.flatten())
    model = linear_model(weight, torch.tensor([0.2 - margin, 0.0]))
    epsilon = 2 * 0.2 / l1  # FGSM flips this image
    with pytest.warns(UserWarning, match="one FGSM step succeeded where the bim attack"):
        result = attack(
            model, x, epsilon=epsilon, method="bim", steps=2, step_size=epsilon / 1000, verdict="float", labels=[0]
        )
    (record,) = result.records
    assert record.flipped and record.found_by == "fgsm sanity check"
    assert "found by the FGSM sanity check" in record.line()
    unchecked = attack(
        model,
        x,
        epsilon=epsilon,
        method="bim",
        steps=2,
        step_size=epsilon / 1000,
        verdict="float",
        labels=[0],
        sanity_checks=False,
    )
    assert not unchecked.records[0].flipped, "without the check the weak attack alone reads as robust"


@pytest.mark.parametrize("fail_on", [1, 2, 4])
def test_an_attack_that_raises_midway_leaves_no_side_effects(fail_on: int) -> None:
    model = FailsOnCall(fail_on)
    model.train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x = grid_images(3)
    x_copy = x.clone()
    with pytest.raises(RuntimeError, match="boom"):
        attack(model, x, epsilon=0.05, steps=3)
    assert all(m.training for m in model.modules())
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(x, x_copy)


def test_batchnorm_running_stats_are_untouched_by_an_attack_on_a_training_model() -> None:
    model = tiny_cnn().train()
    before = model[1].running_mean.clone(), model[1].num_batches_tracked.clone()
    attack(model, grid_images(4), epsilon=0.05, steps=3)
    assert torch.equal(model[1].running_mean, before[0]) and torch.equal(model[1].num_batches_tracked, before[1])
    assert model.training


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=600))
def test_random_bytes_never_crash_image_loading(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "x.png"
    path.write_bytes(data)
    with pytest.raises(ImageLoadError, match=r"x.png"):
        load_images(path)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    width=st.integers(1, 40),
    height=st.integers(1, 40),
    mode=st.sampled_from(["RGB", "RGBA", "L", "I;16", "P"]),
    size=st.integers(1, 24),
    seed=st.integers(0, 100),
)
def test_any_image_shape_and_mode_loads_to_the_input_size(
    tmp_path_factory: pytest.TempPathFactory, width: int, height: int, mode: str, size: int, seed: int
) -> None:
    path = write_png(tmp_path_factory.mktemp("shapes") / "x.png", size=(width, height), mode=mode, seed=seed)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        images = load_images(path, input_size=(size, size))
    assert images.pixels.shape == (1, 3, size, size)
    assert float(images.pixels.min()) >= 0 and float(images.pixels.max()) <= 1


def test_the_floor_check_reuses_the_first_gradient_and_costs_one_forward() -> None:
    generator = torch.Generator().manual_seed(1)
    model = linear_model(torch.randn(3, 48, generator=generator) * 0.01)
    x = torch.rand(6, 3, 4, 4, generator=generator)
    checked = attack(model, x, epsilon=1e-3, method="bim", steps=5, targets="untargeted", verdict="float")
    unchecked = attack(model, x, epsilon=1e-3, method="bim", steps=5, targets="untargeted", verdict="float",
                       sanity_checks=False)  # fmt: skip
    assert checked.flips == [] == unchecked.flips
    assert checked.backward_passes == unchecked.backward_passes == 5, "the floor needs no backward pass"
    assert checked.forward_passes == unchecked.forward_passes + 1  # the FGSM image (determinism rides along)


@pytest.mark.parametrize(("method", "steps"), [("bim", 10), ("fgsm", 1)])
def test_defaults_on_a_model_where_nothing_flips_cost_the_gate_floor(method: str, steps: int) -> None:
    """The gate floor is ``steps`` × (forward + backward) plus one forward to predict what is returned.
    With every default (rounded verdict, sanity checks) only the floor check's FGSM image comes on top
    (the determinism check's one image rides along the last forward pass): the last iterate is predicted
    once, as its 8-bit image."""
    generator = torch.Generator().manual_seed(1)
    model = linear_model(torch.randn(3, 48, generator=generator) * 0.01)
    x = torch.rand(6, 3, 4, 4, generator=generator)
    result = attack(model, x, epsilon=1e-3, method=method, steps=steps, targets="untargeted")
    assert result.flips == []
    assert result.backward_passes == steps
    floor_check = 1 if method != "fgsm" else 0
    assert result.forward_passes == steps + 1 + floor_check  # iterates 0..steps, the FGSM image
    with torch.no_grad():  # what is returned is what was judged: its 8-bit image, re-predicted here
        assert model(result.adversarial_8bit).argmax(1).tolist() == [r.adv_label_8bit for r in result.records]
    assert torch.equal(result.adversarial_8bit * 255, (result.adversarial_8bit * 255).round())


def test_the_determinism_check_runs_once_per_run_not_per_batch() -> None:
    generator = torch.Generator().manual_seed(2)
    settings = {"epsilon": 1e-3, "method": "bim", "steps": 2, "targets": "untargeted", "batch_size": 2}
    linear = linear_model(torch.randn(3, 48, generator=generator) * 0.01)
    x = torch.rand(6, 3, 4, 4, generator=generator)
    checked, unchecked = BatchSizes(linear), BatchSizes(linear)
    assert attack(checked, x, **settings).flips == [] == attack(unchecked, x, sanity_checks=False, **settings).flips
    assert len(checked.calls) == len(unchecked.calls) + 3  # an FGSM image per batch
    rows = sum(n for n, _ in checked.calls) - sum(n for n, _ in unchecked.calls)
    assert rows == 6 + 1  # the FGSM images, and one clean image predicted a second time


def test_a_budget_below_one_8bit_level_warns_that_nothing_can_flip() -> None:
    """Within ε < 1/255 of an 8-bit image, its 8-bit rounding is the image itself: under the rounded verdict
    nothing can flip, whatever the model. A linear model with a tiny margin shows it: the float image flips,
    the judged one cannot, and the run says why instead of reading as robustness."""
    x = grid_images(1, size=4)
    weight = torch.zeros(2, x[0].numel())
    weight[0], weight[1] = 1.0, -1.0
    model = linear_model(weight, torch.tensor([-2 * float(weight[0] @ x.flatten()) + 0.01, 0.0]))  # margin 0.01
    with torch.no_grad():
        margin = float(model(x)[0, 0] - model(x)[0, 1])
    assert 0 < margin < 2 * 0.003 * weight[0].abs().sum()  # one FGSM step of 0.003 crosses it in float
    with pytest.warns(UserWarning, match=r"epsilon=0.003 is below one 8-bit level .* no image can flip"):
        rounded = attack(model, x, epsilon=0.003, method="fgsm", labels=[0])
    assert rounded.flips == [] and any("below one 8-bit level" in note for note in rounded.settings.notes)
    assert torch.equal(rounded.adversarial_8bit, x)
    floated = attack(model, x, epsilon=0.003, method="fgsm", labels=[0], verdict="float")
    assert len(floated.flips) == 1 and not any("below one 8-bit level" in n for n in floated.settings.notes)


def test_a_budget_below_one_level_on_images_off_the_8bit_grid_does_not_warn() -> None:
    x = grid_images(1, size=4) + 0.5 / 255  # halfway between levels: rounding can move a pixel
    model = linear_model(torch.randn(2, x[0].numel(), generator=torch.Generator().manual_seed(0)))
    result = attack(model, x.clamp(0, 1), epsilon=0.003, method="fgsm")
    assert not any("below one 8-bit level" in note for note in result.settings.notes)
