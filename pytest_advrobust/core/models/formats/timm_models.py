"""timm models: a folder saved by ``timm.models.save_for_hf`` (or ``push_to_hub``), or an architecture
name with a weights file. Preprocessing comes from the model's ``pretrained_cfg`` through timm's own
``resolve_model_data_config``, so it is what ``timm.data.create_transform`` would build."""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any, cast

from torch import nn

from ...errors import ModelLoadError
from ...settings.values import MAX_IMAGE_SIDE
from ..preprocessing import INTERPOLATIONS, Interpolation, Preprocessing, ResizeMode
from .base import ShippedModel, import_extra, offline
from .files import check_config_size, check_state_dict, load_state_dict_file, read_json

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
"""The weights files of a saved timm folder, in order of preference (safetensors never unpickles)."""
CROP_MODES: dict[str, ResizeMode] = {"center": "shorter-side", "squash": "exact", "border": "longer-side"}
"""timm's ``crop_mode`` → the resize step of ``transforms_imagenet_eval`` (a centre crop follows)."""
CONFIG_SOURCE = "config.json pretrained_cfg"


def _timm(purpose: str) -> ModuleType:
    timm = import_extra("timm", extra="timm", purpose=purpose)
    import_extra("timm.data", extra="timm", purpose=purpose)
    return timm


def is_timm_config(config: Mapping[str, Any]) -> bool:
    """Whether a ``config.json`` is timm's: it names an ``architecture`` (with a ``pretrained_cfg``, or in
    the legacy flat layout), where a Hugging Face one has ``model_type`` / ``architectures``."""
    return "architecture" in config and ("pretrained_cfg" in config or "model_type" not in config)


