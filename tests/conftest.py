"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

# Imported once, here: pytester's in-process runs drop the modules first imported during a run, so
# torch (whose lazily imported parts must not register twice), torchvision and hypothesis' terminal
# summary would be imported all over again in each run.
import hypothesis.internal.observability  # noqa: F401
import pytest
import torch
import torch._dynamo  # noqa: F401
import torchvision  # noqa: F401

try:  # the report extra; its classes must not be imported twice either
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot
except ImportError:
    pass

import pytest_advrobust.core.data.sources  # noqa: F401  (ImageSet: one class for the plugin and pytester's conftests)
from helpers import write_png


@pytest.fixture(autouse=True)
def _not_on_a_ci_runner(monkeypatch: pytest.MonkeyPatch) -> None:
    """pytester runs in this process: on GitHub Actions they would append to the real job summary and
    print annotations. Tests of those outputs set the variables themselves."""
    for name in ("GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY", "GITHUB_WORKSPACE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """An ImageFolder layout: two labelled classes (by index) with two PNGs each."""
    root = tmp_path / "images"
    for label in ("0", "1"):
        for k in range(2):
            write_png(root / label / f"img{k}.png", seed=int(label) * 10 + k)
    return root
