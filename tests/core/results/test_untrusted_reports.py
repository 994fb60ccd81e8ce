"""The merge reads reports that jobs running a pull request's code uploaded, and usually has more rights
than they do: a crafted report is refused with one line naming the file and the field, before anything is
written, and nothing in it reaches a file or the terminal unescaped (issue 33, items 1-4, 9-11).

Each case takes a real job report (tests/core/results/test_merge.py builds it), changes one field the way
an attacker would, and merges it with the other job's report."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from test_merge import _job, _merge, _write, checkout  # noqa: F401  (checkout: the verdict job's folder)

NESTED = "[" * 5000 + "]" * 5000


def _crafted(checkout: Path, change: Any) -> list[str]:  # noqa: F811
    """Job 1's report as the plugin writes it, and job 2's after ``change(report)`` edited its JSON."""
    one = _write(checkout / "r.shard1of2.json", _job(1))
    two = checkout / "r.shard2of2.json"
    _write(two, _job(2))
    data = json.loads(two.read_text())
    change(data)
    two.write_text(json.dumps(data))
    return [one, str(two)]


def _image(data: dict[str, Any]) -> dict[str, Any]:
    image: dict[str, Any] = data["shard"]["tests"][0]["runs"][0]["images"][0]
    return image


def _settings(data: dict[str, Any]) -> dict[str, Any]:
    settings: dict[str, Any] = data["shard"]["tests"][0]["runs"][0]["settings"]
    return settings


def _entry(data: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = data["shard"]["tests"][0]["baseline"]["entry"]
    return entry


def _card(data: dict[str, Any]) -> dict[str, Any]:
    card = {"name": "a.png", "line": "a", "details": [], "clean": "cat", "adversarial": "dog", "amplify": 50.0,
            "saved_file_fools": None, "saved_file_label": None, "clean_png": "iVBORw0KGgo=",
            "adversarial_png": "iVBORw0KGgo=", "perturbation_png": "iVBORw0KGgo=", "curve_png": None}  # fmt: skip
    data["shard"]["tests"][0]["runs"][0]["cards"] = [card]
    return card


CASES: dict[str, tuple[Any, str]] = {
    # 1. where the merge writes baselines
    "absolute baseline_dir": (lambda d: d["shard"].update(baseline_dir="/nonexistent-advrobust-target"), "shard.baseline_dir must be a path within the rootdir, not '/nonexistent-advrobust-target'"),
    "baseline_dir up and out": (lambda d: d["shard"].update(baseline_dir="../../x"), "shard.baseline_dir must be a path within the rootdir, not '../../x'"),
    "baseline.module None": (lambda d: d["shard"]["tests"][0]["baseline"].update(module=None), "shard.tests[0].baseline.module must be a string, not NoneType None"),
    "baseline.module with NUL": (lambda d: d["shard"]["tests"][0]["baseline"].update(module="a\x00.py"), "shard.tests[0].baseline.module must be a path within the rootdir"),
    "baseline a string": (lambda d: d["shard"]["tests"][0].update(baseline="recorded"), "shard.tests[0].baseline must be an object, not str 'recorded'"),
    # 2. settings printed by the merge
    "attack a workflow command": (lambda d: _settings(d).update(attack=["::error file=x::owned"]), "shard.tests[0].runs[0].settings.attack must be a string, not list"),
    "epsilon a string": (lambda d: _settings(d).update(epsilon="0.1"), "shard.tests[0].runs[0].settings.epsilon must be a finite number, not str '0.1'"),
    "eot a float": (lambda d: _settings(d).update(eot=1.5), "shard.tests[0].runs[0].settings.eot must be a whole number, not float 1.5"),
    "notes a string": (lambda d: _settings(d).update(notes="x"), "shard.tests[0].runs[0].settings.notes must be a list, not str 'x'"),
    # 3. HTML cards
    "PNG with an onerror": (lambda d: _card(d).update(clean_png='x" onerror="alert(1)'), "shard.tests[0].runs[0].cards[0]: clean_png must be base64"),
    "PNG with a script": (lambda d: _card(d).update(curve_png="</figure><script>alert(1)</script>"), "shard.tests[0].runs[0].cards[0]: curve_png must be base64"),
    # 4. Markdown through an image's numbers
    "steps with HTML": (lambda d: _image(d).update(steps="<details>"), "shard.tests[0].runs[0].images[0].steps must be a whole number, not str '<details>'"),
    "first_flip_step with a link": (lambda d: _image(d).update(first_flip_step="[x](javascript:alert(1))"), "images[0].first_flip_step must be a whole number or null"),
    # 10. wrong types
    "clean_prob a string": (lambda d: _image(d).update(clean_prob="high"), "images[0].clean_prob must be a finite number, not str 'high'"),
    "clean_prob infinite": (lambda d: _image(d).update(clean_prob=float("inf")), "images[0].clean_prob must be a finite number, not float inf"),
    "epsilon null": (lambda d: _image(d).update(epsilon=None), "images[0].epsilon must be a finite number, not NoneType None"),
    "name a number": (lambda d: _image(d).update(name=7), "images[0].name must be a string, not int 7"),
    "clean_label_name a list": (lambda d: _image(d).update(clean_label_name=["cat"]), "images[0].clean_label_name must be a string, not list"),
    "minimal_epsilon a string": (lambda d: _image(d).update(minimal_epsilon="0.01"), "images[0].minimal_epsilon must be a finite number or null"),
    "a missing field": (lambda d: _image(d).pop("label"), "shard.tests[0].runs[0].images[0].label is missing"),
    "an integer nodeid": (lambda d: d["shard"]["tests"][0].update(nodeid=12), "shard.tests[0].nodeid must be a string, not int 12"),
    "shard outside the last brackets": (lambda d: d["shard"]["tests"][0].update(nodeid="test_m.py::test_shard2of2[x]"), "shard.tests[0]: node id 'test_m.py::test_shard2of2[x]' is not shard shard2of2"),
    # 11. sizes without bounds
    "a hundred million shards": (lambda d: d["shard"]["tests"][0].update(nodeid="test_m.py::test_x[shard2of100000000]", shard="shard2of100000000"), "shard.tests[0]: shard 'shard2of100000000' must have 1 ≤ K ≤ N ≤ 1000"),
    "a hundred million jobs": (lambda d: d["shard"].update(count=10**8), "shard.index must be 1 to shard.count (at most 1000)"),
    # from the trial: values no run writes, echoed or fed to scipy
    "a fingerprint with a command": (lambda d: d["shard"]["tests"][0]["runs"][0].update(model_fingerprint="sha256:\n::error::owned"), "model_fingerprint must be 'sha256:' and 64 hex digits, or 'n/a'"),
    "confidence 2": (lambda d: _settings(d).update(confidence=2.0), "settings: confidence=2.0: must be strictly between 0 and 1"),
    "negative epsilon": (lambda d: _settings(d).update(epsilon=-1.0), "settings: epsilon=-1.0: must be ≥ 0"),
    "negative steps": (lambda d: _settings(d).update(steps=-3), "settings: steps=-3: must be ≥ 1"),
    "a norm no run has": (lambda d: _settings(d).update(norm="l3"), "settings: norm='l3': must be one of linf, l2, l1 (got 'l3')"),
    "a test shard of another job": (lambda d: d["shard"]["tests"][0].update(nodeid="test_m.py::test_x[shard1of2]", shard="shard1of2"), "shard.tests[0] is shard1of2, but shard.index and shard.count say the job ran shard 2 of 2"),
    "a test shard of a bigger split": (lambda d: d["shard"]["tests"][0].update(nodeid="test_m.py::test_x[shard2of1000]", shard="shard2of1000"), "shard.tests[0] is shard2of1000, but shard.index and shard.count say the job ran shard 2 of 2"),
    "a baseline for a module not collected": (lambda d: d["shard"]["tests"][0]["baseline"].update(module="conftest.py"), "shard.tests[0].baseline.module must be a test module the job collected (shard.collected), not 'conftest.py'"),
    "a collected module outside": (lambda d: d["shard"]["collected"].update({"../x.py": ["test_y"]}), "shard.collected['../x.py'] must be a path within the rootdir"),
    # from the second trial: the baseline entry the merge writes, and what else a job cannot have written
    "an entry with a budget no run has": (lambda d: _entry(d)["settings"].update(epsilon=-1), "shard.tests[0].baseline.entry is not the entry its run records (settings differ)"),
    "an entry with an image not attacked": (lambda d: _entry(d)["images"].update({"zzz/evil.png": _entry(d)["images"]["c.png"]}), "shard.tests[0].baseline.entry is not the entry its run records (images differ)"),
    "an entry with a command in a version": (lambda d: _entry(d)["versions"].update(python="3.11\n::error::x"), "shard.tests[0].baseline.entry is not the entry its run records (versions differ)"),
    "an entry of another model": (lambda d: _entry(d).update(model_fingerprint="sha256:" + "c" * 64), "shard.tests[0].baseline.entry is not the entry its run records (model_fingerprint differ)"),
    "a field no job writes": (lambda d: d["shard"].update(extra=[0] * 10), "shard.extra is not a field of a job's report"),
    "an exit status no process has": (lambda d: d["shard"].update(exit_status=2**70), "shard.exit_status must be a process's exit status (0 to 255)"),
    "a negative search range": (lambda d: _settings(d).update(minimal_epsilon={"max": -1.0, "precision": 0.0}), "settings: minimal_epsilon['max'] must be in [0, 1e+06], not -1.0"),
    "a negative seed": (lambda d: _settings(d).update(seed=-3), "settings: seed=-3: must be ≥ 0"),
    "a PNG with a script after it": (lambda d: _card(d).update(clean_png="iVBORw0KGgoAAAANSUhEUgAAABAAAAAQ\"><script>"), "clean_png must be base64 (A-Z, a-z, 0-9, +, /, = padding), not 'ABAAAAAQ\"><script>' (at 32)"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_a_crafted_report_is_refused_naming_the_field_and_writes_nothing(
    checkout: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
    case: str,
) -> None:
    change, says = CASES[case]
    reports = _crafted(checkout, change)
    before = sorted(str(path.relative_to(checkout)) for path in checkout.rglob("*"))
    status, out = _merge(*reports, "--report=merged.json", "--html=merged.html", "--markdown=merged.md")
    err = capsys.readouterr().err
    assert status == 2, out + err
    assert says in err, err
    assert err.startswith("advrobust merge: refused: ") and "r.shard2of2.json is not a job's report this" in err
    assert err.count("\n") == 1 and not any(line.lstrip().startswith("::") for line in err.splitlines())
    assert sorted(str(path.relative_to(checkout)) for path in checkout.rglob("*")) == before, "nothing is written"
    assert not Path("/nonexistent-advrobust-target").exists()


def test_deeply_nested_json_is_refused_in_one_line(checkout: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    one = _write(checkout / "r.shard1of2.json", _job(1))
    (checkout / "deep.json").write_text(NESTED)
    status, _ = _merge(one, "deep.json")
    err = capsys.readouterr().err
    assert (
        status == 2
        and err == "advrobust merge: refused: deep.json is not a job's report: its JSON is nested too deeply to read\n"
    )


def test_settings_that_are_text_reach_the_terminal_escaped(checkout: Path) -> None:  # noqa: F811
    """Well-typed but hostile text (an attack name that is a workflow command) is shown escaped."""

    def hostile(data: dict[str, Any]) -> None:
        for test in data["shard"]["tests"]:  # the run and the baseline entry it records, alike
            test["runs"][0]["settings"]["attack"] = "\n::error file=x::owned"
            test["baseline"]["entry"]["settings"]["attack"] = "\n::error file=x::owned"

    reports = _crafted(checkout, hostile)
    one = Path(reports[0])
    data = json.loads(one.read_text())
    hostile(data)
    one.write_text(json.dumps(data))
    status, out = _merge(*reports, "--markdown=m.md")
    assert status in (0, 1), out
    assert not any(line.lstrip().startswith("::") for line in out.splitlines()), out
    assert "\\n::error file=x::owned linf eps=0.05" in out


def test_a_number_python_cannot_read_is_refused_in_one_line(
    checkout: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    one = _write(checkout / "r.shard1of2.json", _job(1))
    (checkout / "big.json").write_text('{"schema_version": ' + "9" * 5000 + "}")
    status, _ = _merge(one, "big.json")
    err = capsys.readouterr().err
    assert status == 2 and err.startswith("advrobust merge: refused: big.json is not a job's report: "), err
    assert err.count("\n") == 1 and "4300" in err


@pytest.mark.parametrize("kind", ["fifo", "link to /dev/zero"])
def test_a_report_that_is_not_a_regular_file_is_refused_without_reading_it(
    checkout: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
    kind: str,
) -> None:
    one = _write(checkout / "r.shard1of2.json", _job(1))
    two = checkout / "r.shard2of2.json"
    if kind == "fifo":
        os.mkfifo(two)  # reading it would block for ever
    else:
        two.symlink_to("/dev/zero")  # reading it would never end
    status, _ = _merge(one, str(two))
    err = capsys.readouterr().err
    assert status == 2
    assert (
        err
        == f"advrobust merge: refused: {two} is not a regular file (a device, a FIFO or a socket), not a job's report\n"
    )


def test_a_test_one_report_lists_twice_counts_once_and_is_red(checkout: Path) -> None:  # noqa: F811
    """A job's report that lists its shard of a test twice: the flips are not counted twice, and the
    merge says which shard came twice."""
    one = _write(checkout / "r.shard1of2.json", _job(1))
    twice = _job(2)
    two = _write(checkout / "r.shard2of2.json", replace(twice, tests=twice.tests * 2))
    status, out = _merge(one, two, "--report=merged.json")
    assert status == 1, out
    assert "1 of 4 image(s) flipped" in out, out
    assert "test_m.py::test_x: shard 2 of 2 reported more than once" in out, out
    assert json.loads((checkout / "merged.json").read_text())["repeated_shards"] == {
        "test_m.py::test_x": ["test_m.py::test_x[shard2of2]"]
    }


def _module_job(k: int, module: str) -> Any:
    """Job k's report with its test in ``module`` (a path under the rootdir) instead of test_m.py."""
    job = _job(k)
    test = job.tests[0]
    assert test.baseline is not None
    status = replace(test.baseline, file=f"advrobust-baselines/{module}.json", module=module)
    nodeid = test.nodeid.replace("test_m.py", module)
    test = replace(test, nodeid=nodeid, test=test.test.replace("test_m.py", module), baseline=status)
    return replace(job, tests=[test], accounted={nodeid: test.shard}, collected={module: ["test_x"]})


