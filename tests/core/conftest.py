"""What the core tests share: the defended model (tests/defended.py), trained once per session."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="session")
def defended() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    """The adversarially trained digits CNN and its 397 held-out images and labels."""
    pytest.importorskip("sklearn")
    from defended import defended_cnn, digits

    _, _, x, y = digits()
    return defended_cnn(epochs=15), x, y
