"""Images as users have them: tensors with labels, (x, y), Datasets, DataLoaders, iterables, files."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from helpers import grid_images, linear_model, tiny_cnn, write_png
from pytest_advrobust import OptionError, attack
from pytest_advrobust.core.data.images import find_images
from pytest_advrobust.core.data.sources import DatasetImages, ImageSet, as_source


def _model() -> nn.Module:
    return linear_model(torch.randn(3, 3 * 8 * 8, generator=torch.Generator().manual_seed(0)) * 0.05)


def _same(a: object, b: object) -> None:
    """Two results judged the same images the same way."""
    ra, rb = list(a), list(b)  # type: ignore[call-overload]
    assert [r.name for r in ra] == [r.name for r in rb]
    assert [(r.label, r.adv_label_8bit, r.flipped) for r in ra] == [(r.label, r.adv_label_8bit, r.flipped) for r in rb]


def test_every_kind_of_input_gives_the_same_verdict_as_the_tensor() -> None:
    x = grid_images(10, seed=3)
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    settings = {"epsilon": 0.03, "method": "bim", "targets": "untargeted", "batch_size": 4}
    reference = attack(_model(), x, y, **settings)
    assert 0 < len(reference.flips) < 10, "a mix of flips and holds, or the comparison means little"
    assert [r.label_source for r in reference] == ["given"] * 10
    for images in (
        (x, y),
        TensorDataset(x, y),
        DataLoader(TensorDataset(x, y), batch_size=3),
        [(x[:5], y[:5]), (x[5:], y[5:])],
        (batch for batch in [(x[:7], y[:7]), (x[7:], y[7:])]),  # a generator: length unknown
    ):
        result = attack(_model(), images, **settings)
        _same(result, reference)
        assert {r.label_source for r in result} <= {"dataset", "loader", "given"}


def test_streamed_results_keep_only_records_when_asked() -> None:
    from pytest_advrobust.core.api import run_attack
    from pytest_advrobust.core.settings import resolve

    config = resolve([({"epsilon": 0.03, "attack": "fgsm", "targets": "untargeted", "batch_size": 3}, _src())])
    batches: list[int] = []
    result = run_attack(config, _model(), TensorDataset(grid_images(8)), keep_images=False,
                        on_batch=lambda part: batches.append(len(part.records)))  # fmt: skip
    assert batches == [3, 3, 2]
    assert len(result.records) == 8 and result.adversarial.numel() == 0


def _src() -> object:
    from pytest_advrobust.core.settings import Source

    return Source("call", "test")


class _Folder(Dataset[tuple[torch.Tensor, int]]):
    """What torchvision's ImageFolder looks like to us: samples, classes, root."""

    def __init__(self, root: Path, images: torch.Tensor) -> None:
        self.root = str(root)
        self.classes = ["ant", "bee", "cat"]
        self.samples = [(str(root / self.classes[i % 3] / f"{i}.png"), i % 3) for i in range(len(images))]
        self.images = images

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.images[i], self.samples[i][1]


def test_a_dataset_names_images_by_file_and_classes_by_its_own_names(tmp_path: Path) -> None:
    dataset = _Folder(tmp_path, grid_images(6, seed=4))
    result = attack(_model(), dataset, epsilon=0.0, method="fgsm", targets="untargeted")
    assert [r.name for r in result] == ["ant/0.png", "bee/1.png", "cat/2.png", "ant/3.png", "bee/4.png", "cat/5.png"]
    assert [r.label_name for r in result] == ["ant", "bee", "cat"] * 2
    in_order = attack(_model(), DataLoader(dataset, batch_size=4), epsilon=0.0, method="fgsm", targets="untargeted")
    assert [r.name for r in in_order] == [r.name for r in result]
    shuffled = attack(_model(), DataLoader(dataset, batch_size=4, shuffle=True), epsilon=0.0, method="fgsm",
                      targets="untargeted")  # fmt: skip
    assert {r.name for r in shuffled} == {f"image {i}" for i in range(6)}, "a shuffled loader's order is not the files'"


