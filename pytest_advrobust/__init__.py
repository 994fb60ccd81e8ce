"""pytest-advrobust: gate image classifiers in CI on adversarial robustness.

``attack`` and the result types import torch on first use, so ``import pytest_advrobust`` (and the
plugin pytest loads) stays cheap for suites without robustness tests.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .core.version import __version__

if TYPE_CHECKING:
    from .core.api import attack
    from .core.classes import ClassNames, load_class_names
    from .core.errors import (
        AdvRobustError,
        ClassNameError,
        DeviceMemoryError,
        FalseRobustnessError,
        ImageLoadError,
        ModelLoadError,
        ModelOutputError,
        NotRobustError,
        OptionError,
        UnsafeModelFileError,
    )
    from .core.formats import ShippedModel, load_shipped
    from .core.images import find_images, load_images
    from .core.loading import load_model
    from .core.loop import quantize_8bit
    from .core.model import WrappedModel
    from .core.preprocessing import Preprocessing
    from .core.results import AttackResult, ImageRecord
    from .core.settings import register_profile
    from .core.sources import ImageSet
    from .plugin.marker import adv_robust

_LAZY = {
    "attack": ".core.api",
    "quantize_8bit": ".core.loop",
    "ClassNames": ".core.classes",
    "load_class_names": ".core.classes",
    "ImageSet": ".core.sources",
    "find_images": ".core.images",
    "load_images": ".core.images",
    "load_model": ".core.loading",
    "load_shipped": ".core.formats",
    "ShippedModel": ".core.formats",
    "Preprocessing": ".core.preprocessing",
    "WrappedModel": ".core.model",
    "AttackResult": ".core.results",
    "ImageRecord": ".core.results",
    "adv_robust": ".plugin.marker",
    "register_profile": ".core.settings",
    **{
        name: ".core.errors"
        for name in (
            "AdvRobustError",
            "ClassNameError",
            "DeviceMemoryError",
            "FalseRobustnessError",
            "ImageLoadError",
            "ModelLoadError",
            "ModelOutputError",
            "NotRobustError",
            "OptionError",
            "UnsafeModelFileError",
        )
    },
}

__all__ = [
    "AdvRobustError",
    "AttackResult",
    "ClassNameError",
    "ClassNames",
    "DeviceMemoryError",
    "FalseRobustnessError",
    "ImageLoadError",
    "ImageRecord",
    "ImageSet",
    "ModelLoadError",
    "ModelOutputError",
    "NotRobustError",
    "OptionError",
    "Preprocessing",
    "ShippedModel",
    "UnsafeModelFileError",
    "WrappedModel",
    "__version__",
    "adv_robust",
    "attack",
    "find_images",
    "load_class_names",
    "load_images",
    "load_model",
    "load_shipped",
    "quantize_8bit",
    "register_profile",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pytest_advrobust' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
