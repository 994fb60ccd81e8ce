"""The one public entry point for scripts, notebooks, the fixtures and the marker: :func:`attack`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .attacks import build_attack
from .classes import ClassNames, load_class_names
from .errors import OptionError
from .images import ImageSet
from .model import WrappedModel, eval_mode
from .pipeline import BatchResult, attack_batch
from .report import RunSettings
from .results import AttackResult
from .settings import AttackConfig, Source, TargetSpec, resolve

LabelsArg = torch.Tensor | Sequence[int | str | None] | None


def attack(
    model: Callable[[torch.Tensor], torch.Tensor] | WrappedModel,
    images: torch.Tensor | ImageSet,
    labels: LabelsArg = None,
    *,
    epsilon: float,
    method: str = "apgd",
    loss: str = "auto",
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
    batch_size: int | str | None = 32,
    sanity_checks: bool = True,
    minimal_epsilon: bool | None = None,
    epsilon_max: float = 16 / 255,
    epsilon_precision: float = 0.0002,
    device: str = "model",
    names: Sequence[str] | None = None,
) -> AttackResult:
    """Attack ``model`` on ``images`` within an L∞ ball of radius ``epsilon`` and report every image.

    Every default is the options table's (``pytest --help`` shows it; a test checks they agree).

    Args:
        model: an ``nn.Module`` or callable mapping a (normalized) N×C×H×W batch to N×K logits.
        images: N×C×H×W float pixels in [0,1] (never modified), or an :class:`ImageSet`.
        labels: true classes (indices or names); None uses the ImageSet's labels, else the model's clean
            prediction (reported as ``label_source="model prediction"``).
        epsilon: L∞ budget in [0,1] pixel units (0.007 ≈ 1.8/255).
        method: ``fgsm`` (one step of ε), ``bim`` (``steps`` steps of ``step_size``), ``pgd`` (bim from a
            random start seeded by ``seed``), ``apgd`` (Auto-PGD: momentum, adaptive step size from 2ε).
        loss: ``ce`` or ``dlr``; ``auto`` is DLR for targeted apgd (APGD-T), cross-entropy otherwise.
        steps: default 10 for bim/pgd, 1 for fgsm. step_size: default 2.5·ε/steps (ε for fgsm).
        targets: None/"untargeted", "least-likely", "top-K" (the K runner-up classes one after another,
            each image only while it holds: AutoAttack's APGD-T), class indices/names (each image is
            attacked toward each target), or a tensor of N class indices (one target per image).
        mean, std: normalization applied inside the model wrapper after the perturbation ("imagenet" ok).
        early_stop: stop attacking an image once it reached the goal under the verdict.
        verdict: "rounded" (the 8-bit rounded image decides) or "float".
        batch_size: attack at most this many images at once ("all" for one batch).
        sanity_checks: check determinism, and that one FGSM step does not beat the configured attack.
        minimal_epsilon: also find each image's smallest successful ε in (0, epsilon_max], to
            ``epsilon_precision``, by a batched bisection (``record.minimal_epsilon``); None (auto) is off
            outside the plugin, which has no baselines here.
        device: "model" (the model's own device), "auto", "cpu", "cuda", ...; the model is moved there.
    Returns:
        An :class:`AttackResult`; ``result.assert_robust()`` raises if any image flipped.
    """
    given = {
        "epsilon": epsilon,
        "attack": method,
        "loss": loss,
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
    }
    config = resolve([(given, Source("call", "pytest_advrobust.attack()"))])
    return run_attack(config, model, images, labels, class_names=class_names, names=names)


@dataclass
class _Inputs:
    """The images to attack, with a name, a given label (or None) and a label source each."""

    pixels: torch.Tensor
    names: list[str]
    given: list[int | None]
    sources: list[str]
    notes: list[str]

    @classmethod
    def of(
        cls, images: torch.Tensor | ImageSet, labels: LabelsArg, names: Sequence[str] | None, classes: ClassNames
    ) -> _Inputs:
        image_set = images if isinstance(images, ImageSet) else None
        pixels = image_set.pixels if image_set is not None else images
        if not isinstance(pixels, torch.Tensor):
            raise OptionError(f"images must be a tensor or an ImageSet, got {type(images).__name__}")
        if pixels.dim() == 3:
            pixels = pixels.unsqueeze(0)
        n = pixels.shape[0]
        if names is not None:
            image_names = list(names)
        else:
            image_names = image_set.names if image_set is not None else [f"image {i}" for i in range(n)]
        if len(image_names) != n:
            raise OptionError(f"{len(image_names)} names given for {n} images")
        given, sources = _labels(labels, image_set, n, classes)
        notes = list(image_set.notes) if image_set is not None else []
        return cls(pixels, image_names, given, sources, notes)


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
    resolved = [None if value is None else classes.index(value) for value in values]
    return resolved, ["given" if v is not None else "model prediction" for v in resolved]


def _class_names(given: Any, config: AttackConfig, images: Any) -> ClassNames:
    """The call's class names, else the settings', else those the ImageSet's labels were read with."""
    if given is not None:
        return load_class_names(given)
    if config.class_names is not None:
        return load_class_names(config.class_names)
    if isinstance(images, ImageSet) and images.class_names is not None:
        return images.class_names
    return ClassNames()


def _batch_config(config: AttackConfig, start: int, stop: int, n: int) -> AttackConfig:
    """The settings for images ``start:stop``: per-image targets are sliced with their images."""
    spec = config.targets
    if spec.mode != "per-image":
        return config
    if len(spec.classes) != n:
        raise OptionError(f"targets: {len(spec.classes)} per-image targets for {n} images")
    return dataclasses.replace(config, targets=TargetSpec("per-image", classes=spec.classes[start:stop]))


def run_settings(config: AttackConfig, device: torch.device, notes: list[str], reproduce: str | None) -> RunSettings:
    """What one run used, for its report."""
    return RunSettings(
        epsilon=config.epsilon,
        attack=config.attack,
        steps=config.resolved_steps,
        step_size=config.resolved_step_size,
        targets=str(config.targets),
        loss=config.resolved_loss,
        seed=config.seed,
        verdict=config.verdict,
        early_stop=config.early_stop,
        device=str(device),
        mean=None if config.mean is None else list(config.mean),
        std=None if config.std is None else list(config.std),
        minimal_epsilon={"max": config.epsilon_max, "precision": config.epsilon_precision}
        if config.minimal_epsilon
        else None,
        describe=config.describe(),
        notes=notes,
        reproduce=reproduce,
    )


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
    wrapped.place(config.device)
    classes = _class_names(class_names, config, images)
    inputs = _Inputs.of(images, labels, names, classes)
    wrapped.check_images(inputs.pixels)
    attack = build_attack(config)
    n = inputs.pixels.shape[0]
    chunk = config.batch_size or max(n, 1)
    forward0, backward0 = wrapped.forward_passes, wrapped.backward_passes
    parts: list[BatchResult] = []
    with eval_mode(wrapped.model):
        for start in range(0, n, chunk):
            stop = min(start + chunk, n)
            clean = inputs.pixels[start:stop].detach().to(wrapped.device, torch.float32)
            batch_config = _batch_config(config, start, stop, n)
            part = attack_batch(
                batch_config, attack, wrapped, clean, inputs.given[start:stop], inputs.sources[start:stop],
                inputs.names[start:stop], classes,
            )  # fmt: skip
            parts.append(part)
            if progress is not None:
                progress(stop, n, sum(1 for p in parts for record in p.records if record.failed))
    empty = inputs.pixels.new_empty((0, *inputs.pixels.shape[1:]))

    def joined(name: str) -> torch.Tensor:
        tensors = [getattr(part, name).to(inputs.pixels.device) for part in parts]
        return torch.cat(tensors) if tensors else empty

    notes = inputs.notes + [note for part in parts for note in part.notes]
    return AttackResult(
        adversarial=joined("adversarial"),
        adversarial_8bit=joined("rounded"),
        clean=joined("clean"),
        records=[record for part in parts for record in part.records],
        settings=run_settings(config, wrapped.device, notes, reproduce),
        forward_passes=wrapped.forward_passes - forward0,
        backward_passes=wrapped.backward_passes - backward0,
    )
