"""Models as their libraries ship them (timm, Hugging Face, ONNX, a torchvision state dict), used the way a
user does: ``--adv-model=<spec> --adv-images=<photos>`` and nothing else. Each such project gets the same
verdict, image by image, as a project configured by hand with the library's own eval transform; the
header, ``adv_config`` and the JSON report say where each value came from; bad files fail in one line."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import shipped_models as shipped
import torch

ATTACK = ("--adv-attack=fgsm", "--adv-epsilon=0.007")
"""One FGSM step: cheap, and at this budget the photos give both flips and holds."""
MARKED = "from pytest_advrobust import adv_robust\n\n\n@adv_robust\ndef test_gate():\n    pass\n"
TIMM_MEAN, TIMM_STD = (",".join(map(str, shipped.TIMM_CFG[k])) for k in ("mean", "std"))
TIMM_NORMALIZATION = (f"--adv-mean={TIMM_MEAN}", f"--adv-std={TIMM_STD}")
"""What a user sets for a model without metadata that was trained like the timm one."""
CLASS_NAMES = f"--adv-class-names={','.join(shipped.CLASS_NAMES)}"


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    with shipped.one_thread():
        yield


# Models, once per session -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def timm_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("timm", reason="install the timm extra: pip install 'pytest-advrobust[timm]'")
    pytest.importorskip("safetensors", reason="timm folders are saved with safetensors")
    return shipped.build_timm_folder(tmp_path_factory.mktemp("timm"))


@pytest.fixture(scope="session")
def timm_weights(tmp_path_factory: pytest.TempPathFactory, timm_folder: Path) -> Path:
    return shipped.build_timm_weights(tmp_path_factory.mktemp("timm_weights"), timm_folder)


@pytest.fixture(scope="session")
def hf_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("transformers", reason="install the hf extra: pip install 'pytest-advrobust[hf]'")
    return shipped.build_hf_folder(tmp_path_factory.mktemp("hf"))


@pytest.fixture(scope="session")
def onnx_file(tmp_path_factory: pytest.TempPathFactory, timm_folder: Path) -> Path:
    for library in ("onnx", "onnx2torch", "onnxruntime"):
        pytest.importorskip(library, reason="install the onnx extra: pip install 'pytest-advrobust[onnx]'")
    return shipped.build_onnx(tmp_path_factory.mktemp("onnx"), shipped.oracle_timm(timm_folder))


@pytest.fixture(scope="session")
def resnet18_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A torchvision resnet18 with 3 classes and random weights, saved with safetensors."""
    pytest.importorskip("safetensors", reason="safetensors is needed to save the weights")
    import torchvision
    from safetensors.torch import save_file

    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = torchvision.models.resnet18(weights=None, num_classes=3)
    path = tmp_path_factory.mktemp("resnet18") / "resnet18.safetensors"
    save_file(model.state_dict(), str(path))
    return path


@pytest.fixture(scope="session")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The vivid and muted colour photos in one ImageFolder: ``<label>/<vivid|muted>-<file>``."""
    root = tmp_path_factory.mktemp("photos")
    for file in sorted(shipped.PHOTOS.glob("*/*/*.png")):
        target = root / file.parent.name / f"{file.parent.parent.name}-{file.name}"
        target.parent.mkdir(exist_ok=True)
        shutil.copyfile(file, target)
    return root


def _files(photos: Path) -> list[Path]:
    """The photos in the order the plugin lists an ImageFolder (sorted classes, then sorted files)."""
    return [file for folder in sorted(photos.iterdir()) for file in sorted(folder.iterdir())]


def _names(photos: Path) -> list[str]:
    return [f"{file.parent.name}/{file.name}" for file in _files(photos)]


# Hand-configured projects: the library's own eval transform ---------------------------------------


def _eight_bit(pixels: torch.Tensor) -> torch.Tensor:
    """The plugin reads 8-bit files; the library's transform of them is on that grid, up to float error."""
    return (pixels * 255).round() / 255


