"""One sign-gradient loop serves every attack.

FGSM is one step of size ε; BIM (iterative FGSM) is ``steps`` steps of ``step_size``; PGD is BIM from a
random start drawn from a seeded ``torch.Generator``. Untargeted attacks ascend the cross-entropy of the
true label; targeted ones descend the cross-entropy of the target. After every step the iterate is
projected into the ε-ball around the clean image and clipped to [0,1].

The loop reuses each step's own forward pass to decide success for the *current* iterate, so checking
costs no extra forward. Under the ``rounded`` verdict an iterate only counts as a success once its 8-bit
rounding (see :func:`quantize_8bit`) also succeeds; that check runs only on the images that succeeded in
float. With early stopping, an image that succeeded leaves the batch. Without it, the returned image is
the last iterate that succeeded (so a flip that a later step undoes is not lost), else the final iterate.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .errors import FalseRobustnessError, ModelOutputError
from .model import WrappedModel

VERDICT_ROUNDED = "rounded"


def quantize_8bit(adversarial: torch.Tensor, clean: torch.Tensor, epsilon: float | torch.Tensor) -> torch.Tensor:
    """Round ``adversarial`` to 8-bit pixel values (k/255) without leaving the ε-ball around ``clean``.

    Each pixel goes to the nearer of its two neighbouring 8-bit values when that one lies within ε of
    the clean pixel, else to the other one (toward the clean pixel). When the clean pixel itself is on
    the 8-bit grid (as for images loaded from 8-bit files) the result always stays within ε; for an
    off-grid clean pixel and ε < 1/255 neither neighbour may fit, and the one closer to the clean pixel
    is used (``linf_8bit`` in the record shows the true distance).
    """
    scaled = adversarial * 255
    low = torch.floor(scaled) / 255
    high = torch.ceil(scaled) / 255
    tolerance = 1e-6
    nearest_is_low = (adversarial - low) <= (high - adversarial)
    nearest = torch.where(nearest_is_low, low, high)
    other = torch.where(nearest_is_low, high, low)
    nearest_fits = (nearest - clean).abs() <= epsilon + tolerance
    other_fits = (other - clean).abs() <= epsilon + tolerance
    closer_to_clean = torch.where((low - clean).abs() <= (high - clean).abs(), low, high)
    result = torch.where(nearest_fits, nearest, torch.where(other_fits, other, closer_to_clean))
    return result.clamp(0, 1)


@dataclass
class Trajectory:
    """What the loop found, per row of the batch (``N`` rows).

    ``first_success``: the iterate index (0 = start) at which the attack's goal was first reached under
    the verdict, or -1. ``label_probs``/``target_probs``/``top_classes``: N×(steps+1) per-iterate curves,
    NaN/-1 after an image stopped. ``adversarial`` is the returned float image, ``adversarial_logits``
    its logits from the loop's own forward pass.
    """

    adversarial: torch.Tensor
    adversarial_logits: torch.Tensor
    rounded: torch.Tensor
    rounded_logits: torch.Tensor
    first_success: torch.Tensor
    steps_run: torch.Tensor
    label_probs: torch.Tensor
    target_probs: torch.Tensor | None
    top_classes: torch.Tensor
    top_probs: torch.Tensor


def _per_image(value: float | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A scalar or per-image (N,) value as an N×1×1×1 tensor that broadcasts over each image."""
    tensor = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    if tensor.dim() == 0:
        tensor = tensor.expand(like.shape[0])
    return tensor.reshape(-1, *([1] * (like.dim() - 1)))


def _goal(logits: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None) -> torch.Tensor:
    pred = logits.argmax(dim=1)
    return pred == targets if targets is not None else pred != labels


def check_logits(logits: torch.Tensor, names: list[str] | None = None) -> None:
    """Raise if logits are NaN/Inf: no verdict can be trusted then."""
    bad = ~torch.isfinite(logits).all(dim=1)
    if bad.any():
        rows = bad.nonzero().flatten().tolist()
        which = ", ".join(names[i] if names else f"#{i}" for i in rows[:5])
        raise ModelOutputError(
            f"the model returned NaN or Inf logits for {which}; check the model's weights and the input "
            "normalization (mean/std) before testing robustness"
        )


