"""The baseline rule, image by image, against ``core.baseline`` directly: one case per row of its table
(docs/guides/baselines.md), the tolerance's boundaries, and the settings that make two runs
incomparable. No model and no pytest plugin: entries are built from the plain dicts the baseline files hold.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_advrobust.core.baselines.rule import (
    COMPARED_SETTINGS,
    BaselineEntry,
    BaselineStatus,
    Comparison,
    baseline_entry,
    compare,
)
from pytest_advrobust.core.results.report import ImageRecord, RunReport, RunSettings

LABELS = {"cat": 0, "dog": 1, "fox": 2}
TOP = 0.0625
"""The minimal-ε search range's top (``--adv-epsilon-max``): 'none found' counts as this."""
E = 2**-5
TOL = 2**-7
TINY = 2**-20
"""Binary-exact ε values, so that "exactly at the tolerance" is exact in floating point."""
DEFAULT_TOLERANCE = (0.0005, 0.0)
SETTINGS: dict[str, Any] = {
    "attack": "bim",
    "norm": "linf",
    "loss": "ce",
    "epsilon": 0.007,
    "steps": 10,
    "step_size": 0.001,
    "targets": "untargeted",
    "seed": 0,
    "verdict": "rounded",
    "mean": [0.485, 0.456, 0.406],
    "std": [0.229, 0.224, 0.225],
    "minimal_epsilon": {"max": TOP, "precision": 0.0002},
    "profile": "standard",
    "eot": 1,
    "queries": None,
}
ImageRow = dict[str, Any]
"""One image's row in a baseline entry (``entry["images"][name]``)."""
PER_IMAGE = ("regressions", "changed", "new", "improvements", "known")
"""The headings an image of the current run can land under (besides ``unchanged``, a count)."""


def row(
    clean: str = "cat", adv: str | None = None, *, minimal: float | None = E, misclassified: bool = False
) -> ImageRow:
    """One image as a baseline entry stores it: predicted ``clean``, ``adv`` after the attack (a flip
    if it differs; None: held)."""
    adv = clean if adv is None else adv
    return {
        "clean_label": LABELS[clean],
        "clean_label_name": clean,
        "misclassified": misclassified,
        "flipped": misclassified or adv != clean,
        "adv_label": LABELS[adv],
        "adv_label_name": adv,
        "minimal_epsilon": None if misclassified else minimal,
    }


def stored_entry(
    images: dict[str, ImageRow], fingerprint: str = "sha256:" + "0" * 64, **settings: Any
) -> dict[str, Any]:
    """A baseline entry as its file holds it."""
    return {"settings": {**SETTINGS, **settings}, "model_fingerprint": fingerprint, "versions": {}, "images": images}


def entry(images: dict[str, ImageRow], fingerprint: str = "sha256:" + "0" * 64, **settings: Any) -> BaselineEntry:
    return BaselineEntry.from_json(stored_entry(images, fingerprint, **settings))


def record(name: str, clean: str = "cat", adv: str | None = None, *, label: str | None = None,
           minimal: float | None = E) -> ImageRecord:  # fmt: skip
    """An ImageRecord as an attack run returns it (true label ``label``, default: ``clean``)."""
    label = clean if label is None else label
    adv = clean if adv is None else adv
    return ImageRecord(
        name=name, label=LABELS[label], label_name=label, label_source="folder",
        clean_label=LABELS[clean], clean_label_name=clean, clean_prob=0.9, misclassified=clean != label,
        target=None, target_name=None, adv_label=LABELS[adv], adv_label_name=adv, adv_prob=0.8,
        adv_label_8bit=LABELS[adv], adv_label_8bit_name=adv, adv_prob_8bit=0.8,
        flipped_float=adv != label, flipped_8bit=adv != label, target_reached_float=None, target_reached_8bit=None,
        linf=0.007, linf_8bit=0.007, first_flip_step=None, steps_run=10, steps=10, epsilon=0.007,
        verdict="rounded", minimal_epsilon=None if clean != label else minimal,
    )  # fmt: skip


def run_of(records: list[ImageRecord], **settings: Any) -> RunReport:
    values = {**SETTINGS, "mean": tuple(SETTINGS["mean"]), "std": tuple(SETTINGS["std"]), **settings}
    return RunReport(RunSettings(**values, early_stop=True, device="cpu", describe="bim"), records)


