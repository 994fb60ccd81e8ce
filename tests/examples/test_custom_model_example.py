"""examples/custom_model runs as a user would run it, with the outcomes its docstrings promise."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).parents[2] / "examples" / "custom_model"


def test_custom_model_example(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(EXAMPLE, pytester.path, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.syspath_prepend(str(pytester.path))
    result = pytester.runpytest("--adv-epsilon=0.007", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "9 of 9 image(s) flipped at eps=0.007 (apgd): * -> *",
            "  red/red0.png: 'red' 0.34 -> 'green' 0.3? at eps=0.007, step */10*",
            "*test_muted_colors_flip: 9 attacked, 9 flipped, 0 misclassified, robust accuracy 0.0% (95% CI 0.0–33.6%)*",
            "    blue -> red ×3",
            "*test_vivid_colors_hold: 9 attacked, 0 flipped, 0 misclassified, robust accuracy 100.0% (95% CI 66.4–100.0%)*",
        ]
    )
