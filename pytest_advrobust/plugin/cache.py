"""What a session loads once: models, image sets, model fingerprints and stored baseline files.

Storage only; the fixtures and the judge decide what to ask for. Nothing here imports torch until a
model or images are actually needed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ..core.settings import AttackConfig

if TYPE_CHECKING:
    from ..core.baseline import BaselineEntry


@dataclass(eq=False)
class Cache:
    """Per-session caches, keyed by what determines their content."""

    baseline_dir: Path
    models: dict[tuple[str, bool, str], Any] = field(default_factory=dict)
    image_sets: dict[tuple[Any, ...], Any] = field(default_factory=dict)
    fingerprints: dict[int, str] = field(default_factory=dict)
    baseline_files: dict[str, dict[str, BaselineEntry]] = field(default_factory=dict)

    def model(self, spec: str, allow_pickle: bool, device: str) -> Any:
        """Load (once per session) the model a spec names and put it on ``device``."""
        key = (spec, allow_pickle, device)
        if key not in self.models:
            from ..core.loading import load_model
            from ..core.model import place_model

            self.models[key] = place_model(load_model(spec, allow_pickle=allow_pickle), device)
        return self.models[key]

    def images(self, config: AttackConfig) -> Any:
        """The image files the settings name, with their labels (listed once per session; decoded batch
        by batch by whoever reads them)."""
        from ..core.classes import load_class_names
        from ..core.images import find_images

        assert config.images is not None
        key = (config.images, config.input_size, config.labels, config.class_names, config.image_mode)
        if key not in self.image_sets:
            self.image_sets[key] = find_images(
                list(config.images),
                input_size=config.input_size,
                labels_file=config.labels,
                class_names=load_class_names(config.class_names),
                image_mode=config.image_mode,
            )
        return self.image_sets[key]

    def fingerprint(self, model: Any) -> str:
        from ..core.baseline import model_fingerprint

        key = id(model)
        if key not in self.fingerprints:
            self.fingerprints[key] = model_fingerprint(model)
        return self.fingerprints[key]

    def stored_baseline(self, module: str, test: str) -> BaselineEntry | None:
        """The stored baseline of one test, or None (each file is read once per session)."""
        from ..core.baseline_store import baseline_file, read_baselines

        if module not in self.baseline_files:
            self.baseline_files[module] = read_baselines(baseline_file(self.baseline_dir, module))
        return self.baseline_files[module].get(test)


CACHE_KEY: pytest.StashKey[Cache] = pytest.StashKey()
"""config.stash: models, images, fingerprints and baseline files, loaded once per session."""
