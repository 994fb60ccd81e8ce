"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import write_png


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """An ImageFolder layout: two labelled classes (by index) with two PNGs each."""
    root = tmp_path / "images"
    for label in ("0", "1"):
        for k in range(2):
            write_png(root / label / f"img{k}.png", seed=int(label) * 10 + k)
    return root
