"""Where images come from, one batch at a time: what users already have, in memory that does not grow.

:func:`as_source` accepts an N×C×H×W tensor (with labels, or as an ``(x, y)`` pair), an :class:`ImageSet`,
image files (:class:`~pytest_advrobust.core.data.images.ImageFiles`, decoded batch by batch), any map-style
``Dataset`` yielding ``(image, label)`` (torchvision's ``ImageFolder`` with its own transforms: class
names from ``dataset.classes``, image names from its file paths), a ``DataLoader``, or any iterable of
``(x, y)`` batches. Every source yields :class:`Batch` es of float pixels in [0,1], with a name, a given
label (or None) and a label source per image, and can be split into shards by image index.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from ..errors import AdvRobustError, OptionError
from .classes import ClassNames, load_class_names
from .decoding import pil_pixels

SOURCE_KINDS = (
    "an N×C×H×W tensor of [0,1] pixels, an (x, y) pair, an ImageSet, a map-style Dataset yielding "
    "(image, label), a DataLoader, or an iterable of (x, y) batches"
)


LabelKind = Literal["given", "dataset", "loader", "folder", "labels-file", "prediction"]


class LabelSource(str):
    """Where an image's label came from: the text reports show (it is that string), and a ``kind`` the
    code compares instead of the text."""

    kind: LabelKind

    def __new__(cls, text: str, kind: LabelKind = "given") -> LabelSource:
        source = super().__new__(cls, text)
        source.kind = kind
        return source

    @classmethod
    def labels_file(cls, name: str) -> LabelSource:
        return cls(f"labels file {name}", "labels-file")

    @classmethod
    def described(cls, text: str) -> LabelSource:
        """A label source as a caller described it (an :class:`ImageSet`'s ``label_sources``)."""
        return text if isinstance(text, LabelSource) else cls(str(text))


GIVEN = LabelSource("given")
DATASET = LabelSource("dataset", "dataset")
LOADER = LabelSource("loader", "loader")
FOLDER = LabelSource("folder name", "folder")
PREDICTION = LabelSource("model prediction", "prediction")
"""No label: the model's clean prediction is the label."""


@dataclass
class Batch:
    """A batch of images: ``pixels`` n×C×H×W float in [0,1], and per image a name, a given label (a class
    index, or None for the model's clean prediction) and where that label came from."""

    pixels: torch.Tensor
    names: list[str]
    labels: list[int | None]
    sources: list[LabelSource]
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.names)


class ImageSource:
    """Images that can be read batch by batch. ``names``: every image's name when known before reading
    (None for an iterable, whose length may be unknown); ``class_names``: the names the source's labels
    are in (e.g. ``ImageFolder.classes``), or None."""

    names: list[str] | None = None
    class_names: ClassNames | None = None
    notes: list[str]

    def batches(self, batch_size: int | None, workers: int = 0) -> Iterator[Batch]:
        """Yield the images in order, at most ``batch_size`` (None: all) at a time; ``workers`` decode
        in background processes where the source decodes at all."""
        raise NotImplementedError

    def shard(self, index: int, count: int) -> ImageSource:
        """The ``index``-th of ``count`` contiguous, near-equal parts by image index."""
        raise NotImplementedError

    def __len__(self) -> int:
        if self.names is None:
            raise TypeError(f"{type(self).__name__} has no length before it is read")
        return len(self.names)

    @property
    def count(self) -> int | None:
        """How many images, when known before reading."""
        return None if self.names is None else len(self.names)


