"""Decoding one image: a file or a PIL image to C×H×W float pixels in [0,1] on the 8-bit grid.

Opened safely (corrupt, truncated or oversized files raise :class:`~pytest_advrobust.core.errors.ImageLoadError`),
turned upright by its EXIF orientation, converted to the model's channels (RGB or L; each conversion noted)
and, with a size, resized so the shorter side fits and centre-cropped. Both image readers use it: the files
of :mod:`~pytest_advrobust.core.data.images` and the PIL images of a Dataset in
:mod:`~pytest_advrobust.core.data.sources`.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ImageLoadError
from ..models.preprocessing import Preprocessing, fit_image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff")
IMAGE_MODES = ("RGB", "L")
"""3-channel colour, or 1-channel grayscale (PIL's mode names)."""


def _open(path: Path) -> Any:
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(path)
        image.load()
    except FileNotFoundError:
        raise ImageLoadError(f"image file {path} does not exist") from None
    except UnidentifiedImageError:
        raise ImageLoadError(f"image file {path} is not an image Pillow can read (corrupt, or not PNG/JPEG)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageLoadError(f"image file {path} is corrupt or truncated: {exc}") from None
    except Image.DecompressionBombError as exc:
        raise ImageLoadError(f"image file {path} is too large to load safely: {exc}") from None
    return image


def _upright(image: Any, name: str, notes: list[str]) -> Any:
    """Apply the EXIF orientation (as photo viewers do), with a note."""
    from PIL import ImageOps

    orientation = image.getexif().get(0x0112, 1)
    if orientation in (None, 1):
        return image
    notes.append(f"{name}: EXIF orientation {orientation} applied")
    return ImageOps.exif_transpose(image)


def _convert(image: Any, mode: str, name: str, notes: list[str]) -> Any:
    """``image`` in ``mode`` (RGB or L) with 8-bit values; every conversion is noted."""
    from PIL import Image

    source = image.mode
    if source == mode:
        return image
    if source in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        if source == "F":
            top = 255.0 if array.max(initial=0) > 1.0 else 1.0
            what = "float grayscale"
        else:
            top = 65535.0 if source.startswith("I;16") or array.max(initial=0) > 255 else 255.0
            what = f"{source} ({'16-bit' if top > 255 else '32-bit'}) grayscale"
        gray = Image.fromarray(np.clip(np.rint(array / top * 255.0), 0, 255).astype(np.uint8), mode="L")
        notes.append(f"{name}: {what} scaled to 8-bit {mode}")
        return gray if mode == "L" else gray.convert(mode)
    if source in ("RGBA", "LA", "PA") or (source == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        notes.append(f"{name}: {source} with transparency composited on white, converted to {mode}")
        return Image.alpha_composite(background, rgba).convert(mode)
    notes.append(f"{name}: {source} converted to {mode}")
    return image.convert(mode)


def _warn_if_upscaled(image: Any, size: tuple[int, int], name: str, notes: list[str]) -> None:
    height, width = size
    if image.height < height or image.width < width:
        message = (
            f"{name} is {image.width}x{image.height}, smaller than input size {width}x{height}: "
            "upscaled, which blurs it"
        )
        notes.append(message)
        warnings.warn(message, stacklevel=4)


def _fit(image: Any, size: tuple[int, int] | None, name: str, notes: list[str]) -> Any:
    """The plugin's rule: scale so the image covers ``size`` (bilinear), then centre-crop."""
    from PIL import Image

    if size is None:
        return image
    _warn_if_upscaled(image, size, name, notes)
    height, width = size
    scale = max(height / image.height, width / image.width)
    new_w, new_h = max(width, round(image.width * scale)), max(height, round(image.height * scale))
    if (new_w, new_h) != image.size:
        image = image.resize((new_w, new_h), Image.Resampling.BILINEAR, reducing_gap=None)
    left, top = (new_w - width) // 2, (new_h - height) // 2
    return image.crop((left, top, left + width, top + height))


def _to_tensor(image: Any) -> torch.Tensor:
    array = np.asarray(image, dtype=np.uint8)
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div_(255.0)


def pil_pixels(image: Any, name: str, notes: list[str], mode: str | None = None) -> torch.Tensor:
    """A PIL image (e.g. from a Dataset without ToTensor) as C×H×W float in [0,1]; ``mode`` None keeps
    L as 1 channel and converts anything else to RGB."""
    wanted = mode or ("L" if image.mode == "L" else "RGB")
    return _to_tensor(_convert(image, wanted, name, notes))


def decode(
    path: Path, name: str, mode: str, size: tuple[int, int] | None, notes: list[str], fit: Preprocessing | None = None
) -> torch.Tensor:
    """One image file as C×H×W float in [0,1]: opened, upright, converted, fitted to ``size`` by the
    plugin's rule, or, with ``fit`` (the model's eval transform), resized and cropped as the model's own
    library does it."""
    image = _convert(_upright(_open(path), name, notes), mode, name, notes)
    if fit is not None and fit.input_size is not None:
        _warn_if_upscaled(image, fit.input_size, name, notes)
        return _to_tensor(fit_image(image, fit))
    return _to_tensor(_fit(image, size, name, notes))
