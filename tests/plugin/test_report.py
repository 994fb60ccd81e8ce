"""Reporting: terminal summary section, JSON report, JUnit XML properties."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from helpers import WEAK_AND_STRONG_TESTS

TESTS = (
    WEAK_AND_STRONG_TESTS
    + """
def test_plain():
    pass
"""
)


def test_terminal_summary_has_counts_accuracy_and_pairs(project: pytest.Pytester) -> None:
    project.makepyfile(TESTS)
    result = project.runpytest()
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*- adversarial robustness -*",
            "test_terminal_summary_has_counts_accuracy_and_pairs.py::test_strong: 4 attacked, 0 flipped, 0 misclassified, "
            "robust accuracy 100.0% (95% CI 39.8–100.0%) (bim linf eps=0 seed=0)",
            "test_terminal_summary_has_counts_accuracy_and_pairs.py::test_weak: 4 attacked, 3 flipped, 0 misclassified, "
            "robust accuracy 25.0% (95% CI 0.6–80.6%) (bim linf eps=0.05 seed=0)",
            "    c9 -> c7 ×1",
        ]
    )
    assert "test_plain:" not in result.stdout.str()


def test_json_report_has_every_image(project: pytest.Pytester) -> None:
    project.makepyfile(TESTS)
    project.runpytest("--adv-report=reports/adv.json")
    data = json.loads((project.path / "reports" / "adv.json").read_text())
    assert data["schema_version"] == 1
    assert data["totals"] == {"tests": 2, "attacked": 8, "flipped": 3, "misclassified": 0}
    weak = next(t for t in data["tests"] if t["nodeid"].endswith("test_weak"))
    assert weak["robust_accuracy"] == 0.25
    image = weak["images"][0]
    for key in (
        "clean_label_name",
        "clean_prob",
        "adv_label_name",
        "adv_prob",
        "flipped",
        "target_reached",
        "linf",
        "linf_8bit",
        "first_flip_step",
        "label_curve",
        "flipped_float",
        "flipped_8bit",
    ):
        assert key in image
    assert image["linf_8bit"] <= 0.05 + 1e-6
    assert weak["settings"][0]["epsilon"] == 0.05


def test_junit_xml_carries_a_property(project: pytest.Pytester) -> None:
    project.makepyfile(TESTS)
    project.runpytest("--junitxml=junit.xml")
    root = ET.parse(project.path / "junit.xml").getroot()
    properties = {p.get("name"): p.get("value") for p in root.iter("property")}
    assert properties["adv_robust"] in ("3 of 4 flipped, 0 misclassified", "0 of 4 flipped, 0 misclassified")


def test_each_attack_run_has_its_own_summary_line(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
        def test_two_budgets(adv_attack):
            adv_attack(epsilon=0.0, attack="bim", targets="untargeted")
            adv_attack(epsilon=0.05, attack="bim", targets="untargeted")
        """
    )
    result = project.runpytest("--adv-report=r.json")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "*::test_two_budgets: 4 attacked, 0 flipped, 0 misclassified, robust accuracy 100.0% (95% CI 39.8–100.0%) (bim linf eps=0 seed=0)",
            "*::test_two_budgets: 4 attacked, 3 flipped, 0 misclassified, robust accuracy 25.0% (95% CI 0.6–80.6%) (bim linf eps=0.05 seed=0)",
        ]
    )
    (test,) = json.loads((project.path / "r.json").read_text())["tests"]
    assert [s["epsilon"] for s in test["settings"]] == [0.0, 0.05]
    assert sorted({image["run"] for image in test["images"]}) == [0, 1]


def test_reports_and_messages_show_no_absolute_path_of_the_machine(project: pytest.Pytester) -> None:
    project.makepyfile(TESTS)
    project.runpytest("--adv-baseline-update")  # baselines in use: their file is named in messages
    project.makepyfile(TESTS + "\n@adv_robust(epsilon=0.0)\ndef test_new():\n    pass\n")
    result = project.runpytest(
        "--adv-baseline-strict", "--adv-report=r.json", "--adv-html=r.html", "--adv-artifacts=art", "--junitxml=j.xml"
    )
    assert "advrobust-baselines/" in result.stdout.str()
    home = str(project.path)
    pytest_own = ("rootdir:", "- generated xml file:")
    ours = [line for line in result.stdout.lines if not line.startswith(pytest_own)]
    assert not [line for line in ours if home in line]
    for name in ("r.json", "r.html", "j.xml"):
        assert home not in (project.path / name).read_text(), name
    for path in (project.path / "art").rglob("*.json"):
        assert home not in path.read_text()


def test_quiet_default_and_verbose_summaries(project: pytest.Pytester) -> None:
    project.makepyfile(TESTS)
    quiet = project.runpytest("-q").stdout.str()
    default = project.runpytest().stdout.str()
    verbose = project.runpytest("-v").stdout.str()
    pair = "    c9 -> c7 ×1"
    held = "held at eps=0 (after"  # test_strong's images, listed only with -v
    assert pair not in quiet and held not in quiet
    assert pair in default and held not in default
    assert pair in verbose and held in verbose


def test_flips_are_red_and_what_held_green_when_colour_is_on(project: pytest.Pytester) -> None:
    project.makepyfile(TESTS)
    red, green = "\x1b[31m", "\x1b[32m"
    coloured = project.runpytest("--color=yes").stdout.str()
    weak = next(line for line in coloured.splitlines() if "::test_weak: 4 attacked" in line)
    strong = next(line for line in coloured.splitlines() if "::test_strong: 4 attacked" in line)
    assert red in weak and green in strong
    plain = project.runpytest("--color=no").stdout.str()
    assert "\x1b[" not in plain
