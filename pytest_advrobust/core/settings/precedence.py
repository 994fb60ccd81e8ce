"""The one precedence rule: *call > marker > CLI > -o > ini > model > default*, each value remembering its
source (``-o adv_name=value`` is an ini value given on the command line; ``model``: the model's own
metadata, see :func:`with_model_metadata`).

:func:`resolve` parses and validates every layer's raw values (the first bad one raises
:class:`~pytest_advrobust.core.errors.OptionError` naming where it came from, e.g. "epsilon=-1 in the
adv_robust marker on test_x: must be ≥ 0"); :func:`unparse` spells a parsed value back so that parsing it
gives the value again (for the reproduce command).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import OptionError
from .configs import AttackConfig, RunConfig
from .table import OPTIONS_BY_NAME, PER_TEST, SESSION_WIDE
from .values import MODEL_PREFIXES, Source


def unparse(name: str, value: Any, path_text: Callable[[Path], str] = str) -> str:
    """A parsed value spelled so that parsing it gives the value back (``parse(unparse(v)) == v``).

    ``path_text`` spells paths (e.g. relative to the folder a command will run in).
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        auto = {"batch_size": "all", "labels": "prediction", "steps": "auto", "step_size": "auto", "output": "auto",
                "workers": "auto"}  # fmt: skip
        return auto.get(name, "none")
    if isinstance(value, Path):
        return path_text(value)
    if isinstance(value, float):
        return repr(value)
    if name == "model" and isinstance(value, str):
        prefix = next((p for p in MODEL_PREFIXES if value.startswith(p)), "")
        if prefix and "@" not in value:
            return prefix + path_text(Path(value[len(prefix) :]))
        arch, at, file = value.rpartition("@")
        if at:
            return f"{arch}@{path_text(Path(file))}"
        return path_text(Path(value)) if Path(value).is_absolute() else value
    if name == "tolerance":
        absolute, relative = value
        return ",".join([repr(absolute), *([f"{relative * 100!r}%"] if relative else [])])
    if name == "input_size":
        return f"{value[0]}x{value[1]}"
    if isinstance(value, tuple):
        return ",".join(unparse(name, item, path_text) for item in value)
    return str(value)


def parse_one(name: str, raw: Any, source: Source) -> Any:
    """Parse one raw value, turning a parser's ValueError into an OptionError that names the source."""
    option = OPTIONS_BY_NAME.get(name)
    if option is None:
        close = _close_names(name)
        hint = f" (did you mean {close}?)" if close else ""
        raise OptionError(f"unknown setting {name!r} in {source.label or source.kind}{hint}")
    try:
        return option.parse(raw, source.base)
    except ValueError as exc:
        raise OptionError(f"{source.spell(name, raw)}: {exc}") from None


def _close_names(name: str) -> str:
    import difflib

    matches = difflib.get_close_matches(name.replace("-", "_"), list(OPTIONS_BY_NAME), n=3)
    return ", ".join(matches)


def _resolve_values(
    layers: Sequence[tuple[Mapping[str, Any], Source]], names: Sequence[str]
) -> tuple[dict[str, Any], dict[str, Source]]:
    """Parse the values of ``names`` from layers given lowest precedence first; later layers win."""
    values: dict[str, Any] = {}
    sources: dict[str, Source] = {}
    for raw_values, source in layers:
        for name, raw in raw_values.items():
            if raw is None:
                continue
            option = OPTIONS_BY_NAME.get(name)
            if option is not None and source.kind in ("marker", "call") and not option.per_test:
                raise OptionError(
                    f"{name} in {source.label} is a session-wide setting: use {option.cli} or "
                    f"{option.ini} in the ini file"
                )
            parsed = parse_one(name, raw, source)
            if name in names:
                values[name], sources[name] = parsed, source
    return values, sources


def resolve(
    layers: Sequence[tuple[Mapping[str, Any], Source]],
    base: AttackConfig | None = None,
) -> AttackConfig:
    """Resolve per-test settings from layers given lowest precedence first (e.g. ini, CLI, marker, call).

    ``None`` in a layer means "not given". Values are parsed and validated; the first bad one raises
    :class:`OptionError` naming where it came from. ``base`` is an already resolved config to start from.
    Session-wide settings in a layer are validated too, but belong to :func:`resolve_run`.
    """
    values, sources = _resolve_values(layers, PER_TEST)
    if base is not None:
        values = {**{name: getattr(base, name) for name in PER_TEST}, **values}
        sources = {**base.sources, **sources}
    config = AttackConfig(**values, sources=sources)
    _check_combination(config)
    return config