def sign_gradient_attack(
    model: WrappedModel,
    clean: torch.Tensor,
    labels: torch.Tensor,
    targets: torch.Tensor | None,
    *,
    epsilon: float | torch.Tensor,
    steps: int,
    step_size: float | torch.Tensor,
    noise: torch.Tensor | None = None,
    early_stop: bool = True,
    verdict: str = VERDICT_ROUNDED,
    start_logits: tuple[torch.Tensor, torch.Tensor] | None = None,
    names: list[str] | None = None,
    repredict_rounded: bool = True,
) -> Trajectory:
    """Run ``steps`` sign-gradient steps on ``clean`` (N×C×H×W in [0,1], on the model's device).

    ``labels`` (N,) are the true classes; ``targets`` (N,) the target classes, or None for untargeted.
    ``noise`` (N×C×H×W, uniform in [-1, 1]) makes a random start ``clean + ε·noise`` (PGD).
    ``start_logits`` optionally passes ``(x, logits)`` for iterate 0, computed on ``x = clean`` requiring
    grad, so the caller's clean forward pass is reused (ignored with a random start).
    ``repredict_rounded=False`` skips re-predicting rounded images the loop did not already check
    (their ``rounded_logits`` are then undefined): for callers that only need ``first_success``.
    """
    n = clean.shape[0]
    device = clean.device
    eps = _per_image(epsilon, clean)
    alpha = _per_image(step_size, clean) * (-1.0 if targets is not None else 1.0)
    lower = (clean - eps).clamp(0, 1)
    upper = (clean + eps).clamp(0, 1)
    if noise is not None:
        x = torch.minimum(torch.maximum(clean + noise.to(clean) * eps, lower), upper)
    else:
        x = clean.clone()
    goal_classes = targets if targets is not None else labels

    columns = steps + 1
    label_probs = torch.full((n, columns), float("nan"), device=device)
    target_probs = torch.full((n, columns), float("nan"), device=device) if targets is not None else None
    top_classes = torch.full((n, columns), -1, dtype=torch.long, device=device)
    top_probs = torch.full((n, columns), float("nan"), device=device)
    first_success = torch.full((n,), -1, dtype=torch.long, device=device)
    steps_run = torch.zeros(n, dtype=torch.long, device=device)
    returned = x.clone()
    returned_logits = torch.empty(0)
    rounded_logits = torch.empty(0)
    rounded_known = torch.zeros(n, dtype=torch.bool, device=device)

    active = torch.arange(n, device=device)
    x_act, lo_act, hi_act, clean_act, eps_act, alpha_act = x, lower, upper, clean, eps, alpha
    lab_act, goal_act = labels, goal_classes
    tgt_act = targets

    for k in range(columns):
        need_grad = k < steps
        if k == 0 and start_logits is not None and noise is None:
            x_act, logits = start_logits  # the caller's clean forward pass, already checked there
        else:
            x_act = x_act.detach().requires_grad_(need_grad)
            with torch.set_grad_enabled(need_grad):
                logits = model.logits(x_act)
            if k == 0:
                check_logits(logits.detach(), names)
        detached = logits.detach()
        if k == 0:
            returned_logits = torch.empty((n, detached.shape[1]), device=device, dtype=detached.dtype)
            rounded_logits = torch.empty_like(returned_logits)
        probs = detached.softmax(dim=1)
        label_probs[active, k] = probs.gather(1, lab_act[:, None]).squeeze(1)
        if target_probs is not None and tgt_act is not None:
            target_probs[active, k] = probs.gather(1, tgt_act[:, None]).squeeze(1)
        top, top_class = probs.max(dim=1)
        top_classes[active, k] = top_class
        top_probs[active, k] = top

        success = _goal(detached, lab_act, tgt_act)
        if success.any() and verdict == VERDICT_ROUNDED:
            rows = success.nonzero().flatten()
            q = quantize_8bit(x_act.detach()[rows], clean_act[rows], eps_act[rows])
            with torch.no_grad():
                q_logits = model.logits(q)
            q_success = _goal(q_logits, lab_act[rows], None if tgt_act is None else tgt_act[rows])
            rounded_logits[active[rows[q_success]]] = q_logits[q_success]
            rounded_known[active[rows[q_success]]] = True
            success[rows] = q_success
        if success.any():
            idx = active[success]
            first_success[idx] = torch.where(first_success[idx] < 0, k, first_success[idx])
            returned[idx] = x_act.detach()[success]
            returned_logits[idx] = detached[success]
        steps_run[active] = k
        last = k == steps
        if last:
            never = first_success[active] < 0
            idx = active[never]
            returned[idx] = x_act.detach()[never]
            returned_logits[idx] = detached[never]
            break

        if early_stop and bool(success.all()):
            break  # every image still attacked reached its goal: no gradient is needed
        loss = F.cross_entropy(logits, goal_act, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x_act)
        model.backward_passes += 1
        if k == 0:
            _check_gradient(grad[~success], active[~success], names)
        x_new = x_act.detach() + alpha_act * grad.sign()
        x_new = torch.minimum(torch.maximum(x_new, lo_act), hi_act)

        if early_stop and success.any():
            keep = ~success
            active = active[keep]
            x_new, lo_act, hi_act, clean_act = x_new[keep], lo_act[keep], hi_act[keep], clean_act[keep]
            eps_act, alpha_act = eps_act[keep], alpha_act[keep]
            lab_act, goal_act = lab_act[keep], goal_act[keep]
            tgt_act = None if tgt_act is None else tgt_act[keep]
        x_act = x_new

    rounded = quantize_8bit(returned, clean, eps)
    # The loop re-predicted the rounded image of every success under the rounded verdict; the rest
    # are re-predicted here, in one batch.
    unknown = ~rounded_known
    if repredict_rounded and unknown.any():
        with torch.no_grad():
            rounded_logits[unknown] = model.logits(rounded[unknown])
    return Trajectory(
        adversarial=returned,
        adversarial_logits=returned_logits,
        rounded=rounded,
        rounded_logits=rounded_logits,
        first_success=first_success,
        steps_run=steps_run,
        label_probs=label_probs,
        target_probs=target_probs,
        top_classes=top_classes,
        top_probs=top_probs,
    )


def _check_gradient(grad: torch.Tensor, active: torch.Tensor, names: list[str] | None) -> None:
    """Refuse to call a model robust when the attack cannot see a gradient for an image."""
    flat = grad.detach().flatten(1)
    nonfinite = ~torch.isfinite(flat).all(dim=1)
    zero = (flat == 0).all(dim=1)
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
            rows = active[mask].tolist()
            which = ", ".join(names[i] if names else f"image #{i}" for i in rows[:5])
            raise FalseRobustnessError(f"the input gradient is {what} for {which}: {why}")
