"""The options table: every setting described once (name, parser, default, help), gathered from its group.

Each group holds its settings, their defaults and what ``auto`` means for those that have one:
:mod:`.attack` (budget, attack, steps, loss, targets, verdict), :mod:`.model` (model, device, mean, std,
input size), :mod:`.data` (images, labels, batches, workers, shards), :mod:`.gates` (minimum robust
accuracy, confidence), :mod:`.baselines` (minimal ε, tolerance, the rule, the baseline files) and
:mod:`.reports` (artifacts, HTML, JSON, Markdown). The config
dataclasses, the help text, the docs' options page, the marker's doc and :func:`pytest_advrobust.attack`'s
signature are derived from this table or tested against it.
"""

from __future__ import annotations

from typing import Any

from . import attack, baselines, data, gates, model, reports
from .option import Option

OPTIONS: tuple[Option, ...] = (
    *attack.OPTIONS,
    *model.OPTIONS,
    *data.OPTIONS,
    *gates.OPTIONS,
    *baselines.OPTIONS,
    *reports.OPTIONS,
)
"""Every setting, in the order of ``--help`` and the docs' options page: by group."""
OPTIONS_BY_NAME: dict[str, Option] = {option.name: option for option in OPTIONS}
PER_TEST: tuple[str, ...] = tuple(option.name for option in OPTIONS if option.per_test)
SESSION_WIDE: tuple[str, ...] = tuple(option.name for option in OPTIONS if not option.per_test)


def default(name: str) -> Any:
    """The default of a setting, from the options table (its one home)."""
    return OPTIONS_BY_NAME[name].default
