"""Artifact file names: one set of files per image even where names coincide once made file-safe, and no
file name over the 255 bytes file systems allow, however long (or multi-byte) the image's name."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("matplotlib", reason="the curves need the report extra: pip install -e '.[report]'")

NAMED_IMAGES = """
import pytest, torch
from pytest_advrobust import ImageSet

NAMES = {names!r}

@pytest.fixture
def adv_images():
    g = torch.Generator().manual_seed(1)
    return ImageSet(torch.randint(0, 256, (len(NAMES), 3, 8, 8), generator=g).float() / 255, names=NAMES)
"""

TESTS = """
import pytest
from pytest_advrobust import adv_robust

@adv_robust(epsilon={epsilon})
def test_named():
    pass
"""

NAME_MAX = 255
"""The longest file name (bytes) of ext4, APFS and most others."""
COLLIDING = ["red/a b.png", "red/a_b.png", "red/a b.jpg", "red_a_b.png"]


def _names_project(project: pytest.Pytester, names: list[str], epsilon: float = 0.05) -> None:
    project.makeconftest(
        (project.path / "conftest.py").read_text() + NAMED_IMAGES.format(names=names)
    )  # the shared model, these images
    project.makepyfile(TESTS.format(epsilon=epsilon))


def test_names_that_coincide_once_file_safe_get_their_own_files(project: pytest.Pytester) -> None:
    _names_project(project, COLLIDING)
    result = project.runpytest(
        "--adv-artifacts=art", "--adv-artifacts-all", "--adv-report=r.json", "--junitxml=j.xml", "--adv-html=r.html"
    )
    result.assert_outcomes(failed=1)
    images = json.loads((project.path / "r.json").read_text())["tests"][0]["images"]
    assert [image["name"] for image in images] == COLLIDING
    kinds = ("clean", "adversarial", "perturbation", "curve", "json")
    paths = [image["artifacts"] for image in images]
    for kind in kinds:
        assert len({p[kind] for p in paths}) == 4, f"each image has its own {kind} file"
    folder = project.path / "art" / "test_names_that_coincide_once_file_safe_get_their_own_files.py_test_named"
    assert len(list(folder.iterdir())) == 4 * len(kinds)
    generator = torch.Generator().manual_seed(1)
    pixels = torch.randint(0, 256, (4, 3, 8, 8), generator=generator).permute(0, 2, 3, 1).numpy()
    for image, expected in zip(images, pixels, strict=True):
        clean = np.asarray(Image.open(project.path / image["artifacts"]["clean"]).convert("RGB"))
        assert (clean == expected).all(), f"{image['name']}'s clean file shows that image"
        numbers = json.loads((project.path / image["artifacts"]["json"]).read_text())
        assert numbers["name"] == image["name"]
        assert numbers["files"]["adversarial"] == Path(image["artifacts"]["adversarial"]).name
    properties = {p.get("name"): p.get("value") for p in ET.parse(project.path / "j.xml").getroot().iter("property")}
    assert [properties[f"adv_artifact {name}"] for name in COLLIDING] == [p["adversarial"] for p in paths]
    html = (project.path / "r.html").read_text(encoding="utf-8")
    assert all(name in html for name in COLLIDING)


def test_stems_are_unique_readable_and_stable() -> None:
    from pytest_advrobust.core.results.artifacts import safe_name, unique_stems

    stems = unique_stems(["red/a b.png", "red/a_b.png", "cat.png", "Cat.png", "dog.png"])
    assert stems["dog.png"] == "dog", "a name that collides with nothing keeps its plain stem"
    assert stems["red/a b.png"].startswith("red_a_b-") and stems["red/a_b.png"].startswith("red_a_b-")
    assert len({stem.casefold() for stem in stems.values()}) == 5, "unique even where case is ignored"
    assert unique_stems(["red/a_b.png", "dog.png", "red/a b.png"]) == {
        name: stems[name] for name in ("red/a_b.png", "dog.png", "red/a b.png")
    }, "a stem depends on the names, not on their order"
    assert safe_name("猫の写真.png") == "猫の写真", "letters of any script are kept"


@pytest.mark.parametrize("name", ["x" * 245 + ".png", "é" * 200 + ".png", "猫" * 90 + ".png"])
def test_long_names_are_shortened_within_the_file_name_limit(name: str) -> None:
    from pytest_advrobust.core.results.artifacts import safe_name

    stem = safe_name(name)
    longest = f"{stem}-perturbation.png"
    assert len(longest.encode()) <= NAME_MAX and len(f"{stem}.json.tmp".encode()) <= NAME_MAX
    assert stem != safe_name(name[:-5] + "y.png"), "shortened names keep a hash of the whole name"
    assert stem[:20] == name[:20]


def test_a_long_image_name_writes_its_artifacts_and_stays_green(project: pytest.Pytester) -> None:
    names = ["x" * 245 + ".png", "é" * 120 + ".png", "x" * 245 + ".jpg", "short.png"]  # each a valid file name
    _names_project(project, names, epsilon=0.0)
    project.makepyfile(
        test_long_id="""
        import pytest
        from pytest_advrobust import adv_robust

        @adv_robust(epsilon=0.0)
        @pytest.mark.parametrize("which", [1], ids=["p" * 250])
        def test_named(which):
            pass
        """
    )
    result = project.runpytest("--adv-artifacts=art", "--adv-artifacts-all", "--adv-report=r.json")
    result.assert_outcomes(passed=2)
    files = [path for path in (project.path / "art").rglob("*")]
    assert len([path for path in files if path.is_file()]) == 2 * 4 * 5
    assert all(len(path.name.encode()) <= NAME_MAX for path in files)
    tests = json.loads((project.path / "r.json").read_text())["tests"]
    for test in tests:
        assert len({image["artifacts"]["clean"] for image in test["images"]}) == 4
        assert all((project.path / image["artifacts"]["adversarial"]).is_file() for image in test["images"])
