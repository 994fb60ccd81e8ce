"""The resolved configs: per-test settings (:class:`AttackConfig`) and session-wide ones (:class:`RunConfig`).

Each field's default comes from the options table; each ``resolved_*`` value applies the table's auto rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .attack import auto_loss, auto_step_size, auto_steps
from .baselines import auto_epsilon_max, auto_epsilon_precision, auto_tolerance
from .data import auto_workers
from .profiles import DEFAULT_PROFILE
from .table import default
from .values import BatchSize, ImageFit, JobShard, LossKind, Source, TargetSpec


def _default_field(name: str) -> Any:
    return field(default=default(name))


@dataclass(frozen=True)
class AttackConfig:
    """The resolved per-test settings (those with a marker spelling), with the source of each value."""

    epsilon: float = _default_field("epsilon")
    norm: str = _default_field("norm")
    attack: str = _default_field("attack")
    profile: str = _default_field("profile")
    eot: int = _default_field("eot")
    queries: int = _default_field("queries")
    loss: str = _default_field("loss")
    steps: int | None = _default_field("steps")
    step_size: float | None = _default_field("step_size")
    targets: TargetSpec = _default_field("targets")
    seed: int = _default_field("seed")
    device: str = _default_field("device")
    model: str | None = _default_field("model")
    images: tuple[Path, ...] | None = _default_field("images")
    labels: Path | None = _default_field("labels")
    class_names: str | tuple[str, ...] | Path | None = _default_field("class_names")
    mean: tuple[float, ...] | None = _default_field("mean")
    std: tuple[float, ...] | None = _default_field("std")
    input_size: tuple[int, int] | None = _default_field("input_size")
    image_mode: str = _default_field("image_mode")
    output: str | int | None = _default_field("output")
    early_stop: bool = _default_field("early_stop")
    verdict: str = _default_field("verdict")
    batch_size: BatchSize = _default_field("batch_size")
    workers: int | None = _default_field("workers")
    shards: int = _default_field("shards")
    min_robust_accuracy: float | None = _default_field("min_robust_accuracy")
    confidence: float = _default_field("confidence")
    minimal_epsilon: bool | None = _default_field("minimal_epsilon")
    epsilon_max: float | None = _default_field("epsilon_max")
    epsilon_precision: float | None = _default_field("epsilon_precision")
    tolerance: tuple[float, float] | None = _default_field("tolerance")
    baseline_rule: str = _default_field("baseline_rule")
    sanity_checks: bool = _default_field("sanity_checks")
    allow_pickle: bool = _default_field("allow_pickle")
    sources: Mapping[str, Source] = field(default_factory=dict, compare=False, repr=False)
    image_fit: ImageFit | None = field(default=None, repr=False)
    """How image files are resized and cropped when the model's own metadata says (its eval transform);
    None: the plugin's rule (shorter side to ``input_size``, centre crop). Not a setting: it comes with
    the model (:func:`~pytest_advrobust.core.settings.precedence.with_model_metadata`)."""

    @property
    def resolved_steps(self) -> int:
        """Steps of the attack (square: its query budget, one forward pass per step)."""
        if self.attack == "square":
            return self.queries
        return self.steps if self.steps is not None else auto_steps(self.attack)

    @property
    def resolved_epsilon_max(self) -> float:
        """The top of the minimal-ε search (:func:`~pytest_advrobust.core.settings.baselines.auto_epsilon_max`)."""
        return auto_epsilon_max(self.epsilon_max, self.epsilon, self.norm)

    @property
    def resolved_epsilon_precision(self) -> float:
        """The precision of the minimal-ε search (auto: per norm, see
        :func:`~pytest_advrobust.core.settings.baselines.auto_epsilon_precision`)."""
        return auto_epsilon_precision(self.epsilon_precision, self.resolved_epsilon_max, self.norm)

    @property
    def resolved_tolerance(self) -> tuple[float, float]:
        """How far minimal ε may drop below its baseline (the default per norm, see
        :func:`~pytest_advrobust.core.settings.baselines.auto_tolerance`)."""
        return auto_tolerance(self.tolerance, self.resolved_epsilon_precision, self.norm)

    @property
    def resolved_step_size(self) -> float:
        if self.step_size is not None:
            return self.step_size
        return auto_step_size(self.attack, self.epsilon, self.resolved_steps)

    @property
    def resolved_loss(self) -> LossKind:
        """The loss as set, or ``auto``'s choice before the model's class count is known."""
        return self.loss_for(None)

    def loss_for(self, num_classes: int | None) -> LossKind:
        """The loss as set, or ``auto``'s choice for a model with ``num_classes`` outputs (see
        :func:`~pytest_advrobust.core.settings.attack.auto_loss`)."""
        if self.loss in ("ce", "dlr"):
            return "ce" if self.loss == "ce" else "dlr"
        return auto_loss(self.attack, self.targets, num_classes)

    def workers_for(self, total: int | None) -> int:
        """The decoding processes for ``total`` images (None: unknown), or ``auto``'s choice."""
        return self.workers if self.workers is not None else auto_workers(total, self.batch_size)

    @property
    def step_size_factor(self) -> float:
        """Step size as a multiple of ε, so any budget is attacked like the configured one."""
        if self.step_size is not None and self.epsilon > 0:
            return self.step_size / self.epsilon
        return auto_step_size(self.attack, 1.0, self.resolved_steps)

    def source(self, name: str) -> Source:
        return self.sources.get(name, Source("default"))

    def from_model(self) -> list[str]:
        """The values the model's own metadata supplied, each with where it came from, for the header
        and reports: ``mean=(0.485, 0.456, 0.406) from timm pretrained_cfg``."""
        shown = [
            f"{name}={_shown(getattr(self, name))} from {source.label}"
            for name, source in self.sources.items()
            if source.kind == "model"
        ]
        if self.image_fit is not None:
            shown.append(f"image files: {self.image_fit.describe()}")
        return shown

    def describe(self) -> str:
        """One line with what reproduces a run: attack, ε, steps, step size, targets, seed."""
        step = f"{self.resolved_step_size:.6g}"
        if self.attack in ("apgd", "autoattack"):
            step = "ε,sparse,adaptive" if self.norm == "l1" else "2ε,adaptive"
        loss = f" loss={self.resolved_loss}" if self.resolved_loss != "ce" else ""
        if self.attack == "square":
            budget = f"queries={self.queries}"
        else:
            budget = f"steps={self.resolved_steps} step_size={step}{loss}"
            budget += f" queries={self.queries}" if self.attack == "autoattack" else ""
        profile = f"profile={self.profile} " if self.profile != DEFAULT_PROFILE else ""
        eot = f" eot={self.eot}" if self.eot > 1 else ""
        return (
            f"{profile}attack={self.attack} norm={self.norm} epsilon={self.epsilon:g} {budget} targets={self.targets} "
            f"seed={self.seed}{eot} verdict={self.verdict} device={self.device}"
        )


@dataclass(frozen=True)
class RunConfig:
    """The resolved session-wide settings (reports, artifacts, baselines): CLI and ini only."""

    baseline_update: bool = _default_field("baseline_update")
    baseline_dir: Path | None = _default_field("baseline_dir")
    baseline_strict: bool = _default_field("baseline_strict")
    artifacts: Path | None = _default_field("artifacts")
    artifacts_all: bool = _default_field("artifacts_all")
    artifacts_max: int = _default_field("artifacts_max")
    amplify: float = _default_field("amplify")
    html: Path | None = _default_field("html")
    report: Path | None = _default_field("report")
    markdown: Path | None = _default_field("markdown")
    github_summary: bool = _default_field("github_summary")
    shard: JobShard | None = _default_field("shard")
    sources: Mapping[str, Source] = field(default_factory=dict, compare=False, repr=False)


def _shown(value: Any) -> str:
    if isinstance(value, tuple) and value and isinstance(value[0], float):
        return "(" + ", ".join(f"{v:g}" for v in value) + ")"
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return f"{value[0]}x{value[1]}"
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value[:5]) + (f",… ({len(value)})" if len(value) > 5 else "")
    return str(value)
