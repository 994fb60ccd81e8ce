"""Regression checks for retrained models on a validation set: the statistical baseline rule passes
retrains of one recipe and fails a weaker one; a minimum robust accuracy replaces "any flip fails"; both
judge a sharded test on all its shards, in one process and in a CI matrix's merge, alike.

The models are linear classifiers of 200 random 8×8 images: a reference ``W0`` (whose predictions are the
labels) plus seeded noise, 0.2 for the recipe's retrains (A is the baseline, B and D retrains), 0.5 for the
weaker C. Their outcomes depend on the noise (integer-seeded, the same on every machine), not on float
rounding: robust accuracy 48.0% (A), 46.5% (B), 54.0% (D), 22.0% (C) at ε = 0.03 under one FGSM step.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

CONFTEST = """
import pytest, torch
from torch import nn

X = torch.rand(200, 1, 8, 8, generator=torch.Generator().manual_seed(0))
W0 = torch.randn(10, 64, generator=torch.Generator().manual_seed(1))
Y = (X.flatten(1) @ W0.T).argmax(1)
RETRAINS = {"a": (0, 0.2), "b": (1, 0.2), "d": (2, 0.2), "c": (4, 0.5)}

def pytest_addoption(parser):
    parser.addoption("--which", default="a")
    parser.addoption("--count", type=int, default=200)  # the validation set grows after a baseline

@pytest.fixture(scope="session")
def adv_model(pytestconfig):
    seed, sigma = RETRAINS[pytestconfig.getoption("--which")]
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    with torch.no_grad():
        model[1].weight.copy_(W0 + sigma * torch.randn(10, 64, generator=torch.Generator().manual_seed(100 + seed)))
        model[1].bias.zero_()
    return model.eval()

@pytest.fixture
def adv_images(pytestconfig):
    count = pytestconfig.getoption("--count")
    return X[:count], Y[:count]
"""

TESTS = """
from pytest_advrobust import adv_robust

@adv_robust
def test_digits():
    pass
"""

INI = "[pytest]\nadv_attack = fgsm\nadv_targets = untargeted\nadv_epsilon = 0.03\n"
A, B, C = "48.0% (95% CI 40.9–55.2%)", "46.5% (95% CI 39.4–53.7%)", "22.0% (95% CI 16.5–28.4%)"


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    pytester.makeini(INI)
    pytester.makepyfile(test_digits=TESTS)
    return pytester


@pytest.fixture
def recorded(project: pytest.Pytester) -> pytest.Pytester:
    """The project with model A's baseline recorded."""
    project.runpytest("--which=a", "--adv-baseline-update").assert_outcomes(passed=1)
    return project


def test_the_image_rule_fails_a_retrain_of_the_same_recipe_and_points_at_the_statistical_rule(
    recorded: pytest.Pytester,
) -> None:
    result = recorded.runpytest("--which=b")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "robustness regressed against the baseline in advrobust-baselines/test_digits.py.json: *",
            f"on all 200 image(s) both runs attacked: robust accuracy {A} -> {B}, change -1.5 pt (95% CI *); "
            "22 lost, 19 gained (McNemar's exact one-sided p = 0.378). On a validation set every retrain differs "
            "image by image: --adv-baseline-rule=statistical fails only a significant drop",
        ]
    )


@pytest.mark.parametrize(
    ("which", "spelling"),
    [("b", ["--adv-baseline-rule=statistical"]), ("d", ["-o", "adv_baseline_rule=statistical"])],
)
def test_the_statistical_rule_passes_retrains_of_the_same_recipe(
    recorded: pytest.Pytester, which: str, spelling: list[str]
) -> None:
    result = recorded.runpytest(f"--which={which}", *spelling)
    result.assert_outcomes(passed=1)
    now = {
        "b": "46.5% on 200 image(s), 22 lost, 19 gained, p = 0.378",
        "d": "54.0% on 200 image(s), 15 lost, 27 gained",
    }
    result.stdout.fnmatch_lines([f"    baseline: statistical: 48.0% -> {now[which]}*"])


