"""The attack's settings: budget, attack, profile, steps and step size, loss, targets, seed, verdict.

Their defaults and auto rules (:func:`auto_steps`, :func:`auto_step_size`, :func:`auto_loss`) live here and
nowhere else.
"""

from __future__ import annotations

from . import parsers as p
from .option import Option
from .profiles import DEFAULT_PROFILE
from .values import LossKind, TargetSpec

DEFAULT_EPSILON = 0.007
DEFAULT_NORM = "linf"
DEFAULT_ATTACK = "apgd"
"""apgd toward the 9 runner-up classes, 10 steps each: within one point of AutoAttack's robust accuracy on
a defended model at a sixth of its time (benchmarks/strength.py; the docs' "How strong is the gate?")."""
DEFAULT_STEPS = 10
DEFAULT_QUERIES = 1000
DEFAULT_TARGETS = TargetSpec("runner-up", k=9)
STEP_SIZE_FACTOR = 2.5
APGD_INITIAL_STEP = 2.0
DLR_CLASSES = {False: 3, True: 4}
"""The DLR loss needs the top three logits (untargeted) or four (targeted)."""


def auto_steps(attack: str) -> int:
    """steps=auto: one step for fgsm, :data:`DEFAULT_STEPS` for the iterative attacks."""
    return 1 if attack == "fgsm" else DEFAULT_STEPS


def auto_step_size(attack: str, epsilon: float, steps: int) -> float:
    """step_size=auto: ε for one-step attacks; 2ε to start with for apgd (it adapts); 2.5·ε/steps
    otherwise (Madry et al.), so steps can cross the whole ball."""
    if attack in ("apgd", "autoattack"):
        return APGD_INITIAL_STEP * epsilon
    if attack in ("fgsm", "square") or steps == 1:
        return epsilon
    return STEP_SIZE_FACTOR * epsilon / steps


def auto_loss(attack: str, targets: TargetSpec, num_classes: int | None = None) -> LossKind:
    """loss=auto: the targeted DLR loss for apgd toward targets (APGD-T), cross-entropy otherwise; with
    ``num_classes`` known (the model answered), cross-entropy when the model has too few classes for DLR.
    autoattack's targeted stage is apgd's (its untargeted APGD-CE stage always uses cross-entropy)."""
    if attack not in ("apgd", "autoattack") or targets.mode == "untargeted":
        return "ce"
    return "ce" if num_classes is not None and num_classes < DLR_CLASSES[True] else "dlr"


