"""One job of a CI matrix (``--adv-shard=K/N``): it runs shard K of every decorated test, deals out the
tests that call adv_attack themselves, names its files for the shard, and prints the merge command, which
works as printed, and from another folder on the downloaded reports."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import WEAK_AND_STRONG_TESTS

SUITE = (
    WEAK_AND_STRONG_TESTS
    + """

def test_own_attack_a(adv_attack):
    adv_attack(epsilon=0.0, attack="fgsm", targets="untargeted")

def test_own_attack_b(adv_attack):
    adv_attack(epsilon=0.0, attack="fgsm", targets="untargeted")

def test_plain():
    pass
"""
)


def _merge(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest_advrobust", "merge", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120)  # fmt: skip


def test_a_job_runs_its_shard_and_prints_a_merge_command_that_works(project: pytest.Pytester) -> None:
    project.makepyfile(test_gate=SUITE)
    jobs = [
        project.runpytest("-v", f"--adv-shard={k}/2", "--adv-baseline-strict", "--adv-report=reports/r.json")
        for k in (1, 2)
    ]

    for k, job in enumerate(jobs, start=1):
        ran = re.findall(r"test_gate.py::(\S+) (?:PASSED|FAILED)", job.stdout.str())
        own = [name for name in ran if name.startswith("test_own_attack")]
        assert sorted(name for name in ran if "shard" in name) == [
            f"test_strong[shard{k}of2]",
            f"test_weak[shard{k}of2]",
        ]
        assert len(own) == 1 and "test_plain" in ran, "an adv_attack test runs in one job, a plain test in each"
        job.stdout.fnmatch_lines(
            [
                f"*reproduce with: pytest 'test_gate.py::test_weak?shard{k}of2?' --adv-baseline-strict --adv-seed=0 --adv-shard={k}/2",
                "*accept the current results as the baseline with: pytest test_gate.py::test_weak --adv-baseline-strict "
                "--adv-seed=0 --adv-baseline-update",
                f"advrobust: JSON report written to reports/r.shard{k}of2.json",
                f"advrobust: job {k} of 2; once every job has run, one verdict from their reports: "
                "python -m pytest_advrobust merge reports/r.shard*of2.json --report=reports/r.json",
            ]
        )
    assert not (project.path / "reports" / "r.json").exists()
    printed = jobs[0].stdout.str().rpartition("one verdict from their reports: ")[2].splitlines()[0]
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    merged = subprocess.run(["bash", "-c", printed], cwd=project.path, env={**os.environ, "PATH": path},
                            capture_output=True, text=True, timeout=120)  # fmt: skip

    assert merged.returncode == 1, merged.stdout + merged.stderr  # neither test has a baseline (strict)
    assert "2 test(s) failed; red" in merged.stdout
    report = json.loads((project.path / "reports" / "r.json").read_text())
    assert [test["nodeid"] for test in report["tests"]] == [
        "test_gate.py::test_own_attack_a",
        "test_gate.py::test_own_attack_b",
        "test_gate.py::test_strong",
        "test_gate.py::test_weak",
    ]
    assert report["totals"] == {"attacked": 16, "flipped": 3, "misclassified": 0, "tests": 4}
    assert "shard" not in report and "missing_shards" not in report

    downloaded, elsewhere = project.path / "downloaded", project.path / "ci" / "verdict"
    elsewhere.mkdir(parents=True)
    shutil.copytree(project.path / "reports", downloaded, ignore=shutil.ignore_patterns("r.json"))
    again = _merge(["../../downloaded/r.shard1of2.json", "../../downloaded/r.shard2of2.json", "--report=r.json",
                    "--rootdir=../.."], elsewhere)  # fmt: skip
    assert again.returncode == 1, again.stdout + again.stderr
    assert (elsewhere / "r.json").read_bytes() == (project.path / "reports" / "r.json").read_bytes()


def test_a_job_records_baselines_into_its_report_only(project: pytest.Pytester) -> None:
    project.makepyfile(WEAK_AND_STRONG_TESTS)
    result = project.runpytest("--adv-shard=2/2", "--adv-baseline-update")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--adv-shard=2/2 with --adv-baseline-update: a job of a matrix writes no baseline file; its updates go "
         "into its JSON report*Add --adv-report=FILE"]
    )  # fmt: skip
    ini = project.runpytest("-o", "adv_shard=2/2", "-o", "adv_baseline_update=true")  # named as given
    assert ini.ret == pytest.ExitCode.USAGE_ERROR
    ini.stderr.fnmatch_lines(["*-o adv_shard=2/2 with -o adv_baseline_update=true: a job of a matrix writes no*"])
    for value, why in (("3/2", "job 3 of 2 does not exist"), ("2", "must be K/N")):
        bad = project.runpytest(f"--adv-shard={value}")
        assert bad.ret == pytest.ExitCode.USAGE_ERROR
        bad.stderr.fnmatch_lines([f"*--adv-shard={value}: *{why}*"])


def test_a_merge_of_recorded_baselines_outside_the_rootdir_is_refused_and_touches_nothing(
    project: pytest.Pytester,
) -> None:
    """Run from another folder without --rootdir, the merge would write the baselines there and take that
    folder's own baseline entries for tests that are gone: it refuses, names the folder and the fix."""
    project.makepyfile(WEAK_AND_STRONG_TESTS)
    for k in (1, 2):
        project.runpytest(f"--adv-shard={k}/2", "--adv-baseline-update", "--adv-report=reports/r.json")
    elsewhere = project.path / "elsewhere"
    (elsewhere / "advrobust-baselines").mkdir(parents=True)
    other = elsewhere / "advrobust-baselines" / "test_other.py.json"
    other.write_text("{}", encoding="utf-8")  # another project's baselines, which must survive
    reports = [str(project.path / "reports" / f"r.shard{k}of2.json") for k in (1, 2)]

    refused = _merge(reports, elsewhere)

    assert refused.returncode == 2, refused.stdout + refused.stderr
    (module,) = (path.name for path in project.path.glob("test_*.py"))
    assert f"does not hold the jobs' test files ({module}), so its baselines are not theirs" in refused.stderr
    assert "pass --rootdir=DIR" in refused.stderr
    assert sorted(p.name for p in (elsewhere / "advrobust-baselines").iterdir()) == ["test_other.py.json"]
    assert other.read_text(encoding="utf-8") == "{}"

    merged = _merge([*reports, f"--rootdir={project.path}"], elsewhere)  # the fix it names
    assert merged.returncode == 0, merged.stdout + merged.stderr
    assert (project.path / "advrobust-baselines").is_dir() and other.read_text(encoding="utf-8") == "{}"
