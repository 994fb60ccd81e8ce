"""Loading images: files or folders of PNG/JPEG, optionally labelled, as an N×3×H×W batch in [0,1].

A folder whose images sit in subfolders is read as an ImageFolder layout: the subfolder name is the
label (a class index or name). A labels file (``filename,label`` per line) overrides that. Images are
converted to RGB (each conversion is noted), and with ``input_size`` resized so the shorter side fits
and center-cropped; pixel values stay on the 8-bit grid.
"""

from __future__ import annotations

import csv
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .classes import ClassNames, load_class_names
from .errors import AdvRobustError, ImageLoadError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff")


@dataclass
class ImageSet:
    """A batch of images with names and optional labels.

    ``pixels``: N×3×H×W float32 in [0,1]. ``labels[i]`` is a class index or None (then the model's clean
    prediction is used); ``label_sources[i]`` says where it came from. ``notes`` lists conversions made.
    """

    pixels: torch.Tensor
    names: list[str]
    labels: list[int | None]
    label_sources: list[str]
    notes: list[str] = field(default_factory=list)
    class_names: ClassNames | None = None
    """The class names the labels were read with; :func:`attack` uses them unless given others."""

    def __len__(self) -> int:
        return len(self.names)

    def shard(self, index: int, count: int) -> ImageSet:
        """The ``index``-th of ``count`` contiguous, near-equal parts (what one test shard attacks)."""
        start, stop = index * len(self) // count, (index + 1) * len(self) // count
        return ImageSet(
            self.pixels[start:stop],
            self.names[start:stop],
            self.labels[start:stop],
            self.label_sources[start:stop],
            list(self.notes),
            self.class_names,
        )


def _open_rgb(path: Path, notes: list[str]) -> object:
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
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or array.max(initial=0) > 255 else 255.0
        array8 = np.clip(np.rint(array / top * 255.0), 0, 255).astype(np.uint8)
        notes.append(f"{path.name}: {mode} ({'16-bit' if top > 255 else '32-bit'}) grayscale scaled to 8-bit RGB")
        return Image.fromarray(array8, mode="L").convert("RGB")
    if mode == "F":
        array = np.asarray(image, dtype=np.float64)
        scale = 255.0 if array.max(initial=0) > 1.0 else 1.0
        array8 = np.clip(np.rint(array / scale * 255.0), 0, 255).astype(np.uint8)
        notes.append(f"{path.name}: float grayscale converted to 8-bit RGB")
        return Image.fromarray(array8, mode="L").convert("RGB")
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        notes.append(f"{path.name}: {mode} with transparency composited on white, converted to RGB")
        return Image.alpha_composite(background, rgba).convert("RGB")
    notes.append(f"{path.name}: {mode} converted to RGB")
    return image.convert("RGB")


def _fit(image: object, size: tuple[int, int] | None, path: Path, notes: list[str]) -> object:
    from PIL import Image

    assert isinstance(image, Image.Image)
    if size is None:
        return image
    height, width = size
    if image.height < height or image.width < width:
        message = (
            f"{path.name} is {image.width}x{image.height}, smaller than input size {width}x{height}: "
            "upscaled, which blurs it"
        )
        notes.append(message)
        warnings.warn(message, stacklevel=3)
    scale = max(height / image.height, width / image.width)
    new_w, new_h = max(width, round(image.width * scale)), max(height, round(image.height * scale))
    if (new_w, new_h) != image.size:
        image = image.resize((new_w, new_h), Image.Resampling.BILINEAR, reducing_gap=None)
    left, top = (new_w - width) // 2, (new_h - height) // 2
    return image.crop((left, top, left + width, top + height))


