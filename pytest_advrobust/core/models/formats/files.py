"""Model files checked before a loader reads them, and state dicts read without unpickling.

:func:`sniff_file` turns the files that are not what their name says (a Git LFS pointer, an HTML page
saved by a failed download, an empty or truncated file) into one-line :class:`ModelLoadError` messages that
name the file, what it is and the fix, instead of a parser's traceback.
"""

from __future__ import annotations

import json
import pickle
import re
import struct
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ...errors import ModelLoadError, UnsafeModelFileError
from ...settings.values import MAX_IMAGE_SIDE
from .base import import_extra

LFS_POINTER = b"version https://git-lfs.github.com/spec/v1"
ZIP_MAGIC = b"PK\x03\x04"
STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model")
"""Keys under which training checkpoints nest the state dict, tried in this order."""
SHOWN_KEYS = 3
"""How many mismatched keys an error names per kind (missing, unexpected, shape)."""


def sniff_file(path: Path) -> None:
    """Raise a :class:`ModelLoadError` if ``path`` is missing, empty, a Git LFS pointer, an HTML page, a
    truncated safetensors file (by its header) or a truncated zip (``torch.save``) file; return None for a
    file that may be what its name says."""
    if not path.is_file():
        raise ModelLoadError(f"{path} does not exist" if not path.exists() else f"{path} is not a file")
    size = path.stat().st_size
    if size == 0:
        raise ModelLoadError(f"{path} is empty (0 bytes), not a model file: a failed download or copy? fetch it again")
    with path.open("rb") as file:
        head = file.read(512)
    if head.startswith(LFS_POINTER):
        raise ModelLoadError(f"{path} is a Git LFS pointer, not the weights: run `git lfs pull`")
    if head.removeprefix(b"\xef\xbb\xbf").lstrip().lower().startswith((b"<!doctype html", b"<html")):  # after a BOM
        raise ModelLoadError(f"{path} is an HTML page (a failed download?), not a model file: download it again")
    if path.suffix == ".safetensors":
        _check_safetensors(path, head, size)
    elif head.startswith(ZIP_MAGIC):
        try:
            zipfile.ZipFile(path).close()
        except zipfile.BadZipFile:
            raise ModelLoadError(
                f"{path} is a truncated or corrupt zip (torch.save) file of {size} bytes: download or save it again"
            ) from None


def _check_safetensors(path: Path, head: bytes, size: int) -> None:
    """A safetensors file is an 8-byte little-endian header length, a JSON header, then the tensor data."""
    if size < 8:
        raise ModelLoadError(f"{path} is a truncated safetensors file ({size} bytes): download it again")
    (header_length,) = struct.unpack("<Q", head[:8])
    if 8 + header_length > size:
        raise ModelLoadError(
            f"{path} is a truncated safetensors file (its header alone needs {8 + header_length} bytes, the "
            f"file has {size}): download it again"
        )
    with path.open("rb") as file:
        file.seek(8)
        raw = file.read(header_length)
    try:
        header = json.loads(raw)
        data_end = _safetensors_data_end(header)
    except (ValueError, RecursionError):
        raise ModelLoadError(f"{path} is not a safetensors file (its header is not valid): download it again") from None
    if 8 + header_length + data_end > size:
        raise ModelLoadError(
            f"{path} is a truncated safetensors file (its tensors need {8 + header_length + data_end} bytes, the "
            f"file has {size}): download it again"
        )


def _safetensors_data_end(header: Any) -> int:
    """Where a safetensors header says its tensor data ends: the largest end offset of its tensors.
    ``ValueError`` when the header is not an object of tensors each with two whole, ordered offsets."""
    if not isinstance(header, dict):
        raise ValueError("the header is not an object")
    ends = [0]
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if not isinstance(offsets, list) or len(offsets) != 2:
            raise ValueError(f"tensor {key!r} has no valid data_offsets")
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in offsets):
            raise ValueError(f"tensor {key!r} has no valid data_offsets")
        if offsets[0] > offsets[1]:
            raise ValueError(f"tensor {key!r} ends before it starts")
        ends.append(offsets[1])
    return max(ends)


