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


def auto_epsilon_max(epsilon_max: float, epsilon: float) -> float:
    """The top of the minimal-ε search: ``epsilon_max``, or the test's ε when that is larger."""
    return max(epsilon_max, epsilon)


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
        16 / 255,
        metavar="EPS",
        help=(
            "Top of the minimal-ε search range, [0,1] pixel units; raised to EPSILON when that is larger (an image "
            "that flips at EPSILON has its minimal ε at or below it)."
        ),
        default_doc="16/255 ≈ 0.0627",
    ),
    Option(
        "epsilon_precision",
        p.parse_budget,
        0.0002,
        metavar="EPS",
        help="Precision of the minimal-ε search, [0,1] pixel units.",
        default_doc="0.0002 (≈ 0.05/255)",
    ),
    Option(
        "tolerance",
        p.parse_tolerance,
        (0.0005, 0.0),
        metavar="TOL",
        help=(
            "How far an image's minimal ε may drop below its baseline before the test fails: absolute "
            "(0.0005, [0,1] pixel units), relative (10%), or both (0.0005,10%: the drop must exceed both)."
        ),
        default_doc="0.0005",
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
