"""One batch of images, from clean pixels to records: forward, plan, attack, floor check, minimal ε.

:func:`attack_batch` does each job through one function: :func:`clean_forward` (the checked clean
prediction), :func:`plan_batch` (rows, labels, targets, noise, names: built once), the attack's ``run``,
:func:`fgsm_floor`, :func:`~pytest_advrobust.core.minimal.search_minimal_epsilon` and
:func:`~pytest_advrobust.core.results.records_from`.
"""

from __future__ import annotations

import math
import warnings
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from .attacks import Attack, SignGradientAttack, Trajectory
from .checks import check_deterministic, check_logits, check_not_probabilities
from .classes import ClassNames
from .errors import ClassNameError, OptionError
from .goals import Goal, goal_for
from .minimal import round_to_precision, search_minimal_epsilon
from .model import WrappedModel
from .report import FOUND_BY_FLOOR, VERDICT_ROUNDED, ImageRecord
from .settings import AttackConfig, TargetSpec

DETERMINISM_SAMPLE = 1
"""How many images the determinism check predicts a second time, on a run's first batch: randomness left
in ``forward`` (dropout in training mode, random augmentation, sampling) shows on any image. The second
look rides along the batch's next forward pass without gradient (no call of its own), and the check runs
when the batch is done."""


@dataclass
class CleanForward:
    """The clean images' forward pass; ``x``/``logits`` keep their graph when the attack reuses them as
    its iterate 0 (then ``reusable`` is True)."""

    x: torch.Tensor
    logits: torch.Tensor
    reusable: bool
    determinism_sample: int = 0
    """How many of the first images the model predicts a second time during the batch (see
    :meth:`check_determinism`)."""

    def check_determinism(self, model: WrappedModel, names: Sequence[str]) -> None:
        """Compare the second look at the sample (taken along another forward pass) with the first."""
        if self.determinism_sample:
            sample = slice(0, self.determinism_sample)
            check_deterministic(model.along_logits(), self.logits.detach()[sample], names[sample])

    @property
    def probs(self) -> torch.Tensor:
        return self.logits.detach().softmax(dim=1)

    @property
    def pred(self) -> torch.Tensor:
        return self.logits.detach().argmax(dim=1)


def _one_target_per_image(spec: TargetSpec) -> bool:
    return (
        spec.mode in ("untargeted", "least-likely", "per-image")
        or (spec.mode == "classes" and len(spec.classes) == 1)
        or (spec.mode == "runner-up" and spec.k == 1)
    )


def clean_forward(
    model: WrappedModel,
    clean: torch.Tensor,
    config: AttackConfig,
    attack: Attack,
    names: list[str],
    check_determinism: bool = True,
) -> CleanForward:
    """Predict the clean images once, and refuse outputs no verdict can be built on (with
    ``check_determinism`` and the sanity checks on, also a model that answers twice differently)."""
    reusable = _one_target_per_image(config.targets) and not attack.random_start
    # requiring grad, the clean images themselves (autograd refuses a model that changes them in place);
    # else a copy, which such a model may change
    x = clean.detach().requires_grad_() if reusable else clean.clone()
    with torch.set_grad_enabled(reusable):
        logits = model.logits(x)
    detached = logits.detach()
    check_logits(detached, names)
    check_not_probabilities(detached)
    sample = 0
    if config.sanity_checks and check_determinism:  # on a small fixed subset: nondeterminism shows on any image
        sample = min(DETERMINISM_SAMPLE, clean.shape[0])
        model.predict_along(clean[:sample])
    return CleanForward(x, logits, reusable, sample)


@dataclass
class BatchPlan:
    """What one batch attacks, one row per (image, target) pair; built once by :func:`plan_batch`."""

    images: list[int]
    """The batch image each row attacks."""
    targets: list[int | None]
    labels: list[int]
    """Per batch image: its true class (given, or the clean prediction)."""
    sources: list[str]
    """Per batch image: where its label came from."""
    clean: torch.Tensor
    goal: Goal
    noise: torch.Tensor | None
    names: list[str]
    """Per row: the image name, with `` -> target`` when an image has several targets."""
    start: tuple[torch.Tensor, torch.Tensor] | None
    """The clean forward pass, when the attack can reuse it as its iterate 0."""
    notes: list[str] = field(default_factory=list)
    tried: list[int] | None = None
    """top-K: per row, how many runner-up targets were tried (success is then any flip)."""

    def __len__(self) -> int:
        return len(self.images)


