"""Parsers of raw setting values, one per kind of setting.

Each takes the raw value (a string from CLI/ini, any Python value from a marker or a call) and the folder
relative paths start from, and returns the parsed value or raises ``ValueError("must ...")``; the caller
(:func:`~pytest_advrobust.core.settings.precedence.parse_one`) names where the value came from.
"""

from __future__ import annotations

import difflib
import math
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .values import (
    ATTACKS,
    BASELINE_RULES,
    IMAGENET_MEAN,
    IMAGENET_STD,
    LOSSES,
    MAX_IMAGE_SIDE,
    MAX_SHARDS,
    MODEL_PREFIXES,
    NORMS,
    VERDICTS,
    BatchSize,
    JobShard,
    TargetSpec,
)

MAX_STEPS = 10_000
"""The most sign-gradient steps an attack may take."""
MODEL_FILE_SUFFIXES = (".pt", ".pth", ".ts", ".bin", ".ckpt", ".safetensors", ".onnx", ".pt2")


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


MAX_BUDGET = 1e6
"""The largest ε any norm takes: an L1 ball of a 512×512 RGB image is at most 786,432 wide."""


def parse_epsilon(raw: Any, base: Path | None = None) -> float:
    """A budget ≥ 0 in the norm's [0,1] pixel units; whether it is ≤ 1 (L∞) depends on the norm, which
    another setting gives (see :func:`linf_bound`)."""
    value = _number(raw)
    if value < 0:
        raise ValueError("must be ≥ 0 (a budget in [0,1] pixel units)")
    if value > MAX_BUDGET:
        raise ValueError(f"must be ≤ {MAX_BUDGET:g}: ε is in [0,1] pixel units (an L1 budget is at most C·H·W)")
    return value


def linf_bound(value: float, subject: str = "ε is") -> str | None:
    """Why an L∞ budget of ``value`` is wrong (None: it is not): no pixel can move more than 1."""
    if value > 1:
        return f"must be ≤ 1: {subject} in [0,1] pixel units, not 0–255 (did you mean {value / 255:.4g}?)"
    return None


NORM_ALIASES = {"inf": "linf", "l_inf": "linf", "l∞": "linf", "linfinity": "linf", "2": "l2", "1": "l1"}


def parse_norm(raw: Any, base: Path | None = None) -> str:
    """``linf``, ``l2`` or ``l1`` (any case: ``Linf``/``L2``/``L1`` as AutoAttack writes them; also ``inf``,
    ``2``, ``1``)."""
    value = str(raw).strip().lower().replace(" ", "")
    value = NORM_ALIASES.get(value, value)
    if value not in NORMS:
        raise ValueError(f"must be one of {', '.join(NORMS)} (got {raw!r}): the norm ε is measured in")
    return value


