"""Options: the ``--adv-*`` / ``adv_*`` spellings, resolved once per session, and per test on top."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ..core.settings import OPTIONS, AttackConfig, RunConfig, Source, resolve, resolve_run


def add_options(parser: pytest.Parser) -> None:
    """Every option in its CLI and ini spelling, with the help text (and default) written once."""
    group = parser.getgroup("advrobust", "adversarial robustness (pytest-advrobust)")
    for option in OPTIONS:
        # booleans also work as flags: --adv-baseline-update means --adv-baseline-update=true
        flag = {"nargs": "?", "const": "true"} if option.metavar == "BOOL" else {}
        group.addoption(
            option.cli,
            dest=option.ini,
            default=None,
            metavar=option.metavar,
            help=option.full_help.replace("%", "%%"),
            **flag,
        )
        parser.addini(option.ini, help=option.full_help, type="string", default="")


@dataclass(frozen=True)
class Settings:
    """The session's settings: per-test defaults from CLI and ini, and the session-wide ones."""

    base: AttackConfig
    run: RunConfig
    rootpath: Path
    invocation_args: tuple[str, ...]

    @classmethod
    def from_config(cls, config: pytest.Config) -> Settings:
        """Resolve ini and CLI values once; a bad one raises OptionError naming its spelling."""
        ini_values = {}
        for option in OPTIONS:
            raw = config.getini(option.ini)
            ini_values[option.name] = raw if raw not in ("", None, []) else None
        ini_label = config.inipath.name if config.inipath else "the ini file"
        cli_values = {option.name: config.getoption(option.ini) for option in OPTIONS}
        layers = [
            (ini_values, Source("ini", ini_label, config.rootpath)),
            (cli_values, Source("cli", "the command line", config.invocation_params.dir)),
        ]
        args = tuple(str(arg) for arg in config.invocation_params.args)
        return cls(resolve(layers), resolve_run(layers), config.rootpath, args)

    def resolve_for(self, item: pytest.Item, overrides: dict[str, Any] | None = None) -> AttackConfig:
        """The test's settings: its marker's keywords (and call overrides) on top of CLI and ini."""
        layers: list[tuple[dict[str, Any], Source]] = []
        marker = item.get_closest_marker("adv_robust")
        if marker is not None:
            if marker.args:
                raise TypeError("adv_robust takes keyword arguments only, e.g. @adv_robust(epsilon=0.007)")
            layers.append(
                (dict(marker.kwargs), Source("marker", f"the adv_robust marker on {item.name}", item.path.parent))
            )
        if overrides:
            layers.append((overrides, Source("call", f"adv_attack(...) in {item.name}", item.path.parent)))
        return resolve(layers, base=self.base)

    @property
    def baseline_dir(self) -> Path:
        return self.run.baseline_dir or self.rootpath / "advrobust-baselines"

    def reproduce_command(self, nodeid: str, config: AttackConfig) -> str:
        """A command line that reruns one test with this run's --adv-* options and its seed."""
        args = [a for a in self.invocation_args if a.startswith("--adv-")]
        if not any(a.startswith("--adv-seed") for a in args):
            args.append(f"--adv-seed={config.seed}")
        return " ".join(["pytest", f"'{nodeid}'", *args])

    def header(self) -> dict[str, Any]:
        """What the JSON and HTML reports say about the run as a whole."""
        from ..core.version import __version__

        return {"pytest_advrobust": __version__, "defaults": self.base.describe(), "rootdir": str(self.rootpath)}
