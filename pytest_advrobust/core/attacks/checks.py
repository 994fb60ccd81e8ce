"""Checks that refuse a verdict rather than report false robustness.

Each raises :class:`ModelOutputError` or :class:`FalseRobustnessError` with a message that names the
images and the likely cause: NaN/Inf logits, probabilities instead of logits, a nondeterministic model,
and a zero or non-finite input gradient.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..errors import FalseRobustnessError, ModelOutputError


def _which(rows: Sequence[int], names: Sequence[str] | None, unnamed: str = "#") -> str:
    return ", ".join(names[i] if names else f"{unnamed}{i}" for i in list(rows)[:5])


def check_logits(logits: torch.Tensor, names: Sequence[str] | None = None) -> None:
    """Raise if logits are NaN/Inf: no verdict can be trusted then."""
    bad = ~torch.isfinite(logits).all(dim=1)
    if bad.any():
        raise ModelOutputError(
            f"the model returned NaN or Inf logits for {_which(bad.nonzero().flatten().tolist(), names)}; check "
            "the model's weights and the input normalization (mean/std) before testing robustness"
        )


def check_not_probabilities(logits: torch.Tensor) -> None:
    """Raise if the outputs are in [0,1] and sum to 1 per image: probabilities saturate gradients."""
    in_range = bool(((logits >= 0) & (logits <= 1)).all())
    ones = torch.ones(logits.shape[0], device=logits.device, dtype=logits.dtype)
    sums_to_one = bool(torch.allclose(logits.sum(dim=1), ones, atol=1e-3))
    if in_range and sums_to_one and logits.shape[1] > 1:
        raise ModelOutputError(
            "the model's outputs are in [0,1] and sum to 1 per image: it returns probabilities, not "
            "logits. Gradients of probabilities saturate and make models look robust; drop the final "
            "softmax (or return log-probabilities)"
        )


def check_deterministic(again: torch.Tensor, logits: torch.Tensor, names: Sequence[str]) -> None:
    """Two clean forward passes in eval mode must agree (``again``: the second one's logits for the
    images whose first logits are ``logits``), or no verdict is reproducible."""
    differs = ~torch.isclose(again, logits, rtol=1e-3, atol=1e-4).all(dim=1)
    if differs.any():
        raise ModelOutputError(
            f"the model is not deterministic in eval mode: two forward passes on the same clean image "
            f"disagree for {_which(differs.nonzero().flatten().tolist(), names)}. Remove randomness from "
            "forward() (dropout called with training=True, random augmentation, sampling) or seed it inside "
            "the model, and anything that depends on the rest of the batch (batch norm using batch statistics: "
            "F.batch_norm(..., training=True) or track_running_stats=False). A model that is random by design "
            "(noise injection, random resizing or padding, dropout at inference, randomized smoothing) is "
            "judged by expectation over transformation: use --adv-eot=20 (eot=20 in the marker or attack())"
        )


def check_gradient(grad: torch.Tensor, rows: torch.Tensor, names: Sequence[str] | None) -> None:
    """Refuse to call a model robust when the attack cannot see a gradient for an image."""
    smallest, largest = grad.detach().flatten(1).aminmax(dim=1)  # one pass, no copy; NaN propagates
    largest = torch.maximum(largest, -smallest)  # the largest magnitude; Inf stays Inf
    nonfinite = ~torch.isfinite(largest)
    zero = largest == 0
    for mask, what, why in (
        (nonfinite, "non-finite (NaN/Inf)", "check the model for log(0), division by zero or overflow"),
        (
            zero,
            "exactly zero",
            (
                "the model may block gradients (torch.no_grad, .detach(), argmax, non-differentiable "
                "preprocessing), return saturated probabilities instead of logits, or be so confident that "
                "the float32 loss is flat; an attack that sees no gradient proves nothing"
            ),
        ),
    ):
        if mask.any():
            which = _which(rows[mask].tolist(), names, unnamed="image #")
            raise FalseRobustnessError(f"the input gradient is {what} for {which}: {why}")
