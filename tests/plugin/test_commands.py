"""The printed commands do what they say when pasted verbatim: "reproduce with:" gives the same verdict
from the folder pytest was started in (parent folder, subfolder, -o, --opt value), and "accept ... with:"
updates exactly that test's (or shard's) images."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CONFTEST = """
import pathlib, pytest, torch
from torch import nn

class ColorNet(nn.Module):  # logits = 10 * channel means + bias
    def __init__(self, bias):
        super().__init__()
        self.bias = nn.Parameter(torch.tensor(bias))
    def forward(self, x):
        return 10 * x.mean(dim=(2, 3)) + self.bias

@pytest.fixture(scope="session")
def adv_model():
    # the "weights file" a retrain overwrites
    text = (pathlib.Path(__file__).parent / "model.txt").read_text()
    return ColorNet([float(v) for v in text.split(",")])
"""

TESTS = """
from pytest_advrobust import adv_robust

@adv_robust
def test_colors():
    pass
"""

SHIPPED, RETRAINED = "0,0,0", "0,0.38,0"  # the retrained model flips the red images at 0.007


def _project(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "conftest.py").write_text(CONFTEST)
    (root / "test_model.py").write_text(TESTS)
    (root / "tox.ini").write_text("[pytest]\nadv_images = imgs\nadv_class_names = red,green,blue\n")
    (root / "model.txt").write_text(SHIPPED)
    (root / "imgs").mkdir()
    images = {
        "a_g.png": (60, 200, 60),
        "b_r.png": (130, 120, 110),
        "c_g.png": (50, 210, 60),
        "d_r.png": (131, 120, 110),
    }
    for name, rgb in images.items():
        Image.fromarray(np.full((8, 8, 3), rgb, dtype=np.uint8)).save(root / "imgs" / name)
    return root


def _pytest(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=cwd, capture_output=True, text=True
    )


def _printed(output: str, prefix: str) -> list[str]:
    """The commands printed after ``prefix``, ready for subprocess (``pytest`` → this Python's pytest)."""
    # pytest repeats a failure's message in its short summary when CI is set: each command once
    commands = list(dict.fromkeys(line.split(prefix, 1)[1] for line in output.splitlines() if prefix in line))
    assert commands, output
    return commands


def _run_printed(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    words = shlex.split(command)
    assert words[0] == "pytest"
    return _pytest(words[1:], cwd)


@pytest.mark.parametrize(
    ("where", "args"),
    [
        ("parent", ["proj", "-o", "adv_epsilon=0.03"]),
        ("parent", ["proj", "--adv-epsilon", "0.03"]),
        ("sub", ["..", "--adv-epsilon=0.03"]),
        ("parent", ["-c", "proj/other.ini", "proj"]),
    ],
    ids=["parent-folder-with-o", "parent-folder-space-form", "subfolder", "another-ini-file"],
)
def test_reproduce_command_gives_the_same_verdict_verbatim(tmp_path: Path, where: str, args: list[str]) -> None:
    project = _project(tmp_path / "proj")
    (project / "sub").mkdir()
    (project / "other.ini").write_text((project / "tox.ini").read_text() + "adv_epsilon = 0.03\n")
    cwd = tmp_path if where == "parent" else project / "sub"
    first = _pytest(args, cwd)
    assert first.returncode == 1, first.stdout  # red flips at 0.03 (its minimal eps is about 0.024)
    (command,) = _printed(first.stdout, "reproduce with: ")
    assert "--adv-epsilon=0.03" in command or "-c proj/other.ini" in command, command
    # the summary spells the test id as pytest does in that folder, like the command
    test_id = shlex.split(command)[1]
    assert any(line.startswith(f"{test_id}: 4 attacked") for line in first.stdout.splitlines()), first.stdout
    again = _run_printed(command, cwd)
    assert again.returncode == 1, command + "\n" + again.stdout
    assert "b_r.png: 'red'" in again.stdout and "1 failed" in again.stdout


def test_a_sharded_partial_update_keeps_the_other_shards_images(tmp_path: Path) -> None:
    pytest.importorskip("xdist")
    project = _project(tmp_path / "proj")
    _pytest(["-n", "2", "--adv-shards=2", "--adv-baseline-update"], project).check_returncode()
    (project / "model.txt").write_text(RETRAINED)
    retrained = _pytest(["-n", "2", "--adv-shards=2"], project)
    assert retrained.returncode == 1 and "2 failed" in retrained.stdout, retrained.stdout
    accepts = _printed(retrained.stdout, "accept the current results as the baseline with: ")
    (shard1,) = [command for command in accepts if "shard1of2" in command]
    assert shlex.split(shard1)[1:] == [
        "test_model.py::test_colors[shard1of2]",
        "--adv-shards=2",
        "--adv-seed=0",
        "--adv-baseline-update",
    ]
    _run_printed(shard1, project).check_returncode()
    stored = json.loads((project / "advrobust-baselines" / "test_model.py.json").read_text())
    images = stored["tests"]["test_colors"]["images"]
    assert sorted(images) == ["a_g.png", "b_r.png", "c_g.png", "d_r.png"], "the other shard's images are kept"
    assert images["b_r.png"]["flipped"] is True and images["d_r.png"]["flipped"] is False
    # shard 1's flip is now known; shard 2's flip still fails
    after = _pytest(["-n", "2", "--adv-shards=2", "-rA"], project)
    assert after.returncode == 1, after.stdout
    assert "PASSED test_model.py::test_colors[shard1of2]" in after.stdout
    assert "FAILED test_model.py::test_colors[shard2of2]" in after.stdout
    assert "d_r.png: held -> flips to 'green'" in after.stdout


def test_a_conftest_option_that_chooses_the_model_is_passed_on(pytester: pytest.Pytester) -> None:
    from pytest_advrobust.plugin.commands import passed_on_args

    pytester.makeconftest("def pytest_addoption(parser):\n    parser.addoption('--model-file')\n")
    pytester.makepyfile(test_a="def test_a():\n    pass\n")
    args = ["-q", "-x", "-k", "a", "--model-file", "retrained.pt", "test_a.py", "-rA", "--adv-epsilon", "0.1",
            "--adv-baseline-update", "-o", "adv_seed=3", "--tb=short"]  # fmt: skip
    config = pytester.parseconfig(*args)
    assert passed_on_args(config) == ["--model-file", "retrained.pt"]
