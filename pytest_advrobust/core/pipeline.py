"""One batch of images, from clean pixels to records: forward, plan, attack, floor check, minimal ε.

:func:`attack_batch` does each job through one function: :func:`clean_forward` (the checked clean
prediction), :func:`plan_batch` (rows, labels, targets, noise, names: built once, for either strategy),
:func:`run_plan` (the attack), :func:`fgsm_floor`,
:func:`~pytest_advrobust.core.attacks.minimal.search_minimal_epsilon` and
:func:`~pytest_advrobust.core.batch.records_from`. What the batches of a run share travels as one
:class:`~pytest_advrobust.core.batch.BatchContext`.
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import torch

from .attacks.checks import check_logits, check_not_probabilities
from .attacks.goals import Goal, goal_for
from .attacks.loop import Trajectory, vote_logits
from .attacks.minimal import Tries, round_to_precision, search_minimal_epsilon
from .attacks.sign_gradient import SignGradientAttack
from .attacks.square import SquareAttack, square_attack
from .batch import (
    BatchContext,
    BatchImages,
    BatchPlan,
    BatchResult,
    CleanForward,
    DrawVerdict,
    noise_seed,
    records_from,
)
from .data.classes import ClassNames
from .errors import ClassNameError, FalseRobustnessError, OptionError
from .results.report import FOUND_BY_FLOOR, FOUND_BY_SQUARE_ONLY, Count, ImageRecord
from .settings import TargetSpec
from .settings.attack import STEP_SIZE_FACTOR
from .settings.values import VERDICT_ROUNDED

DETERMINISM_SAMPLE = 1
"""How many images the determinism check predicts a second time, on a run's first batch: randomness left
in ``forward`` (dropout in training mode, random augmentation, sampling) shows on any image. The second
look rides along the batch's next forward pass without gradient (no call of its own), and the check runs
when the batch is done."""


def _one_target_per_image(spec: TargetSpec) -> bool:
    return (
        spec.mode in ("untargeted", "least-likely", "per-image")
        or (spec.mode == "classes" and len(spec.classes) == 1)
        or (spec.mode == "runner-up" and spec.k == 1)
    )


def one_record_per_image(spec: TargetSpec) -> bool:
    """top-K runs as AutoAttack's APGD-T does: one target after another, each image only while it holds."""
    return spec.mode == "runner-up" and spec.k > 1


def clean_forward(context: BatchContext, batch: BatchImages, check_determinism: bool = True) -> CleanForward:
    """Predict the clean images once, and refuse outputs no verdict can be built on (with
    ``check_determinism`` and the sanity checks on, also a model that answers twice differently)."""
    config, clean, attack = context.config, batch.clean, context.attack
    reusable = _one_target_per_image(config.targets) and not attack.random_start and attack.eot == 1
    # requiring grad, the clean images themselves (autograd refuses a model that changes them in place);
    # else a copy, which such a model may change
    x = clean.detach().requires_grad_() if reusable else clean.clone()
    with torch.set_grad_enabled(reusable):
        logits = context.model.logits(x)
    detached = logits.detach()
    check_logits(detached, batch.names)
    check_not_probabilities(detached)
    mean_probs = None
    if attack.eot > 1:  # a randomized model's clean prediction is its draws' vote, like every other
        classes, mean_probs = attack.draw_classes(context.model, clean)
        votes = torch.zeros_like(mean_probs).scatter_add_(1, classes, torch.ones_like(classes, dtype=mean_probs.dtype))
        logits = vote_logits(votes, mean_probs * attack.eot, attack.eot)
    sample = 0
    # on a small fixed subset: nondeterminism shows on any image (with eot, randomness is expected)
    if config.sanity_checks and check_determinism and attack.eot == 1:
        sample = min(DETERMINISM_SAMPLE, clean.shape[0])
        context.model.predict_along(clean[:sample])
    return CleanForward(x, logits, reusable, sample, mean_probs)


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