def _create(timm: ModuleType, architecture: str, source: str = "", **kwargs: Any) -> nn.Module:
    """``timm.create_model(architecture, pretrained=False, **kwargs)``; a failure is one
    :class:`ModelLoadError` (``source``: the file the kwargs came from, named first)."""
    try:
        model: nn.Module = timm.create_model(architecture, pretrained=False, **kwargs)
    except RuntimeError as exc:
        if "Unknown model" not in str(exc):
            raise ModelLoadError(f"timm cannot build {architecture!r}: {exc}") from None
        close = difflib.get_close_matches(architecture, timm.list_models(), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else " (is timm recent enough? pip install -U timm)"
        raise ModelLoadError(f"unknown timm architecture {architecture!r}{hint}") from None
    except Exception as exc:  # a model_args value of the wrong kind: TypeError, KeyError, AssertionError...
        shown = ", ".join(f"{key}={str(value)[:40]}" for key, value in kwargs.items())
        raise ModelLoadError(
            f"{source}: " * bool(source)
            + f"timm cannot build {architecture!r} with {shown}: {type(exc).__name__}: {str(exc)[:200]}"
        ) from None
    return model.eval()


ARCHITECTURE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")
"""A timm architecture name (``resnet18``, ``vit_base_patch16_224.augreg_in21k``): no ``hf-hub:`` or
``local-dir:`` prefix, no ``/``."""


def architecture_name(value: Any, where: str) -> str:
    """``value`` if it is an architecture timm builds itself, else a :class:`ModelLoadError`: ``hf-hub:<org>/
    <name>`` or ``local-dir:<path>`` would make timm read another model's config, from the Hub or elsewhere."""
    if not isinstance(value, str) or not ARCHITECTURE.fullmatch(value):
        raise ModelLoadError(
            f"{where}: architecture {_shown(value)} is not a timm architecture name: a name with ':' or '/' "
            "(hf-hub:<org>/<name>, local-dir:<path>) makes timm read another model's config, from the Hugging "
            "Face Hub or elsewhere, and pytest-advrobust loads only what the folder holds, offline; name one timm "
            "builds itself (timm.list_models())"
        )
    return value


def _shown(value: Any) -> str:
    return repr(value)[:60]


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_config(config: Mapping[str, Any], pretrained_cfg: Mapping[str, Any], where: str) -> None:
    """A :class:`ModelLoadError` naming the key and the file for the first value of a timm ``config.json``
    that is not of the type timm writes (timm would fail on it with a traceback, or allocate without
    bound): ``model_args`` an object, ``num_classes`` a count, label names a list or an index → name object,
    and in ``pretrained_cfg`` an ``input_size`` of [C, H, W] up to the largest input this plugin attacks,
    ``mean``/``std`` numbers, ``crop_pct`` in [0.1, 2]."""

    def refuse(key: str, value: Any, wanted: str) -> None:
        raise ModelLoadError(f"{where}: {key} must be {wanted}, not {_shown(value)}")

    if not isinstance(config.get("model_args") or {}, dict):
        refuse("model_args", config["model_args"], "an object of create_model's keyword arguments")
    for holder in (config, pretrained_cfg):
        count = holder.get("num_classes")
        if count is not None and not (isinstance(count, int) and not isinstance(count, bool) and 0 <= count <= 10**6):
            refuse("num_classes", count, "a whole number of classes")
        for key in ("label_names", "labels"):
            names = holder.get(key)
            if not names:
                continue
            listed = isinstance(names, list) and all(isinstance(name, str) for name in names)
            indexed = isinstance(names, dict) and all(str(k).isdigit() and isinstance(v, str) for k, v in names.items())
            if not (listed or indexed):
                refuse(key, names, "a list of class names, or an object of class index → name")
    size = pretrained_cfg.get("input_size")
    if size is not None:
        whole = (
            isinstance(size, (list, tuple))
            and len(size) == 3
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in size)
        )
        if not whole or not (size[0] <= 4 and max(size[1:]) <= MAX_IMAGE_SIDE):
            refuse("pretrained_cfg.input_size", size, f"[channels, height, width] with sides up to {MAX_IMAGE_SIDE}")
    for key in ("mean", "std"):
        value = pretrained_cfg.get(key)
        if value is None:
            continue
        values: list[Any] = list(value) if isinstance(value, (list, tuple)) else [value]
        if not values or not all(_number(v) for v in values):
            refuse(f"pretrained_cfg.{key}", value, "a number or a list of numbers, one per channel")
        if key == "std" and any(v <= 0 for v in values):
            refuse("pretrained_cfg.std", value, "positive")
    crop = pretrained_cfg.get("crop_pct")
    if crop is not None and not (_number(crop) and 0.1 <= crop <= 2):
        refuse("pretrained_cfg.crop_pct", crop, "a number between 0.1 and 2 (the share of the resized image kept)")
    for key in ("crop_mode", "interpolation"):
        if pretrained_cfg.get(key) is not None and not isinstance(pretrained_cfg[key], str):
            refuse(f"pretrained_cfg.{key}", pretrained_cfg[key], "a string")


def _folder_config(config: dict[str, Any], where: str) -> tuple[dict[str, Any], Any, str]:
    """(pretrained_cfg, label names, where they came from) of a timm config.json, either layout."""
    if "pretrained_cfg" in config:
        if not isinstance(config["pretrained_cfg"], dict):
            raise ModelLoadError(f"{where}: pretrained_cfg must be an object, not {_shown(config['pretrained_cfg'])}")
        pretrained_cfg = dict(config["pretrained_cfg"])
    else:  # legacy flat layout: every field is the pretrained_cfg
        pretrained_cfg = {k: v for k, v in config.items() if k not in ("architecture", "num_features")}
    for key, source in (("label_names", "config.json label_names"), ("labels", "config.json labels (legacy)")):
        for holder in (config, pretrained_cfg):
            if holder.get(key):
                return pretrained_cfg, holder[key], source
    return pretrained_cfg, None, ""


def _class_names(labels: Any, num_classes: int, source: str, notes: list[str]) -> tuple[str, ...] | None:
    """Label names as a tuple indexed by logit, from timm's list or ``{index: name}`` layout."""
    if labels is None:
        return None
    if isinstance(labels, Mapping):
        by_index = {int(k): str(v) for k, v in labels.items()}
        names = tuple(by_index.get(i, "") for i in range(num_classes))
        if "" in names or len(by_index) != num_classes:
            notes.append(f"{source} does not name classes 0…{num_classes - 1} exactly; class names not used")
            return None
        return names
    names = tuple(str(name) for name in labels)
    if len(names) != num_classes:
        notes.append(f"{source} has {len(names)} names for {num_classes} classes; class names not used")
        return None
    return names


