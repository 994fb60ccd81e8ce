"""Image files: PNG/JPEG files or folders, optionally labelled, read batch by batch as N×C×H×W in [0,1].

A folder whose images sit in subfolders is read as an ImageFolder layout: the subfolder name is the
label (a class index or name; without class names, the sorted folder names are the classes, as in
torchvision). A labels file (``filename,label`` per line) overrides that. Images are converted to RGB
(or to grayscale with ``image_mode="L"``; each conversion is noted), turned upright by their EXIF
orientation, and with ``input_size`` resized so the shorter side fits and center-cropped; pixel values
stay on the 8-bit grid. :func:`find_images` lists the files and their labels without decoding them
(an :class:`ImageFiles` source); :func:`load_images` decodes them all into an :class:`ImageSet`.
"""

from __future__ import annotations

import csv
import io
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ..display import quoted, shown
from ..errors import AdvRobustError, ImageLoadError, OptionError
from ..models.preprocessing import Preprocessing
from .classes import ClassNames, load_class_names
from .decoding import IMAGE_MODES, IMAGE_SUFFIXES, decode
from .sources import FOLDER, PREDICTION, Batch, ImageSet, ImageSource, LabelSource, as_list, shard_range, warn_notes


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
    """``filename,label`` lines (``#`` comments and blank lines ignored) as a dict.

    UTF-8, with or without the byte-order mark some editors and spreadsheets write. An image named twice
    with the same label is fine (files joined together); with two different labels it is refused, naming
    both lines.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ImageLoadError(f"labels file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ImageLoadError(f"labels file {path} cannot be read as UTF-8 text: {exc}") from None
    labels: dict[str, str] = {}
    line_of: dict[str, int] = {}
    reader = csv.reader(io.StringIO(text, newline=""))
    for row in reader:
        number = reader.line_num  # the file's line (a quoted field may span lines: its last one)
        if not row or not row[0].strip() or row[0].lstrip().startswith("#"):
            continue
        if len(row) != 2 or not row[1].strip():
            raise ImageLoadError(
                f"labels file {path}, line {number}: expected 'filename,label', got {quoted(','.join(row))}"
            )
        name, label = row[0].strip(), row[1].strip()
        if name in labels and labels[name] != label:
            raise ImageLoadError(
                f"labels file {path} gives image {shown(name)} two labels: {quoted(labels[name])} on line "
                f"{line_of[name]} and {quoted(label)} on line {number}; keep one"
            )
        labels[name] = label
        line_of.setdefault(name, number)
    if not labels:
        raise ImageLoadError(f"labels file {path} has no 'filename,label' lines")
    return labels


@dataclass(frozen=True)
class FileEntry:
    """One image file: where it is, its name in reports, its label (a class index or None) and where
    that label came from."""

    path: Path
    name: str
    label: int | None
    source: LabelSource


class _Decoded(torch.utils.data.Dataset[tuple[torch.Tensor, list[str]]]):
    """Image files decoded one by one (in DataLoader workers when there are any)."""

    def __init__(
        self, entries: list[FileEntry], mode: str, size: tuple[int, int] | None, fit: Preprocessing | None
    ) -> None:
        self.entries, self.mode, self.size, self.fit = entries, mode, size, fit

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, list[str]]:
        notes: list[str] = []
        entry = self.entries[i]
        with warnings.catch_warnings():  # noted, and warned about once by the reading process
            warnings.simplefilter("ignore")
            return decode(entry.path, entry.name, self.mode, self.size, notes, self.fit), notes


class ImageFiles(ImageSource):
    """Image files read batch by batch (decoding overlaps the attack with ``workers`` > 0); made by
    :func:`find_images`. Memory holds one batch of pixels, not all of them."""

    def __init__(
        self,
        entries: list[FileEntry],
        *,
        input_size: tuple[int, int] | None,
        image_mode: str,
        class_names: ClassNames | None,
        notes: list[str],
        image_fit: Preprocessing | None = None,
    ) -> None:
        self.entries = entries
        self.input_size = input_size
        self.image_fit = image_fit
        self.image_mode = image_mode
        self.class_names = class_names
        self.notes = notes
        self.names = [entry.name for entry in entries]

    def batches(self, batch_size: int | None, workers: int = 0) -> Iterator[Batch]:
        loader = torch.utils.data.DataLoader(
            _Decoded(self.entries, self.image_mode, self.input_size, self.image_fit),
            batch_size=batch_size or max(len(self.entries), 1),
            num_workers=workers,
            collate_fn=as_list,
        )
        shape: tuple[int, ...] | None = None
        conversions: list[str] = []
        turned: list[str] = []
        done = 0
        for rows in loader:
            entries = self.entries[done : done + len(rows)]
            done += len(rows)
            notes = [note for _, row_notes in rows for note in row_notes]
            for note in notes:
                if "smaller than input size" in note:
                    warnings.warn(note, stacklevel=2)
                elif "EXIF orientation" in note:
                    turned.append(note)
                else:
                    conversions.append(note)
            shape = shape or tuple(rows[0][0].shape)
            odd = [entry.name for entry, (pixels, _) in zip(entries, rows, strict=True) if tuple(pixels.shape) != shape]
            if odd:
                first = next(tuple(p.shape) for (p, _), e in zip(rows, entries, strict=True) if e.name == odd[0])
                raise ImageLoadError(
                    f"images have different sizes ({odd[0]} is {first[2]}x{first[1]}, {self.entries[0].name} is "
                    f"{shape[2]}x{shape[1]}); set input_size (--adv-input-size=224) to resize and center-crop them"
                )
            yield Batch(
                torch.stack([pixels for pixels, _ in rows]),
                [entry.name for entry in entries],
                [entry.label for entry in entries],
                [entry.source for entry in entries],
                notes,
            )
        warn_notes(conversions, f"converted {len(conversions)} image(s) to 8-bit {self.image_mode}")
        warn_notes(turned, f"turned {len(turned)} image(s) upright as their EXIF orientation says")

    def fitted(self, fit: Preprocessing) -> ImageFiles:
        """The same files, brought to the model's input by its own eval transform (``fit``)."""
        return ImageFiles(
            self.entries,
            input_size=fit.input_size,
            image_mode=fit.image_mode,
            class_names=self.class_names,
            notes=list(self.notes),
            image_fit=fit,
        )

    def shard(self, index: int, count: int) -> ImageFiles:
        part = shard_range(index, count, len(self.entries))
        return ImageFiles(
            self.entries[part.start : part.stop],
            input_size=self.input_size,
            image_mode=self.image_mode,
            class_names=self.class_names,
            notes=list(self.notes),
            image_fit=self.image_fit,
        )

    def load(self) -> ImageSet:
        """Decode every image into memory (one batch)."""
        batches = list(self.batches(None))
        if not batches:
            raise ImageLoadError("no images to load")
        (batch,) = batches
        return ImageSet(batch.pixels, batch.names, batch.labels, batch.sources, self.notes + batch.notes,
                        self.class_names)  # fmt: skip


