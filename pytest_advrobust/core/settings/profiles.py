"""Named sets of settings (Hypothesis' ``settings.register_profile``): ``--adv-profile=NAME`` selects one,
and its values apply above the defaults and below everything set by hand (*marker > CLI > ini > profile >
default*).

The registry only holds names and raw values; :func:`~pytest_advrobust.core.settings.precedence.register_profile`
validates a profile's values before it is stored, and :func:`~pytest_advrobust.core.settings.precedence.resolve`
applies the selected one.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

DEFAULT_PROFILE = "standard"

BUILT_IN: Mapping[str, Mapping[str, Any]] = MappingProxyType(
    {
        "quick": MappingProxyType({"attack": "fgsm", "targets": "untargeted"}),
        "standard": MappingProxyType({}),
        "thorough": MappingProxyType({"attack": "autoattack", "steps": 100, "queries": 5000, "targets": "top-9"}),
    }
)
"""``quick``: one FGSM step, untargeted (a pull-request check); ``standard``: the defaults; ``thorough``:
AutoAttack's standard sequence (APGD-CE, APGD-T toward the top 9 at 100 steps, then Square with 5000
queries on the images still robust)."""

_registered: dict[str, Mapping[str, Any]] = {}
"""Profiles registered by conftest files, as Hypothesis keeps its own: filled at import time, read when
settings are resolved."""


def profile_names() -> list[str]:
    """The built-in profiles, then the registered ones."""
    return [*BUILT_IN, *_registered]


def profile_settings(name: str) -> Mapping[str, Any]:
    """A profile's raw settings (validated when it was registered)."""
    return BUILT_IN[name] if name in BUILT_IN else _registered[name]


def store_profile(name: str, settings: Mapping[str, Any]) -> None:
    """Keep a validated profile (a later registration of the same name replaces it)."""
    _registered[name] = MappingProxyType(dict(settings))


def forget_profile(name: str) -> None:
    """Remove a registered profile (for tests)."""
    _registered.pop(name, None)