def _timm_pixels(model: torch.nn.Module, photos: Path) -> torch.Tensor:
    """The photos through ``timm.data.create_transform`` for the model's data config, un-normalized."""
    import timm.data
    from PIL import Image

    config = timm.data.resolve_data_config({}, model=model)
    transform = timm.data.create_transform(**config)
    batch = torch.stack([transform(Image.open(file).convert("RGB")) for file in _files(photos)])
    mean, std = (torch.tensor(config[k]).view(1, -1, 1, 1) for k in ("mean", "std"))
    return _eight_bit(batch * std + mean)


def _hf_pixels(folder: Path, photos: Path) -> torch.Tensor:
    """The photos through the folder's ``AutoImageProcessor``, un-normalized."""
    from PIL import Image
    from transformers import AutoImageProcessor

    processor = AutoImageProcessor.from_pretrained(str(folder), local_files_only=True)
    images = [Image.open(file).convert("RGB") for file in _files(photos)]
    batch = processor(images=images, return_tensors="pt")["pixel_values"]
    mean, std = (torch.tensor(v).view(1, -1, 1, 1) for v in (processor.image_mean, processor.image_std))
    return _eight_bit(batch * std + mean)


def _file_pixels(photos: Path, size: int | None = None) -> torch.Tensor:
    """The photos' own pixels (32×32 files: nothing to resize), or resized to size×size (bilinear)."""
    from PIL import Image

    images = [Image.open(file).convert("RGB") for file in _files(photos)]
    if size is not None:
        images = [image.resize((size, size), Image.Resampling.BILINEAR) for image in images]
    arrays = [np.asarray(image, dtype=np.uint8) for image in images]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255


HAND_CONFTEST = """
import pytest, torch
from pathlib import Path
import shipped_models as shipped

HAND = torch.load(Path(__file__).parent / "hand.pt")


class Logits(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x).logits


def oracle():
{oracle}


@pytest.fixture(scope="session")
def adv_model():
    return oracle()


@pytest.fixture
def adv_images():
    return HAND["pixels"]


@pytest.fixture
def adv_labels():
    return HAND["labels"]
"""

ORACLE_TIMM = "    return shipped.oracle_timm(Path({folder!r}))"
ORACLE_HF = "    return Logits(shipped.oracle_hf(Path({folder!r})))"
ORACLE_TIMM_WEIGHTS = """\
    import timm
    from safetensors.torch import load_file
    model = timm.create_model("test_resnet", pretrained=False, num_classes=3)
    model.load_state_dict(load_file({path!r}))
    return model.eval()"""
ORACLE_RESNET18 = """\
    import torchvision
    from safetensors.torch import load_file
    model = torchvision.models.resnet18(weights=None, num_classes=3)
    model.load_state_dict(load_file({path!r}))
    return model.eval()"""


def _hand_project(
    pytester: pytest.Pytester, oracle: str, pixels: torch.Tensor, photos: Path, mean: str, std: str
) -> tuple[pytest.RunResult, dict[str, Any]]:
    """The project a user writes by hand: a conftest with the oracle model and the prepared pixels
    (labels by name), and mean, std and class names set in the ini file."""
    folder = pytester.mkdir("hand")
    labels = [file.parent.name for file in _files(photos)]
    torch.save({"pixels": pixels, "labels": labels}, folder / "hand.pt")
    (folder / "conftest.py").write_text(HAND_CONFTEST.format(oracle=oracle))
    (folder / "test_gate.py").write_text(MARKED)
    (folder / "pytest.ini").write_text(
        f"[pytest]\nadv_mean = {mean}\nadv_std = {std}\nadv_class_names = {','.join(shipped.CLASS_NAMES)}\n"
    )
    return _run(pytester, "hand", "--adv-report=hand.json", *ATTACK, report="hand.json")


def _run(pytester: pytest.Pytester, *args: str, report: str = "r.json") -> tuple[pytest.RunResult, dict[str, Any]]:
    result = pytester.runpytest(*args)
    path = pytester.path / report
    return result, json.loads(path.read_text()) if path.exists() else {}


