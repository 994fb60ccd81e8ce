"""Class names: a list, a file with one name per line, or ``"imagenet"`` (torchvision's metadata)."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path

from ..display import quoted
from ..errors import AdvRobustError, ClassNameError


def repeated_name(names: Sequence[str]) -> tuple[int, int] | None:
    """The indices of the first name that appears twice (exactly: ``Cardigan`` and ``cardigan`` are two
    ImageNet classes), or None."""
    first: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in first:
            return first[name], i
        first[name] = i
    return None


class ClassNames:
    """Maps class indices to names and back; indices without names print as ``class 7``.

    Each class needs its own name: a name given twice (``red,green,red``) raises :class:`ClassNameError`,
    since a label given by that name, and a flip from one to the other, could not be told apart.
    """

    def __init__(self, names: Sequence[str] = ()) -> None:
        self.names = tuple(names)
        twice = repeated_name(self.names)
        if twice is not None:
            first, second = twice
            raise ClassNameError(
                f"class name {quoted(self.names[first])} is given twice (classes {first} and {second}); "
                "each class needs its own name"
            )
        self._exact = {name: i for i, name in enumerate(self.names)}
        self._index: dict[str, int] = {}
        for i, name in enumerate(self.names):
            self._index.setdefault(name.casefold(), i)

    def __len__(self) -> int:
        return len(self.names)

    def name(self, index: int) -> str:
        if 0 <= index < len(self.names):
            return self.names[index]
        return f"class {index}"

    def index(self, label: int | str, num_classes: int | None = None) -> int:
        """The index of a class given by index or name (its exact spelling first, else case-insensitive);
        suggests close names."""
        if isinstance(label, str) and label.strip() in self._exact:
            return self._exact[label.strip()]
        if isinstance(label, str) and label.strip().casefold() in self._index:
            return self._index[label.strip().casefold()]  # a name, even one made of digits ("10")
        if isinstance(label, int) or (isinstance(label, str) and label.strip().isdigit()):
            index = int(label)
            if num_classes is not None and not 0 <= index < num_classes:
                raise ClassNameError(f"class index {index} is out of range: the model has {num_classes} classes")
            if num_classes is None and self.names and not 0 <= index < len(self.names):
                raise ClassNameError(f"class index {index} is out of range: there are {len(self.names)} class names")
            return index
        key = label.strip().casefold()
        if not self.names:
            raise ClassNameError(
                f"class name {label!r} given but no class names are set; use class indices or set "
                "class_names (--adv-class-names=imagenet, a file with one name per line, or a list)"
            )
        close = difflib.get_close_matches(key, list(self._index), n=3, cutoff=0.6)
        close += [n for n in self._index if key in n and n not in close][: 3 - len(close)]
        hint = "; did you mean " + ", ".join(repr(self.names[self._index[c]]) for c in close) + "?" if close else ""
        raise ClassNameError(f"unknown class name {label!r}{hint}")


def imagenet_class_names() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names from torchvision's weight metadata (no download)."""
    from torchvision.models import ResNet50_Weights

    return tuple(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


def load_class_names(spec: str | Path | Sequence[str] | ClassNames | None) -> ClassNames:
    """Class names from ``"imagenet"``, a text file (one name per line), ``"a,b,c"`` or a list; empty for None."""
    if spec is None:
        return ClassNames()
    if isinstance(spec, ClassNames):
        return spec
    if isinstance(spec, str) and spec.lower() == "imagenet":
        return ClassNames(imagenet_class_names())
    if isinstance(spec, str) and "," in spec and not Path(spec).exists():  # "cat,dog,bird", as in the ini file
        return ClassNames([name.strip() for name in spec.split(",") if name.strip()])
    if isinstance(spec, (str, Path)):
        return _class_names_file(Path(spec))
    return ClassNames([str(name) for name in spec])


def _class_names_file(path: Path) -> ClassNames:
    """One class name per line (blank lines skipped); a byte-order mark, as some editors write, is no part
    of the first name."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise AdvRobustError(f"class names file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise AdvRobustError(f"class names file {path} cannot be read as UTF-8 text: {exc}") from None
    numbered = [(number, line.strip()) for number, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if not numbered:
        raise AdvRobustError(f"class names file {path} is empty; write one class name per line")
    names = [name for _, name in numbered]
    twice = repeated_name(names)
    if twice is not None:
        first, second = twice
        raise ClassNameError(
            f"class names file {path} gives the class name {quoted(names[first])} twice (line "
            f"{numbered[first][0]}, class {first}, and line {numbered[second][0]}, class {second}); "
            "each class needs its own name"
        )
    return ClassNames(names)
