"""Every setting of pytest-advrobust, described once, and the one precedence rule.

Each setting has three spellings: CLI ``--adv-epsilon``, ini ``adv_epsilon`` and marker keyword
``epsilon``. The package is split by job: :mod:`.values` (the value types), :mod:`.parsers` (raw value →
value), :mod:`.table` (the options table, its defaults and auto rules), :mod:`.configs` (the resolved
configs), :mod:`.profiles` (named sets of settings) and :mod:`.precedence` (*call > marker > CLI > -o > ini
> profile > model > default*). Pure Python: it imports neither pytest nor torch, so the plugin can use it
at load time. The names below are the ones other modules use.
"""

from __future__ import annotations

from .configs import AttackConfig, RunConfig
from .option import Option
from .precedence import parse_one, register_profile, resolve, resolve_run, unparse
from .table import OPTIONS, OPTIONS_BY_NAME, PER_TEST, SESSION_WIDE, default
from .values import LossKind, Source, SourceKind, TargetSpec

__all__ = [
    "OPTIONS",
    "OPTIONS_BY_NAME",
    "PER_TEST",
    "SESSION_WIDE",
    "AttackConfig",
    "LossKind",
    "Option",
    "RunConfig",
    "Source",
    "SourceKind",
    "TargetSpec",
    "default",
    "parse_one",
    "register_profile",
    "resolve",
    "resolve_run",
    "unparse",
]
