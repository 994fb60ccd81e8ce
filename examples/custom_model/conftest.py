"""Provide your own model to pytest-advrobust by overriding the adv_model fixture."""

import pytest

from color_net import make


@pytest.fixture(scope="session")
def adv_model():
    return make()
