"""Models saved the way their libraries save them, built once per session (tests/shipped_models.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import shipped_models as shipped


@pytest.fixture(scope="session")
def timm_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("timm")
    pytest.importorskip("safetensors")
    return shipped.build_timm_folder(tmp_path_factory.mktemp("timm"))


@pytest.fixture(scope="session")
def hf_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("transformers")
    return shipped.build_hf_folder(tmp_path_factory.mktemp("hf"))


@pytest.fixture(scope="session")
def onnx_file(tmp_path_factory: pytest.TempPathFactory, timm_folder: Path) -> Path:
    pytest.importorskip("onnx")
    pytest.importorskip("onnx2torch")
    return shipped.build_onnx(tmp_path_factory.mktemp("onnx"), shipped.oracle_timm(timm_folder))
