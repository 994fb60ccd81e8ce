"""The Markdown summary: --adv-markdown=FILE, and GitHub's job summary ($GITHUB_STEP_SUMMARY), appended."""

from __future__ import annotations

import pytest

from helpers import MANY_FLIPS, WEAK_AND_STRONG_TESTS
from pytest_advrobust.core.results.markdown import SHOWN_FAILURES, escape

HEADING = "## Adversarial robustness: 3 of 8 image(s) flipped"


def test_the_summary_names_each_test_and_each_flip(project: pytest.Pytester) -> None:
    project.makepyfile(WEAK_AND_STRONG_TESTS)
    result = project.runpytest("--adv-markdown=out/summary.md")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["advrobust: Markdown summary written to out/summary.md"])
    text = (project.path / "out" / "summary.md").read_text(encoding="utf-8")
    module = "test\\_the\\_summary\\_names\\_each\\_test\\_and\\_each\\_flip.py"
    assert text.startswith(HEADING + "\n")
    assert f"| ❌ | {module}::test\\_weak | 4 | 3 | 0 | 25.0% (95% CI 0.6–80.6%) |" in text
    assert f"| ✅ | {module}::test\\_strong | 4 | 0 | 0 | 100.0% (95% CI 39.8–100.0%) |" in text
    assert "### Images that failed (3)" in text
    assert f"| {module}::test\\_weak | image 0 | c9 0.14 → **c7** 0.14 | 0.05 | 1/10 |" in text
    assert "minimal ε" not in text and "baseline" not in text, "no columns for what the run did not use"
    assert "shown;" not in text, "no cut-off note under the cap"


def test_a_github_job_summary_is_appended_to_not_overwritten(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.makepyfile(WEAK_AND_STRONG_TESTS)
    summary = project.path / "step-summary.md"
    summary.write_text("# Build\nan earlier step's summary", encoding="utf-8")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    first = project.runpytest()
    first.stdout.fnmatch_lines(["advrobust: summary appended to $GITHUB_STEP_SUMMARY (the run's page)"])
    project.runpytest("-k", "weak")
    text = summary.read_text(encoding="utf-8")
    assert text.startswith("# Build\nan earlier step's summary\n" + HEADING)
    assert text.count("## Adversarial robustness:") == 2
    assert "\n## Adversarial robustness: 3 of 4 image(s) flipped\n" in text, "the second run's own summary"


@pytest.mark.parametrize("off", [["--adv-no-github-summary"], ["-o", "adv_github_summary=false"]])
def test_the_job_summary_can_be_turned_off(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, off: list[str]
) -> None:
    project.makepyfile(WEAK_AND_STRONG_TESTS)
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(project.path / "step-summary.md"))
    result = project.runpytest(*off, "--adv-markdown=s.md")
    assert not (project.path / "step-summary.md").exists()
    assert (project.path / "s.md").read_text(encoding="utf-8").startswith(HEADING), "an explicit file is still written"
    assert "$GITHUB_STEP_SUMMARY" not in result.stdout.str()


def test_a_suite_without_robustness_tests_adds_nothing_to_the_job_summary(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.makepyfile("def test_plain():\n    pass\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(project.path / "step-summary.md"))
    project.runpytest().assert_outcomes(passed=1)
    assert not (project.path / "step-summary.md").exists()


def test_a_bad_ini_value_is_a_usage_error(project: pytest.Pytester) -> None:
    project.makeini("[pytest]\nadv_github_summary = sometimes\n")
    result = project.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: adv_github_summary = sometimes in tox.ini: must be true or false*"])


def test_a_long_list_is_cut_with_a_pointer_to_the_full_reports(project: pytest.Pytester) -> None:
    project.makepyfile(MANY_FLIPS)
    project.runpytest("--adv-markdown=s.md", "--adv-report=r.json")
    text = (project.path / "s.md").read_text(encoding="utf-8")
    rows = [line for line in text.splitlines() if line.startswith("| test\\_a\\_long")]
    failed = int(text.split("### Images that failed (")[1].split(")")[0])
    assert failed > SHOWN_FAILURES
    assert len(rows) == SHOWN_FAILURES
    assert f"{SHOWN_FAILURES} of {failed} shown; all of them are in `r.json`." in text


def test_names_cannot_break_the_table_or_inject_markup() -> None:
    assert escape("a|b") == "a\\|b"
    assert escape("<img src=x>") == "\\<img src=x\\>"
    assert escape("**bold** [link](x) `code`\nnext") == "\\*\\*bold\\*\\* \\[link\\](x) \\`code\\` next"


def test_what_failed_the_run_comes_first_and_known_flips_are_marked(project: pytest.Pytester) -> None:
    """The next run after recording a baseline with flips: those flips are allowed (⚠️, listed last and
    marked), a new test without a baseline fails (❌), and the status follows pytest's outcome."""
    project.makepyfile(WEAK_AND_STRONG_TESTS)
    project.runpytest("--adv-baseline-update")
    project.makepyfile(
        test_new=WEAK_AND_STRONG_TESTS.replace("test_weak", "test_new_weak").replace("test_strong", "test_new_strong")
    )
    result = project.runpytest("--adv-markdown=s.md")
    result.assert_outcomes(passed=3, failed=1)
    text = (project.path / "s.md").read_text(encoding="utf-8")
    assert "| ⚠️ | test\\_what" in text and "::test\\_weak |" in text
    assert "| ❌ | test\\_new.py::test\\_new\\_weak |" in text
    rows = [line for line in text.splitlines() if "| image " in line and "| image |" not in line]
    assert [("test\\_new.py" in row) for row in rows] == [True] * 3 + [False] * 3, "the new failures first"
    assert all(row.count("(known to the baseline)") == ("test\\_new.py" not in row) for row in rows)
    strict = project.runpytest("--adv-baseline-strict", "--adv-markdown=strict.md", "test_new.py")
    strict.stdout.fnmatch_lines(
        ["*3 of 4 image(s) flipped*", "*no baseline for test_new_strong in *--adv-baseline-strict*"]
    )
    text = (project.path / "strict.md").read_text(encoding="utf-8")
    assert "| ❌ | test\\_new.py::test\\_new\\_strong | 4 | 0 | 0 | 100.0% (95% CI 39.8–100.0%) |" in text, (
        "it failed, with nothing flipped"
    )
