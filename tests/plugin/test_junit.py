"""JUnit XML (--junitxml) under the default junit_family: the failure names each flip, and no PytestWarning."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from helpers import WEAK_AND_STRONG_TESTS


def test_the_failure_names_the_flips_without_a_warning(project: pytest.Pytester) -> None:
    project.makepyfile(WEAK_AND_STRONG_TESTS)
    result = project.runpytest("-W", "error::pytest.PytestWarning", "--junitxml=junit.xml", "--adv-artifacts=art")
    result.assert_outcomes(passed=1, failed=1)  # a PytestWarning would have been an error
    assert "warnings" not in result.parseoutcomes() and "warnings summary" not in result.stdout.str()
    cases = {case.get("name"): case for case in ET.parse(project.path / "junit.xml").getroot().iter("testcase")}
    assert cases["test_strong"].find("failure") is None
    failure = cases["test_weak"].find("failure")
    assert failure is not None and failure.text is not None
    flips = [
        "3 of 4 image(s) flipped at eps=0.05 (bim): c9 -> c7, c7 -> c4, c3 -> c9",
        "  image 0: 'c9' 0.14 -> 'c7' 0.14 at eps=0.05, step 1/10",
        "  image 1: 'c7' 0.14 -> 'c4' 0.12 at eps=0.05, step 3/10",
        "  image 3: 'c3' 0.12 -> 'c9' 0.12 at eps=0.05, step 1/10",
    ]
    for line in flips:
        assert line in failure.text.splitlines()
        assert line in failure.get("message", "")
    properties = {p.get("name"): p.get("value") for p in cases["test_weak"].iter("property")}
    assert properties["adv_robust"] == "3 of 4 flipped, 0 misclassified"
    assert (
        properties["adv_artifact image 0"]
        == "art/test_the_failure_names_the_flips_without_a_warning.py_test_weak/image_0-adversarial.png"
    )
