"""timm models: a folder saved by ``timm.models.save_for_hf`` (or ``push_to_hub``), or an architecture
name with a weights file. Preprocessing comes from the model's ``pretrained_cfg`` through timm's own
``resolve_model_data_config``, so it is what ``timm.data.create_transform`` would build."""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any, cast

from torch import nn

from ...errors import ModelLoadError
from ..preprocessing import INTERPOLATIONS, Interpolation, Preprocessing, ResizeMode
from .base import ShippedModel, import_extra
from .files import check_state_dict, load_state_dict_file, load_weights, read_json

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


def _create(timm: ModuleType, architecture: str, **kwargs: Any) -> nn.Module:
    try:
        model: nn.Module = timm.create_model(architecture, pretrained=False, **kwargs)
    except RuntimeError as exc:
        if "Unknown model" not in str(exc):
            raise ModelLoadError(f"timm cannot build {architecture!r}: {exc}") from None
        close = difflib.get_close_matches(architecture, timm.list_models(), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else " (is timm recent enough? pip install -U timm)"
        raise ModelLoadError(f"unknown timm architecture {architecture!r}{hint}") from None
    except TypeError as exc:
        raise ModelLoadError(f"timm cannot build {architecture!r} with {kwargs}: {exc}") from None
    return model.eval()


def _folder_config(config: dict[str, Any]) -> tuple[dict[str, Any], Any, str]:
    """(pretrained_cfg, label names, where they came from) of a timm config.json, either layout."""
    if "pretrained_cfg" in config:
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
    timm = _timm(f"loading the timm model in {folder}")
    config = read_json(folder / "config.json")
    if not is_timm_config(config):
        raise ModelLoadError(f"{folder / 'config.json'} is not a timm config (it has no 'architecture')")
    pretrained_cfg, labels, label_source = _folder_config(config)
    model_args = dict(config.get("model_args") or {})
    num_classes = config.get("num_classes", pretrained_cfg.get("num_classes"))
    if num_classes is not None:
        model_args.setdefault("num_classes", int(num_classes))
    if pretrained_cfg.get("input_size"):
        model_args.setdefault("in_chans", int(pretrained_cfg["input_size"][0]))
    architecture = str(config["architecture"])
    model = _create(timm, architecture, **model_args)
    weights = next((folder / name for name in WEIGHT_FILES if (folder / name).exists()), None)
    if weights is None:
        raise ModelLoadError(
            f"timm folder {folder} has no weights: expected {' or '.join(WEIGHT_FILES)} beside config.json"
        )
    load_weights(model, weights, architecture)
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
    timm = _timm(f"loading timm:{architecture}@{weights}")
    state = load_state_dict_file(weights)
    model = _create(timm, architecture)
    adapted = _head_and_stem(model, state)
    if adapted:
        model = _create(timm, architecture, **adapted)
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
