"""adv_images as users have it: ImageFolder, DataLoader, parametrized fixtures (images and models), tensors with adv_labels,
grayscale models, and memory that holds only what is written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import write_png


def linear_conftest(size: int, classes: int, rest: str, imports: str = "") -> str:
    """A pytester conftest: a seeded linear ``adv_model`` over size×size RGB images, then ``rest``."""
    return f"""
import pytest, torch
from torch import nn
{imports}
@pytest.fixture(scope="session")
def adv_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * {size} * {size}, {classes}))
{rest}"""


FOLDER_CONFTEST = linear_conftest(
    8,
    2,
    """
@pytest.fixture
def adv_images():
    return {kind}
""",
    "from torchvision import datasets, transforms\n",
)

IMAGE_FOLDER = (
    'datasets.ImageFolder("photos", transform=transforms.Compose([transforms.CenterCrop(8), transforms.ToTensor()]))'
)


def _photos(root: Path) -> None:
    for label in ("cat", "dog"):
        for k in range(3):
            write_png(root / "photos" / label / f"{k}.png", size=(10, 10), seed=k + len(label) * 7)


@pytest.mark.parametrize("kind", [IMAGE_FOLDER, f"torch.utils.data.DataLoader({IMAGE_FOLDER}, batch_size=4)"])
def test_an_image_folder_or_its_loader_is_attacked_with_its_names(pytester: pytest.Pytester, kind: str) -> None:
    _photos(pytester.path)
    pytester.makeconftest(FOLDER_CONFTEST.format(kind=kind))
    pytester.makepyfile(
        "from pytest_advrobust import adv_robust\n\n@adv_robust(epsilon=0.05, attack='bim')\ndef test_x(): ...\n"
    )
    result = pytester.runpytest("--adv-report=r.json")
    (test,) = json.loads((pytester.path / "r.json").read_text())["tests"]
    images = test["images"]
    assert [i["name"] for i in images] == [f"{c}/{k}.png" for c in ("cat", "dog") for k in range(3)]
    assert {i["label_name"] for i in images} == {"cat", "dog"} and {i["label_source"] for i in images} <= {
        "dataset",
        "loader",
    }
    flipped = [i for i in images if i["flipped_8bit"] and not i["misclassified"]]
    assert flipped, "this model flips some of these photos at this budget"
    # the failure names files and classes, as for image files
    first = flipped[0]
    result.stdout.fnmatch_lines([f"*{first['name']}: '{first['label_name']}' * -> '{first['adv_label_8bit_name']}' *"])


PARAMETRIZED = linear_conftest(
    8,
    10,
    """
@pytest.fixture(params=["dark", "bright"])
def adv_images(request):
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 128, (3, 3, 8, 8), generator=g).float() / 255
    return x if request.param == "dark" else x + 0.5
""",
)


def test_a_parametrized_adv_images_fixture_parametrizes_a_bare_marker(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(PARAMETRIZED)
    pytester.makepyfile(
        "from pytest_advrobust import adv_robust\n\n@adv_robust\ndef test_x(): ...\n\n"
        "@adv_robust(epsilon=0.0)\ndef test_zero(): ...\n\ndef test_plain(): ...\n"
    )
    result = pytester.runpytest("-v", "--adv-attack=fgsm", "--adv-epsilon=0.05")
    result.stdout.fnmatch_lines(
        ["*test_x?dark? *", "*test_x?bright? *", "*test_zero?dark? PASSED*", "*test_plain PASSED*"]
    )
    assert "no parameter defined" not in result.stdout.str()
    # the next step: the printed command reproduces one parametrized case verbatim
    line = next(line for line in result.stdout.lines if "reproduce with: pytest " in line)
    command = line.split("reproduce with: pytest ", 1)[1].split()
    again = pytester.runpytest(*[arg.strip("'") for arg in command])
    again.assert_outcomes(failed=1)


CHECKPOINTS = """
import pytest, torch
from torch import nn

@pytest.fixture(scope="session", params=["robust", "fragile"])
def adv_model(request):
    # two "checkpoints": the same linear model, its class-0 logit far ahead (robust) or barely ahead
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 3))
    with torch.no_grad():
        model[1].weight.copy_(torch.linspace(-1, 1, 3 * 3 * 4 * 4).reshape(3, 48))
        model[1].bias.copy_(torch.tensor([100.0 if request.param == "robust" else 0.0, 0.0, 0.0]))
    return model

