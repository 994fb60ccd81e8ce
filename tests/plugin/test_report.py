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
            "robust accuracy 100% (bim eps=0 seed=0)",
            "test_terminal_summary_has_counts_accuracy_and_pairs.py::test_weak: 4 attacked, 3 flipped, 0 misclassified, "
            "robust accuracy 25% (bim eps=0.05 seed=0)",
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
            "*::test_two_budgets: 4 attacked, 0 flipped, 0 misclassified, robust accuracy 100% (bim eps=0 seed=0)",
            "*::test_two_budgets: 4 attacked, 3 flipped, 0 misclassified, robust accuracy 25% (bim eps=0.05 seed=0)",
        ]
    )
    (test,) = json.loads((project.path / "r.json").read_text())["tests"]
    assert [s["epsilon"] for s in test["settings"]] == [0.0, 0.05]
    assert sorted({image["run"] for image in test["images"]}) == [0, 1]
