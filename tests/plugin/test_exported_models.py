"""Models as today's PyTorch exports them, gated from their files with no conftest: ``torch.onnx.export``'s
defaults (the dynamo exporter, opset 18+; and the legacy exporter at its own default opset) and
``torch.export.save`` programs (``.pt2``), each for a plain CNN with batch norm and pooling and for a timm
model. Each gives the same labels, flips and adversarial classes as the same weights from a factory; a
program with a fixed batch size, a ``.pt2`` that is not a program and a graph no route converts are one
line naming the file and the fix (issue 34)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import shipped_models as shipped
import torch
from test_shipped_models import (
    CLASS_NAMES,
    ORACLE_TIMM,
    TIMM_MEAN,
    TIMM_NORMALIZATION,
    TIMM_STD,
    _file_pixels,
    _hand_project,
    _settings,
    _shipped_project,
    assert_same_verdict,
    photos,  # noqa: F401  (the session's photos)
    timm_folder,  # noqa: F401  (the session's timm model)
)

ORACLE_CNN = """\
    model = shipped.plain_cnn()
    model.load_state_dict(torch.load({path!r}))
    return model.eval()"""

FORMATS = {
    "onnx-dynamo-default": lambda folder, model, name: shipped.export_onnx_default(folder, model, f"{name}.onnx"),
    "onnx-legacy-default": lambda folder, model, name: shipped.export_onnx_default(
        folder, model, f"{name}-legacy.onnx", dynamo=False
    ),
    "pt2": lambda folder, model, name: shipped.export_program(folder, model, f"{name}.pt2"),
    "pt2-fixed-batch": lambda folder, model, name: shipped.export_program(folder, model, f"{name}-b4.pt2", batch=4),
}


@pytest.fixture(scope="session")
def exports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the exports are written, once per session; exporting and loading once first here imports
    what the exporters import (hundreds of torch modules), before any pytester run: a module first
    imported during an in-process run is dropped after it, and torch's would register twice."""
    warm = tmp_path_factory.mktemp("warm")
    tiny = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1), torch.nn.AvgPool2d(2), torch.nn.Flatten()).eval()
    torch.export.load(str(shipped.export_program(warm, tiny, "tiny.pt2")))
    if all(_installed(library) for library in ("onnx", "onnx2torch", "onnxruntime", "onnxscript")):
        shipped.export_onnx_default(warm, tiny, "tiny.onnx")
        shipped.export_onnx_default(warm, tiny, "tiny-legacy.onnx", dynamo=False)
    return tmp_path_factory.mktemp("exports")


def _installed(library: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(library) is not None


def _needs(kind: str) -> None:
    if kind.startswith("onnx"):
        for library in ("onnx", "onnx2torch", "onnxruntime", "onnxscript"):
            pytest.importorskip(library, reason="install the onnx extra: pip install 'pytest-advrobust[onnx]'")


@pytest.mark.parametrize("kind", list(FORMATS))
def test_a_plain_cnn_exported_today_gives_the_verdict_of_its_weights(
    pytester: pytest.Pytester,
    exports: Path,
    photos: Path,  # noqa: F811
    kind: str,
) -> None:
    _needs(kind)
    model = shipped.plain_cnn()
    state = shipped.build_state(exports, model, "cnn.pt")
    path = FORMATS[kind](exports, model, "cnn")
    hand = _hand_project(
        pytester, ORACLE_CNN.format(path=str(state)), _file_pixels(photos), photos, TIMM_MEAN, TIMM_STD
    )
    ours = _shipped_project(pytester, str(path), photos, *TIMM_NORMALIZATION, CLASS_NAMES)
    assert_same_verdict(ours, hand, photos)
    source = "exported program input shape" if kind.startswith("pt2") else "ONNX graph input shape"
    assert _settings(ours[1])["from_model"][:2] == [f"input_size=32x32 from {source}", f"image_mode=RGB from {source}"]
    if kind == "pt2-fixed-batch":
        ours[0].stdout.fnmatch_lines(
            [f"*{path} was exported for batches of exactly 4 image(s): it is fed batches padded*"]
        )


@pytest.mark.parametrize("kind", list(FORMATS))
def test_a_timm_model_exported_today_gives_the_verdict_of_its_folder(
    pytester: pytest.Pytester,
    exports: Path,
    timm_folder: Path,  # noqa: F811
    photos: Path,  # noqa: F811
    kind: str,
) -> None:
    _needs(kind)
    path = FORMATS[kind](exports, shipped.oracle_timm(timm_folder), "timm")
    oracle = ORACLE_TIMM.format(folder=str(timm_folder))
    hand = _hand_project(pytester, oracle, _file_pixels(photos), photos, TIMM_MEAN, TIMM_STD)
    ours = _shipped_project(pytester, str(path), photos, *TIMM_NORMALIZATION, CLASS_NAMES)
    assert_same_verdict(ours, hand, photos)


def test_a_pt2_that_is_not_a_program_names_the_file_and_the_fix(pytester: pytest.Pytester, photos: Path) -> None:  # noqa: F811
    scripted = pytester.path / "scripted.pt2"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(scripted))  # a TorchScript archive, misnamed
    result, _ = _shipped_project(pytester, str(scripted), photos)
    result.stdout.fnmatch_lines(
        [f"*{scripted} is not a program saved by torch.export.save (no archive_format in it): export with "
         "torch.export.export(model.eval(), (x,)) and save with torch.export.save(program, 'model.pt2')*"]
    )  # fmt: skip
    assert result.ret != 0


