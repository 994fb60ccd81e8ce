"""What a marked test's attack means for the test: an absolute verdict, or one relative to its baseline."""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ..core.baselines.identity import library_versions
from ..core.baselines.rule import BaselineEntry, BaselineStatus, Comparison, baseline_entry, compare
from ..core.baselines.statistical import LARGE_SET, images_rule_hint
from ..core.baselines.store import baseline_file
from ..core.results.gates import gate_failures
from ..core.results.report import RunReport, TestReport
from ..core.settings import AttackConfig
from ..core.settings.baselines import auto_minimal_epsilon
from .cache import CACHE_KEY, Cache
from .commands import accept_command, reproduce_command
from .fixtures import RUNS_KEY, Plan
from .html_extras import CARDS_KEY, HTML_EXTRAS_NAME, SHOWN_IMAGES
from .options import SETTINGS_KEY, Settings
from .sharding import item_shard


@dataclass
class Verdict:
    """The marker's verdict on a test: the failure message (None: it passes) and its baseline status."""

    message: str | None
    baseline: BaselineStatus | None


VERDICT_KEY: pytest.StashKey[Verdict] = pytest.StashKey()
"""item.stash: what the marker's attack means for the test."""
ARTIFACT_FOLDERS_KEY: pytest.StashKey[dict[str, str]] = pytest.StashKey()
"""config.stash: each collected test's folder name under --adv-artifacts (unique, within the name limit)."""


def _artifact_folder(item: pytest.Item, artifacts: Path) -> Path:
    """The test's folder under ``artifacts``: its node id made file-safe, with a short hash where two
    tests' ids would give one folder (``test_x[a b]``, ``test_x[a_b]``) or the id is too long. Every
    process collects the same tests (xdist workers too), so every process names a test's folder alike."""
    from ..core.results.artifacts import MAX_FILE_NAME_BYTES, unique_stems

    folders = item.config.stash.get(ARTIFACT_FOLDERS_KEY, None)
    if folders is None or item.nodeid not in folders:
        nodeids = [collected.nodeid for collected in item.session.items] + [item.nodeid]
        folders = item.config.stash[ARTIFACT_FOLDERS_KEY] = unique_stems(nodeids, MAX_FILE_NAME_BYTES)
    return artifacts / folders[item.nodeid]


def module_key(item: pytest.Item) -> tuple[str, str]:
    """(module path relative to the rootdir, test name within it), the baseline's address of a test."""
    try:
        module = item.path.relative_to(item.config.rootpath).as_posix()
    except ValueError:
        module = item.path.name
    shard = item_shard(item)
    return module, "::".join((shard.test if shard is not None else item.nodeid).split("::")[1:])


def _progress_printer(item: pytest.Item) -> Any:
    """Whole progress lines per batch on the terminal, live (the xdist controller shows shards instead)."""
    reporter = item.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or item.config.get_verbosity() < 0:
        return None

    capture = item.config.pluginmanager.get_plugin("capturemanager")

    def show(done: int, total: int | None, failed: int) -> None:
        if total is None or done < total:  # the last batch shows as the test's own result
            of = "" if total is None else f"/{total}"
            line = f"advrobust: {item.nodeid}: {done}{of} images attacked, {failed} failed so far"
            # live, as pytest's own progress: the test's output is being captured, the terminal's is not
            with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
                reporter.ensure_newline()
                reporter.write_line(line)

    return show


@dataclass
class _Cards:
    """Cards of one test's failures (or all images), built batch by batch, at most ``limit``: the only
    images a test keeps while it runs."""

    wrapped: Any
    amplify: float
    all_images: bool
    limit: int
    curves: bool
    cards: list[Any] = dataclasses.field(default_factory=list)
    left_out: int = 0

    def add(self, part: Any) -> None:
        from ..core.results.artifacts import build_cards

        wanted = [r for r in part.records if self.all_images or r.failed]
        room = max(self.limit - len(self.cards), 0)
        self.left_out += max(len(wanted) - room, 0)
        if room:
            self.cards += build_cards(part.records, part.clean, part.rounded, self.wrapped, amplify=self.amplify,
                                      all_images=self.all_images, limit=room, curves=self.curves)  # fmt: skip


