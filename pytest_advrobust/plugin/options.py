"""Options: the ``--adv-*`` / ``adv_*`` spellings, resolved once per session, and per test on top."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ..core.errors import OptionError
from ..core.settings import OPTIONS, AttackConfig, RunConfig, Source, resolve, resolve_run
from ..core.settings.baselines import auto_baseline_dir
from ..core.settings.reports import REPORT_FILES


def add_options(parser: pytest.Parser) -> None:
    """Every option in its CLI and ini spelling, with the help text (and default) written once.

    Booleans are plain flags that never take the next argument (``--adv-baseline-update tests/x.py``
    updates that file's baselines): ``--adv-<name>`` turns one on, ``--adv-no-<name>`` off.
    """
    group = parser.getgroup("advrobust", "adversarial robustness (pytest-advrobust)")
    for option in OPTIONS:
        help_text = option.full_help.replace("%", "%%")
        if option.is_flag:
            flag = {"dest": option.ini, "action": "store_const", "default": None}
            group.addoption(option.cli, const="true", help=help_text, **flag)
            group.addoption(option.negative_cli, const="false", help=f"Turn {option.cli} off.", **flag)
        else:
            group.addoption(option.cli, dest=option.ini, default=None, metavar=option.metavar, help=help_text)
        parser.addini(option.ini, help=option.full_help, type="string", default="")


def worker_gpu(device: str, worker: str | None, visible: int) -> str:
    """Under pytest-xdist, ``cuda`` (or ``auto`` with GPUs) on worker ``gwK`` means visible GPU K mod
    ``visible``: workers spread over the GPUs that CUDA_VISIBLE_DEVICES leaves visible. A device with
    an index (``cuda:1``), the CPU, and runs without xdist are left as they are."""
    if device not in ("cuda", "auto") or visible < 1 or not worker or not worker.startswith("gw"):
        return device
    number = worker[2:]
    return f"cuda:{int(number) % visible}" if number.isdigit() else device


def on_this_worker(config: AttackConfig) -> AttackConfig:
    """The config with its device mapped to this xdist worker's GPU (see :func:`worker_gpu`)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if config.device not in ("cuda", "auto") or not worker:
        return config
    import torch

    visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
    device = worker_gpu(config.device, worker, visible)
    return config if device == config.device else dataclasses.replace(config, device=device)


def _in_job(run: RunConfig) -> RunConfig:
    """Under ``--adv-shard=K/N``: the report, HTML and Markdown files named for the shard (the merge writes
    the files the options name). A job writes no baseline file: its updates go into its report."""
    shard = run.shard
    if shard is None:
        return run
    if run.baseline_update and run.report is None:
        spelled = run.sources["shard"].spell("shard", str(shard)) if "shard" in run.sources else str(shard)
        update = run.sources.get("baseline_update")
        updating = (
            "--adv-baseline-update"
            if update is None or update.kind == "cli"
            else update.spell("baseline_update", "true")
        )
        raise OptionError(
            f"{spelled} with {updating}: a job of a matrix writes no baseline file; its updates go "
            "into its JSON report, for 'python -m pytest_advrobust merge' to write them all at once. Add "
            "--adv-report=FILE"
        )

    def named(path: Path | None) -> Path | None:
        return None if path is None else shard.file(path)

    return dataclasses.replace(run, report=named(run.report), html=named(run.html), markdown=named(run.markdown))


@dataclass(frozen=True)
class Settings:
    """The session's settings: per-test defaults from CLI and ini, and the session-wide ones."""

    base: AttackConfig
    run: RunConfig
    rootpath: Path
    invocation_dir: Path
    ini_file: Path | None = None
    """The ini file given with ``-c`` (a rerun needs it again), else None."""

    @classmethod
    def from_config(cls, config: pytest.Config) -> Settings:
        """Resolve ini, ``-o`` and CLI values once; a bad one raises OptionError naming its spelling."""
        overridden = {entry.partition("=")[0].strip() for entry in config.option.override_ini or ()}
        ini_values: dict[str, Any] = {}
        override_values: dict[str, Any] = {}
        for option in OPTIONS:
            raw = config.getini(option.ini)
            given = raw if raw not in ("", None, []) else None
            (override_values if option.ini in overridden else ini_values)[option.name] = given
        ini_label = config.inipath.name if config.inipath else "the ini file"
        cli_values = {option.name: config.getoption(option.ini) for option in OPTIONS}
        layers = [
            (ini_values, Source("ini", ini_label, config.rootpath)),
            (override_values, Source("override", "-o", config.rootpath)),
            (cli_values, Source("cli", "the command line", config.invocation_params.dir)),
        ]
        ini_file = config.inipath if config.option.inifilename else None
        where = config.invocation_params.dir
        return cls(resolve(layers), _in_job(resolve_run(layers)), config.rootpath, where, ini_file)

    def resolve_for(
        self, item: pytest.Item, overrides: dict[str, Any] | None = None, where: str = "adv_attack(...)"
    ) -> AttackConfig:
        """The test's settings: its marker's keywords (and ``overrides``, given by ``where``) on top of CLI
        and ini."""
        layers: list[tuple[dict[str, Any], Source]] = []
        marker = item.get_closest_marker("adv_robust")
        if marker is not None:
            if marker.args:
                raise TypeError("adv_robust takes keyword arguments only, e.g. @adv_robust(epsilon=0.007)")
            layers.append(
                (dict(marker.kwargs), Source("marker", f"the adv_robust marker on {item.name}", item.path.parent))
            )
        if overrides:
            layers.append((overrides, Source("call", f"{where} in {item.name}", item.path.parent)))
        config = resolve(layers, base=self.base)
        if self.run.shard is not None:  # the jobs of a CI matrix split every decorated test alike
            config = dataclasses.replace(config, shards=self.run.shard.count)
        return on_this_worker(config)

    def shown(self, path: Path | str) -> str:
        """A path as messages and reports show it: relative to the folder pytest was started in."""
        return os.path.relpath(path, self.invocation_dir)

    def baselines_in_use(self, baseline_file: Path) -> bool:
        """Baselines are opt-in by presence: a baseline option was given, or this module has a file."""
        given = any(name in self.run.sources for name in ("baseline_update", "baseline_dir", "baseline_strict"))
        return given or baseline_file.exists()

    @property
    def baseline_dir(self) -> Path:
        return self.run.baseline_dir or auto_baseline_dir(self.rootpath)

    def check_paths(self) -> None:
        """Raise OptionError, naming the option and the fix, for an output path that cannot be written at
        session end: a report file that is a folder, anything under a file, a folder that is a file, or a
        read-only folder. Nothing is created: folders that do not exist yet are made when written."""
        run = self.run
        for name, example in REPORT_FILES.items():
            path = getattr(run, name)
            if path is None:
                continue
            given = path if run.shard is None else run.shard.merged_file(path)  # a job writes its shard's copy
            for target in dict.fromkeys((given, path)):
                if target.is_dir():
                    raise OptionError(
                        f"{self._spelled(name, given)}: {self.shown(target)} is a folder; name a file in it, e.g. "
                        f"{self._spelled(name, given / example)}"
                    )
            self._check_folder(name, given, path.parent)
        if run.artifacts is not None:
            self._check_folder("artifacts", run.artifacts, run.artifacts)
        if run.baseline_update:
            self._check_folder("baseline_dir", self.baseline_dir, self.baseline_dir)

    def _check_folder(self, name: str, path: Path, folder: Path) -> None:
        """``folder`` (``path``'s, or ``path`` itself) is a writable folder, or can be made in one."""
        existing = folder
        while not existing.exists() and existing.parent != existing:
            existing = existing.parent
        if not existing.is_dir():
            raise OptionError(
                f"{self._spelled(name, path)}: {self.shown(existing)} is a file, not a folder; choose another "
                f"path, or move {self.shown(existing)} away"
            )
        if not os.access(existing, os.W_OK | os.X_OK):
            raise OptionError(
                f"{self._spelled(name, path)}: the folder {self.shown(existing)} is not writable; choose a folder "
                f"you can write to, or make it writable (chmod u+w {self.shown(existing)})"
            )

    def _spelled(self, name: str, path: Path) -> str:
        """The option as the user gave it (``--adv-html=out/r.html``), or the default's name for it."""
        source = self.run.sources.get(name)
        if source is None:
            return f"the default --adv-{name.replace('_', '-')}={self.shown(path)}"
        return source.spell(name, os.path.relpath(path, source.base) if source.base is not None else path)

    def header(self) -> dict[str, Any]:
        """What the JSON and HTML reports say about the run as a whole."""
        from ..core.version import __version__

        return {"pytest_advrobust": __version__, "defaults": self.base.describe(), "rootdir": self.shown(self.rootpath)}


SETTINGS_KEY: pytest.StashKey[Settings] = pytest.StashKey()
"""config.stash: the CLI/ini settings of the session."""
