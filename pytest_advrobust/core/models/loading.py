"""Loading a model from a spec string, without unpickling untrusted data by default.

Specs:

- ``package.module:factory``: import the module; call ``factory()`` (or take it, if it is a module).
- ``path/to/model.pt``: a TorchScript file (``torch.jit.save``); a full pickled module only with
  ``allow_pickle=True``.
- ``resnet18@weights.pth`` or ``resnet18@weights.safetensors``: a torchvision architecture with a state
  dict, loaded with ``torch.load(weights_only=True)`` or safetensors (which never unpickles).
- ``timm:<folder>``, ``timm:<name>@<weights>``, ``hf:<folder>``, a model folder, ``<file>.onnx``: a model
  as its library saved it, with its own preprocessing (:mod:`pytest_advrobust.core.models.formats`).

Every file is sniffed before it is read: a Git LFS pointer, an HTML page saved under a model's name, an
empty or truncated file is a one-line error naming the file and the fix.
"""

from __future__ import annotations

import importlib
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ModelLoadError, UnsafeModelFileError
from .formats import check_state_dict, load_shipped, load_state_dict_file, shipped_kind, sniff_file
from .formats.files import torch_load_weights_only

PICKLE_RISK = (
    "Unpickling a file can run arbitrary code, so pytest-advrobust loads model files with "
    "torch.load(weights_only=True). If you trust this file, opt in with --adv-allow-pickle "
    "(ini adv_allow_pickle, marker allow_pickle=True, or load_model(..., allow_pickle=True)); better, "
    "save a state dict (torch.save(model.state_dict())) or TorchScript (torch.jit.save) instead"
)


def load_model(spec: str, *, allow_pickle: bool = False) -> Any:
    """Load the model a spec string names (see the module docstring); the caller moves it to a device.

    A model in a library's format comes without its preprocessing here: :func:`load_shipped` returns
    both, and the plugin and :func:`pytest_advrobust.attack` use it."""
    spec = spec.strip()
    if shipped_kind(spec) is not None:
        return load_shipped(spec, allow_pickle=allow_pickle).module
    if "@" in spec:
        arch, _, file = spec.partition("@")
        return _torchvision_with_state_dict(arch.strip(), Path(file.strip()), allow_pickle)
    path = Path(spec)
    if path.exists():
        return _model_file(path, allow_pickle)
    if ":" in spec and not path.suffix.startswith((".pt", ".pth")):
        return _factory(spec)
    if path.suffix:
        return _model_file(path, allow_pickle)
    raise ModelLoadError(
        f"model spec {spec!r} is neither 'package.module:factory', an existing model file, nor "
        "'<torchvision arch>@<state-dict file>'"
    )


def _factory(spec: str) -> Any:
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ModelLoadError(
            f"model spec {spec!r}: cannot import module {module_name!r} ({exc}); is it installed, or is "
            "its folder on sys.path (pytest's rootdir/conftest folders are)?"
        ) from exc
    target: Any = module
    for part in attr.split("."):
        if not hasattr(target, part):
            raise ModelLoadError(f"model spec {spec!r}: module {module_name!r} has no attribute {attr!r}")
        target = getattr(target, part)
    model = target if isinstance(target, nn.Module) else target() if callable(target) else target
    if not callable(model):
        raise ModelLoadError(
            f"model spec {spec!r} gave {type(model).__name__}, which is not a model (an nn.Module or a "
            "callable returning logits)"
        )
    return model


def _is_torchscript(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.split("/", 2)[1:2] == ["code"] for name in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def _safe_load(path: Path, allow_pickle: bool) -> Any:
    if not path.is_file():
        raise ModelLoadError(f"model file {path} does not exist")
    try:
        return torch_load_weights_only(path, PICKLE_RISK, label="model file ")
    except UnsafeModelFileError:
        if not allow_pickle:
            raise
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # a trusted pickle that still fails: say which file
        raise ModelLoadError(f"model file {path} could not be unpickled: {exc}") from exc


def _model_file(path: Path, allow_pickle: bool) -> Any:
    if not path.is_file():
        raise ModelLoadError(f"model file {path} does not exist")
    sniff_file(path)
    if path.suffix == ".safetensors":
        raise ModelLoadError(
            f"model file {path} holds weights only (safetensors), which need an architecture: use "
            f"'<torchvision arch>@{path}' or 'timm:<name>@{path}', or the folder saved with it"
        )
    if _is_torchscript(path):
        try:
            return torch.jit.load(str(path), map_location="cpu")  # type: ignore[no-untyped-call]
        except RuntimeError as exc:
            raise ModelLoadError(f"model file {path} looks like TorchScript but fails to load: {exc}") from None
    loaded = _safe_load(path, allow_pickle)
    if isinstance(loaded, nn.Module):
        return loaded
    if isinstance(loaded, dict):
        raise ModelLoadError(
            f"model file {path} holds a state dict (weights only), which needs an architecture: use "
            f"'<arch>@{path}' with a torchvision architecture, or 'package.module:factory' and load the "
            "weights in the factory"
        )
    raise ModelLoadError(f"model file {path} holds a {type(loaded).__name__}, not a model")


def _state_dict(loaded: Any, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(loaded, nn.Module):
        return loaded.state_dict()
    if isinstance(loaded, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(loaded.get(key), dict):
                loaded = loaded[key]
                break
        if all(isinstance(v, torch.Tensor) for v in loaded.values()):
            return {k.removeprefix("module."): v for k, v in loaded.items()}
    raise ModelLoadError(f"model file {path} does not hold a state dict (name → tensor)")


def _torchvision_with_state_dict(arch: str, path: Path, allow_pickle: bool) -> nn.Module:
    import torchvision

    try:
        builder = torchvision.models.get_model_builder(arch)
    except ValueError:
        import difflib

        names = torchvision.models.list_models()
        close = difflib.get_close_matches(arch, names, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ModelLoadError(f"unknown torchvision architecture {arch!r}{hint}") from None
    if path.suffix == ".safetensors":
        state = load_state_dict_file(path)  # sniffed there
    else:
        if path.is_file():
            sniff_file(path)
        state = _state_dict(_safe_load(path, allow_pickle), path)
    model: nn.Module = builder(weights=None)
    try:
        model.load_state_dict(state)
        return model
    except RuntimeError as first_error:
        # A fine-tuned head: rebuild with the class count of the file's last 2-D weight.
        heads = [v for k, v in state.items() if k.endswith("weight") and v.dim() == 2]
        if not heads:
            raise ModelLoadError(f"{path} does not match {arch}: {first_error}") from None
        model = builder(weights=None, num_classes=heads[-1].shape[0])
        check_state_dict(model, state, path, arch)
        model.load_state_dict(state)
        return model