def _shipped_project(
    pytester: pytest.Pytester, spec: str, photos: Path, *extra: str
) -> tuple[pytest.RunResult, dict[str, Any]]:
    """The project with nothing but the model spec and the photos (no conftest, no settings)."""
    folder = pytester.mkdir("shipped")
    (folder / "test_gate.py").write_text(MARKED)
    return _run(
        pytester, "shipped", f"--adv-model={spec}", f"--adv-images={photos}", "--adv-report=r.json", *ATTACK, *extra
    )


def _images(report: dict[str, Any]) -> list[dict[str, Any]]:
    (test,) = report["tests"]
    return test["images"]


def _verdicts(report: dict[str, Any]) -> list[tuple[str, str, bool, str]]:
    """Per image: the label, the clean label, whether it flipped, the adversarial label judged."""
    return [(i["label_name"], i["clean_label_name"], i["flipped"], i["shown_label_name"]) for i in _images(report)]


def _settings(report: dict[str, Any]) -> dict[str, Any]:
    (test,) = report["tests"]
    (settings,) = test["settings"]
    return settings


def assert_same_verdict(
    shipped_run: tuple[pytest.RunResult, dict[str, Any]],
    hand_run: tuple[pytest.RunResult, dict[str, Any]],
    photos: Path,
    prob_tolerance: float = 1e-3,
    mixed: bool = True,
) -> None:
    """Image by image: the same labels, flips and adversarial labels, the same probabilities (the same
    pixels reached the same model), and the same outcome. ``mixed``: some photos flip and some hold, so
    the comparison is not between two all-red (or all-green) runs."""
    (ours, our_report), (hand, hand_report) = shipped_run, hand_run
    assert [i["name"] for i in _images(our_report)] == _names(photos)
    assert _verdicts(our_report) == _verdicts(hand_report)
    for mine, theirs in zip(_images(our_report), _images(hand_report), strict=True):
        # the same pixels and the same model: the same probabilities, not only the same labels
        assert mine["clean_prob"] == pytest.approx(theirs["clean_prob"], abs=prob_tolerance), mine["name"]
        assert mine["shown_prob"] == pytest.approx(theirs["shown_prob"], abs=prob_tolerance), mine["name"]
    assert _outcome(ours) == _outcome(hand)
    if mixed:
        verdicts = {flipped for _, _, flipped, _ in _verdicts(our_report)}
        assert verdicts == {True, False}, "the budget should flip some photos and not others"


def _outcome(result: pytest.RunResult) -> dict[str, int]:
    return {k: v for k, v in result.parseoutcomes().items() if k in ("passed", "failed", "errors", "skipped")}


# 1. The same verdict as the hand-configured project ------------------------------------------------


@pytest.mark.parametrize("prefix", ["timm:", ""], ids=["timm-prefix", "bare-folder"])
def test_a_timm_folder_alone_gives_the_verdict_of_timms_own_transform(
    pytester: pytest.Pytester, timm_folder: Path, photos: Path, prefix: str
) -> None:
    pixels = _timm_pixels(shipped.oracle_timm(timm_folder), photos)
    hand = _hand_project(pytester, ORACLE_TIMM.format(folder=str(timm_folder)), pixels, photos, TIMM_MEAN, TIMM_STD)
    assert_same_verdict(_shipped_project(pytester, f"{prefix}{timm_folder}", photos), hand, photos)


def test_a_timm_architecture_with_weights_gives_the_verdict_of_timms_own_transform(
    pytester: pytest.Pytester, timm_weights: Path, photos: Path
) -> None:
    """``timm:<name>@<weights>``: no pretrained_cfg beside the file, so timm's own for the name applies
    (160×160, bilinear, crop_pct 0.95, mean and std 0.5); the photos are upscaled to it."""
    import timm
    from safetensors.torch import load_file

    oracle = timm.create_model(shipped.TIMM_ARCH, pretrained=False, num_classes=3)
    oracle.load_state_dict(load_file(str(timm_weights)))
    config = timm.data.resolve_data_config({}, model=oracle)
    mean, std = (",".join(map(str, config[k])) for k in ("mean", "std"))
    pixels = _timm_pixels(oracle.eval(), photos)
    hand = _hand_project(pytester, ORACLE_TIMM_WEIGHTS.format(path=str(timm_weights)), pixels, photos, mean, std)
    ours = _shipped_project(pytester, f"timm:{shipped.TIMM_ARCH}@{timm_weights}", photos, CLASS_NAMES)
    assert_same_verdict(ours, hand, photos)
    given = ("mean=(0.5, 0.5, 0.5)", "std=(0.5, 0.5, 0.5)", "input_size=160x160", "image_mode=RGB")
    assert _settings(ours[1])["from_model"] == [
        *(f"{value} from timm's pretrained_cfg for test_resnet" for value in given),
        "image files: resized (bilinear) so the shorter side is 168, then centre-cropped to 160x160",
    ]