def _cards_for(settings: Settings, wrapped: Any, extras: bool) -> _Cards | None:
    """What a test shows of its images: artifacts and HTML cards (up to --adv-artifacts-max), or only
    pytest-html's first few failures; None when nothing is shown."""
    options = settings.run
    files = options.artifacts is not None or options.html is not None
    if not (files or extras):
        return None
    limit = options.artifacts_max if files else SHOWN_IMAGES  # only pytest-html's extras: no more than they show
    return _Cards(wrapped, options.amplify, files and options.artifacts_all, limit, curves=files)


def _show(item: pytest.Item, settings: Settings, shown: _Cards, run: RunReport, extras: bool) -> None:
    """Artifacts on disk (paths into the JSON report and JUnit XML), inline cards for the HTML report, and
    the first failed images' cards for pytest-html's extras (``extras``)."""
    from ..core.results.artifacts import write_artifacts

    options = settings.run
    cards = shown.cards
    if shown.left_out and (options.artifacts is not None or options.html is not None):
        run.settings.notes.append(
            f"artifacts and HTML cards for the first {len(cards)} image(s) only; {shown.left_out} more not shown "
            f"(--adv-artifacts-max={options.artifacts_max})"
        )
    by_name = {card.record.name: card for card in cards}
    if options.artifacts is not None:
        folder = _artifact_folder(item, options.artifacts)
        write_artifacts(cards, folder, [image.name for image in run.images])
        run.artifacts = settings.shown(folder)
        for image in run.images:
            card = by_name.get(image.name)
            if card is not None:
                image.artifacts = {kind: settings.shown(path) for kind, path in card.paths.items()}
                image.saved_file_fools = card.saved_file_fools
                item.user_properties.append((f"adv_artifact {image.name}", image.artifacts["adversarial"]))
    if options.html is not None:
        run.cards = [card.to_html() for card in cards]
    if extras:
        extra_cards = item.stash.setdefault(CARDS_KEY, [])
        extra_cards += [card.to_html() for card in cards if card.record.failed][: SHOWN_IMAGES - len(extra_cards)]


def _with_auto_minimal(config: AttackConfig, update: bool, stored: BaselineEntry | None) -> AttackConfig:
    """The config with minimal_epsilon=auto decided (:func:`auto_minimal_epsilon`)."""
    if config.minimal_epsilon is not None:
        return config
    wanted = auto_minimal_epsilon(update, stored is not None and stored.searched_minimal_epsilon)
    return dataclasses.replace(config, minimal_epsilon=wanted)


def judge(item: pytest.Item, plan: Plan) -> Verdict:
    """Run the marker's attack and decide the test's outcome."""
    from ..core.api import run_attack
    from ..core.models.model import WrappedModel

    settings: Settings = item.config.stash[SETTINGS_KEY]
    cache: Cache = item.config.stash[CACHE_KEY]
    module, test = module_key(item)
    update = settings.run.baseline_update
    stored = None if update else cache.stored_baseline(module, test)
    config = _with_auto_minimal(plan.config, update, stored)
    wrapped = WrappedModel(
        plan.model, mean=config.mean, std=config.std, input_size=config.input_size, output=config.output
    )
    extras = item.config.pluginmanager.has_plugin(HTML_EXTRAS_NAME)
    shown = _cards_for(settings, wrapped, extras)
    outcome = run_attack(
        config,
        wrapped,
        plan.images,
        reproduce=reproduce_command(item, plan.config, settings),
        progress=_progress_printer(item),
        keep_images=False,  # records only: memory does not grow with the number of images
        on_batch=None if shown is None else shown.add,
    )
    run = outcome.report()
    run.marker = True
    if shown is not None:
        _show(item, settings, shown, run, extras)
    if settings.run.shard is not None:  # the merge checks that every job attacked the same weights
        run.model_fingerprint = cache.fingerprint(plan.model)
    item.stash.setdefault(RUNS_KEY, []).append(run)
    stored_file = baseline_file(settings.baseline_dir, module)
    where = settings.shown(stored_file)
    names = plan.image_names if plan.image_names is not None else [image.name for image in run.images]
    if update:
        entry = baseline_entry(run, cache.fingerprint(plan.model), library_versions())
        return Verdict(None, BaselineStatus("recorded", where, module, test, entry=entry, image_names=names))
    # a test split into shards is judged on its images together where its shards meet (collector, merge)
    whole = plan.config.shards <= 1
    if stored is None and not settings.baselines_in_use(stored_file):  # baselines not in use
        report = TestReport(item.nodeid, [run])
        gates = gate_failures(report) if whole else []
        fails = gates or (outcome.failures and config.min_robust_accuracy is None)
        return Verdict("\n".join([*gates, outcome.failure_message()]) if fails else None, None)
    if stored is None:
        status = BaselineStatus("missing", where, module, test)
    else:
        entry = baseline_entry(run, cache.fingerprint(plan.model), library_versions())
        comparison = compare(stored, entry, config.resolved_tolerance, image_names=names)
        status = BaselineStatus("compared", where, module, test, comparison)
    report = TestReport(item.nodeid, [run], baseline=status)
    command = accept_command(item, plan.config, settings)
    return Verdict(_message(outcome, report, settings.run.baseline_strict, command, whole), status)


