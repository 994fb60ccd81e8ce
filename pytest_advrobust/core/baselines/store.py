"""Baseline files: one JSON file per test module under the baseline folder, meant to be committed.

Storage only (as pytest's ``Cache`` is apart from ``LFPlugin``): reading, merging updates image by image,
and finding entries whose test no longer exists. The rules live in :mod:`.rule`.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from ..errors import AdvRobustError
from ..jsonfile import locked, refuse_link, write_json
from .rule import BaselineEntry, BaselineStatus, image_of, settings_differences

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
    except (OSError, ValueError, RecursionError) as exc:  # ValueError: not UTF-8, not JSON, a 4300-digit number
        why = "its JSON is nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise AdvRobustError(
            f"baseline file {path} cannot be read ({why}); fix it, or delete it and re-record with "
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


class WithBaseline(Protocol):
    """A test's report as far as the store reads it (:class:`~pytest_advrobust.core.results.report.TestReport`)."""

    @property
    def baseline(self) -> BaselineStatus | None: ...


Test = TypeVar("Test", bound=WithBaseline)


def recorded_updates(tests: Iterable[Test]) -> tuple[list[Update], list[Test]]:
    """The updates ``--adv-baseline-update`` recorded, from one report per test (shards merged, faults
    judged: :meth:`ShardFaults.judged`), and the tests that recorded one but keep their stored entry
    as it was (``baseline.withheld``): some of their shards did not report once, and the others' rows would
    be mixed with old ones."""
    updates: list[Update] = []
    kept: list[Test] = []
    for test in tests:
        status = test.baseline
        if status is None or status.status != "recorded" or status.entry is None:
            continue
        if status.withheld:
            kept.append(test)
            continue
        updates.append(Update(status.module, status.test, status.entry, status.image_names))
    return updates, kept


def kept_text(test_id: str, test: WithBaseline) -> str:
    """``baseline of m.py::test_x left as it was: shard 2 of 2 did not report`` (``test_id``: as shown)."""
    assert test.baseline is not None
    return f"baseline of {test_id} left as it was: {test.baseline.withheld}"


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
    baseline_dir: Path,
    updates: Iterable[Update],
    unused: Mapping[str, Sequence[str]] | None = None,
    notes: list[str] | None = None,
    within: Path | None = None,
) -> list[Path]:
    """Merge updates into the baseline files (other tests' entries are kept) and drop ``unused``
    entries ({module: [test, ...]}, from a full run); a file left with no test is deleted.

    Each file is updated under its lock (:func:`~pytest_advrobust.core.jsonfile.locked`): it is re-read
    there, so runs updating the same file at once (other tests of the module, or the same test) all land.
    A file that cannot be read as a baseline (not JSON, wrong shape, other schema version) is replaced by
    this run's entries, with a one-line note: appended to ``notes`` when given, else a ``UserWarning``. A
    file that fails (a symbolic link, a folder that cannot be written) fails alone: the others are
    written, then one :class:`~pytest_advrobust.core.errors.AdvRobustError` names each failed file and why.
    ``within``: a folder each file must resolve into, links followed (the merge: the checkout it updates).
    """
    by_module: dict[str, list[Update]] = {}
    for update in updates:
        by_module.setdefault(update.module, []).append(update)
    written: list[Path] = []
    failed: list[str] = []
    for module in sorted(set(by_module) | set(unused or {})):
        path = baseline_file(baseline_dir, module)
        try:
            if within is not None:
                _refuse_outside(path, within)
            done, note = _update_file(path, module, by_module.get(module, []), (unused or {}).get(module, []))
        except AdvRobustError as exc:
            failed.append(str(exc))
            continue
        if done:
            written.append(path)
        if note is not None:
            _note(note, notes)
    if failed:
        others = f" ({len(written)} other(s) written)" if written else ""
        raise AdvRobustError(f"{len(failed)} baseline file(s) not written{others}: " + "; ".join(failed))
    return written


def _refuse_outside(path: Path, within: Path) -> None:
    """An :class:`AdvRobustError` when ``path``, its folders' links followed, is not inside ``within``."""
    real, inside = Path(os.path.realpath(path)), Path(os.path.realpath(within))
    if not real.is_relative_to(inside):
        fix = "delete the link" if path.is_symlink() else "replace the link by a folder"
        raise AdvRobustError(
            f"refusing to write {path}: a symbolic link on its way leads to {real}, outside {inside}; the merge "
            f"writes baselines only inside the checkout (or --baseline-dir): {fix}"
        )


def _update_file(path: Path, module: str, updates: Sequence[Update], gone: Sequence[str]) -> tuple[bool, str | None]:
    """Re-read, merge and write (or delete) one baseline file under its lock: (whether it was written or
    deleted, a note about a file that could not be read and was replaced)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AdvRobustError(f"cannot write {path}: cannot create its folder: {exc.strerror or exc}") from exc
    with locked(path):
        refuse_link(path)  # a committed link is neither read through, written through, nor replaced
        note = None
        try:
            tests = read_baselines(path)
        except AdvRobustError as exc:
            _refuse_unreadable_bytes(path)
            if not updates:
                return False, None  # nothing recorded: an unreadable file is left for its tests to report
            tests = {}
            note = _replaced_note(path, exc)
        for update in updates:
            tests[update.test] = merge_entry(tests.get(update.test), update)
        for test in gone:
            tests.pop(test, None)
        if tests:
            stored = {test: entry.to_json() for test, entry in tests.items()}
            write_json(path, {"schema_version": BASELINE_SCHEMA_VERSION, "module": module, "tests": stored})
        elif path.exists():
            try:
                path.unlink()
            except OSError as exc:
                raise AdvRobustError(f"cannot delete {path} (no test left in it): {exc.strerror or exc}") from exc
    return True, note


def _refuse_unreadable_bytes(path: Path) -> None:
    """A file the OS will not let us read (permissions) may be fine: it is not replaced."""
    try:
        with path.open("rb"):
            pass
    except FileNotFoundError:
        return
    except OSError as exc:
        raise AdvRobustError(
            f"cannot update {path}: it cannot be opened ({exc.strerror or exc}); it was left as it is"
        ) from exc


def _replaced_note(path: Path, exc: AdvRobustError) -> str:
    """``advrobust: baseline file X <why>: replaced by this run's entries``, the why without the read
    error's advice to re-record (that is what just happened)."""
    why = str(exc)
    prefix = f"baseline file {path} "
    if why.startswith(prefix):
        why = why[len(prefix) :]
        head, _, advice = why.rpartition("; ")
        if head and "--adv-baseline-update" in advice:
            why = head
    else:
        why = f"could not be read ({why})"
    return f"advrobust: baseline file {path} {why}: replaced by this run's entries"


def _note(note: str, notes: list[str] | None) -> None:
    if notes is not None:
        notes.append(note)
        return
    with warnings.catch_warnings():
        # a note, never an error (as with -W error): the file is already written
        warnings.filterwarnings("always", message=re.escape(note))
        warnings.warn(note, UserWarning, stacklevel=3)


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
