"""Model specs: factories, TorchScript, torchvision + state dict; pickles refused by default."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch
import torchvision

from helpers import tiny_cnn
from pytest_advrobust import ModelLoadError, UnsafeModelFileError, load_model


class _Evil:
    """Unpickling this creates a file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def test_factory_spec_imports_and_calls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "my_models.py").write_text(
        "import torch\ndef make():\n    return torch.nn.Linear(4, 2)\ninstance = torch.nn.Linear(4, 3)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert load_model("my_models:make").out_features == 2
    assert load_model("my_models:instance").out_features == 3
    with pytest.raises(ModelLoadError, match="has no attribute 'nope'"):
        load_model("my_models:nope")
    with pytest.raises(ModelLoadError, match="cannot import module 'no_such_module'"):
        load_model("no_such_module:make")


def test_torchscript_file(tmp_path: Path) -> None:
    model = tiny_cnn().eval()
    path = tmp_path / "model.pt"
    torch.jit.save(torch.jit.script(model), str(path))
    loaded = load_model(str(path))
    x = torch.rand(2, 3, 8, 8)
    assert torch.allclose(loaded(x), model(x))


def test_torchvision_architecture_with_state_dict(tmp_path: Path) -> None:
    reference = torchvision.models.resnet18(weights=None, num_classes=5).eval()
    torch.save(reference.state_dict(), tmp_path / "w.pth")
    loaded = load_model(f"resnet18@{tmp_path / 'w.pth'}").eval()
    x = torch.rand(1, 3, 64, 64)
    assert torch.allclose(loaded(x), reference(x))
    with pytest.raises(ModelLoadError, match="unknown torchvision architecture 'resnet19'; did you mean"):
        load_model(f"resnet19@{tmp_path / 'w.pth'}")


def test_a_bare_state_dict_needs_an_architecture(tmp_path: Path) -> None:
    torch.save(tiny_cnn().state_dict(), tmp_path / "w.pth")
    with pytest.raises(ModelLoadError, match="holds a state dict .* needs an architecture"):
        load_model(str(tmp_path / "w.pth"))


def test_a_file_that_is_not_a_model(tmp_path: Path) -> None:
    (tmp_path / "notes.pt").write_text("hello")
    with pytest.raises(ModelLoadError, match="is not a PyTorch file torch.load can read"):
        load_model(str(tmp_path / "notes.pt"))
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(str(tmp_path / "missing.pt"))


def test_a_malicious_pickle_does_not_run_under_the_default(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"weights": _Evil(marker)}, path)
    with pytest.raises(UnsafeModelFileError, match=r"can run arbitrary code.*--adv-allow-pickle"):
        load_model(str(path))
    assert not marker.exists()
    with path.open("wb") as handle:
        pickle.dump(_Evil(marker), handle)
    with pytest.raises(ModelLoadError):
        load_model(str(path))
    assert not marker.exists()


def test_a_pickled_module_loads_only_with_the_opt_in(tmp_path: Path) -> None:
    path = tmp_path / "full.pt"
    torch.save(torch.nn.Linear(3, 2), path)
    with pytest.raises(UnsafeModelFileError):
        load_model(str(path))
    assert isinstance(load_model(str(path), allow_pickle=True), torch.nn.Linear)
