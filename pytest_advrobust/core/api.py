"""The one public entry point for scripts, notebooks, the fixtures and the marker: :func:`attack`."""

from __future__ import annotations

import dataclasses
import inspect
import math
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from .attacks.sign_gradient import build_attack
from .batch import BatchContext, BatchImages, BatchResult
from .data.batching import BatchSizer, Regrouper, read_size, rows_per_image
from .data.classes import ClassNames, load_class_names
from .data.images import ImageFiles
from .data.sources import Batch, ImageSource, as_source
from .errors import AdvRobustError, OptionError
from .models.formats import ShippedModel, normalization_hint
from .models.model import WrappedModel, eval_mode
from .models.preprocessing import Preprocessing
from .pipeline import attack_batch
from .results.attack_result import AttackResult
from .results.report import Count, ImageRecord, RunSettings, joined_notes
from .settings import AttackConfig, Source, TargetSpec, resolve
from .settings.attack import DLR_CLASSES
from .settings.data import AUTO_BATCH_FIRST
from .settings.precedence import with_model_metadata
from .settings.values import VERDICT_ROUNDED

LabelsArg = torch.Tensor | Sequence[int | str | None] | None
_SPELLED = {"method": "attack"}
_NOT_OPTIONS = ("model", "images", "labels", "class_names", "names")
"""attack()'s parameters that are not settings: what is attacked, and how it is named."""


