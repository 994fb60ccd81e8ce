"""Every stash key of the plugin, in one place."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from ..core.report import HtmlCard, RunReport
    from .cache import Cache
    from .collector import Collector
    from .fixtures import Plan
    from .judge import Verdict
    from .options import Settings

SETTINGS_KEY: pytest.StashKey[Settings] = pytest.StashKey()
"""config.stash: the CLI/ini settings of the session."""
CACHE_KEY: pytest.StashKey[Cache] = pytest.StashKey()
"""config.stash: models, images, fingerprints and baseline files, loaded once per session."""
COLLECTOR_KEY: pytest.StashKey[Collector] = pytest.StashKey()
"""config.stash: the test reports gathered in this process (on the xdist controller: from all workers)."""
PLAN_KEY: pytest.StashKey[Plan] = pytest.StashKey()
"""item.stash: what the marker attacks after the test body."""
RUNS_KEY: pytest.StashKey[list[RunReport]] = pytest.StashKey()
"""item.stash: the reports of the test's attack runs (the marker's and each adv_attack call)."""
VERDICT_KEY: pytest.StashKey[Verdict] = pytest.StashKey()
"""item.stash: what the marker's attack means for the test."""
CARDS_KEY: pytest.StashKey[list[HtmlCard]] = pytest.StashKey()
"""item.stash: the first failed images' cards, for pytest-html's extras (only when pytest-html writes a report)."""