def test_the_statistical_rule_fails_a_weaker_retrain_naming_both_robust_accuracies(recorded: pytest.Pytester) -> None:
    recorded.makeini(INI + "adv_baseline_rule = statistical\n")
    result = recorded.runpytest("--which=c")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "robustness regressed against the baseline in advrobust-baselines/test_digits.py.json: robust accuracy "
            "dropped significantly (48.0% -> 22.0%, McNemar's p = *)",
            f"on the 200 image(s) both runs attacked: robust accuracy {A} in the baseline -> {C} now, change -26.0 pt "
            "(95% CI -* to -* pt)",
            "74 image(s) held in the baseline and fail now, 22 the other way: McNemar's exact one-sided p = * (fails "
            "below 0.025: α = 0.05 over two tests)",
            "minimal eps of * image(s) classified correctly in both: median change *, Wilcoxon signed-rank one-sided "
            "p = * for a drop beyond the tolerance 0.0005",
            "against the baseline: * regression(s)*",
            "accept the current results as the baseline with: pytest test_digits.py::test_digits --which=c "
            "--adv-seed=0 --adv-baseline-update",
        ]
    )
    # the next step: accepting C as the new baseline, then comparing C with it
    recorded.runpytest("test_digits.py::test_digits", "--which=c", "--adv-baseline-update").assert_outcomes(passed=1)
    recorded.runpytest("--which=c").assert_outcomes(passed=1)


def test_the_rule_from_the_marker(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_digits="""
from pytest_advrobust import adv_robust

@adv_robust(baseline_rule="statistical", confidence=0.99)
def test_digits():
    pass
"""
    )
    project.runpytest("--which=a", "--adv-baseline-update").assert_outcomes(passed=1)
    result = project.runpytest("--which=c")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*robust accuracy 48.0% (99% CI * in the baseline -> 22.0% (99% CI *", "*(fails below 0.005: *"]
    )


def test_a_minimum_robust_accuracy_replaces_any_flip_fails(project: pytest.Pytester) -> None:
    project.runpytest("--which=a", "--adv-min-robust-accuracy=0.4").assert_outcomes(passed=1)
    result = project.runpytest("--which=a", "--adv-min-robust-accuracy=50%")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            f"robust accuracy {A} of 200 image(s) is below the minimum 50.0% (min_robust_accuracy=0.5)",
            "* of 200 image(s) flipped at eps=0.03 (fgsm): *",
            "flipped (*):",
            "  image *: '*' * -> '*' * at eps=0.03, step 1/1*",
        ]
    )
    project.makeini(INI + "adv_min_robust_accuracy = 0.48\n")  # exactly reached: passes
    project.runpytest("--which=a").assert_outcomes(passed=1)
    project.makepyfile(
        test_digits="from pytest_advrobust import adv_robust\n\n@adv_robust(min_robust_accuracy=0.49)\ndef test_digits():\n    pass\n"
    )
    project.runpytest("--which=a").assert_outcomes(failed=1)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--adv-min-robust-accuracy=1.5"], "*--adv-min-robust-accuracy=1.5*must be a fraction between 0 and 1*"),
        (["--adv-min-robust-accuracy=60"], "*did you mean 0.6, or 60%?*"),
        (["--adv-confidence=1"], "*--adv-confidence=1*must be strictly between 0 and 1*"),
        (["--adv-confidence=95"], "*did you mean 0.95?*"),
        (["--adv-baseline-rule=statistic"], "*--adv-baseline-rule=statistic*did you mean statistical?*"),
        (["-o", "adv_baseline_rule=pairs"], "*-o adv_baseline_rule=pairs*must be one of images, statistical*"),
    ],
)
def test_bad_values_are_usage_errors_naming_the_option(project: pytest.Pytester, args: list[str], message: str) -> None:
    result = project.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_a_bad_value_in_the_marker_fails_at_import_naming_it(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_digits="from pytest_advrobust import adv_robust\n\n@adv_robust(confidence=0)\ndef test_digits():\n    pass\n"
    )
    result = project.runpytest()
    result.stdout.fnmatch_lines(["*confidence=0*must be strictly between 0 and 1*"])


def test_a_sharded_test_is_judged_on_all_its_shards_by_the_last_to_report(project: pytest.Pytester) -> None:
    passing = project.runpytest("--which=a", "--adv-shards=3", "--adv-min-robust-accuracy=0.4")
    passing.assert_outcomes(passed=3)
    result = project.runpytest("--which=a", "--adv-shards=3", "--adv-min-robust-accuracy=0.5", "-rA")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "judged on all 3 shards of test_digits.py::test_digits together (200 image(s)):",
            f"robust accuracy {A} of 200 image(s) is below the minimum 50.0% (min_robust_accuracy=0.5)",
            f"test_digits.py::test_digits: 200 attacked in 3 shards, * flipped, * misclassified, robust accuracy {A} "
            "(fgsm linf eps=0.03 seed=0)",
            "FAILED test_digits.py::test_digits[[]shard3of3[]] - judged on all 3 shards *",
        ]
    )


