"""Bad input, through pytest: each problem gets a clear message that names the file or option."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch

from helpers import write_png

MODEL_ONLY = """
import pytest, torch
from torch import nn

@pytest.fixture(scope="session")
def adv_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10))
"""

MARKED = """
from pytest_advrobust import adv_robust

@adv_robust
def test_x():
    pass
"""


@pytest.fixture
def marked(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(MODEL_ONLY)
    pytester.makepyfile(test_x=MARKED)
    return pytester


def _images(root: Path, n: int = 2, **kwargs: object) -> None:
    for k in range(n):
        write_png(root / "imgs" / f"i{k}.png", size=(8, 8), seed=k, **kwargs)  # type: ignore[arg-type]


def test_missing_image_path(marked: pytest.Pytester) -> None:
    result = marked.runpytest("--adv-images=nope.png")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*adv_robust: images path */nope.png does not exist*"])


def test_corrupt_and_truncated_images_are_named(marked: pytest.Pytester) -> None:
    (marked.path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    result = marked.runpytest("--adv-images=bad.png")
    result.stdout.fnmatch_lines(["*image file */bad.png is*"])
    good = write_png(marked.path / "good.png", size=(64, 64))
    (marked.path / "cut.png").write_bytes(good.read_bytes()[:300])
    result = marked.runpytest("--adv-images=cut.png")
    result.assert_outcomes(failed=1)  # files are decoded batch by batch, while the test's attack runs
    result.stdout.fnmatch_lines(["*image file */cut.png is corrupt or truncated*"])


@pytest.mark.parametrize(
    ("mode", "said"),
    [("L", "L converted to RGB"), ("RGBA", "composited on white"), ("P", "P converted to RGB"), ("I;16", "16-bit")],
)
def test_converted_images_are_said_so(marked: pytest.Pytester, mode: str, said: str) -> None:
    _images(marked.path, mode=mode)
    result = marked.runpytest("--adv-images=imgs", "--adv-epsilon=0")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"*converted 2 image(s) to 8-bit RGB: i0.png: *{said}*"])


def test_empty_folder(marked: pytest.Pytester) -> None:
    (marked.path / "empty").mkdir()
    result = marked.runpytest("--adv-images=empty")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*adv_robust: images folder */empty contains no images*"])


def test_images_smaller_than_the_input_size_warn(marked: pytest.Pytester) -> None:
    _images(marked.path)
    result = marked.runpytest(
        "--adv-images=imgs", "--adv-input-size=16", "--adv-epsilon=0", "-W", "ignore::DeprecationWarning"
    )
    # the model takes 8x8 images: the resize is said in a warning, and the shape error names the fix
    result.stdout.fnmatch_lines(["*i0.png is 8x8, smaller than input size 16x16: upscaled*"])


def test_labels_file_that_does_not_match(marked: pytest.Pytester) -> None:
    _images(marked.path)
    (marked.path / "labels.csv").write_text("i0.png,1\n")
    result = marked.runpytest("--adv-images=imgs", "--adv-labels=labels.csv")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*labels file */labels.csv has no line for image i1.png; add 'i1.png,<label>'*"])


def test_unknown_target_class_name_suggests_close_matches(marked: pytest.Pytester) -> None:
    _images(marked.path)
    names = "tench,goldfish,paper towel,toilet tissue,cat,dog,bird,ship,car,plane"  # one per model output
    result = marked.runpytest("--adv-images=imgs", "--adv-targets=paper towl", f"--adv-class-names={names}")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*targets: unknown class name 'paper towl'; did you mean 'paper towel'?*"])


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nosuch.module:make", "*model spec 'nosuch.module:make': cannot import module 'nosuch.module'*"),
        ("notes.pt", "*model file */notes.pt is not a PyTorch file torch.load can read*"),
        ("weights.pt", "*holds a state dict (weights only), which needs an architecture*"),
        ("resnet19@weights.pt", "*unknown torchvision architecture 'resnet19'; did you mean resnet18*"),
    ],
)
def test_model_specs_that_do_not_load(pytester: pytest.Pytester, spec: str, message: str) -> None:
    (pytester.path / "notes.pt").write_text("just text")
    torch.save({"w": torch.zeros(2)}, pytester.path / "weights.pt")
    pytester.makepyfile(test_x=MARKED)
    result = pytester.runpytest(f"--adv-model={spec}", "--adv-images=x.png")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([message])


class _Evil:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def test_a_malicious_model_file_is_refused_and_does_not_run(pytester: pytest.Pytester) -> None:
    marker = pytester.path / "pwned"
    with (pytester.path / "evil.pt").open("wb") as handle:
        pickle.dump({"state": _Evil(str(marker))}, handle)
    torch.save({"state": _Evil(str(marker))}, pytester.path / "evil2.pt")
    pytester.makepyfile(test_x=MARKED)
    for name in ("evil.pt", "evil2.pt"):
        result = pytester.runpytest(f"--adv-model={name}")
        result.assert_outcomes(errors=1)
        assert not marker.exists()
    result.stdout.fnmatch_lines(["*needs full unpickling*can run arbitrary code*--adv-allow-pickle*"])


def test_a_device_that_does_not_exist(marked: pytest.Pytester) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    _images(marked.path)
    result = marked.runpytest("--adv-images=imgs", "--adv-device=cuda")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*device='cuda': CUDA is not available on this machine*"])


def test_a_model_with_the_wrong_output_shape(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        MODEL_ONLY.replace(
            "return nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10))", "return nn.Sequential(nn.Conv2d(3, 4, 3))"
        )
    )
    pytester.makepyfile(test_x=MARKED)
    _images(pytester.path)
    result = pytester.runpytest("--adv-images=imgs")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*no verdict possible: the model returned shape (2, 4, 6, 6) for a batch of 2 images*"]
    )


def test_a_model_that_masks_its_gradient_is_not_green(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        MODEL_ONLY.replace(
            "return nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10))",
            "return nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10), Masked())",
        )
        + "\nclass Masked(nn.Module):\n    def forward(self, x):\n        return x.detach() + 0 * x\n"
    )
    pytester.makepyfile(test_x=MARKED)
    _images(pytester.path)
    result = pytester.runpytest("--adv-images=imgs")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*no verdict possible: the input gradient is exactly zero for i0.png*"])
