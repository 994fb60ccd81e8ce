"""The one public entry point for scripts, notebooks, the fixtures and the marker: :func:`attack`."""

from __future__ import annotations

import dataclasses
import warnings
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from .attacks import Trajectory, check_logits, sign_gradient_attack
from .classes import ClassNames, load_class_names
from .errors import ClassNameError, ModelOutputError, OptionError
from .images import ImageSet
from .minimal import search_minimal_epsilon
from .model import WrappedModel, eval_mode, resolve_device
from .results import AttackResult, ImageRecord
from .settings import AttackConfig, Source, TargetSpec, resolve

LabelsArg = torch.Tensor | Sequence[int | str | None] | None


def attack(
    model: Callable[[torch.Tensor], torch.Tensor] | WrappedModel,
    images: torch.Tensor | ImageSet,
    labels: LabelsArg = None,
    *,
    epsilon: float,
    method: str = "bim",
    steps: int | None = None,
    step_size: float | None = None,
    targets: Any = None,
    seed: int = 0,
    mean: Sequence[float] | str | None = None,
    std: Sequence[float] | str | None = None,
    input_size: int | tuple[int, int] | None = None,
    class_names: str | Path | Sequence[str] | ClassNames | None = None,
    early_stop: bool = True,
    verdict: str = "rounded",
    batch_size: int | None = None,
    sanity_checks: bool = True,
    minimal_epsilon: bool = False,
    epsilon_max: float = 16 / 255,
    epsilon_precision: float = 0.0002,
    device: str = "model",
    names: Sequence[str] | None = None,
) -> AttackResult:
    """Attack ``model`` on ``images`` within an L∞ ball of radius ``epsilon`` and report every image.

    Args:
        model: an ``nn.Module`` or callable mapping a (normalized) N×C×H×W batch to N×K logits.
        images: N×C×H×W float pixels in [0,1] (never modified), or an :class:`ImageSet`.
        labels: true classes (indices or names); None uses the ImageSet's labels, else the model's clean
            prediction (reported as ``label_source="model prediction"``).
        epsilon: L∞ budget in [0,1] pixel units (0.007 ≈ 1.8/255).
        method: ``fgsm`` (one step of ε), ``bim`` (``steps`` steps of ``step_size``), ``pgd`` (bim from a
            random start seeded by ``seed``).
        steps: default 10 for bim/pgd, 1 for fgsm. step_size: default 2.5·ε/steps (ε for fgsm).
        targets: None/"untargeted", "least-likely", "top-K", class indices/names (each image is
            attacked toward each target), or a tensor of N class indices (one target per image).
        mean, std: normalization applied inside the model wrapper after the perturbation ("imagenet" ok).
        early_stop: stop attacking an image once it reached the goal under the verdict.
        verdict: "rounded" (the 8-bit rounded image decides) or "float".
        batch_size: attack at most this many images at once (default 32; "all" for one batch).
        sanity_checks: check determinism, and that one FGSM step does not beat the configured attack.
        minimal_epsilon: also find each image's smallest successful ε in (0, epsilon_max], to
            ``epsilon_precision``, by a batched bisection (``record.minimal_epsilon``).
        device: "model" (the model's own device), "auto", "cpu", "cuda", ...; the model must already be
            there unless it is "model" (use ``model.to(device)`` first).
    Returns:
        An :class:`AttackResult`; ``result.assert_robust()`` raises if any image flipped.
    """
    config = resolve(
        [
            (
                {
                    "epsilon": epsilon,
                    "attack": method,
                    "steps": steps,
                    "step_size": step_size,
                    "targets": targets,
                    "seed": seed,
                    "mean": mean,
                    "std": std,
                    "input_size": input_size,
                    "early_stop": early_stop,
                    "verdict": verdict,
                    "batch_size": batch_size,
                    "sanity_checks": sanity_checks,
                    "minimal_epsilon": minimal_epsilon,
                    "epsilon_max": epsilon_max,
                    "epsilon_precision": epsilon_precision,
                    "device": device,
                },
                Source("call", "pytest_advrobust.attack()"),
            )
        ]
    )
    return run_attack(config, model, images, labels, class_names=class_names, names=names)