def targets_for(spec: TargetSpec, logits: torch.Tensor, classes: ClassNames) -> list[list[int]] | None:
    """Per image, the target classes (None for untargeted)."""
    num_classes = logits.shape[1]
    if spec.mode == "untargeted":
        return None
    if spec.mode == "per-image":  # already sliced to this batch, which checks the count
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


def noise_seed(seed: int, name: str, target: int | None) -> int:
    """A random start that depends on the seed, the image and the target only, not on batching."""
    return (seed * 1_000_003 + zlib.crc32(f"{name}\0{target}".encode())) % (2**63)


def _noise(shape: torch.Size, seed: int, names: Sequence[str], rows: Sequence[tuple[int, int | None]]) -> torch.Tensor:
    """Uniform noise in [-1, 1] per row, drawn on the CPU so it is the same on every device."""
    draws = [torch.rand(shape, generator=torch.Generator().manual_seed(noise_seed(seed, names[i], t))) for i, t in rows]
    return torch.stack(draws) * 2 - 1


def _labels(
    given: Sequence[int | None], forward: CleanForward, names: Sequence[str], sources: Sequence[str]
) -> list[int]:
    num_classes = forward.logits.shape[1]
    labels = [int(p) if g is None else g for g, p in zip(given, forward.pred.tolist(), strict=True)]
    for label, name, source in zip(labels, names, sources, strict=True):
        if not 0 <= label < num_classes:
            raise OptionError(
                f"label {label} of {name} ({source}) is out of range: the model has {num_classes} classes"
                + (" (unlabelled images: give None as their label, and the model's prediction is used)"
                   if label < 0 else "")
                + ("; numeric folder names are class indices: set class_names, in the model's order, to read "
                   "them as names" if source == "folder name" else "")
            )  # fmt: skip
    return labels


def plan_batch(
    config: AttackConfig,
    attack: Attack,
    classes: ClassNames,
    clean: torch.Tensor,
    forward: CleanForward,
    given: Sequence[int | None],
    sources: Sequence[str],
    names: Sequence[str],
) -> BatchPlan:
    """Expand images into (image, target) rows; a target equal to the image's own label is skipped."""
    labels = _labels(given, forward, names, sources)
    per_image = targets_for(config.targets, forward.logits.detach(), classes)
    notes: list[str] = []
    rows: list[tuple[int, int | None]] = []
    for i in range(clean.shape[0]):
        for wanted in [None] if per_image is None else per_image[i]:
            if wanted is not None and wanted == labels[i]:
                notes.append(f"{names[i]}: target {classes.name(wanted)!r} is its own label; pair skipped")
                continue
            rows.append((i, wanted))
    device = clean.device
    index = torch.tensor([i for i, _ in rows], dtype=torch.long, device=device)
    targets = None if per_image is None else torch.tensor([t for _, t in rows], dtype=torch.long, device=device)
    several = per_image is not None and any(len(ts) > 1 for ts in per_image)
    every_image_once = [i for i, _ in rows] == list(range(clean.shape[0]))
    return BatchPlan(
        images=[i for i, _ in rows],
        targets=[t for _, t in rows],
        labels=labels,
        sources=list(sources),
        clean=clean if every_image_once else clean[index],
        goal=goal_for(
            torch.tensor(labels, dtype=torch.long, device=device)[index],
            targets,
            loss=config.resolved_loss,
            num_classes=forward.logits.shape[1],
            chosen=config.loss != "auto",
        ),
        noise=_noise(clean.shape[1:], config.seed, names, rows).to(device) if attack.random_start and rows else None,
        names=[f"{names[i]} -> {classes.name(t)}" if several and t is not None else names[i] for i, t in rows],
        start=(forward.x, forward.logits) if forward.reusable and every_image_once else None,
        notes=notes,
    )


def one_record_per_image(spec: TargetSpec) -> bool:
    """top-K runs as AutoAttack's APGD-T does: one target after another, each image only while it holds."""
    return spec.mode == "runner-up" and spec.k > 1