def timm_preprocessing(
    data_config: Mapping[str, Any],
    *,
    given: Mapping[str, Any],
    source: str,
    channels: int,
    class_names: tuple[str, ...] | None,
    class_source: str,
    notes: list[str],
) -> Preprocessing:
    """The :class:`Preprocessing` of timm's eval transform for ``data_config`` (what
    ``resolve_model_data_config`` returns: input_size (C, H, W), mean, std, crop_pct, crop_mode,
    interpolation). ``given`` is the pretrained_cfg it was resolved from: keys present there are credited
    to ``source``, others to timm's defaults. ``channels`` is the model's input channel count."""
    _, height, width = (int(v) for v in data_config["input_size"])
    crop_pct = float(data_config.get("crop_pct") or 0.875)  # transforms_imagenet_eval's own fallback
    crop_mode = data_config.get("crop_mode") or "center"
    if crop_mode not in CROP_MODES:
        raise ModelLoadError(f"timm crop_mode {crop_mode!r} ({source}) is not one of {sorted(CROP_MODES)}")
    interpolation = data_config.get("interpolation") or "bicubic"
    if interpolation not in INTERPOLATIONS:
        raise ModelLoadError(
            f"timm interpolation {interpolation!r} ({source}) is not an eval interpolation "
            f"({', '.join(INTERPOLATIONS)})"
        )
    mean = tuple(float(v) for v in data_config["mean"])
    std = tuple(float(v) for v in data_config["std"])
    if len(mean) not in (1, channels):  # timm's own policy (timm.data.resolve_input_data_config)
        notes.append(
            f"the {source} mean/std have {len(mean)} values for a {channels}-channel model: using their average, "
            "as timm does"
        )
        mean, std = (sum(mean) / len(mean),), (sum(std) / len(std),)
    origins = {
        name: source if key in given else "timm default"
        for name, key in (
            ("mean", "mean"),
            ("std", "std"),
            ("input_size", "input_size"),
            ("resize", "crop_mode"),
            ("resize_size", "crop_pct"),
            ("interpolation", "interpolation"),
            ("channels", "input_size"),
        )
    }
    if class_names is not None:
        origins["class_names"] = class_source
    return Preprocessing(
        mean=mean,
        std=std,
        input_size=(height, width),
        resize=CROP_MODES[crop_mode],
        resize_size=(math.floor(height / crop_pct), math.floor(width / crop_pct)),
        interpolation=cast(Interpolation, interpolation),
        crop_convention="torchvision",
        pad_fill=tuple(round(255 * v) for v in mean) if crop_mode == "border" else (0,),
        channels=channels,
        class_names=class_names,
        origins=origins,
    )


def load_timm_folder(folder: Path) -> ShippedModel:
    """A timm model from a folder saved by ``timm.models.save_for_hf``: ``config.json`` (architecture,
    num_classes, model_args, label_names, pretrained_cfg) and ``model.safetensors`` (preferred) or
    ``pytorch_model.bin`` (read with ``torch.load(weights_only=True)``). Built with
    ``timm.create_model(architecture, pretrained=False, ...)``: nothing is downloaded."""
    where = folder / "config.json"
    config = read_json(where)
    if not is_timm_config(config):
        raise ModelLoadError(f"{where} is not a timm config (it has no 'architecture')")
    architecture = architecture_name(config["architecture"], str(where))
    pretrained_cfg, labels, label_source = _folder_config(config, str(where))
    check_config(config, pretrained_cfg, str(where))
    with offline():
        return _load_timm_folder(folder, config, pretrained_cfg, architecture, labels, label_source)