def run_attack(
    config: AttackConfig,
    model: Callable[[torch.Tensor], torch.Tensor] | WrappedModel,
    images: torch.Tensor | ImageSet,
    labels: LabelsArg = None,
    *,
    class_names: str | Path | Sequence[str] | ClassNames | None = None,
    names: Sequence[str] | None = None,
    reproduce: str | None = None,
    progress: Callable[[int, int, int], None] | None = None,
) -> AttackResult:
    """:func:`attack` for an already resolved :class:`AttackConfig` (what the plugin calls).

    ``progress(done, total, failed)`` is called after each batch of ``config.batch_size`` images.
    """
    if isinstance(model, WrappedModel):
        wrapped = model
    else:
        wrapped = WrappedModel(model, mean=config.mean, std=config.std, input_size=config.input_size)
    if config.device != "model":
        wanted = resolve_device(config.device, wrapped.model)
        if wanted != wrapped.device and not (wanted.type == wrapped.device.type and wanted.index is None):
            raise OptionError(
                f"device={config.device!r} but the model is on {wrapped.device}; move it first "
                f"(model.to({str(wanted)!r})) or leave device at 'model'"
            )
    classes = load_class_names(class_names if class_names is not None else config.class_names)

    image_set = images if isinstance(images, ImageSet) else None
    pixels = image_set.pixels if image_set is not None else images
    if not isinstance(pixels, torch.Tensor):
        raise OptionError(f"images must be a tensor or an ImageSet, got {type(images).__name__}")
    if pixels.dim() == 3:
        pixels = pixels.unsqueeze(0)
    wrapped.check_images(pixels)
    n = pixels.shape[0]
    image_names = (
        list(names)
        if names is not None
        else (image_set.names if image_set is not None else [f"image {i}" for i in range(n)])
    )
    if len(image_names) != n:
        raise OptionError(f"{len(image_names)} names given for {n} images")
    given, sources = _labels(labels, image_set, n, classes)

    records: list[ImageRecord] = []
    adversarial: list[torch.Tensor] = []
    rounded: list[torch.Tensor] = []
    clean_rows: list[torch.Tensor] = []
    notes: list[str] = list(image_set.notes) if image_set is not None else []
    forward0, backward0 = wrapped.forward_passes, wrapped.backward_passes
    chunk = config.batch_size or max(n, 1)
    with eval_mode(wrapped.model):
        for start in range(0, n, chunk):
            stop = min(start + chunk, n)
            part = _attack_chunk(
                _chunk_config(config, start, stop, n),
                wrapped,
                pixels[start:stop].detach().to(wrapped.device, torch.float32),
                given[start:stop],
                sources[start:stop],
                image_names[start:stop],
                classes,
                notes,
            )
            records += part[0]
            adversarial.append(part[1].to(pixels.device))
            rounded.append(part[2].to(pixels.device))
            clean_rows.append(part[3].to(pixels.device))
            if progress is not None:
                progress(stop, n, sum(1 for record in records if record.failed))
    settings = {
        "epsilon": config.epsilon,
        "attack": config.attack,
        "steps": config.resolved_steps,
        "step_size": config.resolved_step_size,
        "targets": str(config.targets),
        "seed": config.seed,
        "verdict": config.verdict,
        "early_stop": config.early_stop,
        "device": str(wrapped.device),
        "mean": config.mean,
        "std": config.std,
        "minimal_epsilon": {"max": config.epsilon_max, "precision": config.epsilon_precision}
        if config.minimal_epsilon
        else None,
        "describe": config.describe(),
        "notes": notes,
    }
    if reproduce:
        settings["reproduce"] = reproduce
    empty = pixels.new_empty((0, *pixels.shape[1:]))
    return AttackResult(
        adversarial=torch.cat(adversarial) if adversarial else empty,
        adversarial_8bit=torch.cat(rounded) if rounded else empty,
        clean=torch.cat(clean_rows) if clean_rows else empty,
        records=records,
        settings=settings,
        forward_passes=wrapped.forward_passes - forward0,
        backward_passes=wrapped.backward_passes - backward0,
    )


