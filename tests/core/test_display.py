"""What a user controls (image, class and file names, baseline entries) is shown escaped: it starts no line
and no GitHub Actions workflow command, in image lines, baseline comparisons and the terminal summary,
while the data (records, ``missing``, the JSON) keeps the real names."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_advrobust.core.baselines.rule import BaselineEntry, BaselineStatus, Comparison, compare
from pytest_advrobust.core.display import quoted, shown
from pytest_advrobust.core.results.report import ImageRecord, RunReport, RunSettings, TestReport
from pytest_advrobust.core.results.summary import known_images, summary_lines

INJECTED = "x\n::error title=INJECTED::boom\nz.png"
SHOWN_INJECTED = r"x\n::error title=INJECTED::boom\nz.png"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (INJECTED, SHOWN_INJECTED),
        ("a\r\nb", r"a\r\nb"),
        ("tab\there", r"tab\there"),
        ("\x1b[31mred", r"\x1b[31mred"),
        ("line\u2028sep\x85next\x0bv", r"line\u2028sep\x85next\x0bv"),
        ("bad\udcffbyte.png", r"bad\udcffbyte.png"),  # a lone surrogate: an undecodable file name
        ("no\u00a0break", r"no\xa0break"),  # only plain spaces are left, so a leading run is all spaces
        ("rtl\u202eoverride", r"rtl\u202eoverride"),
    ],
)
def test_what_does_not_print_is_escaped_as_repr_escapes_it(text: str, expected: str) -> None:
    assert shown(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("##[error]legacy.png", r"#\x23[error]legacy.png"),
        ("a ##[stop-commands]t", r"a #\x23[stop-commands]t"),
        ("###[x", r"##\x23[x"),
        ("::error::lead.png", r"\x3a:error::lead.png"),
        ("   ::warning::x", r"   \x3a:warning::x"),
    ],
)
def test_workflow_command_prefixes_are_broken(text: str, expected: str) -> None:
    assert shown(text) == expected


@pytest.mark.parametrize(
    "text", ["chelsea.png", "cats/chelsea 2.png", "é😀 ünïcode.png", r"back\slash.png", "a ::b", "cat: dog.png", ""]
)
def test_ordinary_names_are_shown_as_they_are(text: str) -> None:
    assert shown(text) == text


@given(st.text())
def test_shown_text_is_one_safe_line_and_shown_again_unchanged(text: str) -> None:
    out = shown(text)
    assert out.isprintable()
    assert len(out.splitlines()) <= 1
    assert "##[" not in out
    assert not out.lstrip().startswith("::")
    assert shown(out) == out


def test_quoted_is_repr_with_the_legacy_prefix_broken() -> None:
    assert quoted("Egyptian cat") == "'Egyptian cat'"
    assert quoted("potter's wheel") == '"potter\'s wheel"'
    assert quoted(None) == "None"
    assert quoted("c\n::error::x") == r"'c\n::error::x'"
    assert quoted("##[error]c") == r"'#\x23[error]c'"


# --- where names are shown --------------------------------------------------------------------------------

LABELS = {"cat": 0, "dog": 1, "c\n::error::evil": 2}
EVIL_CLASS = "c\n::error::evil"


def record(name: str, clean: str = "cat", adv: str = "dog", **changes: Any) -> ImageRecord:
    """A record of ``name``: true label and clean prediction ``clean``, ``adv`` after the attack."""
    values: dict[str, Any] = dict(
        name=name, label=LABELS[clean], label_name=clean, label_source="labels file l.csv",
        clean_label=LABELS[clean], clean_label_name=clean, clean_prob=0.9, misclassified=False,
        target=None, target_name=None, adv_label=LABELS[adv], adv_label_name=adv, adv_prob=0.8,
        adv_label_8bit=LABELS[adv], adv_label_8bit_name=adv, adv_prob_8bit=0.8,
        flipped_float=adv != clean, flipped_8bit=adv != clean, target_reached_float=None, target_reached_8bit=None,
        linf=0.007, linf_8bit=0.007, first_flip_step=2, steps_run=10, steps=10, epsilon=0.007, verdict="rounded",
    )  # fmt: skip
    return ImageRecord(**{**values, **changes})


def settings() -> RunSettings:
    return RunSettings(
        epsilon=0.007, attack="bim", steps=10, step_size=0.001, targets="untargeted", loss="ce", seed=0,
        verdict="rounded", early_stop=True, device="cpu", mean=None, std=None, minimal_epsilon=None, describe="bim",
    )  # fmt: skip


def _one_line_each(lines: list[str]) -> None:
    for line in lines:
        assert len(line.splitlines()) == 1, line
        assert not line.lstrip().startswith("::"), line
        assert "##[" not in line, line


def test_an_image_line_shows_its_names_escaped() -> None:
    flipped = record(INJECTED, "cat", EVIL_CLASS, path_names=["cat", "##[x]", EVIL_CLASS])
    assert flipped.line() == rf"{SHOWN_INJECTED}: 'cat' 0.90 -> 'c\n::error::evil' 0.80 at eps=0.007, step 2/10"
    assert flipped.details() == [r"passed through: cat -> #\x23[x] -> c\n::error::evil"]
    misclassified = record("::error::m.png", "cat", "cat", misclassified=True, label_source="labels file ##[a].csv")
    assert misclassified.line().startswith(r"\x3a:error::m.png: misclassified before any attack: 'cat' 0.90, ")
    assert misclassified.line().endswith(r"(labels file #\x23[a].csv)")
    targeted = record("t.png", "cat", "cat", target=2, target_name=EVIL_CLASS, target_curve=[0.1, 0.2])
    _one_line_each([targeted.line(), *targeted.details()])
    assert r"target 'c\n::error::evil' not reached" in targeted.line()
    assert flipped.name == INJECTED  # the record, and so the JSON, keeps the real name
    assert flipped.to_json()["name"] == INJECTED


def _row(clean: str, adv: str) -> dict[str, Any]:
    return {
        "clean_label": LABELS[clean], "clean_label_name": clean, "misclassified": False,
        "flipped": adv != clean, "adv_label": LABELS[adv], "adv_label_name": adv, "minimal_epsilon": None,
    }  # fmt: skip


def _entry(images: dict[str, tuple[str, str]], **settings: Any) -> BaselineEntry:
    rows = {name: _row(clean, adv) for name, (clean, adv) in images.items()}
    stored = {"attack": "bim", "loss": "ce", "epsilon": 0.007, "steps": 10, "step_size": 0.001,
              "targets": "untargeted", "seed": 0, "verdict": "rounded", "mean": None, "std": None,
              "minimal_epsilon": None, **settings}  # fmt: skip
    return BaselineEntry.from_json({"settings": stored, "model_fingerprint": "n/a", "images": rows})


def test_the_baseline_comparison_shows_names_escaped_and_keeps_the_missing_ones_real() -> None:
    gone = "gone\n::stop-commands::pwned\n.png"
    before = _entry({INJECTED: ("cat", "dog"), gone: ("cat", "cat"), "::held.png": ("cat", "cat")})
    now = _entry({INJECTED: ("cat", "dog"), "::held.png": ("cat", EVIL_CLASS), "##[new].png": ("cat", "dog")})
    comparison = compare(before, now, (0.0005, 0.0))
    assert comparison.known == [
        rf"{SHOWN_INJECTED}: 'cat' -> 'dog', in the baseline too (minimal eps none found -> none found)"
    ]
    assert comparison.regressions == [
        r"#\x23[new].png: new image, not in the baseline: flips 'cat' -> 'dog'",
        r"\x3a:held.png: held -> flips to 'c\n::error::evil' (minimal eps none found -> none found)",
    ]
    assert comparison.missing == [gone]
    lines = comparison.lines()
    _one_line_each(lines)
    assert r"  gone\n::stop-commands::pwned\n.png" in lines


def test_settings_read_from_a_baseline_file_are_shown_escaped() -> None:
    comparison = compare(_entry({}, attack="bim\n##[error]x"), _entry({}), (0.0005, 0.0))
    assert comparison.incomparable is not None
    _one_line_each([comparison.incomparable, *comparison.lines()])
    assert r"attack 'bim\n#\x23[error]x' (baseline) vs 'bim' (now)" in comparison.incomparable


def _report(nodeid: str, comparison: Comparison | None, *records: ImageRecord) -> TestReport:
    status = None if comparison is None else BaselineStatus("compared", "b.json", comparison=comparison)
    return TestReport(nodeid, [RunReport(settings(), list(records))], status)


def test_the_terminal_summary_shows_ids_classes_and_baseline_names_escaped() -> None:
    gone = "gone\n::error::x.png"
    comparison = Comparison(missing=[gone], known=[])
    report = _report("test_x.py::test_a[\n::error::id]", comparison, record(INJECTED, "cat", EVIL_CLASS))
    lines = [line for line, _ in summary_lines([report], verbosity=1)]
    _one_line_each(lines)
    assert lines[0].startswith(r"test_x.py::test_a[\n::error::id]: 1 attacked, 1 flipped")
    assert r"    cat -> c\n::error::evil ×1" in lines
    assert f"      {record(INJECTED, 'cat', EVIL_CLASS).line()}" in lines
    assert r"      gone\n::error::x.png" in lines


def test_the_images_a_baseline_allows_are_found_by_their_real_names() -> None:
    names = [INJECTED, "cat: tabby.png", "plain.png"]
    before = _entry({name: ("cat", "dog") for name in names})
    comparison = compare(before, before, (0.0005, 0.0))
    report = _report("t.py::test", comparison, *(record(name) for name in names))
    assert known_images(report) == set(names)