@pytest.mark.parametrize("link", ["baseline folder", "a folder in it"])
def test_the_merge_never_writes_a_baseline_through_a_committed_link(
    checkout: Path,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
    link: str,
) -> None:
    """The checkout is the code under test: a link it commits in the baseline folder's way must not lead
    the merge's writes outside it."""
    outside = tmp_path_factory.mktemp("outside")
    baselines = checkout / "advrobust-baselines"
    if link == "baseline folder":
        shutil.rmtree(baselines)
        baselines.symlink_to(outside, target_is_directory=True)
    else:
        nested = "sub/test_m.py"
        (checkout / "sub").mkdir()
        (checkout / "sub" / "test_m.py").write_text("")
        (baselines / "sub").symlink_to(outside, target_is_directory=True)
    jobs = [_job(k) if link == "baseline folder" else _module_job(k, nested) for k in (1, 2)]
    reports = [_write(checkout / f"r.shard{k}of2.json", job) for k, job in enumerate(jobs, 1)]
    status, out = _merge(*reports)
    assert status == 1, out
    assert "could not write the baseline" in out and "outside" in out and "replace the link by a folder" in out, out
    assert list(outside.iterdir()) == [], "nothing is written outside the checkout"


def test_a_test_run_with_other_settings_in_another_job_is_refused(
    checkout: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Two jobs whose marker runs of one test used different ε are not one run, even when their recorded
    entries say what their runs did."""

    def other_budget(data: dict[str, Any]) -> None:
        _settings(data).update(epsilon=0.06)
        _entry(data)["settings"].update(epsilon=0.06)

    status, _ = _merge(*_crafted(checkout, other_budget))
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1, err
    assert (
        "these reports are not one run: test_m.py::test_x ran with epsilon 0.05 in " in err and " and 0.06 in " in err
    )


def test_a_huge_value_in_the_header_is_refused_in_a_short_line(
    checkout: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, _ = _merge(*_crafted(checkout, lambda data: data.update(zpad=[0] * 200_000)))
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and len(err) < 600, err[:600]
    assert "zpad (the run's, in the report's header) is None in " in err and "[0, 0, 0" in err and "…" in err


def test_a_job_that_reported_no_test_and_failed_says_so(checkout: Path) -> None:  # noqa: F811
    """A job whose pytest failed before any robustness test ran (a collection error) is red, and not said
    to have passed its tests."""
    one = _write(checkout / "r.shard1of2.json", _job(1))
    two = _write(checkout / "r.shard2of2.json", replace(_job(2), tests=[], accounted={}, exit_status=2))
    status, out = _merge(one, two)
    assert status == 1, out
    assert "pytest exited with status 2 and reported no robustness test (a collection error" in out, out
