"""Fixtures: adv_model from a spec, adv_images from a folder, adv_config, and adv_attack."""

from __future__ import annotations

import pytest

from helpers import write_png

MODELS_MODULE = """
import torch
from torch import nn
LOADS = []

def make():
    LOADS.append(1)
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 2))
"""


def test_model_and_images_from_options_end_to_end(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(mymodels=MODELS_MODULE)
    for label in ("cat", "dog"):
        for k in range(2):
            write_png(pytester.path / "imgs" / label / f"{label}{k}.png", size=(16, 12), seed=k)
    (pytester.path / "names.txt").write_text("cat\ndog\n")
    pytester.makepyfile(
        test_e2e="""
        from pytest_advrobust import adv_robust
        import mymodels

        @adv_robust(epsilon=0.5)
        def test_flips(adv_images):
            assert adv_images.labels == [0, 0, 1, 1]

        @adv_robust(epsilon=0.5)
        def test_model_loaded_once(adv_model):
            assert len(mymodels.LOADS) == 1
        """
    )
    result = pytester.runpytest(
        "--adv-model=mymodels:make",
        "--adv-images=imgs",
        "--adv-class-names=names.txt",
        "--adv-input-size=8",
        "--adv-mean=0.5",
        "--adv-std=0.25",
    )
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*cat/cat0.png: *", "*robust accuracy*"])
    text = result.stdout.str()
    assert "misclassified before any attack" in text, "random weights get some folder labels wrong"
    assert "'cat'" in text and "'dog'" in text


def test_user_fixtures_override_the_defaults(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
        from pytest_advrobust import adv_robust
        import conftest

        @adv_robust(epsilon=0)
        def test_a(adv_model):
            assert len(conftest.LOADS) == 1
        """
    )
    project.runpytest().assert_outcomes(passed=1)


def test_adv_attack_runs_the_configured_attack_and_reports(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
        import pytest
        from pytest_advrobust import NotRobustError

        def test_explicit(adv_attack, adv_model, adv_images):
            held = adv_attack(epsilon=0.0)
            assert held.flips == [] and held.robust_accuracy == 1.0
            held.assert_robust()
            fooled = adv_attack(adv_model, adv_images, epsilon=0.2, steps=3)
            assert len(fooled.flips) == 4
            assert fooled.settings.steps == 3 and fooled.settings.epsilon == 0.2
            with pytest.raises(NotRobustError, match="4 of 4 image"):
                fooled.assert_robust()

        def test_bad_override(adv_attack):
            adv_attack(epsilon=2)

        def test_another_apis_name(adv_attack):
            adv_attack(method="pgd")
        """
    )
    result = project.runpytest("--adv-steps=5", "--adv-attack=bim", "--adv-targets=untargeted")
    result.assert_outcomes(passed=1, failed=2)
    # the traceback ends at the test's own line, and the name attack() uses is mapped to the setting's
    result.stdout.fnmatch_lines(
        [
            '*adv_attack(method="pgd")',
            "E*OptionError: unknown setting 'method' in adv_attack(...) in test_another_apis_name (did you mean attack?)",
        ]
    )
    assert "precedence.py" not in result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "*OptionError: epsilon=2 in adv_attack(...) in test_bad_override: must be ≤ 1*",
            "*test_explicit: 4 attacked, 0 flipped, 0 misclassified, robust accuracy 100.0% (95% CI 39.8–100.0%) (bim linf eps=0 seed=0)",
            "*test_explicit: 4 attacked, 4 flipped, 0 misclassified, robust accuracy 0.0% (95% CI 0.0–60.2%) (bim linf eps=0.2 seed=0)",
        ]
    )


def test_missing_images_say_how_to_provide_them(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(mymodels=MODELS_MODULE)
    pytester.makepyfile(test_a="def test_a(adv_images):\n    pass\n")
    result = pytester.runpytest()
    result.stdout.fnmatch_lines(["*no images: set --adv-images*or define an adv_images fixture*"])
    result = pytester.runpytest("--adv-images=missing_folder")
    result.stdout.fnmatch_lines(["*adv_robust: images path */missing_folder does not exist*"])
