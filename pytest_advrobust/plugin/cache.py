"""What a session loads once: models, image sets, model fingerprints and stored baseline files.

Storage only; the fixtures and the judge decide what to ask for. Nothing here imports torch until a
model or images are actually needed.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytest

from ..core.settings import AttackConfig

if TYPE_CHECKING:
    from ..core.baselines.rule import BaselineEntry
    from ..core.models.formats import ShippedModel
    from ..core.models.preprocessing import Preprocessing


@dataclass(eq=False)
class Cache:
    """Per-session caches, keyed by what determines their content."""

    baseline_dir: Path
    models: dict[tuple[str, bool, str], Any] = field(default_factory=dict)
    shipped_models: dict[tuple[str, bool], ShippedModel | None] = field(default_factory=dict)
    warned: set[str] = field(default_factory=set)
    image_sets: dict[tuple[Any, ...], Any] = field(default_factory=dict)
    fingerprints: dict[int, str] = field(default_factory=dict)
    baseline_files: dict[str, dict[str, BaselineEntry]] = field(default_factory=dict)

    def model(self, spec: str, allow_pickle: bool, device: str) -> Any:
        """Load (once per session) the model a spec names and put it on ``device``."""
        key = (spec, allow_pickle, device)
        if key not in self.models:
            from ..core.models.loading import load_model
            from ..core.models.model import place_model

            shipped = self.shipped(spec, allow_pickle)
            loaded = shipped.module if shipped is not None else load_model(spec, allow_pickle=allow_pickle)
            self.models[key] = place_model(loaded, device)
        return self.models[key]

    def shipped(self, spec: str, allow_pickle: bool = False) -> ShippedModel | None:
        """The model a spec names with its own preprocessing, loaded once per session, when the spec names
        a library's format (timm, Hugging Face, ONNX, an exported program); None for the other specs."""
        key = (spec, allow_pickle)
        if key not in self.shipped_models:
            from ..core.models.formats import load_shipped, shipped_kind

            shipped = load_shipped(spec, allow_pickle=allow_pickle) if shipped_kind(spec) is not None else None
            for note in shipped.notes if shipped is not None else ():
                self.warn_once(note)
            self.shipped_models[key] = shipped
        return self.shipped_models[key]

    def warn_once(self, message: str) -> None:
        """A UserWarning, the first time this session says it (settings resolve per fixture and test)."""
        if message not in self.warned:
            self.warned.add(message)
            warnings.warn(message, stacklevel=4)

    def images(self, config: AttackConfig) -> Any:
        """The image files the settings name, with their labels (listed once per session; decoded batch
        by batch by whoever reads them)."""
        from ..core.data.classes import load_class_names
        from ..core.data.images import find_images

        assert config.images is not None
        key = (config.images, config.input_size, config.labels, config.class_names, config.image_mode, config.image_fit)
        if key not in self.image_sets:
            self.image_sets[key] = find_images(
                list(config.images),
                input_size=config.input_size,
                labels_file=config.labels,
                class_names=load_class_names(config.class_names),
                image_mode=config.image_mode,
                image_fit=cast("Preprocessing | None", config.image_fit),  # what with_model_metadata sets
            )
        return self.image_sets[key]

    def fingerprint(self, model: Any) -> str:
        from ..core.baselines.identity import model_fingerprint

        key = id(model)
        if key not in self.fingerprints:
            self.fingerprints[key] = model_fingerprint(model)
        return self.fingerprints[key]

    def stored_baseline(self, module: str, test: str) -> BaselineEntry | None:
        """The stored baseline of one test, or None (each file is read once per session)."""
        from ..core.baselines.store import baseline_file, read_baselines

        if module not in self.baseline_files:
            self.baseline_files[module] = read_baselines(baseline_file(self.baseline_dir, module))
        return self.baseline_files[module].get(test)


CACHE_KEY: pytest.StashKey[Cache] = pytest.StashKey()
"""config.stash: models, images, fingerprints and baseline files, loaded once per session."""