def _labels(batch: BatchImages, forward: CleanForward) -> list[int]:
    num_classes = forward.logits.shape[1]
    labels = [int(p) if g is None else g for g, p in zip(batch.given, forward.pred.tolist(), strict=True)]
    for label, name, source in zip(labels, batch.names, batch.sources, strict=True):
        if not 0 <= label < num_classes:
            raise OptionError(
                f"label {label} of {name} ({source}) is out of range: the model has {num_classes} classes"
                + (" (unlabelled images: give None as their label, and the model's prediction is used)"
                   if label < 0 else "")
                + ("; numeric folder names are class indices: set class_names, in the model's order, to read "
                   "them as names" if source.kind == "folder" else "")
            )  # fmt: skip
    return labels


def plan_batch(context: BatchContext, batch: BatchImages, forward: CleanForward) -> BatchPlan:
    """What the batch attacks: with top-K (K > 1) one row per image and its runner-up classes to try in
    order (:func:`_plan_runner_ups`); else every (image, target) row at once, a target equal to the
    image's own label skipped."""
    labels = _labels(batch, forward)
    if one_record_per_image(context.config.targets):
        return _plan_runner_ups(context, batch, forward, labels)
    classes, clean, names = context.classes, batch.clean, batch.names
    per_image = targets_for(context.config.targets, forward.logits.detach(), classes)
    notes: list[str | Count] = []
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
    label_tensor = torch.tensor(labels, dtype=torch.long, device=device)
    return BatchPlan(
        images=[i for i, _ in rows],
        targets=[t for _, t in rows],
        labels=labels,
        sources=list(batch.sources),
        clean=clean if every_image_once else clean[index],
        goal=context.goal(label_tensor[index], targets, forward.logits.shape[1]),
        noise=context.noise(clean, names, rows),
        names=[f"{names[i]} -> {classes.name(t)}" if several and t is not None else names[i] for i, t in rows],
        start=(forward.x, forward.logits) if forward.reusable and every_image_once else None,
        notes=notes,
    )


def _plan_runner_ups(context: BatchContext, batch: BatchImages, forward: CleanForward, labels: list[int]) -> BatchPlan:
    """One row per image, aimed at its first runner-up class; :func:`run_plan` moves on to the next ones."""
    clean, n, num_classes = batch.clean, batch.clean.shape[0], forward.logits.shape[1]
    label_tensor = torch.tensor(labels, dtype=torch.long, device=clean.device)
    logits = forward.logits.detach().clone()
    k = min(context.config.targets.k, num_classes - 1)  # top-9 on a 3-class model: both other classes
    logits.scatter_(1, label_tensor[:, None], float("-inf"))  # the runner-ups of the label, never the label
    order = logits.topk(k, dim=1).indices.tolist()
    first = [row[0] for row in order]
    return BatchPlan(
        images=list(range(n)),
        targets=list(first),
        labels=labels,
        sources=list(batch.sources),
        clean=clean,
        goal=context.goal(label_tensor, torch.tensor(first, device=clean.device), num_classes, reach="flip"),
        noise=None,  # drawn per target as the targets are tried
        names=list(batch.names),
        start=None,
        tried=[0] * n,
        order=order,
    )


def run_plan(context: BatchContext, plan: BatchPlan, outputs: int) -> Trajectory:
    """Attack the plan's rows (``outputs``: the model's logits per image): all at once, or (top-K) toward
    each image's runner-up classes in order, where an image that flips (to any class) is not robust and
    is attacked toward no further target; its row then ends with the last target tried."""
    attack, model, epsilon = context.attack, context.model, context.config.epsilon
    if plan.order is None:
        return attack.run(model, plan.clean, plan.goal, epsilon, noise=plan.noise, start=plan.start, names=plan.names)
    assert plan.tried is not None
    order, tried, chosen = plan.order, plan.tried, plan.targets
    labels, device = plan.goal.labels, plan.clean.device
    remaining = torch.arange(len(plan), device=device)
    trajectory: Trajectory | None = None
    for j in range(len(order[0])):
        rows = remaining.tolist()
        for i in rows:
            chosen[i], tried[i] = order[i][j], j + 1
        targets = torch.tensor([chosen[i] for i in rows], dtype=torch.long, device=device)
        goal = context.goal(labels[remaining], targets, outputs, reach="flip")
        noise = context.noise(plan.clean, plan.names, [(i, chosen[i]) for i in rows])
        part = attack.run(model, plan.clean[remaining], goal, epsilon, noise=noise, names=[plan.names[i] for i in rows])
        if trajectory is None:
            trajectory = part
        else:
            trajectory.take(remaining, part, torch.arange(len(rows), device=device), curves=True)
        remaining = remaining[part.first_success < 0]
        if remaining.numel() == 0:
            break
    assert trajectory is not None
    plan.goal = context.goal(labels, torch.tensor(chosen, dtype=torch.long, device=device), outputs, reach="flip")
    k = context.config.targets.k
    plan.notes.append(
        Count(
            f"top-{k}: {{}} of {{}} image(s) held against all {len(order[0])} runner-up targets",
            (len(remaining), len(plan)),
        )
    )
    return trajectory


