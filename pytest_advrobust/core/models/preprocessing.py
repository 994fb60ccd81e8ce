"""How a model expects its input, read from the model's own metadata, and image files brought to it.

A :class:`Preprocessing` says which [0,1] pixels a model is fed: the per-channel ``mean``/``std`` that the
model wrapper applies after the attack, the ``input_size`` (H, W) and channel count, and how an image file
is resized and centre-cropped to that size. :func:`fit_image` and :func:`to_pixels` apply the resize and
crop exactly as the model's own eval transform does (PIL resampling, the library's rounding of sizes and
crop offsets), so the attacked pixels are the ones the model sees in deployment, minus normalization.

The resize step, then a centre crop to ``input_size`` (padded with ``pad_fill`` where the resized image is
smaller), reproduces:

========================================  =====================================================
timm ``crop_mode="center"`` (default)     ``resize="shorter-side"``, ``resize_size=⌊size/crop_pct⌋``
timm ``crop_mode="squash"``               ``resize="exact"``, ``resize_size=⌊size/crop_pct⌋``
timm ``crop_mode="border"``               ``resize="longer-side"``, ``pad_fill=round(255·mean)``
Hugging Face ``size={"height","width"}``  ``resize="exact"`` (then ``crop_size`` if ``do_center_crop``)
Hugging Face ``size={"shortest_edge"}``   ``resize="shorter-side"``, then ``crop_size``
ConvNeXt-style ``crop_pct``               ``resize="shorter-side"``, ``resize_size=int(edge/crop_pct)``
========================================  =====================================================
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal, get_args

import numpy as np
import torch

from ..errors import OptionError

if TYPE_CHECKING:
    from PIL import Image

ResizeMode = Literal["shorter-side", "exact", "longer-side", "none"]
"""``shorter-side``: scale so the shorter side reaches ``resize_size``, keeping the aspect ratio (a square
``resize_size`` (s, s) gives the shorter side s and the longer ``int(s·long/short)``, as torchvision and
transformers do; a non-square one scales by the smaller ratio and rounds each side, as timm's
``ResizeKeepRatio`` does). ``exact``: both sides to ``resize_size``, changing the aspect ratio.
``longer-side``: scale so the longer side fits ``resize_size`` (timm's ``border`` mode; the crop then pads).
``none``: no resize; the crop alone (or nothing) brings the image to ``input_size``."""

Interpolation = Literal["nearest", "bilinear", "bicubic", "box", "hamming", "lanczos"]
"""PIL's resampling filters, by the names timm uses."""

CropConvention = Literal["torchvision", "transformers"]
"""Whose centre-crop arithmetic: torchvision's ``CenterCrop`` (used by timm) rounds the offsets
``(size - crop) / 2`` half to even and pads ``(crop - size) // 2`` on the left/top; transformers floors
the offsets and pads ``ceil((crop - size) / 2)`` on the left/top (its PIL backend)."""

RESIZE_MODES: tuple[str, ...] = get_args(ResizeMode)
INTERPOLATIONS: tuple[str, ...] = get_args(Interpolation)
CHANNEL_MODES = {3: "RGB", 1: "L"}
"""Channel count → the PIL mode images are converted to (``image_mode`` in
:mod:`~pytest_advrobust.core.data.images`)."""


def distinct_names(names: tuple[str, ...]) -> tuple[str, ...]:
    """A model's own class names made distinct: a name its metadata gives to several classes (ImageNet's
    ``crane``, a bird and a machine) is shown with each one's index, ``crane (134)`` and ``crane (517)``,
    so that every label and target names one class. Names given once are unchanged."""
    counts: dict[str, int] = {}
    for name in names:
        counts[name] = counts.get(name, 0) + 1
    return tuple(f"{name} ({index})" if counts[name] > 1 else name for index, name in enumerate(names))


@dataclass(frozen=True)
class Preprocessing:
    """A model's expected input; None where the model's metadata does not say (the caller's settings or
    defaults then apply).

    Attributes:
        mean, std: per-channel normalization in [0,1] pixel units (``(x - mean) / std``), one value per
            channel, or None.
        input_size: (H, W) of the pixels the model takes, or None (any size: images are not resized).
        resize: how an image file is scaled before the centre crop (see :data:`ResizeMode`).
        resize_size: (H, W) target of the resize step; None means ``input_size`` (no crop margin).
        interpolation: the PIL resampling filter of the resize.
        crop_convention: whose rounding the centre crop follows (see :data:`CropConvention`).
        pad_fill: 8-bit fill per channel (or one for all) where the crop pads a smaller image.
        channels: 3 (RGB) or 1 (grayscale, PIL mode L).
        class_names: the class name of each logit index, or None.
        origins: field name → where its value came from, e.g. ``{"mean": "config.json pretrained_cfg"}``;
            fields absent here are defaults or unknown.
    """

    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    input_size: tuple[int, int] | None = None
    resize: ResizeMode = "shorter-side"
    resize_size: tuple[int, int] | None = None
    interpolation: Interpolation = "bilinear"
    crop_convention: CropConvention = "torchvision"
    pad_fill: tuple[int, ...] = (0,)
    channels: int = 3
    class_names: tuple[str, ...] | None = None
    origins: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "origins", MappingProxyType(dict(self.origins)))
        if self.resize not in RESIZE_MODES:
            raise OptionError(f"resize={self.resize!r} ({self._origin('resize')}) must be one of {RESIZE_MODES}")
        if self.interpolation not in INTERPOLATIONS:
            raise OptionError(
                f"interpolation={self.interpolation!r} ({self._origin('interpolation')}) must be one of "
                f"{INTERPOLATIONS}"
            )
        if self.channels not in CHANNEL_MODES:
            raise OptionError(f"channels={self.channels} ({self._origin('channels')}) must be 3 (RGB) or 1 (grayscale)")
        if (self.mean is None) != (self.std is None):
            raise OptionError("mean and std go together: give both or neither")
        for name, values in (("mean", self.mean), ("std", self.std)):
            if values is not None and len(values) not in (1, self.channels):
                raise OptionError(
                    f"{name} has {len(values)} values ({self._origin(name)}) but the model takes "
                    f"{self.channels} channel(s)"
                )
        if self.std is not None and any(not s > 0 for s in self.std):
            raise OptionError(f"std={self.std} ({self._origin('std')}) must be positive")
        for name, size in (("input_size", self.input_size), ("resize_size", self.resize_size)):
            if size is not None and (len(size) != 2 or min(size) < 1):
                raise OptionError(f"{name}={size} ({self._origin(name)}) must be (H, W) with positive sides")

    def __reduce__(self) -> tuple[type[Preprocessing], tuple[object, ...]]:
        """Pickle and deep-copy with ``origins`` as a dict (a read-only mapping proxy cannot be pickled)."""
        values = (getattr(self, f.name) for f in fields(self))
        return type(self), tuple(dict(v) if isinstance(v, MappingProxyType) else v for v in values)

    def _origin(self, name: str) -> str:
        return f"from {self.origins[name]}" if name in self.origins else "default"

    def as_settings(self) -> tuple[dict[str, object], dict[str, str]]:
        """The plugin's settings this metadata supplies (``mean``, ``std``, ``input_size``, ``image_mode``,
        ``class_names``; those it does not say are left out) and where each came from, for
        :func:`~pytest_advrobust.core.settings.precedence.with_model_metadata`."""
        values: dict[str, object] = {
            "mean": self.mean,
            "std": self.std,
            "input_size": self.input_size,
            "image_mode": self.image_mode if "channels" in self.origins else None,
            "class_names": None if self.class_names is None else distinct_names(self.class_names),
        }
        origins = {name: self.origins.get(name, "the model's metadata") for name in values}
        origins["image_mode"] = self.origins.get("channels", "the model's metadata")
        return {k: v for k, v in values.items() if v is not None}, origins

    def describe(self) -> str:
        """How image files are brought to the input size, in words: ``resized (bicubic) so the shorter side
        is 36, then centre-cropped to 32x32``."""
        if self.input_size is None:
            return "not resized"
        crop = f"{self.input_size[0]}x{self.input_size[1]}"
        target = self.resize_size or self.input_size
        how = {
            "shorter-side": f"resized ({self.interpolation}) so the shorter side is {min(target)}",
            "exact": f"resized ({self.interpolation}) to {target[0]}x{target[1]}",
            "longer-side": f"resized ({self.interpolation}) so the longer side is {max(target)}, padded",
            "none": "not resized",
        }[self.resize]
        if self.resize == "exact" and target == self.input_size:
            return how
        return f"{how}, then centre-cropped to {crop}"

    @property
    def image_mode(self) -> str:
        """The PIL mode images are converted to: ``"RGB"`` for 3 channels, ``"L"`` for 1."""
        return CHANNEL_MODES[self.channels]


