"""The one precedence rule: *call > marker > CLI > -o > ini > profile > model > default*, each value
remembering its source (``-o adv_name=value`` is an ini value given on the command line; ``profile``: the
selected named set of settings, see :func:`register_profile`; ``model``: the model's own metadata, see
:func:`with_model_metadata`).

:func:`resolve` parses and validates every layer's raw values (the first bad one raises
:class:`~pytest_advrobust.core.errors.OptionError` naming where it came from, e.g. "epsilon=-1 in the
adv_robust marker on test_x: must be ≥ 0"); :func:`unparse` spells a parsed value back so that parsing it
gives the value again (for the reproduce command).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import OptionError
from .configs import AttackConfig, RunConfig
from .parsers import linf_bound
from .profiles import BUILT_IN, profile_settings, store_profile
from .table import OPTIONS_BY_NAME, PER_TEST, SESSION_WIDE, default
from .values import MODEL_PREFIXES, NORM_ATTACKS, ImageFit, Source


def unparse(name: str, value: Any, path_text: Callable[[Path], str] = str) -> str:
    """A parsed value spelled so that parsing it gives the value back (``parse(unparse(v)) == v``).

    ``path_text`` spells paths (e.g. relative to the folder a command will run in).
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        auto = {"batch_size": "all", "labels": "prediction", "steps": "auto", "step_size": "auto", "output": "auto",
                "workers": "auto", "epsilon_max": "auto", "epsilon_precision": "auto", "tolerance": "auto"}  # fmt: skip
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


SPELLED_ELSEWHERE = {"method": "attack", "eps": "epsilon", "iterations": "steps", "alpha": "step_size"}
"""Names other APIs use for a setting (``attack(method=...)``, torchattacks' ``eps``/``alpha``): a marker or
``adv_attack(...)`` that uses them is told the name there."""


def parse_one(name: str, raw: Any, source: Source) -> Any:
    """Parse one raw value, turning a parser's ValueError into an OptionError that names the source."""
    option = OPTIONS_BY_NAME.get(name)
    if option is None:
        close = SPELLED_ELSEWHERE.get(name) or _close_names(name)
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
    *,
    partial: bool = False,
) -> AttackConfig:
    """Resolve per-test settings from layers given lowest precedence first (e.g. ini, CLI, marker, call).

    ``None`` in a layer means "not given". Values are parsed and validated; the first bad one raises
    :class:`OptionError` naming where it came from. ``base`` is an already resolved config to start from.
    Session-wide settings in a layer are validated too, but belong to :func:`resolve_run`. ``partial``:
    the layers are not all there is (a marker checked where it is applied, before the CLI and ini are
    known), so a combination is only refused when every setting in it was given in the layers.
    """
    values, sources = _resolve_values(layers, PER_TEST)
    if base is not None:
        values = {**{name: getattr(base, name) for name in PER_TEST}, **values}
        sources = {**base.sources, **sources}
    values, sources = _with_profile(values, sources)
    config = _without_inapplicable_profile_values(AttackConfig(**values, sources=sources))
    _check_combination(config, partial=partial)
    return config


_PROFILE_VALUES_AN_ATTACK_IGNORES = {
    "fgsm": ("steps", "step_size"),
    "square": ("steps", "step_size"),
    "apgd": ("step_size",),
    "autoattack": ("step_size",),
}
"""A profile's values that do not apply to the attack a test pins by hand (thorough's ``steps=100`` for a
test with ``attack="fgsm"``): dropped, not refused, since nobody set them for that test."""


def _without_inapplicable_profile_values(config: AttackConfig) -> AttackConfig:
    drop = [
        name
        for name in _PROFILE_VALUES_AN_ATTACK_IGNORES.get(config.attack, ())
        if config.source(name).kind == "profile"
    ]
    if not drop:
        return config
    sources = {name: source for name, source in config.sources.items() if name not in drop}
    return dataclasses.replace(config, **{name: default(name) for name in drop}, sources=sources)


