"""examples/shipped_models runs as its README says (`python make_models.py`, then `pytest`), with the
outcomes its docstrings promise, and its JSON report names where each model-supplied setting came from."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

for library in ("timm", "transformers", "onnx2torch"):
    pytest.importorskip(library, reason=f"the shipped-models example needs {library}: pip install -e '.[test]'")

EXAMPLE = Path(__file__).parents[2] / "examples" / "shipped_models"
INHERITED = ("GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY", "PYTEST_ADDOPTS", "PYTEST_XDIST_WORKER")
"""Not passed on: the example's run writes no job summary or annotations of its own and takes no options."""
# One torch thread: on a shared 2-core machine two threads wait on each other and make these tiny models
# several times slower (the example's attacks once took 80 s instead of 2 s).
ENV = {
    **{key: value for key, value in os.environ.items() if key not in INHERITED},
    "OMP_NUM_THREADS": "1",
    "HF_HUB_OFFLINE": "1",
    "PYTHONDONTWRITEBYTECODE": "1",
}


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str, Path]:
    """A copy of the example without models/, built with make_models.py, then its pytest run: the JSON
    report, the output, and the folder."""
    folder = tmp_path_factory.mktemp("shipped_models")
    shutil.copytree(EXAMPLE, folder, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", "models"))
    made = _run([sys.executable, "make_models.py"], folder)
    assert made.returncode == 0, made.stdout + made.stderr
    run = _run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--adv-report=report.json"], folder)
    assert "1 failed, 4 passed" in run.stdout, run.stdout + run.stderr
    return json.loads((folder / "report.json").read_text(encoding="utf-8")), run.stdout, folder


def _test(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(test for test in report["tests"] if test["nodeid"] == f"test_shipped.py::{name}")


def test_make_models_writes_the_four_formats(example: tuple[dict[str, Any], str, Path]) -> None:
    *_, folder = example
    models = folder / "models"
    assert {"config.json", "model.safetensors"} <= {p.name for p in (models / "timm_colors").iterdir()}
    assert {"config.json", "model.safetensors", "preprocessor_config.json"} <= {
        p.name for p in (models / "hf_colors").iterdir()
    }
    assert (models / "timm_colors.onnx").stat().st_size > 0
    assert (models / "timm_colors.pt2").stat().st_size > 0
    assert json.loads((models / "timm_colors" / "config.json").read_text())["label_names"] == ["red", "green", "blue"]


def test_vivid_colors_hold_and_muted_ones_flip(example: tuple[dict[str, Any], str, Path]) -> None:
    report, output, _ = example
    outcomes = {
        "test_timm_model_holds_on_vivid_colors": 0,
        "test_timm_model_flips_on_muted_colors": 9,
        "test_hugging_face_model_holds_on_vivid_colors": 0,
        "test_onnx_export_holds_on_vivid_colors": 0,
        "test_exported_program_holds_on_vivid_colors": 0,
    }
    for name, flipped in outcomes.items():
        test = _test(report, name)
        assert (test["attacked"], test["flipped"], test["misclassified"]) == (9, flipped, 0), name
    assert "FAILED test_shipped.py::test_timm_model_flips_on_muted_colors" in output


def test_each_model_supplies_its_own_preprocessing_and_names_where_from(
    example: tuple[dict[str, Any], str, Path],
) -> None:
    report, _, _ = example
    timm_values = [
        "mean=(0.45, 0.5, 0.55) from config.json pretrained_cfg",
        "std=(0.2, 0.25, 0.3) from config.json pretrained_cfg",
        "input_size=32x32 from config.json pretrained_cfg",
        "class_names=red,green,blue from config.json label_names",
        "image files: resized (bicubic) so the shorter side is 36, then centre-cropped to 32x32",
    ]
    hf_values = [
        "mean=(0.4, 0.5, 0.6) from preprocessor_config.json",
        "std=(0.3, 0.2, 0.25) from preprocessor_config.json",
        "input_size=32x32 from preprocessor_config.json",
        "class_names=red,green,blue from config.json id2label",
        "image files: resized (bilinear) to 32x32",
    ]
    for name, expected in (
        ("test_timm_model_holds_on_vivid_colors", timm_values),
        ("test_timm_model_flips_on_muted_colors", timm_values),
        ("test_hugging_face_model_holds_on_vivid_colors", hf_values),
    ):
        (settings,) = _test(report, name)["settings"]
        missing = [value for value in expected if value not in settings["from_model"]]
        assert not missing, f"{name}: {settings['from_model']}"
    (onnx,) = _test(report, "test_onnx_export_holds_on_vivid_colors")["settings"]
    assert "input_size=32x32 from ONNX graph input shape" in onnx["from_model"]
    # an ONNX file says nothing of mean, std or class names: the marker's values are used, not credited
    assert not any(line.startswith(("mean=", "std=", "class_names=")) for line in onnx["from_model"])
    assert (onnx["mean"], onnx["std"]) == ([0.45, 0.5, 0.55], [0.2, 0.25, 0.3])

    (program,) = _test(report, "test_exported_program_holds_on_vivid_colors")["settings"]
    assert "input_size=32x32 from exported program input shape" in program["from_model"]
