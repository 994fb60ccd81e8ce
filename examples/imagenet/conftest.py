"""A real pretrained ImageNet classifier for the adv_robust tests: EfficientNet-Lite0."""

import pytest

from efficientnet_lite import lite0


@pytest.fixture(scope="session")
def adv_model():
    return lite0()
