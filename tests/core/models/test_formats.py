"""Models as their libraries save them: each loader loads what its library wrote and gives the original
module's logits; metadata is read; bad files and missing libraries get one-line errors with the fix."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import shipped_models as shipped
import torch

from pytest_advrobust.core.errors import ModelLoadError
from pytest_advrobust.core.models.formats import (
    check_onnx_conversion,
    check_state_dict,
    load_shipped,
    load_state_dict_file,
    shipped_kind,
    sniff_file,
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    with shipped.one_thread():
        yield


@pytest.fixture(scope="module")
def photos() -> torch.Tensor:
    return shipped.color_photos()[0]


def _timm_input(pixels: torch.Tensor) -> torch.Tensor:
    return shipped.normalized(pixels, shipped.TIMM_CFG["mean"], shipped.TIMM_CFG["std"])


def _logits(module: torch.nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        out = module(inputs)
    return getattr(out, "logits", out)


def _copy(folder: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(folder, tmp_path / folder.name))


# timm ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["", "timm:"])
def test_timm_folder_gives_the_original_logits_and_its_metadata(
    timm_folder: Path, photos: torch.Tensor, prefix: str
) -> None:
    loaded = load_shipped(f"{prefix}{timm_folder}")
    assert (loaded.kind, loaded.path, loaded.notes) == ("timm", timm_folder, ())
    assert not loaded.module.training
    x = _timm_input(photos)
    torch.testing.assert_close(
        _logits(loaded.module, x), _logits(shipped.oracle_timm(timm_folder), x), rtol=0, atol=1e-6
    )
    p = loaded.preprocessing
    assert (p.mean, p.std, p.input_size, p.channels) == (shipped.TIMM_CFG["mean"], shipped.TIMM_CFG["std"], (32, 32), 3)
    assert (p.resize, p.resize_size, p.interpolation) == ("shorter-side", (36, 36), "bicubic")  # ⌊32 / 0.875⌋
    assert p.class_names == shipped.CLASS_NAMES
    assert p.origins["mean"] == "config.json pretrained_cfg"
    assert p.origins["class_names"] == "config.json label_names"


def test_timm_folder_with_pytorch_model_bin(tmp_path: Path, photos: torch.Tensor) -> None:
    pytest.importorskip("timm")
    folder = shipped.build_timm_folder(tmp_path / "bin", safetensors=False)
    assert not (folder / "model.safetensors").exists()
    x = _timm_input(photos)
    torch.testing.assert_close(
        _logits(load_shipped(str(folder)).module, x), _logits(shipped.oracle_timm(folder), x), rtol=0, atol=1e-6
    )


def test_timm_legacy_flat_config_with_labels(timm_folder: Path, tmp_path: Path) -> None:
    folder = _copy(timm_folder, tmp_path)
    config = json.loads((folder / "config.json").read_text())
    flat = {
        "architecture": config["architecture"],
        "num_classes": 3,
        **config["pretrained_cfg"],
        "labels": ["r", "g", "b"],
    }
    (folder / "config.json").write_text(json.dumps(flat))
    p = load_shipped(str(folder)).preprocessing
    assert p.class_names == ("r", "g", "b") and p.origins["class_names"] == "config.json labels (legacy)"
    assert (p.mean, p.interpolation, p.resize_size) == (shipped.TIMM_CFG["mean"], "bicubic", (36, 36))


def test_timm_name_at_weights(timm_folder: Path, tmp_path: Path, photos: torch.Tensor) -> None:
    """``timm:<name>@<weights>``: num_classes follows the file; preprocessing is timm's default for the name."""
    safetensors_file = shipped.build_timm_weights(tmp_path, timm_folder)
    pth_file = tmp_path / "weights.pth"
    torch.save(shipped.oracle_timm(timm_folder).state_dict(), pth_file)
    x = _timm_input(photos)
    oracle = _logits(shipped.oracle_timm(timm_folder), x)
    for weights in (safetensors_file, pth_file):
        loaded = load_shipped(f"timm:{shipped.TIMM_ARCH}@{weights}")
        assert (loaded.kind, loaded.path) == ("timm", weights)
        torch.testing.assert_close(_logits(loaded.module, x), oracle, rtol=0, atol=1e-6)
    p = loaded.preprocessing
    assert (p.input_size, p.interpolation, p.resize_size, p.class_names) == ((160, 160), "bilinear", (168, 168), None)
    assert p.origins["mean"] == "timm's pretrained_cfg for test_resnet"


