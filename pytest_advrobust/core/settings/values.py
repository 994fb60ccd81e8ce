"""The values settings are made of: names of choices, where a value came from, and what an attack aims for.

Shared by the parsers, the options table and the resolved configs; pure Python (no pytest, no torch).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

ATTACKS = ("fgsm", "bim", "pgd", "apgd", "square", "autoattack")
NormName = Literal["linf", "l2", "l1"]
NORMS: tuple[NormName, ...] = ("linf", "l2", "l1")
"""The threat models: ε bounds the perturbation's L∞ norm (its largest pixel change), its L2 norm (its
Euclidean length) or its L1 norm (the sum of its pixel changes), over the whole C×H×W image in [0,1] units."""
NORM_ATTACKS: dict[str, tuple[str, ...]] = {
    "linf": ATTACKS,
    "l2": ATTACKS,
    "l1": ("fgsm", "bim", "pgd", "apgd", "autoattack"),
}
"""The attacks that have a form under each norm (Square's L1 form is not built: see the docs)."""
GRADIENT_FREE_ATTACKS = ("square",)
"""Attacks that never take a gradient: only forward passes (queries)."""
LOSSES = ("auto", "ce", "dlr")
VERDICT_ROUNDED = "rounded"
"""The default verdict: the adversarial image rounded to 8-bit pixels within the budget decides a flip."""
VERDICTS = (VERDICT_ROUNDED, "float")
BASELINE_RULES = ("images", "statistical")
"""How a run is compared with its baseline: image by image, or by a paired statistical test."""
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

LossKind = Literal["ce", "dlr"]
BatchSize = int | Literal["auto"] | None
"""A batch size setting: at most N images at once, ``"auto"`` (measured on the CPU, probed on CUDA), or
None for all images in one batch."""
SourceKind = Literal["default", "model", "profile", "ini", "override", "cli", "marker", "call"]
"""``override`` is pytest's ``-o adv_name=value``: an ini value given on the command line; ``model``: the
model's own metadata (a timm ``pretrained_cfg``, a Hugging Face ``preprocessor_config.json``), which
applies where nothing else sets a value; ``profile``: a named set of settings (``--adv-profile``), above the
defaults and below everything a user sets."""
MAX_SHARDS = 1000
"""The most shards a test may be split into (``--adv-shards``, ``--adv-shard=K/N``): a split that fine leaves
a shard of a few images, and each costs a test case and a model load per worker."""
MAX_IMAGE_SIDE = 4096
"""The largest input height or width a model may ask for (in a setting, or in its own metadata): a
4096×4096 RGB batch of one is 200 MB of float32 pixels; any classifier is far smaller."""
MODEL_PREFIXES = ("timm:", "hf:")
"""Model specs that name a library's format (``timm:<folder>``, ``timm:<name>@<weights>``, ``hf:<folder>``)."""


@dataclass(frozen=True)
class Source:
    """Where a value came from: its kind, a human label, and the folder relative paths start from."""

    kind: SourceKind
    label: str = ""
    base: Path | None = None

    def spell(self, name: str, raw: object) -> str:
        """The value as the user wrote it, e.g. ``--adv-epsilon=-1`` or ``epsilon=-1 in ...``."""
        if self.kind == "cli":
            return f"--adv-{name.replace('_', '-')}={raw}"
        if self.kind == "ini":
            return f"adv_{name} = {raw} in {self.label}"
        if self.kind == "override":
            return f"-o adv_{name}={raw}"
        if self.kind == "default":
            return f"{name}={raw!r} (the default)"
        if self.kind in ("model", "profile"):
            return f"{name}={raw!r} from {self.label}"
        return f"{name}={raw!r} in {self.label}"


@dataclass(frozen=True)
class TargetSpec:
    """What the attack aims for.

    ``mode`` is ``"untargeted"`` (ascend the loss of the true label), ``"classes"`` (descend the loss
    toward each class in ``classes``: indices or names), ``"per-image"`` (a tensor of targets, one per
    image), ``"least-likely"`` (the clean prediction's
    least likely class) or ``"runner-up"`` (the ``k`` next most likely classes after the top one).
    """

    mode: Literal["untargeted", "classes", "per-image", "least-likely", "runner-up"] = "untargeted"
    classes: tuple[int | str, ...] = ()
    k: int = 1

    def __str__(self) -> str:
        if self.mode == "per-image":
            return f"per-image ({len(self.classes)} targets)"
        if self.mode == "classes":
            return ",".join(str(c) for c in self.classes)
        if self.mode == "runner-up":
            return f"top-{self.k}"
        return self.mode


@dataclass(frozen=True)
class JobShard:
    """``--adv-shard=K/N``: this pytest process is job ``index`` (1-based) of ``count`` jobs of a CI matrix,
    each running one shard of every decorated test (``test_x[shardKofN]``)."""

    index: int
    count: int

    @property
    def id(self) -> str:
        """``shard2of4``, as in the test ids and the names of the job's files."""
        return f"shard{self.index}of{self.count}"

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def file(self, path: Path) -> Path:
        """This job's copy of a file the options name: ``reports/robustness.json`` is written as
        ``reports/robustness.shard2of4.json``."""
        return path.with_name(f"{path.stem}.{self.id}{path.suffix}")

    def merged_file(self, path: Path) -> Path:
        """The file the merge of all jobs writes, for this job's copy (the inverse of :meth:`file`)."""
        if path.suffix == f".{self.id}":
            return path.with_name(path.stem)
        return path.with_name(f"{path.stem.removesuffix('.' + self.id)}{path.suffix}")


class ImageFit(Protocol):
    """How image files are brought to a model's input size by its own eval transform: a
    :class:`~pytest_advrobust.core.models.preprocessing.Preprocessing` (the settings only show it)."""

    def describe(self) -> str: ...
