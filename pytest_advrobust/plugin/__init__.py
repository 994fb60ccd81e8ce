"""The pytest plugin: options → one resolved config → core calls → outcomes and report lines.

Loaded through the ``pytest11`` entry point. It imports neither torch nor the attack code at load time:
a suite without robustness tests does not pay for torch.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

from ..core.errors import AdvRobustError
from ..core.settings import OPTIONS
from ..core.summary import summarize_test
from .fixtures import (
    ATTACKED_KEY,
    PLAN_KEY,
    SESSION_KEY,
    _adv_robust_marker,
    _fail,
    adv_attack,
    adv_config,
    adv_images,
    adv_model,
    adv_shard,
)
from .session import AdvSession
from .verdict import BASELINE_KEY, judge

__all__ = ["_adv_robust_marker", "adv_attack", "adv_config", "adv_images", "adv_model", "adv_shard"]

MARKER_DOC = (
    "adv_robust(epsilon=0.007, attack='bim', steps=None, step_size=None, targets='untargeted', seed=0, "
    "device='model', model=None, images=None, labels=None, class_names=None, mean=None, std=None, "
    "input_size=None, early_stop=True, verdict='rounded', batch_size=32, shards=1, minimal_epsilon='auto', "
    "epsilon_max=16/255, epsilon_precision=0.0002, tolerance=0.0005, sanity_checks=True, "
    "allow_pickle=False): after the test body, attack the model (adv_model) on the images (adv_images) "
    "within an L∞ ball of radius epsilon in [0,1] pixel units; fail if any label flips (or, with a stored "
    "baseline, if robustness regressed). Keywords override --adv-* and adv_* ini values."
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("advrobust", "adversarial robustness (pytest-advrobust)")
    for option in OPTIONS:
        # booleans also work as flags: --adv-baseline-update means --adv-baseline-update=true
        flag = {"nargs": "?", "const": "true"} if option.metavar == "BOOL" else {}
        group.addoption(
            option.cli,
            dest=option.ini,
            default=None,
            metavar=option.metavar,
            help=option.help.replace("%", "%%"),
            **flag,
        )
        parser.addini(option.ini, help=option.help, type="string", default="")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER_DOC)
    try:
        state = AdvSession.from_config(config)
    except AdvRobustError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[SESSION_KEY] = state
    config.pluginmanager.register(state, "advrobust-session")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Split a decorated test into ``shards`` test cases, so pytest-xdist can spread its images."""
    if metafunc.definition.get_closest_marker("adv_robust") is None or "adv_shard" not in metafunc.fixturenames:
        return
    try:
        shards = metafunc.config.stash[SESSION_KEY].resolve_for(metafunc.definition).shards
    except (AdvRobustError, TypeError):
        return  # the same error is reported, with its source, when the test sets up
    if shards > 1:
        metafunc.parametrize("adv_shard", range(shards), ids=[f"shard{k + 1}of{shards}" for k in range(shards)])


def pytest_report_header(config: pytest.Config) -> str:
    return f"advrobust: {config.stash[SESSION_KEY].base.describe()} (marker keywords override per test)"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, Any]:
    result = yield
    plan = item.stash.get(PLAN_KEY, None)
    if plan is None:
        return result
    session = item.config.stash[SESSION_KEY]
    try:
        failure = judge(item, plan, session)
    except AdvRobustError as exc:
        _fail(exc, "adv_robust: no verdict possible")
    if failure is not None:
        pytest.fail(failure, pytrace=False)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    results = item.stash.get(ATTACKED_KEY, None)
    if call.when == "call" and results:
        summary = summarize_test(item.nodeid, results)
        if BASELINE_KEY in item.stash:
            summary["baseline"] = {k: v for k, v in item.stash[BASELINE_KEY].items() if k != "entry"}
        # A plain attribute travels with the report from xdist workers to the controller.
        report.adv_robust = summary  # type: ignore[attr-defined]
        # JUnit XML writes the teardown report's properties, which pytest copies from the item.
        counts = f"{summary['flipped']} of {summary['attacked']} flipped, {summary['misclassified']} misclassified"
        item.user_properties.append(("adv_robust", counts))
    baseline = item.stash.get(BASELINE_KEY, None)
    if call.when == "call" and baseline is not None:
        report.adv_baseline = baseline  # type: ignore[attr-defined]
    return report
