"""What every format loader returns, and the one way a loader imports its optional library."""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import torch
from torch import nn

from ...errors import ModelLoadError
from ..preprocessing import CHANNEL_MODES, Preprocessing

ShippedKind = Literal["timm", "hf", "onnx", "export"]
"""The formats of :mod:`pytest_advrobust.core.models.formats`."""

EXTRAS: dict[str, str] = {
    "timm": 'pip install "pytest-advrobust[timm]"',
    "hf": 'pip install "pytest-advrobust[hf]"',
    "onnx": 'pip install "pytest-advrobust[onnx]"',
    "safetensors": "pip install safetensors",
}
"""The install command that brings each optional library, by extra name."""


@dataclass(frozen=True)
class ShippedModel:
    """A model loaded from the files its library saved.

    Attributes:
        module: maps a normalized float batch N×C×H×W to N×K logits (a tensor), in eval mode, on CPU.
        preprocessing: what the model's metadata says about its input; fields it does not say are None.
        kind: the format it was loaded from.
        path: the folder or file it was loaded from.
        notes: what the caller should know (a missing preprocessor config, a check not run, ...).
    """

    module: nn.Module
    preprocessing: Preprocessing
    kind: ShippedKind
    path: Path
    notes: tuple[str, ...] = ()


def normalization_hint(shipped: ShippedModel) -> str:
    """What to say when neither the model's metadata nor any setting names its normalization: the model is
    then fed [0,1] pixels as they are, which is right only for a model that normalizes inside."""
    what = {
        "onnx": "ONNX files carry no preprocessing",
        "export": "exported programs carry no preprocessing",
    }.get(shipped.kind, "its metadata names no mean and std")
    return (
        f"{shipped.path}: {what}, so the model is fed [0,1] pixels unnormalized; if it expects normalized "
        "input, set mean and std (--adv-mean/--adv-std, or in the marker)"
    )


def import_extra(module: str, *, extra: str, purpose: str) -> ModuleType:
    """Import an optional library, or raise a :class:`ModelLoadError` naming the install command."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ModelLoadError(
            f"{purpose} needs {module.partition('.')[0]}, which is not installed ({exc}): {EXTRAS[extra]}"
        ) from None


OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
"""The hub libraries' offline switches (huggingface_hub, transformers, datasets)."""


@contextlib.contextmanager
def offline() -> Iterator[None]:
    """The hub libraries offline while a model loads: huggingface_hub, and timm and transformers through it,
    refuse any request instead of asking the Hub (for a config, a kernel, a publisher's trust status).
    Their switches are set in the environment, for what is imported now, and on an imported
    ``huggingface_hub.constants``; everything is restored afterwards."""
    saved = {name: os.environ.get(name) for name in OFFLINE}
    hub: Any = sys.modules.get("huggingface_hub.constants")
    flag = getattr(hub, "HF_HUB_OFFLINE", None)
    os.environ.update(OFFLINE)
    if hub is not None:
        hub.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        imported: Any = sys.modules.get("huggingface_hub.constants")
        if imported is not None:  # imported now, it read the switch from the environment: as it was before
            imported.HF_HUB_OFFLINE = (
                flag if hub is not None else str(saved["HF_HUB_OFFLINE"]).upper() in ("1", "ON", "YES", "TRUE")
            )


class FixedBatch(nn.Module):
    """A model exported for batches of exactly ``size`` images (an ONNX graph or a ``torch.export`` program
    with a fixed batch dimension), fed any batch: cut into pieces of ``size``, the last padded with copies
    of its last image, the padding's outputs dropped. In eval mode every image is computed on its own, so
    the padding changes no image's logits, and no gradient reaches an image from it."""

    def __init__(self, inner: nn.Module, size: int) -> None:
        super().__init__()
        self.inner = inner
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = []
        for piece in torch.split(x, self.size):
            missing = self.size - piece.shape[0]
            padded = torch.cat([piece, piece[-1:].expand(missing, *piece.shape[1:])]) if missing else piece
            outputs.append(self.inner(padded)[: piece.shape[0]])
        return torch.cat(outputs)


def fixed_batch_note(path: Path, size: int, how: str) -> str:
    """What a model with a fixed batch size is told: it is fed padded batches, and how to export a dynamic one."""
    return (
        f"{path} was exported for batches of exactly {size} image(s): it is fed batches padded to that size; "
        f"export with a dynamic batch dimension ({how}) to attack batches as they come"
    )


def input_shape_preprocessing(
    channels: int | None, height: int | None, width: int | None, source: str
) -> Preprocessing:
    """What a graph's input shape (N×C×H×W, a dimension None where it is dynamic) says of a model's input:
    its channels (1 or 3) and, when H and W are fixed, its input size, each credited to ``source``."""
    origins = {"channels": source} if channels in CHANNEL_MODES else {}
    if height is not None and width is not None:
        origins["input_size"] = source
    return Preprocessing(
        input_size=(height, width) if height is not None and width is not None else None,
        channels=channels if channels in CHANNEL_MODES else 3,
        origins=origins,
    )
