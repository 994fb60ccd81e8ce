"""Command lines printed for a red build: ``reproduce with:`` and the baseline's ``accept ... with:``.

Each is meant to be pasted verbatim in the folder pytest was started in: the test id is spelled as pytest
takes it there, every robustness setting that differs from its default and would not be found again is
spelled out (either CLI form, ``-o``), an ini file given with ``-c`` is given again, paths are relative to
that folder, and the whole line is shell-quoted. The ini file pytest finds by itself is found again by
the same command in the same folder, and settings from a marker or an ``adv_attack(...)`` call are in
the test's code, so neither is repeated.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import pytest

from ..core.results.shards import Shard, without_shard
from ..core.settings import OPTIONS_BY_NAME, PER_TEST, AttackConfig, RunConfig, unparse
from .options import Settings
from .sharding import item_shard

VERDICT_SESSION_SETTINGS = ("baseline_dir", "baseline_strict")

# Options of pytest and common plugins that select, parallelize or present a run: a command for one test
# leaves them out (with their value when they take one). Every other option of the original run, such as
# a conftest's own --model=retrained, is passed on: it may choose what is tested.
_DROPPED_WITH_VALUE = {
    "-k", "-m", "-n", "--numprocesses", "--maxprocesses", "--dist", "--tx", "--maxfail", "--tb", "-r", "-p",
    "--deselect", "--ignore", "--ignore-glob", "-o", "--override-ini", "-c", "--config-file", "--html",
    "--junitxml", "--junit-xml", "--durations", "--durations-min", "--basetemp", "--color", "--capture",
    "--rootdir", "--confcutdir", "--log-level", "--log-file", "--report-log", "--cov", "--cov-report",
}  # fmt: skip
_DROPPED_FLAGS = {
    "-x", "--exitfirst", "--lf", "--last-failed", "--ff", "--failed-first", "--nf", "--new-first", "--sw",
    "--stepwise", "-q", "--quiet", "-v", "--verbose", "-s", "-l", "--showlocals", "--co", "--collect-only",
    "--pdb", "--setup-show", "--self-contained-html", "--cache-clear",
}  # fmt: skip


def _is_ours(name: str) -> tuple[bool, bool]:
    """(whether ``name`` is one of our options, whether it takes a value)."""
    for option in OPTIONS_BY_NAME.values():
        if name in (option.cli, option.negative_cli):
            return True, not option.is_flag
    return False, False


def passed_on_args(config: pytest.Config) -> list[str]:
    """The original run's options that may choose what is tested (see ``_DROPPED_*``), in order."""
    tokens = [str(arg) for arg in config.invocation_params.args]
    positional = {str(arg) for arg in config.args}
    kept: list[str] = []
    skip_next = False
    for k, token in enumerate(tokens):
        if skip_next:
            skip_next = False
            continue
        if not token.startswith("-") or token == "-":
            continue  # a test path: replaced by the test's own id
        name, has_value = token.partition("=")[0], "=" in token
        ours, ours_takes_value = _is_ours(name)
        short_attached = len(name) > 2 and not name.startswith("--") and name[:2] in _DROPPED_WITH_VALUE
        if ours or name in _DROPPED_WITH_VALUE or short_attached or name in _DROPPED_FLAGS:
            skip_next = not has_value and (ours_takes_value or name in _DROPPED_WITH_VALUE)
            continue
        if all(c in "qvxsl" for c in name[1:]) and not name.startswith("--"):
            continue  # combined short flags such as -qx, -vv
        kept.append(token)
        following = tokens[k + 1] if k + 1 < len(tokens) else None
        if not has_value and following is not None and not following.startswith("-") and following not in positional:
            kept.append(following)  # the option's own value (``--model retrained``)
            skip_next = True
    return kept


"""Session-wide settings that change a verdict (the others only choose where reports go)."""


def node_arg(item: pytest.Item, invocation_dir: Path) -> str:
    """The test id as pytest takes it in ``invocation_dir`` (pytest's own ids are rootdir-relative)."""
    file = os.path.relpath(item.path, invocation_dir)
    _, sep, rest = item.nodeid.partition("::")
    return file + sep + rest


def _setting_args(name: str, value: object, invocation_dir: Path) -> list[str]:
    option = OPTIONS_BY_NAME[name]
    if isinstance(value, bool):
        return [option.cli if value else option.negative_cli]
    text = unparse(name, value, lambda path: os.path.relpath(path, invocation_dir))
    return [f"{option.cli}={text}"]


def settings_args(config: AttackConfig, run: RunConfig, invocation_dir: Path) -> list[str]:
    """``--adv-*`` arguments for every setting given on the command line (``--adv-*`` or ``-o``): one equal
    to the default still overrides the ini file, so it is passed on too. What the ini and the code set, the
    command finds there itself."""
    args: list[str] = []
    for holder, names in ((config, PER_TEST), (run, VERDICT_SESSION_SETTINGS)):
        for name in names:
            value = getattr(holder, name)
            if name in holder.sources and holder.sources[name].kind in ("cli", "override"):
                args += _setting_args(name, value, invocation_dir)
    if not any(arg.startswith("--adv-seed=") for arg in args):
        args.append(f"--adv-seed={config.seed}")
    return args


def _command(item: pytest.Item, config: AttackConfig, settings: Settings, extra: list[str]) -> str:
    where = item.config.invocation_params.dir
    ini = ["-c", os.path.relpath(settings.ini_file, where)] if settings.ini_file is not None else []
    args = [arg for arg in settings_args(config, settings.run, where) if arg not in extra]
    node = node_arg(item, where)
    shard = settings.run.shard
    own = item_shard(item)
    if shard is not None and "--adv-baseline-update" in extra and own is not None:
        node = without_shard(node, own.id) or node  # a matrix's job records no baseline itself: the whole test
    elif shard is not None:
        args.append(f"--adv-shard={shard}")  # the shard's test id exists in job K of N only
    return shlex.join(["pytest", node, *ini, *passed_on_args(item.config), *args, *extra])


def reproduce_command(item: pytest.Item, config: AttackConfig, settings: Settings) -> str:
    """A command that reruns one test with the same verdict."""
    return _command(item, config, settings, [])


def accept_command(item: pytest.Item, config: AttackConfig, settings: Settings) -> str:
    """A command that records this test's current results as its baseline (only its images)."""
    return _command(item, config, settings, ["--adv-baseline-update"])


def whole_command(command: str, shard: Shard) -> str:
    """A shard's reproduce command for its whole test: the shard's test id replaced by the test's, which
    runs every shard (``pytest m.py::test_x[shard3of3] ...`` → ``pytest m.py::test_x ...``)."""
    if not command:
        return ""
    tail = shard.nodeid.partition("::")[2]
    whole = shard.test.partition("::")[2]
    tokens = [token[: -len(tail)] + whole if token.endswith("::" + tail) else token for token in shlex.split(command)]
    return shlex.join(tokens)
