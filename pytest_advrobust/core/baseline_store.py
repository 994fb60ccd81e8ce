"""Baseline files: one JSON file per test module under the baseline folder, meant to be committed.

Storage only (as pytest's ``Cache`` is apart from ``LFPlugin``): reading, merging updates image by image,
and finding entries whose test no longer exists. The rules live in :mod:`.baseline`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .baseline import BaselineEntry, image_of, settings_differences
from .errors import AdvRobustError
from .jsonfile import write_json

BASELINE_SCHEMA_VERSION = 1


def baseline_file(baseline_dir: Path, module: str) -> Path:
    """``<dir>/<module path relative to the rootdir>.json``."""
    return baseline_dir / f"{module}.json"


def read_baselines(path: Path) -> dict[str, BaselineEntry]:
    """The tests stored in one baseline file ({} if there is none)."""
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AdvRobustError(
            f"baseline file {path} cannot be read ({exc}); fix it, or delete it and re-record with "
            "--adv-baseline-update"
        ) from None
    version = data.get("schema_version") if isinstance(data, dict) else None
    if not isinstance(data, dict) or isinstance(version, bool) or version != BASELINE_SCHEMA_VERSION:
        shown = "no schema version" if version is None else f"schema version {version!r}"
        raise AdvRobustError(
            f"baseline file {path} has {shown}; this pytest-advrobust reads schema version "
            f"{BASELINE_SCHEMA_VERSION} (the number); re-record with --adv-baseline-update"
        )
    try:
        tests = data.get("tests", {})
        if not isinstance(tests, dict):
            raise ValueError(
                f"tests must be an object of test name → entry, not {type(tests).__name__} {tests!r}"[:120]
            )
        return {test: BaselineEntry.from_json(entry, f"tests[{test!r}]") for test, entry in tests.items()}
    except ValueError as exc:
        raise AdvRobustError(
            f"baseline file {path} is not a baseline file this pytest-advrobust wrote: {exc}; fix it, or delete "
            "it and re-record with --adv-baseline-update"
        ) from None


@dataclass(frozen=True)
class Update:
    """A recorded entry for one test: ``entry.images`` holds the images that ran; ``image_names``
    every image the test has now (all shards)."""

    module: str
    test: str
    entry: BaselineEntry
    image_names: Sequence[str]


def merge_entry(stored: BaselineEntry | None, update: Update) -> BaselineEntry:
    """Image by image: the images that ran replace their stored rows (all targets of an image); other
    stored images are kept while the test still has them. Different settings replace the whole entry."""
    if stored is None or settings_differences(stored.settings, update.entry.settings):
        return update.entry
    ran = {image_of(name) for name in update.entry.images}
    still = set(update.image_names) | ran
    kept = {name: row for name, row in stored.images.items() if image_of(name) in still - ran}
    return update.entry.with_images({**kept, **update.entry.images})


def write_baselines(
    baseline_dir: Path, updates: Iterable[Update], unused: Mapping[str, Sequence[str]] | None = None
) -> list[Path]:
    """Merge updates into the baseline files (other tests' entries are kept) and drop ``unused``
    entries ({module: [test, ...]}, from a full run); a file left with no test is deleted."""
    by_module: dict[str, list[Update]] = {}
    for update in updates:
        by_module.setdefault(update.module, []).append(update)
    written = []
    for module in sorted(set(by_module) | set(unused or {})):
        path = baseline_file(baseline_dir, module)
        tests = read_baselines(path)
        for update in by_module.get(module, []):
            tests[update.test] = merge_entry(tests.get(update.test), update)
        for test in (unused or {}).get(module, []):
            tests.pop(test, None)
        if tests:
            stored = {test: entry.to_json() for test, entry in tests.items()}
            write_json(path, {"schema_version": BASELINE_SCHEMA_VERSION, "module": module, "tests": stored})
        elif path.exists():
            path.unlink()
        written.append(path)
    return written


def find_unused(baseline_dir: Path, rootdir: Path, collected: Mapping[str, set[str]]) -> dict[str, list[str]]:
    """Stored entries whose test no longer exists: {module: [test, ...]}.

    ``collected`` maps each module collected in a full run to its test names (shards removed). A stored
    module that was collected loses the tests it no longer has; one whose file is gone loses them all.
    Modules that exist but were not collected are left alone (the run did not look at them).
    """
    unused: dict[str, list[str]] = {}
    if not baseline_dir.is_dir():
        return unused
    for path in sorted(baseline_dir.rglob("*.json")):
        module = path.relative_to(baseline_dir).as_posix().removesuffix(".json")
        if module not in collected and (rootdir / module).exists():
            continue
        try:
            stored = set(read_baselines(path))
        except AdvRobustError:
            continue  # an unreadable file is reported, with its fix, by the tests that read it
        gone = sorted(stored - collected.get(module, set()))
        if gone:
            unused[module] = gone
    return unused
