"""Settings: one precedence rule, parsing in all spellings, errors that name their source."""

from __future__ import annotations

import dataclasses
import inspect
import math
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from pytest_advrobust.core.errors import OptionError
from pytest_advrobust.core.settings import (
    OPTIONS,
    OPTIONS_BY_NAME,
    PER_TEST,
    AttackConfig,
    RunConfig,
    Source,
    TargetSpec,
    parse_one,
    resolve,
)

INI = Source("ini", "tox.ini", Path("/root"))
CLI = Source("cli", "the command line", Path("/cwd"))
MARKER = Source("marker", "the adv_robust marker on test_x", Path("/tests"))


def test_precedence_is_marker_over_cli_over_ini_over_default() -> None:
    config = resolve(
        [
            ({"epsilon": "0.1", "seed": "3", "steps": "4"}, INI),
            ({"epsilon": "0.2", "seed": "5"}, CLI),
            ({"epsilon": 0.3}, MARKER),
        ]
    )
    assert (config.epsilon, config.seed, config.steps, config.attack) == (0.3, 5, 4, "apgd")
    assert [config.source(n).kind for n in ("epsilon", "seed", "steps", "attack")] == [
        "marker",
        "cli",
        "ini",
        "default",
    ]


def test_paths_are_relative_to_their_source() -> None:
    config = resolve([({"images": "a", "labels": "l.csv"}, INI), ({"images": "b"}, MARKER)])
    assert config.images == (Path("/tests/b"),)
    assert config.labels == Path("/root/l.csv")


@pytest.mark.parametrize(
    ("name", "raw", "source", "message"),
    [
        ("epsilon", -1, MARKER, "epsilon=-1 in the adv_robust marker on test_x: must be ≥ 0"),
        ("epsilon", "nan", INI, "adv_epsilon = nan in tox.ini: must be a finite number"),
        ("steps", "0", CLI, "--adv-steps=0: must be ≥ 1"),
        ("steps", "1000000000", CLI, r"--adv-steps=1000000000: must be ≤ 10000: each step keeps a point"),
        ("attack", "cw", CLI, "--adv-attack=cw: must be one of fgsm, bim, pgd"),
        ("device", "tpu", CLI, "--adv-device=tpu: must be 'model', 'auto'"),
        ("mean", "1,2", CLI, "--adv-mean=1,2: must be one number or three"),
        ("early_stop", "maybe", CLI, "--adv-early-stop=maybe: must be true or false"),
        ("input_size", "0", CLI, "--adv-input-size=0: must be one positive size or HxW"),
    ],
)
def test_bad_values_name_the_setting_and_source(name: str, raw: object, source: Source, message: str) -> None:
    with pytest.raises(OptionError, match=message):
        parse_one(name, raw, source)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"epsilon": "8"},
            r"--adv-epsilon=8: must be ≤ 1: ε is in \[0,1\] pixel units, not 0–255 \(did you mean 0.03137\?\); for an "
            "l2 or l1 budget set --adv-norm",
        ),
        (
            {"step_size": "3", "attack": "bim"},
            r"--adv-step-size=3: must be ≤ 1: steps are in \[0,1\] pixel units, not 0–255 \(did",
        ),
        ({"tolerance": "5"}, r"--adv-tolerance=5: an absolute tolerance .* must be ≤ 1 \(did you mean 0.0196.*5% as a"),
        ({"epsilon_max": "16"}, r"--adv-epsilon-max=16: must be ≤ 1: the search's top is in \[0,1\] pixel units"),
        ({"epsilon": "3", "norm": "linf"}, r"--adv-epsilon=3: must be ≤ 1: .* under --adv-norm=linf"),
        ({"norm": "l3"}, r"--adv-norm=l3: must be one of linf, l2, l1 \(got 'l3'\)"),
        (
            {"norm": "l1", "attack": "square", "epsilon": "12"},
            r"--adv-attack=square: attack=square has no form under norm=l1",
        ),
        ({"norm": "l2"}, r"--adv-norm=l2 with epsilon left at its default, 0.007, a linf budget .* e.g. 0.5"),
    ],
)
def test_budgets_above_one_are_refused_under_linf_and_the_norm_is_checked(values: dict[str, str], message: str) -> None:
    """A budget's bound depends on the norm, another setting: [0,1] pixels bound an L∞ budget by 1 only."""
    with pytest.raises(OptionError, match=message):
        resolve([(values, CLI)])


