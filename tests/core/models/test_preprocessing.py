"""Preprocessing from model metadata: the resize and crop equal the libraries' own eval transforms.

Oracles: timm's ``create_transform(**resolve_data_config({}, model=m))`` and the Hugging Face image
processor (``AutoImageProcessor.from_pretrained(folder, local_files_only=True)``), their outputs
un-normalized (x·std + mean), on real photos, odd sizes (37×91, 91×37) and an image smaller than the
input (13×7, upscaled).
"""

from __future__ import annotations

import copy
import itertools
import json
import pickle
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from pytest_advrobust.core.errors import OptionError
from pytest_advrobust.core.models.preprocessing import Preprocessing, fit_image, to_pixels

PHOTOS = sorted((Path(__file__).resolve().parents[3] / "examples" / "imagenet" / "photos").glob("*.png"))
EXACT = 1e-6
"""float32 round-off of normalizing and un-normalizing k/255."""
ONE_LEVEL = 1 / 255 + EXACT


def _noise(width: int, height: int, seed: int) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels, "RGB")


@pytest.fixture(scope="module")
def photos() -> list[Image.Image]:
    """The example photos (256×256 and 384/385×256), decoded once."""
    assert PHOTOS, "examples/imagenet/photos is empty"
    return [Image.open(path).convert("RGB") for path in PHOTOS]


@pytest.fixture(scope="module")
def images(photos: list[Image.Image]) -> list[Image.Image]:
    """Photos plus odd sizes and an image smaller than every input size (upscaled)."""
    return [*photos, _noise(37, 91, 0), _noise(91, 37, 1), _noise(13, 7, 2)]


def _max_diff(reference: torch.Tensor, ours: torch.Tensor) -> float:
    assert reference.shape == ours.shape
    return float((reference - ours).abs().max())


# timm ------------------------------------------------------------------------------------------------

TIMM_CASES = list(
    itertools.product(
        ["center", "squash", "border"],
        [0.875, 1.0, 1.15],  # 1.15 > 1: the resize undershoots and the crop pads
        ["bicubic", "bilinear", "nearest"],
        [(32, 32), (33, 33), (24, 40)],  # square, odd, and non-square (timm's ResizeKeepRatio branch)
    )
)


@pytest.mark.parametrize(("crop_mode", "crop_pct", "interpolation", "size"), TIMM_CASES)
def test_timm_eval_transform(
    images: list[Image.Image], crop_mode: str, crop_pct: float, interpolation: str, size: tuple[int, int]
) -> None:
    timm = pytest.importorskip("timm")
    from timm.data import create_transform, resolve_data_config

    from pytest_advrobust.core.models.formats.timm_models import timm_preprocessing

    cfg = {
        "input_size": (3, *size),
        "crop_pct": crop_pct,
        "crop_mode": crop_mode,
        "interpolation": interpolation,
        "mean": (0.45, 0.5, 0.55),
        "std": (0.2, 0.25, 0.3),
    }
    model = timm.create_model("test_resnet", pretrained=False, num_classes=3, pretrained_cfg_overlay=cfg)
    data_config = resolve_data_config({}, model=model)
    transform = create_transform(**data_config)
    preprocessing = timm_preprocessing(
        data_config, given=cfg, source="test", channels=3, class_names=None, class_source="", notes=[]
    )
    mean, std = torch.tensor(cfg["mean"]).view(3, 1, 1), torch.tensor(cfg["std"]).view(3, 1, 1)
    for image in images:
        assert _max_diff(transform(image) * std + mean, to_pixels(image, preprocessing)) <= EXACT, image.size


def test_timm_grayscale_model(images: list[Image.Image]) -> None:
    """A 1-channel timm model: images become PIL mode L, as timm's transform sees them."""
    timm = pytest.importorskip("timm")
    from timm.data import create_transform, resolve_data_config

    from pytest_advrobust.core.models.formats.timm_models import timm_preprocessing

    cfg = {"input_size": (1, 32, 32), "mean": (0.5,), "std": (0.25,), "crop_pct": 0.9, "interpolation": "bicubic"}
    model = timm.create_model("test_resnet", pretrained=False, in_chans=1, pretrained_cfg_overlay=cfg)
    data_config = resolve_data_config({}, model=model)
    transform = create_transform(**data_config)
    preprocessing = timm_preprocessing(
        data_config, given=cfg, source="test", channels=1, class_names=None, class_source="", notes=[]
    )
    assert preprocessing.image_mode == "L"
    for image in images:
        ours = to_pixels(image, preprocessing)
        assert ours.shape == (1, 32, 32)
        assert _max_diff(transform(image.convert("L")) * 0.25 + 0.5, ours) <= EXACT


# Hugging Face ----------------------------------------------------------------------------------------