def _untargeted_ce(context: BatchContext, plan: BatchPlan, outputs: int) -> tuple[Goal, torch.Tensor | None]:
    """AutoAttack's first stage on every row: APGD-CE, untargeted, with its random starts."""
    goal = goal_for(plan.goal.labels, None, loss="ce", num_classes=outputs)
    return goal, context.noise(plan.clean, plan.names, [(i, None) for i in range(len(plan))])


def run_sequence(context: BatchContext, plan: BatchPlan, outputs: int) -> tuple[Trajectory, list[str]]:
    """attack=autoattack, AutoAttack's standard sequence (without FAB-T): APGD-CE (untargeted), then the
    plan's apgd run (toward the top-K runner-ups, APGD-T, or the targets as set), then square on the rows
    still robust, each stage on what the ones before left. A flip only square finds is AutoAttack's sign
    of gradient masking: it counts, and warns. Returns the trajectory and, per row, the stage that won."""
    config, model, epsilon = context.config, context.model, context.config.epsilon
    apgd = context.attack
    labels = plan.goal.labels
    if plan.order is not None:  # top-K: APGD-CE first (cheap), then the runner-ups toward what held
        ce, noise = _untargeted_ce(context, plan, outputs)
        trajectory = apgd.run(model, plan.clean, ce, epsilon, noise=noise, names=plan.names)
        found_by = ["apgd-ce" if flipped else "autoattack" for flipped in (trajectory.first_success >= 0).tolist()]
        held = (trajectory.first_success < 0).nonzero().flatten()
        assert plan.tried is not None and plan.order is not None
        for r in range(len(plan)):
            if found_by[r] == "apgd-ce":
                plan.targets[r], plan.tried[r] = None, None
        if held.numel():
            part_plan = _rows_of(plan, held)
            part = run_plan(context, part_plan, outputs)
            trajectory.take(held, part, torch.arange(held.numel(), device=held.device), curves=True)
            assert part_plan.tried is not None
            for j, r in enumerate(held.tolist()):
                plan.targets[r], plan.tried[r] = part_plan.targets[j], part_plan.tried[j]
                if int(part.first_success[j]) >= 0:
                    found_by[r] = "apgd-t"
            plan.notes.extend(part_plan.notes)
        chosen = [t if t is not None else order[0] for t, order in zip(plan.targets, plan.order, strict=True)]
        plan.goal = context.goal(labels, torch.tensor(chosen, dtype=torch.long, device=labels.device), outputs, "flip")
    else:
        trajectory = run_plan(context, plan, outputs)
        found_by = [apgd.name if flipped else "autoattack" for flipped in (trajectory.first_success >= 0).tolist()]
    held = (trajectory.first_success < 0).nonzero().flatten()
    if held.numel() == 0:
        return trajectory, found_by
    if not SquareAttack.has_norm(apgd.norm):  # L1: a sparse gradient stage in place of Square-L1 and FAB-T
        return _l1_steepest_stage(context, plan, trajectory, found_by, held, outputs)
    square = square_attack(config.queries, apgd)
    names = [plan.names[r] for r in held.tolist()]
    goal = plan.goal.select(held)
    if plan.order is not None:  # any flip counts: square lowers the label's margin, as AutoAttack's does
        goal = goal_for(labels[held], None, loss="ce", num_classes=outputs)
    noise = context.noise(plan.clean, plan.names, [(r, plan.targets[r]) for r in held.tolist()], square)
    part = square.run(model, plan.clean[held], goal, epsilon, noise=noise, names=names)
    won = (part.first_success >= 0).nonzero().flatten()
    if won.numel():
        trajectory.take(held[won], part, won, curves=True)
        for w in won.tolist():
            found_by[int(held[w])] = FOUND_BY_SQUARE_ONLY  # warned of once the verdict confirms the flip
    return trajectory, found_by