def attack(
    model: Callable[[torch.Tensor], torch.Tensor] | WrappedModel | ShippedModel,
    images: Any,
    labels: LabelsArg = None,
    *,
    epsilon: float,
    norm: str = "linf",
    method: str = "apgd",
    profile: str | None = None,
    eot: int = 1,
    queries: int = 1000,
    loss: str = "auto",
    steps: int | None = None,
    step_size: float | None = None,
    targets: Any = None,
    seed: int = 0,
    mean: Sequence[float] | str | None = None,
    std: Sequence[float] | str | None = None,
    input_size: int | tuple[int, int] | None = None,
    output: str | int | None = None,
    class_names: str | Path | Sequence[str] | ClassNames | None = None,
    early_stop: bool = True,
    verdict: str = "rounded",
    batch_size: int | str | None = "auto",
    workers: int | None = None,
    sanity_checks: bool = True,
    minimal_epsilon: bool | None = None,
    epsilon_max: float | None = None,
    epsilon_precision: float | None = None,
    device: str = "model",
    confidence: float = 0.95,
    names: Sequence[str] | None = None,
) -> AttackResult:
    """Attack ``model`` on ``images`` within a ball of radius ``epsilon`` (in ``norm``) and report every image.

    Every default is the options table's (``pytest --help`` shows it; a test checks they agree).

    Args:
        model: an ``nn.Module`` or callable mapping a (normalized) N×C×H×W batch to N×K logits, or a
            :class:`~pytest_advrobust.core.models.formats.ShippedModel` from :func:`load_shipped` (``timm:<folder>``,
            ``hf:<folder>``, ``model.onnx``), whose own metadata then supplies mean, std, input size,
            channels and class names that the call leaves unset.
        images: N×C×H×W float pixels in [0,1] (never modified), an ``(x, y)`` pair, an :class:`ImageSet`,
            image files from :func:`find_images` (read batch by batch), a map-style ``Dataset`` of
            ``(image, label)`` (e.g. torchvision's ``ImageFolder`` with ``ToTensor()``; its ``classes``
            are the class names), a ``DataLoader``, or an iterable of ``(x, y)`` batches.
        labels: true classes (indices or names) of in-memory images; None uses the source's labels, else
            the model's clean prediction (reported as ``label_source="model prediction"``).
        epsilon: the budget in [0,1] pixel units, measured in ``norm`` over the whole C×H×W image
            (L∞ 0.007 ≈ 1.8/255: no pixel moves more; an L2 ε of 0.5 bounds the change's Euclidean length).
        norm: ``linf`` (the largest pixel change), ``l2`` (the change's Euclidean length) or ``l1`` (the
            sum of the pixel changes; only ``apgd`` and ``autoattack`` have a form under it).
        method: ``fgsm`` (one step of ε), ``bim`` (``steps`` steps of ``step_size``), ``pgd`` (bim from a
            random start seeded by ``seed``), ``apgd`` (Auto-PGD: momentum, adaptive step size from 2ε),
            ``square`` (score-based, ``queries`` forward passes, no gradient) or ``autoattack`` (APGD-CE,
            then apgd toward ``targets``, then square on what held).
        profile: a named set of settings (``quick``, ``standard``, ``thorough`` or one registered with
            :func:`register_profile`); it sets the parameters this call leaves at their defaults.
        eot: forward passes per prediction and gradient, for a model with randomness in ``forward``
            (expectation over transformation; AutoAttack uses 20); 1 refuses such a model.
        queries: the square attack's forward passes per image.
        loss: ``ce`` or ``dlr``; ``auto`` is DLR for targeted apgd (APGD-T), cross-entropy otherwise.
        steps: default 10 for bim/pgd/apgd, 1 for fgsm.
        step_size: default 2.5·ε/steps (ε for fgsm; apgd sets its own, from 2ε).
        targets: None/"untargeted", "least-likely", "top-K" (the K runner-up classes one after another,
            each image only while it holds: AutoAttack's APGD-T), class indices/names (each image is
            attacked toward each target), or a tensor of N class indices (one target per image).
        mean: per-channel mean subtracted inside the model wrapper, after the perturbation ("imagenet" ok).
        std: per-channel std divided inside the model wrapper (both or neither of mean and std).
        output: where the logits are in the model's output (a key or an index); None takes a tensor, or
            the output's ``.logits`` / ``["logits"]`` (Hugging Face image classifiers).
        early_stop: stop attacking an image once it reached the goal under the verdict.
        verdict: "rounded" (the 8-bit rounded image decides) or "float".
        batch_size: read and attack at most this many images at once ("all" for one batch); "auto"
            times the first batches at a few sizes on the CPU and keeps the fastest per image, and on CUDA
            takes the largest batch that fits (``result.settings.batching`` says which and why).
        workers: DataLoader processes decoding files or reading a Dataset during the attack (None: auto).
        sanity_checks: check determinism, and that one FGSM step does not beat the configured attack.
        minimal_epsilon: also find each image's smallest successful ε in (0, epsilon_max], to
            ``epsilon_precision``, by a batched bisection (``record.minimal_epsilon``); None (auto) is off
            outside the plugin, which has no baselines here. ``epsilon_max`` None: 16/255 under linf, 4ε
            under l2 and l1; ``epsilon_precision`` None: 0.0002 under linf, the range over 256 otherwise.
        device: "model" (the model's own device), "auto", "cpu", "cuda", ...; the model is moved there.
        confidence: the level of the robust accuracy's exact interval (``result.accuracy.text()``).
    Returns:
        An :class:`AttackResult`; ``result.assert_robust()`` raises if any image flipped,
        ``result.assert_robust(min_accuracy=0.6)`` if the robust accuracy is below 60%.
    """
    # the keywords are the options' names (a test checks it), except ``method`` for ``attack``
    given = {_SPELLED.get(name, name): value for name, value in locals().items() if name not in _NOT_OPTIONS}
    if profile is not None:  # the profile sets what the call leaves at its default
        defaults = {_SPELLED.get(n, n): p.default for n, p in inspect.signature(attack).parameters.items()}
        given = {name: value for name, value in given.items() if not _is_default(value, defaults.get(name))}
    config = resolve([(given, Source("call", "pytest_advrobust.attack()"))])
    return run_attack(config, model, images, labels, class_names=class_names, names=names)


def _is_default(value: Any, default: Any) -> bool:
    """Whether a parameter was left at its default (a plain value equal to it)."""
    plain = (str, int, float, bool, type(None))
    return value is default or (isinstance(value, plain) and type(value) is type(default) and value == default)


def _class_names(given: Any, config: AttackConfig, source: ImageSource | None) -> ClassNames:
    """The call's class names, else the settings', else the source's (an ImageSet's, a dataset's ``classes``)."""
    if given is not None:
        return load_class_names(given)
    if config.class_names is not None:
        return load_class_names(config.class_names)
    if source is not None and source.class_names is not None:
        return source.class_names
    return ClassNames()


