"""What an attack found, per image, and the lines that report it."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from .errors import NotRobustError


@dataclass
class ImageRecord:
    """One attacked image (or one image–target pair).

    Probabilities are softmax of the logits; ``*_8bit`` fields describe the adversarial image rounded to
    8-bit pixels within the ε-ball. ``first_flip_step`` is the number of steps after which the attack's
    goal (a flip, or the target) was first reached under the verdict, None if never. ``label_curve`` and
    ``target_curve`` hold the probability of the true label and of the target at every iterate (index 0
    is the start), ``path`` the top class at every iterate; they end where early stopping stopped.
    """

    name: str
    label: int
    label_name: str
    label_source: str
    clean_label: int
    clean_label_name: str
    clean_prob: float
    misclassified: bool
    target: int | None
    target_name: str | None
    adv_label: int
    adv_label_name: str
    adv_prob: float
    adv_label_8bit: int
    adv_label_8bit_name: str
    adv_prob_8bit: float
    flipped_float: bool
    flipped_8bit: bool
    target_reached_float: bool | None
    target_reached_8bit: bool | None
    linf: float
    linf_8bit: float
    first_flip_step: int | None
    steps_run: int
    steps: int
    epsilon: float
    verdict: str
    label_curve: list[float] = field(default_factory=list)
    target_curve: list[float] | None = None
    path: list[int] = field(default_factory=list)
    path_names: list[str] = field(default_factory=list)
    top_curve: list[float] = field(default_factory=list)
    """Probability of the top class at every iterate (which class that is: ``path_names``)."""
    found_by: str = ""
    minimal_epsilon: float | None = None
    """Smallest ε at which the attack succeeded (minimal-ε search), None if not searched or not found."""
    """The attack that produced the returned image (its own name, or "fgsm sanity check")."""

    @property
    def flipped(self) -> bool:
        """Whether the label flipped in the image the verdict judges (8-bit rounded by default)."""
        return self.flipped_8bit if self.verdict == "rounded" else self.flipped_float

    @property
    def target_reached(self) -> bool | None:
        return self.target_reached_8bit if self.verdict == "rounded" else self.target_reached_float

    @property
    def failed(self) -> bool:
        return self.misclassified or self.flipped

    @property
    def shown_label(self) -> tuple[str, float]:
        if self.verdict == "rounded":
            return self.adv_label_8bit_name, self.adv_prob_8bit
        return self.adv_label_name, self.adv_prob

    def passed_through(self) -> list[str]:
        """Distinct top classes the iterates passed through, in order (clean class first)."""
        seen: list[str] = []
        for name in self.path_names:
            if not seen or seen[-1] != name:
                seen.append(name)
        return seen

    def line(self) -> str:
        """``chelsea.png: 'Egyptian cat' 0.78 -> 'paper towel' 0.91 at eps=0.007, step 4/10 [...]``."""
        clean = f"{self.clean_label_name!r} {self.clean_prob:.2f}"
        if self.misclassified:
            return (
                f"{self.name}: misclassified before any attack: {clean}, "
                f"but its label is {self.label_name!r} ({self.label_source})"
            )
        adv_name, adv_prob = self.shown_label
        step = self.first_flip_step if self.first_flip_step is not None else self.steps_run
        tags = []
        if self.target is not None:
            tags.append("target reached" if self.target_reached else f"target {self.target_name!r} not reached")
        if self.found_by == "fgsm sanity check":
            tags.append("found by the FGSM sanity check, not by the configured attack")
        if (
            self.verdict == "rounded"
            and self.flipped_8bit
            and (self.adv_label != self.adv_label_8bit or abs(self.adv_prob - self.adv_prob_8bit) > 0.05)
        ):
            tags.append(f"before 8-bit rounding: {self.adv_label_name!r} {self.adv_prob:.2f}")
        if self.flipped_float != self.flipped_8bit:
            tags.append(
                "flip survives only in float, not after 8-bit rounding"
                if self.flipped_float
                else "flips only after 8-bit rounding"
            )
        if self.minimal_epsilon is not None:
            tags.append(f"minimal eps {self.minimal_epsilon:.4g}")
        suffix = f" [{'; '.join(tags)}]" if tags else ""
        if self.flipped:
            return (
                f"{self.name}: {clean} -> {adv_name!r} {adv_prob:.2f} at eps={self.epsilon:g}, "
                f"step {step}/{self.steps}{suffix}"
            )
        return (
            f"{self.name}: {clean} held at eps={self.epsilon:g} "
            f"(after {self.steps_run} step{'s' if self.steps_run != 1 else ''}: {adv_name!r} {adv_prob:.2f}){suffix}"
        )

    def details(self) -> list[str]:
        """For targeted attacks, the target's probability per step; the classes the iterates passed
        through when there were more than the start and the end."""
        out = []
        if self.target_curve is not None:
            curve = " ".join(f"{p:.3f}" for p in self.target_curve if not math.isnan(p))
            out.append(f"P({self.target_name!r}) per step (float iterates): {curve}")
        path = self.passed_through()
        if len(path) > 2:
            out.append("passed through: " + " -> ".join(path))
        return out

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["flipped"] = self.flipped
        data["target_reached"] = self.target_reached
        data["shown_label"] = self.adv_label_8bit if self.verdict == "rounded" else self.adv_label
        data["shown_label_name"], data["shown_prob"] = self.shown_label
        data["passed_through"] = self.passed_through()
        for key in ("label_curve", "target_curve", "top_curve"):
            if data[key] is not None:
                data[key] = [None if math.isnan(v) else round(v, 6) for v in data[key]]
        return data


@dataclass
class AttackResult:
    """The outcome of :func:`pytest_advrobust.attack`.

    ``adversarial``: the returned float images (N×C×H×W in [0,1], each within ε of its clean image);
    ``adversarial_8bit``: the same rounded to 8-bit values within ε. ``records``: one per image (per
    image–target pair for targeted attacks with several targets). ``settings``: what reproduces it.
    """

    adversarial: torch.Tensor
    adversarial_8bit: torch.Tensor
    records: list[ImageRecord]
    settings: dict[str, Any]
    clean: torch.Tensor = field(default_factory=lambda: torch.empty(0))
    """The clean image of each record (rows repeat an image attacked toward several targets)."""
    forward_passes: int = 0
    backward_passes: int = 0

    def __iter__(self) -> Iterator[ImageRecord]:
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)

    @property
    def flips(self) -> list[ImageRecord]:
        """Records whose label flipped under the verdict (misclassified clean images excluded)."""
        return [r for r in self.records if r.flipped and not r.misclassified]

    @property
    def misclassified(self) -> list[ImageRecord]:
        return [r for r in self.records if r.misclassified]

    @property
    def failures(self) -> list[ImageRecord]:
        return [r for r in self.records if r.failed]

    @property
    def held(self) -> list[ImageRecord]:
        return [r for r in self.records if not r.failed]

    @property
    def robust_accuracy(self) -> float:
        """Fraction of records correctly classified before and after the attack."""
        return len(self.held) / len(self.records) if self.records else float("nan")

    def lines(self) -> list[str]:
        """Flipped images first, then misclassified ones, then the ones that held."""
        out = [f"attacked {len(self.records)} image(s): {self.settings.get('describe', '')}".rstrip()]
        if self.flips:
            out.append(f"flipped ({len(self.flips)}):")
            for record in self.flips:
                out += ["  " + record.line(), *("      " + line for line in record.details())]
        if self.misclassified:
            out.append(f"misclassified before the attack ({len(self.misclassified)}):")
            out += ["  " + r.line() for r in self.misclassified]
        if self.held:
            out.append(f"held ({len(self.held)}):")
            out += ["  " + r.line() for r in self.held]
        return out

    def failure_message(self) -> str:
        head = (
            f"{len(self.flips)} of {len(self.records)} image(s) flipped within "
            f"eps={self.settings.get('epsilon', float('nan')):g}"
        )
        if self.misclassified:
            head += f", {len(self.misclassified)} misclassified before the attack"
        seed = self.settings.get("seed")
        reproduce = self.settings.get("reproduce")
        tail = [f"seed {seed}" + (f"; reproduce with: {reproduce}" if reproduce else "")]
        return "\n".join([head, *self.lines()[1:], *tail])

    def assert_robust(self) -> None:
        """Raise :class:`NotRobustError` listing each flipped or misclassified image."""
        if self.failures:
            raise NotRobustError(self.failure_message())

    def to_dict(self) -> dict[str, Any]:
        return {
            "settings": {k: v for k, v in self.settings.items() if k != "reproduce"},
            "images": [r.to_dict() for r in self.records],
            "attacked": len(self.records),
            "flipped": len(self.flips),
            "misclassified": len(self.misclassified),
            "robust_accuracy": self.robust_accuracy,
            "forward_passes": self.forward_passes,
            "backward_passes": self.backward_passes,
        }
