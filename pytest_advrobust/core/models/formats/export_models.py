"""Programs saved by ``torch.export.save`` (``.pt2``), what PyTorch ships now that TorchScript is deprecated.

``torch.export.load`` rebuilds the program's graph of ATen operators from the archive's JSON and its
weights from raw tensor bytes; it unpickles only what was saved pickled: tensor subclasses and custom
objects among the weights and constants. Such an archive is refused unless ``allow_pickle`` (pickling can
run arbitrary code); everything else runs only the operators the graph names, which PyTorch itself
implements (a program using a custom operator needs the library that registers it imported first).

A program carries no preprocessing: only its input's shape is read (channels; height and width when they
are fixed). One exported with a fixed batch size takes batches of exactly that size: it is fed padded
batches (:class:`FixedBatch`). One exported in training mode (batch norm over the batch, active dropout)
is refused: export ``model.eval()``. (:class:`~.base.FixedBatch` pads a fixed batch.)
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ...errors import ModelLoadError, UnsafeModelFileError
from ...settings.values import MAX_IMAGE_SIDE
from .base import FixedBatch, ShippedModel, fixed_batch_note, input_shape_preprocessing
from .files import sniff_file

PICKLE_FIX = (
    "it holds pickled objects (tensor subclasses or custom objects among its weights or constants), and "
    "unpickling can run arbitrary code: export a model whose weights are plain tensors, or, for a file you "
    "trust, pass --adv-allow-pickle (allow_pickle=True)"
)


def _archive_payloads(path: Path) -> list[dict[str, Any]]:
    """The weights' and constants' entries of a ``.pt2`` archive, as its configs list them; a
    :class:`ModelLoadError` for a file that is not a ``torch.export.save`` archive."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            if not any(name.endswith("archive_format") for name in names):
                saved = any(name.endswith("/data.pkl") or name == "data.pkl" for name in names)
                what = (
                    "it is a torch.save file (a state dict or a pickled module): a state dict loads with its "
                    "architecture, <architecture>@<file> (resnet18@weights.pt, timm:<name>@<file>), or from a "
                    "factory, package.module:factory; "
                    if saved and not any(name.endswith("constants.pkl") for name in names)
                    else ""
                )
                raise ModelLoadError(
                    f"{path} is not a program saved by torch.export.save (no archive_format in it): {what}export "
                    "with torch.export.export(model.eval(), (x,)) and save with torch.export.save(program, "
                    "'model.pt2'); a TorchScript file (torch.jit.save) is a .pt"
                )
            entries = []
            for name in names:
                if name.endswith(("_weights_config.json", "_constants_config.json")):
                    config = json.loads(archive.read(name))
                    entries += list((config.get("config") or {}).values())
            return entries
    except (zipfile.BadZipFile, OSError, ValueError, RecursionError) as exc:
        raise ModelLoadError(f"{path} is not a program torch.export.load can read ({exc}): export it again") from None


def check_archive(path: Path, allow_pickle: bool) -> None:
    """Refuse a ``.pt2`` archive that unpickles anything (a weight or constant saved with ``use_pickle``, or a
    constant that is not a tensor), unless ``allow_pickle``."""
    entries = _archive_payloads(path)
    pickled = [e for e in entries if not isinstance(e, dict) or e.get("use_pickle") or e.get("tensor_meta") is None]
    if pickled and not allow_pickle:
        raise UnsafeModelFileError(f"{path} cannot be loaded safely: {PICKLE_FIX}")


def training_ops(program: Any) -> list[str]:
    """The operators of a program that behave as in training: batch norm over the batch, active dropout."""
    found = []
    for node in program.graph.nodes:
        if node.op != "call_function":
            continue
        name = str(node.target)
        args = list(node.args)
        if name == "aten.batch_norm.default" and len(args) > 5 and args[5] is True:
            found.append("batch norm with the batch's statistics")
        elif name in ("aten.dropout.default", "aten.native_dropout.default") and len(args) > 2 and args[2] is True:
            found.append("active dropout")
        elif name.startswith("aten._native_batch_norm_legit_functional"):
            found.append("batch norm with the batch's statistics")
    return sorted(set(found))


