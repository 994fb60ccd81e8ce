"""ONNX exports: converted to a PyTorch module with onnx2torch (so gradients flow for the attack), and
checked against onnxruntime, the reference for what the deployed graph computes. ONNX files carry no
preprocessing; only the graph's input shape is read."""

from __future__ import annotations

import importlib
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ...errors import ModelLoadError
from ...settings.values import MAX_IMAGE_SIDE
from ..preprocessing import CHANNEL_MODES, Preprocessing
from .base import EXTRAS, ShippedModel, import_extra
from .files import sniff_file

RELATIVE_TOLERANCE = 1e-3
"""onnx2torch vs onnxruntime: the largest |Δ logit| allowed, as a fraction of max(1, max |logit|).
float32 kernels that order sums differently agree to ~1e-5 of the logits' scale; a wrong conversion
(a mis-read attribute, a dropped op) is off by far more than 1e-3 of it."""


@dataclass(frozen=True)
class OnnxCheck:
    """The comparison of a converted module with onnxruntime on one batch.

    Attributes:
        max_abs_diff: max |logit(torch) - logit(onnxruntime)| over the batch; None when not compared.
        tolerance: the bound it was held to (``RELATIVE_TOLERANCE × max(1, max |logit|)``); None when not
            compared.
        note: one line saying what was compared, or why not.
    """

    max_abs_diff: float | None
    tolerance: float | None
    note: str


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _graph_input(graph: Any, path: Path) -> tuple[str, list[int | None]]:
    """Name and shape (None for a symbolic dimension) of the graph's one image input."""
    initializers = {init.name for init in graph.graph.initializer}
    inputs = [value for value in graph.graph.input if value.name not in initializers]
    if len(inputs) != 1:
        raise ModelLoadError(
            f"{path} has {len(inputs)} inputs ({', '.join(v.name for v in inputs)}); an image classifier takes one "
            "N×C×H×W tensor"
        )
    dims = inputs[0].type.tensor_type.shape.dim
    return inputs[0].name, [int(d.dim_value) if d.HasField("dim_value") else None for d in dims]


def load_onnx(path: Path) -> ShippedModel:
    """The ONNX model in ``path`` as an ``nn.Module`` (onnx2torch), in eval mode. Its preprocessing has
    only what the graph's input shape says (channels; input_size when H and W are fixed): mean and std
    are None. A graph with a fixed batch dimension is noted; check the conversion with
    :func:`check_onnx_conversion`."""
    sniff_file(path)
    onnx = import_extra("onnx", extra="onnx", purpose=f"loading {path}")
    onnx2torch = import_extra("onnx2torch", extra="onnx", purpose=f"loading {path}")
    try:
        graph = onnx.load(str(path))
        onnx.checker.check_model(graph)
    except Exception as exc:  # protobuf DecodeError, ValidationError, OSError for missing external data
        raise ModelLoadError(
            f"{path} is not a valid ONNX model ({type(exc).__name__}: {exc}); export it again"
        ) from None
    name, shape = _graph_input(graph, path)
    try:
        module: nn.Module = onnx2torch.convert(graph)
    except Exception as exc:  # onnx2torch raises NotImplementedError and others for operators it lacks
        raise ModelLoadError(
            f"onnx2torch cannot convert {path} ({type(exc).__name__}: {exc}); it lacks some operators of opset 18+ "
            "and of torch's dynamo exporter: export with torch.onnx.export(..., opset_version=17, dynamo=False), "
            "or ship the PyTorch model instead"
        ) from None
    notes: list[str] = []
    if len(shape) != 4:
        raise ModelLoadError(f"{path}: input {name!r} has shape {shape}; an image classifier takes N×C×H×W")
    batch, channels, height, width = shape
    if max(height or 0, width or 0) > MAX_IMAGE_SIDE:
        raise ModelLoadError(
            f"{path}: input {name!r} is {height}x{width}, over {MAX_IMAGE_SIDE} pixels a side: not an image "
            "classifier's input this plugin attacks"
        )
    if batch is not None:
        notes.append(
            f"{path}: input {name!r} has a fixed batch size {batch}; export with a dynamic batch dimension "
            "(torch.onnx.export(..., dynamic_axes={'input': {0: 'batch'}}) or dynamic_shapes) to attack batches"
        )
    origins = {}
    if channels in CHANNEL_MODES:
        origins["channels"] = "ONNX graph input shape"
    if height is not None and width is not None:
        origins["input_size"] = "ONNX graph input shape"
    preprocessing = Preprocessing(
        input_size=(height, width) if height is not None and width is not None else None,
        channels=channels if channels in CHANNEL_MODES else 3,
        origins=origins,
    )
    return ShippedModel(CheckedOnnx(module.eval(), path), preprocessing, "onnx", path, tuple(notes))


