"""What fails a test besides a flip: a robust accuracy it must reach, and the confidence level of every
interval and statistical test the reports and the gates use."""

from __future__ import annotations

from . import parsers as p
from .option import Option

DEFAULT_CONFIDENCE = 0.95

OPTIONS: tuple[Option, ...] = (
    Option(
        "min_robust_accuracy",
        p.parse_min_accuracy,
        None,
        metavar="P",
        help=(
            "Pass a test when its robust accuracy (images that held, of the images attacked) is at least P "
            "(0.6 or 60%), and fail it below, whatever single images flipped: the gate for a model that is "
            "robust on most images, not all. The failure names the measured value, its interval and P."
        ),
        default_doc="none (any flip fails the test)",
    ),
    Option(
        "confidence",
        p.parse_confidence,
        DEFAULT_CONFIDENCE,
        metavar="LEVEL",
        help=(
            "Confidence level of the robust accuracy's exact (Clopper-Pearson) interval in every report, and "
            "of the statistical baseline rule: it fails a drop significant at 1 - LEVEL."
        ),
    ),
)
