"""Fixtures: ``adv_model``, ``adv_images``, ``adv_config``, ``adv_attack``, and the marker's set-up."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

from ..core.errors import AdvRobustError, OptionError
from ..core.settings import AttackConfig, RunConfig
from .cache import CACHE_KEY, Cache
from .commands import reproduce_command
from .options import SETTINGS_KEY, Settings, on_this_worker

if TYPE_CHECKING:
    from ..core.results.report import RunReport


@dataclass
class Plan:
    """What the marker attacks after the test body: settings, model and images."""

    config: AttackConfig
    model: Any
    images: Any
    image_names: list[str] | None = None
    """Every image of the test, all shards (None when the test is not sharded, or its source's names are
    known only once read)."""


PLAN_KEY: pytest.StashKey[Plan] = pytest.StashKey()
"""item.stash: what the marker attacks after the test body."""
RUNS_KEY: pytest.StashKey[list[RunReport]] = pytest.StashKey()
"""item.stash: the reports of the test's attack runs (the marker's and each adv_attack call)."""


def _settings(request: pytest.FixtureRequest) -> Settings:
    return request.config.stash[SETTINGS_KEY]


def _cache(request: pytest.FixtureRequest) -> Cache:
    return request.config.stash[CACHE_KEY]


def _resolved(request: pytest.FixtureRequest, overrides: dict[str, Any] | None = None, where: str = "") -> AttackConfig:
    """The test's settings (:meth:`Settings.resolve_for`), completed with the model's own metadata when
    the model spec names a library's format: marker > CLI > ini > model > default. A value set that
    contradicts the metadata is kept, with a warning naming both."""
    config = _settings(request).resolve_for(request.node, overrides, *((where,) if where else ()))
    shipped = _cache(request).shipped(config.model, config.allow_pickle) if config.model is not None else None
    if shipped is None:
        return config
    from ..core.models.formats import normalization_hint
    from ..core.settings.precedence import with_model_metadata

    completed, contradictions = with_model_metadata(
        config, *shipped.preprocessing.as_settings(), image_fit=shipped.preprocessing
    )
    if completed.mean is None:
        contradictions.append(normalization_hint(shipped))
    for message in contradictions:
        _cache(request).warn_once(message)
    return completed


def _fail(exc: Exception, prefix: str = "adv_robust") -> NoReturn:
    """Fail the test with our message only (no traceback, no chained exception)."""
    raise pytest.fail.Exception(f"{prefix}: {exc}", pytrace=False) from None


@pytest.fixture(scope="session")
def adv_model(pytestconfig: pytest.Config) -> Any:
    """The model named by ``--adv-model`` / ini ``adv_model``, loaded once and placed on the device.

    Override this fixture in a conftest to provide your own model (it must return logits).
    """
    base = on_this_worker(pytestconfig.stash[SETTINGS_KEY].base)
    if base.model is None:
        pytest.fail(
            "adv_robust: no model: set --adv-model (or ini adv_model, or model= on the marker) to "
            "'package.module:factory', a TorchScript file, '<arch>@<state dict>', 'timm:<folder>', "
            "'hf:<folder>' or a .onnx file, or define an adv_model fixture in conftest.py",
            pytrace=False,
        )
    try:
        return pytestconfig.stash[CACHE_KEY].model(base.model, base.allow_pickle, base.device)
    except AdvRobustError as exc:
        _fail(exc)


@pytest.fixture(scope="session")
def adv_run_config(pytestconfig: pytest.Config) -> RunConfig:
    """The session-wide settings (reports, artifacts, baselines) from the command line and ini file."""
    return pytestconfig.stash[SETTINGS_KEY].run


@pytest.fixture
def adv_config(request: pytest.FixtureRequest) -> AttackConfig:
    """This test's resolved settings (marker > CLI > ini > profile > default), each with its source."""
    try:
        return _resolved(request)
    except (AdvRobustError, TypeError) as exc:
        _fail(exc)


@pytest.fixture
def adv_images(request: pytest.FixtureRequest, adv_config: AttackConfig) -> Any:
    """The image files named by ``images`` (and ``labels``), read batch by batch. Override to provide
    your own: an N×C×H×W tensor of [0,1] pixels (labels from ``adv_labels``), an ``(x, y)`` pair, an
    ImageSet, a map-style Dataset of ``(image, label)`` (e.g. ``ImageFolder``), a DataLoader, or an
    iterable of ``(x, y)`` batches. A parametrized override works with a bare ``@adv_robust``."""
    if adv_config.images is None:
        pytest.fail(
            "adv_robust: no images: set --adv-images (or ini adv_images, or images= on the marker) to "
            "image files or folders, or define an adv_images fixture in conftest.py",
            pytrace=False,
        )
    try:
        return _cache(request).images(adv_config)
    except AdvRobustError as exc:
        _fail(exc)