def shard_range(index: int, count: int, total: int) -> range:
    """Image indices of shard ``index`` of ``count`` (contiguous, sizes differ by at most one)."""
    return range(index * total // count, (index + 1) * total // count)


@dataclass
class ImageSet(ImageSource):
    """Images already in memory, with names and optional labels.

    Args:
        pixels: N×C×H×W float in [0,1] (a single C×H×W image is accepted).
        names: one per image; default ``image 0``, ``image 1``, ...
        labels: per image a class index, a class name (with ``class_names``) or None (the model's clean
            prediction is used): a list, a tensor or a numpy array; default None.
        label_sources: where each label came from (text, or :class:`LabelSource`); default ``"given"``
            for labels, else ``"model prediction"``.
        notes: conversions made while loading (reported with the run).
        class_names: the names the labels were read with (a list, ``"a,b,c"``, a file, ``"imagenet"``
            or a :class:`ClassNames`); :func:`~pytest_advrobust.attack` uses them unless given others.
    """

    pixels: torch.Tensor
    names: list[str] | None = None
    labels: list[int | None] | None = None
    label_sources: Sequence[str] | None = None
    notes: list[str] = field(default_factory=list)
    class_names: ClassNames | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.pixels, torch.Tensor):
            raise OptionError(f"ImageSet pixels must be a tensor, got {type(self.pixels).__name__}")
        if self.pixels.dim() == 3:
            self.pixels = self.pixels.unsqueeze(0)
        n = self.pixels.shape[0]
        if self.class_names is not None and not isinstance(self.class_names, ClassNames):
            self.class_names = load_class_names(self.class_names)
        self.names = [f"image {i}" for i in range(n)] if self.names is None else [str(name) for name in self.names]
        classes = self.class_names or ClassNames()
        self.labels = [None] * n if self.labels is None else label_indices(self.labels, self.names, classes, "ImageSet")
        if self.label_sources is None:
            self.label_sources = [PREDICTION if label is None else GIVEN for label in self.labels]
        self.label_sources = [LabelSource.described(source) for source in self.label_sources]
        for what, values in (("names", self.names), ("labels", self.labels), ("label_sources", self.label_sources)):
            if len(values) != n:
                raise OptionError(f"ImageSet: {len(values)} {what} for {n} images")

    def batches(self, batch_size: int | None, workers: int = 0) -> Iterator[Batch]:
        assert self.names is not None and self.labels is not None and self.label_sources is not None
        n = self.pixels.shape[0]
        step = batch_size or max(n, 1)
        for start in range(0, n, step):
            stop = min(start + step, n)
            yield Batch(
                self.pixels[start:stop], self.names[start:stop], self.labels[start:stop],
                [LabelSource.described(source) for source in self.label_sources[start:stop]],
            )  # fmt: skip

    def shard(self, index: int, count: int) -> ImageSet:
        assert self.names is not None and self.labels is not None and self.label_sources is not None
        part = shard_range(index, count, len(self.names))
        s = slice(part.start, part.stop)
        return ImageSet(
            self.pixels[s], self.names[s], self.labels[s], self.label_sources[s], list(self.notes), self.class_names
        )


def _label_value(label: Any) -> int | None:
    """A class index from an int, a 0-d tensor or None."""
    if label is None:
        return None
    if hasattr(label, "item") and not isinstance(label, torch.Tensor):  # a numpy scalar or 0-d array
        label = label.item()
    if isinstance(label, torch.Tensor):
        if label.numel() != 1:
            raise OptionError(
                f"a label must be one class index, got a tensor of shape {tuple(label.shape)} "
                "(one-hot or soft labels: pass label.argmax())"
            )
        label = label.item()
    if isinstance(label, bool) or not isinstance(label, int):
        try:
            as_int = int(label)
        except (TypeError, ValueError):
            raise OptionError(f"a label must be a class index, got {label!r}") from None
        if as_int != label:
            raise OptionError(f"a label must be a class index, got {label!r}")
        return as_int
    return label


def _pixels(image: Any, what: str, notes: list[str]) -> torch.Tensor:
    """A dataset item's image as C×H×W float in [0,1]: a tensor (float, or uint8 divided by 255) or a PIL image."""
    if isinstance(image, torch.Tensor):
        if image.dtype == torch.uint8:
            return image.float().div(255)
        if not image.is_floating_point():
            raise OptionError(f"{what}: images must be float pixels in [0,1] or uint8, got dtype {image.dtype}")
        return image
    if type(image).__module__.startswith("PIL."):
        return pil_pixels(image, what, notes)
    raise OptionError(
        f"{what}: a dataset item's image must be a tensor or a PIL image, got {type(image).__name__}; "
        "add transforms.ToTensor() (without Normalize: set mean/std instead)"
    )


def _split_item(item: Any, what: str) -> tuple[Any, Any]:
    """A dataset item or a loader batch as (image(s), label(s) or None)."""
    if isinstance(item, torch.Tensor) or type(item).__module__.startswith("PIL."):
        return item, None
    if isinstance(item, dict):
        image = next((item[k] for k in ("pixel_values", "image", "images", "x") if k in item), None)
        label = next((item[k] for k in ("label", "labels", "y", "target") if k in item), None)
        if image is None:
            raise OptionError(f"{what}: a dict item needs an 'image' or 'pixel_values' key, got {sorted(item)}")
        return image, label
    if isinstance(item, (tuple, list)) and len(item) >= 1:
        return item[0], item[1] if len(item) > 1 else None
    raise OptionError(f"{what}: expected (image, label) items, got {type(item).__name__}")


