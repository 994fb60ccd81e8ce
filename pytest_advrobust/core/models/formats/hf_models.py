"""Hugging Face image classifiers: a folder written by ``save_pretrained`` (``config.json``, weights,
``preprocessor_config.json``), loaded offline with ``AutoModelForImageClassification``. Preprocessing
comes from the image processor the folder configures, read through ``AutoImageProcessor`` so that the
processor class's defaults fill the keys the file leaves out."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ...errors import ModelLoadError
from ...settings.values import MAX_IMAGE_SIDE
from ..preprocessing import Interpolation, Preprocessing, ResizeMode
from .base import ShippedModel, import_extra, offline
from .files import SHOWN_KEYS, check_config_size, read_json, sniff_file
from .timm_models import is_timm_config

PROCESSOR_FILE = "preprocessor_config.json"
RESAMPLE: dict[int, Interpolation] = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}
"""PIL resampling codes, as ``resample`` stores them."""
PLACEHOLDER_LABEL = re.compile(r"LABEL_\d+")
CONVNEXT_MODULE = "transformers.models.convnext."
"""Where transformers' ConvNeXt processors live (each backend's class; "Fast" ones in transformers 4): their
``crop_pct`` resizes the shorter side to ``int(shortest_edge / crop_pct)``."""
CONVNEXT_WARP_EDGE = 384
"""At this shortest_edge and above, ConvNeXt processors warp to a square instead of cropping."""
UNSUPPORTED_STEPS = ("do_pad", "do_flip_channel_order", "rescale_offset")
"""Processor flags for steps this pipeline does not reproduce; a processor with one set is refused."""
UNSUPPORTED_SIZES = ("longest_edge", "max_height", "max_width", "min_pixels", "max_pixels")


ATTENTION = (None, "eager", "sdpa", "flash_attention_2", "flash_attention_3", "flex_attention")
"""The attention implementations a folder may name: transformers' own. Anything else (``<org>/<repo>``,
a kernel on the Hub) makes transformers ask the Hub, then download and import code."""
SIZE_KEYS = ("height", "width", "shortest_edge", "longest_edge", "max_height", "max_width")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _side(value: Any) -> bool:
    """A size in pixels: a whole number from 1 to :data:`~pytest_advrobust.core.settings.values.MAX_IMAGE_SIDE`."""
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_IMAGE_SIDE


def check_config(config: Mapping[str, Any], where: Path) -> None:
    """A :class:`ModelLoadError` naming the key and the file for a ``config.json`` that would make
    transformers reach the network or run the folder's code (``auto_map``, an attention implementation
    from the Hub), or that holds a value of another type than transformers writes."""
    if "auto_map" in config:
        raise ModelLoadError(
            f"{where} names its own model code (auto_map), and pytest-advrobust never runs code "
            "from a model folder: load it in a package.module:factory with trust_remote_code=True if you trust it"
        )
    for key in ("attn_implementation", "_attn_implementation"):
        if key in config and config[key] not in ATTENTION:
            raise ModelLoadError(
                f"{where}: {key}={str(config[key])[:60]!r} is not one of transformers' own attention implementations "
                f"({', '.join(str(name) for name in ATTENTION[1:])}): a kernel from the Hugging Face Hub would be "
                "fetched and run, and pytest-advrobust loads model folders offline, running none of their code; "
                "remove the key"
            )
    channels = config.get("num_channels", 3)
    if not (isinstance(channels, int) and not isinstance(channels, bool) and 1 <= channels <= 4):
        raise ModelLoadError(f"{where}: num_channels must be 1 to 4, not {str(channels)[:40]!r}")
    size = config.get("image_size")
    if size is not None and not isinstance(size, (list, tuple)) and not _side(size):
        raise ModelLoadError(f"{where}: image_size must be a side of at most {MAX_IMAGE_SIDE}, not {str(size)[:40]!r}")
    if not isinstance(config.get("id2label") or {}, dict):
        raise ModelLoadError(f"{where}: id2label must be an object of class index → name")


def check_processor_file(saved: Mapping[str, Any], where: Path) -> None:
    """A :class:`ModelLoadError` naming the key and the file for a ``preprocessor_config.json`` value of
    another type than transformers writes (``resample`` a PIL code, numbers, sizes up to
    :data:`~pytest_advrobust.core.settings.values.MAX_IMAGE_SIDE`), before transformers reads it."""

    def refuse(key: str, wanted: str) -> None:
        raise ModelLoadError(f"{where}: {key} must be {wanted}, not {str(saved[key])[:40]!r}")

    if saved.get("resample") is not None and saved["resample"] not in RESAMPLE:
        refuse("resample", f"a PIL resampling code ({', '.join(f'{k} {v}' for k, v in RESAMPLE.items())})")
    if saved.get("rescale_factor") is not None and not _number(saved["rescale_factor"]):
        refuse("rescale_factor", "a number (1/255 for 8-bit pixels)")
    for key in ("image_mean", "image_std"):
        value = saved.get(key)
        if value is not None and not (
            _number(value) or (isinstance(value, list) and value and all(map(_number, value)))
        ):
            refuse(key, "a number or a list of numbers, one per channel")
    for key in ("size", "crop_size"):
        value = saved.get(key)
        if value is None:
            continue
        sides = list(value.values()) if isinstance(value, dict) else [value]
        valid = (isinstance(value, dict) and set(value) <= set(SIZE_KEYS)) or isinstance(value, int)
        if not valid or not all(
            isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_IMAGE_SIDE for v in sides
        ):
            refuse(key, f"sizes in pixels (height/width or shortest_edge) of at most {MAX_IMAGE_SIDE}")
    for key, value in saved.items():
        if key.startswith("do_") and value is not None and not isinstance(value, bool):
            refuse(key, "true or false")


def is_hf_config(config: Mapping[str, Any]) -> bool:
    """Whether a ``config.json`` is a transformers model config (it has ``model_type`` or ``architectures``)."""
    return "model_type" in config or "architectures" in config


class LogitsOf(nn.Module):
    """A transformers image classifier as a function from ``pixel_values`` (N×C×H×W) to its ``.logits``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.model(pixel_values=pixel_values).logits
        return logits


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _size_field(size: Any, key: str) -> int | None:
    """One entry of a processor's ``size`` / ``crop_size`` (a dict, or a ``SizeDict`` in transformers 5)."""
    if size is None:
        return None
    value = size.get(key) if isinstance(size, Mapping) else getattr(size, key, None)
    return int(value) if value is not None else None


