"""Train three tiny colour classifiers (red, green, blue) on photos/ and save each as its library ships it.

    python make_models.py            # writes models/, in a few seconds, offline

models/timm_colors/       timm.models.save_for_hf: config.json (architecture, label_names, pretrained_cfg
                          with this model's own mean/std, 32×32 input, crop_pct 0.875, bicubic) and
                          model.safetensors
models/hf_colors/         a Hugging Face ViT: save_pretrained (config.json with id2label, model.safetensors)
                          and its ViTImageProcessor (preprocessor_config.json: 32×32, its own mean/std)
models/timm_colors.onnx   the timm model exported to ONNX (opset 17, TorchScript exporter, dynamic batch)

Each model is trained on the photos as its library's own eval transform prepares them
(timm.data.create_transform, the ViTImageProcessor), so it learns what the plugin will feed it: the
plugin reads the same metadata and resizes, crops and normalizes the same way. Nothing is downloaded
(pretrained=False); models/ is not committed (weights never are), run this script again to rebuild it.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import torch
from PIL import Image
from torch import nn

HERE = Path(__file__).resolve().parent
PHOTOS = HERE / "photos"
MODELS = HERE / "models"
CLASS_NAMES = ["red", "green", "blue"]
SEED = 0

TIMM_CFG = {
    # not timm's defaults for test_resnet (mean/std 0.5, 160×160, crop_pct 0.95, bilinear): the plugin
    # must read these from config.json for the model to see what it was trained on
    "mean": (0.45, 0.5, 0.55),
    "std": (0.2, 0.25, 0.3),
    "input_size": (3, 32, 32),
    "crop_pct": 0.875,  # eval: resize the shorter side to int(32 / 0.875) = 36, then centre-crop 32×32
    "interpolation": "bicubic",
    "crop_mode": "center",
}
HF_MEAN, HF_STD = [0.4, 0.5, 0.6], [0.3, 0.2, 0.25]


def photos() -> tuple[list[Image.Image], torch.Tensor]:
    """Every photo under photos/<vivid|muted>/<colour>/, and its label (the colour folder's index)."""
    files = sorted(PHOTOS.glob("*/*/*.png"))
    labels = torch.tensor([CLASS_NAMES.index(file.parent.name) for file in files])
    return [Image.open(file).convert("RGB") for file in files], labels


def train(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, steps: int, logits=lambda out: out) -> None:
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    model.train()
    for _ in range(steps):
        optimizer.zero_grad()
        nn.functional.cross_entropy(logits(model(inputs)), labels).backward()
        optimizer.step()
    model.eval()


def make_timm(images: list[Image.Image], labels: torch.Tensor) -> nn.Module:
    import timm
    from timm.data import create_transform, resolve_model_data_config
    from timm.models import save_for_hf

    torch.manual_seed(SEED)
    model = timm.create_model("test_resnet", num_classes=3, pretrained=False, pretrained_cfg_overlay=TIMM_CFG)
    transform = create_transform(**resolve_model_data_config(model), is_training=False)  # timm's eval transform
    train(model, torch.stack([transform(image) for image in images]), labels, steps=100)
    # label_names go into config.json; safe_serialization writes model.safetensors (read without unpickling)
    save_for_hf(model, str(MODELS / "timm_colors"), model_config={"label_names": CLASS_NAMES}, safe_serialization=True)
    return model


def make_hf(images: list[Image.Image], labels: torch.Tensor) -> None:
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor
    from transformers.utils import logging

    logging.disable_progress_bar()  # no "Writing model shards" bar for one small file
    torch.manual_seed(SEED)
    config = ViTConfig(
        image_size=32,
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=3,
        id2label=dict(enumerate(CLASS_NAMES)),
        label2id={name: i for i, name in enumerate(CLASS_NAMES)},
    )
    model = ViTForImageClassification(config)
    processor = ViTImageProcessor(size={"height": 32, "width": 32}, image_mean=HF_MEAN, image_std=HF_STD)
    inputs = processor(images=images, return_tensors="pt")["pixel_values"]
    train(model, inputs, labels, steps=100, logits=lambda out: out.logits)
    model.save_pretrained(MODELS / "hf_colors")
    processor.save_pretrained(MODELS / "hf_colors")


def export_onnx(model: nn.Module) -> None:
    with warnings.catch_warnings():  # the TorchScript-based exporter is deprecated upstream
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model.eval(),
            (torch.zeros(2, 3, 32, 32),),
            str(MODELS / "timm_colors.onnx"),
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},  # attack batches of any size
            # the legacy exporter needs no onnxscript; what the default (dynamo) exporter writes loads too
            dynamo=False,
        )


def export_program(model: nn.Module) -> None:
    """``torch.export``, what PyTorch recommends over TorchScript: the model in eval mode, for any batch."""
    program = torch.export.export(
        model.eval(), (torch.zeros(2, 3, 32, 32),), dynamic_shapes=({0: torch.export.Dim("batch")},)
    )
    torch.export.save(program, str(MODELS / "timm_colors.pt2"))


def main() -> None:
    torch.set_num_threads(1)  # models this small train fastest on one thread
    shutil.rmtree(MODELS, ignore_errors=True)
    MODELS.mkdir()
    images, labels = photos()
    timm_model = make_timm(images, labels)
    make_hf(images, labels)
    export_onnx(timm_model)
    export_program(timm_model)
    for path in sorted(MODELS.rglob("*")):
        if path.is_file():
            print(f"wrote {path.relative_to(HERE)} ({path.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