HF_MEAN, HF_STD = (0.4, 0.5, 0.6), (0.3, 0.2, 0.25)


HF_CASES = [
    ("ViTImageProcessor", {"size": {"height": 32, "width": 32}}),
    (
        "ViTImageProcessor",
        {"size": {"height": 40, "width": 36}, "do_center_crop": True, "crop_size": {"height": 32, "width": 31}},
    ),
    ("CLIPImageProcessor", {"size": {"shortest_edge": 35}, "crop_size": {"height": 32, "width": 32}}),
    ("ConvNextImageProcessor", {"size": {"shortest_edge": 32}, "crop_pct": 0.875}),
    ("ConvNextImageProcessor", {"size": {"shortest_edge": 384}}),  # at 384 ConvNeXt warps, no crop
]
"""(processor class, kwargs): ViT's exact resize with and without a crop, CLIP's shortest edge + crop,
ConvNeXt's crop_pct."""
RESAMPLES = {"nearest": 0, "bilinear": 2, "bicubic": 3}


@pytest.fixture(scope="module")
def transformers() -> ModuleType:
    return pytest.importorskip("transformers")


def _processor_folder(
    transformers: ModuleType, folder: Path, name: str, kwargs: dict[str, object], resample: int
) -> Path:
    processor = getattr(transformers, name)(**kwargs, image_mean=HF_MEAN, image_std=HF_STD, resample=resample)
    processor.save_pretrained(folder)
    return folder


def _ours(transformers: ModuleType, folder: Path) -> Preprocessing:
    """What the HF loader reads: the default AutoImageProcessor's attributes over the saved JSON."""
    from pytest_advrobust.core.models.formats.hf_models import hf_preprocessing

    processor = transformers.AutoImageProcessor.from_pretrained(folder, local_files_only=True)
    saved = json.loads((folder / "preprocessor_config.json").read_text())
    return hf_preprocessing(processor, saved, folder, 3, None)


def _hf_pixels(processor: Any, image: Image.Image) -> torch.Tensor:
    mean, std = torch.tensor(processor.image_mean).view(3, 1, 1), torch.tensor(processor.image_std).view(3, 1, 1)
    return processor(image, return_tensors="pt")["pixel_values"][0] * std + mean


@pytest.mark.parametrize("resample", RESAMPLES)
@pytest.mark.parametrize(("name", "kwargs"), HF_CASES, ids=[f"{n}-{k['size']}" for n, k in HF_CASES])
def test_hf_processor_pil_backend_exactly(
    transformers: ModuleType,
    tmp_path: Path,
    images: list[Image.Image],
    name: str,
    kwargs: dict[str, object],
    resample: str,
) -> None:
    """transformers' PIL backend (the default before transformers 5) resizes with PIL as we do: equal."""
    folder = _processor_folder(transformers, tmp_path, name, kwargs, RESAMPLES[resample])
    pil = {"backend": "pil"} if hasattr(transformers, "ViTImageProcessorPil") else {}
    processor = transformers.AutoImageProcessor.from_pretrained(folder, local_files_only=True, **pil)
    ours = _ours(transformers, folder)
    for image in images:
        assert _max_diff(_hf_pixels(processor, image), to_pixels(image, ours)) <= EXACT, image.size


@pytest.mark.parametrize(("name", "kwargs"), HF_CASES, ids=[f"{n}-{k['size']}" for n, k in HF_CASES])
def test_hf_processor_default_backend_within_one_level(
    transformers: ModuleType,
    tmp_path: Path,
    photos: list[Image.Image],
    images: list[Image.Image],
    name: str,
    kwargs: dict[str, object],
) -> None:
    """transformers 5's default backend resizes uint8 tensors with torchvision, whose antialiased kernels
    round differently from PIL's: one 8-bit level at most, bilinear on every image, bicubic on photos
    (upscaled noise differs more: torch's bicubic kernel is not PIL's; nearest picks other pixels)."""
    for resample, sample in (("bilinear", images), ("bicubic", photos)):
        folder = _processor_folder(transformers, tmp_path / resample, name, kwargs, RESAMPLES[resample])
        processor = transformers.AutoImageProcessor.from_pretrained(folder, local_files_only=True)
        ours = _ours(transformers, folder)
        for image in sample:
            assert _max_diff(_hf_pixels(processor, image), to_pixels(image, ours)) <= ONE_LEVEL, (resample, image.size)


def test_hf_convnext_crop_pct_is_read(transformers: ModuleType, tmp_path: Path) -> None:
    folder = _processor_folder(transformers, tmp_path, *HF_CASES[3], RESAMPLES["bicubic"])
    ours = _ours(transformers, folder)
    assert (ours.resize, ours.resize_size, ours.input_size) == ("shorter-side", (36, 36), (32, 32))
    assert (ours.interpolation, ours.crop_convention, ours.mean, ours.std) == (
        "bicubic",
        "transformers",
        HF_MEAN,
        HF_STD,
    )