def _dataset_names(dataset: Any) -> list[str] | None:
    """Image names from a dataset's file paths (torchvision's ``samples``/``imgs``), relative to its root;
    a ``Subset`` names its images as the dataset it picks from does."""
    if isinstance(dataset, torch.utils.data.Subset):
        inner = _dataset_names(dataset.dataset)
        return None if inner is None else [inner[i] for i in dataset.indices]
    samples = getattr(dataset, "samples", None) or getattr(dataset, "imgs", None)
    if not isinstance(samples, Sequence) or len(samples) != len(dataset):
        return None
    root = getattr(dataset, "root", None)
    names = []
    for sample in samples:
        path = sample[0] if isinstance(sample, (tuple, list)) else sample
        if not isinstance(path, (str, Path)):
            return None
        try:
            names.append(Path(path).relative_to(root).as_posix() if root else Path(path).name)
        except ValueError:
            names.append(Path(path).name)
    return names


def _dataset_classes(dataset: Any) -> ClassNames | None:
    while isinstance(dataset, torch.utils.data.Subset):
        dataset = dataset.dataset
    classes = getattr(dataset, "classes", None)
    features = getattr(dataset, "features", None)  # a Hugging Face dataset: its ClassLabel's names
    if classes is None and isinstance(features, dict):
        label = next((features[k] for k in ("label", "labels") if k in features), None)
        classes = getattr(label, "names", None)
    if isinstance(classes, Sequence) and classes and all(isinstance(c, str) for c in classes):
        return ClassNames(classes)
    return None


class _Items(torch.utils.data.Dataset[tuple[torch.Tensor, int | None, list[str]]]):
    """Dataset items at given indices as (pixels, label, notes); decoded in DataLoader workers."""

    def __init__(self, dataset: Any, indices: range, names: list[str]) -> None:
        self.dataset, self.indices, self.names = dataset, indices, names

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int | None, list[str]]:
        notes: list[str] = []
        image, label = _split_item(self.dataset[self.indices[i]], f"dataset item {self.names[i]}")
        return _pixels(image, f"dataset item {self.names[i]}", notes), _label_value(label), notes


def as_list(items: list[Any]) -> list[Any]:
    """A DataLoader ``collate_fn`` that keeps a batch's items as they are (images are stacked by the
    reader, which can name the image of another size)."""
    return items


def _stack(pixels: Sequence[torch.Tensor], names: Sequence[str], hint: str) -> torch.Tensor:
    shapes = {tuple(p.shape) for p in pixels}
    if len(shapes) > 1:
        shown = ", ".join("x".join(map(str, s)) for s in sorted(shapes))
        raise OptionError(f"images {names[0]}…{names[-1]} have different shapes ({shown}); {hint}")
    return torch.stack(list(pixels))


class DatasetImages(ImageSource):
    """A map-style ``Dataset`` whose items are ``(image, label)`` (or ``{"image": …, "label": …}``), read by
    index in batches (with ``workers`` background processes); shards split it by index."""

    def __init__(
        self,
        dataset: Any,
        *,
        names: Sequence[str] | None = None,
        class_names: ClassNames | None = None,
        indices: range | None = None,
    ) -> None:
        self.dataset = dataset
        self.indices = indices if indices is not None else range(len(dataset))
        every = list(names) if names is not None else _dataset_names(dataset)
        if every is not None and len(every) != len(dataset):
            raise OptionError(f"{len(every)} names given for a dataset of {len(dataset)} images")
        self.all_names = every if every is not None else [f"image {i}" for i in range(len(dataset))]
        self.names = [self.all_names[i] for i in self.indices]
        self.class_names = class_names if class_names is not None else _dataset_classes(dataset)
        self.notes = []

    def batches(self, batch_size: int | None, workers: int = 0) -> Iterator[Batch]:
        assert self.names is not None
        items = _Items(self.dataset, self.indices, self.names)
        loader = torch.utils.data.DataLoader(
            items, batch_size=batch_size or max(len(items), 1), num_workers=workers, collate_fn=as_list
        )
        done = 0
        for rows in loader:
            names = self.names[done : done + len(rows)]
            done += len(rows)
            pixels = _stack([r[0] for r in rows], names, "add a Resize/CenterCrop transform, or set input_size")
            labels = [r[1] for r in rows]
            yield Batch(
                pixels,
                names,
                labels,
                [PREDICTION if label is None else DATASET for label in labels],
                [note for r in rows for note in r[2]],
            )

    def shard(self, index: int, count: int) -> DatasetImages:
        part = shard_range(index, count, len(self.indices))
        sub = self.indices[part.start : part.stop]
        return DatasetImages(self.dataset, names=self.all_names, class_names=self.class_names, indices=sub)