FOUND_BY_L1_STEEPEST = "bim-l1"
"""The stage of ``autoattack`` under L1 that found a flip APGD-L1 missed (see :func:`_l1_steepest_stage`)."""


def _l1_steepest_stage(
    context: BatchContext, plan: BatchPlan, trajectory: Trajectory, found_by: list[str], held: torch.Tensor,
    outputs: int,
) -> tuple[Trajectory, list[str]]:  # fmt: skip
    """autoattack under L1, last stage: on the rows still robust, ``steps`` L1-steepest steps (the pixels
    with the largest gradient, filled to [0,1]) of 2.5ε/steps toward the plan's targets (the top-K in turn),
    cross-entropy. It stands in for AutoAttack-L1's Square-L1 and FAB-T, which the plugin does not run:
    its vertex steps are as sparse as an L1 ball's best points, which APGD-L1's top-k% steps approach
    slowly (benchmarks/strength.py: it closes most of the gap to AutoAttack-L1 for a few steps' time)."""
    apgd = context.attack
    steepest = SignGradientAttack(
        name="bim", steps=apgd.steps, rel_stepsize=STEP_SIZE_FACTOR / apgd.steps, early_stop=apgd.early_stop,
        verdict=apgd.verdict, eot=apgd.eot, norm="l1",
    )  # fmt: skip
    stage = dataclasses.replace(context, attack=steepest, config=dataclasses.replace(context.config, loss="ce"))
    part_plan = _rows_of(plan, held) if plan.order is not None else None
    if part_plan is not None:
        part = run_plan(stage, part_plan, outputs)
    else:
        names = [plan.names[r] for r in held.tolist()]
        part = steepest.run(
            context.model, plan.clean[held], plan.goal.select(held), context.config.epsilon, names=names
        )
    won = (part.first_success >= 0).nonzero().flatten()
    if won.numel():
        trajectory.take(held[won], part, won, curves=True)
        for w in won.tolist():
            row = int(held[w])
            found_by[row] = FOUND_BY_L1_STEEPEST
            if part_plan is not None and part_plan.tried is not None and plan.tried is not None:
                plan.targets[row], plan.tried[row] = part_plan.targets[w], part_plan.tried[w]
    if plan.order is not None:  # the goal names each row's last target, as after the APGD-T stage
        labels = plan.goal.labels
        chosen = [t if t is not None else order[0] for t, order in zip(plan.targets, plan.order, strict=True)]
        plan.goal = context.goal(labels, torch.tensor(chosen, dtype=torch.long, device=labels.device), outputs, "flip")
    return trajectory, found_by


def _rows_of(plan: BatchPlan, rows: torch.Tensor) -> BatchPlan:
    """A top-K plan's rows (one per image) as a plan of their own."""
    picked = rows.tolist()
    assert plan.order is not None and plan.tried is not None
    return BatchPlan(
        images=[plan.images[r] for r in picked],
        targets=[plan.targets[r] for r in picked],
        labels=plan.labels,
        sources=plan.sources,
        clean=plan.clean[rows],
        goal=plan.goal.select(rows),
        noise=None,
        names=[plan.names[r] for r in picked],
        start=None,
        tried=[0 for _ in picked],
        order=[plan.order[r] for r in picked],
    )