def _label_map(own: ClassNames | None, chosen: ClassNames) -> dict[int, int] | None:
    """Labels are indices into their source's own class names (an ImageFolder's ``classes``); when other
    class names are set, each is moved to the index of its name there (None: nothing to move)."""
    if own is None or not len(chosen) or own.names == chosen.names:
        return None
    moved = {}
    for i, name in enumerate(own.names):
        try:
            moved[i] = chosen.index(name)
        except AdvRobustError:
            shown = ", ".join(chosen.names[:5]) + (", …" if len(chosen) > 5 else "")
            raise OptionError(
                f"the images' class {name!r} (from their dataset's classes) is not among the class names "
                f"({shown}); name the classes as the dataset does, or map its labels (target_transform)"
            ) from None
    return moved


def _batch_config(config: AttackConfig, start: int, stop: int, n: int | None) -> AttackConfig:
    """The settings for images ``start:stop``: per-image targets are sliced with their images."""
    spec = config.targets
    if spec.mode != "per-image":
        return config
    if (n is not None and len(spec.classes) != n) or len(spec.classes) < stop:
        raise OptionError(f"targets: {len(spec.classes)} per-image targets for {n or f'at least {stop}'} images")
    return dataclasses.replace(config, targets=TargetSpec("per-image", classes=spec.classes[start:stop]))


def _with_metadata(config: AttackConfig, shipped: ShippedModel) -> AttackConfig:
    """The settings completed with the model's own metadata (call > model > default); a value set that
    contradicts it is kept, with a warning naming both."""
    completed, contradictions = with_model_metadata(
        config, *shipped.preprocessing.as_settings(), image_fit=shipped.preprocessing
    )
    if completed.mean is None:
        contradictions.append(normalization_hint(shipped))
    for message in [*shipped.notes, *contradictions]:
        warnings.warn(message, stacklevel=4)
    return completed


def _fitted(source: ImageSource, config: AttackConfig) -> tuple[ImageSource, AttackConfig]:
    """Image files listed without a size are read the way the model's own eval transform reads them
    (``config.image_fit``, from its metadata); any other images are attacked as given, and the report
    then names no resize of the model's."""
    fit = config.image_fit
    if not isinstance(fit, Preprocessing) or (isinstance(source, ImageFiles) and source.image_fit == fit):
        return source, config
    if isinstance(source, ImageFiles) and source.image_fit is None and source.input_size in (None, fit.input_size):
        return source.fitted(fit), config  # listed at no size, or at the model's: read as the model reads them
    return source, dataclasses.replace(config, image_fit=None)


ONE_LEVEL = 1 / 255
"""One 8-bit level in [0,1] pixel units."""


def _warn_below_one_level(config: AttackConfig, clean: torch.Tensor, notes: list[str | Count]) -> None:
    """Under the rounded verdict the image that is judged is the adversarial one rounded to 8 bits within
    the ε-ball: with ε below one level and clean pixels on the 8-bit grid, that is the clean image itself,
    so nothing can flip and a pass would prove nothing. Said once per run, as a warning and a note."""
    if config.verdict != VERDICT_ROUNDED or not 0 < config.epsilon < ONE_LEVEL * (1 - 1e-6):
        return
    levels = clean.detach() * 255
    if float((levels - levels.round()).abs().max()) > 1e-3:
        return  # off the grid: rounding can move a pixel by less than one level
    message = (
        f"epsilon={config.epsilon:g} is below one 8-bit level (1/255 ≈ 0.0039): under verdict=rounded an 8-bit "
        "image cannot change at all within it, so no image can flip and a pass proves nothing; use epsilon ≥ "
        "1/255, or verdict=float to judge the float image"
    )
    warnings.warn(message, stacklevel=4)
    notes.append(message)


def _warn_beyond_every_image(config: AttackConfig, shape: torch.Size, notes: list[str | Count]) -> None:
    """Under l2 or l1, an ε at least the distance between the all-black and the all-white image lets the
    attack turn any image into any other, so a flip proves nothing either. Said once per run."""
    pixels = math.prod(shape)
    widest = {"l2": math.sqrt(pixels), "l1": float(pixels)}.get(config.norm)
    if widest is None or config.epsilon < widest:
        return
    size = "×".join(map(str, shape))
    message = (
        f"epsilon={config.epsilon:g} under {config.norm} is at least the {config.norm} distance between an all-black "
        f"and an all-white {size} image ({widest:g}): the attack may turn any image into any other, so the test "
        "measures nothing; is ε meant for another norm or image size?"
    )
    warnings.warn(message, stacklevel=4)
    notes.append(message)


