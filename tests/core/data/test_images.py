"""Loading images: layouts, labels files, conversions, resizing, and clear errors for bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from helpers import write_png
from pytest_advrobust import ClassNames, ImageLoadError, load_images


def test_imagefolder_layout_gives_labels_from_folder_names(image_folder: Path) -> None:
    images = load_images(image_folder)
    assert images.names == ["0/img0.png", "0/img1.png", "1/img0.png", "1/img1.png"]
    assert images.labels == [0, 0, 1, 1]
    assert images.label_sources == ["folder name"] * 4
    assert images.pixels.shape == (4, 3, 10, 12)
    assert images.pixels.dtype == torch.float32
    assert torch.equal(images.pixels * 255, (images.pixels * 255).round()), "pixels stay on the 8-bit grid"


def test_folder_names_can_be_class_names(tmp_path: Path) -> None:
    write_png(tmp_path / "cat" / "a.png")
    write_png(tmp_path / "dog" / "b.png")
    images = load_images(tmp_path, class_names=ClassNames(["dog", "cat"]))
    assert images.labels == [1, 0]


def test_unlabelled_images_use_the_model_prediction(tmp_path: Path) -> None:
    write_png(tmp_path / "a.png")
    images = load_images(tmp_path / "a.png")
    assert images.labels == [None]
    assert images.label_sources == ["model prediction"]


def test_labels_file_overrides_and_must_match(tmp_path: Path) -> None:
    write_png(tmp_path / "imgs" / "a.png")
    write_png(tmp_path / "imgs" / "b.png")
    labels = tmp_path / "labels.csv"
    labels.write_text("# file,label\na.png,3\nb.png,cat\n")
    images = load_images(tmp_path / "imgs", labels_file=labels, class_names=ClassNames(["x", "y", "z", "w", "cat"]))
    assert images.labels == [3, 4]
    assert images.label_sources == ["labels file labels.csv"] * 2

    labels.write_text("a.png,3\n")
    with pytest.raises(ImageLoadError, match=r"labels file .*labels.csv has no line for image b.png"):
        load_images(tmp_path / "imgs", labels_file=labels)
    labels.write_text("a.png,3\nb.png,1\nc.png,2\n")
    with pytest.raises(ImageLoadError, match="names images that were not found: c.png"):
        load_images(tmp_path / "imgs", labels_file=labels)
    labels.write_text("a.png\n")
    with pytest.raises(ImageLoadError, match="line 1: expected 'filename,label'"):
        load_images(tmp_path / "imgs", labels_file=labels)


def test_unknown_label_name_suggests_close_matches(tmp_path: Path) -> None:
    write_png(tmp_path / "paper towl" / "a.png")
    with pytest.raises(ImageLoadError, match="unknown class name 'paper towl'; did you mean 'paper towel'"):
        load_images(tmp_path, class_names=ClassNames(["paper towel", "velvet"]))


@pytest.mark.parametrize(
    ("mode", "said"),
    [("L", "L converted to RGB"), ("RGBA", "transparency composited"), ("P", "P converted to RGB"), ("I;16", "16-bit")],
)
def test_non_rgb_images_are_converted_and_it_is_said(tmp_path: Path, mode: str, said: str) -> None:
    write_png(tmp_path / "a.png", mode=mode)
    with pytest.warns(UserWarning, match=f"converted 1 image\\(s\\) to 8-bit RGB: a.png: .*{said}"):
        images = load_images(tmp_path / "a.png")
    assert images.pixels.shape == (1, 3, 10, 12)
    assert any(said in note for note in images.notes)
    if mode == "I;16":
        assert images.pixels.max() > 0.5, "16-bit values are scaled, not clipped at 255"


def test_resize_and_center_crop_to_the_input_size(tmp_path: Path) -> None:
    write_png(tmp_path / "wide.png", size=(40, 20))
    images = load_images(tmp_path / "wide.png", input_size=(10, 10))
    assert images.pixels.shape == (1, 3, 10, 10)


def test_images_smaller_than_the_input_size_are_upscaled_with_a_warning(tmp_path: Path) -> None:
    write_png(tmp_path / "small.png", size=(8, 8))
    with pytest.warns(UserWarning, match=r"small.png is 8x8, smaller than input size 16x16"):
        images = load_images(tmp_path / "small.png", input_size=(16, 16))
    assert images.pixels.shape == (1, 3, 16, 16)


def test_different_sizes_without_input_size_is_an_error(tmp_path: Path) -> None:
    write_png(tmp_path / "a.png", size=(8, 8))
    write_png(tmp_path / "b.png", size=(9, 8))
    with pytest.raises(ImageLoadError, match=r"different sizes .*set input_size \(--adv-input-size"):
        load_images(tmp_path)


def test_missing_corrupt_truncated_and_empty_inputs_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ImageLoadError, match="does not exist"):
        load_images(tmp_path / "nope.png")
    (tmp_path / "bad.png").write_bytes(b"not an image at all")
    with pytest.raises(ImageLoadError, match=r"bad.png is not an image Pillow can read"):
        load_images(tmp_path / "bad.png")
    good = write_png(tmp_path / "good.png", size=(64, 64))
    (tmp_path / "cut.png").write_bytes(good.read_bytes()[:200])
    with pytest.raises(ImageLoadError, match=r"cut.png is corrupt or truncated"):
        load_images(tmp_path / "cut.png")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageLoadError, match=r"images folder .*empty contains no images"):
        load_images(tmp_path / "empty")


def test_input_size_and_class_names_take_the_short_forms(tmp_path: Path) -> None:
    write_png(tmp_path / "cat" / "a.png", size=(20, 30))
    images = load_images(tmp_path, input_size=16, class_names=["dog", "cat"])
    assert images.pixels.shape == (1, 3, 16, 16)
    assert images.labels == [1]


def test_the_class_names_labels_were_read_with_carry_into_attack(tmp_path: Path) -> None:
    from helpers import linear_model
    from pytest_advrobust import attack

    for name, seed in (("red/a.png", 1), ("green/b.png", 2)):
        write_png(tmp_path / name, size=(4, 4), seed=seed)
    images = load_images(tmp_path, class_names="red,green")
    weight = torch.randn(2, 3 * 4 * 4, generator=torch.Generator().manual_seed(0))
    result = attack(linear_model(weight), images, epsilon=0.0)
    assert {record.label_name for record in result.records} == {"red", "green"}
    assert repr(result).startswith("AttackResult(2 attacked,"), "no tensors in the repr pytest shows"
