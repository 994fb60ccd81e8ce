"""Session state of the plugin: the CLI/ini settings, loaded models and images, gathered results.

Kept in ``config.stash``; nothing here imports torch until a model or images are actually needed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ..core.settings import OPTIONS, AttackConfig, Source, resolve
from ..core.summary import summary_lines, write_report


@dataclass(eq=False)  # registered as a plugin: must stay hashable
class AdvSession:
    """Everything the plugin keeps for one pytest session."""

    config: pytest.Config
    base: AttackConfig
    models: dict[tuple[str, bool, str], Any] = field(default_factory=dict)
    image_sets: dict[tuple[Any, ...], Any] = field(default_factory=dict)
    summaries: list[dict[str, Any]] = field(default_factory=list)
    baseline_files: dict[str, dict[str, Any]] = field(default_factory=dict)
    baseline_updates: dict[str, dict[str, Any]] = field(default_factory=dict)
    fingerprints: dict[int, str] = field(default_factory=dict)
    written: list[Path] = field(default_factory=list)

    @classmethod
    def from_config(cls, config: pytest.Config) -> AdvSession:
        """Resolve ini and CLI values once; a bad one raises OptionError naming its spelling."""
        ini_values = {}
        for option in OPTIONS:
            raw = config.getini(option.ini)
            ini_values[option.name] = raw if raw not in ("", None, []) else None
        ini_label = config.inipath.name if config.inipath else "the ini file"
        cli_values = {option.name: config.getoption(option.ini) for option in OPTIONS}
        base = resolve(
            [
                (ini_values, Source("ini", ini_label, config.rootpath)),
                (cli_values, Source("cli", "the command line", config.invocation_params.dir)),
            ]
        )
        return cls(config=config, base=base)

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

    def model(self, spec: str, allow_pickle: bool, device: str) -> Any:
        """Load (once per session) the model a spec names and put it on ``device``."""
        key = (spec, allow_pickle, device)
        if key not in self.models:
            from ..core.loading import load_model

            self.models[key] = place_model(load_model(spec, allow_pickle=allow_pickle), device)
        return self.models[key]

    def images(self, config: AttackConfig) -> Any:
        """Load (once per session) the images the settings name."""
        from ..core.classes import load_class_names
        from ..core.images import load_images

        assert config.images is not None
        key = (config.images, config.input_size, config.labels, config.class_names)
        if key not in self.image_sets:
            self.image_sets[key] = load_images(
                list(config.images),
                input_size=config.input_size,
                labels_file=config.labels,
                class_names=load_class_names(config.class_names),
            )
        return self.image_sets[key]

    @property
    def baseline_dir(self) -> Path:
        return self.base.baseline_dir or self.config.rootpath / "advrobust-baselines"

    def stored_baseline(self, module: str, test: str) -> dict[str, Any] | None:
        """The stored baseline of one test, or None (each file is read once per session)."""
        from ..core.baseline import baseline_file, read_baselines

        if module not in self.baseline_files:
            self.baseline_files[module] = read_baselines(baseline_file(self.baseline_dir, module))
        entry: dict[str, Any] | None = self.baseline_files[module].get(test)
        return entry

    def fingerprint(self, model: Any) -> str:
        from ..core.baseline import model_fingerprint

        key = id(model)
        if key not in self.fingerprints:
            self.fingerprints[key] = model_fingerprint(model)
        return self.fingerprints[key]

    def reproduce_command(self, nodeid: str, config: AttackConfig) -> str:
        """A command line that reruns one test with this run's --adv-* options and its seed."""
        args = [a for a in self.config.invocation_params.args if str(a).startswith("--adv-")]
        if not any(str(a).startswith("--adv-seed") for a in args):
            args.append(f"--adv-seed={config.seed}")
        return " ".join(["pytest", f"'{nodeid}'", *args])

    # -- hooks: this object is registered as a plugin, so results reach it on the xdist controller too

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        summary = getattr(report, "adv_robust", None)
        if summary is not None and report.when == "call":
            self.summaries.append(summary)
        baseline = getattr(report, "adv_baseline", None)
        if baseline is not None and report.when == "call" and baseline["status"] == "recorded":
            tests = self.baseline_updates.setdefault(baseline["module"], {})
            if baseline["test"] in tests:  # another shard of the same test: one entry, all images
                tests[baseline["test"]]["images"].update(baseline["entry"]["images"])
            else:
                tests[baseline["test"]] = baseline["entry"]

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.summaries:
            terminalreporter.write_sep("-", "adversarial robustness")
            for line in summary_lines(self.summaries):
                terminalreporter.write_line(line)
        for path in self.written:
            what = "HTML report" if path == self.base.html else "baseline"
            terminalreporter.write_line(f"advrobust: {what} written to {path}")

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if hasattr(session.config, "workerinput"):  # xdist workers send results; the controller writes
            return
        if self.baseline_updates:
            from ..core.baseline import write_baselines

            self.written = write_baselines(self.baseline_dir, self.baseline_updates)
        if self.base.report is not None:
            write_report(self.base.report, self.summaries, self.header())
        if self.base.html is not None:
            from ..core.html_report import render_html
            from ..core.summary import merge_shards

            self.base.html.parent.mkdir(parents=True, exist_ok=True)
            self.base.html.write_text(render_html(merge_shards(self.summaries), self.header()), encoding="utf-8")
            self.written.append(self.base.html)

    def header(self) -> dict[str, Any]:
        from .. import __version__

        return {"pytest_advrobust": __version__, "defaults": self.base.describe(), "rootdir": str(self.config.rootpath)}


def place_model(model: Any, device: str) -> Any:
    """Move ``model`` to the device setting (a no-op for 'model'); checks the device exists."""
    if device == "model":
        return model
    from ..core.model import model_device, resolve_device

    wanted = resolve_device(device, model)
    if model_device(model) != wanted and hasattr(model, "to"):
        model = model.to(wanted)
    return model
