"""The model wrapper and the checks that refuse a verdict the attack could not earn."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

from helpers import grid_images, tiny_cnn
from pytest_advrobust import FalseRobustnessError, ModelOutputError, OptionError, attack


class NoGrad(nn.Module):
    """Gradient masking: the model's output does not depend differentiably on its input."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = tiny_cnn()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            logits = self.inner(x)
        return logits + 0 * x.sum()


def test_normalization_is_applied_after_the_perturbation_in_pixel_units() -> None:
    model = tiny_cnn().eval()
    x = grid_images(2)
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    result = attack(model, x, epsilon=0.02, mean=mean, std=std, steps=3)
    assert (result.adversarial - x).abs().max() <= 0.02 + 1e-6
    normalized = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = model(normalized).argmax(1).tolist()
    assert [r.clean_label for r in result.records] == expected


@pytest.mark.parametrize("normalized", [True, False])
def test_rows_predicted_along_another_pass_get_the_logits_they_get_alone(normalized: bool) -> None:
    from pytest_advrobust.core.models.model import WrappedModel

    mean, std = ((0.5, 0.4, 0.3), (0.2, 0.25, 0.3)) if normalized else (None, None)
    wrapped = WrappedModel(tiny_cnn().eval(), mean=mean, std=std)
    x, extra = grid_images(3, seed=1), grid_images(2, seed=2)
    with torch.no_grad():
        alone, extra_alone = wrapped.logits(x), wrapped.logits(extra)
        wrapped.predict_along(extra)
        together = wrapped.logits(x)
    assert torch.allclose(together, alone, atol=1e-6)
    assert torch.allclose(wrapped.along_logits(), extra_alone, atol=1e-6)
    assert wrapped.forward_passes == 3
    x_grad = x.clone().requires_grad_()
    wrapped.predict_along(extra)
    (grad,) = torch.autograd.grad(wrapped.logits(x_grad)[:, 0].sum(), x_grad)  # never rides a pass with gradient
    assert grad.shape == x.shape and torch.allclose(wrapped.along_logits(), extra_alone, atol=1e-6)


def test_zero_input_gradient_is_not_robustness() -> None:
    with pytest.raises(FalseRobustnessError, match=r"input gradient is exactly zero for image 0.*torch.no_grad"):
        attack(NoGrad(), grid_images(2), epsilon=0.03)


def test_probabilities_instead_of_logits_are_refused() -> None:
    model = nn.Sequential(tiny_cnn(), nn.Softmax(dim=1))
    with pytest.raises(ModelOutputError, match="returns probabilities, not logits.*drop the final softmax"):
        attack(model, grid_images(2), epsilon=0.03)


def test_nan_logits_are_refused() -> None:
    model = tiny_cnn()
    with torch.no_grad():
        model[-1].bias.fill_(float("nan"))
    with pytest.raises(ModelOutputError, match="NaN or Inf logits for image 0"):
        attack(model, grid_images(2), epsilon=0.03)


def test_wrong_output_shape_is_refused() -> None:
    with pytest.raises(ModelOutputError, match=r"returned shape \(2, 10, 1\).*expected \(2, num_classes\) logits"):
        attack(lambda x: tiny_cnn()(x)[..., None], grid_images(2), epsilon=0.03)


def test_bad_images_are_refused_with_the_fix() -> None:
    with pytest.raises(OptionError, match="must be in \\[0,1\\] pixel units"):
        attack(tiny_cnn(), grid_images(2) * 255, epsilon=0.03)
    with pytest.raises(OptionError, match="must be float pixels"):
        attack(tiny_cnn(), (grid_images(2) * 255).to(torch.uint8), epsilon=0.03)
    with pytest.raises(OptionError, match="must be a batch N×C×H×W"):
        attack(tiny_cnn(), torch.rand(8, 8), epsilon=0.03)


def test_a_missing_device_is_refused() -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(OptionError, match="CUDA is not available on this machine"):
        attack(tiny_cnn(), grid_images(2), epsilon=0.03, device="cuda")


def test_the_core_never_imports_pytest() -> None:
    code = (
        "import sys, torch; import pytest_advrobust as p; from pytest_advrobust.core import api; from pytest_advrobust.core.results import summary; "
        "p.attack(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3)), torch.rand(2, 3, 2, 2), "
        "epsilon=0.1); assert 'pytest' not in sys.modules and '_pytest' not in sys.modules, 'pytest imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_model_on_the_meta_device_is_refused_by_name() -> None:
    """A model built on the meta device (never materialized) computes nothing: refused with the reason,
    instead of ``Tensor.item() cannot be called on meta tensors`` from deep in a check."""
    from pytest_advrobust import ModelOutputError, attack

    with torch.device("meta"):
        model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    with pytest.raises(ModelOutputError, match=r"parameters are on the meta device \(not materialized: 1.weight"):
        attack(model, torch.rand(1, 3, 2, 2), epsilon=0.01)
    with pytest.raises(ModelOutputError, match="meta device"):
        attack(model, torch.rand(1, 3, 2, 2), epsilon=0.01, device="cpu")


def test_a_model_that_refuses_the_input_size_with_a_value_error_gets_the_plain_message() -> None:
    """transformers raises ValueError ("Input image size (40*40) doesn't match model (32*32)"), torch a
    RuntimeError: either way the first forward's refusal is one message about the input, not a traceback."""
    from pytest_advrobust import ModelOutputError, attack

    class SizeChecked(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise ValueError(f"Input image size ({x.shape[2]}*{x.shape[3]}) doesn't match model (32*32).")

    with pytest.raises(ModelOutputError, match=r"the model refused a batch of 1×3×40×40 images \(Input image size"):
        attack(SizeChecked(), torch.rand(1, 3, 40, 40), epsilon=0.01)