def parse_attack(raw: Any, base: Path | None = None) -> str:
    value = str(raw).strip().lower()
    aliases = {"ifgsm": "bim", "iterative-fgsm": "bim", "i-fgsm": "bim"}
    value = aliases.get(value, value)
    if value not in ATTACKS:
        close = difflib.get_close_matches(value, ATTACKS, n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise ValueError(f"must be one of {', '.join(ATTACKS)} (got {raw!r}{hint})")
    return value


MAX_EOT = 1000
"""Draws per step: each costs a forward and a backward pass (AutoAttack's rand version uses 20)."""
MAX_QUERIES = 100_000


def parse_eot(raw: Any, base: Path | None = None) -> int:
    value = _integer(raw)
    if value < 1:
        raise ValueError("must be ≥ 1 (1: no expectation over transformation, one pass per step)")
    if value > MAX_EOT:
        raise ValueError(
            f"must be ≤ {MAX_EOT}: each draw costs a forward and a backward pass per step (AutoAttack uses 20)"
        )
    return value


def parse_queries(raw: Any, base: Path | None = None) -> int:
    value = _integer(raw)
    if value < 1:
        raise ValueError("must be ≥ 1")
    if value > MAX_QUERIES:
        raise ValueError(f"must be ≤ {MAX_QUERIES} (AutoAttack's standard run uses 5000)")
    return value


def parse_profile(raw: Any, base: Path | None = None) -> str:
    from .profiles import profile_names  # the registry is filled by conftest files at import time

    value = str(raw).strip()
    if value not in profile_names():
        raise ValueError(
            f"unknown profile {value!r}: the profiles are {', '.join(profile_names())} (register your own with "
            "pytest_advrobust.register_profile(name, **settings) in a conftest.py)"
        )
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
    if value > MAX_STEPS:
        raise ValueError(
            f"must be ≤ {MAX_STEPS}: each step keeps a point of every image's probability curves (images × "
            "steps in memory), and attacks converge long before (AutoAttack runs 100)"
        )
    return value


def parse_step_size(raw: Any, base: Path | None = None) -> float | None:
    if raw is None or str(raw).strip().lower() in ("", "auto"):
        return None
    value = _number(raw)
    if value <= 0:
        raise ValueError("must be > 0 (in [0,1] pixel units), or 'auto'")
    if value > MAX_BUDGET:
        raise ValueError(f"must be ≤ {MAX_BUDGET:g} (in the norm's [0,1] pixel units), or 'auto'")
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


def names_folder(raw: str) -> bool:
    """``raw`` ends in a path separator: the user named a folder (``out/``), where a file is meant; a
    :class:`~pathlib.Path` would drop the separator and write a file called ``out``."""
    text = raw.strip()
    return text.endswith(("/", os.sep)) and text.strip("/" + os.sep) != ""


def file_path(example: str) -> Callable[[Any, Path | None], Path | None]:
    """A parser for a file to write (a report): a path as :func:`parse_optional_path` takes it, refused
    when it ends in a separator, naming ``example`` as a file to put in that folder instead."""

    def parse(raw: Any, base: Path | None = None) -> Path | None:
        if not _unset(raw) and names_folder(str(raw)):
            raise ValueError(f"ends in '/', so it names a folder; name a file in it, e.g. {str(raw).strip()}{example}")
        return parse_optional_path(raw, base)

    return parse


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
    prefix = next((p for p in MODEL_PREFIXES if spec.startswith(p)), "")
    if prefix:
        rest = spec[len(prefix) :].strip()
        if not rest:
            raise ValueError(f"must name a folder after {prefix!r} (or, for timm, <name>@<weights file>)")
        if "@" in rest:  # timm:<architecture>@<weights file>
            arch, _, file = rest.partition("@")
            return f"{prefix}{arch.strip()}@{_path(file, base)}"
        return f"{prefix}{_path(rest, base)}"
    if "@" in spec:
        arch, _, file = spec.partition("@")
        return f"{arch}@{_path(file, base)}"
    looks_like_file = (
        spec.endswith(MODEL_FILE_SUFFIXES) or "/" in spec or (base is not None and (base / spec).is_dir())
    )  # a bare name that is a model folder beside the ini file or test
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
    if max(sizes) > MAX_IMAGE_SIDE:
        raise ValueError(f"must be at most {MAX_IMAGE_SIDE} pixels a side (a classifier's input, not a photo's size)")
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


def parse_budget(raw: Any, base: Path | None = None) -> float | None:
    """A budget > 0 (as :func:`parse_epsilon`), or ``auto`` (None: the norm's own default)."""
    if raw is None or str(raw).strip().lower() in ("", "auto"):
        return None
    value = parse_epsilon(raw)
    if value == 0:
        raise ValueError("must be > 0, or 'auto'")
    return value


def parse_tolerance(raw: Any, base: Path | None = None) -> tuple[float, float] | None:
    """``0.0005`` (absolute, [0,1] pixel units), ``10%`` (relative), or both: ``0.0005,10%``; ``auto``
    (None): the norm's own default."""
    if raw is None or (isinstance(raw, str) and raw.strip().lower() in ("", "auto")):
        return None
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
            if absolute > MAX_BUDGET:
                raise ValueError(f"an absolute tolerance must be ≤ {MAX_BUDGET:g} (in the norm's [0,1] pixel units)")
    return absolute, relative


def _fraction(raw: Any) -> tuple[float, bool]:
    """A fraction written as one (``0.6``) or as a percentage (``60%``), and whether it was a percentage."""
    text = raw.strip() if isinstance(raw, str) else raw
    percentage = isinstance(text, str) and text.endswith("%")
    try:
        value = _number(text[:-1] if percentage else text)
    except ValueError:
        raise ValueError("must be a fraction (0.6) or a percentage (60%)") from None
    return (value / 100, True) if percentage else (value, False)


def _percentage_hint(value: float, percentage: bool, *fixes: str) -> str:
    """`` (did you mean 0.6, or 60%?)`` for a whole number from 2 to 100 written without its ``%``."""
    if percentage or not (value.is_integer() and 2 <= value <= 100):
        return ""
    return " (did you mean " + ", or ".join(fix.format(fraction=value / 100, value=value) for fix in fixes) + "?)"


def parse_confidence(raw: Any, base: Path | None = None) -> float:
    """The confidence level of every interval and test: strictly between 0 and 1 (``0.95`` or ``95%``)."""
    value, percentage = _fraction(raw)
    if not 0 < value < 1:
        hint = _percentage_hint(value, percentage, "{fraction:g}") if value >= 50 else ""
        raise ValueError(f"must be strictly between 0 and 1, as 0.95 or 95%{hint}")
    return value


def parse_min_accuracy(raw: Any, base: Path | None = None) -> float | None:
    """A robust accuracy a test must reach: a fraction in [0, 1] (``0.6`` or ``60%``), or none."""
    if _unset(raw):
        return None
    value, percentage = _fraction(raw)
    if not 0 <= value <= 1:
        hint = _percentage_hint(value, percentage, "{fraction:g}", "{value:g}%")
        raise ValueError(f"must be a fraction between 0 and 1, as 0.6 or 60%{hint}")
    return value


def parse_baseline_rule(raw: Any, base: Path | None = None) -> str:
    value = str(raw).strip().lower()
    if value not in BASELINE_RULES:
        close = difflib.get_close_matches(value, BASELINE_RULES, n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise ValueError(f"must be one of {', '.join(BASELINE_RULES)} (got {raw!r}{hint})")
    return value


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
    if value > MAX_SHARDS:
        raise ValueError(f"must be ≤ {MAX_SHARDS} (each shard is a test case of its own)")
    return value


def parse_job_shard(raw: Any, base: Path | None = None) -> JobShard | None:
    """``K/N`` (job K of N, 1 ≤ K ≤ N), or none."""
    if _unset(raw):
        return None
    if isinstance(raw, JobShard):
        return raw
    index, slash, count = str(raw).strip().partition("/")
    if not slash or not re.fullmatch(r"[0-9]{1,12}", index.strip()) or not re.fullmatch(r"[0-9]{1,12}", count.strip()):
        raise ValueError("must be K/N, this job's number K of N jobs (e.g. 2/4), or none")
    shard = JobShard(int(index), int(count))
    if shard.count > MAX_SHARDS:
        raise ValueError(f"must be K/N with N ≤ {MAX_SHARDS} (each job runs one shard of every test)")
    if not 1 <= shard.index <= shard.count:
        raise ValueError(f"must be K/N with 1 ≤ K ≤ N (job {shard.index} of {shard.count} does not exist)")
    return shard


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


def parse_batch_size(raw: Any, base: Path | None = None) -> BatchSize:
    if raw is None or str(raw).strip().lower() in ("", "all", "none"):
        return None
    if str(raw).strip().lower() == "auto":
        return "auto"
    try:
        value = _integer(raw)
    except ValueError:
        raise ValueError("must be a whole number ≥ 1, 'auto' or 'all'") from None
    if value < 1:
        raise ValueError("must be ≥ 1, 'auto' or 'all'")
    return value