# Preprocessing itself ---------------------------------------------------------------------------------


def _columns(width: int, height: int) -> Image.Image:
    """A grayscale image whose pixel value is its column index (×10), to read crop offsets back."""
    return Image.fromarray(np.tile(np.arange(width, dtype=np.uint8) * 10, (height, 1)), "L")


@pytest.mark.parametrize(
    ("width", "convention", "first_column"),
    [(7, "torchvision", 2), (7, "transformers", 1), (9, "torchvision", 2), (9, "transformers", 2)],
)
def test_crop_offsets_follow_the_library(width: int, convention: str, first_column: int) -> None:
    """Margin 3: torchvision rounds 1.5 to 2, transformers floors to 1; margin 5: both give 2 (half to even)."""
    preprocessing = Preprocessing(input_size=(4, 4), resize="none", channels=1, crop_convention=convention)  # type: ignore[arg-type]
    cropped = np.asarray(fit_image(_columns(width, 4), preprocessing))
    assert cropped.shape == (4, 4)
    assert cropped[0, 0] == first_column * 10


@pytest.mark.parametrize(("convention", "left"), [("torchvision", 1), ("transformers", 2)])
def test_padding_follows_the_library(convention: str, left: int) -> None:
    """A 2-wide image padded to 5: torchvision puts (5-2)//2 = 1 column left, transformers ceil(1.5) = 2."""
    preprocessing = Preprocessing(
        input_size=(2, 5),
        resize="none",
        channels=1,
        crop_convention=convention,
        pad_fill=(7,),  # type: ignore[arg-type]
    )
    padded = np.asarray(fit_image(Image.fromarray(np.full((2, 2), 200, np.uint8), "L"), preprocessing))
    assert padded[0].tolist() == [7] * left + [200, 200] + [7] * (3 - left)


def test_to_pixels_is_chw_in_unit_range_and_keeps_size_without_input_size() -> None:
    image = _noise(37, 91, 3)
    pixels = to_pixels(image, Preprocessing())
    assert pixels.shape == (3, 91, 37) and pixels.dtype == torch.float32
    assert torch.equal(pixels, torch.from_numpy(np.array(image)).permute(2, 0, 1).float() / 255)
    assert to_pixels(image, Preprocessing(channels=1)).shape == (1, 91, 37)


def test_invalid_preprocessing_names_the_origin() -> None:
    with pytest.raises(OptionError, match=r"mean has 3 values \(from config.json\) but the model takes 1"):
        Preprocessing(mean=(0.5, 0.5, 0.5), std=(1.0,), channels=1, origins={"mean": "config.json"})
    with pytest.raises(OptionError, match="give both or neither"):
        Preprocessing(mean=(0.5,))
    with pytest.raises(OptionError, match="must be positive"):
        Preprocessing(mean=(0.5,), std=(0.0,))
    with pytest.raises(OptionError, match="resize='crop'"):
        Preprocessing(resize="crop")  # type: ignore[arg-type]
    with pytest.raises(OptionError, match="channels=4"):
        Preprocessing(channels=4)


def test_origins_are_read_only_and_the_object_pickles() -> None:
    preprocessing = Preprocessing(mean=(0.5,), std=(0.2,), input_size=(8, 9), origins={"mean": "somewhere"})
    with pytest.raises(TypeError):
        preprocessing.origins["mean"] = "elsewhere"  # type: ignore[index]
    for copied in (pickle.loads(pickle.dumps(preprocessing)), copy.deepcopy(preprocessing)):
        assert copied == preprocessing and hash(copied) == hash(preprocessing)
        assert copied.origins["mean"] == "somewhere"


def test_class_names_a_model_repeats_are_made_distinct_by_their_index() -> None:
    """ImageNet's labels name two classes ``crane``; the plugin refuses repeated names set by hand (a label
    could not name one class), so a model's own repeats are told apart by index instead of refused."""
    from pytest_advrobust.core.data.classes import load_class_names
    from pytest_advrobust.core.models.preprocessing import Preprocessing, distinct_names

    assert distinct_names(("bird", "crane", "dog", "crane")) == ("bird", "crane (1)", "dog", "crane (3)")
    assert distinct_names(("a", "b")) == ("a", "b")
    values, origins = Preprocessing(class_names=("crane", "crane", "dog"), origins={"class_names": "x"}).as_settings()
    names = load_class_names(values["class_names"])  # a hand-set list like this one is refused; these are not
    assert names.index("crane (1)") == 1 and names.index("dog") == 2 and origins["class_names"] == "x"
