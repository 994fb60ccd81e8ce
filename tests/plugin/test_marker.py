"""The adv_robust marker and decorator: attack after the body, fail on flips with a clear message."""

from __future__ import annotations

import pytest

from pytest_advrobust import OptionError, adv_robust


def test_a_flip_fails_the_test_and_names_the_classes(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
        from pytest_advrobust import adv_robust
        NAMES = [f"animal{i}" for i in range(10)]

        @adv_robust(epsilon=0.05, attack="bim", targets="untargeted", class_names=NAMES)
        def test_fooled():
            pass
        """
    )
    result = project.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "3 of 4 image(s) flipped at eps=0.05 (bim): animal9 -> animal7, *",
            "flipped (3):",
            "  image 0: 'animal9' 0.14 -> 'animal7' 0.14 at eps=0.05, step 1/10",
            "*",
            "held (1):",
            "  image 2: 'animal3' 0.19 held at eps=0.05 (after 10 steps: 'animal3' 0.*)",
            "seed 0; reproduce with: pytest test_a_flip_fails_the_test_and_names_the_classes.py::test_fooled --adv-seed=0",
        ]
    )


def test_a_model_that_holds_passes(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
        from pytest_advrobust import adv_robust

        @adv_robust(epsilon=0.0)
        def test_holds():
            pass

        @adv_robust
        def test_bare_decorator_with_a_tiny_default_budget():
            pass
        """
    )
    result = project.runpytest("-v")
    result.stdout.fnmatch_lines(["*test_holds PASSED*"])
    assert "test_holds" in result.stdout.str()
    # the bare decorator attacks with the defaults (apgd toward the 9 runner-ups, 0.007, seed 0): strong
    # enough to find the one flip within this tiny budget that 10 steps of bim miss
    result.stdout.fnmatch_lines(
        [
            "*::test_bare_decorator_with_a_tiny_default_budget FAILED*",
            "  image 0: 'class 9' 0.14 -> 'class 7' 0.14 at eps=0.007, step 1/10 [while attacked toward 'class 7', "
            "runner-up 1]",
            "*::test_bare_decorator_with_a_tiny_default_budget: 4 attacked, 1 flipped, 0 misclassified, "
            "robust accuracy 75.0% (95% CI 19.4–99.4%) (apgd linf eps=0.007 seed=0)",
        ]
    )
    weaker = project.runpytest("-v", "--adv-attack=bim", "--adv-targets=untargeted")
    weaker.stdout.fnmatch_lines(["*::test_bare_decorator_with_a_tiny_default_budget PASSED*"])


def test_the_body_runs_first_and_its_failure_wins(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
        import pytest
        from pytest_advrobust import adv_robust

        @adv_robust(epsilon=0.05)
        def test_body_fails():
            assert 1 == 2, "body failed"
        """
    )
    result = project.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*body failed*"])
    assert "flipped at" not in result.stdout.str()


def test_the_decorator_validates_where_it_is_applied(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
        from pytest_advrobust import adv_robust

        @adv_robust(epsilon=-1)
        def test_x():
            pass
        """
    )
    result = project.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*OptionError: epsilon=-1 in @adv_robust(...): must be ≥ 0*"])


def test_a_bad_plain_marker_value_names_the_test(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
        import pytest

        @pytest.mark.adv_robust(steps=0)
        def test_x():
            pass
        """
    )
    result = project.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*adv_robust: steps=0 in the adv_robust marker on test_x: must be ≥ 1*"])


def test_a_misclassified_clean_image_fails(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
        import torch
        import pytest
        from pytest_advrobust import adv_robust

        @pytest.fixture
        def adv_images():
            from pytest_advrobust import ImageSet
            g = torch.Generator().manual_seed(1)
            pixels = torch.randint(0, 256, (2, 3, 8, 8), generator=g).float() / 255
            return ImageSet(pixels, ["a.png", "b.png"], [0, 1], ["labels file", "labels file"])

        @adv_robust(epsilon=0.0)
        def test_x():
            pass
        """
    )
    result = project.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*misclassified before the attack (2):*", "*a.png: misclassified before any attack*"])


def test_the_marker_is_registered_with_its_signature(project: pytest.Pytester) -> None:
    result = project.runpytest("--markers")
    result.stdout.fnmatch_lines(
        [
            "@pytest.mark.adv_robust(epsilon=0.007, norm='linf', attack='apgd', profile='standard', eot=1, queries=1000, loss='auto', steps='auto', step_size='auto', targets='top-9', *"
        ]
    )
    project.makepyfile("import pytest\n@pytest.mark.adv_robust(epsilon=0)\ndef test_x():\n    pass\n")
    project.runpytest("--strict-markers").assert_outcomes(passed=1)


def test_a_suite_without_model_gets_told_how_to_provide_one(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from pytest_advrobust import adv_robust

        @adv_robust(epsilon=0.01)
        def test_x():
            pass
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*no model: set --adv-model*or define an adv_model fixture in conftest.py*"])


def test_apgd_from_the_command_line_and_its_step_size_is_its_own(project: pytest.Pytester) -> None:
    project.makepyfile("from pytest_advrobust import adv_robust\n@adv_robust(epsilon=0.05)\ndef test_x():\n    pass\n")
    result = project.runpytest("--adv-attack", "apgd", "--adv-steps=20")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "advrobust: attack=apgd norm=linf epsilon=0.007 steps=20 step_size=2ε,adaptive *",
            "*flipped at eps=0.05 (apgd)*",
        ]
    )
    refused = project.runpytest("--adv-attack=apgd", "--adv-step-size=0.01")
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    refused.stderr.fnmatch_lines(["ERROR: --adv-step-size=0.01: apgd sets its own step size*"])


def test_a_marker_is_checked_against_what_it_sets_itself_not_the_defaults() -> None:
    """Applied before the CLI is known, a marker's ε of 3 may be an L1 budget and its step size a bim one's."""
    adv_robust(epsilon=3)
    adv_robust(step_size=0.01)
    with pytest.raises(OptionError, match=r"epsilon=3 in @adv_robust\(...\): must be ≤ 1"):
        adv_robust(epsilon=3, norm="linf")
    with pytest.raises(OptionError, match="apgd sets its own step size"):
        adv_robust(step_size=0.01, attack="apgd")