def _load_timm_folder(
    folder: Path,
    config: dict[str, Any],
    pretrained_cfg: dict[str, Any],
    architecture: str,
    labels: Any,
    label_source: str,
) -> ShippedModel:
    timm = _timm(f"loading the timm model in {folder}")
    weights = next((folder / name for name in WEIGHT_FILES if (folder / name).exists()), None)
    if weights is None:
        raise ModelLoadError(
            f"timm folder {folder} has no weights: expected {' or '.join(WEIGHT_FILES)} beside config.json"
        )
    state = load_state_dict_file(weights)  # read once: sized against the config, then loaded
    check_config_size(config, [weights], str(folder / "config.json"), state)
    model_args = dict(config.get("model_args") or {})
    num_classes = config.get("num_classes", pretrained_cfg.get("num_classes"))
    if num_classes is not None:
        model_args.setdefault("num_classes", int(num_classes))
    if pretrained_cfg.get("input_size"):
        model_args.setdefault("in_chans", int(pretrained_cfg["input_size"][0]))
    model = _create(timm, architecture, str(folder / "config.json"), **model_args)
    check_state_dict(model, state, weights, architecture)
    model.load_state_dict(state)
    notes: list[str] = []
    channels = int(model_args.get("in_chans", 3))
    data_config = timm.data.resolve_model_data_config(model, pretrained_cfg=pretrained_cfg)
    preprocessing = timm_preprocessing(
        data_config,
        given=pretrained_cfg,
        source=CONFIG_SOURCE,
        channels=channels,
        class_names=_class_names(labels, int(getattr(model, "num_classes", 0)), label_source, notes),
        class_source=label_source,
        notes=notes,
    )
    return ShippedModel(model, preprocessing, "timm", folder, tuple(notes))


def _head_and_stem(model: nn.Module, state: Mapping[str, Any]) -> dict[str, int]:
    """num_classes / in_chans the weights imply, where they differ from the architecture's defaults."""
    cfg: Mapping[str, Any] = getattr(model, "pretrained_cfg", {})
    found: dict[str, int] = {}
    for kwarg, key, dim, default in (
        ("num_classes", cfg.get("classifier"), 0, getattr(model, "num_classes", None)),
        ("in_chans", cfg.get("first_conv"), 1, getattr(model, "in_chans", 3)),
    ):
        name = key[0] if isinstance(key, (list, tuple)) else key
        tensor = state.get(f"{name}.weight") if name else None
        if tensor is not None and tensor.dim() > dim and tensor.shape[dim] != default:
            found[kwarg] = int(tensor.shape[dim])
    return found


def load_timm_weights(architecture: str, weights: Path) -> ShippedModel:
    """``timm.create_model(architecture, pretrained=False)`` with the state dict in ``weights``
    (``.safetensors``, or ``.pth`` / ``.bin`` read with ``torch.load(weights_only=True)``); num_classes and
    in_chans follow the file's classifier and stem shapes. Preprocessing comes from the architecture's
    default pretrained_cfg in timm (``architecture`` may carry a tag: ``resnet18.a1_in1k``); class names
    are unknown."""
    architecture_name(architecture, f"timm:{architecture}@{weights}")
    with offline():
        return _load_timm_weights(architecture, weights)


def _load_timm_weights(architecture: str, weights: Path) -> ShippedModel:
    timm = _timm(f"loading timm:{architecture}@{weights}")
    state = load_state_dict_file(weights)
    model = _create(timm, architecture)
    adapted = _head_and_stem(model, state)
    if adapted:
        model = _create(timm, architecture, f"timm:{architecture}@{weights}", **adapted)
    check_state_dict(model, state, weights, architecture)
    model.load_state_dict(state)
    notes: list[str] = []
    given = dict(getattr(model, "pretrained_cfg", {}))
    preprocessing = timm_preprocessing(
        timm.data.resolve_model_data_config(model),
        given=given,
        source=f"timm's pretrained_cfg for {architecture}",
        channels=adapted.get("in_chans", 3),
        class_names=None,
        class_source="",
        notes=notes,
    )
    return ShippedModel(model, preprocessing, "timm", weights, tuple(notes))
