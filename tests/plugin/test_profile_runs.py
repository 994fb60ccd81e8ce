"""Profiles, EOT and AutoAttack's sequence as a user meets them: ``--adv-profile`` in the header and the
sources, a conftest's own profile, the reproduce command of a red build, baselines across profiles, a
randomized model refused then judged with ``--adv-eot`` reproducibly, and a gradient-masking model that only
``thorough`` catches."""

from __future__ import annotations

import json
import shlex

import pytest

MARKED = """
from pytest_advrobust import adv_robust

@adv_robust(epsilon=0.05)
def test_profiled(adv_config):
    print("SOURCE", adv_config.source("attack").kind, adv_config.attack, adv_config.resolved_steps)

@adv_robust(epsilon=0.0, attack="bim", steps=3)
def test_own_attack(adv_config):
    print("SOURCE", adv_config.source("attack").kind, adv_config.attack, adv_config.resolved_steps)
"""


def test_a_profile_sets_what_nothing_else_sets(project: pytest.Pytester) -> None:
    project.makepyfile(test_model=MARKED)
    result = project.runpytest("--adv-profile=quick", "-s", "-p", "no:randomly")
    result.assert_outcomes(failed=1, passed=1)  # quick's one FGSM step flips at 0.05; ε=0 holds
    result.stdout.fnmatch_lines(
        ["advrobust: profile=quick attack=fgsm norm=linf epsilon=0.007 steps=1 *targets=untargeted*"]
    )
    result.stdout.fnmatch_lines(["*SOURCE profile fgsm 1", "*SOURCE marker bim 3"])
    # the red test's reproduce command names the profile and, pasted as printed, gives the same verdict
    line = next(line for line in result.stdout.lines if "reproduce with: pytest" in line)
    command = shlex.split(line.split("reproduce with: ", 1)[1])
    assert "--adv-profile=quick" in command
    rerun = project.runpytest_subprocess(*command[1:], "-p", "no:randomly")
    rerun.assert_outcomes(failed=1)
    rerun.stdout.fnmatch_lines(["advrobust: profile=quick attack=fgsm *"])


def test_a_conftest_registers_its_own_profile_and_a_typo_is_refused(project: pytest.Pytester) -> None:
    project.makeconftest(
        (project.path / "conftest.py").read_text()
        + '\nimport pytest_advrobust\npytest_advrobust.register_profile("nightly", attack="bim", steps=4)\n'
    )
    project.makepyfile(test_model=MARKED)
    result = project.runpytest("-o", "adv_profile=nightly", "-s", "-p", "no:randomly")
    result.stdout.fnmatch_lines(["advrobust: profile=nightly attack=bim norm=linf epsilon=0.007 steps=4 *"])
    result.stdout.fnmatch_lines(["*SOURCE profile bim 4"])
    typo = project.runpytest("--adv-profile=nighlty")
    assert typo.ret == pytest.ExitCode.USAGE_ERROR
    typo.stderr.fnmatch_lines(["*--adv-profile=nighlty: unknown profile 'nighlty': the profiles are quick, "
                               "standard, thorough, nightly*register_profile*"])  # fmt: skip


def test_a_baseline_made_under_one_profile_is_not_compared_under_another(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_model="""
        from pytest_advrobust import adv_robust

        @adv_robust(epsilon=0.0)
        def test_held():
            pass
        """
    )
    project.runpytest("--adv-baseline-update").assert_outcomes(passed=1)
    stored = json.loads((project.path / "advrobust-baselines" / "test_model.py.json").read_text())
    assert stored["tests"]["test_held"]["settings"]["profile"] == "standard"
    project.runpytest().stdout.no_fnmatch_line("*cannot compare*")
    other = project.runpytest("--adv-profile=quick")
    other.assert_outcomes(passed=1)
    other.stdout.fnmatch_lines(["    baseline: cannot compare: settings differ"])
    # the next step: strict, the quick run fails and says how to keep its own baselines beside the standard ones
    strict = project.runpytest("--adv-profile=quick", "--adv-baseline-strict")
    strict.assert_outcomes(failed=1)
    strict.stdout.fnmatch_lines(["*to replace the baseline in * (recorded with other settings) with these results: "
                                 "*; to keep both, give these settings their own folder: add --adv-baseline-dir=DIR*"])  # fmt: skip
    before = (project.path / "advrobust-baselines" / "test_model.py.json").read_bytes()
    project.runpytest("--adv-profile=quick", "--adv-baseline-dir=quick", "--adv-baseline-update").assert_outcomes(
        passed=1
    )
    project.runpytest("--adv-profile=quick", "--adv-baseline-dir=quick", "--adv-baseline-strict").assert_outcomes(
        passed=1
    )
    assert (project.path / "advrobust-baselines" / "test_model.py.json").read_bytes() == before