def test_timm_grayscale_models(tmp_path: Path) -> None:
    """in_chans and num_classes follow the files; a 3-value mean for 1 channel is averaged, as timm does."""
    timm = pytest.importorskip("timm")
    from timm.models import save_for_hf

    cfg = {"mean": (0.5,), "std": (0.25,), "input_size": (1, 32, 32)}
    model = timm.create_model(shipped.TIMM_ARCH, num_classes=2, in_chans=1, pretrained_cfg_overlay=cfg)
    save_for_hf(model, str(tmp_path / "gray"), safe_serialization=True)
    folder = load_shipped(str(tmp_path / "gray")).preprocessing
    assert (folder.channels, folder.image_mode, folder.mean, folder.std) == (1, "L", (0.5,), (0.25,))
    torch.save(model.state_dict(), tmp_path / "gray.pth")
    loaded = load_shipped(f"timm:{shipped.TIMM_ARCH}@{tmp_path / 'gray.pth'}")
    assert loaded.module(torch.zeros(1, 1, 32, 32)).shape == (1, 2)
    assert (loaded.preprocessing.channels, loaded.preprocessing.mean) == (1, (0.5,))  # test_resnet's mean: 0.5 ×3
    assert "using their average, as timm does" in loaded.notes[0]


def test_timm_unknown_architecture_suggests_close_names(timm_folder: Path, tmp_path: Path) -> None:
    weights = shipped.build_timm_weights(tmp_path, timm_folder)
    with pytest.raises(ModelLoadError, match="unknown timm architecture 'test_resnett'; did you mean test_resnet"):
        load_shipped(f"timm:test_resnett@{weights}")


def test_timm_spec_needs_a_folder_or_weights() -> None:
    with pytest.raises(ModelLoadError, match="timm:<architecture>@<weights file>"):
        load_shipped("timm:resnet18")


# Hugging Face ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["", "hf:"])
def test_hf_folder_gives_the_original_logits_and_its_metadata(
    hf_folder: Path, photos: torch.Tensor, prefix: str
) -> None:
    loaded = load_shipped(f"{prefix}{hf_folder}")
    assert (loaded.kind, loaded.path, loaded.notes) == ("hf", hf_folder, ())
    assert not any(m.training for m in loaded.module.modules())
    x = shipped.normalized(photos, shipped.HF_MEAN, shipped.HF_STD)
    logits = _logits(loaded.module, x)
    assert isinstance(logits, torch.Tensor) and logits.shape == (len(photos), 3)
    torch.testing.assert_close(logits, _logits(shipped.oracle_hf(hf_folder), x), rtol=0, atol=1e-6)
    p = loaded.preprocessing
    assert (p.mean, p.std, p.input_size, p.resize, p.resize_size) == (
        shipped.HF_MEAN,
        shipped.HF_STD,
        (32, 32),
        "exact",
        (32, 32),
    )
    assert (p.interpolation, p.crop_convention, p.class_names) == ("bilinear", "transformers", shipped.CLASS_NAMES)
    assert p.origins["mean"] == "preprocessor_config.json" and p.origins["class_names"] == "config.json id2label"