def headings(comparison: Comparison) -> dict[str, int]:
    """How many items each per-image heading holds, and ``unchanged``: where the images went."""
    return {**{name: len(getattr(comparison, name)) for name in PER_IMAGE}, "unchanged": comparison.unchanged}


def test_the_row_helper_has_the_shape_baseline_entry_stores() -> None:
    """The dicts these tests build are the real format: what ``baseline_entry`` makes of records."""
    made = baseline_entry(run_of([record("a.png", "cat", "dog")]), "sha256:" + "0" * 64, {"python": "3"}).to_json()
    assert made["images"] == {"a.png": row("cat", "dog")}
    assert made["settings"] == SETTINGS
    assert list(made["settings"]) == list(COMPARED_SETTINGS)
    assert (made["model_fingerprint"], made["versions"]) == ("sha256:" + "0" * 64, {"python": "3"})


# --- the rule's table (docs/guides/baselines.md), one case per row -------------------------------------


@dataclass(frozen=True)
class Row:
    """One row of the rule's table: the image in the baseline (None: not there) and now (None: not
    attacked), where it lands, whether the test fails without and with ``strict``, and what it says."""

    before: ImageRow | None
    now: ImageRow | None
    lands: str
    fails: bool
    fails_strict: bool
    says: str = ""
    now_settings: dict[str, Any] = field(default_factory=dict)


ROWS = {
    "01 held in the baseline, holds now": Row(row("cat"), row("cat"), "unchanged", False, False),
    "02 known flip, to the same class": Row(
        row("cat", "dog"), row("cat", "dog"), "known", False, False, "a.png: 'cat' -> 'dog', in the baseline too"
    ),
    "02b misclassified in the baseline and now": Row(
        row("dog", misclassified=True),
        row("dog", misclassified=True),
        "known",
        False,
        False,
        "a.png: misclassified before any attack ('dog'), in the baseline too",
    ),
    "02c misclassified in both, attacked to another class: still known": Row(
        row("dog", "fox", misclassified=True),
        row("dog", "cat", misclassified=True),
        "known",
        False,
        False,
        "a.png: misclassified before any attack ('dog'), in the baseline too",
    ),
    "03 known flip, now to another class: changed": Row(
        row("cat", "dog"),
        row("cat", "fox"),
        "changed",
        False,
        True,
        "a.png: known flip changed class: 'cat' -> 'dog' in the baseline, 'cat' -> 'fox' now",
    ),
    "04 held in the baseline, flips now": Row(
        row("cat", minimal=E),
        row("cat", "fox", minimal=0.005),
        "regressions",
        True,
        True,
        "a.png: held -> flips to 'fox'",
    ),
    "05 minimal eps dropped beyond the tolerance": Row(
        row("cat", minimal=E),
        row("cat", minimal=0.015),
        "regressions",
        True,
        True,
        "a.png: minimal eps dropped 0.03125 -> 0.015 (more than the tolerance 0.0005)",
    ),
    "06 clean label changed": Row(
        row("cat"),
        row("dog", misclassified=True),
        "regressions",
        True,
        True,
        "a.png: clean prediction changed: 'cat' -> 'dog'",
    ),
    "07 flipped in the baseline, holds now: improvement": Row(
        row("cat", "dog"), row("cat"), "improvements", False, False, "a.png: flipped to 'dog' -> holds"
    ),
    "07b minimal eps rose: improvement": Row(
        row("cat", minimal=0.015),
        row("cat", minimal=E),
        "improvements",
        False,
        False,
        "a.png: minimal eps rose 0.015 -> 0.03125",
    ),
    "08 new image that holds: named, passes": Row(
        None, row("cat"), "new", False, False, "a.png: new image, not in the baseline: 'cat' holds"
    ),
    "08b new image that flips: fails": Row(
        None,
        row("cat", "dog"),
        "regressions",
        True,
        True,
        "a.png: new image, not in the baseline: flips 'cat' -> 'dog'",
    ),
    "08c new image, misclassified: fails": Row(
        None,
        row("dog", misclassified=True),
        "regressions",
        True,
        True,
        "a.png: new image, not in the baseline: misclassified before any attack",
    ),
    "09 in the baseline, not attacked now: missing": Row(row("cat"), None, "missing", False, True, "a.png"),
    "10 baseline has minimal eps, this run did not search: not checked": Row(
        row("cat", minimal=E),
        row("cat", minimal=None),
        "unchecked",
        False,
        True,
        "minimal eps (in the baseline, but this run did not search for it: --adv-minimal-epsilon is off)",
        {"minimal_epsilon": None},
    ),
}