def resolve_run(layers: Sequence[tuple[Mapping[str, Any], Source]]) -> RunConfig:
    """Resolve the session-wide settings (see :func:`resolve` for the layers)."""
    values, sources = _resolve_values(layers, SESSION_WIDE)
    return RunConfig(**values, sources=sources)


def _check_combination(config: AttackConfig) -> None:
    if config.attack == "fgsm" and config.step_size is not None:
        src = config.source("step_size")
        raise OptionError(
            f"{src.spell('step_size', config.step_size)}: fgsm is exactly one step of size ε; leave step_size at "
            "auto, or use attack=bim for steps of another size"
        )
    if config.attack == "apgd" and config.step_size is not None:
        src = config.source("step_size")
        raise OptionError(
            f"{src.spell('step_size', config.step_size)}: apgd sets its own step size (2ε, halved when progress "
            "stalls); leave step_size at auto, or use attack=pgd for a fixed step size"
        )
    if config.attack == "fgsm" and config.steps not in (None, 1):
        src = config.source("steps")
        raise OptionError(
            f"{src.spell('steps', config.steps)}: fgsm is exactly one step of size ε; use attack=bim for several steps"
        )
    if (config.mean is None) != (config.std is None):
        given = "mean" if config.mean is not None else "std"
        missing = "std" if given == "mean" else "mean"
        src = config.source(given)
        raise OptionError(
            f"{src.spell(given, getattr(config, given))}: {given} was given without {missing}; "
            f"set both (e.g. --adv-mean=imagenet --adv-std=imagenet)"
        )


MODEL_SETTINGS = ("mean", "std", "input_size", "image_mode", "class_names")
"""The settings a model's own metadata can supply (a timm ``pretrained_cfg``, a Hugging Face processor)."""


def _agree(name: str, set_value: Any, model_value: Any) -> bool:
    if name in ("mean", "std"):
        mine, theirs = tuple(set_value), tuple(model_value)
        width = max(len(mine), len(theirs))
        mine, theirs = (mine * width if len(mine) == 1 else mine), (theirs * width if len(theirs) == 1 else theirs)
        return len(mine) == len(theirs) and all(abs(a - b) <= 1e-6 for a, b in zip(mine, theirs, strict=True))
    if name == "class_names" and not isinstance(set_value, tuple):
        return True  # a file or "imagenet": compared with the model's outputs when the model answers
    return bool(set_value == model_value)


def with_model_metadata(
    config: AttackConfig, values: Mapping[str, Any], origins: Mapping[str, str], image_fit: Any = None
) -> tuple[AttackConfig, list[str]]:
    """The config with the model's own metadata where no marker, CLI or ini value is set (*call > marker >
    CLI > ini > model > default*), and one message per set value that contradicts the metadata.

    ``values`` maps settings of :data:`MODEL_SETTINGS` to the model's values (None: it does not say),
    ``origins`` each to where in the metadata it came from (``"timm pretrained_cfg"``): each filled value's
    source is ``Source("model", origin)``. ``image_fit`` (how the model's eval transform resizes and crops
    image files) is kept when the input size and channels in effect are the model's, else dropped, so an
    input size set by hand uses the plugin's own rule.
    """
    updates: dict[str, Any] = {}
    sources = dict(config.sources)
    contradictions = []
    for name in MODEL_SETTINGS:
        value = values.get(name)
        if value is None:
            continue
        source = config.source(name)
        origin = origins.get(name, "the model's metadata")
        if source.kind in ("default", "model"):
            updates[name], sources[name] = value, Source("model", origin)
        elif not _agree(name, getattr(config, name), value):
            mine = source.spell(name, unparse(name, getattr(config, name)))
            contradictions.append(
                f"{mine} overrides the model's {name}={unparse(name, value)} (from {origin}): the attack runs "
                "on inputs the model was not evaluated on unless you meant it"
            )
    completed = dataclasses.replace(config, **updates, sources=sources)
    own_input = completed.input_size == values.get("input_size") and completed.image_mode == values.get(
        "image_mode", completed.image_mode
    )
    completed = dataclasses.replace(completed, image_fit=image_fit if image_fit is not None and own_input else None)
    _check_combination(completed)
    return completed, contradictions
