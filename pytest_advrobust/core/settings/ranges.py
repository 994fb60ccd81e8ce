"""The values a run can have used, checked where a run's settings are read back from a file a job wrote
(:class:`~pytest_advrobust.core.results.report.RunSettings`): each one through its option's own parser, so
the ranges are the options' (one definition), plus the few resolved values no option spells as such."""

from __future__ import annotations

from typing import Any

from .parsers import MAX_BUDGET
from .table import OPTIONS_BY_NAME

PARSED = ("epsilon", "steps", "seed", "eot", "queries", "confidence", "min_robust_accuracy", "norm")
"""The run settings that are an option's value as it resolved: its parser accepts each or says why not."""


def check_run_values(run: Any) -> None:
    """``ValueError`` naming the first of a run's settings that no run can have used: an option's value its
    parser refuses, a step size, a minimal-ε search range or a tolerance out of [0, max budget], a batch size
    below 1."""
    for name in PARSED:
        value = getattr(run, name)
        if value is None:
            continue
        try:
            OPTIONS_BY_NAME[name].parse(value, None)
        except ValueError as exc:
            raise ValueError(f"{name}={value!r}: {exc}"[:160]) from None
    if not 0 <= run.step_size <= MAX_BUDGET:  # resolved: ε × a relative size, so 0 at ε = 0 (no option value)
        raise ValueError(f"step_size must be in [0, {MAX_BUDGET:g}], not {run.step_size!r}"[:120])
    for key, value in (run.minimal_epsilon or {}).items():
        if not 0 <= value <= MAX_BUDGET:
            raise ValueError(f"minimal_epsilon[{key!r}] must be in [0, {MAX_BUDGET:g}], not {value!r}"[:120])
    if len(run.tolerance) != 2 or not all(0 <= value <= MAX_BUDGET for value in run.tolerance):
        raise ValueError(f"tolerance must be two numbers ≥ 0 (absolute, relative), not {run.tolerance!r}"[:120])
    if not all(1 <= size <= 2**31 for size in run.batch_sizes):
        raise ValueError(f"batch_sizes must be sizes ≥ 1, not {run.batch_sizes!r}"[:120])