@pytest.mark.parametrize("case", ROWS.values(), ids=ROWS.keys())
def test_each_row_of_the_rule_table(case: Row) -> None:
    before = entry({} if case.before is None else {"a.png": case.before})
    now = entry({} if case.now is None else {"a.png": case.now}, **case.now_settings)

    comparison = compare(before, now, DEFAULT_TOLERANCE)

    assert comparison.incomparable is None
    assert (comparison.failed(strict=False), comparison.failed(strict=True)) == (case.fails, case.fails_strict)
    # the image lands under exactly one heading
    expected = dict.fromkeys([*PER_IMAGE, "unchanged"], 0)
    if case.lands in expected:
        expected[case.lands] = 1
    elif case.lands == "unchecked":
        expected["unchanged"] = 1
    assert headings(comparison) == expected
    assert comparison.missing == (["a.png"] if case.lands == "missing" else [])
    assert len(comparison.unchecked) == (case.lands == "unchecked")
    if case.says:
        items = getattr(comparison, case.lands)
        assert [case.says in item for item in items] == [True]
        assert any(case.says in line for line in comparison.lines())


def test_a_regression_is_named_in_the_summary_line_with_the_counts() -> None:
    before = entry({"a.png": row("cat"), "b.png": row("cat", "dog"), "c.png": row("cat", "dog"), "d.png": row("fox")})
    now = entry({"a.png": row("cat", "dog", minimal=0.005), "b.png": row("cat", "dog"), "c.png": row("cat", "fox")})

    lines = compare(before, now, DEFAULT_TOLERANCE).lines()

    assert lines[0] == (
        "against the baseline: 1 regression(s), 0 improvement(s), 1 known flip(s), 1 changed flip(s), "
        "1 missing, 0 unchanged (same model weights)"
    )
    assert lines[1:3] == [
        "regressions (baseline -> now):",
        "  a.png: held -> flips to 'dog' (minimal eps 0.03125 -> 0.005)",
    ]
    assert "baseline images not attacked now (fail with --adv-baseline-strict):" in lines
    assert "  d.png" in lines


def test_the_first_rule_that_applies_names_the_image_once() -> None:
    """A clean label change outranks a flip, and a flip outranks the ε drop that comes with it."""
    before = entry({"a.png": row("cat", minimal=E), "b.png": row("cat", minimal=E)})
    now = entry({"a.png": row("dog", "fox", minimal=0.001), "b.png": row("cat", "fox", minimal=0.001)})

    comparison = compare(before, now, DEFAULT_TOLERANCE)

    assert [item.split(":")[:2] for item in comparison.regressions] == [
        ["a.png", " clean prediction changed"],
        ["b.png", " held -> flips to 'fox' (minimal eps 0.03125 -> 0.001)"],
    ]


def test_changed_model_weights_are_reported_but_do_not_fail_by_themselves() -> None:
    comparison = compare(
        entry({"a.png": row()}, "sha256:" + "0" * 64), entry({"a.png": row()}, "sha256:" + "1" * 64), DEFAULT_TOLERANCE
    )

    assert comparison.model_changed
    assert not comparison.failed(strict=True)
    assert comparison.lines()[0].endswith("1 unchanged (model weights differ from the baseline's)")


# --- missing images: shards and image-target pairs ---------------------------------------------------


def test_an_image_another_shard_attacked_is_not_missing() -> None:
    before = entry({"a.png": row(), "b.png": row(), "c.png": row()})
    shard = entry({"a.png": row()})

    comparison = compare(before, shard, DEFAULT_TOLERANCE, image_names=["a.png", "b.png"])

    assert comparison.missing == ["c.png"]
    assert comparison.failed(strict=True)


