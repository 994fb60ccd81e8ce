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


@pytest.mark.parametrize(
    ("device", "worker", "visible", "expected"),
    [
        ("cuda", "gw0", 2, "cuda:0"),
        ("cuda", "gw3", 2, "cuda:1"),  # gwK -> visible GPU K mod count
        ("auto", "gw5", 4, "cuda:1"),
        ("auto", "gw1", 0, "auto"),  # no GPU: auto stays auto (the CPU)
        ("cuda:1", "gw0", 2, "cuda:1"),  # an explicit index is kept
        ("cpu", "gw1", 2, "cpu"),
        ("cuda", None, 2, "cuda"),  # not under xdist
        ("cuda", "master", 2, "cuda"),
    ],
)
def test_each_xdist_worker_gets_its_own_gpu(device: str, worker: str | None, visible: int, expected: str) -> None:
    from pytest_advrobust.plugin.options import worker_gpu

    assert worker_gpu(device, worker, visible) == expected


def test_an_xdist_worker_maps_cuda_to_its_gpu_when_there_are_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_advrobust.core.settings import AttackConfig
    from pytest_advrobust.plugin.options import on_this_worker

    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw1")
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    monkeypatch.setattr("torch.cuda.device_count", lambda: 2)
    assert on_this_worker(AttackConfig(device="cuda")).device == "cuda:1"
    assert on_this_worker(AttackConfig(device="cpu")).device == "cpu"


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