class BatchIterable(ImageSource):
    """A ``DataLoader`` or any iterable of ``(x, y)`` batches (or of bare ``x`` batches), read as given.

    Images are named by their running index (``image 0`` …), or by the dataset's file paths for a
    ``DataLoader`` that reads its dataset in order. A shard reads every batch and keeps its own index
    range (pass the Dataset instead, and a shard reads only its part)."""

    def __init__(self, batches: Iterable[Any], *, part: tuple[int, int] | None = None) -> None:
        self.source = batches
        self.part = part
        dataset = getattr(batches, "dataset", None)
        self.class_names = _dataset_classes(dataset) if dataset is not None else None
        self.ordered_names = _dataset_names(dataset) if dataset is not None and _in_order(batches) else None
        self.names = None
        self.notes = []
        if part is not None:
            self.notes.append(f"shard {part[0] + 1} of {part[1]} read every batch of the loader and kept its images")

    def batches(self, batch_size: int | None, workers: int = 0) -> Iterator[Batch]:
        yield from self._all()  # the loader's own batches, workers and transforms

    def _all(self) -> Iterator[Batch]:
        wanted: range | None = None
        if self.part is not None:
            total = _length(self.source)
            if total is None:
                raise OptionError("a sharded test needs images of known length: pass a Dataset or a DataLoader")
            wanted = shard_range(self.part[0], self.part[1], total)
        offset = 0
        for number, item in enumerate(self.source):
            images, labels = _split_item(item, f"batch {number}")
            if _is_array(images):
                images = torch.as_tensor(images)
            if not isinstance(images, torch.Tensor):
                raise OptionError(
                    f"batch {number}: images must be an N×C×H×W tensor, got {type(images).__name__}; "
                    "add transforms.ToTensor() to the dataset"
                )
            pixels = images if images.dim() == 4 else images.unsqueeze(0)
            n = pixels.shape[0]
            given = _batch_labels(labels, n, number)
            names = [self._name(offset + i) for i in range(n)]
            keep = [i for i in range(n) if wanted is None or offset + i in wanted]
            offset += n
            if not keep:
                continue
            pixels = _pixels(pixels, f"batch {number}", [])
            if len(keep) < n:
                pixels = pixels[keep]
            yield Batch(
                pixels,
                [names[i] for i in keep],
                [given[i] for i in keep],
                [PREDICTION if given[i] is None else LOADER for i in keep],
            )

    def _name(self, index: int) -> str:
        if self.ordered_names is not None and index < len(self.ordered_names):
            return self.ordered_names[index]
        return f"image {index}"

    def shard(self, index: int, count: int) -> BatchIterable:
        return BatchIterable(self.source, part=(index, count))

    @property
    def count(self) -> int | None:
        total = _length(self.source)
        if total is None or self.part is None:
            return total
        return len(shard_range(self.part[0], self.part[1], total))


def _batch_labels(labels: Any, n: int, number: int) -> list[int | None]:
    if labels is None:
        return [None] * n
    values = _label_values(labels)
    if len(values) != n:
        raise OptionError(f"batch {number}: {len(values)} labels for {n} images")
    return [_label_value(v) for v in values]


def _in_order(loader: Any) -> bool:
    sampler = getattr(loader, "sampler", None)
    return isinstance(sampler, torch.utils.data.SequentialSampler)


def _length(source: Any) -> int | None:
    dataset = getattr(source, "dataset", None)
    try:
        return len(dataset) if dataset is not None else None
    except TypeError:
        return None


