"""Test helpers: tiny deterministic models with analytic answers, images on the 8-bit grid, PNG files, and a
headless Chromium that renders our pages."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn


def linear_model(weight: torch.Tensor, bias: torch.Tensor | None = None) -> nn.Module:
    """A classifier whose logits are ``W·flatten(x) + b``: the attack's effect is exact and analytic."""
    classes, features = weight.shape
    layer = nn.Linear(features, classes)
    with torch.no_grad():
        layer.weight.copy_(weight)
        layer.bias.copy_(bias if bias is not None else torch.zeros(classes))
    return nn.Sequential(nn.Flatten(), layer)


def tiny_cnn(seed: int = 0, classes: int = 10) -> nn.Module:
    """A small CNN with BatchNorm and Dropout, so eval mode changes its answer."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(4),
        nn.Flatten(),
        nn.Dropout(0.5),
        nn.Linear(8 * 16, classes),
    )


def grid_images(n: int, size: int = 8, seed: int = 0) -> torch.Tensor:
    """Random images on the 8-bit grid (k/255), as loaded from PNG files."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), generator=generator).float() / 255


def write_png(path: Path, size: tuple[int, int] = (12, 10), mode: str = "RGB", seed: int = 0) -> Path:
    from PIL import Image

    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode == "RGB":
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), "RGB").save(path)
    elif mode == "RGBA":
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 4), dtype=np.uint8), "RGBA").save(path)
    elif mode == "L":
        Image.fromarray(rng.integers(0, 256, (size[1], size[0]), dtype=np.uint8), "L").save(path)
    elif mode == "I;16":
        Image.fromarray(rng.integers(0, 65536, (size[1], size[0]), dtype=np.uint16)).save(path)
    elif mode == "P":
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), "RGB").convert("P").save(path)
    else:
        raise ValueError(mode)
    return path


WEAK_AND_STRONG_TESTS = """
from pytest_advrobust import adv_robust

@adv_robust(epsilon=0.05, attack="bim", targets="untargeted", class_names=[f"c{i}" for i in range(10)])
def test_weak():
    pass

@adv_robust(epsilon=0.0, attack="bim", targets="untargeted")
def test_strong():
    pass
"""
"""Two marked tests for the pytester project of tests/plugin: 3 of 4 images flip in test_weak, none in test_strong."""


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("no Chromium on this machine (Debian: apt-get install chromium); .ci/run installs it")


def run_chromium(*args: str) -> subprocess.CompletedProcess[str]:
    """Headless Chromium with ``args`` (skips the test when there is none), offline and quiet."""
    return subprocess.run(
        [
            _chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


# 40 random images that all flip under one FGSM step: a list longer than any report shows in full
MANY_FLIPS = """
import pytest, torch
from pytest_advrobust import adv_robust

@pytest.fixture
def adv_images():
    g = torch.Generator().manual_seed(2)
    return torch.randint(0, 256, (40, 3, 8, 8), generator=g).float() / 255

@adv_robust(epsilon=0.2, attack="fgsm", targets="untargeted", sanity_checks=False)
def test_many():
    pass
"""


def color_net_conftest(biases: str, extra: str = "") -> str:
    """A pytester conftest whose ``adv_model`` is ColorNet (logits = 10 × channel means + bias: its margins
    are analytic), with one bias per name of ``biases`` (a dict literal), chosen by ``--which`` (default
    ``a``), and ``extra`` (hooks of a test's own) after it."""
    return f"""
import pytest, torch
from torch import nn

BIASES = {biases}

def pytest_addoption(parser):
    parser.addoption("--which", default="a")

class ColorNet(nn.Module):
    def __init__(self, bias):
        super().__init__()
        self.bias = nn.Parameter(torch.tensor(bias))
    def forward(self, x):
        return 10 * x.mean(dim=(2, 3)) + self.bias

@pytest.fixture(scope="session")
def adv_model(pytestconfig):
    return ColorNet(BIASES[pytestconfig.getoption("--which")])
{extra}"""


COLOR_INI = (
    "[pytest]\nadv_images = imgs\nadv_class_names = red,green,blue\nadv_attack = bim\nadv_targets = untargeted\n"
)
"""bim, untargeted: the ColorNet margins are analytic for it."""


def color_project(pytester: Any, conftest: str, tests: str, images: dict[str, tuple[int, int, int]]) -> Any:
    """A pytester project gating ColorNet (``conftest``) with ``tests`` in ``test_model.py`` on 8×8
    single-colour images under ``imgs/`` (name → RGB)."""
    pytester.makeconftest(conftest)
    pytester.makeini(COLOR_INI)
    pytester.makepyfile(test_model=tests)
    (pytester.path / "imgs").mkdir()
    for name, rgb in images.items():
        Image.fromarray(np.full((8, 8, 3), rgb, dtype=np.uint8)).save(pytester.path / "imgs" / name)
    return pytester
