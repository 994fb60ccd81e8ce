"""What a marked test's attack means for the test: absolute verdict, or relative to its baseline."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from ..core.baseline import Comparison, baseline_entry, baseline_file, compare, library_versions
from ..core.summary import unsharded
from .fixtures import ATTACKED_KEY, Plan
from .session import AdvSession

BASELINE_KEY = pytest.StashKey[dict[str, Any]]()


def module_key(item: pytest.Item) -> tuple[str, str]:
    """(module path relative to the rootdir, test name within it), the baseline's address of a test."""
    try:
        module = item.path.relative_to(item.config.rootpath).as_posix()
    except ValueError:
        module = item.path.name
    return module, unsharded("::".join(item.nodeid.split("::")[1:]))


def _progress_printer(item: pytest.Item) -> Any:
    """Whole progress lines per batch on the terminal (the xdist controller shows shards instead)."""
    reporter = item.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or item.config.get_verbosity() < 0:
        return None

    def show(done: int, total: int, failed: int) -> None:
        if done < total:  # the last batch shows as the test's own result
            reporter.ensure_newline()
            reporter.write_line(f"advrobust: {item.nodeid}: {done}/{total} images attacked, {failed} failed so far")

    return show


def _show(item: pytest.Item, session: AdvSession, wrapped: Any, outcome: Any, result: dict[str, Any]) -> None:
    """Artifacts on disk (paths into the JSON report and JUnit XML) and inline cards for the HTML report."""
    from ..core.artifacts import build_cards, safe_name, write_artifacts

    cards = build_cards(outcome, wrapped, amplify=session.base.amplify, all_images=session.base.artifacts_all)
    if session.base.artifacts is not None:
        folder = session.base.artifacts / safe_name(item.nodeid)
        write_artifacts(cards, folder)
        result["artifacts"] = str(folder)
        by_name = {card.record.name: card for card in cards}
        for image in result["images"]:
            card = by_name.get(image["name"])
            if card is not None:
                image["artifacts"] = dict(card.paths)
                image["saved_file_fools"] = card.saved_file_fools
                item.user_properties.append((f"adv_artifact {image['name']}", card.paths["adversarial"]))
    if session.base.html is not None:
        result["cards"] = [card.to_dict(inline=True) for card in cards]


def judge(item: pytest.Item, plan: Plan, session: AdvSession) -> str | None:
    """Run the marker's attack; return the failure message, or None if the test passes."""
    from ..core.api import run_attack

    module, test = module_key(item)
    update = session.base.baseline_update
    stored = None if update else session.stored_baseline(module, test)
    config = plan.config
    if config.minimal_epsilon is None:  # auto: search when a baseline is recorded or has minimal ε
        wanted = update or (stored is not None and stored["settings"].get("minimal_epsilon") is not None)
        config = dataclasses.replace(config, minimal_epsilon=wanted)
    from ..core.model import WrappedModel

    wrapped = WrappedModel(plan.model, mean=config.mean, std=config.std, input_size=config.input_size)
    outcome = run_attack(
        config,
        wrapped,
        plan.images,
        reproduce=session.reproduce_command(item.nodeid, config),
        progress=_progress_printer(item),
    )
    result = outcome.to_dict()
    if session.base.artifacts is not None or session.base.html is not None:
        _show(item, session, wrapped, outcome, result)
    item.stash.setdefault(ATTACKED_KEY, []).append(result)
    where = baseline_file(session.baseline_dir, module)
    accept = f"accept the current results as the baseline with: pytest '{item.nodeid}' --adv-baseline-update"
    entry = None
    if update or stored is not None:
        entry = baseline_entry(result, session.fingerprint(plan.model), library_versions())

    if update:
        item.stash[BASELINE_KEY] = {"status": "recorded", "module": module, "test": test, "entry": entry}
        return None
    if stored is None or entry is None:
        item.stash[BASELINE_KEY] = {"status": "missing", "file": str(where)}
        if session.base.baseline_strict:
            return f"no baseline for {test} in {where} (--adv-baseline-strict); {accept}"
        if outcome.failures:
            note = f"(no baseline stored for this test in {where}: the verdict is absolute)"
            return outcome.failure_message() + "\n" + note
        return None
    comparison: Comparison = compare(stored, entry, config.tolerance, partial=config.shards > 1)
    item.stash[BASELINE_KEY] = {"status": "compared", "file": str(where), **comparison.to_dict()}
    if comparison.failed:
        return "\n".join([f"robustness regressed against the baseline in {where}", *comparison.lines(), accept])
    return None