@pytest.fixture
def adv_labels() -> Any:
    """Labels of images that carry none (a tensor from ``adv_images``): one class index or name per
    image. None (the default): each image's label is the model's clean prediction. Override to give them."""
    return None


def _model_for(request: pytest.FixtureRequest, config: AttackConfig) -> Any:
    from ..core.models.model import place_model

    if config.model is not None and config.source("model").kind in ("marker", "call"):
        return _cache(request).model(config.model, config.allow_pickle, config.device)
    return place_model(request.getfixturevalue("adv_model"), config.device)


@pytest.fixture
def adv_attack(request: pytest.FixtureRequest, adv_config: AttackConfig) -> Callable[..., Any]:
    """A function ``adv_attack(model=None, images=None, labels=None, **settings)`` that runs this
    test's attack and returns the AttackResult. ``images`` may be a tensor, an ImageSet, or paths
    (relative to the test file); ``settings`` override the marker/CLI/ini ones. Results appear in the
    terminal summary and the JSON report; ``result.assert_robust()`` fails the test."""
    from ..core.api import run_attack

    settings, cache = _settings(request), _cache(request)

    def run(model: Any = None, images: Any = None, labels: Any = None, **overrides: Any) -> Any:
        __tracebackhide__ = True  # a bad setting is the call's fault: the traceback ends at the test's line
        if _are_paths(images):
            overrides["images"], images = images, None  # paths: the images setting, relative to the test file
        try:
            config = _resolved(request, overrides) if overrides else adv_config
        except OptionError as exc:
            raise exc.with_traceback(None) from None  # the same error, without the plugin's frames
        chosen_model = model if model is not None else _model_for(request, config)
        chosen_images = (
            images
            if images is not None
            else (cache.images(config) if config.images is not None else request.getfixturevalue("adv_images"))
        )
        result = run_attack(
            config,
            chosen_model,
            chosen_images,
            labels,
            reproduce=reproduce_command(request.node, config, settings),
        )
        request.node.stash.setdefault(RUNS_KEY, []).append(result.report())
        return result

    return run


@pytest.fixture
def adv_shard() -> int | None:
    """Which shard of its images a sharded adv_robust test attacks (0-based); None when not sharded.

    Parametrized by the plugin for tests whose ``shards`` setting is above 1."""
    return None


@pytest.fixture(autouse=True)
def _adv_robust_marker(request: pytest.FixtureRequest, adv_shard: int | None) -> None:
    """For tests marked ``adv_robust``: resolve settings and fetch model and images before the body."""
    if request.node.get_closest_marker("adv_robust") is None:
        return
    try:
        config = _resolved(request)
        model = _model_for(request, config)
    except (AdvRobustError, TypeError) as exc:
        _fail(exc)
    images, labels = request.getfixturevalue("adv_images"), request.getfixturevalue("adv_labels")
    try:
        if _are_paths(images):  # files: read with this test's settings (image mode, size, labels file)
            given = _resolved(request, {"images": images}, where="the adv_images fixture")
            images = _cache(request).images(given)
        source = _source(images, labels, config)
    except AdvRobustError as exc:
        _fail(exc)
    if adv_shard is None:
        request.node.stash[PLAN_KEY] = Plan(config, model, source)
        return
    part = source.shard(adv_shard, config.shards)
    if part.count == 0:
        pytest.skip(f"shard {adv_shard + 1} of {config.shards} has no images (there are {source.count})")
    request.node.stash[PLAN_KEY] = Plan(config, model, part, source.names)


def _are_paths(images: Any) -> bool:
    return isinstance(images, (str, os.PathLike)) or (
        isinstance(images, (list, tuple)) and bool(images) and all(isinstance(i, (str, os.PathLike)) for i in images)
    )


def _source(images: Any, labels: Any, config: AttackConfig) -> Any:
    """The test's images (``adv_images``, with ``adv_labels``) as an image source."""
    from ..core.data.classes import load_class_names
    from ..core.data.sources import as_source

    return as_source(images, labels, None, load_class_names(config.class_names))
