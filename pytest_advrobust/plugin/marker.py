"""``adv_robust``: the typed decorator form of the ``adv_robust`` marker, validated where it is applied."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar, overload

import pytest

from ..core.errors import OptionError
from ..core.settings import Source, resolve

F = TypeVar("F", bound=Callable[..., Any])


@overload
def adv_robust(func: F, /) -> F: ...


@overload
def adv_robust(
    *,
    epsilon: float | None = None,
    norm: str | None = None,
    attack: str | None = None,
    profile: str | None = None,
    eot: int | None = None,
    queries: int | None = None,
    loss: str | None = None,
    steps: int | None = None,
    step_size: float | None = None,
    targets: str | int | Sequence[int | str] | None = None,
    seed: int | None = None,
    early_stop: bool | None = None,
    verdict: str | None = None,
    sanity_checks: bool | None = None,
    device: str | None = None,
    model: str | None = None,
    mean: str | Sequence[float] | None = None,
    std: str | Sequence[float] | None = None,
    input_size: int | str | tuple[int, int] | None = None,
    image_mode: str | None = None,
    output: str | int | None = None,
    allow_pickle: bool | None = None,
    images: str | Sequence[str] | None = None,
    labels: str | None = None,
    class_names: str | Sequence[str] | None = None,
    batch_size: int | str | None = None,
    workers: int | str | None = None,
    shards: int | None = None,
    min_robust_accuracy: float | str | None = None,
    confidence: float | str | None = None,
    minimal_epsilon: bool | str | None = None,
    epsilon_max: float | str | None = None,
    epsilon_precision: float | str | None = None,
    tolerance: float | str | None = None,
    baseline_rule: str | None = None,
) -> pytest.MarkDecorator: ...


def adv_robust(func: Any = None, /, **kwargs: Any) -> Any:
    """Mark a test to be attacked after its body ran; it fails if any image's label flips within ε.

    Same as ``@pytest.mark.adv_robust(...)``, but each keyword is checked now, so a typo or a bad value
    fails at import with a message naming it. Every keyword overrides ``--adv-<name>`` and the ini
    ``adv_<name>`` for this test; relative paths are relative to the test file's folder.
    """
    given = {name: value for name, value in kwargs.items() if value is not None}
    resolve([(given, Source("marker", "@adv_robust(...)"))], partial=True)
    if func is not None:
        if not callable(func):
            raise OptionError("adv_robust takes keyword arguments only, e.g. @adv_robust(epsilon=0.007)")
        return pytest.mark.adv_robust(func)
    return pytest.mark.adv_robust(**given)