def as_source(
    images: Any, labels: Any = None, names: Sequence[str] | None = None, classes: ClassNames | None = None
) -> ImageSource:
    """What a user passed as images, as an :class:`ImageSource` (see the module docstring).

    ``labels`` (class indices or names, one per image) and ``names`` apply to in-memory images only.
    """
    from torch.utils.data import DataLoader, Dataset, IterableDataset

    if isinstance(images, (str, Path)):
        raise OptionError(
            f"images={str(images)!r} is a path: pass find_images({str(images)!r}) (read batch by batch) or "
            "load_images(...) (all in memory)"
        )
    if isinstance(images, (tuple, list)) and len(images) == 2 and _is_array(images[0]):
        images = (torch.as_tensor(images[0]), images[1])
    if _is_array(images):
        images = torch.as_tensor(images)  # numpy pixels: the same memory, as a tensor
    if isinstance(images, (tuple, list)) and len(images) == 2 and isinstance(images[0], torch.Tensor):
        if labels is not None:
            raise OptionError("labels were given twice: in the (x, y) pair and as labels")
        images, labels = images
    if isinstance(images, torch.Tensor):
        images = ImageSet(images)
    if isinstance(images, ImageSet):
        return _with_labels(images, labels, names, classes or ClassNames())
    if labels is not None or names is not None:
        raise OptionError(
            f"labels and names can be given only with in-memory images; a {type(images).__name__} carries its own"
        )
    if isinstance(images, ImageSource):
        return images
    if isinstance(images, DataLoader):
        return BatchIterable(images)
    if isinstance(images, Dataset) and not isinstance(images, IterableDataset) and hasattr(images, "__len__"):
        return DatasetImages(images)
    if hasattr(images, "__getitem__") and hasattr(images, "__len__") and not isinstance(images, (list, tuple, str)):
        return DatasetImages(images)  # map-style without torch's base class (e.g. a Hugging Face dataset)
    if isinstance(images, Iterable) and not isinstance(images, (str, bytes, Path, dict)):
        return BatchIterable(images)
    raise OptionError(f"images must be {SOURCE_KINDS}; got {type(images).__name__}")


def _is_array(value: Any) -> bool:
    """A numpy array (without importing numpy)."""
    return type(value).__module__ == "numpy" and type(value).__name__ == "ndarray"


def _label_values(labels: Any) -> list[Any]:
    """Labels as a list of Python values: from a tensor, a numpy array, or any sequence."""
    if isinstance(labels, torch.Tensor) or _is_array(labels):
        return list(labels.flatten().tolist()) if labels.ndim else [labels.item()]
    return [value.item() if hasattr(value, "item") else value for value in labels]


def label_indices(labels: Any, names: Sequence[str], classes: ClassNames, where: str) -> list[int | None]:
    """Labels given as a list, tensor or numpy array of class indices, class names or None, as class
    indices (checked against ``classes`` where it has names); an error names the image and ``where``."""
    indices: list[int | None] = []
    for i, value in enumerate(_label_values(labels)):
        try:
            key = value if isinstance(value, str) else _label_value(value)  # a name, or an index (None stays)
            indices.append(None if key is None else classes.index(key))
        except AdvRobustError as exc:
            name = names[i] if i < len(names) else f"image {i}"
            raise OptionError(f"{where}: label {value!r} of {name}: {exc}") from None
    return indices


def _with_labels(images: ImageSet, labels: Any, names: Sequence[str] | None, classes: ClassNames) -> ImageSet:
    """An ImageSet with a call's labels (indices or names) and names, where given."""
    if labels is None and names is None:
        return images
    assert images.names is not None
    n = len(images.names)
    if labels is not None:
        given = label_indices(labels, images.names, classes, "given labels")
        if len(given) != n:
            raise OptionError(f"{len(given)} labels given for {n} images")
        sources: list[str] = [GIVEN if v is not None else PREDICTION for v in given]
    else:
        given, sources = list(images.labels or []), list(images.label_sources or [])
    if names is not None and len(names) != n:
        raise OptionError(f"{len(names)} names given for {n} images")
    own = images.class_names if labels is None or not len(classes) else classes  # what the labels index now
    return ImageSet(
        images.pixels, list(names) if names is not None else images.names, given, sources, images.notes, own
    )


def warn_notes(notes: Sequence[str], what: str) -> None:
    """One warning for the conversions made while reading images (each is also in the run's notes)."""
    if notes:
        warnings.warn(f"{what}: " + "; ".join(notes[:5]) + (" …" if len(notes) > 5 else ""), stacklevel=3)