def test_torchvision_image_folder_with_its_transforms(tmp_path: Path) -> None:
    from torchvision import datasets, transforms

    for label, count in (("cat", 2), ("dog", 3)):
        for k in range(count):
            write_png(tmp_path / label / f"{k}.png", size=(10, 12), seed=k + count)
    folder = datasets.ImageFolder(str(tmp_path), transform=transforms.Compose([transforms.CenterCrop(8),
                                                                                transforms.ToTensor()]))  # fmt: skip
    model = linear_model(torch.randn(2, 3 * 8 * 8, generator=torch.Generator().manual_seed(0)) * 0.05)
    result = attack(model, folder, epsilon=0.02, method="bim", targets="untargeted")
    assert [r.name for r in result] == ["cat/0.png", "cat/1.png", "dog/0.png", "dog/1.png", "dog/2.png"]
    assert [r.label_name for r in result] == ["cat", "cat", "dog", "dog", "dog"]
    assert {r.label_source for r in result} == {"dataset"}
    with torch.no_grad():  # re-prediction of what the attack returned
        assert model(result.adversarial_8bit).argmax(1).tolist() == [r.adv_label_8bit for r in result]
    with pytest.raises(Exception, match="there are 2 class names .cat, dog. but the model returns 3 logits"):
        attack(_model(), folder, epsilon=0.02, method="bim")  # a folder's classes that are not the model's


def test_a_dataset_of_pil_images_is_converted() -> None:
    from PIL import Image

    class Pictures(Dataset[tuple[object, int]]):
        def __len__(self) -> int:
            return 2

        def __getitem__(self, i: int) -> tuple[object, int]:
            return Image.new("RGBA", (8, 8), (10 * i, 20, 30, 128)), i

    result = attack(_model(), Pictures(), epsilon=0.0, method="fgsm", targets="untargeted")
    assert result.clean.shape == (2, 3, 8, 8)
    assert any("composited on white" in note for note in result.settings.notes)


@pytest.mark.parametrize(
    ("images", "said"),
    [
        ("photos", r"is a path: pass find_images\('photos'\)"),
        (42, r"images must be an N×C×H×W tensor of \[0,1\] pixels, .*; got int"),
        ([(torch.zeros(2, 3, 8, 8), torch.zeros(2, 3))], "labels"),
        (TensorDataset(torch.zeros(2, 3, 8, 8, dtype=torch.int32), torch.zeros(2)), "ToTensor|uint8"),
    ],
)
def test_what_cannot_be_read_is_refused_by_name(images: object, said: str) -> None:
    with pytest.raises(OptionError, match=said):
        attack(_model(), images, epsilon=0.01, method="fgsm")


def test_labels_go_with_in_memory_images_only() -> None:
    with pytest.raises(OptionError, match="labels were given twice"):
        as_source((grid_images(2), torch.tensor([0, 1])), labels=[0, 1])
    with pytest.raises(OptionError, match="only with in-memory images"):
        as_source(TensorDataset(grid_images(2)), labels=[0, 1])


def test_shards_of_a_dataset_split_it_by_index() -> None:
    dataset = DatasetImages(TensorDataset(grid_images(7), torch.arange(7) % 3))
    parts = [dataset.shard(k, 3) for k in range(3)]
    assert [p.names for p in parts] == [
        ["image 0", "image 1"],
        ["image 2", "image 3"],
        ["image 4", "image 5", "image 6"],
    ]
    read = [name for p in parts for batch in p.batches(2) for name in batch.names]
    assert read == [f"image {i}" for i in range(7)]
    files = ImageSet(grid_images(5)).shard(1, 2)
    assert files.names == ["image 2", "image 3", "image 4"]


