"""An image name is data, not output: on GitHub Actions a file called ``x\\n::error …::…\\nz.png`` (or one
named in a committed baseline) must not print a line the runner executes as a workflow command. Names are
shown escaped in the failure message, the terminal summary and the baseline comparison; the JSON report
and the baseline file keep the real names."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import color_net_conftest, color_project

# broken: the red images flip to green at 0.007
CONFTEST = color_net_conftest('{"a": (0.0, 0.0, 0.0), "broken": (0.0, 0.38, 0.0)}')

TESTS = """
from pytest_advrobust import adv_robust

@adv_robust
def test_colors():
    pass
"""

RED, GREEN = (130, 120, 110), (60, 200, 60)

NEWLINES = "r\n::error title=INJECTED::injected\nz.png"
"""Flips with the broken model: a line of its own would be an error annotation."""
LEADING = "::error title=LEADING::lead.png"
"""Flips: its line in the failure message would start, after spaces, with ``::``."""
LEGACY = "g##[error]legacy.png"
"""Holds: the runner reads the legacy ``##[`` prefix anywhere in a line."""
GONE = "gone\n::stop-commands::pwned\n.png"
"""Only in the baseline file: it would stop the runner reading the plugin's own annotations."""
NEW = "n\r\n::error title=NEW::new\n.png"
"""Added after recording, flips: a regression."""

SHOWN_NEWLINES = r"r\n::error title=INJECTED::injected\nz.png"
SHOWN_LEADING = r"\x3a:error title=LEADING::lead.png"
SHOWN_LEGACY = r"g#\x23[error]legacy.png"
SHOWN_GONE = r"gone\n::stop-commands::pwned\n.png"
SHOWN_NEW = r"n\r\n::error title=NEW::new\n.png"


def _png(color: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), color, dtype=np.uint8)).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.Pytester:
    color_project(pytester, CONFTEST, TESTS, {NEWLINES: RED, LEADING: RED, LEGACY: GREEN})
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    # as on GitHub's runners; pytest then prints the whole failure message in the short summary too
    monkeypatch.setenv("CI", "true")
    monkeypatch.setenv("GITHUB_WORKSPACE", str(pytester.path))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "step-summary.md"))
    return pytester


def _commands(result: pytest.RunResult) -> list[str]:
    """The lines GitHub's runner would execute: ``::`` first after leading spaces, or ``##[`` anywhere."""
    return [line for line in result.stdout.lines if line.lstrip().startswith("::") or "##[" in line]


def _annotations_only(result: pytest.RunResult) -> list[str]:
    commands = _commands(result)
    assert all(line.startswith("::error file=test_model.py,line=") for line in commands), commands
    return commands


def test_image_names_are_escaped_wherever_they_are_shown(project: pytest.Pytester) -> None:
    result = project.runpytest_subprocess("--which=broken", "-v", "--adv-report=r.json")
    result.assert_outcomes(failed=1)
    (annotation,) = _annotations_only(result)
    lines = result.stdout.lines
    # the failure message (pytest prints it as it is: pytrace=False) and the summary's per-image lines (-v)
    for name, shown in ((NEWLINES, SHOWN_NEWLINES), (LEADING, SHOWN_LEADING)):
        flipped = f"{shown}: 'red' 0.41 -> 'green' 0.42 at eps=0.007, step 2/10"
        assert [line for line in lines if line.startswith("  " + flipped)], f"failure message of {name!r}"
        assert [line for line in lines if line.startswith("      " + flipped)], f"summary line of {name!r}"
        assert f"%0A  {flipped}" in annotation
    held = [line for line in lines if line.lstrip().startswith(SHOWN_LEGACY + ": 'green' ")]
    # the failure message's held list, the summary's -v line, the short summary's copy of the message (under CI)
    assert len(held) == 3
    assert "title=adversarial robustness%3A test_colors::" in annotation
    images = json.loads((project.path / "r.json").read_text())["tests"][0]["images"]
    assert sorted(image["name"] for image in images) == sorted([NEWLINES, LEADING, LEGACY])


def test_names_from_the_baseline_comparison_are_escaped(project: pytest.Pytester) -> None:
    project.runpytest("--which=broken", "--adv-baseline-update").assert_outcomes(passed=1)
    file = project.path / "advrobust-baselines" / "test_model.py.json"
    stored = json.loads(file.read_text())
    images = stored["tests"]["test_colors"]["images"]
    images[GONE] = images[LEGACY]  # a committed entry whose image is gone: shown on every run
    file.write_text(json.dumps(stored))
    (project.path / "imgs" / NEW).write_bytes(_png(RED))

    regressed = project.runpytest_subprocess("--which=broken")
    regressed.assert_outcomes(failed=1)
    (annotation,) = _annotations_only(regressed)
    lines = regressed.stdout.lines
    regression = f"  {SHOWN_NEW}: new image, not in the baseline: flips 'red' -> 'green'"
    assert regression in lines
    assert [line for line in lines if line.startswith("robustness regressed against the baseline in ")]
    known = [f"  {shown}: 'red' -> 'green', in the baseline too " for shown in (SHOWN_LEADING, SHOWN_NEWLINES)]
    assert all([line for line in lines if line.startswith(start)] for start in known)
    assert f"  {SHOWN_GONE}" in lines  # the comparison's missing list
    assert f"      {SHOWN_GONE}" in lines  # the summary's
    assert f"%0A{regression}%0A" in annotation

    (project.path / "imgs" / NEW).unlink()
    green = project.runpytest_subprocess("--which=broken")
    green.assert_outcomes(passed=1)
    assert _commands(green) == []
    assert f"      {SHOWN_GONE}" in green.stdout.lines
    assert set(json.loads(file.read_text())["tests"]["test_colors"]["images"]) == {NEWLINES, LEADING, LEGACY, GONE}


def test_a_committed_entry_of_a_test_that_is_gone_is_named_escaped(project: pytest.Pytester) -> None:
    """The "no test any more" line prints the baseline file's keys: a key with a newline stays on one line."""
    project.runpytest("--adv-baseline-update").assert_outcomes(passed=1)
    file = project.path / "advrobust-baselines" / "test_model.py.json"
    stored = json.loads(file.read_text())
    stored["tests"]["gone\n::stop-commands::pwned"] = stored["tests"]["test_colors"]
    file.write_text(json.dumps(stored))
    result = project.runpytest_subprocess()
    result.assert_outcomes(passed=1)
    assert _commands(result) == []
    result.stdout.fnmatch_lines([r"*no test any more*test_model.py::gone\n::stop-commands::pwned*"])


def test_class_names_in_the_failure_headline_are_escaped() -> None:
    """A class name from a model's own labels (``id2label``) can hold anything: the headline's pairs show it
    escaped, so the failure message's first line starts no workflow command."""
    import torch

    from helpers import linear_model
    from pytest_advrobust import attack

    weight = torch.zeros(2, 4)
    weight[0], weight[1] = 1.0, -1.0
    x = torch.full((1, 1, 2, 2), 100 / 255)
    model = linear_model(weight, torch.tensor([-2 * float(x.sum()) + 0.01, 0.0]))  # margin 0.01; a step moves it 0.08
    names = ["red\n::error title=INJECTED::x", "green"]
    result = attack(model, x, epsilon=0.01, method="fgsm", labels=[0], class_names=names, verdict="float")
    assert result.flips
    message = result.failure_message()
    assert r"red\n::error title=INJECTED::x -> green" in message.splitlines()[0]
    assert not any(line.lstrip().startswith("::") for line in message.splitlines())
