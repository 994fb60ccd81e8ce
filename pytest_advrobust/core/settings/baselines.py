"""The baselines' settings: minimal ε and its search, the tolerance, recording, the folder, strictness.

Their defaults and auto rules (:func:`auto_minimal_epsilon`, :func:`auto_epsilon_max`,
:func:`auto_baseline_dir`) live here and nowhere else.
"""

from __future__ import annotations

from pathlib import Path

from . import parsers as p
from .option import Option

BASELINE_FOLDER = "advrobust-baselines"
"""The baseline folder under the rootdir when ``baseline_dir`` is not set."""


def auto_minimal_epsilon(recording: bool, stored_has_minimal: bool) -> bool:
    """minimal_epsilon=auto: search when a baseline is recorded, or compared and it holds minimal ε."""
    return recording or stored_has_minimal


LINF_EPSILON_MAX = 16 / 255
LINF_PRECISION = 0.0002
LINF_TOLERANCE = 0.0005
SEARCH_RANGE_OVER_EPSILON = 4.0
"""Under l2 and l1 the search's top is 4·ε (there is no 8-bit scale to anchor it, as 16/255 is for L∞)."""
EMPTY_BALL_TOP = {"l2": 1.0, "l1": 10.0}
"""The search's top under l2 and l1 when ε is 0."""
SEARCH_STEPS = 256
"""Under l2 and l1 the precision is the range over 256: 8 bisection runs, as L∞'s 16/255 over 0.0002 takes."""
TOLERANCE_OVER_PRECISION = LINF_TOLERANCE / LINF_PRECISION


def auto_epsilon_max(epsilon_max: float | None, epsilon: float, norm: str = "linf") -> float:
    """The top of the minimal-ε search: ``epsilon_max`` (auto: 16/255 under L∞, 4·ε under L2 and L1), or
    the test's ε when that is larger (an image that flips at ε has its minimal ε at or below it)."""
    if epsilon_max is None:
        if norm == "linf":
            epsilon_max = LINF_EPSILON_MAX
        else:
            epsilon_max = SEARCH_RANGE_OVER_EPSILON * epsilon if epsilon > 0 else EMPTY_BALL_TOP[norm]
    return max(epsilon_max, epsilon)


def auto_epsilon_precision(precision: float | None, top: float, norm: str = "linf") -> float:
    """The minimal-ε search's precision: as set, or 0.0002 under L∞ and the range over 256 under L2 and
    L1 (two significant digits)."""
    if precision is not None:
        return precision
    return LINF_PRECISION if norm == "linf" else float(f"{top / SEARCH_STEPS:.2g}")


def auto_tolerance(tolerance: tuple[float, float] | None, precision: float, norm: str = "linf") -> tuple[float, float]:
    """The baseline tolerance: as set, else (auto) 0.0005 under L∞ and 2.5 search precisions under L2 and
    L1 (the ratio of L∞'s defaults)."""
    if tolerance is not None:
        return tolerance
    if norm == "linf":
        return (LINF_TOLERANCE, 0.0)
    return (float(f"{TOLERANCE_OVER_PRECISION * precision:.2g}"), 0.0)


def auto_baseline_dir(rootdir: Path) -> Path:
    """baseline_dir unset: :data:`BASELINE_FOLDER` under the rootdir."""
    return rootdir / BASELINE_FOLDER


OPTIONS: tuple[Option, ...] = (
    Option(
        "minimal_epsilon",
        p.parse_auto_bool,
        None,
        metavar="BOOL",
        help=(
            "Also search each image's minimal adversarial ε (batched bisection over (0, EPSILON_MAX] to "
            "EPSILON_PRECISION; about log2(range/precision) extra attack runs)."
        ),
        default_doc="auto, on when baselines are recorded or compared",
    ),
    Option(
        "epsilon_max",
        p.parse_budget,
        None,
        metavar="EPS",
        help=(
            "Top of the minimal-ε search range, in the norm's [0,1] pixel units; raised to EPSILON when that is "
            "larger (an image that flips at EPSILON has its minimal ε at or below it)."
        ),
        default_doc="auto: 16/255 ≈ 0.0627 under linf; 4·EPSILON under l2 and l1",
    ),
    Option(
        "epsilon_precision",
        p.parse_budget,
        None,
        metavar="EPS",
        help="Precision of the minimal-ε search, in the norm's [0,1] pixel units.",
        default_doc="auto: 0.0002 (≈ 0.05/255) under linf; EPSILON_MAX/256 under l2 and l1 (8 bisection runs)",
    ),
    Option(
        "tolerance",
        p.parse_tolerance,
        None,
        metavar="TOL",
        help=(
            "How far an image's minimal ε may drop below its baseline before the test fails: absolute "
            "(0.0005, in the norm's [0,1] pixel units), relative (10%), or both (0.0005,10%: the drop must "
            "exceed both)."
        ),
        default_doc="auto: 0.0005 under linf; 2.5 × EPSILON_PRECISION under l2 and l1",
    ),
    Option(
        "baseline_rule",
        p.parse_baseline_rule,
        "images",
        metavar="RULE",
        help=(
            "How a run is compared with its baseline: images (image by image: a baseline allows exactly the "
            "flips it recorded, any other fails) or statistical (on the images both runs attacked, fail only "
            "a drop in robust accuracy significant by McNemar's exact test, or in minimal ε beyond TOLERANCE "
            "by Wilcoxon's signed-rank test, at 1 - CONFIDENCE; for a validation set, where every retrain "
            "differs image by image)."
        ),
    ),
    Option(
        "baseline_update",
        p.parse_bool,
        False,
        metavar="BOOL",
        per_test=False,
        help=(
            "Record (or re-record) the robustness baseline of every adv_robust test instead of comparing "
            "against it; flips do not fail."
        ),
        default_doc="false (compare when a baseline exists)",
    ),
    Option(
        "baseline_dir",
        p.parse_optional_path,
        None,
        metavar="DIR",
        per_test=False,
        help="Where baselines live, one JSON file per test module, meant to be committed.",
        default_doc=f"{BASELINE_FOLDER}/ under the rootdir",
    ),
    Option(
        "baseline_strict",
        p.parse_bool,
        False,
        metavar="BOOL",
        per_test=False,
        help="Fail a test that has no stored baseline (instead of reporting it).",
    ),
)
