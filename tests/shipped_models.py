"""Small models saved the way their libraries save them, for the format loaders' tests.

Each builder trains a tiny classifier for a few dozen SGD steps on the 32×32 colour photos of
``examples/custom_model/photos`` (labels: the folder names red/green/blue) and writes it into the folder
the caller passes, once: a folder already built is reused, so a session-scoped fixture builds each once.
Every builder runs in a couple of seconds on two CPU cores and leaves the global RNG state as found.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

PHOTOS = Path(__file__).resolve().parents[1] / "examples" / "custom_model" / "photos"
CLASS_NAMES = ("red", "green", "blue")
TIMM_ARCH = "test_resnet"
TIMM_CFG = {
    "mean": (0.45, 0.5, 0.55),
    "std": (0.2, 0.25, 0.3),
    "input_size": (3, 32, 32),
    "crop_pct": 0.875,
    "interpolation": "bicubic",
    "crop_mode": "center",
}
"""Deliberately not timm's defaults (ImageNet mean/std, 224, bilinear for this arch), so a loader that
ignores the metadata is caught."""
HF_MEAN, HF_STD = (0.4, 0.5, 0.6), (0.3, 0.2, 0.25)
TRAIN_STEPS = 40
DONE = ".built"
"""Written last into a built folder: a folder without it is rebuilt."""


def color_photos() -> tuple[torch.Tensor, torch.Tensor]:
    """All colour photos as an N×3×32×32 float batch in [0,1] and their labels (N,), by folder name."""
    files = sorted(PHOTOS.glob("*/*/*.png"))
    pixels = np.stack([np.asarray(Image.open(f).convert("RGB"), dtype=np.uint8) for f in files])
    labels = torch.tensor([CLASS_NAMES.index(f.parent.name) for f in files])
    return torch.from_numpy(pixels).permute(0, 3, 1, 2).float().div(255.0), labels


def normalized(pixels: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """``(pixels - mean) / std`` per channel, for an N×C×H×W batch."""
    return (pixels - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1)


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one CPU thread, then restore the thread count: on a shared 2-core machine, two threads
    wait on each other and make these tiny models 10-50× slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _train(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, logits_of=lambda out: out) -> nn.Module:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.train()
    for _ in range(TRAIN_STEPS):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(logits_of(model(inputs)), labels)
        loss.backward()
        optimizer.step()
    return model.eval()


def _built(folder: Path) -> bool:
    return (folder / DONE).exists()


def _mark(folder: Path) -> Path:
    (folder / DONE).touch()
    return folder


def timm_model(seed: int = 0) -> nn.Module:
    """The tiny timm ``test_resnet`` with :data:`TIMM_CFG` as its pretrained_cfg, trained, in eval mode."""
    import timm

    with torch.random.fork_rng(), one_thread():
        torch.manual_seed(seed)
        model = timm.create_model(TIMM_ARCH, pretrained=False, num_classes=3, pretrained_cfg_overlay=dict(TIMM_CFG))
        pixels, labels = color_photos()
        return _train(model, normalized(pixels, TIMM_CFG["mean"], TIMM_CFG["std"]), labels)


def build_timm_folder(folder: Path, *, safetensors: bool = True) -> Path:
    """``folder`` as ``timm.models.save_for_hf`` writes it (config.json + model.safetensors, or
    pytorch_model.bin with ``safetensors=False``), plus ``oracle_state.pt``: the same weights for the tests'
    oracle (the loaders never read it)."""
    if not _built(folder):
        from timm.models import save_for_hf

        model = timm_model()
        save_for_hf(model, str(folder), model_config={"label_names": list(CLASS_NAMES)}, safe_serialization=safetensors)
        torch.save(model.state_dict(), folder / "oracle_state.pt")
        _mark(folder)
    return folder


def build_timm_weights(folder: Path, timm_folder: Path) -> Path:
    """``folder/test_resnet.safetensors``: the state dict of the model in ``timm_folder`` (built by
    :func:`build_timm_folder`), for ``timm:test_resnet@<file>``."""
    path = folder / f"{TIMM_ARCH}.safetensors"
    if not _built(folder):
        from safetensors.torch import save_file

        folder.mkdir(parents=True, exist_ok=True)
        save_file(oracle_timm(timm_folder).state_dict(), str(path))
        _mark(folder)
    return path


def oracle_timm(folder: Path) -> nn.Module:
    """The model :func:`build_timm_folder` saved, rebuilt from its state dict with timm (the oracle)."""
    import timm

    model = timm.create_model(TIMM_ARCH, pretrained=False, num_classes=3, pretrained_cfg_overlay=dict(TIMM_CFG))
    model.load_state_dict(torch.load(folder / "oracle_state.pt", weights_only=True))
    return model.eval()


def _vit_config(placeholder_labels: bool = False) -> Any:
    from transformers import ViTConfig

    labels = {} if placeholder_labels else {"id2label": dict(enumerate(CLASS_NAMES))}
    return ViTConfig(
        image_size=32,
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=3,
        **labels,
    )


def build_hf_folder(folder: Path, *, processor: bool = True, placeholder_labels: bool = False) -> Path:
    """A tiny ViT (32×32, patches of 8, one layer) trained briefly, saved with ``save_pretrained``, with a
    ``ViTImageProcessor`` (32×32, :data:`HF_MEAN` / :data:`HF_STD`) beside it unless ``processor=False``;
    ``placeholder_labels`` keeps transformers' LABEL_0… names. ``oracle_state.pt`` holds the same weights
    for the tests' oracle."""
    if not _built(folder):
        from transformers import ViTForImageClassification, ViTImageProcessor

        with torch.random.fork_rng(), one_thread():
            torch.manual_seed(0)
            model = ViTForImageClassification(_vit_config(placeholder_labels))
            pixels, targets = color_photos()
            _train(model, normalized(pixels, HF_MEAN, HF_STD), targets, logits_of=lambda out: out.logits)
        model.save_pretrained(folder)
        torch.save(model.state_dict(), folder / "oracle_state.pt")
        if processor:
            ViTImageProcessor(size={"height": 32, "width": 32}, image_mean=HF_MEAN, image_std=HF_STD).save_pretrained(
                folder
            )
        _mark(folder)
    return folder


