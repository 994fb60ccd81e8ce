"""Robustness baselines: what a shipped model did per image, and how a retrained one compares.

One JSON file per test module (sorted keys, a schema version, meant to be committed), holding for each
decorated test the attack settings, a fingerprint of the model weights, library versions and, per
image: clean label, flipped or not at the configured ε, adversarial label, minimal ε.

Comparison is relative: a flip the baseline already had is *known*; what got worse is a regression (an
image that held now flips, its minimal ε dropped by more than the tolerance, or its clean label
changed); what got better is reported and never fails. Settings that differ refuse the comparison.
Pure Python except :func:`model_fingerprint`, which imports torch when called.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .errors import AdvRobustError
from .jsonfile import write_json

if TYPE_CHECKING:
    from .report import RunReport

BASELINE_SCHEMA_VERSION = 1
COMPARED_SETTINGS = (
    "attack",
    "epsilon",
    "steps",
    "step_size",
    "targets",
    "seed",
    "verdict",
    "mean",
    "std",
    "minimal_epsilon",
)


def model_fingerprint(model: object) -> str:
    """sha256 of the model's state dict (names, dtypes, shapes, values); 'n/a' for a plain callable."""
    state_dict = getattr(model, "state_dict", None)
    if state_dict is None:
        return "n/a"
    digest = hashlib.sha256()
    for name, tensor in sorted(state_dict().items()):
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return "sha256:" + digest.hexdigest()