class CheckedOnnx(nn.Module):
    """An onnx2torch conversion that checks itself: on its first batch (the clean images, before any
    attack), its logits are compared with onnxruntime's (:func:`check_onnx_conversion`), and a conversion
    that disagrees is refused, so the attack never tests another model than the one deployed. Without
    onnxruntime it warns that nothing was compared. ``check`` holds the comparison once made."""

    def __init__(self, converted: nn.Module, path: Path) -> None:
        super().__init__()
        self.converted = converted
        self.path = path
        self.check: OnnxCheck | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.check is None:
            check = check_onnx_conversion(self.converted, self.path, x)
            if check.max_abs_diff is None:
                warnings.warn(check.note, stacklevel=2)
            self.check = check
        out: torch.Tensor = self.converted(x)
        return out


def check_onnx_conversion(
    module: nn.Module, path: Path, inputs: torch.Tensor, *, relative_tolerance: float = RELATIVE_TOLERANCE
) -> OnnxCheck:
    """Compare ``module``'s logits (the onnx2torch conversion of ``path``) with onnxruntime's on
    ``inputs``: the N×C×H×W float batch the model is fed, normalized as the caller will normalize it.

    Raises :class:`ModelLoadError` naming the max |Δ logit| when they differ by more than
    ``relative_tolerance × max(1, max |logit|)`` (default :data:`RELATIVE_TOLERANCE`). Without
    onnxruntime installed, nothing is compared and the returned note says so. The module's train/eval mode
    is left as found (it is run in eval mode, without gradient).
    """
    try:
        ort = importlib.import_module("onnxruntime")
    except ImportError:
        return OnnxCheck(
            None, None, f"onnxruntime is not installed: {path}'s conversion was not checked ({EXTRAS['onnx']})"
        )
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's own exception types: a graph it does not load
        raise ModelLoadError(f"onnxruntime cannot run {path}: {_first_line(exc)}; export it again") from None
    graph_input = session.get_inputs()[0]
    dtype = np.float16 if graph_input.type == "tensor(float16)" else np.float32
    batch = inputs.detach().cpu()
    try:
        reference = np.asarray(session.run(None, {graph_input.name: batch.numpy().astype(dtype)})[0], dtype=np.float64)
    except Exception as exc:  # onnxruntime's own exception types (InvalidArgument for a fixed batch size)
        raise ModelLoadError(f"onnxruntime cannot run {path} on a batch of shape {tuple(batch.shape)}: {exc}") from None
    training = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        with torch.no_grad():
            parameter = next(module.parameters(), None)
            ours = module(batch.to(parameter.device if parameter is not None else "cpu"))
    finally:
        for submodule, mode in training:
            submodule.training = mode
    converted = ours.detach().double().cpu().numpy()
    if converted.shape != reference.shape:
        raise ModelLoadError(
            f"the onnx2torch conversion of {path} returns shape {converted.shape}, onnxruntime {reference.shape}"
        )
    diff = float(np.abs(converted - reference).max(initial=0.0))
    scale = max(1.0, float(np.abs(reference).max(initial=0.0)))
    tolerance = relative_tolerance * scale
    if not diff <= tolerance:
        raise ModelLoadError(
            f"the onnx2torch conversion of {path} disagrees with onnxruntime: max |Δ logit| = {diff:.3g} > "
            f"{tolerance:.3g} ({relative_tolerance:g} × max(1, max |logit| = {scale:.3g})) on {batch.shape[0]} "
            "image(s), so the attack would test another model than the one deployed; ship the PyTorch model "
            "instead, or report the graph to onnx2torch"
        )
    return OnnxCheck(
        diff,
        tolerance,
        f"onnx2torch conversion of {path} matches onnxruntime on {batch.shape[0]} image(s): "
        f"max |Δ logit| = {diff:.2g} ≤ {tolerance:.2g}",
    )