def fgsm_floor(
    context: BatchContext, plan: BatchPlan, trajectory: Trajectory, found_by: list[str] | None = None
) -> list[str]:
    """The full-budget attack must be at least as strong as one FGSM step: attack what held with FGSM;
    a success there replaces the result (so a weak attack never reads as robustness) and warns.
    Returns, per row, which attack produced the returned image (``found_by``: as the attack says)."""
    attack, model, epsilon = context.attack, context.model, context.config.epsilon
    found_by = [attack.name] * len(plan) if found_by is None else found_by
    held = (trajectory.first_success < 0).nonzero().flatten()
    if held.numel() == 0:
        return found_by
    names = [plan.names[i] for i in held.tolist()]
    every_row = held.numel() == len(plan)  # the robust case: no copies
    clean = plan.clean if every_row else plan.clean[held]
    goal = plan.goal if every_row else plan.goal.select(held)
    if trajectory.first_sign is not None:  # the attack's first gradient was taken at the clean image
        step = trajectory.first_sign if every_row else trajectory.first_sign[held]
        check = SignGradientAttack(name="fgsm", steps=0, verdict=attack.verdict, eot=attack.eot).run(
            model, clean, goal, epsilon, noise=step, names=names, repredict_rounded=False
        )  # iterate 0 is clean + ε·sign(∇): exactly FGSM's image, for one forward and no backward
        check.first_success[check.first_success >= 0] = 1
    else:
        try:
            check = SignGradientAttack.fgsm(attack.verdict, attack.eot, attack.norm).run(
                model, clean, goal, epsilon, names=names, repredict_rounded=False
            )
        except FalseRobustnessError:
            if attack.takes_gradient:
                raise
            plan.notes.append("FGSM sanity check skipped: the model gives no usable gradient (square needs none)")
            return found_by
    won = (check.first_success >= 0).nonzero().flatten()
    if won.numel() == 0:
        return found_by
    if attack.verdict != VERDICT_ROUNDED:  # a float flip's 8-bit image is reported too
        check.rounded_logits[won] = attack.predict(model, check.rounded[won])
    rows = held[won]
    trajectory.take(rows, check, won)
    for row in rows.tolist():
        found_by[row] = FOUND_BY_FLOOR  # warned of once the verdict confirms it (see _warn_of_what_found)
    return found_by


def _warn_of_what_found(context: BatchContext, plan: BatchPlan, records: list[ImageRecord]) -> None:
    """Warn of the flips the FGSM floor check found (the attack is weaker than one FGSM step) and of those
    only square found under attack=autoattack (gradient masking), as the records' verdicts confirm them;
    under ``eot`` a success the draws of one iterate saw may not hold in the verdict's fresh draws, and
    such a record names the attack again."""
    attack, epsilon = context.attack, context.config.epsilon
    found: dict[str, list[str]] = {FOUND_BY_FLOOR: [], FOUND_BY_SQUARE_ONLY: []}
    for record in records:
        if record.found_by in found:
            reached = record.flipped if record.target is None or plan.tried is not None else record.target_reached
            if reached:
                found[record.found_by].append(record.name)
            else:
                record.found_by = context.config.attack
    shown = {kind: f"{', '.join(names[:5])}{', …' if len(names) > 5 else ''}" for kind, names in found.items()}
    if found[FOUND_BY_FLOOR]:
        budget = "steps/step_size" if attack.takes_gradient else "queries"
        one_step = "FGSM" if attack.norm == "linf" else "FGM (L2)"
        warnings.warn(
            f"one {one_step} step succeeded where the {attack.name} attack ({attack.describe(epsilon)}) did not, for "
            f"{shown[FOUND_BY_FLOOR]}; the FGSM result is used. Check {budget}: a weaker-than-FGSM attack proves "
            "nothing",
            stacklevel=6,
        )
    if found[FOUND_BY_SQUARE_ONLY]:
        plan.notes.append(
            Count(
                "gradient masking: square flipped {} image(s) the gradient attacks did not",
                (len(found[FOUND_BY_SQUARE_ONLY]),),
            )
        )
        queries = square_attack(context.config.queries, attack).describe(epsilon)
        warnings.warn(
            f"gradient masking: the square attack ({queries}, no gradient) flipped {shown[FOUND_BY_SQUARE_ONLY]}, "
            "which APGD did not: the model's gradients mislead gradient attacks, so robustness measured by them "
            "alone is overestimated (AutoAttack's flag). The flips count",
            stacklevel=6,
        )


def _check_class_names(classes: ClassNames, outputs: int) -> None:
    if len(classes) and len(classes) != outputs:
        shown = ", ".join(classes.names[:4]) + (", …" if len(classes) > 4 else "")
        raise ClassNameError(
            f"there are {len(classes)} class names ({shown}) but the model returns {outputs} logits per image: "
            "labels and names must be the model's. Give one name per output, in the model's order "
            "(--adv-class-names), or images whose classes are the model's (a folder per model class)"
        )