@pytest.mark.parametrize(
    ("norm", "spelled", "epsilon_max", "precision", "tolerance"),
    [("linf", "Linf", 16 / 255, 0.0002, 0.0005), ("l2", "L2", 2.0, 0.0078, 0.019), ("l1", "1", 2.0, 0.0078, 0.019)],
)
def test_a_norm_takes_budgets_above_one_and_search_defaults_of_its_own(
    norm: str, spelled: str, epsilon_max: float, precision: float, tolerance: float
) -> None:
    config = resolve([({"norm": spelled, "epsilon": "0.5" if norm != "linf" else "0.007"}, CLI)])
    assert config.norm == norm
    assert (config.resolved_epsilon_max, config.resolved_epsilon_precision) == pytest.approx((epsilon_max, precision))
    assert config.resolved_tolerance == pytest.approx((tolerance, 0.0))
    assert f"norm={norm}" in config.describe()
    if norm != "linf":
        assert resolve([({"norm": norm, "epsilon": "12", "tolerance": "0.1,5%"}, CLI)]).resolved_tolerance == (
            0.1,
            0.05,
        )


def test_unknown_setting_suggests_the_right_one() -> None:
    with pytest.raises(OptionError, match=r"unknown setting 'epsilion'.*did you mean epsilon"):
        resolve([({"epsilion": 0.1}, MARKER)])


def test_combinations_are_checked() -> None:
    with pytest.raises(OptionError, match="fgsm is exactly one step"):
        resolve([({"attack": "fgsm", "steps": 5}, MARKER)])
    with pytest.raises(OptionError, match="mean was given without std"):
        resolve([({"mean": "imagenet"}, CLI)])
    with pytest.raises(OptionError, match="session-wide setting: use --adv-report"):
        resolve([({"report": "r.json"}, MARKER)])


def test_defaults_and_step_size_rule() -> None:
    config = resolve([])
    assert config.epsilon == 0.007 and config.attack == "apgd" and config.resolved_steps == 10
    assert str(config.targets) == "top-9" and config.resolved_loss == "dlr"
    assert config.resolved_step_size == pytest.approx(2 * 0.007)  # where apgd starts
    bim = resolve([({"attack": "bim"}, CLI)])
    assert bim.resolved_step_size == pytest.approx(2.5 * 0.007 / 10)
    fgsm = resolve([({"attack": "fgsm"}, CLI)])
    assert fgsm.resolved_steps == 1 and fgsm.resolved_step_size == 0.007


def test_target_specs() -> None:
    assert parse_one("targets", "paper towel, 3", CLI) == TargetSpec("classes", ("paper towel", 3))
    assert parse_one("targets", "top-3", CLI) == TargetSpec("runner-up", k=3)
    assert parse_one("targets", "least-likely", CLI).mode == "least-likely"
    assert parse_one("targets", ["vulture"], MARKER) == TargetSpec("classes", ("vulture",))
    assert parse_one("targets", None, MARKER) == TargetSpec()


def test_every_help_text_states_its_default() -> None:
    for option in OPTIONS:
        assert option.full_help.endswith(f" Default: {option.shown_default}."), option.name
        assert "default" not in option.help.lower(), f"{option.name}: the default is written once, in the table"


def test_a_shown_default_parses_back_to_the_default() -> None:
    for option in OPTIONS:
        if option.default_doc is None:
            assert option.parse(option.shown_default, None) == option.default, option.name


def test_the_config_dataclasses_take_their_defaults_from_the_table() -> None:
    config, run = AttackConfig(), RunConfig()
    for option in OPTIONS:
        holder = config if option.per_test else run
        assert getattr(holder, option.name) == option.default, option.name
    # besides the settings: where each value came from, and the model's own image fit (not a setting)
    assert {f.name for f in dataclasses.fields(AttackConfig)} - {"sources", "image_fit"} == {
        o.name for o in OPTIONS if o.per_test
    }
    assert {f.name for f in dataclasses.fields(RunConfig)} - {"sources"} == {o.name for o in OPTIONS if not o.per_test}


def test_attack_signature_defaults_are_the_table_defaults() -> None:
    from pytest_advrobust import attack

    spelled = {"method": "attack"}
    for name, parameter in inspect.signature(attack).parameters.items():
        option = OPTIONS_BY_NAME.get(spelled.get(name, name))
        if option is None or parameter.default is inspect.Parameter.empty:
            continue
        given = parameter.default
        parsed = option.default if given is None else option.parse(given, None)
        assert parsed == option.default, name


