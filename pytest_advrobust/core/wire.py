"""Report data read back from plain JSON, checked field by field against the schema's own types.

A CI matrix's merge job reads reports that jobs running a pull request's code uploaded: each value is
checked against the dataclass field it becomes (``str``, ``int``, finite ``float``, ``bool``, ``None``,
lists, string-keyed objects, literals and nested dataclasses) before anything is built from it. A report
that is not what the plugin writes is refused with the first field that is wrong (``ValueError`` naming
its path, ``tests[0].runs[0].images[3].steps``), never read as something else. Keys the schema does not
have (the derived ones ``to_json`` adds) are ignored. Pure Python.
"""

from __future__ import annotations

import dataclasses
import math
import types
from collections.abc import Mapping
from functools import cache
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

T = TypeVar("T")
NAN_AS_NULL = {"nan_as_null": True}
"""A list-of-floats field's metadata: ``null`` in its JSON stands for NaN."""

_NAMES = {str: "a string", int: "a whole number", float: "a finite number", bool: "true or false", type(None): "null"}


def _got(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"[:60]


def _describe(kind: Any) -> str:
    origin = get_origin(kind)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(option) for option in get_args(kind))
    if origin is Literal:
        return "one of " + ", ".join(repr(value) for value in get_args(kind))
    if origin is list:
        return "a list"
    if origin is dict:
        return "an object"
    if dataclasses.is_dataclass(kind):
        return "an object"
    return _NAMES.get(kind, getattr(kind, "__name__", str(kind)))


@cache
def _hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)


def checked(value: Any, kind: Any, where: str, *, nan_as_null: bool = False) -> Any:
    """``value`` if it is of type ``kind`` (a nested dataclass is built), else ``ValueError`` naming
    ``where``. ``nan_as_null``: ``null`` stands for a NaN in a list of floats (a field whose metadata says
    ``nan_as_null``: the probability curves, which JSON cannot hold NaN in)."""
    origin = get_origin(kind)
    if origin in (Union, types.UnionType):
        options = [option for option in get_args(kind) if option is not type(None)]
        if value is None and len(options) < len(get_args(kind)):
            return None
        if len(options) == 1 and (isinstance(value, (dict, list)) or dataclasses.is_dataclass(options[0])):
            return checked(value, options[0], where, nan_as_null=nan_as_null)  # the error inside it, by name
        for option in options:
            try:
                return checked(value, option, where, nan_as_null=nan_as_null)
            except ValueError:
                continue
        raise ValueError(f"{where} must be {_describe(kind)}, not {_got(value)}")
    if origin is Literal:
        if value in get_args(kind) and isinstance(value, str):
            return value
        raise ValueError(f"{where} must be {_describe(kind)}, not {_got(value)}")
    if origin is list:
        if not isinstance(value, list):
            raise ValueError(f"{where} must be a list, not {_got(value)}")
        (item,) = get_args(kind)
        if nan_as_null and item is float:
            return [
                math.nan if entry is None else checked(entry, float, f"{where}[{k}]") for k, entry in enumerate(value)
            ]
        return [checked(entry, item, f"{where}[{k}]") for k, entry in enumerate(value)]
    if origin in (dict, Mapping):
        if not isinstance(value, dict):
            raise ValueError(f"{where} must be an object, not {_got(value)}")
        _, item = get_args(kind)
        return {_key(key, where): checked(entry, item, f"{where}[{key!r}]") for key, entry in value.items()}
    if dataclasses.is_dataclass(kind) and isinstance(kind, type):
        reader = getattr(kind, "from_wire", None)  # a type with checks of its own reads itself
        return reader(value, where) if reader is not None else build(kind, value, where)
    if kind is Any:
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{where} must be a finite number, not {_got(value)}")
        return float(value)
    if kind is int and isinstance(value, bool):
        raise ValueError(f"{where} must be a whole number, not {_got(value)}")
    if kind is type(None):
        if value is None:
            return None
        raise ValueError(f"{where} must be null, not {_got(value)}")
    if not isinstance(value, kind):
        raise ValueError(f"{where} must be {_describe(kind)}, not {_got(value)}")
    return value


def _key(key: Any, where: str) -> str:
    if not isinstance(key, str):
        raise ValueError(f"{where} must have string keys, not {_got(key)}")
    return key


def fields(cls: type, data: Any, where: str) -> dict[str, Any]:
    """``data`` as the keyword arguments of dataclass ``cls``, each checked (:func:`checked`); a field
    without a default must be there."""
    if not isinstance(data, dict):
        raise ValueError(f"{where} must be an object, not {_got(data)}")
    hints = _hints(cls)
    values = {}
    for field in dataclasses.fields(cls):
        if not field.init:
            continue
        if field.name not in data:
            if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                raise ValueError(f"{where}.{field.name} is missing")
            continue
        nan = bool(field.metadata.get("nan_as_null"))
        values[field.name] = checked(data[field.name], hints[field.name], f"{where}.{field.name}", nan_as_null=nan)
    return values


def build(cls: type[T], data: Any, where: str) -> T:
    """An instance of dataclass ``cls`` from checked ``data`` (its own ``__post_init__`` checks run too)."""
    values = fields(cls, data, where)
    try:
        return cls(**values)
    except ValueError as exc:  # the type's own checks (__post_init__)
        raise ValueError(f"{where}: {exc}") from None
