"""--adv-artifacts: files per flipped image, checked for content; paths in the JSON report and JUnit XML."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

pytest.importorskip("matplotlib", reason="the curves need the report extra: pip install -e '.[report]'")

TESTS = """
from pytest_advrobust import adv_robust

@adv_robust(epsilon=0.05)
def test_weak():
    pass
"""


def project_model() -> nn.Module:
    """The same model the project's conftest builds (tests/plugin/conftest.py)."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10)).eval()


def _png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


def test_artifacts_for_each_flipped_image(project: pytest.Pytester) -> None:
    project.makepyfile(TESTS)
    result = project.runpytest("--adv-artifacts=art", "--adv-amplify=10", "--adv-report=r.json", "--junitxml=j.xml")
    result.assert_outcomes(failed=1)
    folder = Path("art") / "test_artifacts_for_each_flipped_image.py_test_weak"  # relative to where pytest ran
    data = json.loads((project.path / "r.json").read_text())
    flipped = [image for image in data["tests"][0]["images"] if image["flipped"]]
    assert len(flipped) == 3
    model = project_model()
    for image in flipped:
        stem = image["name"].replace(" ", "_")
        paths = image["artifacts"]
        assert paths == {
            kind: str(folder / f"{stem}-{kind}.png") for kind in ("clean", "adversarial", "perturbation", "curve")
        } | {"json": str(folder / f"{stem}.json")}
        clean, adversarial, perturbation = (
            _png(project.path / paths[k]) for k in ("clean", "adversarial", "perturbation")
        )
        assert clean.shape == adversarial.shape == perturbation.shape == (8, 8, 3)
        assert np.abs(adversarial - clean).max() <= round(0.05 * 255), "the saved image stays within eps"
        # the perturbation image is 0.5 + 10 * delta, on the 8-bit grid
        expected = np.clip(np.round((0.5 + 10 * (adversarial - clean) / 255) * 255), 0, 255)
        assert np.abs(perturbation - expected).max() <= 1
        # re-predict the saved adversarial file with an independent copy of the model: it still fools it
        pixels = torch.from_numpy(adversarial.astype(np.float32) / 255).permute(2, 0, 1)[None]
        with torch.no_grad():
            assert int(model(pixels).argmax()) != image["clean_label"]
        assert image["saved_file_fools"] is True
        numbers = json.loads((project.path / paths["json"]).read_text())
        assert numbers["saved_file_fools"] is True and numbers["adv_label_8bit"] == image["adv_label_8bit"]
        assert numbers["files"]["adversarial"] == f"{stem}-adversarial.png", "files beside the JSON, by name"
        curve = Image.open(project.path / paths["curve"])
        assert curve.format == "PNG" and curve.size[0] > 100
    held = next(image for image in data["tests"][0]["images"] if not image["flipped"])
    assert "artifacts" not in held
    properties = {p.get("name"): p.get("value") for p in ET.parse(project.path / "j.xml").getroot().iter("property")}
    assert properties[f"adv_artifact {flipped[0]['name']}"] == flipped[0]["artifacts"]["adversarial"]


def test_artifacts_for_all_images(project: pytest.Pytester) -> None:
    project.makepyfile(TESTS)
    project.runpytest("--adv-artifacts=art", "--adv-artifacts-all")
    folder = project.path / "art" / "test_artifacts_for_all_images.py_test_weak"
    assert len(list(folder.glob("*-adversarial.png"))) == 4