def _hw(size: Any) -> tuple[int, int] | None:
    height, width = _size_field(size, "height"), _size_field(size, "width")
    return (height, width) if height is not None and width is not None else None


def _mismatch(entry: Any) -> str:
    """One of transformers' ``mismatched_keys``: ``(key, file shape, model shape)`` (or just the key)."""
    if isinstance(entry, tuple) and len(entry) == 3:
        return f"{entry[0]} {tuple(entry[1])} vs {tuple(entry[2])}"
    return str(entry[0] if isinstance(entry, tuple) else entry)


def _model(transformers: Any, folder: Path, config: Mapping[str, Any]) -> nn.Module:
    for path in sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")):
        sniff_file(path)
    weights = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))  # as transformers prefers them
    check_config_size(config, weights, str(folder / "config.json"))  # before transformers builds the model
    try:
        # Mismatched sizes are loaded at random here only to be reported below, key by key.
        model, info = transformers.AutoModelForImageClassification.from_pretrained(
            str(folder),
            local_files_only=True,
            trust_remote_code=False,
            output_loading_info=True,
            ignore_mismatched_sizes=True,
        )
    except Exception as exc:  # transformers raises OSError, ValueError, KeyError... for unloadable folders
        raise ModelLoadError(f"transformers cannot load the image classifier in {folder}: {_first_line(exc)}") from None
    problems = [
        f"{len(keys)} {kind} ({', '.join(keys[:SHOWN_KEYS])}{', …' if len(keys) > SHOWN_KEYS else ''})"
        for kind, keys in (
            ("missing keys", sorted(map(str, info.get("missing_keys") or []))),
            ("shape mismatches, file vs config", sorted(map(_mismatch, info.get("mismatched_keys") or []))),
        )
        if keys
    ]
    if problems:  # transformers would initialize these at random and carry on
        raise ModelLoadError(
            f"the weights in {folder} do not match its config.json: {'; '.join(problems)}; save the model and its "
            "config together (save_pretrained)"
        )
    assert isinstance(model, nn.Module)
    return model.eval()


