"""``python -m pytest_advrobust merge``: the jobs' reports merged into one report and one baseline update,
a shard missing or given twice red and named, and reports that cannot be one run refused with why.

The jobs' reports are built here from the core's objects and written by the writer a job uses; the
matrix run end to end is tests/plugin/test_ci_matrix.py."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from pytest_advrobust.__main__ import main
from pytest_advrobust.core.baselines.rule import BaselineStatus, baseline_entry
from pytest_advrobust.core.baselines.store import BASELINE_SCHEMA_VERSION
from pytest_advrobust.core.results.merge import SHARD_KEY, ShardJob, job_settings
from pytest_advrobust.core.results.report import ImageRecord, RunReport, RunSettings, TestReport
from pytest_advrobust.core.results.shards import ShardFaults
from pytest_advrobust.core.results.summary import write_report
from pytest_advrobust.core.settings import AttackConfig, RunConfig
from pytest_advrobust.core.settings.values import JobShard

HEADER = {"defaults": "attack=bim epsilon=0.05", "pytest_advrobust": "0.1.0", "rootdir": "."}
VERSIONS = {"python": "3.11.7", "pytest-advrobust": "0.1.0", "torch": "2.5.0", "torchvision": "0.20.0"}
FINGERPRINT = "sha256:" + "a" * 64
IMAGES = ["a.png", "b.png", "c.png", "d.png"]
"""The test's images: shard 1 of 2 attacks the first two, shard 2 the others; c.png flips."""


def _record(name: str) -> ImageRecord:
    adv, flipped = (2, True) if name == "c.png" else (0, False)
    return ImageRecord(
        name=name, label=0, label_name="cat", label_source="folder", clean_label=0, clean_label_name="cat",
        clean_prob=0.9, misclassified=False, target=None, target_name=None, adv_label=adv,
        adv_label_name=["cat", "dog", "fox"][adv], adv_prob=0.8, adv_label_8bit=adv,
        adv_label_8bit_name=["cat", "dog", "fox"][adv], adv_prob_8bit=0.8, flipped_float=flipped,
        flipped_8bit=flipped, target_reached_float=None, target_reached_8bit=None, linf=0.05, linf_8bit=0.05,
        first_flip_step=1 if flipped else None, steps_run=10, steps=10, epsilon=0.05, verdict="rounded",
    )  # fmt: skip


def _shard_report(
    k: int, count: int = 2, fingerprint: str = FINGERPRINT, versions: dict[str, str] = VERSIONS
) -> TestReport:
    """test_m.py::test_x[shardKof2] as its job received it, recording its baseline."""
    settings = RunSettings(epsilon=0.05, attack="bim", steps=10, step_size=0.0125, targets="untargeted", loss="ce",
                           seed=0, verdict="rounded", early_stop=True, device="cpu", mean=None, std=None,
                           minimal_epsilon=None, describe="bim")  # fmt: skip
    per_shard = len(IMAGES) // count
    run = RunReport(settings, [_record(name) for name in IMAGES[(k - 1) * per_shard : k * per_shard]])
    run.model_fingerprint, run.marker = fingerprint, True
    entry = baseline_entry(run, fingerprint, versions)
    status = BaselineStatus("recorded", "advrobust-baselines/test_m.py.json", "test_m.py", "test_x", None, entry,
                            list(IMAGES))  # fmt: skip
    return TestReport(f"test_m.py::test_x[shard{k}of{count}]", [run], status, failed=False, test="test_m.py::test_x",
                      shard=f"shard{k}of{count}")  # fmt: skip


def _job(k: int, count: int = 2, **changes: Any) -> ShardJob:
    test = _shard_report(k, count, changes.pop("fingerprint", FINGERPRINT), changes.get("versions", VERSIONS))
    job = ShardJob(
        shard=JobShard(k, count),
        tests=[test],
        accounted={test.nodeid: test.shard},
        collected={"test_m.py": ["test_x"]},
        complete=True,
        exit_status=0,
        settings=job_settings(AttackConfig(), RunConfig(baseline_update=True), Path.cwd()),
        versions=dict(VERSIONS),
        baseline_dir="advrobust-baselines",
    )
    return replace(job, **changes)


def _write(path: Path, job: ShardJob, **header: Any) -> str:
    """The job's report, as the plugin's JSON writer writes it."""
    write_report(path, ShardFaults().judged(job.tests), {**HEADER, **header, SHARD_KEY: job.to_json()})
    return str(path)


@pytest.fixture
def checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The verdict job's checkout: test_m.py, and its committed baseline with an entry whose test is gone."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "test_m.py").write_text("")
    stored = tmp_path / "advrobust-baselines" / "test_m.py.json"
    stored.parent.mkdir()
    gone = baseline_entry(_shard_report(1).runs[0], FINGERPRINT, VERSIONS).to_json()
    stored.write_text(json.dumps({"schema_version": BASELINE_SCHEMA_VERSION, "module": "test_m.py",
                                  "tests": {"test_gone": gone}}))  # fmt: skip
    return tmp_path