def test_hf_folder_without_processor_and_with_placeholder_labels(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    folder = shipped.build_hf_folder(tmp_path / "bare", processor=False, placeholder_labels=True)
    loaded = load_shipped(str(folder))
    p = loaded.preprocessing
    assert (p.mean, p.std, p.class_names, p.input_size) == (None, None, None, (32, 32))
    assert p.origins["input_size"] == "config.json image_size"
    assert any("placeholders (LABEL_0" in note for note in loaded.notes)
    assert any("no preprocessor_config.json: mean, std and the resize are unknown" in note for note in loaded.notes)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"rescale_factor": 1 / 127.5}, r"rescale_factor=0.00784.* maps 8-bit pixels to another range than \[0,1\]"),
        ({"do_rescale": False}, "do_rescale=False"),
        ({"size": {"shortest_edge": 32}}, "without do_center_crop keeps each image's aspect ratio"),
        ({"do_flip_channel_order": True}, "do_flip_channel_order=true is a preprocessing step"),
        ({"crop_pct": 0.9}, "crop_pct in a ViTImageProcessor has its own resize rule"),
    ],
)
def test_hf_processor_steps_not_reproduced_are_refused(
    hf_folder: Path, tmp_path: Path, change: dict[str, object], message: str
) -> None:
    folder = _copy(hf_folder, tmp_path)
    config = json.loads((folder / "preprocessor_config.json").read_text())
    (folder / "preprocessor_config.json").write_text(json.dumps({**config, **change}))
    with pytest.raises(ModelLoadError, match=message):
        load_shipped(str(folder))


def test_hf_folder_with_remote_code_is_refused(hf_folder: Path, tmp_path: Path) -> None:
    folder = _copy(hf_folder, tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModelForImageClassification": "modeling_mine.MyModel"}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="never runs code from a model folder"):
        load_shipped(str(folder))


def test_hf_weights_that_do_not_match_the_config(hf_folder: Path, tmp_path: Path) -> None:
    """transformers would re-initialize the mismatched head at random and carry on; the loader refuses."""
    folder = _copy(hf_folder, tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config |= {"num_labels": 4, "id2label": {str(i): f"c{i}" for i in range(4)}}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(
        ModelLoadError,
        match=r"do not match its config.json: 2 shape mismatches, file vs config \(classifier.bias \(3,\) vs \(4,\)",
    ):
        load_shipped(str(folder))


def test_hf_prefix_on_a_timm_folder(timm_folder: Path) -> None:
    pytest.importorskip("transformers")
    with pytest.raises(ModelLoadError, match=f"holds a timm model, not a Hugging Face one: use timm:{timm_folder}"):
        load_shipped(f"hf:{timm_folder}")


# ONNX ------------------------------------------------------------------------------------------------


def test_onnx_conversion_gives_the_original_logits_and_gradients(
    onnx_file: Path, timm_folder: Path, photos: torch.Tensor
) -> None:
    loaded = load_shipped(str(onnx_file))
    assert (loaded.kind, loaded.preprocessing.mean, loaded.preprocessing.input_size) == ("onnx", None, (32, 32))
    x = _timm_input(photos).requires_grad_()
    logits = loaded.module(x)
    torch.testing.assert_close(
        logits.detach(), _logits(shipped.oracle_timm(timm_folder), x.detach()), rtol=0, atol=1e-4
    )
    logits.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_onnx_check_passes_for_a_good_conversion_and_refuses_a_doctored_one(
    onnx_file: Path, photos: torch.Tensor
) -> None:
    pytest.importorskip("onnxruntime")
    module = load_shipped(str(onnx_file)).module
    x = _timm_input(photos)
    check = check_onnx_conversion(module, onnx_file, x)
    assert check.max_abs_diff is not None and check.tolerance is not None
    assert check.max_abs_diff <= check.tolerance and "matches onnxruntime" in check.note
    doctored = copy.deepcopy(module)
    with torch.no_grad():
        next(doctored.parameters()).add_(0.05)
    with pytest.raises(ModelLoadError, match=r"disagrees with onnxruntime: max \|Δ logit\| = [\d.]+ > "):
        check_onnx_conversion(doctored, onnx_file, x)


def test_onnx_check_without_onnxruntime_says_so(
    onnx_file: Path, photos: torch.Tensor, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = load_shipped(str(onnx_file)).module
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    check = check_onnx_conversion(module, onnx_file, _timm_input(photos))
    assert check.max_abs_diff is None and "onnxruntime is not installed" in check.note


# Bad files -------------------------------------------------------------------------------------------


def _write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            b"version https://git-lfs.github.com/spec/v1\noid sha256:4d7a\nsize 46827520\n",
            "is a Git LFS pointer, not the weights: run `git lfs pull`",
        ),
        (
            b"\n  <!DOCTYPE html><html><body>Not found</body></html>",
            r"is an HTML page \(a failed download\?\), not a model file: download it again",
        ),
        (b"\xef\xbb\xbf<html><head></head></html>", "is an HTML page"),
        (b"", r"is empty \(0 bytes\)"),
    ],
    ids=["lfs", "html", "html-after-bom", "empty"],
)
@pytest.mark.parametrize("name", ["model.safetensors", "weights.pth", "model.onnx"])
def test_files_that_are_not_models(tmp_path: Path, content: bytes, message: str, name: str) -> None:
    path = _write(tmp_path / name, content)
    with pytest.raises(ModelLoadError, match=message) as raised:
        sniff_file(path)
    assert str(path) in str(raised.value) and "\n" not in str(raised.value)