def _pil_filter(name: Interpolation) -> int:
    from PIL import Image

    return int(Image.Resampling[name.upper()])


def _shorter_side_size(height: int, width: int, target: tuple[int, int]) -> tuple[int, int]:
    """(H, W) after scaling the shorter side to ``target``, with the rounding of the library that does it."""
    target_h, target_w = target
    if target_h == target_w:  # torchvision Resize(int) / transformers get_resize_output_image_size
        short, long = min(height, width), max(height, width)
        new_long = int(target_h * long / short)
        return (new_long, target_h) if height > width else (target_h, new_long)
    ratio = min(height / target_h, width / target_w)  # timm ResizeKeepRatio, longest=0
    return round(height / ratio), round(width / ratio)


def _longer_side_size(height: int, width: int, target: tuple[int, int]) -> tuple[int, int]:
    ratio = max(height / target[0], width / target[1])  # timm ResizeKeepRatio, longest=1
    return round(height / ratio), round(width / ratio)


def _resized_size(height: int, width: int, preprocessing: Preprocessing) -> tuple[int, int]:
    target = preprocessing.resize_size or preprocessing.input_size
    assert target is not None
    if preprocessing.resize == "shorter-side":
        return _shorter_side_size(height, width, target)
    if preprocessing.resize == "longer-side":
        return _longer_side_size(height, width, target)
    if preprocessing.resize == "exact":
        return target
    return height, width


