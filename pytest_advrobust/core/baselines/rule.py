"""Robustness baselines: what a shipped model did per image, and how a retrained one compares.

The rule: **a baseline allows exactly the flips it recorded; everything else is judged as if there were
no baseline.** Image by image:

- an image that held and now flips, whose minimal ε dropped beyond the tolerance, or whose clean label
  changed is a *regression*;
- a *new* image (not in the baseline) is judged absolutely: a flip or a misclassification fails;
- a *known* flip (the same clean → adversarial classes as recorded) passes; one that now lands on another
  class is reported as *changed*, and a baseline image that was not attacked now as *missing* (both
  fail with ``--adv-baseline-strict``);
- when the settings that change results differ, the results *cannot be compared*: the test is judged
  absolutely, and says why.

Storage (files, merging, unused entries) is in :mod:`.store`; what identifies a model and the libraries
in :mod:`.identity`. Pure Python.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from ..display import quoted, shown
from ..wire import build, fields
from .identity import checked_fingerprint

COMPARED_SETTINGS = (
    "attack",
    "norm",
    "loss",
    "epsilon",
    "steps",
    "step_size",
    "targets",
    "seed",
    "verdict",
    "mean",
    "std",
    "minimal_epsilon",
    "profile",
    "eot",
    "queries",
)
RANDOM_START_ATTACKS = ("pgd", "apgd", "square", "autoattack")
"""Attacks in which the seed plays a part (a random start, square's random windows)."""
UNRECORDED = {"loss": "ce", "profile": "standard", "eot": 1, "queries": None, "norm": "linf"}
"""What a baseline recorded before a setting existed ran with."""
TARGET_SEPARATOR = " -> "


def image_of(name: str) -> str:
    """The image a record names: ``cat.png -> tabby`` (an image–target pair) is ``cat.png``."""
    return name.split(TARGET_SEPARATOR, 1)[0]


def _stored(value: Any) -> Any:
    """Settings as stored: tuples as lists, floats without binary noise (10 significant digits)."""
    if isinstance(value, float):
        return float(f"{value:.10g}")
    if isinstance(value, (tuple, list)):
        return [_stored(v) for v in value]
    if isinstance(value, dict):
        return {k: _stored(v) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class BaselineImage:
    """What a baseline keeps of one image (one image–target pair): its clean and adversarial classes."""

    clean_label: int
    clean_label_name: str
    misclassified: bool
    flipped: bool
    adv_label: int
    adv_label_name: str
    minimal_epsilon: float | None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, data: Any, where: str = "image") -> BaselineImage:
        """An image row as stored; raises ``ValueError`` naming the field (``where`` is its path) when the
        row is not what :meth:`to_json` writes."""
        row = _field_of(data, dict, where)
        return cls(
            clean_label=_field_of(row.get("clean_label"), int, f"{where}.clean_label"),
            clean_label_name=_field_of(row.get("clean_label_name"), str, f"{where}.clean_label_name"),
            misclassified=_field_of(row.get("misclassified"), bool, f"{where}.misclassified"),
            flipped=_field_of(row.get("flipped"), bool, f"{where}.flipped"),
            adv_label=_field_of(row.get("adv_label"), int, f"{where}.adv_label"),
            adv_label_name=_field_of(row.get("adv_label_name"), str, f"{where}.adv_label_name"),
            minimal_epsilon=_budget(
                _field_of(row.get("minimal_epsilon"), float, f"{where}.minimal_epsilon", optional=True),
                f"{where}.minimal_epsilon",
            ),
        )


_KIND_NAMES = {dict: "an object", str: "a string", bool: "true or false", int: "a whole number", float: "a number"}


def _field_of(value: Any, kind: type, where: str, *, optional: bool = False) -> Any:
    """``value`` if it is of ``kind`` (a bool is no number here), else ``ValueError`` naming ``where``."""
    if value is None and optional:
        return None
    kinds = (float, int) if kind is float else (kind,)  # JSON writes 0.0 as 0
    if (isinstance(value, bool) and kind is not bool) or not isinstance(value, kinds):
        wanted = _KIND_NAMES[kind] + (" or null" if optional else "")
        got = "missing" if value is None else f"{type(value).__name__} {value!r}"[:60]
        raise ValueError(f"{where} must be {wanted}, not {got}")
    return value


def _budget(value: float | None, where: str) -> float | None:
    if value is not None and not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{where} must be a budget ≥ 0 in [0,1] pixel units, not {value!r}")
    return None if value is None else float(value)


@dataclass(frozen=True)
class BaselineEntry:
    """The baseline of one test: the settings that change results (as stored), the model's fingerprint,
    the library versions, and a :class:`BaselineImage` per image name."""

    settings: Mapping[str, Any]
    model_fingerprint: str
    versions: Mapping[str, str]
    images: Mapping[str, BaselineImage]

    @property
    def searched_minimal_epsilon(self) -> bool:
        """Whether the run searched each image's minimal ε (the baseline then holds it)."""
        return self.settings.get("minimal_epsilon") is not None

    def with_images(self, images: Mapping[str, BaselineImage]) -> BaselineEntry:
        return BaselineEntry(self.settings, self.model_fingerprint, self.versions, dict(images))

    def to_json(self) -> dict[str, Any]:
        return {
            "settings": dict(self.settings),
            "model_fingerprint": self.model_fingerprint,
            "versions": dict(self.versions),
            "images": {name: image.to_json() for name, image in self.images.items()},
        }

    @classmethod
    def from_json(cls, data: Any, where: str = "entry") -> BaselineEntry:
        """An entry as stored; raises ``ValueError`` naming the first field (``where`` is its path) that
        is not what :meth:`to_json` writes."""
        entry = _field_of(data, dict, where)
        images = _field_of(entry.get("images"), dict, f"{where}.images")
        return cls(
            settings=dict(_field_of(entry.get("settings"), dict, f"{where}.settings")),
            model_fingerprint=checked_fingerprint(
                _field_of(entry.get("model_fingerprint", "n/a"), str, f"{where}.model_fingerprint"),
                f"{where}.model_fingerprint",
            ),
            versions=dict(_field_of(entry.get("versions", {}), dict, f"{where}.versions")),
            images={
                name: BaselineImage.from_json(image, f"{where}.images[{name!r}]") for name, image in images.items()
            },
        )


class RecordedImage(Protocol):
    """What :func:`baseline_entry` reads of an image record
    (:class:`~pytest_advrobust.core.results.report.ImageRecord`)."""

    name: str
    clean_label: int
    clean_label_name: str
    misclassified: bool
    minimal_epsilon: float | None

    @property
    def flipped(self) -> bool: ...

    @property
    def shown_label(self) -> tuple[int, str, float]: ...


class RecordedRun(Protocol):
    """What :func:`baseline_entry` reads of a run's report
    (:class:`~pytest_advrobust.core.results.report.RunReport`)."""

    @property
    def settings(self) -> Any: ...

    @property
    def images(self) -> Sequence[RecordedImage]: ...


def baseline_entry(run: RecordedRun, fingerprint: str, versions: Mapping[str, str]) -> BaselineEntry:
    """The baseline of one test, from the report of its marker's attack run."""
    images = {}
    for image in run.images:
        label, name, _ = image.shown_label
        images[image.name] = BaselineImage(
            clean_label=image.clean_label,
            clean_label_name=image.clean_label_name,
            misclassified=image.misclassified,
            flipped=image.flipped,
            adv_label=label,
            adv_label_name=name,
            minimal_epsilon=image.minimal_epsilon,
        )
    settings = {key: _stored(getattr(run.settings, key)) for key in COMPARED_SETTINGS}
    return BaselineEntry(settings, fingerprint, dict(versions), images)


def _same(a: Any, b: Any) -> bool:
    """Equal, with floats compared to 9 significant digits (baselines of older versions stored noise)."""
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


def settings_differences(stored: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """The settings that change results and differ: the seed only with a random start, the minimal-ε
    search range only when both searched."""
    seeded = now.get("attack") in RANDOM_START_ATTACKS or (now.get("eot") or 1) > 1  # eot: the model's draws
    keys = [key for key in COMPARED_SETTINGS if key != "seed" or seeded]
    stored, now = {**UNRECORDED, **stored}, {**UNRECORDED, **now}  # entries recorded before a setting existed
    if stored.get("minimal_epsilon") is None or now.get("minimal_epsilon") is None:
        keys.remove("minimal_epsilon")
    return [
        f"{key} {stored.get(key)!r} (baseline) vs {now.get(key)!r} (now)"
        for key in keys
        if not _same(stored.get(key), now.get(key))
    ]


State = Literal["held", "flipped", "misclassified"]
"""An image's outcome in one run: it held (robust: correct before and after the attack), flipped, or was
misclassified before any attack (not robust either)."""


def state_of(image: BaselineImage) -> State:
    return "misclassified" if image.misclassified else ("flipped" if image.flipped else "held")


@dataclass(frozen=True)
class Outcome:
    """One image (image–target pair) of the baseline: its outcome and minimal ε there and now (``now``
    None: not attacked now). What the statistical rule and the baseline's robustness curve read."""

    name: str
    before: State
    minimal_epsilon_before: float | None
    now: State | None = None
    minimal_epsilon_now: float | None = None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Comparison:
    """A test's result against its baseline, image by image (see the module docstring)."""

    incomparable: str | None = None
    """Why the results cannot be compared (settings differ), or None."""
    regressions: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    new: list[str] = field(default_factory=list)
    improvements: list[str] = field(default_factory=list)
    known: list[str] = field(default_factory=list)
    unchanged: int = 0
    model_changed: bool = False
    unchecked: list[str] = field(default_factory=list)
    """What the baseline records but this run could not check (fails with ``strict``)."""
    outcomes: list[Outcome] = field(default_factory=list, compare=False)
    """Every baseline image this run attacked, and every one it should have and did not (``missing``):
    its outcome and minimal ε in both runs. The figures the statistical rule reads, not part of what two
    comparisons must share to be equal (the headings above say it image by image)."""
    epsilon_top: float | None = field(default=None, compare=False)
    """The top of the minimal-ε search when both runs searched (an image with none found there counts as
    this much), else None: minimal ε is then not compared."""
    fresh: list[str] = field(default_factory=list, compare=False)
    """The images this run attacked that the baseline does not have (held or not), by name."""

    def failed(self, strict: bool) -> bool:
        """Regressions fail; with ``strict`` the baseline must match exactly (changed, missing and
        unchecked fail)."""
        return bool(self.regressions) or (strict and bool(self.changed or self.missing or self.unchecked))

    def counts(self) -> str:
        parts = [
            f"{len(self.regressions)} regression(s)",
            f"{len(self.improvements)} improvement(s)",
            f"{len(self.known)} known flip(s)",
        ]
        for items, what in ((self.changed, "changed flip(s)"), (self.new, "new image(s)"), (self.missing, "missing")):
            if items:
                parts.append(f"{len(items)} {what}")
        if self.unchecked:
            parts.append("not checked (fails with --adv-baseline-strict): " + "; ".join(self.unchecked))
        return ", ".join(parts)

    def lines(self) -> list[str]:
        """The comparison as message lines; what names images (``missing`` holds their real names) is shown
        escaped."""
        if self.incomparable:
            return [shown(self.incomparable)]
        weights = "model weights differ from the baseline's" if self.model_changed else "same model weights"
        out = [f"against the baseline: {self.counts()}, {self.unchanged} unchanged ({weights})"]
        for title, items in (
            ("regressions (baseline -> now)", self.regressions),
            ("changed flips (fail with --adv-baseline-strict)", self.changed),
            ("baseline images not attacked now (fail with --adv-baseline-strict)", self.missing),
            ("new images, not in the baseline", self.new),
            ("improvements (baseline -> now)", self.improvements),
            ("known flips, already in the baseline", self.known),
        ):
            if items:
                out.append(f"{title}:")
                out += [f"  {shown(item)}" for item in items]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "incomparable": self.incomparable,
            "regressions": self.regressions,
            "changed": self.changed,
            "missing": self.missing,
            "new": self.new,
            "improvements": self.improvements,
            "known": self.known,
            "unchanged": self.unchanged,
            "model_changed": self.model_changed,
            "unchecked": self.unchecked,
            "outcomes": [outcome.to_json() for outcome in self.outcomes],
            "epsilon_top": self.epsilon_top,
            "fresh": self.fresh,
        }

    @classmethod
    def from_dict(cls, data: Any, where: str = "comparison") -> Comparison:
        """Rebuild a comparison from :meth:`to_dict`, every field checked (``ValueError`` names it)."""
        return build(cls, data, where)

    def paired(self) -> list[Outcome]:
        """The images both runs attacked."""
        return [outcome for outcome in self.outcomes if outcome.now is not None]

    @classmethod
    def join(cls, parts: Sequence[Comparison]) -> Comparison:
        """The comparisons of a test's shards as one (each shard reports the same missing images)."""

        def every(name: str) -> list[str]:
            return [item for part in parts for item in getattr(part, name)]

        return cls(
            incomparable=next((part.incomparable for part in parts if part.incomparable), None),
            regressions=every("regressions"),
            changed=every("changed"),
            missing=sorted(set(every("missing"))),
            new=every("new"),
            improvements=every("improvements"),
            known=every("known"),
            unchanged=sum(part.unchanged for part in parts),
            model_changed=any(part.model_changed for part in parts),
            unchecked=sorted(set(every("unchecked"))),
            # an image missing from the run is missing from every shard's comparison: once
            outcomes=_joined_outcomes(parts),
            fresh=every("fresh"),
            epsilon_top=next((part.epsilon_top for part in parts if part.epsilon_top is not None), None),
        )


def _joined_outcomes(parts: Sequence[Comparison]) -> list[Outcome]:
    """Each shard's attacked images, then the missing ones once (every shard lists them)."""
    outcomes = [outcome for part in parts for outcome in part.outcomes]
    missing = {outcome.name: outcome for outcome in outcomes if outcome.now is None}
    return [outcome for outcome in outcomes if outcome.now is not None] + list(missing.values())


def _eps(value: float | None) -> str:
    return "none found" if value is None else f"{value:.4g}"


def _judge_image(name: str, before: BaselineImage | None, now: BaselineImage, result: Comparison,
                 tolerance: tuple[float, float], top: float | None) -> None:  # fmt: skip
    """File one image under the comparison's headings (names shown escaped: the lines are printed as they are)."""
    name = shown(name)
    flips_to = f"{quoted(now.clean_label_name)} -> {quoted(now.adv_label_name)}"
    if before is None:
        if now.misclassified:
            result.regressions.append(f"{name}: new image, not in the baseline: misclassified before any attack")
        elif now.flipped:
            result.regressions.append(f"{name}: new image, not in the baseline: flips {flips_to}")
        else:
            result.new.append(f"{name}: new image, not in the baseline: {quoted(now.clean_label_name)} holds")
        return
    eps_change = f"{_eps(before.minimal_epsilon)} -> {_eps(now.minimal_epsilon)}"
    span = f"(minimal eps {eps_change})"
    absolute, relative = tolerance
    drop = _drop(before.minimal_epsilon, now.minimal_epsilon, top)
    if now.clean_label != before.clean_label:
        result.regressions.append(
            f"{name}: clean prediction changed: {quoted(before.clean_label_name)} -> {quoted(now.clean_label_name)}"
        )
    elif now.flipped and not before.flipped:
        result.regressions.append(f"{name}: held -> flips to {quoted(now.adv_label_name)} {span}")
    elif (
        drop is not None and _beyond(drop, absolute) and _beyond(drop, relative * (before.minimal_epsilon or top or 0))
    ):
        limit = f"{absolute:g}" + (f", {relative:.0%}" if relative else "")
        result.regressions.append(f"{name}: minimal eps dropped {eps_change} (more than the tolerance {limit})")
    elif before.flipped and not now.flipped:
        result.improvements.append(f"{name}: flipped to {quoted(before.adv_label_name)} -> holds")
    elif drop is not None and _beyond(-drop, absolute):
        result.improvements.append(f"{name}: minimal eps rose {eps_change}")
    elif now.flipped and not now.misclassified and now.adv_label != before.adv_label:
        result.changed.append(
            f"{name}: known flip changed class: {quoted(before.clean_label_name)} -> {quoted(before.adv_label_name)} "
            f"in the baseline, {flips_to} now {span}"
        )
    elif now.misclassified:
        result.known.append(
            f"{name}: misclassified before any attack ({quoted(now.clean_label_name)}), in the baseline too"
        )
    elif now.flipped:
        result.known.append(f"{name}: {flips_to}, in the baseline too {span}")
    else:
        result.unchanged += 1


def compare(
    baseline: BaselineEntry,
    current: BaselineEntry,
    tolerance: tuple[float, float],
    *,
    image_names: Sequence[str] | None = None,
) -> Comparison:
    """Compare a test's current baseline entry with the stored one (see the module docstring).

    ``image_names``: every image of the test, when ``current`` covers only some of them (one shard);
    a baseline image counts as missing only if its image is not among them.
    """
    differing = settings_differences(baseline.settings, current.settings)
    if differing:
        return Comparison(
            incomparable="cannot compare: the settings differ from the baseline's ("
            + shown("; ".join(differing))  # values read from the baseline file
            + "), so the verdict is absolute. Use the baseline's settings, re-record with --adv-baseline-update, "
            + "or keep baselines of their own for these settings (--adv-baseline-dir)"
        )
    result = Comparison(model_changed=baseline.model_fingerprint != current.model_fingerprint)
    if baseline.searched_minimal_epsilon and not current.searched_minimal_epsilon:
        result.unchecked.append(  # a drop in robustness that flips nothing at this eps would go unseen
            "minimal eps (in the baseline, but this run did not search for it: --adv-minimal-epsilon is off)"
        )
    old_images, new_images = baseline.images, current.images
    top = (current.settings.get("minimal_epsilon") or {}).get("max")
    for name, now in sorted(new_images.items()):
        _judge_image(name, old_images.get(name), now, result, tolerance, top)
    present = {image_of(name) for name in new_images} | set(image_names or ())
    result.missing = sorted(name for name in old_images if name not in new_images and image_of(name) not in present)
    result.outcomes = [
        Outcome(name, state_of(before), before.minimal_epsilon, state_of(now), now.minimal_epsilon)
        for name, now in sorted(new_images.items())
        if (before := old_images.get(name)) is not None
    ] + [Outcome(name, state_of(old_images[name]), old_images[name].minimal_epsilon) for name in result.missing]
    result.fresh = sorted(name for name in new_images if name not in old_images)
    both_searched = baseline.searched_minimal_epsilon and current.searched_minimal_epsilon
    result.epsilon_top = float(top) if both_searched and top is not None else None
    return result


FLOAT_NOISE = 1e-9
"""Minimal ε values are decimals (rounded to the search precision, stored to 10 digits): a change that
exceeds the tolerance by less than this is the binary noise of subtracting them (0.0105 - 0.01 is
0.000500000000000001), not a change beyond it."""


def _beyond(change: float, limit: float) -> bool:
    """``change`` is more than ``limit``, by more than float noise."""
    return change - limit > FLOAT_NOISE


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


@dataclass
class BaselineStatus:
    """Where a test stands against its baseline: ``recorded`` (``entry`` is to be written),
    ``missing`` (none stored in ``file``) or ``compared`` (``comparison`` says how).

    ``image_names``: every image of the test (all shards), so that an update of one shard can drop the
    recorded images that no longer exist and keep the other shards' ones.
    """

    status: Literal["recorded", "missing", "compared"]
    file: str
    module: str = ""
    test: str = ""
    comparison: Comparison | None = None
    entry: BaselineEntry | None = None
    image_names: list[str] = field(default_factory=list)
    withheld: str = ""
    """Why a recorded entry is not written (a shard of the test did not report, or twice), else empty."""

    def text(self) -> str:
        """One phrase for the summary and the HTML report."""
        if self.status == "recorded":
            return f"left as it was: {self.withheld}" if self.withheld else "recorded"
        if self.status == "missing" or self.comparison is None:
            return f"none stored (in {self.file})"
        if self.comparison.incomparable:
            return "cannot compare: settings differ"
        return self.comparison.counts()

    def to_json(self) -> dict[str, Any]:
        """The status in the JSON report (the recorded entry itself goes to the baseline file)."""
        data: dict[str, Any] = {"status": self.status, "file": self.file}
        if self.comparison is not None:
            data.update(self.comparison.to_dict())
        return data

    @classmethod
    def from_wire(cls, data: Any, where: str = "baseline") -> BaselineStatus:
        """Rebuild a status from its plain data, every field checked (``ValueError`` names the first that
        is wrong); a recorded entry is read as a baseline file's entry is."""
        if not isinstance(data, dict):
            raise ValueError(f"{where} must be an object, not {type(data).__name__} {data!r}"[:160])
        values = fields(cls, {key: value for key, value in data.items() if key != "entry"}, where)
        entry = data.get("entry")
        return cls(**values, entry=None if entry is None else BaselineEntry.from_json(entry, f"{where}.entry"))

    @staticmethod
    def merge(parts: Sequence[BaselineStatus]) -> BaselineStatus:
        """The shards of one test: their comparisons joined, or their recorded images joined."""
        first = parts[0]
        if any(part.status != first.status for part in parts):
            return first
        if first.status == "recorded" and first.entry is not None:
            images = {name: image for part in parts if part.entry for name, image in part.entry.images.items()}
            entry = first.entry.with_images(images)
            return BaselineStatus("recorded", first.file, first.module, first.test, None, entry, first.image_names)
        comparisons = [part.comparison for part in parts if part.comparison is not None]
        if first.status != "compared" or not comparisons:
            return first
        return BaselineStatus("compared", first.file, first.module, first.test, Comparison.join(comparisons))