@pytest.fixture
def adv_images():
    return torch.full((2, 3, 4, 4), 0.5)

@pytest.fixture
def adv_labels():
    return [0, 0]
"""


def test_a_parametrized_adv_model_fixture_parametrizes_a_bare_marker(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CHECKPOINTS)
    pytester.makepyfile(
        "import torch\nfrom torch import nn\nfrom pytest_advrobust import adv_robust\n\n"
        "@adv_robust(epsilon=0.05)\ndef test_gate(): ...\n\n"
        "@adv_robust(epsilon=0.05, model='nowhere:named')\ndef test_named(): ...\n"
    )
    result = pytester.runpytest("-v", "-p", "no:randomly", "--adv-attack=bim", "-k", "test_gate")
    result.stdout.fnmatch_lines(["*test_gate?robust? PASSED*", "*test_gate?fragile? FAILED*"])
    assert "no parameter defined" not in result.stdout.str()
    # a marker that names its model is not parametrized by adv_model (its model is the one it names)
    named = pytester.runpytest("--collect-only", "-q", "-k", "test_named")
    named.stdout.fnmatch_lines(["*test_named"])
    assert "test_named[" not in named.stdout.str()
    # the next step: record a baseline per checkpoint, then compare each against its own
    pytester.runpytest("--adv-attack=bim", "-k", "test_gate", "--adv-baseline-update").assert_outcomes(passed=2)
    baseline = next((pytester.path / "advrobust-baselines").glob("*.json")).read_text()
    assert "test_gate[robust]" in baseline and "test_gate[fragile]" in baseline
    pytester.runpytest("--adv-attack=bim", "-k", "test_gate").assert_outcomes(passed=2)


IMAGE_SET = linear_conftest(
    4,
    3,
    """
