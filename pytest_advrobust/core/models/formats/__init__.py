"""Models as their libraries save them, each with the preprocessing its own metadata states.

Specs (see :func:`load_shipped`):
    ``timm:<folder>``            a folder written by ``timm.models.save_for_hf``
    ``timm:<name>@<weights>``    a timm architecture with a ``.safetensors`` / ``.pth`` / ``.bin`` state dict
    ``hf:<folder>``              a Hugging Face ``save_pretrained`` folder
    ``<folder>``                 either of those folders, told apart by its ``config.json``
    ``<file>.onnx``              an ONNX export, converted with onnx2torch
    ``<file>.pt2``               a program saved by ``torch.export.save``

The libraries (timm, transformers, onnx / onnx2torch / onnxruntime, safetensors) are imported only when a
spec needs them; a missing one is a :class:`~pytest_advrobust.core.errors.ModelLoadError` naming the extra
to install. Every file is sniffed first (:func:`sniff_file`): Git LFS pointers, HTML pages, empty and
truncated files get a one-line error naming the file and the fix.
"""

from __future__ import annotations

from pathlib import Path

from ...errors import ModelLoadError
from .base import EXTRAS, ShippedKind, ShippedModel, normalization_hint
from .export_models import load_exported
from .files import check_state_dict, load_state_dict_file, load_weights, read_json, sniff_file
from .hf_models import hf_preprocessing, load_hf_folder
from .onnx_models import RELATIVE_TOLERANCE, OnnxCheck, check_onnx_conversion, load_onnx
from .timm_models import is_timm_config, load_timm_folder, load_timm_weights

__all__ = [
    "EXTRAS",
    "RELATIVE_TOLERANCE",
    "OnnxCheck",
    "ShippedKind",
    "ShippedModel",
    "check_onnx_conversion",
    "check_state_dict",
    "hf_preprocessing",
    "load_exported",
    "load_hf_folder",
    "load_onnx",
    "load_shipped",
    "load_state_dict_file",
    "load_timm_folder",
    "load_timm_weights",
    "load_weights",
    "normalization_hint",
    "shipped_kind",
    "sniff_file",
]

PREFIXES: dict[str, ShippedKind] = {"timm:": "timm", "hf:": "hf"}


def _folder_kind(folder: Path) -> ShippedKind:
    config = folder / "config.json"
    if not config.exists():
        raise ModelLoadError(
            f"model folder {folder} has no config.json; a timm folder (timm.models.save_for_hf) or a Hugging Face "
            "folder (save_pretrained) has one"
        )
    return "timm" if is_timm_config(read_json(config)) else "hf"


def shipped_kind(spec: str) -> ShippedKind | None:
    """The format a model spec names, or None for the specs of :mod:`pytest_advrobust.core.models.loading`
    (``package.module:factory``, TorchScript, ``<torchvision arch>@<file>``). Reads a folder's
    ``config.json`` to tell timm from Hugging Face; raises :class:`ModelLoadError` for a folder without
    one or with an unreadable one."""
    spec = spec.strip()
    for prefix, kind in PREFIXES.items():
        if spec.startswith(prefix):
            return kind
    if spec.lower().endswith(".onnx"):
        return "onnx"
    if spec.lower().endswith(".pt2"):
        return "export"
    if Path(spec).is_dir():
        return _folder_kind(Path(spec))
    return None


def load_shipped(spec: str, *, allow_pickle: bool = False) -> ShippedModel:
    """Load the model a spec names (see the module docstring), on CPU, in eval mode, with its
    preprocessing. Raises :class:`ModelLoadError` when the spec names no such format or the files cannot
    be loaded. ``allow_pickle``: an exported program may unpickle (only for files you trust)."""
    spec = spec.strip()
    kind = shipped_kind(spec)
    rest = next((spec[len(p) :].strip() for p in PREFIXES if spec.startswith(p)), spec)
    if kind == "onnx":
        return load_onnx(Path(rest))
    if kind == "export":
        return load_exported(Path(rest), allow_pickle=allow_pickle)
    if kind == "timm":
        if Path(rest).is_dir():
            return load_timm_folder(Path(rest))
        name, at, weights = rest.partition("@")
        if not at:
            raise ModelLoadError(
                f"model spec {spec!r}: {rest!r} is not a folder; use timm:<folder saved by save_for_hf> or "
                "timm:<architecture>@<weights file> (timm never downloads weights here)"
            )
        return load_timm_weights(name.strip(), Path(weights.strip()))
    if kind == "hf":
        folder = Path(rest)
        if not folder.is_dir():
            raise ModelLoadError(f"model spec {spec!r}: {folder} is not a folder (what save_pretrained writes)")
        return load_hf_folder(folder)
    raise ModelLoadError(
        f"model spec {spec!r} names no shipped format (timm:<folder>, timm:<name>@<weights>, hf:<folder>, a model "
        "folder, a .onnx file or a .pt2 program)"
    )
