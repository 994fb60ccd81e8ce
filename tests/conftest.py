"""Shared fixtures."""

from __future__ import annotations

import os
import sys
from pathlib import Path

if os.environ.get("PYTEST_XDIST_WORKER"):
    # One torch thread per xdist worker (one worker per core): the models here are tiny, and two threads
    # per worker on a 2-core machine wait on each other. Set before torch is imported, so that the pytest
    # runs the tests start (which inherit it) use one thread too.
    os.environ["OMP_NUM_THREADS"] = "1"

# Imported once, here: pytester's in-process runs drop the modules first imported during a run, so
# torch (whose lazily imported parts must not register twice), torchvision and hypothesis' terminal
# summary would be imported all over again in each run.
import _pytest.pytester as _pytester
import hypothesis.internal.observability  # noqa: F401
import pytest
import torch
import torch._dynamo
import torchvision  # noqa: F401

try:  # the report extra; its classes must not be imported twice either
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot
except ImportError:
    pass

import pytest_advrobust.core.data.sources  # noqa: F401  (ImageSet: one class for the plugin and pytester's conftests)
from helpers import write_png

LIBRARIES = ("transformers", "kernels", "timm", "huggingface_hub", "safetensors", "onnx", "onnx2torch", "onnxruntime")
"""Libraries that import parts of themselves lazily (transformers as it loads a model: its modeling base
class, key-renaming tables, hub kernels). pytester's in-process runs drop every module first imported during
a run; a part of one of these dropped and imported again is a second copy, and the first copy's objects
fail against it (``isinstance`` of a model, ``'Mode' in 'Mode'``). Their modules are kept across runs."""
_restore = _pytester.SysModulesSnapshot.restore


def _restore_keeping_libraries(self: _pytester.SysModulesSnapshot) -> None:
    kept = {  # a module a run hid (None: "not installed") comes back as it was
        name: module
        for name, module in sys.modules.items()
        if name.partition(".")[0] in LIBRARIES and module is not None
    }
    _restore(self)
    sys.modules.update(kept)


_pytester.SysModulesSnapshot.restore = _restore_keeping_libraries  # type: ignore[method-assign]


if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _not_on_a_ci_runner(monkeypatch: pytest.MonkeyPatch) -> None:
    """pytester runs in this process: on GitHub Actions they would append to the real job summary and
    print annotations. Tests of those outputs set the variables themselves."""
    for name in ("GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY", "GITHUB_WORKSPACE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def _no_hypothesis_plugin_in_inner_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pytest runs the tests start (pytester, subprocesses, their xdist workers) load every installed
    plugin; Hypothesis' costs 0.65 s a process, and none of those runs uses Hypothesis."""
    given = os.environ.get("PYTEST_ADDOPTS", "")
    monkeypatch.setenv("PYTEST_ADDOPTS", f"{given} -p no:hypothesispytest".strip())


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """An ImageFolder layout: two labelled classes (by index) with two PNGs each."""
    root = tmp_path / "images"
    for label in ("0", "1"):
        for k in range(2):
            write_png(root / label / f"img{k}.png", seed=int(label) * 10 + k)
    return root