def test_image_files_stream_with_workers_as_without(tmp_path: Path) -> None:
    for k in range(5):
        write_png(tmp_path / f"{k}.png", size=(8, 8), seed=k)
    files = find_images(tmp_path)
    alone = [batch.pixels for batch in files.batches(2, workers=0)]
    helped = [batch.pixels for batch in files.batches(2, workers=1)]
    assert [p.shape[0] for p in alone] == [2, 2, 1]
    assert all(torch.equal(a, b) for a, b in zip(alone, helped, strict=True))
    assert torch.equal(torch.cat(alone), files.load().pixels)


def test_image_folder_layout_without_class_names_uses_sorted_folders(tmp_path: Path) -> None:
    for label in ("zebra", "ant"):
        write_png(tmp_path / label / "a.png", size=(8, 8), seed=len(label))
    files = find_images(tmp_path)
    assert [e.label for e in files.entries] == [0, 1]  # ant, zebra: sorted, as torchvision does
    assert files.class_names is not None and files.class_names.names == ("ant", "zebra")
    assert any("sorted label folders are the classes" in note for note in files.notes)
    two = linear_model(torch.randn(2, 3 * 8 * 8, generator=torch.Generator().manual_seed(0)) * 0.05)
    result = attack(two, files, epsilon=0.0, method="fgsm", targets="untargeted")
    assert [r.label_name for r in result] == ["ant", "zebra"]


def test_exif_orientation_is_applied_and_said(tmp_path: Path) -> None:
    from PIL import Image

    picture = Image.new("RGB", (12, 8), (200, 10, 10))
    picture.paste((10, 10, 200), (0, 0, 4, 8))  # a blue band on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    picture.save(tmp_path / "phone.jpg", exif=exif, quality=100)
    with pytest.warns(UserWarning, match="EXIF orientation 6 applied"):
        images = find_images(tmp_path / "phone.jpg").load()
    assert images.pixels.shape == (1, 3, 12, 8)  # upright: portrait
    top = images.pixels[0, :, 0, :]
    assert float(top[2].mean()) > float(top[0].mean()), "the blue band is at the top once rotated"


def test_grayscale_files_for_a_one_channel_model(tmp_path: Path) -> None:
    for k in range(3):
        write_png(tmp_path / f"{k}.png", size=(8, 8), mode="RGB", seed=k)
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 3)).eval()
    with pytest.raises(Exception, match="refused a batch of 3×3×8×8 images .*1 channels.*--adv-image-mode=L"):
        attack(model, find_images(tmp_path), epsilon=0.01, method="fgsm")
    with pytest.warns(UserWarning, match="converted 3 image"):
        gray = find_images(tmp_path, image_mode="L")
        result = attack(model, gray, epsilon=0.03, method="bim", targets="untargeted")
    assert result.clean.shape == (3, 1, 8, 8)
    with torch.no_grad():
        assert model(result.adversarial_8bit).argmax(1).tolist() == [r.adv_label_8bit for r in result]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float64])
def test_models_in_any_floating_dtype(dtype: torch.dtype) -> None:
    model = tiny_cnn(seed=3).eval().to(dtype)
    x = grid_images(6, seed=5)
    result = attack(model, x, epsilon=0.03, method="bim", targets="untargeted")
    assert result.adversarial.dtype == torch.float32
    assert (result.adversarial - x).abs().max() <= 0.03 + 1e-6
    with torch.no_grad():
        assert model(result.adversarial_8bit.to(dtype)).argmax(1).tolist() == [r.adv_label_8bit for r in result]
    assert next(model.parameters()).dtype == dtype, "the model is left as found"