def test_a_sharded_statistical_comparison_is_the_unsharded_one(project: pytest.Pytester) -> None:
    project.runpytest("--which=a", "--adv-shards=3", "--adv-baseline-update").assert_outcomes(passed=3)
    same = project.runpytest("--which=b", "--adv-shards=3", "--adv-baseline-rule=statistical")
    same.assert_outcomes(passed=3)
    same.stdout.fnmatch_lines(
        ["    baseline: statistical: 48.0% -> 46.5% on 200 image(s), 22 lost, 19 gained, p = 0.378"]
    )
    weaker = project.runpytest("--which=c", "--adv-shards=3", "--adv-baseline-rule=statistical")
    weaker.assert_outcomes(passed=2, failed=1)
    weaker.stdout.fnmatch_lines(["*robust accuracy dropped significantly (48.0% -> 22.0%, McNemar's p = *"])


def _report(project: pytest.Pytester, name: str) -> dict:
    return json.loads((project.path / name).read_text(encoding="utf-8"))


def test_a_ci_matrix_merge_gives_the_intervals_and_verdicts_of_one_process(project: pytest.Pytester) -> None:
    from pytest_advrobust.__main__ import main

    gate = ["--which=a", "--adv-min-robust-accuracy=0.5"]
    one = project.runpytest(*gate, "--adv-shards=2", "--adv-report=one.json")
    one.assert_outcomes(passed=1, failed=1)
    for k in (1, 2):
        job = project.runpytest(*gate, f"--adv-shard={k}/2", "--adv-report=job.json")
        job.assert_outcomes(passed=1)  # a job has one shard: the merge judges them together
    out = project.path / "merge.txt"
    with out.open("w", encoding="utf-8") as stream:
        status = main(["merge", str(project.path / "job.shard1of2.json"), str(project.path / "job.shard2of2.json"),
                       f"--report={project.path / 'merged.json'}", f"--rootdir={project.path}"], environ={}, out=stream)  # fmt: skip
    printed = out.read_text(encoding="utf-8")
    assert status == 1, printed
    assert (
        f"advrobust: robust accuracy {A} of 200 image(s) is below the minimum 50.0% (min_robust_accuracy=0.5)"
        in printed
    )
    (single,), (merged,) = _report(project, "one.json")["tests"], _report(project, "merged.json")["tests"]
    assert merged["robust_accuracy_interval"] == single["robust_accuracy_interval"]
    assert merged["robust_accuracy_interval"] == {
        "low": pytest.approx(0.409, abs=0.001),
        "high": pytest.approx(0.552, abs=0.001),
        "confidence": 0.95,
    }
    assert merged["robust_accuracy"] == single["robust_accuracy"] == 0.48


def test_every_report_shows_the_interval_and_the_html_draws_both_curves(recorded: pytest.Pytester) -> None:
    result = recorded.runpytest("--which=b", "--adv-baseline-rule=statistical", "--adv-report=r.json",
                                "--adv-markdown=s.md", "--adv-html=r.html")  # fmt: skip
    result.assert_outcomes(passed=1)
    (test,) = _report(recorded, "r.json")["tests"]
    assert test["robust_accuracy_interval"]["confidence"] == 0.95
    curve = test["robustness_curve"]
    clean = (test["attacked"] - test["misclassified"]) / test["attacked"]
    assert curve["epsilon"][0] == 0 and curve["robust_accuracy"][0] == clean, "the curve starts at clean accuracy"
    assert curve["robust_accuracy"] == sorted(curve["robust_accuracy"], reverse=True)
    statistics = test["baseline"]["statistics"]
    assert (statistics["paired"], statistics["lost"], statistics["gained"], statistics["failed"]) == (
        200,
        22,
        19,
        False,
    )
    assert "robustness_curve" in test["baseline"]
    assert B in (recorded.path / "s.md").read_text(encoding="utf-8")
    page = (recorded.path / "r.html").read_text(encoding="utf-8")
    assert B in page and page.count("<path d=") == 2, "the test's curve and the baseline's"
    assert "robust accuracy as a function of ε" in page


def test_under_xdist_the_controller_judges_the_shards_together(project: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    result = project.runpytest_subprocess("-n", "2", "--which=a", "--adv-shards=2", "--adv-min-robust-accuracy=0.5")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "judged on all 2 shards of test_digits.py::test_digits together (200 image(s)):",
            f"robust accuracy {A} of 200 image(s) is below the minimum 50.0% (min_robust_accuracy=0.5)",
        ]
    )


