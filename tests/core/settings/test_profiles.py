"""Profiles: named sets of settings between the defaults and everything set by hand (*marker > CLI > ini >
profile > default*), registered like Hypothesis' ``settings.register_profile``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pytest_advrobust import register_profile
from pytest_advrobust.core.errors import OptionError
from pytest_advrobust.core.settings import Source, resolve
from pytest_advrobust.core.settings.profiles import BUILT_IN, forget_profile

INI = Source("ini", "tox.ini")
CLI = Source("cli")
MARKER = Source("marker", "the adv_robust marker on test_x")


@pytest.fixture
def nightly() -> Iterator[str]:
    register_profile("nightly", attack="apgd", steps=50, epsilon=0.01)
    yield "nightly"
    forget_profile("nightly")


def test_the_built_in_profiles() -> None:
    quick = resolve([({"profile": "quick"}, CLI)])
    assert (quick.attack, quick.resolved_steps, str(quick.targets)) == ("fgsm", 1, "untargeted")
    assert quick.source("attack") == Source("profile", "profile 'quick'")
    standard = resolve([({"profile": "standard"}, CLI)])
    assert standard == resolve([])  # the defaults, and nothing else
    thorough = resolve([({"profile": "thorough"}, CLI)])
    assert (thorough.attack, thorough.resolved_steps, thorough.queries, str(thorough.targets)) == (
        "autoattack", 100, 5000, "top-9"
    )  # fmt: skip
    assert thorough.describe().startswith("profile=thorough attack=autoattack ")
    assert set(BUILT_IN) == {"quick", "standard", "thorough"}


@pytest.mark.parametrize("layer", [INI, CLI, MARKER])
def test_every_value_set_by_hand_beats_the_profile(layer: Source) -> None:
    config = resolve([({"profile": "thorough"}, CLI), ({"steps": 7}, layer)])
    assert (config.attack, config.resolved_steps) == ("autoattack", 7)
    assert config.source("steps") == layer
    assert config.source("attack").kind == "profile"


def test_a_marker_that_selects_another_profile_drops_the_first_ones_values() -> None:
    session = resolve([({"profile": "thorough"}, CLI)])
    test = resolve([({"profile": "quick"}, MARKER)], base=session)
    # quick sets no query budget: thorough's 5000 goes back to the default, not kept
    assert (test.attack, test.queries, test.steps, str(test.targets)) == ("fgsm", 1000, None, "untargeted")
    back = resolve([({"profile": "standard"}, MARKER)], base=session)
    assert back == resolve([({"profile": "standard"}, MARKER)])


def test_a_registered_profile(nightly: str) -> None:
    config = resolve([({"profile": nightly}, INI)])
    assert (config.attack, config.steps, config.epsilon) == ("apgd", 50, 0.01)
    assert config.source("epsilon").label == "profile 'nightly'"
    # a profile's own bad combination is reported as coming from it
    register_profile("fixed", attack="apgd")
    try:
        with pytest.raises(OptionError, match=r"step_size=0.001 in the adv_robust marker.*apgd sets its own"):
            resolve([({"profile": "fixed", "step_size": 0.001}, MARKER)])
    finally:
        forget_profile("fixed")


def test_registration_refuses_what_could_not_work() -> None:
    with pytest.raises(OptionError, match=r"epsilon=-1 from register_profile\('bad', \.\.\.\): must be ≥ 0"):
        register_profile("bad", epsilon=-1)
    with pytest.raises(OptionError, match=r"unknown setting 'stpes'.*did you mean steps"):
        register_profile("bad", stpes=3)
    with pytest.raises(OptionError, match=r"report is a session-wide setting \(--adv-report\)"):
        register_profile("bad", report="r.json")
    with pytest.raises(OptionError, match="quick, standard, thorough are built in"):
        register_profile("quick", steps=3)
    with pytest.raises(OptionError, match="cannot select another profile"):
        register_profile("bad", profile="quick")
    with pytest.raises(OptionError, match="--adv-profile=nightlly: unknown profile 'nightlly'.*quick, standard"):
        resolve([({"profile": "nightlly"}, CLI)])
    with pytest.raises(OptionError, match="unknown profile 'bad'"):  # nothing was stored by the failures
        resolve([({"profile": "bad"}, CLI)])


def test_a_profiles_values_that_do_not_apply_to_a_pinned_attack_are_dropped() -> None:
    session = resolve([({"profile": "thorough"}, CLI)])
    fgsm = resolve([({"attack": "fgsm"}, MARKER)], base=session)
    assert (fgsm.resolved_steps, fgsm.source("steps").kind) == (1, "default")
    square = resolve([({"attack": "square"}, MARKER)], base=session)
    assert (square.resolved_steps, square.queries) == (5000, 5000)
    # set by hand, they are refused as always
    with pytest.raises(OptionError, match="steps=100 in the adv_robust marker.*fgsm is exactly one step"):
        resolve([({"attack": "fgsm", "steps": 100}, MARKER)], base=session)
    with pytest.raises(OptionError, match=r"--adv-queries=10: the query budget is the square attack's"):
        resolve([({"queries": 10}, CLI)])
    with pytest.raises(OptionError, match=r"loss='ce' in the adv_robust marker.*square lowers the logit margin"):
        resolve([({"attack": "square", "loss": "ce"}, MARKER)])


def test_registration_checks_the_combination_too() -> None:
    with pytest.raises(OptionError, match=r"steps=5 in register_profile\('bad', \.\.\.\): fgsm is exactly one step"):
        register_profile("bad", attack="fgsm", steps=5)
    with pytest.raises(OptionError, match="unknown profile 'bad'"):
        resolve([({"profile": "bad"}, CLI)])


@pytest.mark.parametrize("name", ["a\n::error::owned", "::stop-commands::x", "a b", "-x", "x" * 65, ""])
def test_a_profile_name_is_one_a_command_line_could_hold(name: str) -> None:
    """Profile names reach the terminal and every report as they are: no line breaks, no workflow commands."""
    with pytest.raises(OptionError) as raised:
        register_profile(name, attack="fgsm")
    assert "\n" not in str(raised.value) and "must be letters, digits" in str(raised.value)