def _chunk_config(config: AttackConfig, start: int, stop: int, n: int) -> AttackConfig:
    """The settings for images ``start:stop``: per-image targets are sliced with their images."""
    spec = config.targets
    if spec.mode != "per-image":
        return config
    if len(spec.classes) != n:
        raise OptionError(f"targets: {len(spec.classes)} per-image targets for {n} images")
    return dataclasses.replace(config, targets=TargetSpec("per-image", classes=spec.classes[start:stop]))


def _labels(
    labels: LabelsArg, image_set: ImageSet | None, n: int, classes: ClassNames
) -> tuple[list[int | None], list[str]]:
    if labels is None:
        if image_set is not None:
            return list(image_set.labels), list(image_set.label_sources)
        return [None] * n, ["model prediction"] * n
    values = labels.tolist() if isinstance(labels, torch.Tensor) else list(labels)
    if isinstance(labels, torch.Tensor) and labels.dim() == 0:
        values = [int(labels.item())]
    if len(values) != n:
        raise OptionError(f"{len(values)} labels given for {n} images")
    resolved: list[int | None] = []
    for value in values:
        resolved.append(None if value is None else classes.index(value))
    return resolved, ["given" if v is not None else "model prediction" for v in resolved]


def _targets_for(spec: TargetSpec, logits: torch.Tensor, classes: ClassNames) -> list[list[int]] | None:
    """Per image, the target classes (None for untargeted)."""
    num_classes = logits.shape[1]
    if spec.mode == "untargeted":
        return None
    if spec.mode == "per-image":  # already sliced to this batch by _chunk_config, which checks the count
        return [[classes.index(c, num_classes)] for c in spec.classes]
    if spec.mode == "least-likely":
        return [[int(i)] for i in logits.argmin(dim=1).tolist()]
    if spec.mode == "runner-up":
        if spec.k + 1 > num_classes:
            raise OptionError(f"targets=top-{spec.k} needs more than {spec.k} classes; the model has {num_classes}")
        order = logits.topk(spec.k + 1, dim=1).indices[:, 1:]
        return [list(map(int, row)) for row in order.tolist()]
    try:
        wanted = [classes.index(c, num_classes) for c in spec.classes]
    except ClassNameError as exc:
        raise ClassNameError(f"targets: {exc}") from None
    return [list(wanted) for _ in range(logits.shape[0])]


def _noise_seed(seed: int, name: str, target: int | None) -> int:
    """A random start that depends on the seed, the image and the target only, not on batching."""
    return (seed * 1_000_003 + zlib.crc32(f"{name}\0{target}".encode())) % (2**63)


def _check_deterministic(wrapped: WrappedModel, clean: torch.Tensor, logits: torch.Tensor, names: list[str]) -> None:
    """Two clean forward passes in eval mode must agree, or no verdict is reproducible."""
    with torch.no_grad():
        again = wrapped.logits(clean)
    differs = ~torch.isclose(again, logits, rtol=1e-3, atol=1e-4).all(dim=1)
    if differs.any():
        which = ", ".join(names[i] for i in differs.nonzero().flatten().tolist()[:5])
        raise ModelOutputError(
            f"the model is not deterministic in eval mode: two forward passes on the same clean image "
            f"disagree for {which}. Remove randomness from forward() (dropout called with training=True, "
            "random augmentation, sampling) or seed it inside the model"
        )