NOISY = """
import pytest, torch
from torch import nn
from pytest_advrobust import adv_robust

class Noisy(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.inner = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10))
    def forward(self, x):
        return self.inner(x + 0.05 * torch.randn_like(x))  # noise injection: random by design

@pytest.fixture(scope="session")
def adv_model():
    return Noisy()

@adv_robust(epsilon=0.02)
def test_noisy():
    pass
"""


def test_a_randomized_model_is_refused_then_judged_with_eot_the_same_on_every_run(project: pytest.Pytester) -> None:
    project.makepyfile(test_model=NOISY)
    refused = project.runpytest()
    refused.assert_outcomes(failed=1)
    refused.stdout.fnmatch_lines(["*not deterministic*use --adv-eot=20*"])
    first = project.runpytest_subprocess("--adv-eot=5", "--adv-report=first.json")
    again = project.runpytest_subprocess("--adv-eot=5", "--adv-report=again.json")
    assert first.ret == again.ret
    first.stdout.fnmatch_lines(
        ["advrobust: attack=apgd * seed=0 eot=5 *", "*robust accuracy * (apgd linf eps=0.02 seed=0 eot=5)"]
    )
    assert (project.path / "first.json").read_bytes() == (project.path / "again.json").read_bytes()
    report = json.loads((project.path / "first.json").read_text())
    images = report["tests"][0]["images"]
    assert all(image["draws"] == 5 and image["flipped"] == (image["flip_draws"] >= 3) for image in images)
    assert report["tests"][0]["settings"][0]["eot"] == 5


MASKED = """
import pytest, torch
from torch import nn
from pytest_advrobust import adv_robust

class Masked(nn.Module):
    '''A linear model behind preprocessing built to mask its gradient: the input is quantized to 16 levels
    (gradient zero), plus a term whose value is exactly zero and whose gradient is tiny (1e-3) and points
    a fixed random way per pixel. Gradient attacks follow it nowhere; a flip needs a coordinated change.'''
    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.linear = nn.Linear(192, 10)
        with torch.no_grad():
            self.linear.weight.copy_(torch.randn(10, 192, generator=g))
            self.linear.bias.zero_()
        self.register_buffer("pattern", torch.randint(0, 2, (1, 3, 8, 8), generator=g).float() * 2 - 1)
    def forward(self, x):
        misleading = x * self.pattern * 1e-3
        return self.linear((torch.round(x * 16) / 16 + misleading - misleading.detach()).flatten(1))

@pytest.fixture(scope="session")
def adv_model():
    return Masked()

@pytest.fixture
def adv_images():
    # of 300 random images, those whose top-2 margin exceeds 3 (no random start crosses it) while a change
    # of their quantized pixels within eps=0.02 can flip them: each is non-robust, analytically
    g = torch.Generator().manual_seed(11)
    return (torch.randint(0, 256, (300, 3, 8, 8), generator=g).float() / 255)[[2, 17, 22, 27, 42, 44, 55, 57]]

@adv_robust(epsilon=0.02)
def test_masked():
    pass
"""


def test_a_model_that_masks_its_gradients_is_caught_only_by_thorough(project: pytest.Pytester) -> None:
    project.makepyfile(test_model=MASKED)
    project.runpytest("--adv-report=standard.json").assert_outcomes(passed=1)  # gradient attacks alone: green
    # thorough at 20 steps instead of 100 keeps the suite fast: its gradient stages find nothing either way
    thorough = project.runpytest("--adv-profile=thorough", "--adv-steps=20", "--adv-report=thorough.json")
    thorough.assert_outcomes(failed=1)
    thorough.stdout.fnmatch_lines(
        [
            "advrobust: profile=thorough attack=autoattack norm=linf epsilon=0.007 steps=20 * queries=5000 targets=top-9 *",
            "*gradient masking: the square attack (5000 queries, p_init 0.8, no gradient) flipped image *",
        ]
    )
    images = json.loads((project.path / "thorough.json").read_text())["tests"][0]["images"]
    assert images and all(image["flipped"] and image["found_by"] == "square (gradient masking)" for image in images)
    assert all("found only by square" in line for line in thorough.stdout.lines if "-> 'class" in line)