def test_a_pair_of_an_image_that_was_attacked_is_not_missing() -> None:
    """``cat.png -> dog`` names an image–target pair: it counts as missing only if ``cat.png`` is."""
    before = entry({"cat.png -> dog": row(), "cat.png -> fox": row(), "fox.png -> dog": row("fox")})
    now = entry({"cat.png -> dog": row()})

    assert compare(before, now, DEFAULT_TOLERANCE).missing == ["fox.png -> dog"]


# --- row 11: settings that change results differ -> cannot compare -----------------------------------

DIFFERENT = {
    "attack": "fgsm",
    "epsilon": 0.008,
    "steps": 20,
    "step_size": 0.002,
    "targets": "top-3",
    "verdict": "float",
    "mean": [0.5, 0.5, 0.5],
    "std": [0.5, 0.5, 0.5],
    "loss": "margin",
    "minimal_epsilon": {"max": 0.03125, "precision": 0.0002},
}


@pytest.mark.parametrize(("key", "now_value"), DIFFERENT.items(), ids=DIFFERENT.keys())
def test_results_with_different_settings_cannot_be_compared(key: str, now_value: Any) -> None:
    # a regression, a missing image and a new flip that would each fail a comparable run
    before = entry({"a.png": row(), "b.png": row()})
    now = entry({"a.png": row("cat", "dog"), "c.png": row("cat", "dog")}, **{key: now_value})

    comparison = compare(before, now, DEFAULT_TOLERANCE)

    assert comparison.incomparable is not None
    assert comparison.incomparable.startswith("cannot compare: the settings differ from the baseline's (")
    assert f"{key} {SETTINGS[key]!r} (baseline) vs {now_value!r} (now)" in comparison.incomparable
    assert "--adv-baseline-update" in comparison.incomparable
    # judged absolutely (by the caller): nothing is judged against the baseline
    assert comparison == Comparison(incomparable=comparison.incomparable)
    assert not comparison.failed(strict=False)
    assert comparison.lines() == [comparison.incomparable]
    assert BaselineStatus("compared", "b.json", comparison=comparison).text() == "cannot compare: settings differ"


def test_every_difference_is_named() -> None:
    comparison = compare(entry({}), entry({}, epsilon=0.008, steps=20), DEFAULT_TOLERANCE)

    assert comparison.incomparable is not None
    assert "epsilon 0.007 (baseline) vs 0.008 (now); steps 10 (baseline) vs 20 (now)" in comparison.incomparable


@pytest.mark.parametrize("attack", ["pgd", "apgd"])
def test_the_seed_is_compared_for_attacks_with_a_random_start(attack: str) -> None:
    comparison = compare(entry({}, attack=attack, seed=0), entry({}, attack=attack, seed=1), DEFAULT_TOLERANCE)

    assert comparison.incomparable is not None
    assert "seed 0 (baseline) vs 1 (now)" in comparison.incomparable


@pytest.mark.parametrize(
    ("stored", "now"),
    [
        pytest.param({"seed": 0}, {"seed": 1}, id="the seed of an attack without a random start"),
        pytest.param({"epsilon": 0.007}, {"epsilon": 0.007 * (1 + 1e-12)}, id="float noise in a setting"),
        pytest.param({}, {"minimal_epsilon": None}, id="the search range when only the baseline searched"),
        pytest.param({"minimal_epsilon": None}, {}, id="the search range when only this run searches"),
    ],
)
def test_what_does_not_make_results_incomparable(stored: dict[str, Any], now: dict[str, Any]) -> None:
    comparison = compare(entry({"a.png": row()}, **stored), entry({"a.png": row()}, **now), DEFAULT_TOLERANCE)

    assert comparison.incomparable is None
    assert comparison.unchanged == 1


def test_a_baseline_without_a_loss_was_recorded_with_cross_entropy() -> None:
    stored = stored_entry({"a.png": row()})
    del stored["settings"]["loss"]
    old = BaselineEntry.from_json(stored)

    assert compare(old, entry({"a.png": row()}, loss="ce"), DEFAULT_TOLERANCE).incomparable is None
    assert "loss 'ce' (baseline) vs 'margin' (now)" in str(compare(old, entry({}, loss="margin"), (0, 0)).incomparable)


# --- row 12: no baseline stored -----------------------------------------------------------------------


