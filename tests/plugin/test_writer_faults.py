"""Files that cannot be written: a path option that can never work is a usage error when pytest starts;
one that fails at the end fails alone, says which file and why, and makes the run's exit status non-zero."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

PASSING = """
from pytest_advrobust import adv_robust

@adv_robust(epsilon=0.0)
def test_held():
    pass
"""

BASELINE_FOLDER_TAKEN = """
from pathlib import Path
from pytest_advrobust import adv_robust

@adv_robust(epsilon=0.0)
def test_held():
    # after pytest checked its paths, something takes the baseline folder's place
    Path("advrobust-baselines").write_text("not a folder")
"""


def test_a_failing_baseline_writer_stops_no_other_report(project: pytest.Pytester) -> None:
    project.makepyfile(BASELINE_FOLDER_TAKEN)
    reports = ("--adv-report=out/r.json", "--adv-html=out/r.html", "--adv-markdown=out/r.md")
    result = project.runpytest("--adv-baseline-update", *reports)
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED, "a report asked for and not written must not look green"
    result.stdout.fnmatch_lines(["advrobust: could not write the baseline to advrobust-baselines*: *"])
    assert json.loads((project.path / "out" / "r.json").read_text())["tests"][0]["attacked"] == 4
    assert "test_held" in (project.path / "out" / "r.html").read_text(encoding="utf-8")
    assert "test\\_held" in (project.path / "out" / "r.md").read_text(encoding="utf-8")
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_each_failing_report_is_one_line_naming_its_path_and_why(project: pytest.Pytester) -> None:
    project.makepyfile(
        PASSING.replace("    pass", '    Path("out").rmdir(); Path("out").write_text("")').replace(
            "from pytest", "from pathlib import Path\nfrom pytest"
        )
    )
    (project.path / "out").mkdir()
    result = project.runpytest("--adv-html=out/r.html", "--adv-markdown=out/r.md", "--adv-report=ok.json")
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines_random(
        [
            "advrobust: could not write the HTML report to out/r.html: [[]Errno 17[]] File exists: out",
            "advrobust: could not write the Markdown summary to out/r.md: [[]Errno 17[]] File exists: out",
        ]
    )
    assert (project.path / "ok.json").is_file(), "the writer whose folder is fine still writes"


def test_a_permission_error_is_named_as_the_os_says_it(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_advrobust.core.errors import AdvRobustError
    from pytest_advrobust.plugin import writers

    def refused(path: Path, text: str) -> None:  # what the atomic writer raises in a folder root cannot enter
        temp = path.with_name(f".{path.name}.advrobust-0123abcd.tmp")
        raise AdvRobustError(f"cannot write {path}: Permission denied") from PermissionError(
            13, "Permission denied", str(temp)
        )

    monkeypatch.setattr(writers, "write_text", refused)
    project.makepyfile(PASSING)
    result = project.runpytest("--adv-html=reports/x.html")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        ["advrobust: could not write the HTML report to reports/x.html: [[]Errno 13[]] Permission denied"]
    )


def test_a_failed_run_keeps_its_own_exit_status(project: pytest.Pytester) -> None:
    project.makepyfile(
        BASELINE_FOLDER_TAKEN.replace("def test_held():", "def test_held():\n    assert False, 'red anyway'")
    )
    result = project.runpytest("--adv-baseline-update")
    result.assert_outcomes(failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED


@pytest.mark.parametrize("option", ["--adv-report", "--adv-html", "--adv-markdown"])
def test_a_report_path_that_is_a_folder_is_a_usage_error(project: pytest.Pytester, option: str) -> None:
    project.makepyfile(PASSING)
    (project.path / "reports").mkdir()
    result = project.runpytest(f"{option}=reports")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"ERROR: {option}=reports: reports is a folder; name a file in it, e.g. {option}=reports/*"]
    )


def test_a_job_of_a_matrix_refuses_a_report_folder_too_and_the_fix_works(project: pytest.Pytester) -> None:
    """A job writes its shard's copy (reports.shard1of2 beside the folder, missed by the workflow's upload of
    reports/): the folder is refused as in a run without --adv-shard, and the file it names is written."""
    project.makepyfile(PASSING)
    (project.path / "reports").mkdir()
    result = project.runpytest("--adv-shard=1/2", "--adv-report=reports")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: --adv-report=reports: reports is a folder; name a file in it, e.g. --adv-report=reports/report.json"]
    )
    assert sorted(path.name for path in project.path.iterdir() if path.name.startswith("reports")) == ["reports"]

    fixed = project.runpytest("--adv-shard=1/2", "--adv-report=reports/report.json")
    assert fixed.ret == pytest.ExitCode.OK
    assert (project.path / "reports" / "report.shard1of2.json").is_file()


@pytest.mark.parametrize(
    "given",
    [("--adv-report=out/",), ("-o", "adv_report=out/"), ("--adv-shard=1/2", "--adv-html=out/")],
    ids=["flag", "ini override", "job"],
)
def test_a_report_path_ending_in_a_slash_names_a_folder_and_is_a_usage_error(
    project: pytest.Pytester, given: tuple[str, ...]
) -> None:
    """``out/`` would otherwise be written as a file called ``out`` (or ``out.shard1of2``) without a word."""
    project.makepyfile(PASSING)
    result = project.runpytest(*given)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: *out/*: ends in '/', so it names a folder; name a file in it, e.g. out/report.*"]
    )
    assert not any(path.name.startswith("out") for path in project.path.iterdir()), "nothing is written"


def test_a_report_path_under_a_file_is_a_usage_error(project: pytest.Pytester) -> None:
    project.makepyfile(PASSING)
    (project.path / "x.txt").write_text("a file")
    result = project.runpytest("--adv-report=x.txt/sub/report.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --adv-report=x.txt/sub/report.json: x.txt is a file, not a folder; *"])
    assert (project.path / "x.txt").read_text() == "a file"


def test_a_report_in_a_read_only_folder_is_a_usage_error(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.makepyfile(PASSING)
    locked = project.path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    if os.access(locked, os.W_OK):  # root writes anywhere: let the check see what a user would
        real_access = os.access
        monkeypatch.setattr(
            os, "access", lambda path, mode, **kw: Path(path) != locked and real_access(path, mode, **kw)
        )
    try:
        result = project.runpytest("--adv-html=locked/new/r.html")
    finally:
        locked.chmod(0o755)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --adv-html=locked/new/r.html: the folder locked is not writable; *"])
    assert list(locked.iterdir()) == [], "nothing created"


def test_artifacts_pointing_at_a_file_is_a_usage_error(project: pytest.Pytester) -> None:
    project.makepyfile(PASSING)
    (project.path / "art").write_text("a file")
    result = project.runpytest("--adv-artifacts=art")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --adv-artifacts=art: art is a file, not a folder; *"])


def test_a_baseline_folder_that_is_a_file_is_a_usage_error_when_updating(project: pytest.Pytester) -> None:
    project.makepyfile(PASSING)
    (project.path / "base").write_text("a file")
    result = project.runpytest("--adv-baseline-dir=base", "--adv-baseline-update")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --adv-baseline-dir=base: base is a file, not a folder; *"])
    (project.path / "advrobust-baselines").write_text("a file")
    default = project.runpytest("--adv-baseline-update")
    assert default.ret == pytest.ExitCode.USAGE_ERROR
    default.stderr.fnmatch_lines(
        ["ERROR: the default --adv-baseline-dir=advrobust-baselines: advrobust-baselines is a file, not a folder; *"]
    )


def test_folders_that_do_not_exist_yet_are_created_at_the_end(project: pytest.Pytester) -> None:
    project.makepyfile(PASSING.replace("epsilon=0.0", "epsilon=0.05"))
    result = project.runpytest(
        "--adv-report=a/b/r.json", "--adv-html=c/r.html", "--adv-markdown=d/e/r.md", "--adv-artifacts=f/g"
    )
    result.assert_outcomes(failed=1)
    for path in ("a/b/r.json", "c/r.html", "d/e/r.md"):
        assert (project.path / path).is_file()
    assert (project.path / "f" / "g").is_dir()