def oracle_hf(folder: Path) -> nn.Module:
    """The ViT :func:`build_hf_folder` saved, rebuilt from its state dict (the oracle; returns an output
    with ``.logits``)."""
    from transformers import ViTForImageClassification

    model = ViTForImageClassification(_vit_config())
    model.load_state_dict(torch.load(folder / "oracle_state.pt", weights_only=True))
    return model.eval()


def build_onnx(folder: Path, model: nn.Module, name: str = "model.onnx") -> Path:
    """``model`` exported to ``folder/name`` for 3×32×32 inputs with a dynamic batch dimension."""
    path = folder / name
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():  # the TorchScript exporter is deprecated, but it is what onnx2torch reads
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(
                model.eval(),
                (torch.rand(2, 3, 32, 32),),
                str(path),
                input_names=["input"],
                output_names=["logits"],
                dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                opset_version=17,  # onnx2torch lacks converters for opset 18+ ReduceMean and 19+ AveragePool
                dynamo=False,  # the dynamo exporter's Reshape(allowzero=1) is not in onnx2torch either
            )
    return path


def plain_cnn() -> nn.Module:
    """A small CNN with the layers today's exporters write new operator versions for: batch norm, average
    pooling (AveragePool 19), a global mean (ReduceMean 18), a flatten (Reshape with allowzero); trained on
    the colour photos, normalized like the timm model, in eval mode."""
    with torch.random.fork_rng(), one_thread():
        torch.manual_seed(0)
        model = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.AvgPool2d(2),
            nn.Conv2d(8, 8, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(8, 3),
        )
        pixels, labels = color_photos()
        return _train(model, normalized(pixels, TIMM_CFG["mean"], TIMM_CFG["std"]), labels)


def build_state(folder: Path, model: nn.Module, name: str) -> Path:
    """``folder/name``: the model's state dict, for a test's oracle to rebuild it."""
    path = folder / name
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), path)
    return path


def export_onnx_default(folder: Path, model: nn.Module, name: str, *, dynamo: bool = True) -> Path:
    """``model`` exported as a user does today: ``torch.onnx.export``'s defaults (the dynamo exporter,
    opset 18+), with a dynamic batch; ``dynamo=False``: the legacy exporter at its own default opset."""
    path = folder / name
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        example = (torch.rand(2, 3, 32, 32),)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            if dynamo:
                torch.onnx.export(model.eval(), example, str(path), dynamic_shapes=({0: torch.export.Dim("batch")},))
            else:
                torch.onnx.export(model.eval(), example, str(path), dynamo=False, dynamic_axes={"input": {0: "batch"}},
                                  input_names=["input"])  # fmt: skip
    return path


def export_program(folder: Path, model: nn.Module, name: str, *, batch: int | None = None) -> Path:
    """``model`` as ``torch.export.save`` writes it: for any batch, or (``batch``) for exactly that many."""
    path = folder / name
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        example = (torch.rand(batch or 2, 3, 32, 32),)
        dynamic = None if batch else ({0: torch.export.Dim("batch")},)
        torch.export.save(torch.export.export(model.eval(), example, dynamic_shapes=dynamic), str(path))
    return path
