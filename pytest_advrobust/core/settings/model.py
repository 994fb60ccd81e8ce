"""The model's settings: which model, where it runs, how its input is normalized and sized, where its logits are.

Their defaults and auto rule (:func:`auto_device`) live here and nowhere else.
"""

from __future__ import annotations

from . import parsers as p
from .option import Option


def auto_device(cuda_available: bool) -> str:
    """device=auto: the GPU when CUDA is available, else the CPU."""
    return "cuda" if cuda_available else "cpu"


OPTIONS: tuple[Option, ...] = (
    Option(
        "device",
        p.parse_device,
        "model",
        metavar="DEV",
        help=(
            "Where to attack: model (wherever the model's parameters are), auto (cuda if available), "
            "cpu, cuda, cuda:N or mps. The model is moved there once."
        ),
    ),
    Option(
        "model",
        p.parse_model,
        None,
        metavar="SPEC",
        help=(
            "Model to load for the adv_model fixture: 'package.module:factory', a TorchScript file, "
            "'<torchvision arch>@<state dict>' (.pth or .safetensors), 'timm:<folder>' (timm's save_for_hf) "
            "or 'timm:<name>@<weights>', 'hf:<folder>' (save_pretrained) or a model folder, a .onnx file, or a .pt2 "
            "program (torch.export.save). "
            "The formats' own metadata supply mean, std, input size, resizing and class names left unset."
        ),
        default_doc="none (define an adv_model fixture)",
    ),
    Option(
        "mean",
        p.parse_mean,
        None,
        metavar="M",
        help=("Per-channel mean subtracted inside the model wrapper, after the perturbation: 'imagenet' or 'r,g,b'."),
    ),
    Option(
        "std",
        p.parse_std,
        None,
        metavar="S",
        help="Per-channel std divided inside the model wrapper, after the perturbation: 'imagenet' or 'r,g,b'.",
    ),
    Option(
        "input_size",
        p.parse_input_size,
        None,
        metavar="HxW",
        help="Model input size; loaded images are resized (shorter side) and center-cropped to it.",
        default_doc="none (images must share one size)",
    ),
    Option(
        "image_mode",
        p.parse_image_mode,
        "RGB",
        metavar="MODE",
        help="Channels the model takes: RGB (3) or L (1, grayscale); image files are converted to it.",
    ),
    Option(
        "output",
        p.parse_output,
        None,
        metavar="KEY",
        help=(
            "Where the logits are in the model's output: a key (logits) or an index (0) for models that "
            "return a dict, a tuple or an object."
        ),
        default_doc="auto: a tensor, or the output's .logits / ['logits']",
    ),
    Option(
        "allow_pickle",
        p.parse_bool,
        False,
        metavar="BOOL",
        help=(
            "Allow loading model files that need full unpickling (can run arbitrary code: only for files you trust)."
        ),
        default_doc="false, files load with torch.load(weights_only=True)",
    ),
)