def attack_runner_ups(
    config: AttackConfig,
    attack: Attack,
    model: WrappedModel,
    classes: ClassNames,
    clean: torch.Tensor,
    forward: CleanForward,
    given: Sequence[int | None],
    sources: Sequence[str],
    names: list[str],
) -> tuple[BatchPlan, Trajectory]:
    """Attack each image toward its runner-up classes in order; an image that flips (to any class) is
    not robust and is attacked toward no further target. One row per image: its last target."""
    labels = _labels(given, forward, names, sources)
    device, n = clean.device, clean.shape[0]
    label_tensor = torch.tensor(labels, dtype=torch.long, device=device)
    logits = forward.logits.detach().clone()
    k = min(config.targets.k, logits.shape[1] - 1)  # top-9 on a 3-class model: both other classes
    logits.scatter_(1, label_tensor[:, None], float("-inf"))  # the runner-ups of the label, never the label
    order = logits.topk(k, dim=1).indices.tolist()
    chosen = [row[0] for row in order]
    tried = [0] * n
    remaining = torch.arange(n, device=device)
    trajectory: Trajectory | None = None
    for j in range(k):
        rows = remaining.tolist()
        for i in rows:
            chosen[i], tried[i] = order[i][j], j + 1
        targets = torch.tensor([chosen[i] for i in rows], dtype=torch.long, device=device)
        loss, classes_count = config.resolved_loss, forward.logits.shape[1]
        goal = goal_for(label_tensor[remaining], targets, loss=loss, reach="flip", num_classes=classes_count,
                        chosen=config.loss != "auto")  # fmt: skip
        pairs = [(i, chosen[i]) for i in rows]
        noise = _noise(clean.shape[1:], config.seed, names, pairs).to(device) if attack.random_start else None
        part = attack.run(model, clean[remaining], goal, config.epsilon, noise=noise, names=[names[i] for i in rows])
        if trajectory is None:
            trajectory = part
        else:
            trajectory.take(remaining, part, torch.arange(len(rows), device=device), curves=True)
        remaining = remaining[part.first_success < 0]
        if remaining.numel() == 0:
            break
    assert trajectory is not None
    pairs = [(i, chosen[i]) for i in range(n)]
    plan = BatchPlan(
        images=list(range(n)),
        targets=list(chosen),
        labels=labels,
        sources=list(sources),
        clean=clean,
        goal=goal_for(
            label_tensor,
            torch.tensor(chosen, dtype=torch.long, device=device),
            loss=config.resolved_loss,
            reach="flip",
            num_classes=logits.shape[1],
            chosen=config.loss != "auto",
        ),
        # read only by the minimal-ε search: the attack drew each target's noise itself
        noise=_noise(clean.shape[1:], config.seed, names, pairs).to(device)
        if attack.random_start and config.minimal_epsilon
        else None,
        names=list(names),
        start=None,
        notes=[f"top-{config.targets.k}: {len(remaining)} of {n} image(s) held against all {k} runner-up targets"],
        tried=tried,
    )
    return plan, trajectory