def _with_profile(values: dict[str, Any], sources: dict[str, Source]) -> tuple[dict[str, Any], dict[str, Source]]:
    """The selected profile's values where nothing but a default (or another profile) set one: *marker >
    CLI > ini > profile > default*. A marker that selects another profile than the command line replaces
    the command line's profile values, those it does not set going back to their defaults."""
    name = values.get("profile", default("profile"))
    values = {k: v for k, v in values.items() if sources.get(k, _DEFAULT).kind != "profile"}
    sources = {k: v for k, v in sources.items() if v.kind != "profile"}
    source = Source("profile", f"profile {name!r}")
    for key, raw in profile_settings(name).items():
        if sources.get(key, _DEFAULT).kind == "default":
            values[key], sources[key] = parse_one(key, raw, source), source
    return values, sources


_DEFAULT = Source("default")


PROFILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")
"""A profile's name: what a command line, an ini file and every report show it as, as is."""


def register_profile(name: str, **settings: Any) -> None:
    """Register a named set of settings for ``--adv-profile=NAME`` (or ``profile=NAME`` in the ini file or
    a marker), as Hypothesis' ``settings.register_profile`` does; call it in a ``conftest.py``.

    ``settings`` are per-test settings by their marker names (``attack="apgd", steps=50``); each is
    validated now, so a typo fails where it was made. The built-in profiles (quick, standard, thorough)
    cannot be replaced; registering a name again replaces that profile.
    """
    if not isinstance(name, str) or not PROFILE_NAME.fullmatch(name):
        raise OptionError(
            "register_profile: the name must be letters, digits, '_', '.' or '-' (at most 64, starting with a "
            f"letter or digit), as on a command line (got {str(name)[:80]!r})"
        )
    if name in BUILT_IN:
        raise OptionError(
            f"register_profile({name!r}, ...): {', '.join(BUILT_IN)} are built in; register yours under another name"
        )
    source = Source("profile", f"register_profile({name!r}, ...)")
    for key, raw in settings.items():
        option = OPTIONS_BY_NAME.get(key)
        if option is not None and not option.per_test:
            raise OptionError(
                f"register_profile({name!r}, ...): {key} is a session-wide setting ({option.cli}); a profile "
                "holds per-test settings only"
            )
        if key == "profile":
            raise OptionError(f"register_profile({name!r}, ...): a profile cannot select another profile")
        parse_one(key, raw, source)
    resolve([(settings, Source("call", source.label))])  # its own combination, e.g. attack="fgsm" with steps=5
    store_profile(name, settings)


def resolve_run(layers: Sequence[tuple[Mapping[str, Any], Source]]) -> RunConfig:
    """Resolve the session-wide settings (see :func:`resolve` for the layers)."""
    values, sources = _resolve_values(layers, SESSION_WIDE)
    return RunConfig(**values, sources=sources)


def _check_combination(config: AttackConfig, partial: bool = False) -> None:
    """Refuse settings that contradict each other (each message names both); ``partial``: only those all
    given in the layers (see :func:`resolve`)."""

    def given(*names: str) -> bool:
        return not partial or all(name in config.sources for name in names)

    _check_norm(config, given, partial)
    set_by_hand = {name for name, source in config.sources.items() if source.kind not in ("default", "profile")}
    # (attack() passes every keyword: its default budget is not a choice)
    if (
        "queries" in set_by_hand
        and config.queries != default("queries")
        and config.attack not in ("square", "autoattack")
        and given("queries", "attack")
    ):
        raise OptionError(
            f"{config.source('queries').spell('queries', config.queries)}: the query budget is the square attack's "
            f"(attack=square or autoattack); attack={config.attack} takes steps"
        )
    if "loss" in set_by_hand and config.attack == "square" and config.loss != "auto" and given("loss", "attack"):
        raise OptionError(
            f"{config.source('loss').spell('loss', config.loss)}: square lowers the logit margin, not a loss; "
            "leave loss at auto"
        )
    if config.attack == "fgsm" and config.step_size is not None and given("attack", "step_size"):
        src = config.source("step_size")
        raise OptionError(
            f"{src.spell('step_size', config.step_size)}: fgsm is exactly one step of size ε; leave step_size at "
            "auto, or use attack=bim for steps of another size"
        )
    name = "steps" if config.steps is not None else "step_size"
    if config.attack == "square" and getattr(config, name) is not None and given("attack", name):
        src = config.source(name)
        raise OptionError(
            f"{src.spell(name, getattr(config, name))}: square takes no gradient steps; its budget is the number "
            "of queries (--adv-queries, forward passes per image)"
        )
    if config.attack in ("apgd", "autoattack") and config.step_size is not None and given("attack", "step_size"):
        src = config.source("step_size")
        raise OptionError(
            f"{src.spell('step_size', config.step_size)}: apgd sets its own step size (2ε, halved when progress "
            "stalls); leave step_size at auto, or use attack=pgd for a fixed step size"
        )
    if config.attack == "fgsm" and config.steps not in (None, 1) and given("attack", "steps"):
        src = config.source("steps")
        raise OptionError(
            f"{src.spell('steps', config.steps)}: fgsm is exactly one step of size ε; use attack=bim for several steps"
        )
    if (config.mean is None) != (config.std is None) and not partial:  # the other may come from the CLI
        one = "mean" if config.mean is not None else "std"
        missing = "std" if one == "mean" else "mean"
        src = config.source(one)
        raise OptionError(
            f"{src.spell(one, getattr(config, one))}: {one} was given without {missing}; "
            f"set both (e.g. --adv-mean=imagenet --adv-std=imagenet)"
        )


