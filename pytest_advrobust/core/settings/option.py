"""What one setting is: its name, how a raw value is parsed, its default and its help text.

The settings themselves are listed by group (:mod:`.attack`, :mod:`.model`, :mod:`.data`,
:mod:`.baselines`, :mod:`.reports`) and gathered in :mod:`.table`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import parsers as p

Parser = Callable[[Any, Path | None], Any]


@dataclass(frozen=True)
class Option:
    """One setting: its name, how to parse a raw value, its default and its help text.

    ``default`` is the one home of the default. ``default_doc`` says in words what a default means when
    its value alone does not (``None`` = auto).
    """

    name: str
    parse: Parser
    default: Any
    help: str
    metavar: str = "VALUE"
    per_test: bool = True
    """False for session-wide settings, which have no marker spelling."""
    default_doc: str | None = None

    @property
    def cli(self) -> str:
        return "--adv-" + self.name.replace("_", "-")

    @property
    def negative_cli(self) -> str:
        """``--adv-no-NAME``, which turns a flag off (see :attr:`is_flag`)."""
        return "--adv-no-" + self.name.replace("_", "-")

    @property
    def ini(self) -> str:
        return "adv_" + self.name

    @property
    def is_flag(self) -> bool:
        """A true/false setting (``auto`` too, when unset): on the command line a flag that never takes the
        next argument, ``--adv-NAME`` to turn it on and ``--adv-no-NAME`` off."""
        return self.parse is p.parse_bool or self.parse is p.parse_auto_bool

    @property
    def shown_default(self) -> str:
        """The default as a user writes it: ``0.007``, ``true``, ``none``, ``untargeted``."""
        return self.default_doc if self.default_doc is not None else show_value(self.default)

    @property
    def full_help(self) -> str:
        """The help text with its default, shared by ``addoption`` and ``addini``."""
        return f"{self.help} Default: {self.shown_default}."


def show_value(value: Any) -> str:
    """A setting's value spelled as on the command line."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