def _folder_classes(entries: list[tuple[Path, str, str | None]], notes: list[str]) -> ClassNames:
    """ImageFolder layout without class names: the sorted folder names are the classes (as torchvision)."""
    folders = sorted({folder for _, _, folder in entries if folder is not None})
    notes.append(f"no class names set: the sorted label folders are the classes ({', '.join(folders[:10])})")
    return ClassNames(folders)


def find_images(
    paths: str | Path | Sequence[str | Path],
    *,
    input_size: int | tuple[int, int] | None = None,
    labels_file: str | Path | None = None,
    class_names: str | Path | Sequence[str] | ClassNames | None = None,
    image_mode: str = "RGB",
    image_fit: Preprocessing | None = None,
) -> ImageFiles:
    """List image files and folders with their labels, without decoding them (see the module docstring).

    ``input_size``: 224 or (H, W); ``class_names``: anything :func:`load_class_names` takes, used to
    read labels given as names (folder names or the labels file); ``image_mode``: ``RGB`` or ``L``;
    ``image_fit``: a model's own resize and crop (a :class:`~pytest_advrobust.core.models.preprocessing.Preprocessing`
    read from its metadata), used instead of the plugin's rule for ``input_size``.
    """
    if image_mode not in IMAGE_MODES:
        raise OptionError(f"image_mode={image_mode!r}: must be one of {', '.join(IMAGE_MODES)}")
    if isinstance(input_size, int):
        input_size = (input_size, input_size)
    if isinstance(paths, (str, Path)):
        paths = [paths]
    if not paths:
        raise ImageLoadError("no images given: set images to a file or folder")
    names_map = load_class_names(class_names)
    found: list[tuple[Path, str, str | None]] = []
    for path in paths:
        found.extend(_collect(Path(path)))
    file_labels = read_labels_file(Path(labels_file)) if labels_file is not None else None
    notes: list[str] = []
    folder_names = [folder for _, _, folder in found if folder is not None]
    if file_labels is None and not len(names_map) and any(not f.strip().isdigit() for f in folder_names):
        names_map = _folder_classes(found, notes)
    entries: list[FileEntry] = []
    for file, name, folder_label in found:
        raw_label: str | None = folder_label
        source = FOLDER
        if file_labels is not None:
            raw_label = file_labels.get(name, file_labels.get(file.name))
            source = LabelSource.labels_file(Path(labels_file).name) if labels_file is not None else source
            if raw_label is None:
                raise ImageLoadError(
                    f"labels file {labels_file} has no line for image {shown(name)}; add '{shown(name)},<label>'"
                )
        if raw_label is None:
            entries.append(FileEntry(file, name, None, PREDICTION))
            continue
        try:
            entries.append(FileEntry(file, name, names_map.index(raw_label), source))
        except AdvRobustError as exc:
            raise ImageLoadError(f"label of image {shown(name)} ({shown(source)}): {exc}") from None
    if file_labels is not None and any(Path(path).is_dir() for path in paths):
        # A folder was given: its labels file must not name images the folder lacks (typos, moves).
        known = {name for _, name, _ in found} | {file.name for file, _, _ in found}
        extra = sorted(set(file_labels) - known)
        if extra:
            shown_extra = ", ".join(shown(name) for name in extra[:5])
            raise ImageLoadError(f"labels file {labels_file} names images that were not found: {shown_extra}")
    return ImageFiles(
        entries,
        input_size=input_size,
        image_mode=image_mode,
        class_names=names_map if len(names_map) else None,
        notes=notes,
        image_fit=image_fit,
    )


def load_images(
    paths: str | Path | Sequence[str | Path],
    *,
    input_size: int | tuple[int, int] | None = None,
    labels_file: str | Path | None = None,
    class_names: str | Path | Sequence[str] | ClassNames | None = None,
    image_mode: str = "RGB",
    image_fit: Preprocessing | None = None,
) -> ImageSet:
    """Load image files and folders into an :class:`ImageSet` in memory (see :func:`find_images`; for
    many images, pass :func:`find_images`' result to :func:`~pytest_advrobust.attack` instead: it is
    read batch by batch)."""
    files = find_images(
        paths,
        input_size=input_size,
        labels_file=labels_file,
        class_names=class_names,
        image_mode=image_mode,
        image_fit=image_fit,
    )
    return files.load()