def test_marker_overload_and_doc_name_every_per_test_setting() -> None:
    from typing import get_overloads

    from pytest_advrobust.plugin import marker_doc
    from pytest_advrobust.plugin.marker import adv_robust

    keyword_overload = next(o for o in get_overloads(adv_robust) if "epsilon" in inspect.signature(o).parameters)
    assert list(inspect.signature(keyword_overload).parameters) == list(PER_TEST)
    doc = marker_doc()
    for name in PER_TEST:
        assert f"{name}=" in doc, name
    assert "epsilon=0.007," in doc and "attack='apgd'," in doc and "targets='top-9'," in doc


@given(
    name=st.sampled_from([o.name for o in OPTIONS]),
    raw=st.one_of(
        st.text(max_size=20),
        st.floats(),
        st.integers(),
        st.booleans(),
        st.none(),
        st.lists(st.one_of(st.integers(), st.text(max_size=5)), max_size=4),
    ),
)
@example(name="baseline_dir", raw="~0")  # a user with no home directory: pathlib raised RuntimeError
@example(name="report", raw="~no-such-user-here/report.json")
def test_parsing_anything_gives_a_value_or_our_clear_error(name: str, raw: object) -> None:
    try:
        value = parse_one(name, raw, CLI)
    except OptionError as exc:
        assert str(exc).startswith(f"--adv-{name.replace('_', '-')}=")
        return
    if isinstance(value, float):
        assert math.isfinite(value)


@given(
    name=st.sampled_from([o.name for o in OPTIONS if o.metavar != "BOOL"]),
    raw=st.one_of(
        st.text(alphabet="0123456789.,%x/-abcdefimnopgt ", max_size=12),
        st.floats(min_value=0, max_value=1),
        st.integers(min_value=0, max_value=300),
    ),
)
def test_a_printed_value_parses_back_to_the_same_value(name: str, raw: object) -> None:
    """What reproduce and accept commands print (``unparse``) means what the user's value meant."""
    from pytest_advrobust.core.settings import unparse

    try:
        value = parse_one(name, raw, CLI)
    except OptionError:
        return
    if name == "class_names" and isinstance(value, tuple) and len(value) == 1:
        return  # one name alone reads as a file name; a one-class list is not a classifier
    assert parse_one(name, unparse(name, value), CLI) == value


def test_fgsm_refuses_a_step_size_it_would_not_use() -> None:
    with pytest.raises(OptionError, match=r"--adv-step-size=0.001: fgsm is exactly one step of size ε"):
        resolve([({"attack": "fgsm", "step_size": "0.001"}, CLI)])


@pytest.mark.parametrize(("raw", "value"), [("8/255", 8 / 255), (" 4/255 ", 4 / 255), ("0.5/255", 0.5 / 255)])
def test_budgets_may_be_written_as_fractions(raw: str, value: float) -> None:
    assert parse_one("epsilon", raw, CLI) == pytest.approx(value)
    assert parse_one("epsilon_max", raw, CLI) == pytest.approx(value)
    with pytest.raises(OptionError, match=r"--adv-epsilon=1/0: must be a number \(or a fraction such as 8/255\)"):
        parse_one("epsilon", "1/0", CLI)


def test_a_class_list_of_only_commas_is_refused() -> None:
    with pytest.raises(OptionError, match=r"--adv-class-names=,: must name at least one class"):
        parse_one("class_names", ",", CLI)


def test_a_bare_model_folder_name_is_relative_to_its_source(tmp_path: Path) -> None:
    """``--adv-model=vit`` naming a folder beside the ini file resolves there, not in the cwd, like
    ``timm:vit`` and ``hf:vit`` do; a factory spec or an architecture name stays as written."""
    (tmp_path / "vit").mkdir()
    assert parse_one("model", "vit", Source("ini", "tox.ini", tmp_path)) == str(tmp_path / "vit")
    assert parse_one("model", "hf:vit", Source("ini", "tox.ini", tmp_path)) == f"hf:{tmp_path / 'vit'}"
    assert parse_one("model", "pkg.models:build", Source("ini", "tox.ini", tmp_path)) == "pkg.models:build"
