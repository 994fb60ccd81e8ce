"""Every setting of pytest-advrobust, described once, and the one precedence rule.

Each setting has three spellings: CLI ``--adv-epsilon``, ini ``adv_epsilon`` and marker keyword
``epsilon``. :func:`resolve` applies the rule *call > marker > CLI > ini > default* and remembers where
each value came from, so an error can say "epsilon=-1 in the adv_robust marker on test_x: must be ≥ 0".

This module is pure Python: it imports neither pytest nor torch, so the plugin can use it at load time.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .errors import OptionError

ATTACKS = ("fgsm", "bim", "pgd", "apgd")
LOSSES = ("auto", "ce", "dlr")
VERDICTS = ("rounded", "float")
DEFAULT_EPSILON = 0.007
DEFAULT_ATTACK = "apgd"
"""apgd toward the 9 runner-up classes, 10 steps each: within one point of AutoAttack's robust accuracy on
a defended model at a sixth of its time (benchmarks/strength.py; the README's "How strong is the gate?")."""
DEFAULT_STEPS = 10
DEFAULT_BATCH_SIZE = 32
STEP_SIZE_FACTOR = 2.5
APGD_INITIAL_STEP = 2.0
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

LossKind = Literal["ce", "dlr"]
SourceKind = Literal["default", "ini", "override", "cli", "marker", "call"]
"""``override`` is pytest's ``-o adv_name=value``: an ini value given on the command line."""


@dataclass(frozen=True)
class Source:
    """Where a value came from: its kind, a human label, and the folder relative paths start from."""

    kind: SourceKind
    label: str = ""
    base: Path | None = None

    def spell(self, name: str, raw: object) -> str:
        """The value as the user wrote it, e.g. ``--adv-epsilon=-1`` or ``epsilon=-1 in ...``."""
        if self.kind == "cli":
            return f"--adv-{name.replace('_', '-')}={raw}"
        if self.kind == "ini":
            return f"adv_{name} = {raw} in {self.label}"
        if self.kind == "override":
            return f"-o adv_{name}={raw}"
        if self.kind == "default":
            return f"{name}={raw!r} (the default)"
        return f"{name}={raw!r} in {self.label}"


@dataclass(frozen=True)
class TargetSpec:
    """What the attack aims for.

    ``mode`` is ``"untargeted"`` (ascend the loss of the true label), ``"classes"`` (descend the loss
    toward each class in ``classes``: indices or names), ``"per-image"`` (a tensor of targets, one per
    image), ``"least-likely"`` (the clean prediction's
    least likely class) or ``"runner-up"`` (the ``k`` next most likely classes after the top one).
    """

    mode: Literal["untargeted", "classes", "per-image", "least-likely", "runner-up"] = "untargeted"
    classes: tuple[int | str, ...] = ()
    k: int = 1

    def __str__(self) -> str:
        if self.mode == "per-image":
            return f"per-image ({len(self.classes)} targets)"
        if self.mode == "classes":
            return ",".join(str(c) for c in self.classes)
        if self.mode == "runner-up":
            return f"top-{self.k}"
        return self.mode


DEFAULT_TARGETS = TargetSpec("runner-up", k=9)

Parser = Callable[[Any, Path | None], Any]


@dataclass(frozen=True)
class Option:
    """One setting: its name, how to parse a raw value, its default and its help text.

    ``default`` is the one home of the default: the config dataclasses, the help text, the marker's
    doc and :func:`pytest_advrobust.attack`'s signature are derived from it or tested against it.
    ``default_doc`` says in words what a default means when its value alone does not (``None`` = auto).
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
    def ini(self) -> str:
        return "adv_" + self.name

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


# -- parsers: each takes the raw value (a string from CLI/ini, any Python value from a marker) and the
# -- folder relative paths start from; each raises ValueError("must ...") on a bad value.


def _number(raw: Any) -> float:
    """A float, or a fraction as papers write budgets: ``8/255``."""
    if isinstance(raw, bool):
        raise ValueError("must be a number, not a bool")
    try:
        if isinstance(raw, str) and raw.count("/") == 1:
            numerator, denominator = (float(part) for part in raw.split("/"))
            value = numerator / denominator
        else:
            value = float(raw)
    except (TypeError, ValueError, ZeroDivisionError):
        raise ValueError("must be a number (or a fraction such as 8/255)") from None
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


def _integer(raw: Any) -> int:
    if isinstance(raw, bool):
        raise ValueError("must be a whole number, not a bool")
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float) and raw.is_integer():
        return int(raw)
    try:
        return int(str(raw).strip())
    except ValueError:
        raise ValueError("must be a whole number") from None


def parse_epsilon(raw: Any, base: Path | None = None) -> float:
    value = _number(raw)
    if value < 0:
        raise ValueError("must be ≥ 0 (an L∞ budget in [0,1] pixel units)")
    if value > 1:
        raise ValueError(f"must be ≤ 1: ε is in [0,1] pixel units, not 0–255 (did you mean {value / 255:.4g}?)")
    return value


def parse_attack(raw: Any, base: Path | None = None) -> str:
    value = str(raw).strip().lower()
    aliases = {"ifgsm": "bim", "iterative-fgsm": "bim", "i-fgsm": "bim"}
    value = aliases.get(value, value)
    if value not in ATTACKS:
        raise ValueError(f"must be one of {', '.join(ATTACKS)} (got {raw!r})")
    return value


def parse_loss(raw: Any, base: Path | None = None) -> str:
    value = str(raw).strip().lower()
    if value not in LOSSES:
        raise ValueError(f"must be one of {', '.join(LOSSES)} (got {raw!r})")
    return value


def parse_steps(raw: Any, base: Path | None = None) -> int | None:
    if raw is None or str(raw).strip().lower() in ("", "auto"):
        return None
    value = _integer(raw)
    if value < 1:
        raise ValueError("must be ≥ 1")
    return value


def parse_step_size(raw: Any, base: Path | None = None) -> float | None:
    if raw is None or str(raw).strip().lower() in ("", "auto"):
        return None
    value = _number(raw)
    if value <= 0:
        raise ValueError("must be > 0 (in [0,1] pixel units), or 'auto'")
    return value


def _split(raw: Any) -> list[Any]:
    if isinstance(raw, str):
        return [part.strip() for part in raw.split(",") if part.strip()]
    if isinstance(raw, Sequence):
        return list(raw)
    return [raw]


def parse_targets(raw: Any, base: Path | None = None) -> TargetSpec:
    if isinstance(raw, TargetSpec):
        return raw
    if raw is None:
        return TargetSpec()
    if hasattr(raw, "tolist") and hasattr(raw, "dim"):  # a tensor: one target class per image
        if raw.dim() != 1:
            raise ValueError("a targets tensor must hold one class index per image (shape N)")
        return TargetSpec("per-image", classes=tuple(int(v) for v in raw.tolist()))
    if isinstance(raw, str):
        word = raw.strip().lower()
        if word in ("", "untargeted", "none"):
            return TargetSpec()
        if word in ("least-likely", "least_likely", "ll"):
            return TargetSpec("least-likely")
        if word in ("runner-up", "runner_up"):
            return TargetSpec("runner-up", k=1)
        match = re.fullmatch(r"top-?(\d+)", word)
        if match:
            k = int(match.group(1))
            if k < 1:
                raise ValueError("top-K needs K ≥ 1")
            return TargetSpec("runner-up", k=k)
    classes: list[int | str] = []
    for item in _split(raw):
        if isinstance(item, bool):
            raise ValueError("must be class indices or names, not a bool")
        if isinstance(item, int):
            classes.append(item)
        elif isinstance(item, str) and item.strip().isdigit():
            classes.append(int(item))
        elif isinstance(item, str) and item.strip():
            classes.append(item.strip())
        else:
            raise ValueError(f"must be 'untargeted', 'least-likely', 'top-K', or class indices/names (got {item!r})")
    if any(isinstance(c, int) and c < 0 for c in classes):
        raise ValueError("class indices must be ≥ 0")
    if not classes:
        return TargetSpec()
    return TargetSpec("classes", classes=tuple(dict.fromkeys(classes)))


def parse_seed(raw: Any, base: Path | None = None) -> int:
    value = _integer(raw)
    if value < 0:
        raise ValueError("must be ≥ 0")
    return value


def parse_device(raw: Any, base: Path | None = None) -> str:
    value = str(raw).strip().lower()
    if value in ("model", "auto", "cpu", "cuda", "mps") or re.fullmatch(r"cuda:\d+", value):
        return value
    raise ValueError("must be 'model', 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'")


def _unset(raw: Any) -> bool:
    """``None``, an empty string or the word ``none``: the setting is not given (its default applies)."""
    return raw is None or (isinstance(raw, str) and raw.strip().lower() in ("", "none"))


def _path(raw: Any, base: Path | None) -> Path:
    # "imgs /" is "imgs": blanks around the path and its separators are never part of a name here
    path = Path("/".join(part.strip() for part in str(raw).strip().split("/")))
    try:
        path = path.expanduser()
    except RuntimeError:  # "~name/..." for a user that does not exist, or no home directory at all
        raise ValueError(f"{path.parts[0]!r} names no home directory here; write the path out") from None
    if not path.is_absolute() and base is not None:
        path = Path(os.path.normpath(base / path))
    return path


def parse_optional_path(raw: Any, base: Path | None = None) -> Path | None:
    if _unset(raw):
        return None
    return _path(str(raw).strip(), base)


def parse_paths(raw: Any, base: Path | None = None) -> tuple[Path, ...] | None:
    if _unset(raw):
        return None
    items = _split(raw) if not isinstance(raw, (str, Path)) else [raw]
    paths = tuple(_path(str(item).strip(), base) for item in items if str(item).strip())
    return paths or None


def parse_labels(raw: Any, base: Path | None = None) -> Path | None:
    """A labels file; ``prediction`` (or empty) means: use the model's clean prediction as the label."""
    if raw is None or str(raw).strip().lower() in ("", "prediction"):
        return None
    return _path(str(raw).strip(), base)


def parse_model(raw: Any, base: Path | None = None) -> str | None:
    """A spec string; files in it are made absolute now, so loading does not depend on the cwd."""
    if _unset(raw):
        return None
    spec = str(raw).strip()
    if "@" in spec:
        arch, _, file = spec.partition("@")
        return f"{arch}@{_path(file, base)}"
    looks_like_file = spec.endswith((".pt", ".pth", ".ts", ".bin", ".ckpt")) or "/" in spec
    if looks_like_file and ":" not in spec.replace("\\", "/").split("/")[-1]:
        return str(_path(spec, base))
    return spec


def parse_class_names(raw: Any, base: Path | None = None) -> str | tuple[str, ...] | Path | None:
    if _unset(raw):
        return None
    if isinstance(raw, str):
        text = raw.strip()
        if text == "":
            return None
        if text.lower() == "imagenet":
            return "imagenet"
        if "," in text:
            names = tuple(_split(text))
            if not names:
                raise ValueError("must name at least one class")
            return names
        return _path(text, base)
    if isinstance(raw, Path):
        return _path(raw, base)
    names = tuple(str(item) for item in _split(raw))
    if not names:
        raise ValueError("must not be an empty list")
    return names


def _triple(raw: Any, preset: tuple[float, float, float], positive: bool) -> tuple[float, ...] | None:
    if _unset(raw):
        return None
    if isinstance(raw, str) and raw.strip().lower() == "imagenet":
        return preset
    values = tuple(_number(item) for item in _split(raw))
    if len(values) not in (1, 3):
        raise ValueError("must be one number or three (one per RGB channel), or 'imagenet'")
    if positive and any(v <= 0 for v in values):
        raise ValueError("must be > 0")
    return values


def parse_mean(raw: Any, base: Path | None = None) -> tuple[float, ...] | None:
    return _triple(raw, IMAGENET_MEAN, positive=False)


def parse_std(raw: Any, base: Path | None = None) -> tuple[float, ...] | None:
    return _triple(raw, IMAGENET_STD, positive=True)


def parse_input_size(raw: Any, base: Path | None = None) -> tuple[int, int] | None:
    if raw is None or (isinstance(raw, str) and raw.strip().lower() in ("", "none")):
        return None
    if isinstance(raw, str):
        parts: list[Any] = [p for p in re.split(r"[x,×\s]+", raw.strip().lower()) if p]
    else:
        parts = _split(raw)
    sizes = tuple(_integer(p) for p in parts)
    if len(sizes) == 1:
        sizes = (sizes[0], sizes[0])
    if len(sizes) != 2 or min(sizes) < 1:
        raise ValueError("must be one positive size or HxW (e.g. 224 or 224x224)")
    return sizes[0], sizes[1]


def parse_bool(raw: Any, base: Path | None = None) -> bool:
    if isinstance(raw, bool):
        return raw
    word = str(raw).strip().lower()
    if word in ("1", "true", "yes", "on"):
        return True
    if word in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be true or false (yes/no, 1/0)")


def parse_auto_bool(raw: Any, base: Path | None = None) -> bool | None:
    if raw is None or str(raw).strip().lower() in ("", "auto", "none"):
        return None
    return parse_bool(raw)


def parse_budget(raw: Any, base: Path | None = None) -> float:
    value = parse_epsilon(raw)
    if value == 0:
        raise ValueError("must be > 0")
    return value


def parse_tolerance(raw: Any, base: Path | None = None) -> tuple[float, float]:
    """``0.0005`` (absolute, [0,1] pixel units), ``10%`` (relative), or both: ``0.0005,10%``."""
    absolute, relative = 0.0, 0.0
    parts = _split(raw) if not isinstance(raw, (int, float)) else [raw]
    if not parts or len(parts) > 2:
        raise ValueError("must be an absolute ε (0.0005), a percentage (10%), or both (0.0005,10%)")
    for part in parts:
        text = str(part).strip()
        if text.endswith("%"):
            relative = _number(text[:-1]) / 100
            if not 0 <= relative <= 1:
                raise ValueError("a relative tolerance must be between 0% and 100%")
        else:
            absolute = _number(text)
            if absolute < 0:
                raise ValueError("must be ≥ 0")
    return absolute, relative


def parse_amplify(raw: Any, base: Path | None = None) -> float:
    value = _number(raw)
    if value <= 0:
        raise ValueError("must be > 0")
    return value


def parse_verdict(raw: Any, base: Path | None = None) -> str:
    value = str(raw).strip().lower()
    if value not in VERDICTS:
        raise ValueError(f"must be one of {', '.join(VERDICTS)}")
    return value


def parse_shards(raw: Any, base: Path | None = None) -> int:
    value = _integer(raw)
    if value < 1:
        raise ValueError("must be ≥ 1")
    return value


def parse_image_mode(raw: Any, base: Path | None = None) -> str:
    value = str(raw).strip().upper()
    value = {"GRAY": "L", "GREY": "L", "GRAYSCALE": "L", "GREYSCALE": "L"}.get(value, value)
    if value not in ("RGB", "L"):
        raise ValueError("must be RGB (3 channels) or L (1 channel, grayscale)")
    return value


def parse_output(raw: Any, base: Path | None = None) -> str | int | None:
    """auto: a tensor, or an output's ``.logits`` / ``["logits"]``; else a key (``logits``) or index (``0``)."""
    if raw is None or isinstance(raw, bool):
        if raw is None:
            return None
        raise ValueError("must be auto, an output key (logits) or an index (0)")
    if isinstance(raw, int):
        return raw
    text = str(raw).strip()
    if text.lower() in ("", "auto"):
        return None
    if text.lstrip("-").isdigit():
        return int(text)
    if not text.replace("_", "a").replace(".", "a").isalnum():
        raise ValueError("must be auto, an output key (logits) or an index (0)")
    return text


def parse_workers(raw: Any, base: Path | None = None) -> int | None:
    if raw is None or str(raw).strip().lower() in ("", "auto"):
        return None
    value = _integer(raw)
    if value < 0:
        raise ValueError("must be ≥ 0 (0: decode in the test's own process), or auto")
    return value


def parse_count(raw: Any, base: Path | None = None) -> int:
    value = _integer(raw)
    if value < 0:
        raise ValueError("must be ≥ 0")
    return value


def parse_batch_size(raw: Any, base: Path | None = None) -> int | None:
    if raw is None or str(raw).strip().lower() in ("", "all", "none"):
        return None
    value = _integer(raw)
    if value < 1:
        raise ValueError("must be ≥ 1, or 'all'")
    return value


OPTIONS: tuple[Option, ...] = (
    Option(
        "epsilon",
        parse_epsilon,
        DEFAULT_EPSILON,
        metavar="EPS",
        help="L∞ perturbation budget in [0,1] pixel units (not 0-255).",
        default_doc=(
            "0.007, the value of Goodfellow et al.'s panda→gibbon experiment: below 2/255, invisible to a person"
        ),
    ),
    Option(
        "attack",
        parse_attack,
        DEFAULT_ATTACK,
        metavar="NAME",
        help=(
            "Attack: fgsm (one step of size ε), bim (iterative FGSM: STEPS sign steps of STEP_SIZE, "
            "projected into the ε-ball), pgd (bim from a seeded random start) or apgd (Auto-PGD, Croce & Hein "
            "2020: momentum and a step size that adapts from 2ε, from a seeded random start)."
        ),
    ),
    Option(
        "loss",
        parse_loss,
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
        parse_steps,
        None,
        metavar="N",
        help="Number of sign-gradient steps.",
        default_doc=f"auto: {DEFAULT_STEPS} for bim/pgd, 1 for fgsm",
    ),
    Option(
        "step_size",
        parse_step_size,
        None,
        metavar="ALPHA",
        help="Size of each step in [0,1] pixel units.",
        default_doc=(
            f"auto: {STEP_SIZE_FACTOR:g}·ε/STEPS (Madry et al.), so the iterates can reach the ε-ball's corners; "
            "ε for fgsm"
        ),
    ),
    Option(
        "targets",
        parse_targets,
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
        parse_seed,
        0,
        metavar="N",
        help="Seed of the attack's own torch.Generator (pgd's random start); global RNG is never used.",
    ),
    Option(
        "device",
        parse_device,
        "model",
        metavar="DEV",
        help=(
            "Where to attack: model (wherever the model's parameters are), auto (cuda if available), "
            "cpu, cuda, cuda:N or mps. The model is moved there once."
        ),
    ),
    Option(
        "model",
        parse_model,
        None,
        metavar="SPEC",
        help=(
            "Model to load for the adv_model fixture: 'package.module:factory', a TorchScript file, or "
            "'<torchvision arch>@<state-dict file>'."
        ),
        default_doc="none (define an adv_model fixture)",
    ),
    Option(
        "images",
        parse_paths,
        None,
        metavar="PATH",
        help="Image files or folders (PNG/JPEG; folders of <label>/<file> are read as labelled).",
        default_doc="none (define an adv_images fixture)",
    ),
    Option(
        "labels",
        parse_labels,
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
        parse_class_names,
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
        parse_mean,
        None,
        metavar="M",
        help=("Per-channel mean subtracted inside the model wrapper, after the perturbation: 'imagenet' or 'r,g,b'."),
    ),
    Option(
        "std",
        parse_std,
        None,
        metavar="S",
        help="Per-channel std divided inside the model wrapper, after the perturbation: 'imagenet' or 'r,g,b'.",
    ),
    Option(
        "input_size",
        parse_input_size,
        None,
        metavar="HxW",
        help="Model input size; loaded images are resized (shorter side) and center-cropped to it.",
        default_doc="none (images must share one size)",
    ),
    Option(
        "image_mode",
        parse_image_mode,
        "RGB",
        metavar="MODE",
        help="Channels the model takes: RGB (3) or L (1, grayscale); image files are converted to it.",
    ),
    Option(
        "output",
        parse_output,
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
        parse_bool,
        True,
        metavar="BOOL",
        help=(
            "Stop attacking an image once it reached the attack's goal (as judged by the verdict). It never "
            "changes a pass/fail verdict; turn it off to see full probability curves."
        ),
    ),
    Option(
        "verdict",
        parse_verdict,
        "rounded",
        metavar="KIND",
        help=(
            "Which adversarial image decides a flip: rounded (rounded to 8-bit pixels within the "
            "ε-ball, an image a user could save) or float."
        ),
    ),
    Option(
        "batch_size",
        parse_batch_size,
        DEFAULT_BATCH_SIZE,
        metavar="N",
        help=(
            "Attack at most N images at once, so any number of images runs in bounded memory; results do "
            "not depend on it (up to float rounding). 'all' for one batch."
        ),
    ),
    Option(
        "workers",
        parse_workers,
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
        parse_shards,
        1,
        metavar="N",
        help=(
            "Split a decorated test's images into N shards that run as separate test cases "
            "(test_x[shard1of4], ...), so pytest-xdist can spread them; reports and baselines merge them."
        ),
    ),
    Option(
        "minimal_epsilon",
        parse_auto_bool,
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
        parse_budget,
        16 / 255,
        metavar="EPS",
        help="Top of the minimal-ε search range, [0,1] pixel units.",
        default_doc="16/255 ≈ 0.0627",
    ),
    Option(
        "epsilon_precision",
        parse_budget,
        0.0002,
        metavar="EPS",
        help="Precision of the minimal-ε search, [0,1] pixel units.",
        default_doc="0.0002 (≈ 0.05/255)",
    ),
    Option(
        "tolerance",
        parse_tolerance,
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
        parse_bool,
        True,
        metavar="BOOL",
        help=(
            "Before trusting a pass: check that two clean forward passes agree (determinism) and that one "
            "FGSM step does not succeed where the configured attack failed (costs one forward, and one "
            "forward+backward on the images that held)."
        ),
    ),
    Option(
        "allow_pickle",
        parse_bool,
        False,
        metavar="BOOL",
        help=(
            "Allow loading model files that need full unpickling (can run arbitrary code: only for files you trust)."
        ),
        default_doc="false, files load with torch.load(weights_only=True)",
    ),
    Option(
        "baseline_update",
        parse_bool,
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
        parse_optional_path,
        None,
        metavar="DIR",
        per_test=False,
        help="Where baselines live, one JSON file per test module, meant to be committed.",
        default_doc="advrobust-baselines/ under the rootdir",
    ),
    Option(
        "baseline_strict",
        parse_bool,
        False,
        metavar="BOOL",
        per_test=False,
        help="Fail a test that has no stored baseline (instead of reporting it).",
    ),
    Option(
        "artifacts",
        parse_optional_path,
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
        parse_bool,
        False,
        metavar="BOOL",
        per_test=False,
        help="Write artifacts (and HTML cards) for every image, not only the flipped ones.",
    ),
    Option(
        "artifacts_max",
        parse_count,
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
        parse_amplify,
        50.0,
        metavar="X",
        per_test=False,
        help="How much the perturbation image is amplified, centred on grey.",
    ),
    Option(
        "html",
        parse_optional_path,
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
        parse_optional_path,
        None,
        metavar="FILE",
        per_test=False,
        help="Write a JSON report of every attacked image to FILE at the end of the session.",
    ),
    Option(
        "markdown",
        parse_optional_path,
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
        parse_bool,
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


def _default_field(name: str) -> Any:
    return field(default=default(name))


@dataclass(frozen=True)
class AttackConfig:
    """The resolved per-test settings (those with a marker spelling), with the source of each value."""

    epsilon: float = _default_field("epsilon")
    attack: str = _default_field("attack")
    loss: str = _default_field("loss")
    steps: int | None = _default_field("steps")
    step_size: float | None = _default_field("step_size")
    targets: TargetSpec = _default_field("targets")
    seed: int = _default_field("seed")
    device: str = _default_field("device")
    model: str | None = _default_field("model")
    images: tuple[Path, ...] | None = _default_field("images")
    labels: Path | None = _default_field("labels")
    class_names: str | tuple[str, ...] | Path | None = _default_field("class_names")
    mean: tuple[float, ...] | None = _default_field("mean")
    std: tuple[float, ...] | None = _default_field("std")
    input_size: tuple[int, int] | None = _default_field("input_size")
    image_mode: str = _default_field("image_mode")
    output: str | int | None = _default_field("output")
    early_stop: bool = _default_field("early_stop")
    verdict: str = _default_field("verdict")
    batch_size: int | None = _default_field("batch_size")
    workers: int | None = _default_field("workers")
    shards: int = _default_field("shards")
    minimal_epsilon: bool | None = _default_field("minimal_epsilon")
    epsilon_max: float = _default_field("epsilon_max")
    epsilon_precision: float = _default_field("epsilon_precision")
    tolerance: tuple[float, float] = _default_field("tolerance")
    sanity_checks: bool = _default_field("sanity_checks")
    allow_pickle: bool = _default_field("allow_pickle")
    sources: Mapping[str, Source] = field(default_factory=dict, compare=False, repr=False)

    @property
    def resolved_steps(self) -> int:
        if self.steps is not None:
            return self.steps
        return 1 if self.attack == "fgsm" else DEFAULT_STEPS

    @property
    def resolved_step_size(self) -> float:
        if self.step_size is not None:
            return self.step_size
        return default_step_size(self.attack, self.epsilon, self.resolved_steps)

    @property
    def resolved_loss(self) -> LossKind:
        """``auto``: the targeted DLR loss for apgd toward targets (APGD-T), cross-entropy otherwise."""
        if self.loss in ("ce", "dlr"):
            return "ce" if self.loss == "ce" else "dlr"
        return "dlr" if self.attack == "apgd" and self.targets.mode != "untargeted" else "ce"

    @property
    def step_size_factor(self) -> float:
        """Step size as a multiple of ε, so any budget is attacked like the configured one."""
        if self.step_size is not None and self.epsilon > 0:
            return self.step_size / self.epsilon
        return default_step_size(self.attack, 1.0, self.resolved_steps)

    def source(self, name: str) -> Source:
        return self.sources.get(name, Source("default"))

    def describe(self) -> str:
        """One line with what reproduces a run: attack, ε, steps, step size, targets, seed."""
        step = "2ε,adaptive" if self.attack == "apgd" else f"{self.resolved_step_size:.6g}"
        loss = f" loss={self.resolved_loss}" if self.resolved_loss != "ce" else ""
        return (
            f"attack={self.attack} epsilon={self.epsilon:g} steps={self.resolved_steps} "
            f"step_size={step}{loss} targets={self.targets} seed={self.seed} "
            f"verdict={self.verdict} device={self.device}"
        )


@dataclass(frozen=True)
class RunConfig:
    """The resolved session-wide settings (reports, artifacts, baselines): CLI and ini only."""

    baseline_update: bool = _default_field("baseline_update")
    baseline_dir: Path | None = _default_field("baseline_dir")
    baseline_strict: bool = _default_field("baseline_strict")
    artifacts: Path | None = _default_field("artifacts")
    artifacts_all: bool = _default_field("artifacts_all")
    artifacts_max: int = _default_field("artifacts_max")
    amplify: float = _default_field("amplify")
    html: Path | None = _default_field("html")
    report: Path | None = _default_field("report")
    markdown: Path | None = _default_field("markdown")
    github_summary: bool = _default_field("github_summary")
    sources: Mapping[str, Source] = field(default_factory=dict, compare=False, repr=False)


def default_step_size(attack: str, epsilon: float, steps: int) -> float:
    """ε for one-step attacks; 2ε to start with for apgd (it adapts); 2.5·ε/steps otherwise (Madry et al.),
    so steps can cross the whole ball."""
    if attack == "apgd":
        return APGD_INITIAL_STEP * epsilon
    if attack == "fgsm" or steps == 1:
        return epsilon
    return STEP_SIZE_FACTOR * epsilon / steps


def unparse(name: str, value: Any, path_text: Callable[[Path], str] = str) -> str:
    """A parsed value spelled so that parsing it gives the value back (``parse(unparse(v)) == v``).

    ``path_text`` spells paths (e.g. relative to the folder a command will run in).
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        auto = {"batch_size": "all", "labels": "prediction", "steps": "auto", "step_size": "auto", "output": "auto",
                "workers": "auto"}  # fmt: skip
        return auto.get(name, "none")
    if isinstance(value, Path):
        return path_text(value)
    if isinstance(value, float):
        return repr(value)
    if name == "model" and isinstance(value, str):
        arch, at, file = value.rpartition("@")
        if at:
            return f"{arch}@{path_text(Path(file))}"
        return path_text(Path(value)) if Path(value).is_absolute() else value
    if name == "tolerance":
        absolute, relative = value
        return ",".join([repr(absolute), *([f"{relative * 100!r}%"] if relative else [])])
    if name == "input_size":
        return f"{value[0]}x{value[1]}"
    if isinstance(value, tuple):
        return ",".join(unparse(name, item, path_text) for item in value)
    return str(value)


def parse_one(name: str, raw: Any, source: Source) -> Any:
    """Parse one raw value, turning a parser's ValueError into an OptionError that names the source."""
    option = OPTIONS_BY_NAME.get(name)
    if option is None:
        close = _close_names(name)
        hint = f" (did you mean {close}?)" if close else ""
        raise OptionError(f"unknown setting {name!r} in {source.label or source.kind}{hint}")
    try:
        return option.parse(raw, source.base)
    except ValueError as exc:
        raise OptionError(f"{source.spell(name, raw)}: {exc}") from None


def _close_names(name: str) -> str:
    import difflib

    matches = difflib.get_close_matches(name.replace("-", "_"), list(OPTIONS_BY_NAME), n=3)
    return ", ".join(matches)


def _resolve_values(
    layers: Sequence[tuple[Mapping[str, Any], Source]], names: Sequence[str]
) -> tuple[dict[str, Any], dict[str, Source]]:
    """Parse the values of ``names`` from layers given lowest precedence first; later layers win."""
    values: dict[str, Any] = {}
    sources: dict[str, Source] = {}
    for raw_values, source in layers:
        for name, raw in raw_values.items():
            if raw is None:
                continue
            option = OPTIONS_BY_NAME.get(name)
            if option is not None and source.kind in ("marker", "call") and not option.per_test:
                raise OptionError(
                    f"{name} in {source.label} is a session-wide setting: use {option.cli} or "
                    f"{option.ini} in the ini file"
                )
            parsed = parse_one(name, raw, source)
            if name in names:
                values[name], sources[name] = parsed, source
    return values, sources


def resolve(
    layers: Sequence[tuple[Mapping[str, Any], Source]],
    base: AttackConfig | None = None,
) -> AttackConfig:
    """Resolve per-test settings from layers given lowest precedence first (e.g. ini, CLI, marker, call).

    ``None`` in a layer means "not given". Values are parsed and validated; the first bad one raises
    :class:`OptionError` naming where it came from. ``base`` is an already resolved config to start from.
    Session-wide settings in a layer are validated too, but belong to :func:`resolve_run`.
    """
    values, sources = _resolve_values(layers, PER_TEST)
    if base is not None:
        values = {**{name: getattr(base, name) for name in PER_TEST}, **values}
        sources = {**base.sources, **sources}
    config = AttackConfig(**values, sources=sources)
    _check_combination(config)
    return config


def resolve_run(layers: Sequence[tuple[Mapping[str, Any], Source]]) -> RunConfig:
    """Resolve the session-wide settings (see :func:`resolve` for the layers)."""
    values, sources = _resolve_values(layers, SESSION_WIDE)
    return RunConfig(**values, sources=sources)


def _check_combination(config: AttackConfig) -> None:
    if config.attack == "fgsm" and config.step_size is not None:
        src = config.source("step_size")
        raise OptionError(
            f"{src.spell('step_size', config.step_size)}: fgsm is exactly one step of size ε; leave step_size at "
            "auto, or use attack=bim for steps of another size"
        )
    if config.attack == "apgd" and config.step_size is not None:
        src = config.source("step_size")
        raise OptionError(
            f"{src.spell('step_size', config.step_size)}: apgd sets its own step size (2ε, halved when progress "
            "stalls); leave step_size at auto, or use attack=pgd for a fixed step size"
        )
    if config.attack == "fgsm" and config.steps not in (None, 1):
        src = config.source("steps")
        raise OptionError(
            f"{src.spell('steps', config.steps)}: fgsm is exactly one step of size ε; use attack=bim for several steps"
        )
    if (config.mean is None) != (config.std is None):
        given = "mean" if config.mean is not None else "std"
        missing = "std" if given == "mean" else "mean"
        src = config.source(given)
        raise OptionError(
            f"{src.spell(given, getattr(config, given))}: {given} was given without {missing}; "
            f"set both (e.g. --adv-mean=imagenet --adv-std=imagenet)"
        )
