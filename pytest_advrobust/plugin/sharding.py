"""The plugin's own shards of a decorated test: ``--adv-shards=N`` (or a CI matrix's ``--adv-shard=K/N``)
parametrizes it into N test cases, ``test_x[shard1ofN]`` ... Each item's
:class:`~pytest_advrobust.core.results.shards.Shard` comes from that parametrization, never from a pattern
in a name: a test called ``test_data_shard1of3`` is a test of its own."""

from __future__ import annotations

from typing import Any

import pytest

from ..core.errors import AdvRobustError
from ..core.results.shards import Shard
from .options import SETTINGS_KEY

SHARD_FIXTURE = "adv_shard"
"""The fixture the plugin parametrizes with each shard's 0-based index."""
SHARD_KEY: pytest.StashKey[Shard | None] = pytest.StashKey()
"""item.stash: the item's shard (None: a whole test), found once."""


def shard_ids(count: int) -> list[str]:
    """The ids of a test's ``count`` shards: ``shard1of4`` ... ``shard4of4``."""
    return [f"shard{k + 1}of{count}" for k in range(count)]


def item_shard(item: pytest.Item) -> Shard | None:
    """The shard this item is, when the plugin split its test; None otherwise."""
    if SHARD_KEY in item.stash:
        return item.stash[SHARD_KEY]
    callspec: Any = getattr(item, "callspec", None)
    index = callspec.params.get(SHARD_FIXTURE) if callspec is not None else None
    shard = None
    if isinstance(index, int):
        try:
            count = item.config.stash[SETTINGS_KEY].resolve_for(item).shards
        except (AdvRobustError, TypeError):
            count = None
        if count is not None and 0 <= index < count:
            shard = Shard.of(item.nodeid, shard_ids(count)[index])
    item.stash[SHARD_KEY] = shard
    return shard


def report_shard(report: pytest.TestReport) -> Shard | None:
    """The shard a test report says it is (the plugin put it there: a worker's reports carry it too)."""
    data = getattr(report, "adv_shard", None)
    if not isinstance(data, dict):
        return None
    try:
        return Shard.of(report.nodeid, data.get("shard", ""), data.get("test"))
    except ValueError:
        return None