def _class_names(config: Any, notes: list[str]) -> tuple[str, ...] | None:
    """``id2label`` as a tuple by logit index, unless it holds transformers' placeholders ``LABEL_i``."""
    id2label = {int(k): str(v) for k, v in (getattr(config, "id2label", None) or {}).items()}
    if not id2label:
        return None
    if all(PLACEHOLDER_LABEL.fullmatch(name) for name in id2label.values()):
        notes.append("config.json id2label holds only placeholders (LABEL_0, …): no class names")
        return None
    if sorted(id2label) != list(range(len(id2label))):
        notes.append("config.json id2label does not number the classes 0…K-1: class names not used")
        return None
    return tuple(id2label[i] for i in range(len(id2label)))


def _per_channel(values: Any, channels: int, name: str, folder: Path) -> tuple[float, ...]:
    flat = (float(values),) if isinstance(values, (int, float)) else tuple(float(v) for v in values)
    if len(flat) == 1:
        flat = flat * channels
    if len(flat) != channels:
        raise ModelLoadError(f"{folder / PROCESSOR_FILE}: {name} has {len(flat)} values for a {channels}-channel model")
    return flat


def _resize_step(
    processor: Any, folder: Path, convnext: bool
) -> tuple[ResizeMode, tuple[int, int] | None, tuple[int, int] | None]:
    """(resize mode, resize_size, input_size) of the processor's resize and centre-crop steps."""
    where = folder / PROCESSOR_FILE
    size = getattr(processor, "size", None)
    crop = _hw(getattr(processor, "crop_size", None)) if getattr(processor, "do_center_crop", False) else None
    if not getattr(processor, "do_resize", True):
        return "none", None, crop
    if any(_size_field(size, key) is not None for key in UNSUPPORTED_SIZES):
        raise ModelLoadError(
            f"{where}: size={dict(size) if isinstance(size, Mapping) else size} resizes to a size bound "
            "(longest_edge / max_*), which gives each image its own size; pytest-advrobust needs one input size: "
            "load the model in a package.module:factory and set input_size, mean and std"
        )
    exact, edge = _hw(size), _size_field(size, "shortest_edge")
    if exact is not None:
        return "exact", exact, crop or exact
    if edge is None:
        raise ModelLoadError(f"{where}: size={size} has neither height/width nor shortest_edge")
    if convnext:
        if crop is not None:
            raise ModelLoadError(f"{where}: a ConvNeXt processor with do_center_crop crops twice, which is unsupported")
        if edge >= CONVNEXT_WARP_EDGE:
            return "exact", (edge, edge), (edge, edge)
        scaled = int(edge / float(processor.crop_pct))
        return "shorter-side", (scaled, scaled), (edge, edge)
    if crop is None:
        raise ModelLoadError(
            f"{where}: size={{'shortest_edge': {edge}}} without do_center_crop keeps each image's aspect ratio, so "
            'images differ in size; pytest-advrobust batches images of one size: add "do_center_crop": true '
            "and a crop_size to the file"
        )
    return "shorter-side", (edge, edge), crop


def hf_preprocessing(
    processor: Any, saved: Mapping[str, Any], folder: Path, channels: int, class_names: tuple[str, ...] | None
) -> Preprocessing:
    """The :class:`Preprocessing` of a transformers image processor (its attributes, i.e. the file's values
    over the class defaults); ``saved`` is the file's JSON, which credits each value to the file or to the
    processor class's defaults. Raises :class:`ModelLoadError` for steps it does not reproduce (padding,
    channel flips, an offset rescale, a rescale other than 1/255, crop_pct outside ConvNeXt processors)."""
    where = folder / PROCESSOR_FILE
    for flag in UNSUPPORTED_STEPS:
        if getattr(processor, flag, None):
            raise ModelLoadError(
                f"{where}: {flag}=true is a preprocessing step pytest-advrobust does not reproduce; load the model "
                "in a package.module:factory that applies it, and set input_size, mean and std"
            )
    convnext = any(cls.__module__.startswith(CONVNEXT_MODULE) for cls in type(processor).__mro__)
    if getattr(processor, "crop_pct", None) is not None and not convnext:
        raise ModelLoadError(
            f"{where}: crop_pct in a {type(processor).__name__} has its own resize rule, which pytest-advrobust "
            "does not reproduce; load the model in a package.module:factory and set input_size, mean and std"
        )
    rescale = float(processor.rescale_factor) if getattr(processor, "do_rescale", True) else 1.0
    if not math.isclose(rescale, 1 / 255, rel_tol=1e-6):
        raise ModelLoadError(
            f"{where}: do_rescale={getattr(processor, 'do_rescale', True)}, rescale_factor={rescale} maps 8-bit "
            "pixels to another range than [0,1] (1/255); pytest-advrobust attacks [0,1] pixels: load the model in a "
            "package.module:factory that rescales, and set mean and std"
        )
    resize, resize_size, input_size = _resize_step(processor, folder, convnext)
    resample = getattr(processor, "resample", None)
    interpolation = RESAMPLE.get(int(resample), "bilinear") if resample is not None else "bilinear"
    if getattr(processor, "do_normalize", True):
        mean = _per_channel(processor.image_mean, channels, "image_mean", folder)
        std = _per_channel(processor.image_std, channels, "image_std", folder)
    else:
        mean, std = (0.0,) * channels, (1.0,) * channels
    default = f"{type(processor).__name__} default"

    def origin(*keys: str) -> str:
        return PROCESSOR_FILE if any(key in saved for key in keys) else default

    origins = {
        "mean": origin("image_mean", "do_normalize"),
        "std": origin("image_std", "do_normalize"),
        "input_size": origin("crop_size", "size"),
        "resize": origin("size", "do_resize"),
        "resize_size": origin("size", "crop_pct"),
        "interpolation": origin("resample"),
        "channels": "config.json num_channels",
    }
    if input_size is None:
        del origins["input_size"]
    if class_names is not None:
        origins["class_names"] = "config.json id2label"
    return Preprocessing(
        mean=mean,
        std=std,
        input_size=input_size,
        resize=resize,
        resize_size=resize_size,
        interpolation=interpolation,
        crop_convention="transformers",
        channels=channels,
        class_names=class_names,
        origins=origins,
    )