def test_a_state_dict_saved_as_pt2_is_told_how_a_state_dict_loads(tmp_path: Path) -> None:
    from pytest_advrobust.core.errors import ModelLoadError
    from pytest_advrobust.core.models.formats import load_shipped

    saved = tmp_path / "weights.pt2"
    torch.save(torch.nn.Linear(2, 2).state_dict(), saved)  # the next step after torch.save: naming it .pt2
    with pytest.raises(ModelLoadError) as raised:
        load_shipped(str(saved))
    assert "it is a torch.save file (a state dict or a pickled module): a state dict loads with its " in str(
        raised.value
    ) and "<architecture>@<file>" in str(raised.value)


def test_a_program_that_would_unpickle_is_refused_without_allow_pickle(exports: Path, tmp_path: Path) -> None:
    """torch.export.load unpickles what was saved pickled (tensor subclasses, custom objects): such an
    archive runs code on load, so it needs --adv-allow-pickle."""
    from pytest_advrobust.core.errors import UnsafeModelFileError
    from pytest_advrobust.core.models.formats import load_shipped

    plain = shipped.export_program(exports, shipped.plain_cnn(), "cnn.pt2")
    pickled = tmp_path / "pickled.pt2"
    with zipfile.ZipFile(plain) as source, zipfile.ZipFile(pickled, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename.endswith("_weights_config.json"):
                data = data.replace(b'"use_pickle": false', b'"use_pickle": true', 1)
            target.writestr(item, data)
    with pytest.raises(
        UnsafeModelFileError, match=r"cannot be loaded safely: it holds pickled objects .*--adv-allow-pickle"
    ):
        load_shipped(str(pickled))
    assert load_shipped(str(plain)).module(torch.rand(3, 3, 32, 32)).shape == (3, 3)


def test_a_program_exported_in_training_mode_is_refused(tmp_path: Path) -> None:
    from pytest_advrobust.core.errors import ModelLoadError
    from pytest_advrobust.core.models.formats import load_shipped

    model = shipped.plain_cnn().train()
    path = tmp_path / "train.pt2"
    torch.export.save(torch.export.export(model, (torch.rand(2, 3, 32, 32),)), str(path))
    with pytest.raises(
        ModelLoadError,
        match="was exported in training mode .*batch norm with the batch's statistics.*export model.eval",
    ):
        load_shipped(str(path))


def test_a_graph_no_route_converts_names_the_file_and_the_fix(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnx2torch")
    from onnx import TensorProto, helper

    from pytest_advrobust.core.errors import ModelLoadError
    from pytest_advrobust.core.models.formats import load_shipped

    graph = helper.make_graph(  # an operator onnx2torch has no converter for, at any opset
        [helper.make_node("DFT", ["input"], ["logits"])],
        "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 32, 2])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3, 32, 2])],
    )
    path = tmp_path / "dft.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)]), str(path))
    with pytest.raises(ModelLoadError) as raised:
        load_shipped(str(path))
    message = str(raised.value)
    assert message.startswith(f"onnx2torch cannot convert {path} (NotImplementedError: ") and "\n" not in message
    assert (
        "nor its graph at opset 17" in message and "ship the PyTorch model, or a torch.export program (.pt2)" in message
    )
