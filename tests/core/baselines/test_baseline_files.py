"""Baseline files as a hostile or careless hand left them: every wrong shape is one error that names the
file and the field (never a traceback, never a value read as something else)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pytest_advrobust.core.baselines.store import read_baselines
from pytest_advrobust.core.errors import AdvRobustError

ROW = {
    "clean_label": 0,
    "clean_label_name": "red",
    "misclassified": False,
    "flipped": False,
    "adv_label": 0,
    "adv_label_name": "red",
    "minimal_epsilon": 0.01,
}


def _file(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "test_model.py.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _entry(**row: Any) -> dict[str, Any]:
    return {"settings": {"attack": "bim"}, "images": {"a.png": {**ROW, **row}}}


@pytest.mark.parametrize(
    ("data", "says"),
    [
        ({"schema_version": 1, "tests": []}, "tests must be an object of test name → entry, not list []"),
        ({"schema_version": 1, "tests": None}, "tests must be an object of test name → entry, not NoneType None"),
        ({"schema_version": 1, "tests": {"t": {}}}, "tests['t'].images must be an object, not missing"),
        ({"schema_version": 1, "tests": {"t": {"settings": {}, "images": []}}}, "tests['t'].images must be an object"),
        (
            {"schema_version": 1, "tests": {"t": {"settings": {}, "images": {"a.png": {}}}}},
            "tests['t'].images['a.png'].clean_label must be a whole number, not missing",
        ),
        (
            {"schema_version": 1, "tests": {"t": _entry(minimal_epsilon="abc")}},
            "tests['t'].images['a.png'].minimal_epsilon must be a number or null, not str 'abc'",
        ),
        (
            {"schema_version": 1, "tests": {"t": _entry(minimal_epsilon=-1)}},
            "tests['t'].images['a.png'].minimal_epsilon must be a budget ≥ 0",
        ),
        (
            {"schema_version": 1, "tests": {"t": _entry(flipped="no")}},
            "tests['t'].images['a.png'].flipped must be true or false, not str 'no'",
        ),
        (
            {"schema_version": 1, "tests": {"t": _entry(clean_label=True)}},
            "tests['t'].images['a.png'].clean_label must be a whole number, not bool True",
        ),
        ({"schema_version": "1", "tests": {}}, "has schema version '1'; this pytest-advrobust reads schema version 1"),
        ({"tests": {}}, "has no schema version"),
        ([], "has no schema version"),
    ],
)
def test_a_baseline_of_the_wrong_shape_is_one_error_naming_file_and_field(tmp_path: Path, data: Any, says: str) -> None:
    path = _file(tmp_path, data)
    with pytest.raises(AdvRobustError) as refused:
        read_baselines(path)
    message = str(refused.value)
    assert message.startswith(f"baseline file {path} ") and says in message
    assert "--adv-baseline-update" in message


def test_a_baseline_of_the_right_shape_reads_each_value_as_written(tmp_path: Path) -> None:
    path = _file(tmp_path, {"schema_version": 1, "tests": {"t": _entry(flipped=True, adv_label=2, minimal_epsilon=0)}})
    (image,) = read_baselines(path)["t"].images.values()
    assert (image.flipped, image.adv_label, image.minimal_epsilon) == (True, 2, 0.0)
    assert isinstance(image.minimal_epsilon, float)
