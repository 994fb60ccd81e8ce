"""With pytest-xdist, results from the workers reach the controller's summary and reports, written once."""

from __future__ import annotations

import json

import pytest

from helpers import WEAK_AND_STRONG_TESTS

pytest.importorskip("xdist")


def test_results_from_two_workers_are_merged(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
        import pytest
        from pytest_advrobust import adv_robust

        @pytest.mark.parametrize("eps", [0.0, 0.01, 0.05, 0.2])
        def test_budget(eps, adv_attack):
            adv_attack(epsilon=eps)
        """
    )
    result = project.runpytest_subprocess("-n", "2", "--adv-report=r.json", "--adv-attack=pgd", "--adv-seed=3")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["*- adversarial robustness -*"])
    data = json.loads((project.path / "r.json").read_text())
    assert len(data["tests"]) == 4
    assert data["totals"]["attacked"] == 16

    # same seed, one process: bit-identical verdicts and images' numbers
    single = project.runpytest_subprocess("--adv-report=r1.json", "--adv-attack=pgd", "--adv-seed=3")
    single.assert_outcomes(passed=4)
    again = json.loads((project.path / "r1.json").read_text())
    assert again["tests"] == data["tests"]


def test_the_job_summary_and_the_annotations_are_written_once(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.makepyfile(WEAK_AND_STRONG_TESTS)
    summary = project.path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    result = project.runpytest_subprocess("-n", "2")
    result.assert_outcomes(passed=1, failed=1)
    text = summary.read_text(encoding="utf-8")
    assert text.count("## Adversarial robustness:") == 1
    assert text.startswith("## Adversarial robustness: 3 of 8 image(s) flipped"), "both workers' tests in one summary"
    annotations = [line for line in result.stdout.lines if line.startswith("::error ")]
    assert len(annotations) == 1 and "title=adversarial robustness%3A test_weak::3 of 4" in annotations[0]
