"""With pytest-xdist, results from the workers reach the controller's summary and JSON report."""

from __future__ import annotations

import json

import pytest

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
