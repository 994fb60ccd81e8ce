"""On GitHub Actions a failing robustness test is also an error annotation on its ``def`` line."""

from __future__ import annotations

import pytest

from helpers import WEAK_AND_STRONG_TESTS
from pytest_advrobust.core.results.github import error_command, escape_data, escape_property

MULTI_LINE_DECORATOR = """
from pytest_advrobust import adv_robust

@adv_robust(
    epsilon=0.05, attack="bim", targets="untargeted", class_names=[f"c{i}" for i in range(10)],
)
def test_weak():
    pass

def test_assert_robust(adv_attack):
    adv_attack(epsilon=0.05, attack="bim", targets="untargeted").assert_robust()

def test_other_failure():
    assert False
"""


def _annotations(result: pytest.RunResult) -> list[str]:
    return [line for line in result.stdout.lines if line.startswith("::")]


def test_a_failing_test_is_annotated_on_its_def_line(project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    project.makepyfile(test_ci=MULTI_LINE_DECORATOR)
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_WORKSPACE", str(project.path.parent))
    result = project.runpytest()
    result.assert_outcomes(failed=3)
    weak, assert_robust = _annotations(result)
    file = f"{project.path.name}/test_ci.py"
    assert weak.startswith(
        f"::error file={file},line=6,title=adversarial robustness%3A test_weak::"
        "3 of 4 image(s) flipped at eps=0.05 (bim): c9 -> c7, c7 -> c4, c3 -> c9%0Aflipped (3):%0A"
        "  image 0: 'c9' 0.14 -> 'c7' 0.14 at eps=0.05, step 1/10%0A"
    )
    assert weak.endswith("reproduce with: pytest test_ci.py::test_weak --adv-seed=0")
    assert assert_robust.startswith(
        f"::error file={file},line=9,title=adversarial robustness%3A test_assert_robust::3 of 4 image(s) flipped"
    )


def test_without_github_actions_there_is_no_annotation(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.makepyfile(WEAK_AND_STRONG_TESTS)
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    result = project.runpytest()
    result.assert_outcomes(passed=1, failed=1)
    assert _annotations(result) == []


def test_paths_start_at_the_rootdir_without_a_workspace(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.makepyfile(WEAK_AND_STRONG_TESTS)
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.delenv("GITHUB_WORKSPACE", raising=False)
    (annotation,) = _annotations(project.runpytest())
    assert annotation.startswith("::error file=test_paths_start_at_the_rootdir_without_a_workspace.py,line=4,")


def test_escaping_follows_the_runner_rules() -> None:
    assert escape_data("100% sure\r\nnext: a,b") == "100%25 sure%0D%0Anext: a,b"
    assert escape_property("a:b,c%\n") == "a%3Ab%2Cc%25%0A"
    assert (
        error_command("x: 5%\ny", file="tests/t.py", line=3, title="test_a[1,2]")
        == "::error file=tests/t.py,line=3,title=test_a[1%2C2]::x: 5%25%0Ay"
    )


def test_a_workspace_reached_through_a_symlink_gives_the_repository_path(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.makepyfile(test_ci=MULTI_LINE_DECORATOR)
    link = project.path.parent / f"{project.path.name}-link"
    link.symlink_to(project.path, target_is_directory=True)
    monkeypatch.chdir(link)
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_WORKSPACE", str(link))
    result = project.runpytest(str(link / "test_ci.py"))
    assert _annotations(result)[0].startswith("::error file=test_ci.py,line=6,")


def test_an_annotation_leaves_out_the_images_that_held() -> None:
    from pytest_advrobust.plugin.annotations import _message

    text = "1 of 3 flipped\nflipped (1):\n  a.png: x -> y\nheld (2):\n  b.png: held\n  c.png: held\nseed 0"
    assert _message(text) == "1 of 3 flipped\nflipped (1):\n  a.png: x -> y\nseed 0"