def test_truncated_safetensors_and_zip(timm_folder: Path, tmp_path: Path) -> None:
    whole = (timm_folder / "model.safetensors").read_bytes()
    header_cut = _write(tmp_path / "a.safetensors", whole[:100])
    with pytest.raises(ModelLoadError, match=r"a.safetensors is a truncated safetensors file \(its header alone"):
        load_state_dict_file(header_cut)
    data_cut = _write(tmp_path / "b.safetensors", whole[: len(whole) // 2])
    with pytest.raises(ModelLoadError, match=r"b.safetensors is a truncated safetensors file \(its tensors need"):
        load_state_dict_file(data_cut)
    torch.save({"w": torch.zeros(1000)}, tmp_path / "full.pth")
    zip_cut = _write(tmp_path / "c.pth", (tmp_path / "full.pth").read_bytes()[:2000])
    with pytest.raises(ModelLoadError, match=r"c.pth is a truncated or corrupt zip \(torch.save\) file"):
        load_state_dict_file(zip_cut)


def test_timm_folder_whose_weights_are_an_lfs_pointer(timm_folder: Path, tmp_path: Path) -> None:
    folder = _copy(timm_folder, tmp_path)
    _write(folder / "model.safetensors", b"version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 1\n")
    with pytest.raises(ModelLoadError, match=r"model.safetensors is a Git LFS pointer"):
        load_shipped(str(folder))


def test_safetensors_that_do_not_match_the_architecture(timm_folder: Path, tmp_path: Path) -> None:
    timm = pytest.importorskip("timm")
    from safetensors.torch import save_file

    state = shipped.oracle_timm(timm_folder).state_dict()
    state["extra.weight"] = torch.zeros(2)
    del state["conv1.0.weight"]
    state["fc.weight"] = torch.zeros(4, state["fc.weight"].shape[1])
    save_file(state, str(tmp_path / "odd.safetensors"))
    with pytest.raises(ModelLoadError) as raised:
        load_shipped(f"timm:{shipped.TIMM_ARCH}@{tmp_path / 'odd.safetensors'}")
    message = str(raised.value)
    assert "odd.safetensors does not match architecture test_resnet" in message
    assert "1 missing keys (conv1.0.weight)" in message and "1 unexpected keys (extra.weight)" in message
    model = timm.create_model(shipped.TIMM_ARCH, num_classes=3)
    state = shipped.oracle_timm(timm_folder).state_dict() | {"fc.weight": torch.zeros(4, 96)}
    with pytest.raises(ModelLoadError, match=r"1 shape mismatches, file vs model \(fc.weight \(4, 96\) vs \(3, 96\)\)"):
        check_state_dict(model, state, tmp_path / "x.safetensors", shipped.TIMM_ARCH)


def test_state_dict_files_never_unpickle(tmp_path: Path) -> None:
    torch.save({"model": {"module.w": torch.ones(2)}}, tmp_path / "ckpt.pth")
    assert list(load_state_dict_file(tmp_path / "ckpt.pth")) == ["w"]
    torch.save({"w": torch.ones(2), "optimizer": object()}, tmp_path / "pickled.pth")
    with pytest.raises(ModelLoadError, match="needs full unpickling") as refused:
        load_state_dict_file(tmp_path / "pickled.pth")
    assert "\x1b" not in str(refused.value)  # torch's message carries terminal colour codes; ours does not


# Specs and missing libraries -------------------------------------------------------------------------


def test_shipped_kind(timm_folder: Path, hf_folder: Path, tmp_path: Path) -> None:
    assert shipped_kind(str(timm_folder)) == "timm"
    assert shipped_kind(str(hf_folder)) == "hf"
    assert shipped_kind("exports/model.onnx") == "onnx"
    assert shipped_kind("timm:resnet18@w.safetensors") == "timm"
    for spec in ("resnet18@best.safetensors", "my_models:make", "model.pt"):
        assert shipped_kind(spec) is None
    with pytest.raises(ModelLoadError, match="has no config.json"):
        shipped_kind(str(tmp_path))


@pytest.mark.parametrize(
    ("library", "spec", "extra"),
    [
        ("timm", "timm:resnet18@w.safetensors", "timm"),
        ("transformers", "hf:{hf}", "hf"),
        ("onnx2torch", "{onnx}", "onnx"),
    ],
)
def test_a_missing_library_names_its_extra(
    monkeypatch: pytest.MonkeyPatch, hf_folder: Path, onnx_file: Path, library: str, spec: str, extra: str
) -> None:
    monkeypatch.setitem(sys.modules, library, None)
    with pytest.raises(
        ModelLoadError, match=rf'needs {library}, which is not installed .*pip install "pytest-advrobust\[{extra}\]"'
    ):
        load_shipped(spec.format(hf=hf_folder, onnx=onnx_file))


def test_missing_safetensors_names_it(monkeypatch: pytest.MonkeyPatch, timm_folder: Path) -> None:
    monkeypatch.setitem(sys.modules, "safetensors.torch", None)
    with pytest.raises(ModelLoadError, match="needs safetensors, which is not installed .*: pip install safetensors"):
        load_state_dict_file(timm_folder / "model.safetensors")


def test_the_libraries_are_imported_only_when_a_spec_needs_them() -> None:
    code = (
        "import sys, pytest_advrobust.core.models.formats, pytest_advrobust.core.models.preprocessing\n"
        "eager = [m for m in ('timm', 'transformers', 'onnx', 'onnx2torch', 'onnxruntime', 'safetensors') "
        "if m in sys.modules]\n"
        "assert not eager, eager\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[3])


def test_attack_on_a_shipped_model_reads_listed_files_as_its_eval_transform_does(
    timm_folder: Path, tmp_path: Path
) -> None:
    """``attack(load_shipped(...), find_images(folder))``: files listed without a size are resized and
    cropped as timm's eval transform does (the report says so); tensors are attacked as given (it does not)."""
    from PIL import Image

    from pytest_advrobust import attack, find_images

    folder = tmp_path / "photos" / "red"
    folder.mkdir(parents=True)
    Image.new("RGB", (48, 40), (230, 20, 20)).save(folder / "big.png")  # not the model's 32x32
    model = load_shipped(f"timm:{timm_folder}")
    with pytest.warns(UserWarning, match="below one 8-bit level"):  # the metadata, not the call, sets the size
        result = attack(model, find_images(tmp_path / "photos"), epsilon=0.001, method="fgsm")
    assert result.clean.shape[-2:] == (32, 32)
    assert "image files: resized (bicubic) so the shorter side is 36, then centre-cropped to 32x32" in (
        result.settings.from_model
    )
    at_its_size = attack(model, find_images(tmp_path / "photos", input_size=32), epsilon=0.01, method="fgsm")
    assert torch.equal(at_its_size.clean, result.clean)  # listed at the model's own size: still its resize
    tensors = attack(model, result.clean, epsilon=0.01, method="fgsm")
    assert not any(line.startswith("image files:") for line in tensors.settings.from_model)
    assert "mean=(0.45, 0.5, 0.55) from config.json pretrained_cfg" in tensors.settings.from_model