def _pad(image: Image.Image, size: tuple[int, int], preprocessing: Preprocessing) -> Image.Image:
    """``image`` centred on a canvas at least ``size`` (H, W), filled with ``pad_fill``."""
    from PIL import Image

    new_h, new_w = max(size[0], image.height), max(size[1], image.width)
    if preprocessing.crop_convention == "torchvision":
        left, top = (new_w - image.width) // 2, (new_h - image.height) // 2
    else:
        left, top = math.ceil((new_w - image.width) / 2), math.ceil((new_h - image.height) / 2)
    bands = len(image.getbands())
    fill = preprocessing.pad_fill * bands if len(preprocessing.pad_fill) == 1 else preprocessing.pad_fill
    canvas = Image.new(image.mode, (new_w, new_h), fill[0] if bands == 1 else tuple(fill[:bands]))
    canvas.paste(image, (left, top))
    return canvas


def _center_crop(image: Image.Image, size: tuple[int, int], preprocessing: Preprocessing) -> Image.Image:
    height, width = size
    if (image.height, image.width) == size:
        return image
    if image.height < height or image.width < width:
        image = _pad(image, size, preprocessing)
    if preprocessing.crop_convention == "torchvision":
        top, left = round((image.height - height) / 2.0), round((image.width - width) / 2.0)
    else:
        top, left = (image.height - height) // 2, (image.width - width) // 2
    return image.crop((left, top, left + width, top + height))


def fit_image(image: Image.Image, preprocessing: Preprocessing) -> Image.Image:
    """``image`` converted to the model's channel mode and resized and centre-cropped to its
    ``input_size`` (unchanged in size when that is None), as the model's eval transform does.

    An image in another mode than RGB/L is converted with PIL's ``Image.convert`` (as timm's and
    transformers' loaders do); :func:`pytest_advrobust.core.data.images.decode` composites transparency first.
    """
    mode = preprocessing.image_mode
    if image.mode != mode:
        image = image.convert(mode)
    if preprocessing.input_size is None:
        return image
    if preprocessing.resize != "none":
        new_h, new_w = _resized_size(image.height, image.width, preprocessing)
        if (new_h, new_w) != (image.height, image.width):
            image = image.resize((new_w, new_h), _pil_filter(preprocessing.interpolation), reducing_gap=None)
    return _center_crop(image, preprocessing.input_size, preprocessing)


def to_pixels(image: Image.Image, preprocessing: Preprocessing) -> torch.Tensor:
    """``image`` as the model's eval transform prepares it, before normalization: a float32 tensor of
    shape (C, H, W) with values ``k / 255`` in [0,1] (C = ``preprocessing.channels``, (H, W) =
    ``input_size`` or the image's own size)."""
    array = np.asarray(fit_image(image, preprocessing), dtype=np.uint8)
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div_(255.0)