def _search_tries(context: BatchContext, plan: BatchPlan, outputs: int) -> Tries:
    """What the verdict attack tries on each row, for the minimal-ε search: the plan's goal; under top-K
    each runner-up in turn (any flip counts), after APGD-CE under autoattack."""
    if plan.order is None:
        return [(plan.goal, plan.noise)]
    labels, device = plan.goal.labels, plan.clean.device
    tries: list[tuple[Goal, torch.Tensor | None]] = []
    if context.config.attack == "autoattack":
        tries.append(_untargeted_ce(context, plan, outputs))
    for j in range(len(plan.order[0])):
        targets = [order[j] for order in plan.order]
        goal = context.goal(labels, torch.tensor(targets, dtype=torch.long, device=device), outputs, reach="flip")
        tries.append((goal, context.noise(plan.clean, plan.names, list(enumerate(targets)))))
    return tries


def _minimal_epsilons(
    context: BatchContext, plan: BatchPlan, trajectory: Trajectory, outputs: int
) -> list[float | None]:
    """Each row's minimal adversarial ε (None where the search found none), with a note of its cost."""
    config = context.config
    found, cost = search_minimal_epsilon(
        context.attack,
        context.model,
        plan.clean,
        _search_tries(context, plan, outputs),
        succeeded_at=trajectory.first_success >= 0,
        epsilon=config.epsilon,
        epsilon_max=config.resolved_epsilon_max,
        precision=config.resolved_epsilon_precision,
        names=plan.names,
    )
    plan.notes.append(
        Count("minimal-ε search: {} more attacks of one image for {} image(s)", (cost.image_runs, len(plan)))
    )
    precision = config.resolved_epsilon_precision
    succeeded = (trajectory.first_success >= 0).tolist()
    # rounded up, a float32 ε could come out above the ε the image was seen to flip at: never above it
    return [
        None if math.isnan(v) else min(round_to_precision(v, precision), config.epsilon) if flipped
        else round_to_precision(v, precision)
        for v, flipped in zip(found.tolist(), succeeded, strict=True)
    ]  # fmt: skip


def attack_batch(context: BatchContext, batch: BatchImages, first: bool = True) -> BatchResult:
    """Attack one batch of clean images (on the model's device) and report every row; ``first``: the
    run's first batch (the determinism check runs once per run).

    The batch runs under torch's global random state forked and seeded from the seed and the batch's
    image names, so a model that draws random numbers in ``forward`` (judged with ``eot``) draws the same
    ones on a rerun, and the caller's random state is the same afterwards."""
    device = batch.clean.device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else [], device_type=device.type):
        torch.manual_seed(noise_seed(context.config.seed, "\0".join(batch.names), None))
        return _attack_batch(context, batch, first)


def _attack_batch(context: BatchContext, batch: BatchImages, first: bool) -> BatchResult:
    config, model = context.config, context.model
    forward = clean_forward(context, batch, check_determinism=first)
    outputs = forward.logits.shape[1]
    _check_class_names(context.classes, outputs)
    plan = plan_batch(context, batch, forward)
    if not len(plan):
        forward.check_determinism(model, batch.names)
        empty = batch.clean.new_empty((0, *batch.clean.shape[1:]))
        return BatchResult([], empty, empty, empty, plan.notes, outputs)
    if config.attack == "autoattack":
        trajectory, found_by = run_sequence(context, plan, outputs)
    else:
        trajectory, found_by = run_plan(context, plan, outputs), [context.attack.name] * len(plan)
    if config.sanity_checks and context.attack.floor_checked and config.epsilon > 0:
        found_by = fgsm_floor(context, plan, trajectory, found_by)
    minimal = _minimal_epsilons(context, plan, trajectory, outputs) if config.minimal_epsilon else [None] * len(plan)
    forward.check_determinism(model, batch.names)
    draws = None
    if context.attack.eot > 1:  # the verdict over fresh draws of what the attack returns, seeded on their own
        labels, device = plan.goal.labels, batch.clean.device
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else [], device_type=device.type):
            torch.manual_seed(noise_seed(config.seed, "\0".join(batch.names), None, "verdict"))
            draws = (
                DrawVerdict.of(context.attack, model, trajectory.adversarial, labels),
                DrawVerdict.of(context.attack, model, trajectory.rounded, labels),
            )
    records = records_from(context, plan, forward, trajectory, found_by, minimal, draws)
    _warn_of_what_found(context, plan, records)
    return BatchResult(records, trajectory.adversarial, trajectory.rounded, plan.clean, plan.notes, outputs)