def _to_tensor(image: object) -> torch.Tensor:
    array = np.asarray(image, dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div_(255.0)


def _collect(path: Path) -> list[tuple[Path, str, str | None]]:
    """(file, display name, folder label) for a file or a folder (one level of label subfolders)."""
    if path.is_file():
        return [(path, path.name, None)]
    if not path.exists():
        raise ImageLoadError(f"images path {path} does not exist")
    found: list[tuple[Path, str, str | None]] = []
    skipped: list[str] = []
    for child in sorted(path.iterdir()):
        if child.name.startswith("."):
            continue
        if child.is_dir():
            for file in sorted(child.iterdir()):
                if file.name.startswith(".") or file.is_dir():
                    continue
                if file.suffix.lower() in IMAGE_SUFFIXES:
                    found.append((file, f"{child.name}/{file.name}", child.name))
                else:
                    skipped.append(f"{child.name}/{file.name}")
        elif child.suffix.lower() in IMAGE_SUFFIXES:
            found.append((child, child.name, None))
        elif child.suffix.lower() not in (".txt", ".csv", ".md", ".json"):
            skipped.append(child.name)
    if skipped:
        warnings.warn(
            f"images folder {path}: skipped {len(skipped)} file(s) without an image suffix "
            f"({', '.join(skipped[:5])}); supported: {', '.join(IMAGE_SUFFIXES)}",
            stacklevel=3,
        )
    if not found:
        raise ImageLoadError(
            f"images folder {path} contains no images ({', '.join(IMAGE_SUFFIXES)}), "
            "neither directly nor in label subfolders"
        )
    return found


def read_labels_file(path: Path) -> dict[str, str]:
    """``filename,label`` lines (``#`` comments and blank lines ignored) as a dict."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ImageLoadError(f"labels file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ImageLoadError(f"labels file {path} cannot be read as UTF-8 text: {exc}") from None
    labels: dict[str, str] = {}
    for number, row in enumerate(csv.reader(text.splitlines()), start=1):
        if not row or not row[0].strip() or row[0].lstrip().startswith("#"):
            continue
        if len(row) != 2 or not row[1].strip():
            raise ImageLoadError(f"labels file {path}, line {number}: expected 'filename,label', got {','.join(row)!r}")
        labels[row[0].strip()] = row[1].strip()
    if not labels:
        raise ImageLoadError(f"labels file {path} has no 'filename,label' lines")
    return labels


def load_images(
    paths: str | Path | Sequence[str | Path],
    *,
    input_size: int | tuple[int, int] | None = None,
    labels_file: str | Path | None = None,
    class_names: str | Path | Sequence[str] | ClassNames | None = None,
) -> ImageSet:
    """Load image files and folders into an :class:`ImageSet` (see the module docstring).

    ``input_size``: 224 or (H, W); ``class_names``: anything :func:`load_class_names` takes, used to
    read labels given as names (folder names or the labels file).
    """
    if isinstance(input_size, int):
        input_size = (input_size, input_size)
    if isinstance(paths, (str, Path)):
        paths = [paths]
    if not paths:
        raise ImageLoadError("no images given: set images to a file or folder")
    names_map = load_class_names(class_names)
    entries: list[tuple[Path, str, str | None]] = []
    for path in paths:
        entries.extend(_collect(Path(path)))
    file_labels = read_labels_file(Path(labels_file)) if labels_file is not None else None

    notes: list[str] = []
    tensors: list[torch.Tensor] = []
    labels: list[int | None] = []
    sources: list[str] = []
    for file, name, folder_label in entries:
        image = _fit(_open_rgb(file, notes), input_size, file, notes)
        tensors.append(_to_tensor(image))
        raw_label: str | None = folder_label
        source = "folder name"
        if file_labels is not None:
            raw_label = file_labels.get(name, file_labels.get(file.name))
            source = f"labels file {Path(labels_file).name}" if labels_file is not None else source
            if raw_label is None:
                raise ImageLoadError(f"labels file {labels_file} has no line for image {name}; add '{name},<label>'")
        if raw_label is None:
            labels.append(None)
            sources.append("model prediction")
            continue
        try:
            labels.append(names_map.index(raw_label))
        except AdvRobustError as exc:
            raise ImageLoadError(f"label of image {name} ({source}): {exc}") from None
        sources.append(source)
    if file_labels is not None and any(Path(path).is_dir() for path in paths):
        # A folder was given: its labels file must not name images the folder lacks (typos, moves).
        known = {name for _, name, _ in entries} | {file.name for file, _, _ in entries}
        extra = sorted(set(file_labels) - known)
        if extra:
            raise ImageLoadError(f"labels file {labels_file} names images that were not found: {', '.join(extra[:5])}")
    shapes = {tuple(t.shape) for t in tensors}
    if len(shapes) > 1:
        raise ImageLoadError(
            "images have different sizes ("
            + ", ".join(f"{s[2]}x{s[1]}" for s in sorted(shapes))
            + "); set input_size (--adv-input-size=224) to resize and center-crop them"
        )
    conversions = [note for note in notes if "smaller than input size" not in note]
    if conversions:
        warnings.warn(
            f"converted {len(conversions)} image(s) to 8-bit RGB: " + "; ".join(conversions[:5]),
            stacklevel=2,
        )
    names = [name for _, name, _ in entries]
    return ImageSet(torch.stack(tensors), names, labels, sources, notes, names_map if len(names_map) else None)