def load_hf_folder(folder: Path) -> ShippedModel:
    """A transformers image classifier from a ``save_pretrained`` folder, offline
    (``local_files_only=True``, never running code from the folder), in eval mode, wrapped so that it
    returns the ``.logits`` tensor. Preprocessing comes from ``preprocessor_config.json``; without one,
    only the class names and ``config.json``'s ``image_size`` are known (mean/std are None, noted)."""
    transformers = import_extra("transformers", extra="hf", purpose=f"loading the Hugging Face model in {folder}")
    raw_config = read_json(folder / "config.json")
    if is_timm_config(raw_config):
        raise ModelLoadError(
            f"{folder} holds a timm model, not a Hugging Face one: use timm:{folder} (or the folder alone)"
        )
    if not is_hf_config(raw_config):
        raise ModelLoadError(
            f"{folder / 'config.json'} is neither a Hugging Face config (model_type, architectures) nor a timm one "
            "(architecture, pretrained_cfg)"
        )
    check_config(raw_config, folder / "config.json")
    saved = read_json(folder / PROCESSOR_FILE) if (folder / PROCESSOR_FILE).exists() else None
    if saved is not None:
        check_processor_file(saved, folder / PROCESSOR_FILE)
    with offline():
        return _load_hf_folder(transformers, folder, raw_config, saved)


def _load_hf_folder(
    transformers: Any, folder: Path, raw_config: dict[str, Any], saved: dict[str, Any] | None
) -> ShippedModel:
    model = _model(transformers, folder, raw_config)
    config = model.config
    notes: list[str] = []
    class_names = _class_names(config, notes)
    channels = int(getattr(config, "num_channels", 3))
    if saved is not None:
        try:
            processor = transformers.AutoImageProcessor.from_pretrained(
                str(folder), local_files_only=True, trust_remote_code=False
            )
        except Exception as exc:  # as above: many types for one failure
            raise ModelLoadError(f"transformers cannot read {folder / PROCESSOR_FILE}: {_first_line(exc)}") from None
        preprocessing = hf_preprocessing(processor, saved, folder, channels, class_names)
    else:
        image_size = getattr(config, "image_size", None)
        side = int(image_size) if isinstance(image_size, int) else None
        notes.append(
            f"{folder} has no {PROCESSOR_FILE}: mean, std and the resize are unknown (set them)"
            + (f"; input_size {side}x{side} from config.json image_size" if side else "")
        )
        origins = {"channels": "config.json num_channels"}
        if side:
            origins["input_size"] = "config.json image_size"
        if class_names is not None:
            origins["class_names"] = "config.json id2label"
        preprocessing = Preprocessing(
            input_size=(side, side) if side else None,
            crop_convention="transformers",
            channels=channels,
            class_names=class_names,
            origins=origins,
        )
    return ShippedModel(LogitsOf(model).eval(), preprocessing, "hf", folder, tuple(notes))