COUNT_KEY = re.compile(r"(?:^|_)(?:layers|depths?|blocks|repeats)$")
"""A config key that counts layers or blocks (``num_hidden_layers``, ``depth``, ``layers``, ``depths``): each
one holds at least one tensor, so the weights file bounds it."""
SIZE_KEY = re.compile(r"(?:^|_)(?:sizes?|dims?|channels|features|classes|labels|heads|ratios?|width|widths)$")
"""A config key that sizes a tensor (``hidden_size``, ``embed_dim``, ``num_classes``, ``mlp_ratio``): bounded by
the weights file's largest dimension (or the largest image side)."""
_CONFIG_DEPTH = 8


def weights_extent(paths: Sequence[Path]) -> tuple[int, int]:
    """(number of tensors, largest dimension of any tensor) in the weights files: a safetensors file by its
    header alone, any other file as :func:`load_state_dict_file` reads it."""
    tensors, largest = 0, 0
    for path in paths:
        sniff_file(path)
        if path.suffix == ".safetensors":
            with path.open("rb") as file:
                (length,) = struct.unpack("<Q", file.read(8))
                header = json.loads(file.read(length))
            shapes = [entry.get("shape") for key, entry in header.items() if key != "__metadata__"]
            if not all(isinstance(shape, list) and all(_whole(side) for side in shape) for shape in shapes):
                raise ModelLoadError(f"{path} is not a safetensors file (a tensor's shape is not a list of sizes)")
        else:
            shapes = [list(tensor.shape) for tensor in load_state_dict_file(path).values()]
        tensors += len(shapes)
        largest = max([largest, *(int(side) for shape in shapes for side in shape)])
    return tensors, largest


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def check_config_size(
    config: Mapping[str, Any], weights: Sequence[Path], where: str, state: Mapping[str, torch.Tensor] | None = None
) -> None:
    """A :class:`ModelLoadError` naming the key and ``where`` for a config value that asks for a model the
    weights cannot be (building it would take memory without bound before the weights are compared): a count
    of layers or blocks beyond the number of tensors in the weights, or a size beyond their largest dimension
    and the largest image side. ``state``: the weights already read (from ``weights``), not read again."""
    if not weights:
        return  # no weights file: the library's own error says so
    if state is not None:
        sides = [int(side) for tensor in state.values() for side in tensor.shape]
        tensors, largest = len(state), max(sides, default=0)
    else:
        tensors, largest = weights_extent(weights)
    names = ", ".join(path.name for path in weights)

    def numbers(value: Any) -> list[float]:
        if isinstance(value, bool):
            return []
        if isinstance(value, (int, float)):
            return [value]
        if isinstance(value, (list, tuple)):
            return [number for item in value for number in numbers(item)]
        return []

    def walk(mapping: Mapping[str, Any], path: str, depth: int) -> None:
        for key, value in mapping.items():
            name = f"{path}{key}"
            if key in ("id2label", "label2id"):  # class names, not sizes
                continue
            if isinstance(value, Mapping) and depth < _CONFIG_DEPTH:
                walk(value, f"{name}.", depth + 1)
                continue
            found = numbers(value)
            if not isinstance(key, str) or not found:
                continue
            if COUNT_KEY.search(key) and sum(found) > tensors:
                raise ModelLoadError(
                    f"{where}: {name}={str(value)[:40]} asks for more layers than {names} holds tensors "
                    f"({tensors}): save the model's config and weights together"
                )
            if SIZE_KEY.search(key) and max(found) > max(largest, MAX_IMAGE_SIDE):
                raise ModelLoadError(
                    f"{where}: {name}={str(value)[:40]} is larger than any dimension of the tensors in {names} "
                    f"({largest}): save the model's config and weights together"
                )

    walk(config, "", 0)


