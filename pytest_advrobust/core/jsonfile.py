"""The one JSON writer: sorted keys, two-space indent, no NaN, written atomically (temp file + rename)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


def dumps(data: Any) -> str:
    """Diff-friendly JSON text (sorted keys, one value per line) ending in a newline."""
    return json.dumps(_finite(data), indent=2, sort_keys=True, allow_nan=False, default=_plain) + "\n"


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` to ``path`` so that a reader never sees half a file; creates the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(dumps(data), encoding="utf-8")
    tmp.replace(path)


def _finite(value: Any) -> Any:
    """NaN and ±Inf become null (JSON has no spelling for them)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