def _input_shape(program: Any, path: Path) -> list[int | None]:
    """The program's one input's shape (None for a dimension the export left dynamic)."""
    names = list(program.graph_signature.user_inputs)
    if len(names) != 1:
        raise ModelLoadError(
            f"{path} takes {len(names)} inputs ({', '.join(map(str, names))}); an image classifier takes one N×C×H×W "
            "tensor"
        )
    node = next(node for node in program.graph.nodes if node.op == "placeholder" and node.name == names[0])
    value = node.meta.get("val")
    shape = getattr(value, "shape", None)
    if shape is None or len(shape) != 4:
        raise ModelLoadError(f"{path}: its input has shape {shape}; an image classifier takes N×C×H×W")
    return [int(d) if isinstance(d, int) else None for d in shape]


class ExportedModule(nn.Module):
    """An exported program's module, as the plugin calls models: a function of one batch to one logits
    tensor. ``eval()`` and ``train()`` change nothing inside: an exported graph keeps the mode it was
    exported in (and PyTorch refuses to switch it)."""

    def __init__(self, graph_module: nn.Module) -> None:
        super().__init__()
        self.graph_module = graph_module

    def train(self, mode: bool = True) -> ExportedModule:
        self.training = mode
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.graph_module(x)
        if isinstance(out, (tuple, list)):
            out = out[0]
        if not isinstance(out, torch.Tensor):
            raise ModelLoadError(f"the exported program returned {type(out).__name__}, not a tensor of logits")
        return out


def _check_gradients(module: nn.Module, shape: list[int | None], path: Path) -> None:
    """One backward pass to the input: an attack needs the input gradient."""
    batch, channels, height, width = (d if d is not None else 2 for d in shape)
    x = torch.rand(batch, channels, height, width, requires_grad=True)
    try:
        with torch.enable_grad():
            out = module(x)
            out.float().sum().backward()
    except Exception as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"the program in {path} does not run on a {tuple(x.shape)} batch: {text}") from None
    if x.grad is None:
        raise ModelLoadError(
            f"the program in {path} gives no gradient of its output with respect to its input (exported under "
            "torch.no_grad or torch.inference_mode?), and the attack needs one: export it with gradients enabled"
        )


def load_exported(path: Path, *, allow_pickle: bool = False) -> ShippedModel:
    """The program ``torch.export.save`` wrote to ``path``, as an ``nn.Module`` of one batch to its logits.
    Refuses an archive that would unpickle (unless ``allow_pickle``), a program exported in training mode,
    and one that gives no input gradient; a fixed batch size is handled by padding (:class:`FixedBatch`)."""
    sniff_file(path)
    check_archive(path, allow_pickle)
    try:
        program = torch.export.load(str(path))
    except Exception as exc:  # torch raises RuntimeError, KeyError, ... for archives it cannot rebuild
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(
            f"torch.export.load cannot read {path} ({type(exc).__name__}: {text}); export it again with this torch "
            f"({torch.__version__}), or import the library that registers its custom operators first"
        ) from None
    training = training_ops(program)
    if training:
        raise ModelLoadError(
            f"the program in {path} was exported in training mode ({', '.join(training)}), so each image's "
            "logits depend on the rest of its batch and on chance: export model.eval()"
        )
    batch, channels, height, width = _input_shape(program, path)
    if max(height or 0, width or 0) > MAX_IMAGE_SIDE:
        raise ModelLoadError(f"{path}: its input is {height}x{width}, over {MAX_IMAGE_SIDE} pixels a side")
    module: nn.Module = ExportedModule(program.module())
    _check_gradients(module, [batch, channels, height, width], path)
    notes = []
    if batch is not None:
        notes.append(fixed_batch_note(path, batch, "dynamic_shapes=({0: torch.export.Dim('batch')},)"))
        module = FixedBatch(module, batch)
    preprocessing = input_shape_preprocessing(channels, height, width, "exported program input shape")
    return ShippedModel(module.eval(), preprocessing, "export", path, tuple(notes))