def test_no_baseline_stored_is_a_status_that_names_the_file() -> None:
    """The verdict itself (absolute; fails with ``strict``) is the plugin's: the core has nothing to
    compare, only a status to report."""
    status = BaselineStatus("missing", "advrobust-baselines/test_model.py.json", "test_model.py", "test_x")

    assert status.text() == "none stored (in advrobust-baselines/test_model.py.json)"
    assert status.to_json() == {"status": "missing", "file": "advrobust-baselines/test_model.py.json"}


# --- the tolerance: exactly at it passes, just beyond it fails -----------------------------------------


@pytest.mark.parametrize(
    ("tolerance", "before", "now", "regressed"),
    [
        pytest.param((TOL, 0.0), E, E - TOL, False, id="absolute: exactly at"),
        pytest.param((TOL, 0.0), E, E - TOL - TINY, True, id="absolute: just beyond"),
        pytest.param((0.0, 0.25), E, E - TOL, False, id="relative: exactly at"),
        pytest.param((0.0, 0.25), E, E - TOL - TINY, True, id="relative: just beyond"),
        pytest.param((TOL, 0.5), E, E - 1.5 * TOL, False, id="both: beyond the absolute only"),
        pytest.param((TOL, 0.5), TOL, TOL - 0.75 * TOL, False, id="both: beyond the relative only"),
        pytest.param((TOL, 0.5), E, E - 2 * TOL - TINY, True, id="both: beyond both"),
        pytest.param((0.0, 0.0), E, E, False, id="none: no drop"),
        pytest.param((0.0, 0.0), E, E - TINY, True, id="none: any drop"),
        pytest.param((TOL, 0.0), None, TOP - TOL, False, id="none found before counts as the top: at"),
        pytest.param((TOL, 0.0), None, TOP - TOL - TINY, True, id="none found before counts as the top: beyond"),
        pytest.param((0.0, 0.25), None, TOP * 0.75, False, id="relative to the top when none found before: at"),
        pytest.param((0.0, 0.25), None, TOP * 0.75 - TINY, True, id="relative to the top when none found: beyond"),
        pytest.param(DEFAULT_TOLERANCE, 0.0105, 0.0101, False, id="default: a drop of 0.0004"),
        pytest.param(DEFAULT_TOLERANCE, 0.0105, 0.0099, True, id="default: a drop of 0.0006"),
    ],
)
def test_a_minimal_eps_drop_regresses_only_beyond_the_tolerance(
    tolerance: tuple[float, float], before: float | None, now: float, regressed: bool
) -> None:
    comparison = compare(entry({"a.png": row(minimal=before)}), entry({"a.png": row(minimal=now)}), tolerance)

    assert comparison.failed(strict=False) == regressed
    assert headings(comparison) == {**dict.fromkeys(PER_IMAGE, 0), "regressions": regressed, "unchanged": not regressed}
    if regressed:
        assert comparison.regressions[0].startswith(
            f"a.png: minimal eps dropped {'none found' if before is None else ''}"
        )
        assert "(more than the tolerance " in comparison.regressions[0]


@pytest.mark.parametrize(
    ("tolerance", "shown"),
    [((0.0005, 0.0), "0.0005"), ((0.0, 0.1), "0, 10%"), ((0.0005, 0.25), "0.0005, 25%")],
)
def test_the_message_states_the_drop_and_the_tolerance(tolerance: tuple[float, float], shown: str) -> None:
    comparison = compare(entry({"a.png": row(minimal=E)}), entry({"a.png": row(minimal=0.005)}), tolerance)

    assert comparison.regressions == [f"a.png: minimal eps dropped 0.03125 -> 0.005 (more than the tolerance {shown})"]


def test_a_drop_of_exactly_the_default_tolerance_in_stored_decimals_passes() -> None:
    comparison = compare(entry({"a.png": row(minimal=0.0105)}), entry({"a.png": row(minimal=0.01)}), DEFAULT_TOLERANCE)

    assert not comparison.failed(strict=False)