def library_versions() -> dict[str, str]:
    import platform
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for package in ("torch", "torchvision", "pytest-advrobust"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def baseline_entry(run: RunReport, fingerprint: str, versions: Mapping[str, str]) -> dict[str, Any]:
    """The baseline of one test, from the report of its marker's attack run."""
    settings = run.settings
    images = {}
    for image in run.images:
        label, name, _ = image.shown_label
        images[image.name] = {
            "clean_label": image.clean_label,
            "clean_label_name": image.clean_label_name,
            "misclassified": image.misclassified,
            "flipped": image.flipped,
            "adv_label": label,
            "adv_label_name": name,
            "minimal_epsilon": image.minimal_epsilon,
        }
    return {
        "settings": {key: _plain(getattr(settings, key)) for key in COMPARED_SETTINGS},
        "model_fingerprint": fingerprint,
        "versions": dict(versions),
        "images": images,
    }


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


@dataclass
class Comparison:
    """A test's result against its baseline: lines per image, and whether it got worse."""

    refused: str | None = None
    regressions: list[str] = field(default_factory=list)
    improvements: list[str] = field(default_factory=list)
    known: list[str] = field(default_factory=list)
    unchanged: int = 0
    new: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    model_changed: bool = False

    @property
    def failed(self) -> bool:
        return self.refused is not None or bool(self.regressions)

    def lines(self) -> list[str]:
        if self.refused:
            return [self.refused]
        out = [
            f"against the baseline: {len(self.regressions)} regression(s), {len(self.improvements)} improvement(s), "
            f"{len(self.known)} known flip(s), {self.unchanged} unchanged"
            + (" (model weights differ from the baseline's)" if self.model_changed else " (same model weights)")
        ]
        for title, items in (
            ("regressions (baseline -> now)", self.regressions),
            ("improvements (baseline -> now)", self.improvements),
            ("known flips, already in the baseline", self.known),
            ("new images, not in the baseline", self.new),
            ("baseline images not attacked now", self.missing),
        ):
            if items:
                out.append(f"{title}:")
                out += [f"  {item}" for item in items]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "refused": self.refused,
            "regressions": self.regressions,
            "improvements": self.improvements,
            "known": self.known,
            "unchanged": self.unchanged,
            "new": self.new,
            "missing": self.missing,
            "model_changed": self.model_changed,
            "failed": self.failed,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Comparison:
        return cls(**{key: value for key, value in data.items() if key != "failed"})


@dataclass
class BaselineStatus:
    """Where a test stands against its baseline: ``recorded`` (``entry`` is to be written),
    ``missing`` (none stored in ``file``) or ``compared`` (``comparison`` says how)."""

    status: Literal["recorded", "missing", "compared"]
    file: str
    module: str = ""
    test: str = ""
    comparison: Comparison | None = None
    entry: dict[str, Any] | None = None

    def text(self) -> str:
        """One phrase for the summary and the HTML report."""
        if self.status == "recorded":
            return "recorded"
        if self.status == "missing" or self.comparison is None:
            return f"none stored (in {self.file})"
        if self.comparison.refused:
            return "settings differ, not compared"
        c = self.comparison
        return f"{len(c.regressions)} regression(s), {len(c.improvements)} improvement(s), {len(c.known)} known flip(s)"

    def to_json(self) -> dict[str, Any]:
        """The status in the JSON report (the recorded entry itself goes to the baseline file)."""
        data: dict[str, Any] = {"status": self.status, "file": self.file}
        if self.comparison is not None:
            data.update(self.comparison.to_dict())
        return data

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> BaselineStatus:
        comparison = data.get("comparison")
        return cls(
            status=data["status"],
            file=data["file"],
            module=data.get("module", ""),
            test=data.get("test", ""),
            comparison=None if comparison is None else Comparison.from_dict(comparison),
            entry=data.get("entry"),
        )

    @staticmethod
    def merge(parts: Sequence[BaselineStatus]) -> BaselineStatus:
        """The shards of one test: their comparisons joined, or their recorded images joined."""
        first = parts[0]
        if any(part.status != first.status for part in parts):
            return first
        if first.status == "recorded" and first.entry is not None:
            images = {name: image for part in parts for name, image in (part.entry or {})["images"].items()}
            entry = {**first.entry, "images": images}
            return BaselineStatus("recorded", first.file, first.module, first.test, entry=entry)
        comparisons = [part.comparison for part in parts if part.comparison is not None]
        if first.status != "compared" or not comparisons:
            return first
        joined = Comparison(
            refused=next((c.refused for c in comparisons if c.refused), None),
            regressions=[item for c in comparisons for item in c.regressions],
            improvements=[item for c in comparisons for item in c.improvements],
            known=[item for c in comparisons for item in c.known],
            unchanged=sum(c.unchanged for c in comparisons),
            new=[item for c in comparisons for item in c.new],
            missing=[item for c in comparisons for item in c.missing],
            model_changed=any(c.model_changed for c in comparisons),
        )
        return BaselineStatus("compared", first.file, first.module, first.test, joined)


def _eps(value: float | None) -> str:
    return "none found" if value is None else f"{value:.4g}"


def compare(
    baseline: Mapping[str, Any], current: Mapping[str, Any], tolerance: tuple[float, float], *, partial: bool = False
) -> Comparison:
    """Compare a test's current baseline entry with the stored one (see the module docstring).

    ``partial``: the current entry covers only some of the images (one shard), so none count as missing.
    """
    differing = [
        f"{key} {baseline['settings'].get(key)!r} (baseline) vs {current['settings'].get(key)!r} (now)"
        for key in COMPARED_SETTINGS
        if baseline["settings"].get(key) != current["settings"].get(key)
    ]
    if differing:
        return Comparison(
            refused="the attack settings differ from the baseline's, so the results cannot be compared: "
            + "; ".join(differing)
            + ". Use the baseline's settings, or re-record with --adv-baseline-update"
        )
    absolute, relative = tolerance
    result = Comparison(model_changed=baseline.get("model_fingerprint") != current.get("model_fingerprint"))
    old_images, new_images = baseline["images"], current["images"]
    top = (current["settings"].get("minimal_epsilon") or {}).get("max")
    for name, now in sorted(new_images.items()):
        before = old_images.get(name)
        if before is None:
            result.new.append(f"{name}: {now['clean_label_name']!r}, {'flips' if now['flipped'] else 'holds'}")
            continue
        if now["clean_label"] != before["clean_label"]:
            result.regressions.append(
                f"{name}: clean label changed: {before['clean_label_name']!r} -> {now['clean_label_name']!r}"
            )
            continue
        if now["flipped"] and not before["flipped"]:
            result.regressions.append(
                f"{name}: held -> flips to {now['adv_label_name']!r} "
                f"(minimal eps {_eps(before['minimal_epsilon'])} -> {_eps(now['minimal_epsilon'])})"
            )
            continue
        drop = _drop(before["minimal_epsilon"], now["minimal_epsilon"], top)
        if drop is not None and drop > absolute and drop > relative * (before["minimal_epsilon"] or top or 0):
            result.regressions.append(
                f"{name}: minimal eps dropped {_eps(before['minimal_epsilon'])} -> {_eps(now['minimal_epsilon'])} "
                f"(more than the tolerance {absolute:g}" + (f", {relative:.0%}" if relative else "") + ")"
            )
            continue
        if before["flipped"] and not now["flipped"]:
            result.improvements.append(f"{name}: flipped to {before['adv_label_name']!r} -> holds")
        elif drop is not None and -drop > absolute:
            result.improvements.append(
                f"{name}: minimal eps rose {_eps(before['minimal_epsilon'])} -> {_eps(now['minimal_epsilon'])}"
            )
        elif now["flipped"]:
            result.known.append(
                f"{name}: {now['clean_label_name']!r} -> {now['adv_label_name']!r}, in the baseline too "
                f"(minimal eps {_eps(before['minimal_epsilon'])} -> {_eps(now['minimal_epsilon'])})"
            )
        else:
            result.unchanged += 1
    result.missing = [] if partial else sorted(set(old_images) - set(new_images))
    return result


def _drop(before: float | None, now: float | None, top: float | None) -> float | None:
    """How much the minimal ε fell (negative: rose); 'none found' counts as the top of the range."""
    if before is None and now is None:
        return None
    if top is None and (before is None or now is None):
        return None
    old = before if before is not None else top
    new = now if now is not None else top
    assert old is not None and new is not None
    return old - new


def baseline_file(baseline_dir: Path, module: str) -> Path:
    """``<dir>/<module path relative to the rootdir>.json``."""
    return baseline_dir / f"{module}.json"


def read_baselines(path: Path) -> dict[str, Any]:
    """The tests stored in one baseline file ({} if there is none)."""
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AdvRobustError(
            f"baseline file {path} cannot be read ({exc}); fix it, or delete it and re-record with "
            "--adv-baseline-update"
        ) from None
    if not isinstance(data, dict) or data.get("schema_version") != BASELINE_SCHEMA_VERSION:
        version = data.get("schema_version") if isinstance(data, dict) else "?"
        raise AdvRobustError(
            f"baseline file {path} has schema version {version}, "
            f"this pytest-advrobust reads version {BASELINE_SCHEMA_VERSION}; re-record with --adv-baseline-update"
        )
    tests: dict[str, Any] = data.get("tests", {})
    return tests


def write_baselines(baseline_dir: Path, updates: Mapping[str, Mapping[str, Any]]) -> list[Path]:
    """Merge ``{module: {test: entry}}`` into the baseline files (other tests' entries are kept)."""
    written = []
    for module, tests in sorted(updates.items()):
        path = baseline_file(baseline_dir, module)
        merged = read_baselines(path)
        merged.update(tests)
        write_json(path, {"schema_version": BASELINE_SCHEMA_VERSION, "module": module, "tests": merged})
        written.append(path)
    return written