def _fgsm_sanity_check(
    config: AttackConfig,
    wrapped: WrappedModel,
    clean: torch.Tensor,
    labels: torch.Tensor,
    targets: torch.Tensor | None,
    trajectory: Trajectory,
    names: list[str],
    found_by: list[str],
) -> list[str]:
    """The full-budget attack must be at least as strong as one FGSM step: attack what held with FGSM;
    a success there replaces the result (so a weak attack never reads as robustness) and warns."""
    held = (trajectory.first_success < 0).nonzero().flatten()
    if held.numel() == 0:
        return found_by
    check = sign_gradient_attack(
        wrapped,
        clean[held],
        labels[held],
        None if targets is None else targets[held],
        epsilon=config.epsilon,
        steps=1,
        step_size=config.epsilon,
        early_stop=True,
        verdict=config.verdict,
        names=[names[i] for i in held.tolist()],
    )
    won = (check.first_success >= 0).nonzero().flatten()
    if won.numel() == 0:
        return found_by
    rows = held[won]
    for field in ("adversarial", "adversarial_logits", "rounded", "rounded_logits"):
        getattr(trajectory, field)[rows] = getattr(check, field)[won]
    trajectory.first_success[rows] = check.first_success[won]
    found_by = list(found_by)
    for row in rows.tolist():
        found_by[row] = "fgsm sanity check"
    warnings.warn(
        f"one FGSM step succeeded where the {config.attack} attack ({config.resolved_steps} steps of "
        f"{config.resolved_step_size:.4g}) did not, for {', '.join(names[r] for r in rows.tolist()[:5])}; "
        "the FGSM result is used. Check steps/step_size: a weaker-than-FGSM attack proves nothing",
        stacklevel=4,
    )
    return found_by


def _looks_like_probabilities(logits: torch.Tensor) -> bool:
    in_range = bool(((logits >= 0) & (logits <= 1)).all())
    sums_to_one = bool(torch.allclose(logits.sum(dim=1), torch.ones(logits.shape[0], device=logits.device), atol=1e-3))
    return in_range and sums_to_one and logits.shape[1] > 1