def _loss_used(config: AttackConfig, outputs: int, notes: list[str | Count]) -> AttackConfig:
    """The config as run: ``loss=auto`` that would choose DLR for a model with too few classes ran
    cross-entropy (and says so), so reports and baselines name the loss that was used."""
    used = config.loss_for(outputs or None)
    if used == config.resolved_loss:
        return config
    notes.append(
        f"loss=auto: the DLR loss needs at least {DLR_CLASSES[True]} classes and the model has {outputs}; "
        "cross-entropy was used"
    )
    return dataclasses.replace(config, loss=used)


def run_settings(
    config: AttackConfig,
    device: torch.device,
    notes: list[str],
    reproduce: str | None,
    sizer: BatchSizer | None = None,
) -> RunSettings:
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
        early_stop=config.early_stop and config.eot == 1,  # with eot every image runs all steps
        device=str(device),
        mean=None if config.mean is None else list(config.mean),
        std=None if config.std is None else list(config.std),
        minimal_epsilon={"max": config.resolved_epsilon_max, "precision": config.resolved_epsilon_precision}
        if config.minimal_epsilon
        else None,
        describe=config.describe(),
        profile=config.profile,
        eot=config.eot,
        queries=config.queries if config.attack in ("square", "autoattack") else None,
        notes=notes,
        reproduce=reproduce,
        from_model=config.from_model(),
        batching="" if sizer is None else sizer.describe(),
        batch_sizes=[] if sizer is None else list(sizer.used),
        confidence=config.confidence,
        min_robust_accuracy=config.min_robust_accuracy,
        baseline_rule=config.baseline_rule,
        tolerance=list(config.resolved_tolerance),
        norm=config.norm,
    )


def _joined(kept: dict[str, list[torch.Tensor]], name: str) -> torch.Tensor:
    """One result tensor from the batches' parts. One batch's adversarial images are the attack's own
    tensor (no copy), and its 8-bit images too unless they are that very tensor; the clean images (which
    may be the caller's) and several batches are copied into one."""
    parts = kept[name]
    if len(parts) == 1 and (name == "adversarial" or (name == "rounded" and parts[0] is not kept["adversarial"][0])):
        return parts[0]
    return torch.cat(parts) if parts else torch.empty(0)


def _images(piece: Batch, device: torch.device, remap: dict[int, int] | None) -> BatchImages:
    """A batch's images on the model's device, their labels moved to the chosen class names' indices."""
    clean = piece.pixels.detach().to(device, torch.float32)
    labels = piece.labels if remap is None else [None if i is None else remap.get(i, i) for i in piece.labels]
    return BatchImages(clean, labels, piece.sources, piece.names)


@dataclasses.dataclass
class _Collected:
    """What a run's batches add up to, in order: records, notes, counts and (``keep_images``) tensors."""

    keep_images: bool
    notes: list[str | Count]
    records: list[ImageRecord] = dataclasses.field(default_factory=list)
    kept: dict[str, list[torch.Tensor]] = dataclasses.field(
        default_factory=lambda: {"adversarial": [], "rounded": [], "clean": []}
    )
    done: int = 0
    failed: int = 0
    outputs: int = 0

    def add(self, piece: Batch, part: BatchResult) -> None:
        self.done += len(piece)
        self.outputs = part.outputs
        self.records += part.records
        self.notes += [*piece.notes, *part.notes]
        self.failed += sum(1 for record in part.records if record.failed)
        if self.keep_images:
            for name, parts in self.kept.items():
                parts.append(getattr(part, name).to(piece.pixels.device))


