"""The values a run can have used, checked where a run's settings are read back from a file a job wrote
(:class:`~pytest_advrobust.core.results.report.RunSettings`): the ranges the options accept."""

from __future__ import annotations

from typing import Any

from .parsers import MAX_BUDGET, MAX_EOT, MAX_QUERIES, MAX_STEPS
from .values import NORMS


def check_run_values(run: Any) -> None:
    """``ValueError`` naming the first of a run's settings (ε, step size, steps, seed, EOT, queries, minimal
    robust accuracy, the minimal-ε search's range, batch sizes, confidence, tolerance, norm) outside what the
    options accept."""
    ranges = (
        ("epsilon", run.epsilon, 0, MAX_BUDGET),
        ("step_size", run.step_size, 0, MAX_BUDGET),
        ("steps", run.steps, 0, MAX_STEPS),
        ("seed", run.seed, 0, 2**64 - 1),
        ("eot", run.eot, 1, MAX_EOT),
        ("queries", 0 if run.queries is None else run.queries, 0, MAX_QUERIES),
        ("min_robust_accuracy", 0 if run.min_robust_accuracy is None else run.min_robust_accuracy, 0, 1),
    )
    for name, value, low, high in ranges:
        if not low <= value <= high:
            raise ValueError(f"{name} must be in [{low:g}, {high:g}], not {value!r}"[:120])
    for key, value in (run.minimal_epsilon or {}).items():
        if not 0 <= value <= MAX_BUDGET:
            raise ValueError(f"minimal_epsilon[{key!r}] must be in [0, {MAX_BUDGET:g}], not {value!r}"[:120])
    if not all(1 <= size <= 2**31 for size in run.batch_sizes):
        raise ValueError(f"batch_sizes must be sizes ≥ 1, not {run.batch_sizes!r}"[:120])
    if not 0 < run.confidence < 1:
        raise ValueError(f"confidence must be strictly between 0 and 1, not {run.confidence!r}")
    if len(run.tolerance) != 2 or not all(0 <= value <= MAX_BUDGET for value in run.tolerance):
        raise ValueError(f"tolerance must be two numbers ≥ 0 (absolute, relative), not {run.tolerance!r}"[:120])
    if run.norm not in NORMS:
        raise ValueError(f"norm must be one of {', '.join(NORMS)}, not {run.norm!r}"[:120])