@pytest.mark.parametrize(
    ("before", "now", "lands"),
    [
        pytest.param(E, E + TOL, "unchanged", id="a rise of exactly the absolute tolerance"),
        pytest.param(E, E + TOL + TINY, "improvements", id="a rise beyond it"),
        pytest.param(E, None, "improvements", id="found before, none found up to the top now"),
        pytest.param(None, None, "unchanged", id="none found before or now"),
    ],
)
def test_a_minimal_eps_rise_is_an_improvement_beyond_the_tolerance(before: float | None, now: float | None,
                                                                   lands: str) -> None:  # fmt: skip
    comparison = compare(entry({"a.png": row(minimal=before)}), entry({"a.png": row(minimal=now)}), (TOL, 0.0))

    assert headings(comparison) == {**dict.fromkeys(PER_IMAGE, 0), "unchanged": 0, lands: 1}
    assert not comparison.failed(strict=True)


def test_without_a_search_now_a_drop_goes_unseen_and_is_reported_as_not_checked() -> None:
    """Row 10's reason: with no search this run, the ε values cannot be compared at all."""
    before = entry({"a.png": row(minimal=E)})
    now = entry({"a.png": row(minimal=None)}, minimal_epsilon=None)

    comparison = compare(before, now, (0.0, 0.0))

    assert (comparison.regressions, comparison.unchanged) == ([], 1)
    assert "not checked (fails with --adv-baseline-strict)" in comparison.counts()


# --- invariants --------------------------------------------------------------------------------------


def test_a_run_compared_with_its_own_baseline_passes_with_no_regression() -> None:
    records = [
        record("held.png"),
        record("flips.png", "cat", "dog"),
        record("misclassified.png", "dog", "fox", label="cat"),
        record("none-found.png", minimal=None),
    ]
    current = baseline_entry(run_of(records, epsilon=0.1 + 0.2), "sha256:" + "0" * 64, {"python": "3"})
    stored = BaselineEntry.from_json(json.loads(json.dumps(current.to_json())))  # as the baseline file holds it

    comparison = compare(stored, current, (0.0, 0.0), image_names=[r.name for r in records])

    assert stored.settings["epsilon"] == 0.3  # stored without binary noise
    assert comparison == Comparison(
        known=[
            "flips.png: 'cat' -> 'dog', in the baseline too (minimal eps 0.03125 -> 0.03125)",
            "misclassified.png: misclassified before any attack ('dog'), in the baseline too",
        ],
        unchanged=2,
    )
    assert not comparison.failed(strict=True)


rows = st.builds(
    row,
    clean=st.sampled_from(sorted(LABELS)),
    adv=st.none() | st.sampled_from(sorted(LABELS)),
    minimal=st.none() | st.floats(0.0002, TOP),
    misclassified=st.booleans(),
)
images = st.dictionaries(st.sampled_from([f"{n}.png" for n in "abcdef"]), rows, max_size=6)
tolerances = st.tuples(st.sampled_from([0.0, TOL, 0.0005]), st.sampled_from([0.0, 0.1, 0.25]))


@given(images, tolerances)
def test_comparing_entries_with_themselves_finds_nothing(
    stored: dict[str, ImageRow], tolerance: tuple[float, float]
) -> None:
    comparison = compare(entry(stored), entry(stored), tolerance)

    assert comparison.regressions == comparison.changed == comparison.improvements == comparison.new == []
    assert comparison.missing == comparison.unchecked == []
    assert len(comparison.known) + comparison.unchanged == len(stored)
    assert not comparison.failed(strict=True)


@given(images, images, tolerances)
def test_every_image_lands_under_one_heading_and_only_regressions_fail(
    stored: dict[str, ImageRow], current: dict[str, ImageRow], tolerance: tuple[float, float]
) -> None:
    comparison = compare(entry(stored), entry(current), tolerance)

    named = [item.split(":")[0] for heading in PER_IMAGE for item in getattr(comparison, heading)]
    assert len(named) == len(set(named)) and set(named) <= set(current)
    assert sum(headings(comparison).values()) == len(current)  # the others are counted as unchanged
    assert comparison.missing == sorted(set(stored) - set(current))
    assert [item.split(":")[0] for item in comparison.new] == sorted(
        n for n in set(current) - set(stored) if not current[n]["flipped"] and not current[n]["misclassified"]
    )
    assert comparison.failed(strict=False) == bool(comparison.regressions)
    assert comparison.failed(strict=True) == bool(comparison.regressions or comparison.changed or comparison.missing)