def _wrapped(
    config: AttackConfig, model: Callable[[torch.Tensor], torch.Tensor] | WrappedModel | ShippedModel
) -> tuple[AttackConfig, WrappedModel]:
    """The model wrapped for ``config`` and placed on its device; a shipped model's metadata goes into
    ``config`` (where nothing more specific set it)."""
    if isinstance(model, ShippedModel):
        config, model = _with_metadata(config, model), model.module
    if not isinstance(model, WrappedModel):
        model = WrappedModel(
            model, mean=config.mean, std=config.std, input_size=config.input_size, output=config.output
        )
    model.place(config.device)
    return config, model


def run_attack(
    config: AttackConfig,
    model: Callable[[torch.Tensor], torch.Tensor] | WrappedModel | ShippedModel,
    images: Any,
    labels: LabelsArg = None,
    *,
    class_names: str | Path | Sequence[str] | ClassNames | None = None,
    names: Sequence[str] | None = None,
    reproduce: str | None = None,
    progress: Callable[[int, int | None, int], None] | None = None,
    keep_images: bool = True,
    on_batch: Callable[[BatchResult], None] | None = None,
) -> AttackResult:
    """:func:`attack` for an already resolved :class:`AttackConfig` (what the plugin calls).

    ``images`` is anything :func:`~pytest_advrobust.core.data.sources.as_source` takes; it is read, attacked
    and reported ``config.batch_size`` images at a time (:mod:`~pytest_advrobust.core.data.batching`).
    ``progress(done, total, failed)`` is called after each batch (``total`` None when the source's length
    is unknown), ``on_batch`` with each batch's result. ``keep_images=False`` keeps no tensors in the
    result (``adversarial`` etc. are empty), so memory does not grow with the number of images.
    """
    config, wrapped = _wrapped(config, model)
    given = images if isinstance(images, ImageSource) else None  # labels given as names need class names
    source = as_source(images, labels, names, _class_names(class_names, config, given))
    source, config = _fitted(source, config)
    classes = _class_names(class_names, config, source)
    remap = _label_map(source.class_names, classes)
    attack = build_attack(config)
    total = source.count
    forward0, backward0 = wrapped.forward_passes, wrapped.backward_passes
    run = _Collected(keep_images, list(source.notes))
    with eval_mode(wrapped.model):
        reader = Regrouper(source.batches(read_size(config.batch_size, source), config.workers_for(total)))
        first = reader.peek()
        if first is not None:
            wrapped.check_images(first.pixels)
        sample = None if first is None else first.pixels
        # a randomized model draws its noise for the whole batch: under eot, batches that depend on timing
        # would make draws, and so verdicts, differ from run to run
        setting = AUTO_BATCH_FIRST if config.batch_size == "auto" and config.eot > 1 else config.batch_size
        sizer = BatchSizer(setting, wrapped, sample, rows_per_image(config.targets))
        while (batch := reader.take(sizer.next_take(None if total is None else total - run.done))) is not None:
            wrapped.check_images(batch.pixels)
            if run.done == 0:
                _warn_below_one_level(config, batch.pixels.detach().float(), run.notes)
                _warn_beyond_every_image(config, batch.pixels.shape[1:], run.notes)
            for piece in sizer.pieces(batch):  # attacked here, so that warnings point at the caller
                try:
                    settings = _batch_config(config, run.done, run.done + len(piece), total)
                    context = BatchContext(settings, attack, wrapped, classes)
                    part = attack_batch(context, _images(piece, wrapped.device, remap), first=run.done == 0)
                except torch.cuda.OutOfMemoryError as exc:
                    sizer.ran_out(piece, exc)  # the piece comes again, halved
                    continue
                run.add(piece, part)
                if on_batch is not None:
                    on_batch(part)
                if progress is not None:
                    progress(run.done, total, run.failed)
    if config.targets.mode == "per-image" and len(config.targets.classes) != run.done:
        raise OptionError(f"targets: {len(config.targets.classes)} per-image targets for {run.done} images")

    config = _loss_used(config, run.outputs, run.notes)
    return AttackResult(
        adversarial=_joined(run.kept, "adversarial"),
        adversarial_8bit=_joined(run.kept, "rounded"),
        clean=_joined(run.kept, "clean"),
        records=run.records,
        settings=run_settings(config, wrapped.device, joined_notes(run.notes), reproduce, sizer),
        forward_passes=wrapped.forward_passes - forward0,
        backward_passes=wrapped.backward_passes - backward0,
    )