@pytest.mark.parametrize("prefix", ["hf:", ""], ids=["hf-prefix", "bare-folder"])
def test_a_hugging_face_folder_alone_gives_the_verdict_of_its_image_processor(
    pytester: pytest.Pytester, hf_folder: Path, photos: Path, prefix: str
) -> None:
    mean, std = (",".join(map(str, v)) for v in (shipped.HF_MEAN, shipped.HF_STD))
    pixels = _hf_pixels(hf_folder, photos)
    hand = _hand_project(pytester, ORACLE_HF.format(folder=str(hf_folder)), pixels, photos, mean, std)
    assert_same_verdict(_shipped_project(pytester, f"{prefix}{hf_folder}", photos), hand, photos)


def test_an_onnx_file_gives_the_verdict_of_the_model_it_was_exported_from(
    pytester: pytest.Pytester, onnx_file: Path, timm_folder: Path, photos: Path
) -> None:
    """An ONNX graph carries its input size, not its normalization or class names: those are set."""
    oracle = ORACLE_TIMM.format(folder=str(timm_folder))
    hand = _hand_project(pytester, oracle, _file_pixels(photos), photos, TIMM_MEAN, TIMM_STD)
    ours = _shipped_project(pytester, str(onnx_file), photos, *TIMM_NORMALIZATION, CLASS_NAMES)
    assert_same_verdict(ours, hand, photos)
    assert _settings(ours[1])["from_model"] == [
        "input_size=32x32 from ONNX graph input shape",
        "image_mode=RGB from ONNX graph input shape",
        "image files: resized (bilinear) so the shorter side is 32, then centre-cropped to 32x32",
    ]


def test_a_torchvision_state_dict_gives_the_verdict_of_the_architecture(
    pytester: pytest.Pytester, resnet18_file: Path, photos: Path
) -> None:
    """``resnet18@<file>.safetensors`` has no metadata: mean, std, size and class names are the user's."""
    oracle = ORACLE_RESNET18.format(path=str(resnet18_file))
    hand = _hand_project(pytester, oracle, _file_pixels(photos), photos, TIMM_MEAN, TIMM_STD)
    settings = (*TIMM_NORMALIZATION, "--adv-input-size=32", CLASS_NAMES)
    ours = _shipped_project(pytester, f"resnet18@{resnet18_file}", photos, *settings)
    assert_same_verdict(ours, hand, photos, mixed=False)  # random weights: every photo flips or is misclassified
    assert _settings(ours[1])["from_model"] == []


# 2. Where each value came from ------------------------------------------------------------------------

TIMM_FROM_MODEL = [
    "mean=(0.45, 0.5, 0.55) from config.json pretrained_cfg",
    "std=(0.2, 0.25, 0.3) from config.json pretrained_cfg",
    "input_size=32x32 from config.json pretrained_cfg",
    "image_mode=RGB from config.json pretrained_cfg",
    "class_names=red,green,blue from config.json label_names",
    "image files: resized (bicubic) so the shorter side is 36, then centre-cropped to 32x32",
]
HF_FROM_MODEL = [
    "mean=(0.4, 0.5, 0.6) from preprocessor_config.json",
    "std=(0.3, 0.2, 0.25) from preprocessor_config.json",
    "input_size=32x32 from preprocessor_config.json",
    "image_mode=RGB from config.json num_channels",
    "class_names=red,green,blue from config.json id2label",
    "image files: resized (bilinear) to 32x32",
]
SOURCES_TEST = """

def test_sources(adv_config):
    for name in ("mean", "std", "input_size", "class_names", "epsilon"):
        source = adv_config.source(name)
        print(f"source of {{name}}: {{source.kind}} / {{source.label}}")
    assert adv_config.source("mean").kind == "model"
    assert adv_config.source("mean").label == {label!r}
    assert adv_config.mean == {mean!r}
"""


