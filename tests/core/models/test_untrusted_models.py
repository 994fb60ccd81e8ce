"""A model folder comes from a hub or a colleague: what its files say must never make a library reach the
network or run code, and a value of the wrong type or size is one line naming the key and the file, never
a traceback (issue 33, items 5, 6, 9, 11-14). No socket may even be opened while a folder loads."""

from __future__ import annotations

import json
import shutil
import socket
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from pytest_advrobust.core.errors import ModelLoadError
from pytest_advrobust.core.models.formats import load_shipped

NESTED = "[" * 5000 + "]" * 5000


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Any connection attempt while the test runs is recorded and refused (a stand-in for a Hub)."""
    attempts: list[Any] = []

    def refuse(self: socket.socket, address: Any, *args: Any) -> None:
        attempts.append(address)
        raise OSError("the test allows no network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    yield attempts
    assert attempts == [], "a model folder made a library reach the network"


def _copy(folder: Path, tmp_path: Path, edit: Callable[[dict[str, Any]], Any], name: str = "config.json") -> Path:
    """A copy of ``folder`` with ``edit`` applied to one of its JSON files."""
    copy = tmp_path / "model"
    shutil.copytree(folder, copy)
    data = json.loads((copy / name).read_text())
    edit(data)
    (copy / name).write_text(json.dumps(data))
    return copy


def _cfg(data: dict[str, Any]) -> dict[str, Any]:
    cfg: dict[str, Any] = data["pretrained_cfg"]
    return cfg


TIMM_CASES: dict[str, tuple[Callable[[dict[str, Any]], Any], str]] = {
    # 5. a folder that makes timm fetch another model's config from the Hub
    "hf-hub architecture": (lambda d: d.update(architecture="hf-hub:evil/model"), "architecture 'hf-hub:evil/model' is not a timm architecture name"),
    "local-dir architecture": (lambda d: d.update(architecture="local-dir:/etc"), "architecture 'local-dir:/etc' is not a timm architecture name"),
    # 11. sizes without bounds
    "crop_pct 1e-300": (lambda d: _cfg(d).update(crop_pct=1e-300), "pretrained_cfg.crop_pct must be a number between 0.1 and 2"),
    "input_size 100000": (lambda d: _cfg(d).update(input_size=[3, 100000, 100000]), "pretrained_cfg.input_size must be [channels, height, width] with sides up to 4096"),
    # 12. wrong types
    "mean a string": (lambda d: _cfg(d).update(mean="abc"), "pretrained_cfg.mean must be a number or a list of numbers, one per channel, not 'abc'"),
    "input_size [3]": (lambda d: _cfg(d).update(input_size=[3]), "pretrained_cfg.input_size must be [channels, height, width]"),
    "crop_pct a string": (lambda d: _cfg(d).update(crop_pct="abc"), "pretrained_cfg.crop_pct must be a number between 0.1 and 2"),
    "num_classes a string": (lambda d: d.update(num_classes="abc"), "num_classes must be a whole number of classes, not 'abc'"),
    "model_args a list": (lambda d: d.update(model_args=[1, 2]), "model_args must be an object of create_model's keyword arguments"),
    "label_names a number": (lambda d: d.update(label_names=5), "label_names must be a list of class names, or an object of class index → name, not 5"),
    "label_names names a dict": (lambda d: d.update(label_names={"a": "cat"}), "label_names must be a list of class names"),
    "pretrained_cfg a list": (lambda d: d.update(pretrained_cfg=[]), "pretrained_cfg must be an object, not []"),
    # from the trial: building the model would take memory without bound, or fail with a traceback
    "a million layers": (lambda d: d.update(model_args={"layers": [10**6, 1, 1, 1]}), "model_args.layers=[1000000, 1, 1, 1] asks for more layers than model.safetensors holds tensors"),
    "a million classes": (lambda d: d.update(num_classes=10**6), "num_classes=1000000 is larger than any dimension of the tensors in model.safetensors"),
    "an activation timm lacks": (lambda d: d.update(model_args={"act_layer": "evil"}), "timm cannot build 'test_resnet' with act_layer=evil, num_classes=3, in_chans=3: "),
    "an output stride timm lacks": (lambda d: d.update(model_args={"output_stride": 7}), "timm cannot build 'test_resnet' with output_stride=7, num_classes=3, in_chans=3: AssertionError"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(TIMM_CASES))
def test_a_timm_folder_that_is_not_what_timm_writes_is_one_line(
    timm_folder: Path, tmp_path: Path, no_network: list[Any], case: str
) -> None:
    edit, says = TIMM_CASES[case]
    folder = _copy(timm_folder, tmp_path, edit)
    with pytest.raises(ModelLoadError) as raised:
        load_shipped(f"timm:{folder}")
    message = str(raised.value)
    assert says in message and str(folder / "config.json") in message and "\n" not in message


def test_a_timm_architecture_with_weights_never_names_the_hub(timm_folder: Path, no_network: list[Any]) -> None:
    with pytest.raises(ModelLoadError, match="architecture 'hf-hub:evil/x' is not a timm architecture name"):
        load_shipped(f"timm:hf-hub:evil/x@{timm_folder / 'model.safetensors'}")


HF_CASES: dict[str, tuple[str, Callable[[dict[str, Any]], Any], str]] = {
    # 6. a folder that makes transformers ask the Hub for a kernel
    "a Hub kernel": ("config.json", lambda d: d.update(attn_implementation="evil-org/flash-kernel"), "attn_implementation='evil-org/flash-kernel' is not one of transformers' own attention implementations"),
    "a private Hub kernel": ("config.json", lambda d: d.update(_attn_implementation="evil/k"), "_attn_implementation='evil/k' is not one of"),
    "its own code": ("config.json", lambda d: d.update(auto_map={"AutoModel": "evil.Model"}), "names its own model code (auto_map)"),
    "num_channels a string": ("config.json", lambda d: d.update(num_channels="abc"), "num_channels must be 1 to 4, not 'abc'"),
    # 12. wrong types in preprocessor_config.json
    "resample evil": ("preprocessor_config.json", lambda d: d.update(resample="evil"), "resample must be a PIL resampling code"),
    "rescale_factor a string": ("preprocessor_config.json", lambda d: d.update(rescale_factor="abc"), "rescale_factor must be a number (1/255 for 8-bit pixels), not 'abc'"),
    "image_mean a string": ("preprocessor_config.json", lambda d: d.update(image_mean="abc"), "image_mean must be a number or a list of numbers, one per channel, not 'abc'"),
    "a huge size": ("preprocessor_config.json", lambda d: d.update(size={"height": 100000, "width": 100000}), "size must be sizes in pixels (height/width or shortest_edge) of at most 4096"),
    # from the trial: building the model would take memory without bound
    "a million layers": ("config.json", lambda d: d.update(num_hidden_layers=10**6), "num_hidden_layers=1000000 asks for more layers than model.safetensors holds tensors"),
    "a huge hidden size": ("config.json", lambda d: d.update(hidden_size=10**6), "hidden_size=1000000 is larger than any dimension of the tensors in model.safetensors"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(HF_CASES))
def test_a_hugging_face_folder_that_is_not_what_transformers_writes_is_one_line(
    hf_folder: Path, tmp_path: Path, no_network: list[Any], case: str
) -> None:
    name, edit, says = HF_CASES[case]
    folder = _copy(hf_folder, tmp_path, edit, name)
    with pytest.raises(ModelLoadError) as raised:
        load_shipped(f"hf:{folder}")
    message = str(raised.value)
    assert says in message and str(folder / name) in message and "\n" not in message


def test_folders_load_offline_and_leave_the_switches_as_found(
    timm_folder: Path, hf_folder: Path, no_network: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    import huggingface_hub.constants

    before = (os.environ.get("HF_HUB_OFFLINE"), huggingface_hub.constants.HF_HUB_OFFLINE)
    assert load_shipped(f"timm:{timm_folder}") is not None and load_shipped(f"hf:{hf_folder}") is not None
    assert (os.environ.get("HF_HUB_OFFLINE"), huggingface_hub.constants.HF_HUB_OFFLINE) == before


@pytest.mark.parametrize("name", ["config.json", "preprocessor_config.json"])
def test_deeply_nested_metadata_is_one_line(hf_folder: Path, tmp_path: Path, name: str) -> None:
    folder = tmp_path / "model"
    shutil.copytree(hf_folder, folder)
    (folder / name).write_text(NESTED)
    with pytest.raises(ModelLoadError, match="is JSON nested too deeply to read"):
        load_shipped(f"hf:{folder}")


def _safetensors(path: Path, header: Any) -> Path:
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * 16)
    return path


@pytest.mark.parametrize(
    "header",
    [
        ["not", "an", "object"],
        {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, float("inf")]}},
        {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 1e400]}},
        {"w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}},
        {"w": {"dtype": "F32", "shape": [2], "data_offsets": "0,8"}},
        {"w": "F32"},
    ],
)
def test_a_safetensors_header_that_is_not_one_is_one_line(tmp_path: Path, header: Any) -> None:
    pytest.importorskip("safetensors")
    from pytest_advrobust.core.models.formats.files import sniff_file

    path = _safetensors(tmp_path / "w.safetensors", header)
    with pytest.raises(ModelLoadError, match="is not a safetensors file \\(its header is not valid\\)"):
        sniff_file(path)


def _identity_graph(path: Path, side: int, ir_version: int | None = None) -> Path:
    """An ONNX graph (opset 17) whose output is its N×3×side×side input, saved to ``path``."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    shape = ["N", 3, side, side]
    graph = helper.make_graph(
        [helper.make_node("Identity", ["input"], ["logits"])],
        "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, shape)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    if ir_version is not None:
        model.ir_version = ir_version
    onnx.save(model, str(path))
    return path


def test_an_onnx_graph_onnxruntime_refuses_is_one_line(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    path = _identity_graph(tmp_path / "model.onnx", 32, ir_version=99)  # newer than any onnxruntime: refused
    from pytest_advrobust.core.models.formats.onnx_models import check_onnx_conversion

    with pytest.raises(ModelLoadError) as raised:
        check_onnx_conversion(torch.nn.Identity(), path, torch.rand(2, 3, 32, 32))
    assert str(raised.value).startswith(f"onnxruntime cannot run {path}: ") and "\n" not in str(raised.value)


def test_an_onnx_input_of_40000_pixels_a_side_is_refused(tmp_path: Path) -> None:
    pytest.importorskip("onnx2torch")
    path = _identity_graph(tmp_path / "big.onnx", 40000)
    with pytest.raises(ModelLoadError, match="is 40000x40000, over 4096 pixels a side"):
        load_shipped(str(path))


def test_an_onnx_file_copied_without_its_weights_file_names_the_file_to_copy(onnx_file: Path, tmp_path: Path) -> None:
    """torch.onnx.export writes model.onnx and model.onnx.data (the weights); the next step a user takes is
    to copy the .onnx alone. The error names the missing file and the fix, and with it beside the graph the
    model loads and gives the same logits."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnx2torch")
    exported = tmp_path / "export"
    exported.mkdir()
    graph = onnx.load(str(onnx_file))
    onnx.save_model(graph, str(exported / "net.onnx"), save_as_external_data=True, location="net.onnx.data",
                    size_threshold=0)  # fmt: skip
    copied = tmp_path / "copied"
    copied.mkdir()
    shutil.copy(exported / "net.onnx", copied / "net.onnx")
    with pytest.raises(ModelLoadError) as raised:
        load_shipped(str(copied / "net.onnx"))
    assert str(raised.value) == (
        f"{copied / 'net.onnx'} keeps its weights in net.onnx.data beside it (torch.onnx.export writes both files), "
        f"and {copied / 'net.onnx.data'} is not there: copy net.onnx.data next to net.onnx"
    )
    shutil.copy(exported / "net.onnx.data", copied / "net.onnx.data")
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(load_shipped(str(copied / "net.onnx")).module(x), load_shipped(str(onnx_file)).module(x))


@pytest.mark.parametrize("shape", ["ab", [2, "x"], None, [-1]])
def test_a_safetensors_shape_that_is_not_sizes_is_one_line_before_a_config_is_sized(tmp_path: Path, shape: Any) -> None:
    from pytest_advrobust.core.models.formats.files import check_config_size

    path = _safetensors(tmp_path / "model.safetensors", {"w": {"dtype": "F32", "shape": shape, "data_offsets": [0, 8]}})
    with pytest.raises(ModelLoadError, match="is not a safetensors file \\(a tensor's shape is not a list of sizes\\)"):
        check_config_size({"num_hidden_layers": 1}, [path], "config.json")
