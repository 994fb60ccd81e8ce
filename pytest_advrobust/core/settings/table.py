"""The options table: every setting described once (name, parser, default, help), and each "auto" rule.

A setting's default lives here and nowhere else; so does what ``auto`` means for the settings that have
one (:func:`auto_steps`, :func:`auto_step_size`, :func:`auto_loss`, :func:`auto_workers`,
:func:`auto_minimal_epsilon`, :func:`auto_baseline_dir`, :func:`auto_device`, and for the batch size
:func:`auto_batch_limit`, :func:`auto_batch_next`, :func:`auto_batch_larger` and :func:`auto_batch_take`).
The config dataclasses, the help text, the docs' options page, the marker's doc and
:func:`pytest_advrobust.attack`'s signature are derived from it or tested against it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import parsers as p
from .profiles import DEFAULT_PROFILE
from .values import BatchSize, LossKind, TargetSpec

DEFAULT_EPSILON = 0.007
DEFAULT_ATTACK = "apgd"
"""apgd toward the 9 runner-up classes, 10 steps each: within one point of AutoAttack's robust accuracy on
a defended model at a sixth of its time (benchmarks/strength.py; the docs' "How strong is the gate?")."""
DEFAULT_STEPS = 10
DEFAULT_BATCH_SIZE: BatchSize = "auto"
AUTO_BATCH_FIRST = 32
"""batch_size=auto times batches from this size on (on the CPU), and reads image files this many at a time."""
AUTO_BATCH_PIXELS = 32 * 224 * 224
"""On the CPU an auto batch holds at most this many pixels per channel (32 images at 224×224, 1568 at 32×32),
so memory stays bounded whatever the measurement finds."""
AUTO_BATCH_NEAR = 0.05
"""batch_size=auto on the CPU goes up to where a batch's fixed cost adds at most 5% per image (as fitted)."""
AUTO_BATCH_JUMP = 8
"""... but at most to 8 times the fastest size timed so far at once."""
AUTO_BATCH_PROBE = 4096
"""On CUDA the probe starts at this many images (or all of them, when fewer) and halves until one forward and
backward pass fits."""
DEFAULT_QUERIES = 1000
REPORT_FILES = {"report": "report.json", "html": "report.html", "markdown": "summary.md"}
"""The report options, each with a file name that messages suggest when a folder was named instead."""
DEFAULT_TARGETS = TargetSpec("runner-up", k=9)
STEP_SIZE_FACTOR = 2.5
APGD_INITIAL_STEP = 2.0
DLR_CLASSES = {False: 3, True: 4}
"""The DLR loss needs the top three logits (untargeted) or four (targeted)."""
BASELINE_FOLDER = "advrobust-baselines"
"""The baseline folder under the rootdir when ``baseline_dir`` is not set."""

Parser = Callable[[Any, Path | None], Any]


@dataclass(frozen=True)
class Option:
    """One setting: its name, how to parse a raw value, its default and its help text.

    ``default`` is the one home of the default. ``default_doc`` says in words what a default means when
    its value alone does not (``None`` = auto).
    """

    name: str
    parse: Parser
    default: Any
    help: str
    metavar: str = "VALUE"
    per_test: bool = True
    """False for session-wide settings, which have no marker spelling."""
    default_doc: str | None = None

    @property
    def cli(self) -> str:
        return "--adv-" + self.name.replace("_", "-")

    @property
    def negative_cli(self) -> str:
        """``--adv-no-NAME``, which turns a flag off (see :attr:`is_flag`)."""
        return "--adv-no-" + self.name.replace("_", "-")

    @property
    def ini(self) -> str:
        return "adv_" + self.name

    @property
    def is_flag(self) -> bool:
        """A true/false setting (``auto`` too, when unset): on the command line a flag that never takes the
        next argument, ``--adv-NAME`` to turn it on and ``--adv-no-NAME`` off."""
        return self.parse is p.parse_bool or self.parse is p.parse_auto_bool

    @property
    def shown_default(self) -> str:
        """The default as a user writes it: ``0.007``, ``true``, ``none``, ``untargeted``."""
        return self.default_doc if self.default_doc is not None else show_value(self.default)

    @property
    def full_help(self) -> str:
        """The help text with its default, shared by ``addoption`` and ``addini``."""
        return f"{self.help} Default: {self.shown_default}."


def show_value(value: Any) -> str:
    """A setting's value spelled as on the command line."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


# -- "auto" rules: what a setting left at auto (or unset) means, decided here once


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


def auto_workers(total: int | None, batch_size: BatchSize) -> int:
    """workers=auto: one decoding process when there is more than one batch (or the count is unknown);
    batch_size=auto reads :data:`AUTO_BATCH_FIRST` images at a time."""
    per_batch = AUTO_BATCH_FIRST if batch_size == "auto" else batch_size
    return 1 if total is None or (per_batch is not None and total > per_batch) else 0


def auto_batch_limit(height: int, width: int, rows_per_image: int = 1) -> int:
    """batch_size=auto on the CPU: the most images a batch may hold (:data:`AUTO_BATCH_PIXELS`); an image
    attacked toward several classes at once counts once per class (``rows_per_image``)."""
    return max(1, AUTO_BATCH_PIXELS // (max(height * width, 1) * max(rows_per_image, 1)))


def auto_batch_next(measured: Mapping[int, float], limit: int) -> int | None:
    """batch_size=auto on the CPU: the next batch size to time, or None once the fastest is known.

    ``measured`` maps each batch size timed so far to its seconds per image and forward pass. It starts
    at :data:`AUTO_BATCH_FIRST` and goes up while the largest size is the fastest (up to ``limit``, see
    :func:`auto_batch_larger`); when going up did not pay, it halves from the start while that pays. The
    fastest size measured is then kept (``min(measured, key=measured.get)``), as cuDNN's benchmark mode does.
    """
    first = min(AUTO_BATCH_FIRST, limit)
    if not measured:
        return first
    best = min(measured, key=lambda size: measured[size])
    larger = auto_batch_larger(measured, best, limit)
    if best == max(measured) and larger > best and larger not in measured:
        return larger
    if best == min(measured) and best <= first and best // 2 >= 1 and best // 2 not in measured:
        return best // 2
    return None


def auto_batch_larger(measured: Mapping[int, float], best: int, limit: int) -> int:
    """The size to time above the fastest so far, ``best`` (``best`` itself: none), never above ``limit``.

    Twice ``best``; or, with a smaller size timed too, as the two largest sizes timed say: their times fit
    ``overhead / size + floor`` per image, and the next size is where that comes within
    :data:`AUTO_BATCH_NEAR` of its floor (at least twice ``best``, at most :data:`AUTO_BATCH_JUMP` times
    it), or none when ``best`` is there already (larger batches would gain little and may lose more).
    """
    target = 2 * best
    smaller = [size for size in measured if size < best]
    if smaller:
        below = max(smaller)
        overhead = (measured[below] - measured[best]) / (1 / below - 1 / best)
        floor = measured[best] - overhead / best
        near = overhead / (AUTO_BATCH_NEAR * floor) if floor > 0 else math.inf
        if near <= best:
            return best
        target = max(target, min(AUTO_BATCH_JUMP * best, math.ceil(near) if near < math.inf else limit))
    return min(target, limit)


def auto_batch_take(size: int, remaining: int | None, limit: int) -> int:
    """How many images the next batch of a chosen ``size`` takes, of ``remaining`` (None: unknown), at most
    ``limit``: the last few (up to a quarter of ``size``) go with the batch before them, not alone."""
    if remaining is None or remaining > min(size * 5 // 4, limit):
        return size
    return remaining


def auto_minimal_epsilon(recording: bool, stored_has_minimal: bool) -> bool:
    """minimal_epsilon=auto: search when a baseline is recorded, or compared and it holds minimal ε."""
    return recording or stored_has_minimal


def auto_baseline_dir(rootdir: Path) -> Path:
    """baseline_dir unset: :data:`BASELINE_FOLDER` under the rootdir."""
    return rootdir / BASELINE_FOLDER


def auto_device(cuda_available: bool) -> str:
    """device=auto: the GPU when CUDA is available, else the CPU."""
    return "cuda" if cuda_available else "cpu"


OPTIONS: tuple[Option, ...] = (
    Option(
        "epsilon",
        p.parse_epsilon,
        DEFAULT_EPSILON,
        metavar="EPS",
        help="L∞ perturbation budget in [0,1] pixel units (not 0-255).",
        default_doc=(
            "0.007, the value of Goodfellow et al.'s panda→gibbon experiment: below 2/255, invisible to a person"
        ),
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
        "device",
        p.parse_device,
        "model",
        metavar="DEV",
        help=(
            "Where to attack: model (wherever the model's parameters are), auto (cuda if available), "
            "cpu, cuda, cuda:N or mps. The model is moved there once."
        ),
    ),
    Option(
        "model",
        p.parse_model,
        None,
        metavar="SPEC",
        help=(
            "Model to load for the adv_model fixture: 'package.module:factory', a TorchScript file, "
            "'<torchvision arch>@<state dict>' (.pth or .safetensors), 'timm:<folder>' (timm's save_for_hf) "
            "or 'timm:<name>@<weights>', 'hf:<folder>' (save_pretrained) or a model folder, or a .onnx file. "
            "The formats' own metadata supply mean, std, input size, resizing and class names left unset."
        ),
        default_doc="none (define an adv_model fixture)",
    ),
    Option(
        "images",
        p.parse_paths,
        None,
        metavar="PATH",
        help="Image files or folders (PNG/JPEG; folders of <label>/<file> are read as labelled).",
        default_doc="none (define an adv_images fixture)",
    ),
    Option(
        "labels",
        p.parse_labels,
        None,
        metavar="FILE",
        help=(
            "Labels file: one 'filename,label' per line (label: class index or name), or 'prediction' to "
            "use the model's clean prediction."
        ),
        default_doc="folder names of an ImageFolder layout, else the model's clean prediction",
    ),
    Option(
        "class_names",
        p.parse_class_names,
        None,
        metavar="NAMES",
        help=(
            "Class names: 'imagenet' (from torchvision's metadata), a file with one name per line, or a "
            "comma-separated list."
        ),
        default_doc="none (classes are shown as indices)",
    ),
    Option(
        "mean",
        p.parse_mean,
        None,
        metavar="M",
        help=("Per-channel mean subtracted inside the model wrapper, after the perturbation: 'imagenet' or 'r,g,b'."),
    ),
    Option(
        "std",
        p.parse_std,
        None,
        metavar="S",
        help="Per-channel std divided inside the model wrapper, after the perturbation: 'imagenet' or 'r,g,b'.",
    ),
    Option(
        "input_size",
        p.parse_input_size,
        None,
        metavar="HxW",
        help="Model input size; loaded images are resized (shorter side) and center-cropped to it.",
        default_doc="none (images must share one size)",
    ),
    Option(
        "image_mode",
        p.parse_image_mode,
        "RGB",
        metavar="MODE",
        help="Channels the model takes: RGB (3) or L (1, grayscale); image files are converted to it.",
    ),
    Option(
        "output",
        p.parse_output,
        None,
        metavar="KEY",
        help=(
            "Where the logits are in the model's output: a key (logits) or an index (0) for models that "
            "return a dict, a tuple or an object."
        ),
        default_doc="auto: a tensor, or the output's .logits / ['logits']",
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
        "batch_size",
        p.parse_batch_size,
        DEFAULT_BATCH_SIZE,
        metavar="N",
        help=(
            "Attack at most N images at once, so any number of images runs in bounded memory; results do "
            "not depend on it (up to float rounding). 'all' for one batch; 'auto' times the first batches "
            "at a few sizes on the CPU and keeps the fastest per image (at most 32 images' worth of "
            "224×224 pixels), and on CUDA takes the largest batch one forward and backward pass fits. Out of "
            "memory on CUDA, a batch is halved and retried. The sizes used, and why, are shown under -v."
        ),
    ),
    Option(
        "workers",
        p.parse_workers,
        None,
        metavar="N",
        help=(
            "Background processes that decode image files (or read a Dataset) while the attack runs "
            "(torch DataLoader workers); 0 decodes in the test's process."
        ),
        default_doc="auto: 1 when there is more than one batch, else 0",
    ),
    Option(
        "shards",
        p.parse_shards,
        1,
        metavar="N",
        help=(
            "Split a decorated test's images into N shards that run as separate test cases "
            "(test_x[shard1of4], ...), so pytest-xdist can spread them; reports and baselines merge them."
        ),
    ),
    Option(
        "shard",
        p.parse_job_shard,
        None,
        metavar="K/N",
        per_test=False,
        help=(
            "Run as job K of N of a CI matrix: every decorated test is split into N shards (whatever its "
            "shards setting) and only shard K runs; tests that call adv_attack themselves are dealt out over "
            "the jobs, other tests run in every job. --adv-report, --adv-html and --adv-markdown files get "
            ".shardKofN before their suffix; baseline updates go into the report, not the baseline folder. "
            "'python -m pytest_advrobust merge' makes the N reports one verdict, one report, one baseline."
        ),
    ),
    Option(
        "minimal_epsilon",
        p.parse_auto_bool,
        None,
        metavar="BOOL",
        help=(
            "Also search each image's minimal adversarial ε (batched bisection over (0, EPSILON_MAX] to "
            "EPSILON_PRECISION; about log2(range/precision) extra attack runs)."
        ),
        default_doc="auto, on when baselines are recorded or compared",
    ),
    Option(
        "epsilon_max",
        p.parse_budget,
        16 / 255,
        metavar="EPS",
        help="Top of the minimal-ε search range, [0,1] pixel units.",
        default_doc="16/255 ≈ 0.0627",
    ),
    Option(
        "epsilon_precision",
        p.parse_budget,
        0.0002,
        metavar="EPS",
        help="Precision of the minimal-ε search, [0,1] pixel units.",
        default_doc="0.0002 (≈ 0.05/255)",
    ),
    Option(
        "tolerance",
        p.parse_tolerance,
        (0.0005, 0.0),
        metavar="TOL",
        help=(
            "How far an image's minimal ε may drop below its baseline before the test fails: absolute "
            "(0.0005, [0,1] pixel units), relative (10%), or both (0.0005,10%: the drop must exceed both)."
        ),
        default_doc="0.0005",
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
    Option(
        "allow_pickle",
        p.parse_bool,
        False,
        metavar="BOOL",
        help=(
            "Allow loading model files that need full unpickling (can run arbitrary code: only for files you trust)."
        ),
        default_doc="false, files load with torch.load(weights_only=True)",
    ),
    Option(
        "baseline_update",
        p.parse_bool,
        False,
        metavar="BOOL",
        per_test=False,
        help=(
            "Record (or re-record) the robustness baseline of every adv_robust test instead of comparing "
            "against it; flips do not fail."
        ),
        default_doc="false (compare when a baseline exists)",
    ),
    Option(
        "baseline_dir",
        p.parse_optional_path,
        None,
        metavar="DIR",
        per_test=False,
        help="Where baselines live, one JSON file per test module, meant to be committed.",
        default_doc=f"{BASELINE_FOLDER}/ under the rootdir",
    ),
    Option(
        "baseline_strict",
        p.parse_bool,
        False,
        metavar="BOOL",
        per_test=False,
        help="Fail a test that has no stored baseline (instead of reporting it).",
    ),
    Option(
        "artifacts",
        p.parse_optional_path,
        None,
        metavar="DIR",
        per_test=False,
        help=(
            "Write, per test folder, each flipped image's clean and adversarial 8-bit PNGs, the perturbation "
            "amplified, its probability curve and a JSON of its numbers."
        ),
    ),
    Option(
        "artifacts_all",
        p.parse_bool,
        False,
        metavar="BOOL",
        per_test=False,
        help="Write artifacts (and HTML cards) for every image, not only the flipped ones.",
    ),
    Option(
        "artifacts_max",
        p.parse_count,
        50,
        metavar="N",
        per_test=False,
        help=(
            "At most N images per test get artifacts and HTML cards (the first failures in order); only their "
            "tensors are kept while a test runs, so memory does not grow with the number of images."
        ),
    ),
    Option(
        "amplify",
        p.parse_amplify,
        50.0,
        metavar="X",
        per_test=False,
        help="How much the perturbation image is amplified, centred on grey.",
    ),
    Option(
        "html",
        p.file_path(REPORT_FILES["html"]),
        None,
        metavar="FILE",
        per_test=False,
        help=(
            "Write one self-contained HTML report (images inlined, works offline): a summary per test and "
            "a card per flipped image."
        ),
    ),
    Option(
        "report",
        p.file_path(REPORT_FILES["report"]),
        None,
        metavar="FILE",
        per_test=False,
        help="Write a JSON report of every attacked image to FILE at the end of the session.",
    ),
    Option(
        "markdown",
        p.file_path(REPORT_FILES["markdown"]),
        None,
        metavar="FILE",
        per_test=False,
        help=(
            "Write a Markdown summary to FILE (the GitHub job summary's text): a row per test and a table "
            "of the first flips."
        ),
    ),
    Option(
        "github_summary",
        p.parse_bool,
        True,
        metavar="BOOL",
        per_test=False,
        help=(
            "When $GITHUB_STEP_SUMMARY is set (GitHub Actions), append the Markdown summary to it, so it "
            "shows on the run's page."
        ),
    ),
)

OPTIONS_BY_NAME: dict[str, Option] = {option.name: option for option in OPTIONS}
PER_TEST: tuple[str, ...] = tuple(option.name for option in OPTIONS if option.per_test)
SESSION_WIDE: tuple[str, ...] = tuple(option.name for option in OPTIONS if not option.per_test)


def default(name: str) -> Any:
    """The default of a setting, from the options table (its one home)."""
    return OPTIONS_BY_NAME[name].default