def _merge(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    status = main(["merge", *args], environ={}, out=out)
    return status, out.getvalue()


def _stored(checkout: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((checkout / "advrobust-baselines" / "test_m.py.json").read_text())
    return data["tests"]


def test_the_jobs_make_one_report_and_one_baseline(checkout: Path) -> None:
    reports = [_write(checkout / f"r.shard{k}of2.json", _job(k)) for k in (1, 2)]

    status, out = _merge(*reports, "--report=r.json", "--html=r.html", "--markdown=summary.md")

    assert status == 0, out
    report = json.loads((checkout / "r.json").read_text())
    (test,) = report["tests"]
    assert test["nodeid"] == "test_m.py::test_x"
    assert test["shards"] == ["test_m.py::test_x[shard1of2]", "test_m.py::test_x[shard2of2]"]
    assert report["totals"] == {"attacked": 4, "flipped": 1, "misclassified": 0, "tests": 1}
    assert "shard" not in report and report["rootdir"] == "."
    assert list(_stored(checkout)) == ["test_x"], "the entry whose test is gone is removed by the full update"
    assert sorted(_stored(checkout)["test_x"]["images"]) == IMAGES
    assert "advrobust: removed 1 baseline entries without a test: test_m.py::test_gone" in out
    assert "1 of 4 image(s) flipped, 0 test(s) failed; green" in out
    assert "advrobust: the HTML report shows no image: the jobs drew none (give them --adv-html=FILE too" in out
    assert (
        "| ⚠️ | test\\_m.py::test\\_x | 4 | 1 | 0 | 75.0% (95% CI 19.4–99.4%) | recorded |"
        in (checkout / "summary.md").read_text()
    )


def test_a_missing_shard_is_red_named_and_keeps_the_stored_baseline(checkout: Path) -> None:
    before = _stored(checkout)
    status, out = _merge(_write(checkout / "r.shard1of2.json", _job(1)), "--report=r.json")

    assert status == 1
    assert "advrobust: no report of shard 2 of 2 among the 1 given (a job that did not run, or whose" in out
    assert (
        "advrobust: test_m.py::test_x: shard 2 of 2 did not report; the counts above are the other shards' only" in out
    )
    assert "advrobust: baseline of test_m.py::test_x left as it was: shard 2 of 2 did not report" in out
    assert "    baseline: left as it was: shard 2 of 2 did not report" in out, "the summary says so too"
    assert "baseline: recorded" not in out
    report = json.loads((checkout / "r.json").read_text())
    assert report["missing_shards"] == {"test_m.py::test_x": ["test_m.py::test_x[shard2of2]"]}
    assert _stored(checkout) == before, "an incomplete run removes no entry and records none"


def test_a_shard_given_twice_is_red_named_and_counted_once(checkout: Path) -> None:
    one = _write(checkout / "a" / "r.shard1of2.json", _job(1))
    again = _write(checkout / "b" / "r.shard1of2.json", _job(1))
    two = _write(checkout / "r.shard2of2.json", _job(2))
    before = _stored(checkout)

    status, out = _merge(one, two, again, "--report=r.json")

    assert status == 1
    assert f"advrobust: shard 1 of 2 given 2 times: {one}, {again} (only {one} is merged)" in out
    assert (
        "advrobust: test_m.py::test_x: shard 1 of 2 reported more than once; the counts above take the first copy "
        "given" in out
    )
    report = json.loads((checkout / "r.json").read_text())
    assert report["repeated_shards"] == {"test_m.py::test_x": ["test_m.py::test_x[shard1of2]"]}
    assert report["totals"]["attacked"] == 4, "the copy is not counted"
    assert _stored(checkout) == before, "the repeated test keeps its entry, and a broken set removes none"

    status, out = _merge(one, one, two, "--report=r.json")  # the same file named twice (a glob and a path)
    assert status == 1
    assert f"advrobust: shard 1 of 2 given 2 times: {one} each time" in out
    assert json.loads((checkout / "r.json").read_text())["totals"]["attacked"] == 4


def test_a_job_whose_pytest_failed_elsewhere_is_red(checkout: Path) -> None:
    reports = [_write(checkout / f"r.shard{k}of2.json", _job(k, exit_status=1 if k == 2 else 0)) for k in (1, 2)]
    status, out = _merge(*reports)
    assert status == 1
    assert (
        f"advrobust: shard 2 of 2 ({reports[1]}): pytest exited with status 1 while its robustness tests passed: "
        "see that job's log" in out
    )


REFUSALS = {
    "another model": (
        {"fingerprint": "sha256:" + "b" * 64},
        {},
        "{one} and {other} are not one run: test_m.py::test_x attacked two models",
    ),
    "other settings": (
        {"settings": {**_job(2).settings, "epsilon": "0.01"}},
        {},
        "epsilon (a setting) is '0.007' in {one} and '0.01' in {other}",
    ),
    "other settings, as a job writes them": (
        {"settings": {**_job(2).settings, "epsilon": "0.01"}},
        {"defaults": AttackConfig(epsilon=0.01).describe()},  # the header's line holds it too
        "epsilon (a setting) is '0.007' in {one} and '0.01' in {other}",
    ),
    "other libraries": (
        {"versions": {**VERSIONS, "torch": "2.6.0"}},
        {},
        "torch (a library version) is '2.5.0' in {one} and '2.6.0' in {other}",
    ),
    "another plugin version": (
        {},
        {"pytest_advrobust": "0.2.0"},
        "pytest_advrobust (the run's, in the report's header) is '0.1.0' in {one} and '0.2.0' in {other}",
    ),
    "another matrix": (
        {"count": 3},
        {},
        "{one} is a job of 2 and {other} a job of 3: they are jobs of two matrices",
    ),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_reports_that_are_not_one_run_are_refused(
    checkout: Path, case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    job_changes, header, *says = REFUSALS[case]
    one = _write(checkout / "r.shard1of2.json", _job(1))
    other = _write(checkout / "r.shard2of2.json", _job(2, **job_changes), **header)
    before = _stored(checkout)

    status, _ = _merge(one, other, "--report=r.json")

    assert status == 2
    err = capsys.readouterr().err
    assert err.startswith("advrobust merge: refused: ") and err.count("\n") == 1
    for text in says:
        assert text.format(one=one, other=other) in err
    assert not (checkout / "r.json").exists() and _stored(checkout) == before, "nothing is written"


@pytest.mark.parametrize(
    ("option", "path", "says"),
    [
        ("--report", "reports", "reports names a folder; name a file in it, e.g. --report=reports/report.json"),
        ("--html", "new/", "new/ names a folder; name a file in it, e.g. --html=new/report.html"),
        ("--markdown", "reports/", "reports/ names a folder; name a file in it, e.g. --markdown=reports/summary.md"),
    ],
)
def test_an_output_that_names_a_folder_is_a_usage_error(
    checkout: Path, capsys: pytest.CaptureFixture[str], option: str, path: str, says: str
) -> None:
    (checkout / "reports").mkdir()
    reports = [_write(checkout / f"r.shard{k}of2.json", _job(k)) for k in (1, 2)]
    before = _stored(checkout)

    with pytest.raises(SystemExit) as exited:
        _merge(*reports, f"{option}={path}")

    assert exited.value.code == 2
    assert f"error: argument {option}: {says}" in capsys.readouterr().err
    assert list((checkout / "reports").iterdir()) == [] and not (checkout / "new").exists()
    assert _stored(checkout) == before, "nothing is merged"
    fixed = says.rpartition("e.g. ")[2]
    status, out = _merge(*reports, fixed)  # the fix it names
    assert status == 0, out
    assert (checkout / fixed.partition("=")[2]).is_file()


def test_files_that_are_no_job_report_are_refused(checkout: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (checkout / "reports").mkdir()
    (checkout / "half.json").write_text('{"schema_version": 1, "tests": [')
    write_report(checkout / "plain.json", [], HEADER)  # a run's report without --adv-shard=K/N
    hostile = "x\n::error title=owned::boom.json"
    (checkout / hostile).write_text("not json")
    job = _write(checkout / "r.shard1of2.json", _job(1))
    escaping = _job(2)
    assert escaping.tests[0].baseline is not None
    escaping.tests[0].baseline.module = "../../outside.py"  # its baseline file would be written out there
    _write(checkout / "escaping.json", escaping)
    cases = {
        "reports": "reports is a folder, not a job's report: name the reports in it (reports/*.shard*.json)",
        "half.json": "half.json is not JSON (Expecting value at line 1 column 33)",
        "plain.json": "plain.json is the report of a run without --adv-shard=K/N",
        "gone.json": "gone.json: no such file (was the job's report downloaded?)",
        hostile: "x\\n::error title=owned::boom.json is not JSON",
        "escaping.json": "escaping.json is not a job's report this pytest-advrobust wrote: "
        "shard.tests[0].baseline.module must be a path within the rootdir, not '../../outside.py'",
    }
    for name, says in cases.items():
        status, _ = _merge(job, name)
        err = capsys.readouterr().err
        assert status == 2, name
        assert says in err, err
        assert err.count("\n") == 1 and not any(line.lstrip().startswith("::") for line in err.splitlines())