BUDGETS = ("epsilon", "step_size", "epsilon_max", "epsilon_precision", "tolerance")
"""The settings in the norm's units: under linf none can exceed 1 (no pixel moves more)."""
LINF_SUBJECTS = {
    "step_size": "steps are",
    "epsilon_max": "the search's top is",
    "epsilon_precision": "the precision is",
}


NORM_EXAMPLES = {
    "l2": "0.5 (RobustBench's l2 budget for 32×32 images; 3 is usual for 224×224)",
    "l1": "12 (the l1 budget of Croce and Hein's L1-APGD for 32×32 images)",
}
"""What the refusal of a norm without its own ε suggests."""


def _check_norm(config: AttackConfig, given: Callable[..., bool], partial: bool) -> None:
    """Under linf every budget is ≤ 1; under l2 and l1 ε is set (linf's default is no budget there); under l1
    only the attacks with an L1 form run."""
    if config.norm == "linf":
        for name in BUDGETS:
            value = getattr(config, name)
            value = value[0] if name == "tolerance" and value is not None else value
            problem = None if value is None else linf_bound(value, LINF_SUBJECTS.get(name, "ε is"))
            if name == "tolerance" and problem is not None:
                problem = (
                    f"an absolute tolerance is in [0,1] pixel units, so must be ≤ 1 (did you mean {value / 255:.4g}, "
                    f"or {value:g}% as a relative one?)"
                )
            if problem is not None and given(name, "norm"):
                norm = "" if config.source("norm").kind == "default" else f" under {_spelled(config, 'norm')}"
                raise OptionError(f"{_spelled(config, name)}: {problem}{norm}; for an l2 or l1 budget set --adv-norm")
    elif config.source("epsilon").kind == "default" and not partial:
        raise OptionError(
            f"{_spelled(config, 'norm')} with epsilon left at its default, {config.epsilon:g}, a linf budget (one "
            f"8-bit level of one pixel): under {config.norm} ε is the perturbation's {config.norm} length in [0,1] "
            "pixel units and grows with the image's size; set it (--adv-epsilon, -o adv_epsilon, or epsilon= on "
            f"the marker), e.g. {NORM_EXAMPLES[config.norm]}"
        )
    attacks = NORM_ATTACKS[config.norm]
    if config.attack not in attacks and given("attack", "norm"):
        raise OptionError(
            f"{_spelled(config, 'attack')}: attack={config.attack} has no form under norm={config.norm} "
            f"({_spelled(config, 'norm')}); under {config.norm} use {', '.join(attacks)} (apgd and autoattack "
            "for the strongest; square, which needs no gradient, runs under linf and l2)"
        )


def _spelled(config: AttackConfig, name: str) -> str:
    """A resolved value as its source spells it (``--adv-epsilon=8``, ``epsilon=2 in ...``)."""
    value = getattr(config, name)
    if name == "tolerance":
        value = ",".join([f"{value[0]:g}", *([f"{value[1] * 100:g}%"] if value[1] else [])])
    elif isinstance(value, float) and value.is_integer():
        value = int(value)
    return config.source(name).spell(name, value)


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
    config: AttackConfig, values: Mapping[str, Any], origins: Mapping[str, str], image_fit: ImageFit | None = None
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