def fgsm_floor(
    attack: Attack, model: WrappedModel, plan: BatchPlan, trajectory: Trajectory, epsilon: float
) -> list[str]:
    """The full-budget attack must be at least as strong as one FGSM step: attack what held with FGSM;
    a success there replaces the result (so a weak attack never reads as robustness) and warns.
    Returns, per row, which attack produced the returned image."""
    found_by = [attack.name] * len(plan)
    held = (trajectory.first_success < 0).nonzero().flatten()
    if held.numel() == 0:
        return found_by
    names = [plan.names[i] for i in held.tolist()]
    every_row = held.numel() == len(plan)  # the robust case: no copies
    clean = plan.clean if every_row else plan.clean[held]
    goal = plan.goal if every_row else plan.goal.select(held)
    if trajectory.first_sign is not None:  # the attack's first gradient was taken at the clean image
        step = trajectory.first_sign if every_row else trajectory.first_sign[held]
        check = SignGradientAttack(name="fgsm", steps=0, verdict=attack.verdict).run(
            model, clean, goal, epsilon, noise=step, names=names, repredict_rounded=False
        )  # iterate 0 is clean + ε·sign(∇): exactly FGSM's image, for one forward and no backward
        check.first_success[check.first_success >= 0] = 1
    else:
        check = SignGradientAttack.fgsm(attack.verdict).run(
            model, clean, goal, epsilon, names=names, repredict_rounded=False
        )
    won = (check.first_success >= 0).nonzero().flatten()
    if won.numel() == 0:
        return found_by
    if attack.verdict != VERDICT_ROUNDED:  # a float flip's 8-bit image is reported too
        with torch.no_grad():
            check.rounded_logits[won] = model.logits(check.rounded[won])
    rows = held[won]
    trajectory.take(rows, check, won)
    for row in rows.tolist():
        found_by[row] = FOUND_BY_FLOOR
    warnings.warn(
        f"one FGSM step succeeded where the {attack.name} attack ({attack.describe(epsilon)}) did not, for "
        f"{', '.join(plan.names[r] for r in rows.tolist()[:5])}; "
        "the FGSM result is used. Check steps/step_size: a weaker-than-FGSM attack proves nothing",
        stacklevel=5,
    )
    return found_by


@dataclass
class BatchResult:
    """What one batch produced: a record per row, and the rows' clean and adversarial images."""

    records: list[ImageRecord]
    adversarial: torch.Tensor
    rounded: torch.Tensor
    clean: torch.Tensor
    notes: list[str]
    outputs: int = 0
    """How many logits the model returns per image."""


def attack_batch(
    config: AttackConfig,
    attack: Attack,
    model: WrappedModel,
    clean: torch.Tensor,
    given: Sequence[int | None],
    sources: Sequence[str],
    names: list[str],
    classes: ClassNames,
    first: bool = True,
) -> BatchResult:
    """Attack one batch of clean images (on the model's device) and report every row; ``first``: the
    run's first batch (the determinism check runs once per run)."""
    from .results import records_from

    forward = clean_forward(model, clean, config, attack, names, check_determinism=first)
    outputs = forward.logits.shape[1]
    if len(classes) and len(classes) != outputs:
        shown = ", ".join(classes.names[:4]) + (", …" if len(classes) > 4 else "")
        raise ClassNameError(
            f"there are {len(classes)} class names ({shown}) but the model returns {outputs} logits per image: "
            "labels and names must be the model's. Give one name per output, in the model's order "
            "(--adv-class-names), or images whose classes are the model's (a folder per model class)"
        )
    if one_record_per_image(config.targets):
        plan, trajectory = attack_runner_ups(config, attack, model, classes, clean, forward, given, sources, names)
    else:
        plan = plan_batch(config, attack, classes, clean, forward, given, sources, names)
        if not len(plan):
            forward.check_determinism(model, names)
            empty = clean.new_empty((0, *clean.shape[1:]))
            return BatchResult([], empty, empty, empty, plan.notes, outputs)
        trajectory = attack.run(
            model, plan.clean, plan.goal, config.epsilon, noise=plan.noise, start=plan.start, names=plan.names
        )
    found_by = [attack.name] * len(plan)
    if config.sanity_checks and attack.floor_checked and config.epsilon > 0:
        found_by = fgsm_floor(attack, model, plan, trajectory, config.epsilon)
    minimal: list[float | None] = [None] * len(plan)
    if config.minimal_epsilon:
        found, cost = search_minimal_epsilon(
            attack,
            model,
            plan.clean,
            plan.goal,
            succeeded_at=trajectory.first_success >= 0,
            epsilon=config.epsilon,
            epsilon_max=config.epsilon_max,
            precision=config.epsilon_precision,
            noise=plan.noise,
            names=plan.names,
        )
        precision = config.epsilon_precision
        minimal = [None if math.isnan(v) else round_to_precision(v, precision) for v in found.tolist()]
        plan.notes.append(f"minimal-ε search: {cost.attack_runs} attack runs for {len(plan)} image(s)")
    forward.check_determinism(model, names)
    records = records_from(plan, forward, trajectory, classes, config, found_by, minimal)
    return BatchResult(records, trajectory.adversarial, trajectory.rounded, plan.clean, plan.notes, outputs)