@pytest.fixture
def adv_images():
    x = torch.rand(4, 3, 4, 4, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        y = adv_model.__wrapped__()(x).argmax(1)  # labels as a tensor, as a training loop has them
    return ImageSet(x, names=[f"digit{i}" for i in range(4)], labels=y, class_names=["zero", "one", "two"])
""",
    "from pytest_advrobust import ImageSet\n",
)


def test_an_image_set_with_tensor_labels_and_a_class_name_list_records_and_compares(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(IMAGE_SET)
    pytester.makepyfile("from pytest_advrobust import adv_robust\n\n@adv_robust(epsilon=0.2)\ndef test_x(): ...\n")
    first = pytester.runpytest("--adv-attack=bim", "--adv-baseline-update")
    first.assert_outcomes(passed=1)
    stored = json.loads(next((pytester.path / "advrobust-baselines").glob("*.json")).read_text())
    assert "digit0" in json.dumps(stored) and "Traceback" not in first.stdout.str()
    again = pytester.runpytest("--adv-attack=bim")
    again.assert_outcomes(passed=1)
    assert "cannot compare" not in again.stdout.str()


LABELLED = linear_conftest(
    8,
    3,
    """
@pytest.fixture
def adv_images():
    return torch.full((3, 3, 8, 8), 0.5)

@pytest.fixture
def adv_labels():
    return ["ant", "bee", 2]
""",
)


def test_a_tensor_takes_its_labels_from_adv_labels(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(LABELLED)
    pytester.makepyfile(
        "from pytest_advrobust import adv_robust\n\n"
        "@adv_robust(epsilon=0.0, class_names='ant,bee,cat')\ndef test_x(): ...\n"
    )
    result = pytester.runpytest("--adv-report=r.json")
    (test,) = json.loads((pytester.path / "r.json").read_text())["tests"]
    images = test["images"]
    assert [(i["label_name"], i["label_source"]) for i in images] == [
        ("ant", "given"),
        ("bee", "given"),
        ("cat", "given"),
    ]
    result.assert_outcomes(failed=1)  # one model, one constant image: at most one label can be right
    result.stdout.fnmatch_lines(["*misclassified*"])


GRAY = """
import pytest, torch
from torch import nn

@pytest.fixture(scope="session")
def adv_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
"""


def test_a_grayscale_model_through_the_ini_file_with_html_and_artifacts(pytester: pytest.Pytester) -> None:
    for k in range(4):
        write_png(pytester.path / "imgs" / f"{k}.png", size=(8, 8), mode="RGB", seed=k)
    pytester.makeconftest(GRAY)
    pytester.makeini("[pytest]\nadv_images = imgs\nadv_image_mode = L\n")
    pytester.makepyfile(
        "from pytest_advrobust import adv_robust\n\n@adv_robust(epsilon=0.1, attack='bim')\ndef test_x(): ...\n"
    )
    result = pytester.runpytest(
        "--adv-html=r.html", "--adv-artifacts=art", "--adv-artifacts-all", "-W", "ignore::UserWarning"
    )
    assert "RuntimeError" not in result.stdout.str() and "TypeError" not in result.stdout.str()
    from PIL import Image

    pngs = sorted((pytester.path / "art").rglob("*-adversarial.png"))
    assert len(pngs) == 4 and {Image.open(p).mode for p in pngs} == {"L"}
    assert "data:image/png;base64" in (pytester.path / "r.html").read_text()
    without = pytester.runpytest("--adv-image-mode=RGB", "-W", "ignore::UserWarning")
    without.stdout.fnmatch_lines(["*refused a batch of 4×3×8×8 images*--adv-image-mode=L*"])


def test_only_the_first_failures_keep_their_images(project: pytest.Pytester) -> None:
    project.makepyfile(
        "from pytest_advrobust import adv_robust\n\n@adv_robust(epsilon=0.3, attack='fgsm', batch_size=1)\ndef test_x(): ...\n"
    )
    result = project.runpytest("--adv-artifacts=art", "--adv-artifacts-max=2", "--adv-report=r.json")
    result.assert_outcomes(failed=1)
    assert len(list((project.path / "art").rglob("*-adversarial.png"))) == 2
    (test,) = json.loads((project.path / "r.json").read_text())["tests"]
    assert any(
        "first 2 image(s) only; 2 more not shown (--adv-artifacts-max=2)" in n for n in test["settings"][0]["notes"]
    )


SHARDED_DATASET = linear_conftest(
    8,
    10,
    """
@pytest.fixture
def adv_images():
    g = torch.Generator().manual_seed(2)
    return TensorDataset(torch.randint(0, 256, (9, 3, 8, 8), generator=g).float() / 255)
""",
    "from torch.utils.data import TensorDataset\n",
)


def test_a_dataset_sharded_over_xdist_workers_merges_to_the_single_process_report(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    pytester.makeconftest(SHARDED_DATASET)
    pytester.makepyfile(
        "from pytest_advrobust import adv_robust\n\n@adv_robust(epsilon=0.03, attack='bim', batch_size=2)\ndef test_x(): ...\n"
    )
    pytester.runpytest_subprocess("--adv-report=one.json")
    pytester.runpytest_subprocess("-n", "2", "--adv-shards=3", "--adv-report=sharded.json")

    def images(name: str) -> list[tuple[str, int, bool]]:
        (test,) = json.loads((pytester.path / name).read_text())["tests"]
        return [(i["name"], i["adv_label_8bit"], i["flipped_8bit"]) for i in test["images"]]

    one, sharded = images("one.json"), images("sharded.json")
    assert len(one) == 9 and sorted(sharded) == sorted(one)


def test_adv_images_may_return_a_path_read_with_the_test_s_settings(pytester: pytest.Pytester) -> None:
    for k in range(3):
        write_png(pytester.path / "imgs" / f"{k}.png", size=(8, 8), mode="RGB", seed=k)
    pytester.makeconftest(GRAY + '\n@pytest.fixture\ndef adv_images():\n    return "imgs"\n')
    pytester.makeini("[pytest]\nadv_image_mode = L\n")
    pytester.makepyfile("from pytest_advrobust import adv_robust\n\n@adv_robust(epsilon=0.0)\ndef test_x(): ...\n")
    result = pytester.runpytest("--adv-report=r.json", "-W", "ignore::UserWarning")
    result.assert_outcomes(passed=1)
    (test,) = json.loads((pytester.path / "r.json").read_text())["tests"]
    assert [i["name"] for i in test["images"]] == ["0.png", "1.png", "2.png"]
