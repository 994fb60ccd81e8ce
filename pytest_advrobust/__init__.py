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
    from .core.attacks.loop import quantize_8bit
    from .core.data.classes import ClassNames, load_class_names
    from .core.data.images import find_images, load_images
    from .core.data.sources import ImageSet
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
    from .core.models.formats import ShippedModel, load_shipped
    from .core.models.loading import load_model
    from .core.models.model import WrappedModel
    from .core.models.preprocessing import Preprocessing
    from .core.results.attack_result import AttackResult, ImageRecord
    from .core.settings import register_profile
    from .plugin.marker import adv_robust

_LAZY = {
    "attack": ".core.api",
    "quantize_8bit": ".core.attacks.loop",
    "ClassNames": ".core.data.classes",
    "load_class_names": ".core.data.classes",
    "ImageSet": ".core.data.sources",
    "find_images": ".core.data.images",
    "load_images": ".core.data.images",
    "load_model": ".core.models.loading",
    "load_shipped": ".core.models.formats",
    "ShippedModel": ".core.models.formats",
    "Preprocessing": ".core.models.preprocessing",
    "WrappedModel": ".core.models.model",
    "AttackResult": ".core.results.attack_result",
    "ImageRecord": ".core.results.attack_result",
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
