"""Class names: lists, files, ImageNet's from torchvision metadata, and suggestions for typos."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_advrobust import ClassNameError, ClassNames, load_class_names


def test_imagenet_names_come_from_torchvision_without_download() -> None:
    names = load_class_names("imagenet")
    assert len(names) == 1000
    assert names.index("paper towel") == 700
    assert names.name(388) == "giant panda"
    assert names.index("Giant Panda") == 388


def test_unknown_name_suggests_close_matches() -> None:
    names = load_class_names("imagenet")
    with pytest.raises(ClassNameError, match="unknown class name 'paper towl'; did you mean 'paper towel'"):
        names.index("paper towl")


def test_names_from_a_file_and_a_list(tmp_path: Path) -> None:
    (tmp_path / "names.txt").write_text("cat\ndog\n\n")
    assert load_class_names(tmp_path / "names.txt").names == ("cat", "dog")
    assert load_class_names(["a", "b"]).index("b") == 1


def test_indices_are_checked_against_the_class_count() -> None:
    with pytest.raises(ClassNameError, match="class index 5 is out of range: there are 3 class names"):
        ClassNames(["a", "b", "c"]).index(5)
    assert ClassNames().name(7) == "class 7"


def test_a_name_without_class_names_says_how_to_set_them() -> None:
    with pytest.raises(ClassNameError, match="no class names are set.*--adv-class-names=imagenet"):
        ClassNames().index("cat")


def test_a_comma_separated_string_is_a_list_of_names_in_python_too() -> None:
    assert load_class_names("red, green,blue").names == ("red", "green", "blue")
