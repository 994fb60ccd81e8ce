"""The pytest plugin: options → one resolved config → core calls → outcomes and report lines.

Loaded through the ``pytest11`` entry point. It imports neither torch nor the attack code at load time:
a suite without robustness tests does not pay for torch. The hooks here only translate; the work is in
:mod:`.options` (settings), :mod:`.fixtures` (set-up), :mod:`.judge` (the verdict), :mod:`.collector`
(reports and the terminal summary) and :mod:`.writers` (files written at session end).
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from ..core.errors import AdvRobustError
from ..core.results.report import TestReport
from ..core.settings import OPTIONS_BY_NAME, PER_TEST
from .annotations import ANNOTATIONS_NAME, GithubAnnotations
from .cache import CACHE_KEY, Cache
from .collector import COLLECTOR_KEY, Collector
from .fixtures import (
    PLAN_KEY,
    RUNS_KEY,
    _adv_robust_marker,
    _fail,
    adv_attack,
    adv_config,
    adv_images,
    adv_labels,
    adv_model,
    adv_run_config,
    adv_shard,
)
from .html_extras import HTML_EXTRAS_NAME, PytestHtmlExtras
from .judge import VERDICT_KEY, judge
from .options import SETTINGS_KEY, Settings, add_options
from .sharding import SHARD_FIXTURE, item_shard, shard_ids
from .writers import WRITER_NAMES, writers_for

COLLECTOR_NAME = "advrobust-collector"

__all__ = [
    "_adv_robust_marker",
    "adv_attack",
    "adv_config",
    "adv_images",
    "adv_labels",
    "adv_model",
    "adv_run_config",
    "adv_shard",
]


def _keyword_default(name: str) -> str:
    """A default as Python would spell it in the marker: ``0.007``, ``'bim'``, ``None``, ``'auto'``."""
    option = OPTIONS_BY_NAME[name]
    value = option.default
    if option.default_doc is not None and option.default_doc.startswith("auto"):
        return "'auto'"
    if value is None or isinstance(value, (bool, int, str)):
        return repr(value)
    if isinstance(value, float):
        return f"{value:g}"
    return repr(option.shown_default)


def marker_doc() -> str:
    """The ``adv_robust`` marker's line in ``pytest --markers``, its defaults from the options table."""
    keywords = ", ".join(f"{name}={_keyword_default(name)}" for name in PER_TEST)
    return (
        f"adv_robust({keywords}): after the test body, attack the model (adv_model) on the images "
        "(adv_images) within a ball of radius epsilon in [0,1] pixel units, measured in norm (linf, l2 or l1); "
        "fail if any label flips "
        "(or, with a stored baseline, if robustness regressed). Keywords override --adv-* and adv_* ini values."
    )


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", marker_doc())
    try:
        settings = Settings.from_config(config)
        if not hasattr(config, "workerinput"):  # the controller checks; xdist workers write nothing
            settings.check_paths()  # a path that cannot be written is a usage error now, not a traceback at the end
    except AdvRobustError as exc:
        raise pytest.UsageError(str(exc)) from None
    collector = Collector(settings)
    config.stash[SETTINGS_KEY] = settings
    config.stash[CACHE_KEY] = Cache(settings.baseline_dir)
    config.stash[COLLECTOR_KEY] = collector
    config.pluginmanager.register(collector, COLLECTOR_NAME)
    pytest_html = config.getoption("htmlpath", None)  # pytest-html's --html, when it is installed
    for name, writer in writers_for(settings, collector, os.environ, pytest_html).items():
        config.pluginmanager.register(writer, name)
    if pytest_html:
        config.pluginmanager.register(PytestHtmlExtras(), HTML_EXTRAS_NAME)
    if os.environ.get("GITHUB_ACTIONS") == "true":
        workspace = Path(os.environ.get("GITHUB_WORKSPACE") or config.rootpath)
        config.pluginmanager.register(GithubAnnotations(workspace), ANNOTATIONS_NAME)


def pytest_unconfigure(config: pytest.Config) -> None:
    for name in (COLLECTOR_NAME, ANNOTATIONS_NAME, HTML_EXTRAS_NAME, *WRITER_NAMES):
        plugin = config.pluginmanager.get_plugin(name)
        if plugin is not None:
            config.pluginmanager.unregister(plugin)