OPTIONS: tuple[Option, ...] = (
    Option(
        "epsilon",
        p.parse_epsilon,
        DEFAULT_EPSILON,
        metavar="EPS",
        help=(
            "Perturbation budget in [0,1] pixel units (not 0-255), measured in NORM over the whole C×H×W "
            "image: under linf the largest change of any pixel (≤ 1), under l2 the change's Euclidean length, "
            "under l1 the sum of its pixel changes."
        ),
        default_doc=(
            "0.007, the value of Goodfellow et al.'s panda→gibbon experiment: below 2/255, invisible to a person"
        ),
    ),
    Option(
        "norm",
        p.parse_norm,
        DEFAULT_NORM,
        metavar="NORM",
        help=(
            "The threat model, the norm EPSILON bounds: linf (every pixel moves at most ε), l2 (the "
            "perturbation's Euclidean length is at most ε: an l2 ε of 0.5 lets one pixel move 0.5, or every "
            "pixel of a 224×224 RGB image about 0.0013) or l1 (the sum of the pixel changes is at most ε: "
            "sparse changes). Under l1 only apgd and autoattack have a form."
        ),
        default_doc="linf",
    ),
    Option(
        "attack",
        p.parse_attack,
        DEFAULT_ATTACK,
        metavar="NAME",
        help=(
            "Attack: fgsm (one step of size ε), bim (iterative FGSM: STEPS sign steps of STEP_SIZE, "
            "projected into the ε-ball), pgd (bim from a seeded random start), apgd (Auto-PGD, Croce & Hein "
            "2020: momentum and a step size that adapts from 2ε, from a seeded random start), square "
            "(Andriushchenko et al. 2020: random square updates, QUERIES forward passes, no gradient) or "
            "autoattack (AutoAttack's standard sequence: untargeted APGD-CE, then apgd toward TARGETS, then "
            "square on the images still robust; a flip only square finds warns of gradient masking)."
        ),
    ),
    Option(
        "profile",
        p.parse_profile,
        DEFAULT_PROFILE,
        metavar="NAME",
        help=(
            "A named set of settings, beneath every value set by hand (marker, CLI, ini): quick (one FGSM "
            "step, untargeted), standard (the settings as without a profile), thorough (attack=autoattack, 100 "
            "steps, 5000 queries, top-9), or one a conftest.py registers with pytest_advrobust.register_profile()."
        ),
    ),
    Option(
        "eot",
        p.parse_eot,
        1,
        metavar="N",
        help=(
            "Expectation over transformation (Athalye et al. 2018), for models with randomness in forward(): "
            "each step's gradient is the mean over N forward/backward passes, and every prediction is "
            "taken over N passes (an image flips when most draws flip). Every image then runs all its steps "
            "(no early stop). Costs N times as much per step; AutoAttack uses 20."
        ),
        default_doc="1 (one pass; a model that answers twice differently is refused)",
    ),
    Option(
        "queries",
        p.parse_queries,
        DEFAULT_QUERIES,
        metavar="N",
        help=(
            "Query budget of the square attack: forward passes per image (AutoAttack's cheap version uses "
            "1000, its standard one 5000)."
        ),
    ),
    Option(
        "loss",
        p.parse_loss,
        "auto",
        metavar="LOSS",
        help=(
            "The loss the attack ascends: ce (cross-entropy of the logits) or dlr (Croce & Hein's "
            "difference of logits ratio, invariant to the logits' scale; needs 3 classes, 4 for targets: auto "
            "falls back to ce below that)."
        ),
        default_doc="auto: dlr for targeted apgd (APGD-T), ce otherwise",
    ),
    Option(
        "steps",
        p.parse_steps,
        None,
        metavar="N",
        help="Number of sign-gradient steps.",
        default_doc=f"auto: {DEFAULT_STEPS} for bim/pgd/apgd, 1 for fgsm",
    ),
    Option(
        "step_size",
        p.parse_step_size,
        None,
        metavar="ALPHA",
        help="Size of each step in [0,1] pixel units.",
        default_doc=(
            f"auto: {APGD_INITIAL_STEP:g}ε to start with for apgd, which adapts it (and refuses a set one); "
            f"{STEP_SIZE_FACTOR:g}·ε/STEPS for bim and pgd (Madry et al.), so the iterates can reach the ε-ball's "
            "corners; ε for fgsm and for a single step"
        ),
    ),
    Option(
        "targets",
        p.parse_targets,
        DEFAULT_TARGETS,
        metavar="SPEC",
        help=(
            "untargeted (ascend the loss of the true label), least-likely, top-K (the K runner-up classes one "
            "after another, each image only while it holds, any flip counting: AutoAttack's APGD-T), or "
            "comma-separated class indices/names (e.g. 'paper towel'; each image is attacked toward each)."
        ),
    ),
    Option(
        "seed",
        p.parse_seed,
        0,
        metavar="N",
        help="Seed of the attack's own torch.Generator (pgd's random start); global RNG is never used.",
    ),
    Option(
        "early_stop",
        p.parse_bool,
        True,
        metavar="BOOL",
        help=(
            "Stop attacking an image once it reached the attack's goal (as judged by the verdict). It never "
            "changes a pass/fail verdict; turn it off to see full probability curves."
        ),
    ),
    Option(
        "verdict",
        p.parse_verdict,
        "rounded",
        metavar="KIND",
        help=(
            "Which adversarial image decides a flip: rounded (rounded to 8-bit pixels within the "
            "ε-ball, an image a user could save) or float."
        ),
    ),
    Option(
        "sanity_checks",
        p.parse_bool,
        True,
        metavar="BOOL",
        help=(
            "Before trusting a pass: check that two clean forward passes agree (determinism) and that one "
            "FGSM step does not succeed where the configured attack failed (costs one forward of one image, "
            "and a forward of the images that held; with a random start, pgd and apgd, a backward too)."
        ),
    ),
)
