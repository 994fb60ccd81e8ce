"""batch_size: auto times batch sizes on the CPU and probes the largest that fits on CUDA; out of memory
halves a batch and retries it; no image is lost or repeated, and verdicts never depend on the batch size.

Out of memory is simulated without a GPU: a model that raises ``torch.cuda.OutOfMemoryError`` (what
PyTorch raises on CUDA) for a forward pass of more rows than it "fits"."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from helpers import grid_images, tiny_cnn
from pytest_advrobust import AttackResult, attack
from pytest_advrobust.core.data.batching import BatchSizer, Regrouper, forget, probe_largest, remembered
from pytest_advrobust.core.data.sources import GIVEN, Batch, ImageSet
from pytest_advrobust.core.errors import DeviceMemoryError
from pytest_advrobust.core.models.model import WrappedModel
from pytest_advrobust.core.settings.data import (
    AUTO_BATCH_FIRST,
    auto_batch_limit,
    auto_batch_next,
    auto_batch_take,
    auto_workers,
)
from pytest_advrobust.core.settings.parsers import parse_batch_size
from pytest_advrobust.core.settings.table import default

OOM_MESSAGE = (
    "CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 7.79 GiB; see the "
    "documentation for PYTORCH_CUDA_ALLOC_CONF (max_split_size_mb)"
)  # names a "size", as a refused input shape's message would: it must not read as one


class RunsOutAbove(nn.Module):
    """``inner`` on a device that fits at most ``most`` rows per forward pass, once ``after`` calls are done
    (before that any size fits: an out-of-memory error in the middle of an attack)."""

    def __init__(self, inner: nn.Module, most: int, after: int = 0) -> None:
        super().__init__()
        self.inner, self.most, self.after = inner, most, after
        self.calls = self.refused = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if x.shape[0] > self.most and self.calls > self.after:
            self.refused += 1
            raise torch.cuda.OutOfMemoryError(OOM_MESSAGE)
        out: torch.Tensor = self.inner(x)
        return out


def _verdicts(result: AttackResult) -> list[tuple[object, ...]]:
    return [(r.name, r.label, r.target, r.adv_label, r.adv_label_8bit, r.flipped, r.first_flip_step) for r in result]


def _same(a: AttackResult, b: AttackResult) -> None:
    """The same images, in order, each once, judged the same way (probabilities up to float rounding)."""
    assert _verdicts(a) == _verdicts(b)
    assert [r.adv_prob for r in a] == pytest.approx([r.adv_prob for r in b], abs=1e-5)
    assert torch.allclose(a.adversarial, b.adversarial, atol=1e-6)


# -- the setting and its rule


def test_auto_is_the_default_and_parses_in_every_spelling() -> None:
    assert default("batch_size") == "auto"
    parsed = {raw: parse_batch_size(raw) for raw in ("auto", " AUTO ", "all", "16")}
    assert parsed == {"auto": "auto", " AUTO ": "auto", "all": None, "16": 16}
    assert parse_batch_size(None) is None and parse_batch_size(8) == 8
    for bad in (0, "-3", "lots", 2.5):
        with pytest.raises(ValueError, match="'auto' or 'all'"):
            parse_batch_size(bad)


def _explore(seconds_per_image: Callable[[int], float], limit: int = 10_000) -> tuple[list[int], int]:
    """The sizes the CPU rule times, in order, on a machine with these costs, and the one it keeps."""
    measured: dict[int, float] = {}
    while (size := auto_batch_next(measured, limit)) is not None:
        measured[size] = seconds_per_image(size)
    return list(measured), min(measured, key=measured.__getitem__)


def test_the_cpu_rule_goes_up_while_faster_halves_when_not_and_keeps_the_fastest() -> None:
    # a fixed cost per batch (overhead / size + floor per image, as ResNet-18 at 32×32): after 32 and 64
    # the fit says where the overhead falls within 5% of the floor (12.8 / 0.05 / 0.6 ≈ 427), and no further
    assert _explore(lambda size: 12.8 / size + 0.6) == ([32, 64, 427], 427)
    # bigger is worse past 64 (caches): one size too far, then back
    assert _explore(lambda size: {32: 1.0, 64: 0.95}.get(size, 1.3)) == ([32, 64, 128], 64)
    # fastest below the first size
    assert _explore({32: 1.0, 64: 1.2, 16: 0.9, 8: 1.1}.__getitem__) == ([32, 64, 16, 8], 16)
    # fastest at the first size: one size either side
    assert _explore({32: 1.0, 64: 1.1, 16: 1.2}.__getitem__) == ([32, 64, 16], 32)
    # never above the limit (pixels held on the CPU, or what is known to fit)
    assert _explore(lambda size: 12.8 / size + 0.6, limit=100) == ([32, 64, 100], 100)
    assert _explore({8: 1.0, 4: 1.2}.__getitem__, limit=8) == ([8, 4], 8)
    # only a fixed cost: at most 8 times further per step
    assert _explore(lambda size: 1 / size, limit=5000)[0] == [32, 64, 512, 4096, 5000]


def test_the_limit_holds_at_most_32_imagenet_images_of_pixels() -> None:
    assert auto_batch_limit(224, 224) == 32
    assert auto_batch_limit(32, 32) == 1568
    assert auto_batch_limit(32, 32, rows_per_image=4) == 392
    assert auto_batch_limit(1024, 1024) == 1


def test_the_last_few_images_go_with_the_batch_before_them() -> None:
    assert auto_batch_take(32, None, 1000) == 32  # the count is unknown
    assert auto_batch_take(32, 100, 1000) == 32
    assert auto_batch_take(32, 40, 1000) == 40  # not 32 and then 8 alone
    assert auto_batch_take(32, 41, 1000) == 32  # 32 and then 9: no batch grows by more than a quarter
    assert auto_batch_take(64, 70, 64) == 64, "never above what fits"
    assert auto_workers(100, "auto") == 1 and auto_workers(AUTO_BATCH_FIRST, "auto") == 0


def test_regrouping_keeps_every_image_once_in_order_and_copies_one_batch_not_at_all() -> None:
    x = grid_images(10, seed=1)
    source = ImageSet(x, labels=list(range(10)))
    reader = Regrouper(source.batches(3))
    taken = [reader.take(size) for size in (2, 5, None, 4)]
    assert [None if b is None else b.names for b in taken] == [
        ["image 0", "image 1"],
        ["image 2", "image 3", "image 4", "image 5", "image 6"],
        ["image 7", "image 8"],  # the rest of the batch read last, as read
        ["image 9"],
    ]
    assert reader.take(4) is None
    assert torch.equal(torch.cat([b.pixels for b in taken if b is not None]), x)
    whole = Regrouper(ImageSet(x).batches(None)).take(4)
    assert whole is not None and whole.pixels.data_ptr() == x.data_ptr(), "a slice of one read batch is a view"


# -- auto on the CPU: real batches, timed, their results kept


@pytest.mark.filterwarnings("ignore:one FGSM step succeeded")  # for one image, in every run alike
def test_auto_times_its_first_batches_and_judges_as_one_batch_does() -> None:
    model = tiny_cnn(seed=3)
    x = grid_images(160, seed=3)
    reference = attack(model, x, epsilon=0.05, method="pgd", steps=3, targets="untargeted", batch_size="all")
    forget(model)
    auto = attack(model, x, epsilon=0.05, method="pgd", steps=3, targets="untargeted")
    assert auto.settings.batch_sizes[:2] == [32, 64] and sum(auto.settings.batch_sizes) == 160
    _same(auto, reference)  # pgd's random start is drawn per image, not per batch
    assert 0 < len(auto.flips) < 160, "a mix of flips and holds, or the comparison means little"
    line = auto.settings.batching
    # which sizes follow 32 and 64, and which is fastest, depend on timing (a loaded machine times otherwise)
    assert line.startswith("batch_size=auto on cpu: batches of 32, 64") and "per image and pass" in line
    assert "batching" not in auto.report().settings.to_json(), "timing-dependent: not in the JSON report"
    assert reference.settings.batching == "batch_size=all: batches of 160"
    again = attack(model, x, epsilon=0.05, method="pgd", steps=3, targets="untargeted")
    assert "timed earlier in this process" in again.settings.batching
    _same(again, reference)


def test_auto_regroups_a_loaders_batches_with_their_per_image_targets() -> None:
    model = tiny_cnn(seed=4)
    x = grid_images(90, seed=4)
    y = torch.randint(0, 10, (90,), generator=torch.Generator().manual_seed(4))
    targets = (y + 1) % 10
    loader = DataLoader(TensorDataset(x, y), batch_size=7)
    reference = attack(model, x, y, epsilon=0.05, method="bim", steps=3, targets=targets, batch_size="all")
    forget(model)
    auto = attack(model, loader, epsilon=0.05, method="bim", steps=3, targets=targets)
    assert auto.settings.batch_sizes[0] == 32, "the loader's batches of 7 are regrouped"
    assert [r.target for r in auto] == targets.tolist()
    _same(auto, reference)


def test_a_few_images_are_one_batch() -> None:
    result = attack(tiny_cnn(seed=5), grid_images(20, seed=5), epsilon=0.05, method="fgsm")
    assert result.settings.batch_sizes == [20]
    assert (
        result.settings.batching
        == "batch_size=auto on cpu: batches of 20; timed per image and pass at 20; too few images to time more sizes"
    )


# -- out of memory


@pytest.mark.filterwarnings("ignore:one FGSM step succeeded")
@pytest.mark.parametrize("batch_size", [16, "auto", "all"])
def test_out_of_memory_mid_run_halves_the_batch_and_loses_or_repeats_no_image(batch_size: int | str) -> None:
    inner = tiny_cnn(seed=6)
    x = grid_images(20, seed=6)
    settings: dict[str, Any] = {"epsilon": 0.05, "method": "pgd", "steps": 3, "targets": "untargeted"}
    reference = attack(inner, x, batch_size="all", **settings)
    # any size fits for the first 4 passes (the first batch's clean pass and steps), then at most 5 rows do
    model = RunsOutAbove(inner, most=5, after=4)
    result = attack(model, x, batch_size=batch_size, **settings)
    assert model.refused >= 2
    assert [r.name for r in result] == [f"image {i}" for i in range(20)]
    assert max(result.settings.batch_sizes) <= 5 and sum(result.settings.batch_sizes) == 20
    _same(result, reference)
    assert "out of memory at" in result.settings.batching and "halved to" in result.settings.batching


def test_what_ran_out_of_memory_is_remembered_for_the_next_run() -> None:
    model = RunsOutAbove(tiny_cnn(seed=7), most=9)
    x = grid_images(30, seed=7)
    first = attack(model, x, epsilon=0.05, method="bim", steps=2, targets="untargeted", batch_size=16)
    refused = model.refused
    assert refused and max(first.settings.batch_sizes) <= 8
    second = attack(model, x, epsilon=0.05, method="bim", steps=2, targets="untargeted", batch_size=16)
    assert model.refused == refused, "the second run starts at what fit"
    assert second.settings.batch_sizes == first.settings.batch_sizes
    _same(second, first)


def test_out_of_memory_at_every_size_names_the_setting() -> None:
    model = RunsOutAbove(tiny_cnn(seed=8), most=0)
    with pytest.raises(DeviceMemoryError, match=r"image 0.*--adv-batch-size.*--adv-device=cpu.*CUDA out of memory"):
        attack(model, grid_images(6, seed=8), epsilon=0.05, method="bim", steps=2, batch_size=4)
    assert model.refused == 3, "4, 2 and 1 images were tried"


# -- the CUDA probe, on a model that fits at most some rows


def test_the_probe_finds_the_largest_batch_whose_forward_and_backward_pass_fit() -> None:
    sample = grid_images(1, seed=9)[0]
    wrapped = WrappedModel(RunsOutAbove(tiny_cnn(seed=9), most=100))
    assert probe_largest(wrapped, sample, start=4096) == (64, [4096, 2048, 1024, 512, 256, 128])
    assert probe_largest(wrapped, sample, start=30) == (30, [])
    assert probe_largest(wrapped, sample, start=64, rows=3) == (32, [64]), "three rows per image: 96 rows"
    with pytest.raises(DeviceMemoryError, match="one image at a time"):
        probe_largest(WrappedModel(RunsOutAbove(tiny_cnn(seed=9), most=0)), sample, start=8)


def test_auto_on_cuda_probes_once_then_takes_the_largest_batch_that_fits() -> None:
    wrapped = WrappedModel(RunsOutAbove(tiny_cnn(seed=11), most=50))
    sizer = BatchSizer("auto", wrapped, grid_images(1, seed=11), probe=True)  # as on CUDA
    assert [sizer.next_take(200), sizer.next_take(60), sizer.next_take(7)] == [50, 50, 7]
    assert remembered(wrapped.model, ("cpu", (3, 8, 8), 1)).probed == [200, 100]
    batch = Batch(grid_images(50, seed=11), [f"image {i}" for i in range(50)], [None] * 50, [GIVEN] * 50)
    assert [len(piece) for piece in sizer.pieces(batch)] == [50]
    assert sizer.describe() == (
        "batch_size=auto on cpu: batches of 50; 50 is the largest batch of 3×8×8 images whose forward and "
        "backward pass fit; 200, 100 did not"
    )
    again = BatchSizer("auto", wrapped, grid_images(1, seed=11), probe=True)
    assert again.next_take(10) == 10 and wrapped.model.refused == 2, "probed once per model and image shape"
    assert again.describe().endswith("(probed earlier in this process)")


def test_a_fixed_size_is_read_as_set_and_never_timed() -> None:
    wrapped = WrappedModel(tiny_cnn(seed=10))
    sizer = BatchSizer(8, wrapped, grid_images(1, seed=10))
    assert sizer.next_take(100) is None, "the source reads 8 at a time"
    batch = Batch(grid_images(8, seed=10), [f"image {i}" for i in range(8)], [None] * 8, [GIVEN] * 8)
    assert [len(piece) for piece in sizer.pieces(batch)] == [8] and sizer.used == [8]
    assert not remembered(wrapped.model, ("cpu", (3, 8, 8), 1)).measured


@pytest.mark.filterwarnings("ignore:one FGSM step succeeded")
def test_a_runs_notes_do_not_depend_on_its_batches() -> None:
    """The notes that count images (top-K held, minimal-ε search runs) add up over batches: a run in
    batches of 7 notes what the same run as one batch notes, as the JSON report records them."""
    model, x = tiny_cnn(seed=5), grid_images(40, seed=5)
    settings: dict[str, Any] = {"epsilon": 0.02, "steps": 3, "targets": "top-3", "minimal_epsilon": True}
    whole = attack(model, x, batch_size="all", **settings)
    pieces = attack(model, x, batch_size=7, **settings)
    assert _verdicts(pieces) == _verdicts(whole)
    held = sum(1 for record in whole if not record.flipped)
    assert f"top-3: {held} of 40 image(s) held against all 3 runner-up targets" in whole.settings.notes
    assert any(note.startswith("minimal-ε search: ") for note in whole.settings.notes)
    assert pieces.settings.notes == whole.settings.notes
    assert pieces.report().settings.to_json() == {
        **whole.report().settings.to_json(),
        "describe": pieces.report().settings.to_json()["describe"],
    }