def _message(outcome: Any, report: TestReport, strict: bool, command: str, whole: bool) -> str | None:
    """The failure message, or None: relative to a comparable baseline (by the image rule or the statistical
    one), else absolute; with the gates on the test's images together when this item has all of them
    (``whole``). ``command`` records the current results as the test's baseline."""
    status = report.baseline
    assert status is not None
    comparison: Comparison | None = status.comparison
    settings = report.gate_settings
    assert settings is not None
    gates = gate_failures(report) if whole else []
    gated = settings.min_robust_accuracy is not None  # flips alone no longer fail the test
    accept = "accept the current results as the baseline with: " + command
    if comparison is not None and comparison.incomparable is None:
        if settings.baseline_rule == "statistical":
            unmatched = strict and bool(comparison.changed or comparison.missing or comparison.unchecked)
            if not (gates or unmatched):
                return None
            heading = (
                []
                if gates
                else [f"the results do not match the baseline in {status.file} exactly (--adv-baseline-strict)"]
            )
            return "\n".join([*gates, *heading, *comparison.lines(), accept])
        if not (comparison.failed(strict) or gates):
            return None
        shown = comparison.regressions[:3]
        heading = (
            [
                f"robustness regressed against the baseline in {status.file}: {'; '.join(shown)}"
                + (" …" if len(comparison.regressions) > len(shown) else "")
            ]
            if comparison.regressions
            else [f"the results do not match the baseline in {status.file} exactly (--adv-baseline-strict)"]
            if comparison.failed(strict)
            else []
        )
        large = comparison.regressions and len(comparison.paired()) >= LARGE_SET
        hint = [images_rule_hint(comparison, settings.confidence)] if large else []
        return "\n".join([*gates, *heading, *hint, *comparison.lines(), accept])
    failures = bool(outcome.failures) and not gated
    if comparison is not None:  # settings differ: judged as if there were no baseline
        if not (failures or gates or strict):
            return None
        absolute = [*gates, outcome.failure_message()] if failures or gates else []
        strictness = ["(--adv-baseline-strict: a baseline that cannot be compared fails)"] if strict else []
        # the command would overwrite a baseline recorded under other settings (a quick profile's run
        # replacing the nightly's): say so, and how to keep both
        replace = (
            f"to replace the baseline in {status.file} (recorded with other settings) with these results: "
            f"{command}; to keep both, give these settings their own folder: add --adv-baseline-dir=DIR to "
            "this run's commands"
        )
        return "\n".join([str(comparison.incomparable), *absolute, *strictness, replace])
    if strict:  # the flips first: accepting them as a baseline should be a decision, not a reflex
        absolute = [*gates, outcome.failure_message()] if failures or gates else []
        return "\n".join(
            [*absolute, f"no baseline for {status.test} in {status.file} (--adv-baseline-strict); {accept}"]
        )
    if failures or gates:
        note = f"(no baseline stored for this test in {status.file}: the verdict is absolute; {accept})"
        return "\n".join([*gates, str(outcome.failure_message()), note])
    return None
