"""ONNX exports: converted to a PyTorch module with onnx2torch (so gradients flow for the attack), and
checked against onnxruntime, the reference for what the deployed graph computes. ONNX files carry no
preprocessing; only the graph's input shape is read."""

from __future__ import annotations

import copy
import importlib
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ...display import shown
from ...errors import ModelLoadError
from ...settings.values import MAX_IMAGE_SIDE
from .base import EXTRAS, FixedBatch, ShippedModel, fixed_batch_note, import_extra, input_shape_preprocessing
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
            f"{path} has {len(inputs)} inputs ({', '.join(shown(v.name) for v in inputs)}); an image classifier "
            "takes one N×C×H×W tensor"
        )
    dims = inputs[0].type.tensor_type.shape.dim
    return inputs[0].name, [int(d.dim_value) if d.HasField("dim_value") else None for d in dims]


def _check_external_data(graph: Any, path: Path) -> None:
    """A :class:`ModelLoadError` naming the file when the graph keeps its weights in a file beside it
    (``torch.onnx.export`` writes ``model.onnx.data`` for all but small models) that is not there."""
    from onnx.external_data_helper import ExternalDataInfo, uses_external_data

    names = {ExternalDataInfo(tensor).location for tensor in graph.graph.initializer if uses_external_data(tensor)}
    for name in sorted(names):
        if not (path.parent / name).is_file():
            raise ModelLoadError(
                f"{path} keeps its weights in {shown(name)} beside it (torch.onnx.export writes both files), and "
                f"{shown(str(path.parent / name))} is not there: copy {shown(name)} next to {shown(path.name)}"
            )


def load_onnx(path: Path) -> ShippedModel:
    """The ONNX model in ``path`` as an ``nn.Module`` (onnx2torch), in eval mode. Its preprocessing has
    only what the graph's input shape says (channels; input_size when H and W are fixed): mean and std
    are None. A graph with a fixed batch dimension is noted; check the conversion with
    :func:`check_onnx_conversion`."""
    sniff_file(path)
    onnx = import_extra("onnx", extra="onnx", purpose=f"loading {path}")
    onnx2torch = import_extra("onnx2torch", extra="onnx", purpose=f"loading {path}")
    try:
        graph = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf DecodeError
        raise ModelLoadError(
            f"{path} is not a valid ONNX model ({type(exc).__name__}: {exc}); export it again"
        ) from None
    _check_external_data(graph, path)
    try:
        graph = onnx.load(str(path))
        onnx.checker.check_model(graph)
    except Exception as exc:  # protobuf DecodeError, ValidationError, OSError for missing external data
        raise ModelLoadError(
            f"{path} is not a valid ONNX model ({type(exc).__name__}: {exc}); export it again"
        ) from None
    name, shape = _graph_input(graph, path)
    module = _converted(onnx, onnx2torch, graph, path)
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
        notes.append(fixed_batch_note(path, batch, "torch.onnx.export(..., dynamic_shapes=({0: Dim('batch')},))"))
    preprocessing = input_shape_preprocessing(channels, height, width, "ONNX graph input shape")
    checked: nn.Module = CheckedOnnx(module.eval(), path)
    return ShippedModel(
        FixedBatch(checked, batch) if batch is not None else checked, preprocessing, "onnx", path, tuple(notes)
    )


CONVERTED_OPSET = 17
"""The opset a graph is brought down to when onnx2torch cannot convert it as exported: onnx2torch has a
converter for every version of the operators an image classifier uses up to opset 17."""


def _converted(onnx: Any, onnx2torch: Any, graph: Any, path: Path) -> nn.Module:
    """The graph as an ``nn.Module``: converted as it is, or, when onnx2torch lacks a converter for an
    operator version of today's exporters (opset 18+: ``AveragePool`` 19, ``ReduceMean`` 18, ``Identity``
    19; ``Reshape(allowzero=1)`` of the dynamo exporter), after :func:`prepared`. Either way, its logits
    are checked against onnxruntime's on the original file before any attack (:class:`CheckedOnnx`)."""
    try:
        module: nn.Module = onnx2torch.convert(graph)
        return module
    except Exception as first:  # onnx2torch raises NotImplementedError, KeyError... for what it lacks
        try:
            module = onnx2torch.convert(prepared(onnx, graph))
            return module
        except Exception as exc:
            raise ModelLoadError(
                f"onnx2torch cannot convert {path} ({type(first).__name__}: {_first_line(first)}), nor its graph at "
                f"opset {CONVERTED_OPSET} ({type(exc).__name__}: {_first_line(exc)}): an operator of this graph has no "
                "converter; ship the PyTorch model, or a torch.export program (.pt2), instead"
            ) from None


def prepared(onnx: Any, graph: Any) -> Any:
    """A copy of ``graph`` that computes the same, in a form onnx2torch converts: ``Identity`` nodes over
    initializers folded into initializers (the legacy exporter writes them), the default domain brought
    down to opset :data:`CONVERTED_OPSET` by ONNX's own version converter, and ``Reshape(allowzero=1)``
    read as ``allowzero=0`` where its shape is no constant holding a 0 (the two differ only there, or for
    empty tensors)."""
    from onnx import numpy_helper

    graph = copy.deepcopy(graph)
    _fold_identities(graph, numpy_helper)
    opset = next((entry.version for entry in graph.opset_import if entry.domain in ("", "ai.onnx")), CONVERTED_OPSET)
    if opset > CONVERTED_OPSET:
        graph = onnx.version_converter.convert_version(graph, CONVERTED_OPSET)
    constants = {init.name: numpy_helper.to_array(init) for init in graph.graph.initializer}
    for node in graph.graph.node:
        if node.op_type == "Constant":
            for attribute in node.attribute:
                if attribute.name == "value":
                    constants[node.output[0]] = numpy_helper.to_array(attribute.t)
    for node in graph.graph.node:
        if node.op_type != "Reshape" or len(node.input) < 2:
            continue
        shape = constants.get(node.input[1])
        for attribute in node.attribute:
            if attribute.name == "allowzero" and attribute.i == 1 and (shape is None or not (shape == 0).any()):
                attribute.i = 0
    return graph


def _fold_identities(graph: Any, numpy_helper: Any) -> None:
    """Replace each ``Identity`` of an initializer by an initializer of its output's name."""
    while True:
        initializers = {init.name: init for init in graph.graph.initializer}
        node = next((n for n in graph.graph.node if n.op_type == "Identity" and n.input[0] in initializers), None)
        if node is None:
            return
        copy_of = numpy_helper.from_array(numpy_helper.to_array(initializers[node.input[0]]), node.output[0])
        graph.graph.initializer.append(copy_of)
        graph.graph.node.remove(node)


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
