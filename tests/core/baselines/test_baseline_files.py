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


NESTED = "[" * 5000 + "]" * 5000


def test_deeply_nested_json_is_one_error_and_an_update_replaces_it(tmp_path: Path) -> None:
    """Python's JSON reader gives up on deep nesting with RecursionError: a baseline file so deep is one
    line when compared, and is replaced, with a note, when updated (as any unreadable baseline is)."""
    from pytest_advrobust.core.baselines.rule import BaselineEntry
    from pytest_advrobust.core.baselines.store import Update, write_baselines

    path = tmp_path / "test_m.py.json"
    path.write_text(NESTED)
    with pytest.raises(AdvRobustError) as raised:
        read_baselines(path)
    assert str(raised.value) == (
        f"baseline file {path} cannot be read (its JSON is nested too deeply); fix it, or delete it and re-record "
        "with --adv-baseline-update"
    )
    entry = BaselineEntry({"attack": "fgsm"}, "n/a", {}, {})
    notes: list[str] = []
    write_baselines(tmp_path, [Update("test_m.py", "test_x", entry, [])], notes=notes)
    assert list(read_baselines(path)) == ["test_x"] and len(notes) == 1 and "nested too deeply" in notes[0]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('{"schema_version": ' + "9" * 5000 + "}", "Exceeds the limit (4300 digits)"),
        (
            '{"schema_version": 1, "tests": {"t": {"settings": {}, "images": {}, "model_fingerprint": "sha256:\\n::error::x"}}}',
            "tests['t'].model_fingerprint must be 'sha256:' and 64 hex digits",
        ),
    ],
    ids=["a 5000-digit number", "a fingerprint no model has"],
)
def test_a_baseline_python_cannot_read_or_no_run_wrote_is_one_error(tmp_path: Path, text: str, says: str) -> None:
    path = tmp_path / "test_m.py.json"
    path.write_text(text)
    with pytest.raises(AdvRobustError) as raised:
        read_baselines(path)
    message = str(raised.value)
    assert message.startswith(f"baseline file {path} ") and says in message and "\n" not in message