class _Output(nn.Module):
    """A classifier returning what Hugging Face models return: an object with ``.logits``, or a dict/tuple."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.inner, self.kind = _model(), kind

    def forward(self, x: torch.Tensor) -> object:
        logits = self.inner(x)
        if self.kind == "object":
            return SimpleNamespace(logits=logits, hidden_states=None)
        if self.kind == "dict":
            return {"logits": logits}
        return (logits, x.mean())


@pytest.mark.parametrize(("kind", "output"), [("object", None), ("dict", None), ("tuple", 0), ("dict", "logits")])
def test_outputs_with_logits_inside(kind: str, output: object) -> None:
    x = grid_images(4, seed=6)
    plain = attack(_model(), x, epsilon=0.03, method="bim", targets="untargeted")
    wrapped = attack(_Output(kind), x, epsilon=0.03, method="bim", targets="untargeted", output=output)
    _same(wrapped, plain)


def test_an_output_without_logits_names_the_option() -> None:
    with pytest.raises(Exception, match="set output"):
        attack(_Output("tuple"), grid_images(2), epsilon=0.03, method="fgsm")
    with pytest.raises(Exception, match="output='scores'"):
        attack(_Output("dict"), grid_images(2), epsilon=0.03, method="fgsm", output="scores")


def test_a_channels_last_model_gives_the_same_verdict() -> None:
    x = grid_images(6, seed=7)
    plain = attack(tiny_cnn(seed=4).eval(), x, epsilon=0.03, method="bim", targets="untargeted")
    model = tiny_cnn(seed=4).eval().to(memory_format=torch.channels_last)
    last = attack(model, x.contiguous(memory_format=torch.channels_last), epsilon=0.03, method="bim",
                  targets="untargeted")  # fmt: skip
    _same(last, plain)


def test_a_subset_keeps_the_names_and_classes_of_what_it_picks_from(tmp_path: Path) -> None:
    from torch.utils.data import Subset

    picked = Subset(_Folder(tmp_path, grid_images(6, seed=4)), [4, 1])
    result = attack(_model(), picked, epsilon=0.0, method="fgsm", targets="untargeted")
    assert [(r.name, r.label_name) for r in result] == [("bee/4.png", "bee"), ("bee/1.png", "bee")]


def test_numeric_folders_are_names_when_class_names_say_so(tmp_path: Path) -> None:
    for folder in ("1", "2", "10"):
        write_png(tmp_path / folder / "a.png", size=(8, 8), seed=int(folder))
    by_name = find_images(tmp_path, class_names=["1", "10", "2"])  # torchvision's sorted order
    assert [(e.name, e.label) for e in by_name.entries] == [("1/a.png", 0), ("10/a.png", 1), ("2/a.png", 2)]
    by_index = find_images(tmp_path)  # numeric folders without class names are class indices
    assert [e.label for e in by_index.entries] == [1, 10, 2]
    with pytest.raises(OptionError, match=r"label 10 of 10/a.png \(folder name\) is out of range.*set class_names"):
        attack(_model(), by_index, epsilon=0.0, method="fgsm")


def test_labels_and_class_names_that_do_not_fit_the_model_are_refused() -> None:
    x = grid_images(3)
    with pytest.raises(OptionError, match=r"label -1 of image 2 \(given\) is out of range.*give None"):
        attack(_model(), x, [0, 1, -1], epsilon=0.01, method="fgsm")
    with pytest.raises(Exception, match=r"there are 4 class names \(a, b, c, d\) but the model returns 3 logits"):
        attack(_model(), x, epsilon=0.01, method="fgsm", class_names=["a", "b", "c", "d"])
    with pytest.raises(Exception, match="class index 2 is out of range: there are 2 class names"):
        attack(_model(), x, [0, 1, 2], epsilon=0.01, method="fgsm", class_names=["a", "b"])


def test_files_of_different_sizes_are_named(tmp_path: Path) -> None:
    write_png(tmp_path / "a.png", size=(8, 8))
    write_png(tmp_path / "b.png", size=(8, 6))
    with pytest.raises(Exception, match=r"b.png is 8x6, a.png is 8x8\); set input_size"):
        attack(_model(), find_images(tmp_path), epsilon=0.01, method="fgsm")


def test_a_hugging_face_style_dataset_of_dicts_with_pil_images() -> None:
    from PIL import Image

    label = SimpleNamespace(names=["red", "green", "blue"])

    class Rows:  # what datasets.Dataset looks like: indexable, sized, dict rows, features with ClassLabel
        def __init__(self) -> None:
            self.features = {"image": object(), "label": label}

        def __len__(self) -> int:
            return 3

        def __getitem__(self, i: int) -> dict[str, object]:
            return {"image": Image.new("RGB", (8, 8), (80 * i, 20, 30)), "label": i}

    result = attack(_model(), Rows(), epsilon=0.0, method="fgsm", targets="untargeted")
    assert [(r.label_name, r.label_source) for r in result] == [
        ("red", "dataset"),
        ("green", "dataset"),
        ("blue", "dataset"),
    ]


def test_numpy_images_and_labels_as_sklearn_gives_them() -> None:
    x = grid_images(4, seed=8)
    y = torch.tensor([0, 1, 2, 1])
    reference = attack(_model(), x, y, epsilon=0.03, method="bim", targets="untargeted")
    for images, labels in (((x.numpy(), y.numpy()), None), (x, y.numpy()), (x, y.float()), (x.numpy(), y.tolist())):
        _same(attack(_model(), images, labels, epsilon=0.03, method="bim", targets="untargeted"), reference)


def test_a_dataset_missing_a_class_is_relabelled_by_name_under_the_model_s_names(tmp_path: Path) -> None:
    dataset = _Folder(tmp_path, grid_images(6, seed=4))
    dataset.classes = ["ant", "cat", "dog"]  # no 'bee' folder: the dataset's label 1 means 'cat'
    four = linear_model(torch.randn(4, 3 * 8 * 8, generator=torch.Generator().manual_seed(0)) * 0.05)
    names = ["ant", "bee", "cat", "dog"]
    result = attack(four, dataset, epsilon=0.0, method="fgsm", targets="untargeted", class_names=names)
    assert [(r.label, r.label_name) for r in result] == [(0, "ant"), (2, "cat"), (3, "dog")] * 2
    with pytest.raises(OptionError, match="the images' class 'cat' .* is not among the class names"):
        attack(four, dataset, epsilon=0.0, method="fgsm", class_names=["ant", "bee", "cow", "dog"])


def test_a_channels_last_tensor_is_refused_with_the_fix() -> None:
    x = grid_images(2).permute(0, 2, 3, 1)  # N×H×W×C, as numpy and PIL arrays come
    with pytest.raises(OptionError, match=r"look channels-last .*permute\(0, 3, 1, 2\)"):
        attack(_model(), x, epsilon=0.01, method="fgsm")


def test_an_image_set_takes_labels_and_class_names_as_users_have_them() -> None:
    np = pytest.importorskip("numpy")
    x = grid_images(3, size=4)
    names = ["cat", "dog", "bird"]
    for labels in (torch.tensor([2, 0, 1]), np.array([2, 0, 1]), [torch.tensor(2), 0, 1.0], ["bird", "CAT", 1]):
        images = ImageSet(x, labels=labels, class_names=names)
        assert images.labels == [2, 0, 1] and all(type(label) is int for label in images.labels)
        assert images.class_names is not None and images.class_names.names == tuple(names)
    assert ImageSet(x, class_names="cat,dog,bird").class_names.names == tuple(names)  # type: ignore[union-attr]
    with pytest.raises(OptionError, match="ImageSet: label 'horse' of b: unknown class name"):
        ImageSet(x, names=["a", "b", "c"], labels=[0, "horse", 1], class_names=names)
    # what a run reports from them is plain Python, ready for JSON
    ten = names + [f"class {i}" for i in range(3, 10)]  # one name per output of the model
    result = attack(tiny_cnn(), ImageSet(x, labels=torch.tensor([2, 0, 1]), class_names=ten), epsilon=0.0)
    assert [type(r.label) for r in result.records] == [int] * 3