@pytest.hookimpl(wrapper=True)
def pytest_pycollect_makeitem(collector: pytest.Module | pytest.Class, name: str, obj: object) -> Any:
    """A decorated test requests ``adv_images`` (and ``adv_model``, unless the marker names a model) when
    it is collected, so a parametrized ``adv_images`` or ``adv_model`` fixture parametrizes it (the
    marker's set-up could only fetch an unparametrized one)."""
    if inspect.isfunction(obj) and collector.funcnamefilter(name):
        marks = [*getattr(obj, "pytestmark", []), *collector.iter_markers("adv_robust")]
        ours = [mark for mark in marks if getattr(mark, "name", None) == "adv_robust"]
        if ours:
            names_a_model = any(mark.kwargs.get("model") is not None for mark in ours)
            pytest.mark.usefixtures("adv_images", *(() if names_a_model else ("adv_model",)))(obj)
    return (yield)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Split a decorated test into ``shards`` test cases, so pytest-xdist can spread its images."""
    if metafunc.definition.get_closest_marker("adv_robust") is None or "adv_shard" not in metafunc.fixturenames:
        return
    try:
        shards = metafunc.config.stash[SETTINGS_KEY].resolve_for(metafunc.definition).shards
    except (AdvRobustError, TypeError):
        return  # the same error is reported, with its source, when the test sets up
    if shards > 1:
        metafunc.parametrize(SHARD_FIXTURE, range(shards), ids=shard_ids(shards))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``--adv-shard=K/N``: keep what job K of the matrix runs (:func:`.matrix.job_items`)."""
    shard = config.stash[SETTINGS_KEY].run.shard
    if shard is None:
        return
    from .matrix import job_items

    kept, others = job_items(items, shard)
    if others:
        config.hook.pytest_deselected(items=others)
        items[:] = kept


def _is_robustness_test(item: pytest.Item) -> bool:
    return item.get_closest_marker("adv_robust") is not None or "adv_attack" in getattr(item, "fixturenames", ())


def pytest_report_collectionfinish(
    config: pytest.Config, start_path: Path, items: list[pytest.Item]
) -> str | list[str] | None:
    """The run's defaults, only when robustness tests were collected (like Hypothesis' header)."""
    if config.get_verbosity() < 0 or not any(_is_robustness_test(item) for item in items):
        return None
    base = config.stash[SETTINGS_KEY].base
    lines = [f"advrobust: {base.describe()} (marker keywords override per test)"]
    if base.model is not None:
        lines += _model_header(config, base)
    return lines


def _model_header(config: pytest.Config, base: Any) -> list[str]:
    """What the model named on the command line or in the ini file supplies from its own metadata."""
    from ..core.settings.precedence import with_model_metadata

    try:
        shipped = config.stash[CACHE_KEY].shipped(base.model, base.allow_pickle)
    except AdvRobustError as exc:  # the tests that use the model fail with the same message
        return [f"advrobust: model {base.model}: {exc}"]
    if shipped is None:
        return []
    try:
        completed, _ = with_model_metadata(base, *shipped.preprocessing.as_settings(), image_fit=shipped.preprocessing)
    except AdvRobustError as exc:
        return [f"advrobust: model {base.model}: {exc}"]
    values = completed.from_model()
    spec = base.model if base.model.startswith(f"{shipped.kind}:") else f"{shipped.kind}:{base.model}"
    return [f"advrobust: model {spec}" + (f": {'; '.join(values)}" if values else "")]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, Any]:
    result = yield
    plan = item.stash.get(PLAN_KEY, None)
    if plan is None:
        return result
    try:
        verdict = judge(item, plan)
    except AdvRobustError as exc:
        _fail(exc, "adv_robust: no verdict possible")
    item.stash[VERDICT_KEY] = verdict
    if verdict.message is not None:
        pytest.fail(verdict.message, pytrace=False)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    shard = item_shard(item)
    if shard is not None:  # every phase: the xdist controller learns what the plugin made of the test
        report.adv_shard = {"test": shard.test, "shard": shard.id}  # type: ignore[attr-defined]
    runs = item.stash.get(RUNS_KEY, None)
    if call.when == "call" and runs:
        verdict = item.stash.get(VERDICT_KEY, None)
        baseline = None if verdict is None else verdict.baseline
        test = TestReport(item.nodeid, runs, baseline, failed=report.failed, test=shard.test if shard else "",
                          shard=shard.id if shard else "")  # fmt: skip
        # One plain attribute: it travels with the report from xdist workers to the controller.
        report.adv_robust = test.to_wire()  # type: ignore[attr-defined]
        # JUnit XML writes the teardown report's properties, which pytest copies from the item.
        counts = test.counts
        item.user_properties.append(
            ("adv_robust", f"{counts.flipped} of {counts.attacked} flipped, {counts.misclassified} misclassified")
        )
    return report
