"""Labels files and class names as people write them: a byte-order mark from an editor or a spreadsheet, an
image given two labels, a class name given twice, and names that are not plain text."""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest

from helpers import write_png
from pytest_advrobust import ClassNameError, ClassNames, ImageLoadError, load_class_names, load_images
from pytest_advrobust.core.data.images import read_labels_file

BOM = codecs.BOM_UTF8


# --- labels files -----------------------------------------------------------------------------------------


def test_a_labels_file_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    write_png(tmp_path / "imgs" / "a.png")
    write_png(tmp_path / "imgs" / "b.png", seed=1)
    labels = tmp_path / "labels.csv"
    labels.write_bytes(BOM + b"a.png,1\r\nb.png,dog\r\n")  # what Excel's "CSV UTF-8" writes
    assert read_labels_file(labels) == {"a.png": "1", "b.png": "dog"}
    images = load_images(tmp_path / "imgs", labels_file=labels, class_names=["cat", "dog"])
    assert images.labels == [1, 1]


def test_two_labels_for_one_image_are_refused_naming_both_lines(tmp_path: Path) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text("# file,label\na.png,cat\n\nb.png,dog\na.png,dog\n")
    with pytest.raises(ImageLoadError) as caught:
        read_labels_file(labels)
    assert str(caught.value) == (
        f"labels file {labels} gives image a.png two labels: 'cat' on line 2 and 'dog' on line 5; keep one"
    )


def test_line_numbers_count_the_lines_of_the_file(tmp_path: Path) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_bytes(BOM + b'a.png,cat\r\n"b\nc.png",dog\r\nd.png,cat\r\na.png,dog\r\n')  # a quoted name on 2 lines
    with pytest.raises(ImageLoadError, match="'cat' on line 1 and 'dog' on line 5"):
        read_labels_file(labels)
    labels.write_text("a.png,cat\n\n\nb.png\n")
    with pytest.raises(ImageLoadError, match="line 4: expected 'filename,label', got 'b.png'"):
        read_labels_file(labels)


def test_the_same_line_twice_is_accepted(tmp_path: Path) -> None:
    """Two labels files joined together may repeat a line; the label is not in doubt."""
    labels = tmp_path / "labels.csv"
    labels.write_text("a.png,cat\nb.png,dog\na.png, cat\n")
    assert read_labels_file(labels) == {"a.png": "cat", "b.png": "dog"}


def test_image_names_in_labels_errors_are_shown_escaped(tmp_path: Path) -> None:
    hostile = "x\n::error title=INJECTED::y.png"
    write_png(tmp_path / "imgs" / hostile)
    labels = tmp_path / "labels.csv"
    labels.write_text("other.png,0\n")
    with pytest.raises(ImageLoadError) as caught:
        load_images(tmp_path / "imgs", labels_file=labels)
    message = str(caught.value)
    assert "\n" not in message
    assert r"has no line for image x\n::error title=INJECTED::y.png; add 'x\n::error" in message
    labels.write_text(f'"{hostile}",0\n"{hostile}",1\n')
    with pytest.raises(ImageLoadError) as caught:
        read_labels_file(labels)
    assert r"gives image x\n::error title=INJECTED::y.png two labels" in str(caught.value)


# --- class names ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", [["red", "green", "red"], "red,green,red", ("red", "green", "red")])
def test_a_class_name_given_twice_is_refused(spec: object) -> None:
    with pytest.raises(ClassNameError) as caught:
        load_class_names(spec)  # type: ignore[arg-type]
    assert str(caught.value) == "class name 'red' is given twice (classes 0 and 2); each class needs its own name"


def test_a_class_names_file_naming_a_class_twice_is_refused_with_its_lines(tmp_path: Path) -> None:
    names = tmp_path / "names.txt"
    names.write_text("red\n\ngreen\nblue\nred\n")
    with pytest.raises(ClassNameError) as caught:
        load_class_names(names)
    assert str(caught.value) == (
        f"class names file {names} gives the class name 'red' twice (line 1, class 0, and line 5, class 3); "
        "each class needs its own name"
    )


def test_the_class_names_object_refuses_a_name_given_twice() -> None:
    with pytest.raises(ClassNameError, match="class name 'cat' is given twice"):
        ClassNames(["cat", "dog", "cat"])


def test_names_that_differ_in_case_are_two_classes_and_the_exact_spelling_wins() -> None:
    """ImageNet has ``Cardigan`` (the corgi, 264) and ``cardigan`` (the sweater, 474)."""
    imagenet = load_class_names("imagenet")
    assert (imagenet.index("cardigan"), imagenet.index("Cardigan")) == (474, 264)
    names = ClassNames(["Red", "red", "green"])
    assert (names.index("Red"), names.index("red"), names.index("RED"), names.index("Green")) == (0, 1, 0, 2)


def test_a_class_names_file_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    names = tmp_path / "names.txt"
    names.write_bytes(BOM + b"red\r\ngreen\r\n")
    assert load_class_names(names).names == ("red", "green")
