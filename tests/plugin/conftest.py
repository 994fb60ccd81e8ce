"""What the pytester projects in these tests share: a tiny linear model and random 8-bit images."""

from __future__ import annotations

import pytest

PROJECT_CONFTEST = """
import pytest, torch
from torch import nn

LOADS = []

def make_model():
    LOADS.append(1)
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10))

@pytest.fixture(scope="session")
def adv_model():
    return make_model()

@pytest.fixture
def adv_images():
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, 256, (4, 3, 8, 8), generator=g).float() / 255
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A pytester project whose conftest provides adv_model (10 classes) and adv_images (4 images)."""
    pytester.makeconftest(PROJECT_CONFTEST)
    return pytester