@pytest.mark.parametrize(
    ("kind", "expected", "mean"),
    [("timm", TIMM_FROM_MODEL, shipped.TIMM_CFG["mean"]), ("hf", HF_FROM_MODEL, shipped.HF_MEAN)],
)
def test_the_header_adv_config_and_the_report_say_where_each_value_came_from(
    request: pytest.FixtureRequest, pytester: pytest.Pytester, photos: Path, kind: str, expected: list[str], mean: Any
) -> None:
    folder: Path = request.getfixturevalue(f"{kind}_folder")
    label = expected[0].partition(" from ")[2]
    pytester.makepyfile(test_gate=MARKED + SOURCES_TEST.format(label=label, mean=tuple(mean)))
    result, report = _run(
        pytester, f"--adv-model={folder}", f"--adv-images={photos}", "--adv-report=r.json", "-s", *ATTACK
    )
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([f"advrobust: model {kind}:{folder}: {'; '.join(expected)}"])
    result.stdout.fnmatch_lines(
        [
            f"*source of mean: model / {label}",
            f"source of input_size: model / {expected[2].partition(' from ')[2]}",
            f"source of class_names: model / {expected[4].partition(' from ')[2]}",
            "source of epsilon: cli / the command line",
        ]
    )
    assert _settings(report)["from_model"] == expected
    assert _settings(report)["mean"] == list(mean)


# 3. A value set by hand is kept --------------------------------------------------------------------


def test_a_mean_and_std_that_contradict_the_metadata_are_kept_with_a_warning_naming_both(
    pytester: pytest.Pytester, timm_folder: Path, photos: Path
) -> None:
    pixels = _timm_pixels(shipped.oracle_timm(timm_folder), photos)
    hand = _hand_project(pytester, ORACLE_TIMM.format(folder=str(timm_folder)), pixels, photos, "0.5", "0.25")
    ours = _shipped_project(pytester, f"timm:{timm_folder}", photos, "--adv-mean=0.5", "--adv-std=0.25")
    assert_same_verdict(ours, hand, photos, mixed=False)
    result, report = ours
    result.stdout.fnmatch_lines(
        [
            "*warnings summary*",
            "*UserWarning: --adv-mean=0.5 overrides the model's mean=0.45,0.5,0.55 (from config.json pretrained_cfg):*",
        ]
    )
    result.stdout.fnmatch_lines(
        ["*--adv-std=0.25 overrides the model's std=0.2,0.25,0.3 (from config.json pretrained_cfg)*"]
    )
    assert _settings(report)["from_model"] == [line for line in TIMM_FROM_MODEL if not line.startswith(("mean", "std"))]
    assert (_settings(report)["mean"], _settings(report)["std"]) == ([0.5], [0.25])


def test_an_input_size_set_by_hand_uses_the_plugins_own_resize_rule(
    pytester: pytest.Pytester, timm_folder: Path, photos: Path
) -> None:
    """Not timm's bicubic resize to 54 and crop to 48 (crop_pct 0.875): the plugin's bilinear resize of
    the shorter side to 48, then a centre crop."""
    pixels = _file_pixels(photos, size=48)  # square photos: the shorter side to 48 is the whole resize
    hand = _hand_project(pytester, ORACLE_TIMM.format(folder=str(timm_folder)), pixels, photos, TIMM_MEAN, TIMM_STD)
    ours = _shipped_project(pytester, str(timm_folder), photos, "--adv-input-size=48")
    assert_same_verdict(ours, hand, photos, mixed=False)
    result, report = ours
    result.stdout.fnmatch_lines(
        ["*--adv-input-size=48x48 overrides the model's input_size=32x32 (from config.json pretrained_cfg)*"]
    )
    from_model = _settings(report)["from_model"]
    assert not any(line.startswith(("image files:", "input_size")) for line in from_model), from_model
    header = next(line for line in result.stdout.lines if line.startswith("advrobust: model "))
    assert "image files:" not in header and "input_size" not in header