def load_state_dict_file(path: Path) -> dict[str, torch.Tensor]:
    """The state dict (name → CPU tensor) in a weights file, never unpickling arbitrary objects.

    ``.safetensors`` files are read with safetensors; any other file with
    ``torch.load(weights_only=True)``, unwrapping a checkpoint's ``state_dict`` / ``model_state_dict`` /
    ``model`` entry and a ``module.`` prefix (``nn.DataParallel``). The file is sniffed first
    (:func:`sniff_file`).
    """
    sniff_file(path)
    if path.suffix == ".safetensors":
        safetensors_torch = import_extra("safetensors.torch", extra="safetensors", purpose=f"reading {path}")
        try:
            tensors: dict[str, torch.Tensor] = safetensors_torch.load_file(str(path), device="cpu")
        except Exception as exc:  # safetensors raises its own SafetensorError and OSError
            raise ModelLoadError(f"{path} is not a safetensors file safetensors can read: {exc}") from None
        return tensors
    fix = "Unpickling can run arbitrary code: save model.state_dict() with torch.save or safetensors instead"
    return _unwrap(torch_load_weights_only(path, fix), path)


def _first_line(exc: BaseException) -> str:
    """An exception's first line without terminal colour codes (torch.load's messages carry some)."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def torch_load_weights_only(path: Path, fix: str, label: str = "") -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU: tensors and plain containers, never arbitrary
    objects. A file that needs full unpickling raises :class:`UnsafeModelFileError` ending with ``fix``;
    one that is not torch's raises :class:`ModelLoadError`. ``label`` starts the messages (``"model file "``)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UnsafeModelFileError(
            f"{label}{path} is not a plain state dict: loading it needs full unpickling ({_first_line(exc)}). {fix}"
        ) from None
    except Exception as exc:  # torch.load raises many types for files that are not its own
        raise ModelLoadError(
            f"{label}{path} is not a PyTorch file torch.load can read ({type(exc).__name__}: "
            f"{_first_line(exc) or 'empty'})"
        ) from None


def _unwrap(loaded: Any, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(loaded, dict):
        for key in STATE_DICT_KEYS:
            if isinstance(loaded.get(key), dict):
                loaded = loaded[key]
                break
        if loaded and all(isinstance(value, torch.Tensor) for value in loaded.values()):
            return {str(key).removeprefix("module."): value for key, value in loaded.items()}
    raise ModelLoadError(f"{path} does not hold a state dict (parameter name → tensor)")


def check_state_dict(module: nn.Module, state: dict[str, torch.Tensor], path: Path, architecture: str) -> None:
    """Raise a :class:`ModelLoadError` naming a few missing, unexpected and mis-shaped keys when ``state``
    does not fit ``module`` exactly (what ``load_state_dict(strict=True)`` would refuse)."""
    expected = module.state_dict()
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    mis_shaped = [
        f"{key} {tuple(state[key].shape)} vs {tuple(value.shape)}"
        for key, value in expected.items()
        if key in state and state[key].shape != value.shape
    ]
    problems = [
        f"{len(keys)} {kind} ({', '.join(keys[:SHOWN_KEYS])}{', …' if len(keys) > SHOWN_KEYS else ''})"
        for kind, keys in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("shape mismatches, file vs model", mis_shaped),
        )
        if keys
    ]
    if problems:
        raise ModelLoadError(
            f"{path} does not match architecture {architecture}: {'; '.join(problems)}; check that the weights "
            "were saved from this architecture (and its num_classes / in_chans)"
        )


def load_weights(module: nn.Module, path: Path, architecture: str) -> None:
    """Load the state dict in ``path`` into ``module`` strictly, after :func:`check_state_dict`."""
    state = load_state_dict_file(path)
    check_state_dict(module, state, path, architecture)
    module.load_state_dict(state)


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from a metadata file (config.json, preprocessor_config.json), sniffed first."""
    sniff_file(path)
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ModelLoadError(f"{path} is not valid JSON ({exc}): download or save it again") from None
    except RecursionError:
        raise ModelLoadError(f"{path} is JSON nested too deeply to read: not a file its library writes") from None
    if not isinstance(loaded, dict):
        raise ModelLoadError(f"{path} holds a JSON {type(loaded).__name__}, not an object")
    return loaded
