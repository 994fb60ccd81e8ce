"""How many images one attack call takes (the ``batch_size`` setting), and what ``auto`` does about it.

:class:`Regrouper` cuts a source's batches into batches of any size, in order, never losing or repeating an
image. :class:`BatchSizer` decides each batch's size: the setting's, or under ``auto``

- on the CPU (any device but CUDA) the fastest per image: its first batches are real batches at a few
  sizes (:func:`~pytest_advrobust.core.settings.data.auto_batch_next`), timed, their results kept, so
  measuring costs no extra work; then the fastest size is kept, as cuDNN's benchmark mode does;
- on CUDA the largest batch that fits: one forward and one backward pass probe it, halving on out of
  memory (:func:`probe_largest`).

What a sizer finds is remembered for the rest of the process per model, image shape, device and rows per
image, so the next run with the same model starts from it. Whatever the setting, a batch that runs out of
device memory is halved and retried (:meth:`BatchSizer.pieces`, :meth:`BatchSizer.ran_out`): each image
is still attacked once, in order, and verdicts never depend on the batch size (per-image noise is seeded
per image, not per batch).
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import DeviceMemoryError
from ..models.model import WrappedModel
from ..settings import TargetSpec
from ..settings.data import AUTO_BATCH_FIRST, AUTO_BATCH_PROBE, auto_batch_limit, auto_batch_next, auto_batch_take
from ..settings.values import BatchSize
from .sources import Batch, ImageSet, ImageSource


def read_size(setting: BatchSize, source: ImageSource) -> int | None:
    """How many images to read from ``source`` at a time (None: all): the setting's size; under auto
    all at once for images already in memory (batches are then views), else :data:`AUTO_BATCH_FIRST`."""
    if setting != "auto":
        return setting
    return None if isinstance(source, ImageSet) else AUTO_BATCH_FIRST


def rows_per_image(targets: TargetSpec) -> int:
    """How many rows the attack holds per image at once: one per class when attacked toward several."""
    return len(targets.classes) if targets.mode == "classes" else 1


def split(batch: Batch, n: int) -> tuple[Batch, Batch]:
    """The first ``n`` images (with the batch's notes) and the rest."""
    head = Batch(batch.pixels[:n], batch.names[:n], batch.labels[:n], batch.sources[:n], batch.notes)
    return head, Batch(batch.pixels[n:], batch.names[n:], batch.labels[n:], batch.sources[n:])


def joined(parts: list[Batch]) -> Batch:
    """One batch of ``parts`` in order (the part itself when there is one: no copy)."""
    if len(parts) == 1:
        return parts[0]
    return Batch(
        torch.cat([part.pixels for part in parts]),
        [name for part in parts for name in part.names],
        [label for part in parts for label in part.labels],
        [source for part in parts for source in part.sources],
        [note for part in parts for note in part.notes],
    )


class Regrouper:
    """A source's batches, read as they come and handed out in batches of any size, in order."""

    def __init__(self, batches: Iterator[Batch]) -> None:
        self._batches = batches
        self._held: list[Batch] = []
        self._count = 0

    def _read(self) -> bool:
        """Read one more batch (empty ones are skipped); False at the end of the source."""
        for batch in self._batches:
            if len(batch):
                self._held.append(batch)
                self._count += len(batch)
                return True
        return False

    def peek(self) -> Batch | None:
        """The next batch as read, without taking it; None when no image is left."""
        if not self._held:
            self._read()
        return self._held[0] if self._held else None

    def take(self, size: int | None) -> Batch | None:
        """The next ``size`` images (fewer at the end), or with None the next batch as read; None when no
        image is left."""
        if size is None:
            if not self._held and not self._read():
                return None
            taken = self._held.pop(0)
            self._count -= len(taken)
            return taken
        while self._count < size and self._read():
            pass
        parts: list[Batch] = []
        need = size
        while need and self._held:
            head = self._held[0]
            if len(head) <= need:
                parts.append(self._held.pop(0))
            else:
                first, self._held[0] = split(head, need)
                parts.append(first)
            need -= len(parts[-1])
        self._count -= size - need
        return joined(parts) if parts else None


@dataclass
class Remembered:
    """What sizing found for one model, image shape and device."""

    measured: dict[int, float] = field(default_factory=dict)
    """Seconds per image and forward pass at each batch size timed (auto on the CPU)."""
    fits: int | None = None
    """The largest batch known to fit: probed (auto on CUDA), or half of one that ran out of memory."""
    probe: int | None = None
    """The largest batch the probe found to fit (auto on CUDA)."""
    probed: list[int] = field(default_factory=list)
    """Batch sizes whose probe ran out of memory (auto on CUDA)."""


_REMEMBERED: weakref.WeakKeyDictionary[Any, dict[tuple[Any, ...], Remembered]] = weakref.WeakKeyDictionary()
"""Per model (held weakly: forgotten with the model), per (device, image shape, rows per image). Like
cuDNN's benchmark cache, it lives as long as the process; it never changes a verdict."""


def remembered(model: Any, key: tuple[Any, ...]) -> Remembered:
    """The sizing remembered for ``model`` and ``key`` (a fresh one for a model that cannot be weakly
    referenced, which is then not remembered)."""
    try:
        per_model = _REMEMBERED.setdefault(model, {})
    except TypeError:
        return Remembered()
    return per_model.setdefault(key, Remembered())


def release_memory(device: torch.device) -> None:
    """Hand the cached blocks of a failed attempt back to the device, so halving can succeed."""
    if device.type == "cuda":
        torch.cuda.empty_cache()


def probe_largest(model: WrappedModel, sample: torch.Tensor, start: int, rows: int = 1) -> tuple[int, list[int]]:
    """The largest batch, halving from ``start`` images, whose forward and backward pass (with respect to
    the input, as the attack takes it) fits on the model's device; and the sizes that did not fit. Each
    probed image is ``sample`` (one C×H×W image on the device) repeated, ``rows`` times per image."""
    size, failed = start, []
    while not _fits(model, sample, size, rows):
        release_memory(model.device)  # the attempt's tensors are gone with its frame
        failed.append(size)
        size //= 2
    return size, failed


def _fits(model: WrappedModel, sample: torch.Tensor, size: int, rows: int) -> bool:
    """Whether a forward and backward pass of ``size`` images (``rows`` copies of ``sample`` each) fits;
    raises when not even one image does."""
    try:
        x = sample.expand(size * rows, *sample.shape).contiguous().requires_grad_()
        with torch.enable_grad():
            logits = model.logits(x)
            if logits.requires_grad:  # a model without a gradient is refused by the attack, not here
                torch.autograd.grad(logits.sum(), x, allow_unused=True)
    except torch.cuda.OutOfMemoryError as exc:
        if size == 1:
            raise _too_large(model.device, "one image", exc) from exc
        return False
    return True


def _too_large(device: torch.device, what: str, exc: BaseException) -> DeviceMemoryError:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return DeviceMemoryError(
        f"out of memory on {device} attacking {what} at a time, so no batch size fits (--adv-batch-size, or "
        "batch_size on the marker, halves down to 1 by itself): free the device's memory (another process may "
        f"hold it), attack smaller images (--adv-input-size), or attack on the CPU (--adv-device=cpu). ({first})"
    )


def shown_sizes(sizes: list[int]) -> str:
    """``32, 64, 128 ×3, 40``: batch sizes in order, repeats counted."""
    shown: list[str] = []
    k = 0
    while k < len(sizes):
        j = k
        while j < len(sizes) and sizes[j] == sizes[k]:
            j += 1
        shown.append(f"{sizes[k]}" + (f" ×{j - k}" if j - k > 1 else ""))
        k = j
    return ", ".join(shown)


class BatchSizer:
    """Decides each batch's size for one run, and splits what runs out of memory (see the module docstring).

    Args:
        setting: the ``batch_size`` setting: N, ``"auto"``, or None (all).
        model: the wrapped model; its device decides between timing (CPU) and probing (CUDA), and its
            ``forward_rows`` count is the unit timed.
        sample: the first batch's pixels (N×C×H×W), for the image shape; None when there are no images.
        rows: rows the attack holds per image at once (:func:`rows_per_image`).
        probe: under auto, probe the largest batch that fits instead of timing sizes; None (the default):
            on CUDA.
    """

    def __init__(
        self,
        setting: BatchSize,
        model: WrappedModel,
        sample: torch.Tensor | None,
        rows: int = 1,
        probe: bool | None = None,
    ) -> None:
        self.setting = setting
        self.model = model
        self.device = model.device
        self.rows = rows
        self.sample = None if sample is None else sample[:1]
        shape = () if sample is None else tuple(sample.shape[1:])
        self.memory = remembered(model.model, (str(self.device), shape, rows))
        self.probing = setting == "auto" and (self.device.type == "cuda" if probe is None else probe)
        self.timing = setting == "auto" and not self.probing
        height, width = (int(shape[-2]), int(shape[-1])) if len(shape) >= 2 else (1, 1)
        self.limit = auto_batch_limit(height, width, rows) if self.timing else None
        self.known = dict(self.memory.measured) if self.timing else {}
        self.was_probed = self.memory.probe is not None
        self.used: list[int] = []
        self.events: list[str] = []
        self._timed: int | None = None
        self._ran_out = False

    def _most(self) -> int | None:
        """The largest batch allowed: the CPU's pixel limit and what is known to fit."""
        caps = [cap for cap in (self.limit, self.memory.fits) if cap is not None]
        return min(caps) if caps else None

    def next_take(self, remaining: int | None) -> int | None:
        """How many images the next batch takes (``remaining``: how many are left, None when unknown);
        None: the next batch as read (a fixed size, or all)."""
        self._timed = None
        if remaining is not None and remaining < 1:
            remaining = None  # read on to the source's end, which may warn of what it converted
        if self.setting != "auto" or self.sample is None:
            return None
        if self.probing:
            if self.memory.probe is None:
                self._probe(remaining)
            fits = self.memory.fits
            assert fits is not None
            return auto_batch_take(fits, remaining, fits)
        most = self._most() or AUTO_BATCH_FIRST
        measured = {size: seconds for size, seconds in self.memory.measured.items() if size <= most}
        size = auto_batch_next(measured, most)
        if size is None:  # decided: the fastest, timed again (its best time is kept)
            best = min(measured, key=lambda s: measured[s])
            take = auto_batch_take(best, remaining, most)
            self._timed = take if take == best else None
            return take
        if remaining is None or remaining >= size * 3 // 2:
            take = size
        elif remaining >= size or remaining > max(measured, default=0):
            take = min(remaining, most)  # the rest in one batch, timed, rather than a short one after it
        else:  # too few left to time anything new
            best = min(measured, key=lambda s: measured[s])
            return auto_batch_take(best, remaining, most)
        self._timed = take
        return take

    def _probe(self, remaining: int | None) -> None:
        assert self.sample is not None
        start = min(remaining or AUTO_BATCH_PROBE, max(AUTO_BATCH_PROBE // self.rows, 1))
        sample = self.sample[0].detach().to(self.device, torch.float32)
        fits, self.memory.probed = probe_largest(self.model, sample, start, self.rows)
        self.memory.probe = fits
        self.memory.fits = fits if self.memory.fits is None else min(fits, self.memory.fits)

    def pieces(self, batch: Batch) -> Iterator[Batch]:
        """``batch`` in pieces no larger than what is known to fit, in order, to be attacked one by one; a
        piece reported by :meth:`ran_out` comes again, halved, so every image is attacked once, in order.
        (The caller attacks them in its own frame, so warnings keep pointing at its caller.)"""
        pending = [batch]
        while pending:
            piece = pending.pop(0)
            fits = self.memory.fits
            if fits is not None and len(piece) > fits:
                pending[:0] = list(split(piece, fits))
                continue
            if self._ran_out:
                release_memory(self.device)  # the failed attempt's tensors went with its traceback
                self._ran_out = False
            start, forwarded = time.perf_counter(), self.model.forward_rows
            yield piece
            if self._ran_out:
                pending.insert(0, piece)
                continue
            if self._timed == len(piece):
                per_image = (time.perf_counter() - start) / max(self.model.forward_rows - forwarded, 1)
                before = self.memory.measured.get(len(piece), per_image)
                self.memory.measured[len(piece)] = min(before, per_image)  # a busy machine only adds time
            self.used.append(len(piece))

    def ran_out(self, piece: Batch, error: BaseException) -> None:
        """The piece last handed out ran out of device memory: the pieces from now on are half its size (and
        the next run's, remembered); out of memory with one image raises :class:`DeviceMemoryError`."""
        if len(piece) == 1:
            raise _too_large(self.device, f"one image ({piece.names[0]})", error) from error
        self.memory.fits = (len(piece) + 1) // 2
        self.events.append(f"out of memory at {len(piece)} images: halved to {self.memory.fits} and retried")
        self._timed = None
        self._ran_out = True

    def describe(self) -> str:
        """One line: the setting, the batch sizes used, and why (what was timed or probed)."""
        setting = "all" if self.setting is None else str(self.setting)
        where = f" on {self.device}" if self.setting == "auto" else ""
        line = f"batch_size={setting}{where}: " + (f"batches of {shown_sizes(self.used)}" if self.used else "no images")
        why = self._why()
        return line + (f"; {why}" if why else "") + "".join(f"; {event}" for event in self.events)

    def _why(self) -> str:
        if self.probing and self.memory.probe is not None and self.sample is not None:
            shape = "×".join(str(d) for d in self.sample.shape[1:])
            earlier = " (probed earlier in this process)" if self.was_probed else ""
            tried = f"; {', '.join(map(str, self.memory.probed))} did not" if self.memory.probed else ""
            return (
                f"{self.memory.probe} is the largest batch of {shape} images whose forward and backward pass fit"
                f"{tried}{earlier}"
            )
        if not self.timing or not self.memory.measured:
            if self.timing and self.used:
                return "too few images to time two batch sizes"
            return ""
        measured = self.memory.measured
        # the sizes only: their seconds would make the JSON report differ from run to run
        shown = ", ".join(str(size) for size in sorted(measured))
        earlier = " (some timed earlier in this process)" if self.known else ""
        most = self._most() or AUTO_BATCH_FIRST
        kept = {size: seconds for size, seconds in measured.items() if size <= most}
        if auto_batch_next(kept, most) is not None:
            return f"timed per image and pass at {shown}{earlier}; too few images to time more sizes"
        best = min(kept, key=lambda s: kept[s])
        return f"{best} is the fastest per image and pass of {shown}{earlier}"


def forget(model: Any) -> None:
    """Forget what sizing found for ``model`` (the next run measures or probes again)."""
    if model in _REMEMBERED:
        del _REMEMBERED[model]