# 4. The next steps a user takes ---------------------------------------------------------------------


def _reproduce(result: pytest.RunResult) -> list[str]:
    line = next(line for line in result.stdout.lines if "reproduce with: pytest " in line)
    return shlex.split(line.split("reproduce with: ", 1)[1])


def _image_lines(result: pytest.RunResult) -> list[str]:
    """The failure's per-image lines (``  red/x.png: 'red' 1.00 -> 'blue' 0.62 at eps=...``)."""
    return [line for line in result.stdout.lines if line.startswith("  ") and ".png: " in line]


@pytest.fixture
def project(pytester: pytest.Pytester, timm_folder: Path, hf_folder: Path, photos: Path) -> Path:
    """A repository with the models beside the tests: ``models/x`` (timm), ``tests/models/vit`` (HF),
    ``photos`` and an ini file at the root."""
    shutil.copytree(timm_folder, pytester.path / "models" / "x")
    shutil.copytree(hf_folder, pytester.path / "tests" / "models" / "vit")
    shutil.copytree(photos, pytester.path / "photos")
    pytester.makeini("[pytest]\n")
    (pytester.path / "tests" / "test_gate.py").write_text(MARKED)
    return pytester.path


def test_relative_specs_from_the_command_line_and_o_and_the_reproduce_command_from_another_folder(
    pytester: pytest.Pytester, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = pytester.runpytest("tests/test_gate.py", "--adv-model=timm:models/x", "--adv-images=photos", *ATTACK)
    first.assert_outcomes(failed=1)
    assert _image_lines(first), "the timm model flips some photos at this budget"
    # -o adv_model=... is an ini value: relative to the root, wherever pytest is started
    monkeypatch.chdir(project / "tests")
    again = pytester.runpytest("test_gate.py", "-o", "adv_model=timm:models/x", "--adv-images=../photos", *ATTACK)
    again.assert_outcomes(failed=1)
    assert _image_lines(again) == _image_lines(first)
    command = _reproduce(again)
    assert "--adv-model=timm:../models/x" in command and command[:2] == ["pytest", "test_gate.py::test_gate"]
    # the printed command, pasted verbatim in a fresh shell in that folder, fails the same way
    rerun = pytester.run(sys.executable, "-m", *command, timeout=300)
    assert rerun.ret == pytest.ExitCode.TESTS_FAILED, rerun.stdout.str()
    assert _image_lines(rerun) == _image_lines(first)
    # the same spec in the ini file is relative to the ini file's folder too
    pytester.makeini("[pytest]\nadv_model = timm:models/x\n")
    from_ini = pytester.runpytest("test_gate.py", "--adv-images=../photos", *ATTACK)
    from_ini.assert_outcomes(failed=1)
    assert _image_lines(from_ini) == _image_lines(first)
    from_ini.stdout.fnmatch_lines([f"advrobust: model timm:{project / 'models' / 'x'}: mean=*"])


def test_a_model_in_the_marker_is_relative_to_the_test_files_folder(
    pytester: pytest.Pytester, project: Path, hf_folder: Path
) -> None:
    (project / "tests" / "test_model_in_marker.py").write_text(
        "from pytest_advrobust import adv_robust\n\n\n@adv_robust(model='hf:models/vit')\ndef test_vit():\n    pass\n"
    )
    result, report = _run(
        pytester, "tests/test_model_in_marker.py", "--adv-images=photos", "--adv-report=r.json", *ATTACK
    )
    assert not (project / "models" / "vit").exists()  # only beside the test file
    # the same verdict as the same folder named on the command line
    args = ("tests/test_gate.py", f"--adv-model=hf:{hf_folder}", "--adv-images=photos", "--adv-report=abs.json")
    _, absolute = _run(pytester, *args, *ATTACK, report="abs.json")
    assert _verdicts(report) == _verdicts(absolute)
    assert _outcome(result) == {"failed": 1}
    assert _settings(report)["from_model"] == HF_FROM_MODEL


@pytest.mark.parametrize("where", ["marker", "ini"])
def test_a_bare_model_folder_name_is_relative_to_where_it_was_written(
    pytester: pytest.Pytester, project: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    shutil.copytree(project / "models" / "x", project / "mymodel")
    shutil.copytree(project / "tests" / "models" / "vit", project / "tests" / "vit")
    (project / "tests" / "test_bare.py").write_text(
        "from pytest_advrobust import adv_robust\n\n\n@adv_robust(model='vit')\ndef test_vit():\n    pass\n"
    )
    if where == "marker":  # started at the root: the marker's folder is tests/
        result = pytester.runpytest("tests/test_bare.py", "--adv-images=photos", *ATTACK)
    else:  # started in tests/: the ini file's folder is the root
        pytester.makeini("[pytest]\nadv_model = mymodel\n")
        monkeypatch.chdir(project / "tests")
        result = pytester.runpytest("test_gate.py", "--adv-images=../photos", *ATTACK)
    assert "is neither 'package.module:factory'" not in result.stdout.str()
    result.assert_outcomes(failed=1)


# 5. Files that are not what their name says ---------------------------------------------------------

LFS_POINTER = b"version https://git-lfs.github.com/spec/v1\noid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 123\n"


def _one_line_setup_error(result: pytest.RunResult, message: str) -> None:
    """The test does not pass; it says ``adv_robust: <message>`` on one line, with no traceback."""
    result.assert_outcomes(errors=1)
    lines = result.stdout.lines
    (at,) = [k for k, line in enumerate(lines) if line.startswith("adv_robust: ")]
    assert _matches(lines[at], f"adv_robust: {message}"), lines[at]
    assert lines[at + 1].startswith("=") or lines[at + 1].startswith("_"), lines[at + 1]  # the next section
    assert "Traceback" not in result.stdout.str() and "ModelLoadError" not in result.stdout.str()


def _matches(line: str, pattern: str) -> bool:
    """``pattern`` with ``*`` wildcards only (fnmatch would read ``[timm]`` as a character class)."""
    return re.fullmatch(".*".join(map(re.escape, pattern.split("*"))), line) is not None


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("lfs", "{weights} is a Git LFS pointer, not the weights: run `git lfs pull`"),
        ("html", "{weights} is an HTML page (a failed download?), not a model file: download it again"),
        ("empty", "{weights} is empty (0 bytes), not a model file: a failed download or copy? fetch it again"),
        ("truncated", "{weights} is a truncated safetensors file (its tensors need * bytes, the file has *): download it again"),
        ("other-architecture", "{weights} does not match architecture test_resnet: * missing keys (*); * unexpected keys (*)*; check that the weights were saved from this architecture*"),
    ],
)  # fmt: skip
def test_a_timm_folder_whose_weights_are_not_weights_fails_in_one_line_naming_the_file_and_the_fix(
    pytester: pytest.Pytester, timm_folder: Path, resnet18_file: Path, photos: Path, fault: str, message: str
) -> None:
    folder = Path(shutil.copytree(timm_folder, pytester.path / "model"))
    weights = folder / "model.safetensors"
    content = {
        "lfs": LFS_POINTER,
        "html": b"<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body>Sign in to continue</body></html>\n",
        "empty": b"",
        "truncated": weights.read_bytes()[: weights.stat().st_size // 2],
        "other-architecture": resnet18_file.read_bytes(),
    }[fault]
    weights.write_bytes(content)
    pytester.makepyfile(test_gate=MARKED)
    result = pytester.runpytest(f"--adv-model=timm:{folder}", f"--adv-images={photos}", *ATTACK)
    _one_line_setup_error(result, message.format(weights=weights))
    result.stdout.fnmatch_lines([f"advrobust: model timm:{folder}: {message.format(weights=weights)}"])


def test_a_garbage_onnx_file_fails_in_one_line(pytester: pytest.Pytester, onnx_file: Path, photos: Path) -> None:
    garbage = pytester.path / "model.onnx"
    garbage.write_bytes(bytes(range(256)) * 8)
    pytester.makepyfile(test_gate=MARKED)
    result = pytester.runpytest(f"--adv-model={garbage}", f"--adv-images={photos}", *ATTACK)
    _one_line_setup_error(result, f"{garbage} is not a valid ONNX model (*); export it again")


MISSING_TIMM = """
import sys

sys.modules["timm"] = None  # as if the timm extra were not installed
"""


def test_a_timm_folder_without_timm_installed_names_the_extra(
    pytester: pytest.Pytester, timm_folder: Path, photos: Path
) -> None:
    pytester.makeconftest(MISSING_TIMM)
    pytester.makepyfile(test_gate=MARKED)
    result = pytester.runpytest(f"--adv-model=timm:{timm_folder}", f"--adv-images={photos}", *ATTACK)
    _one_line_setup_error(
        result,
        f'loading the timm model in {timm_folder} needs timm, which is not installed (*): pip install "pytest-advrobust[timm]"',
    )
    assert sys.modules["timm"] is not None


# 6. The ONNX conversion is checked against onnxruntime ----------------------------------------------


def test_a_doctored_onnx_file_is_tested_as_it_is_since_onnxruntime_agrees(
    pytester: pytest.Pytester, onnx_file: Path, photos: Path
) -> None:
    """Both onnx2torch and onnxruntime read the same doctored graph: consistent, so it is attacked, and
    what is attacked is the doctored model (a head biased toward 'red')."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(onnx_file))
    (bias,) = [init for init in graph.graph.initializer if init.name == "fc.bias"]
    bias.CopyFrom(numpy_helper.from_array(np.array([100.0, 0.0, 0.0], dtype=np.float32), "fc.bias"))
    doctored = pytester.path / "doctored.onnx"
    onnx.save(graph, str(doctored))
    pytester.makepyfile(test_gate=MARKED)
    model = f"--adv-model={doctored}"
    result, report = _run(
        pytester, model, f"--adv-images={photos}", "--adv-report=r.json", *ATTACK, *TIMM_NORMALIZATION, CLASS_NAMES
    )
    assert "disagrees with onnxruntime" not in result.stdout.str()
    result.assert_outcomes(failed=1)  # every green and blue photo is now misclassified as red
    assert {i["clean_label_name"] for i in _images(report)} == {"red"}
    assert {i["flipped"] for i in _images(report) if i["label_name"] == "red"} == {False}


def test_a_conversion_that_disagrees_with_onnxruntime_is_refused(
    pytester: pytest.Pytester, onnx_file: Path, photos: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """onnx2torch made to convert wrongly (one weight perturbed after conversion): the attack would test
    another model than the one deployed, so there is no verdict."""
    import onnx2torch

    convert = onnx2torch.convert

    def wrong(*args: Any, **kwargs: Any) -> torch.nn.Module:
        module: torch.nn.Module = convert(*args, **kwargs)
        with torch.no_grad():
            next(module.parameters()).add_(0.5)
        return module

    monkeypatch.setattr(onnx2torch, "convert", wrong)
    pytester.makepyfile(test_gate=MARKED)
    result = pytester.runpytest(f"--adv-model={onnx_file}", f"--adv-images={photos}", *ATTACK, *TIMM_NORMALIZATION)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            f"*the onnx2torch conversion of {onnx_file} disagrees with onnxruntime: max |Δ logit| = * > * "
            "so the attack would test another model than the one deployed*"
        ]
    )
    assert "Traceback" not in result.stdout.str()


def test_an_onnx_model_asks_for_mean_and_std_only_while_they_are_not_set(
    pytester: pytest.Pytester, onnx_file: Path, photos: Path
) -> None:
    pytester.makepyfile(test_gate=MARKED)
    unset = pytester.runpytest(f"--adv-model={onnx_file}", f"--adv-images={photos}", *ATTACK)
    unset.stdout.fnmatch_lines([f"*{onnx_file}: ONNX files carry no preprocessing*set mean and std*"])
    given = pytester.runpytest(f"--adv-model={onnx_file}", f"--adv-images={photos}", *ATTACK, *TIMM_NORMALIZATION)
    given.assert_outcomes(failed=1)
    assert "ONNX files carry no preprocessing" not in given.stdout.str()