def _attack_chunk(
    config: AttackConfig,
    wrapped: WrappedModel,
    clean: torch.Tensor,
    given: list[int | None],
    sources: list[str],
    names: list[str],
    classes: ClassNames,
    notes: list[str],
) -> tuple[list[ImageRecord], torch.Tensor, torch.Tensor, torch.Tensor]:
    spec = config.targets
    single_target = (
        spec.mode in ("untargeted", "least-likely", "per-image")
        or (spec.mode == "classes" and len(spec.classes) == 1)
        or (spec.mode == "runner-up" and spec.k == 1)
    )
    reuse = single_target and config.attack != "pgd"
    x0 = clean.clone().requires_grad_(reuse)
    with torch.set_grad_enabled(reuse):
        clean_logits = wrapped.logits(x0)
    detached = clean_logits.detach()
    check_logits(detached, names)
    if _looks_like_probabilities(detached):
        raise ModelOutputError(
            "the model's outputs are in [0,1] and sum to 1 per image: it returns probabilities, not "
            "logits. Gradients of probabilities saturate and make models look robust; drop the final "
            "softmax (or return log-probabilities)"
        )
    if config.sanity_checks:
        _check_deterministic(wrapped, clean, detached, names)
    clean_probs = detached.softmax(dim=1)
    clean_pred = detached.argmax(dim=1)
    labels_list = [int(p) if g is None else g for g, p in zip(given, clean_pred.tolist(), strict=True)]
    for label in labels_list:
        if label >= detached.shape[1]:
            raise OptionError(f"label {label} is out of range: the model has {detached.shape[1]} classes")
    per_image_targets = _targets_for(spec, detached, classes)

    rows: list[tuple[int, int | None]] = []
    for i in range(clean.shape[0]):
        if per_image_targets is None:
            rows.append((i, None))
            continue
        for wanted in per_image_targets[i]:
            if wanted == labels_list[i]:
                notes.append(f"{names[i]}: target {classes.name(wanted)!r} is its own label; pair skipped")
                continue
            rows.append((i, wanted))
    if not rows:
        empty = clean.new_empty((0, *clean.shape[1:]))
        return [], empty, empty, empty
    index = torch.tensor([i for i, _ in rows], device=clean.device)
    expanded = clean[index] if len(rows) != clean.shape[0] else clean
    labels = torch.tensor([labels_list[i] for i, _ in rows], device=clean.device)
    targets = None if per_image_targets is None else torch.tensor([t for _, t in rows], device=clean.device)
    noise = None
    if config.attack == "pgd":
        noise = (
            torch.stack(
                [
                    torch.rand(
                        clean.shape[1:], generator=torch.Generator().manual_seed(_noise_seed(config.seed, names[i], t))
                    )
                    for i, t in rows
                ]
            ).to(clean.device)
            * 2
            - 1
        )
    can_reuse = reuse and len(rows) == clean.shape[0]
    several = per_image_targets is not None and any(len(ts) > 1 for ts in per_image_targets)
    row_names = [f"{names[i]} -> {classes.name(t)}" if several and t is not None else names[i] for i, t in rows]
    trajectory = sign_gradient_attack(
        wrapped,
        expanded,
        labels,
        targets,
        epsilon=config.epsilon,
        steps=config.resolved_steps,
        step_size=config.resolved_step_size,
        noise=noise,
        early_stop=config.early_stop,
        verdict=config.verdict,
        start_logits=(x0, clean_logits) if can_reuse else None,
        names=row_names,
    )
    found_by = [config.attack] * len(rows)
    if config.sanity_checks and config.attack != "fgsm" and config.epsilon > 0:
        found_by = _fgsm_sanity_check(config, wrapped, expanded, labels, targets, trajectory, row_names, found_by)
    adv_probs = trajectory.adversarial_logits.softmax(dim=1)
    q_probs = trajectory.rounded_logits.softmax(dim=1)
    adv_pred = adv_probs.argmax(dim=1)
    q_pred = q_probs.argmax(dim=1)
    linf = (trajectory.adversarial - expanded).flatten(1).abs().amax(dim=1)
    linf_q = (trajectory.rounded - expanded).flatten(1).abs().amax(dim=1)
    minimal: list[float | None] = [None] * len(rows)
    if config.minimal_epsilon:
        found, cost = search_minimal_epsilon(
            wrapped,
            expanded,
            labels,
            targets,
            succeeded_at=trajectory.first_success >= 0,
            epsilon=config.epsilon,
            epsilon_max=config.epsilon_max,
            precision=config.epsilon_precision,
            steps=config.resolved_steps,
            step_size_factor=config.step_size_factor,
            noise=noise,
            verdict=config.verdict,
            names=row_names,
        )
        minimal = [None if v != v else float(v) for v in found.tolist()]
        notes.append(f"minimal-ε search: {cost.attack_runs} attack runs for {len(rows)} image(s)")

    records = []
    for r, (i, t) in enumerate(rows):
        ran = int(trajectory.steps_run[r])
        first = int(trajectory.first_success[r])
        path = trajectory.top_classes[r, : ran + 1].tolist()
        label = labels_list[i]
        records.append(
            ImageRecord(
                name=row_names[r],
                label=label,
                label_name=classes.name(label),
                label_source=sources[i],
                clean_label=int(clean_pred[i]),
                clean_label_name=classes.name(int(clean_pred[i])),
                clean_prob=float(clean_probs[i, clean_pred[i]]),
                misclassified=int(clean_pred[i]) != label,
                target=t,
                target_name=None if t is None else classes.name(t),
                adv_label=int(adv_pred[r]),
                adv_label_name=classes.name(int(adv_pred[r])),
                adv_prob=float(adv_probs[r, adv_pred[r]]),
                adv_label_8bit=int(q_pred[r]),
                adv_label_8bit_name=classes.name(int(q_pred[r])),
                adv_prob_8bit=float(q_probs[r, q_pred[r]]),
                flipped_float=int(adv_pred[r]) != label,
                flipped_8bit=int(q_pred[r]) != label,
                target_reached_float=None if t is None else int(adv_pred[r]) == t,
                target_reached_8bit=None if t is None else int(q_pred[r]) == t,
                linf=float(linf[r]),
                linf_8bit=float(linf_q[r]),
                first_flip_step=first if first >= 0 else None,
                steps_run=ran,
                steps=config.resolved_steps,
                epsilon=config.epsilon,
                verdict=config.verdict,
                label_curve=trajectory.label_probs[r, : ran + 1].tolist(),
                target_curve=None
                if trajectory.target_probs is None
                else trajectory.target_probs[r, : ran + 1].tolist(),
                path=path,
                path_names=[classes.name(c) for c in path],
                top_curve=trajectory.top_probs[r, : ran + 1].tolist(),
                found_by=found_by[r],
                minimal_epsilon=minimal[r],
            )
        )
    return records, trajectory.adversarial, trajectory.rounded, expanded