def test_a_shard_that_never_reports_leaves_the_test_red_and_unjudged(project: pytest.Pytester) -> None:
    project.makeconftest(
        CONFTEST
        + """
@pytest.fixture(autouse=True)
def _shard_two_breaks(request):
    if "shard2of3" in request.node.name:
        raise RuntimeError("the worker ran out of memory")
"""
    )
    result = project.runpytest("--which=a", "--adv-shards=3", "--adv-min-robust-accuracy=0.4")
    result.assert_outcomes(passed=2, errors=1)
    assert "judged on all" not in result.stdout.str(), "two shards of three are not the test's images"
    result.stdout.fnmatch_lines(["advrobust: test_digits.py::test_digits: shard 2 of 3 did not report*"])


def test_images_added_after_the_baseline_are_named_and_left_out(project: pytest.Pytester) -> None:
    project.runpytest("--which=a", "--count=180", "--adv-baseline-update").assert_outcomes(passed=1)
    result = project.runpytest("--which=b", "--adv-baseline-rule=statistical", "--adv-report=r.json")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["    baseline: statistical: * on 180 image(s), *; not compared: 20 new, 0 missing"])
    (test,) = _report(project, "r.json")["tests"]
    assert len(test["baseline"]["fresh"]) == 20 and test["baseline"]["statistics"]["paired"] == 180
    weaker = project.runpytest("--which=c", "--adv-baseline-rule=statistical")
    weaker.stdout.fnmatch_lines(
        ["20 new image(s), not in the baseline (* fail now): left out of the tests; re-record *"]
    )


def test_the_printed_commands_carry_what_the_command_line_set(project: pytest.Pytester) -> None:
    """A command-line value equal to the default still overrides the ini file (ε = 0.03 here): the printed
    command passes it on, and pasted from another folder it gives the same verdict."""
    result = project.runpytest("--which=c", "--adv-epsilon=0.007", "-o", "adv_baseline_rule=images")
    result.assert_outcomes(failed=1)
    (command,) = {line.split("reproduce with: ", 1)[1] for line in result.outlines if "reproduce with: " in line}
    assert "--adv-epsilon=0.007" in command and "--which=c" in command
    elsewhere = project.path / "sub"
    elsewhere.mkdir()
    words = command.split()
    words[1] = "../" + words[1]
    again = subprocess.run([sys.executable, "-m", *words, "-p", "no:cacheprovider"], cwd=elsewhere,
                           capture_output=True, text=True)  # fmt: skip
    assert again.returncode == 1 and "at eps=0.007" in again.stdout, again.stdout + again.stderr


def test_a_selection_of_shards_is_judged_as_such_and_the_whole_test_is_reproduced(project: pytest.Pytester) -> None:
    gate = ["--which=a", "--adv-shards=3", "--adv-min-robust-accuracy=0.5"]
    some = project.runpytest(*gate, "-k", "shard1of3 or shard2of3")
    some.assert_outcomes(passed=1, failed=1)
    some.stdout.fnmatch_lines(["judged on the 2 of 3 shards this run selected of test_digits.py::test_digits, the "
                               "others not run together (133 image(s)):"])  # fmt: skip
    everything = project.runpytest(*gate)
    (command,) = {line.split("reproduce with: ", 1)[1] for line in everything.outlines if "reproduce with: " in line}
    assert command.startswith("pytest test_digits.py::test_digits ") and "[shard" not in command
    again = project.runpytest(*command.split()[1:])
    again.assert_outcomes(passed=2, failed=1)
    again.stdout.fnmatch_lines([f"robust accuracy {A} of 200 image(s) is below the minimum 50.0% *"])


def test_the_minimal_epsilon_search_reaches_the_tests_epsilon(project: pytest.Pytester) -> None:
    """With ε above the search's default top (16/255), the top is raised to ε: every image that flips
    has a minimal ε at or below ε, and the curve ends at ε with the robust accuracy."""
    result = project.runpytest("--which=a", "--adv-epsilon=0.1", "--adv-minimal-epsilon", "--adv-report=r.json",
                               "--adv-min-robust-accuracy=0")  # fmt: skip
    result.assert_outcomes(passed=1)
    (test,) = _report(project, "r.json")["tests"]
    flipped = [image for image in test["images"] if image["flipped"] and not image["misclassified"]]
    assert flipped and all(
        image["minimal_epsilon"] is not None and image["minimal_epsilon"] <= 0.1 for image in flipped
    )
    assert test["settings"][0]["minimal_epsilon"]["max"] == 0.1
    curve = test["robustness_curve"]
    assert curve["epsilon"][-1] == 0.1 and curve["robust_accuracy"][-1] == pytest.approx(test["robust_accuracy"])
