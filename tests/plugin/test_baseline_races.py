"""Baseline files under concurrent and hostile conditions: two runs updating one file at once, a file
the update cannot read, links committed into the baseline folder or named as the report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from helpers import color_net_conftest, color_project
from pytest_advrobust.core.baselines.rule import BaselineEntry
from pytest_advrobust.core.baselines.store import Update, write_baselines
from pytest_advrobust.core.errors import AdvRobustError

posix_only = pytest.mark.skipif(os.name == "nt", reason="symbolic links need privileges on Windows")

BARRIER_HOOKS = """
import os, time

def _wait(barrier, name, timeout):
    # arrive at a barrier (a file per run) and wait, at most timeout s, for the other run
    open(os.path.join(barrier, name), "w").close()
    kind = name.split("-")[0]
    deadline = time.monotonic() + timeout
    while sum(n.startswith(kind) for n in os.listdir(barrier)) < 2 and time.monotonic() < deadline:
        time.sleep(0.001)

@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session):
    barrier = os.environ.get("ADV_TEST_BARRIER")
    if not barrier:
        return
    who = os.environ["ADV_TEST_WHO"]
    _wait(barrier, "end-" + who, 120)  # both runs reach their session end, then the baseline writers start
    from pytest_advrobust.core.baselines import store as baseline_store

    read = baseline_store.read_baselines

    def read_then_wait(path):
        # the worst order: each run has read the file before either writes it (unless a lock keeps the
        # other from reading: then this gives up after a second)
        tests = read(path)
        _wait(barrier, "read-" + who, 1)
        return tests

    baseline_store.read_baselines = read_then_wait
"""
CONFTEST = color_net_conftest('{"a": (0.0, 0.0, 0.0)}', extra=BARRIER_HOOKS)

TESTS = """
from pytest_advrobust import adv_robust

@adv_robust
def test_one():
    pass

@adv_robust
def test_two():
    pass
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    return color_project(pytester, CONFTEST, TESTS, {"r.png": (130, 120, 110), "g.png": (60, 200, 60)})


def _baseline_path(project: pytest.Pytester) -> Path:
    return project.path / "advrobust-baselines" / "test_model.py.json"


def _outside(tmp_path_factory: pytest.TempPathFactory, text: str = "precious\n") -> Path:
    """A file outside the project that a link points to: it must never change."""
    outside = tmp_path_factory.mktemp("outside") / "precious.json"
    outside.write_text(text)
    return outside


def test_two_runs_updating_one_baseline_file_at_once_both_land(project: pytest.Pytester) -> None:
    path = _baseline_path(project)
    # a new file, then an existing one that both runs re-record with other settings
    for round_, epsilon in enumerate(("0.007", "0.01")):
        barrier = project.path / f"barrier{round_}"
        barrier.mkdir()
        command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly", "-q"]
        command += ["--adv-baseline-update", f"--adv-epsilon={epsilon}"]
        runs = [
            subprocess.Popen(
                [*command, "-k", test],
                cwd=project.path,
                env={**os.environ, "ADV_TEST_BARRIER": str(barrier), "ADV_TEST_WHO": test},
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for test in ("test_one", "test_two")
        ]
        outputs = [run.communicate(timeout=300)[0] for run in runs]
        assert [run.returncode for run in runs] == [0, 0], "\n".join(outputs)
        assert sorted(os.listdir(barrier)) == ["end-test_one", "end-test_two", "read-test_one", "read-test_two"]
        tests = json.loads(path.read_text())["tests"]
        assert sorted(tests) == ["test_one", "test_two"], f"round {round_}: an update was lost"
        assert {entry["settings"]["epsilon"] for entry in tests.values()} == {float(epsilon)}, f"round {round_}"
        left = sorted(name for name in os.listdir(path.parent) if name != path.name)
        assert not left, f"round {round_}: no lock or temp file left behind: {left}"


STORE_WRITER = """
import os, sys, time
from pathlib import Path
from pytest_advrobust.core.baselines.rule import BaselineEntry
from pytest_advrobust.core.baselines.store import Update, write_baselines

folder, barrier, who = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
row = {"clean_label": 0, "clean_label_name": "red", "misclassified": False, "flipped": False,
       "adv_label": 0, "adv_label_name": "red", "minimal_epsilon": 0.01}
entry = BaselineEntry.from_json({"settings": {"epsilon": 0.007}, "images": {"r.png": row}})
(barrier / who).touch()
while len(os.listdir(barrier)) < 2:
    time.sleep(0.0002)
for k in range(40):
    write_baselines(folder, [Update("test_model.py", f"test_{who}{k}", entry, ["r.png"])])
"""


def test_write_baselines_from_two_processes_at_once_loses_no_update(tmp_path: Path) -> None:
    folder, barrier = tmp_path / "advrobust-baselines", tmp_path / "barrier"
    barrier.mkdir()
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", STORE_WRITER, str(folder), str(barrier), who], stderr=subprocess.PIPE, text=True
        )
        for who in "ab"
    ]
    errors = [writer.communicate(timeout=120)[1] for writer in writers]
    assert [writer.returncode for writer in writers] == [0, 0], "\n".join(errors)
    stored = json.loads((folder / "test_model.py.json").read_text())["tests"]
    assert sorted(stored) == sorted(f"test_{who}{k}" for who in "ab" for k in range(40))
    assert os.listdir(folder) == ["test_model.py.json"], "no lock or temp file left behind"


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ("{not json", "cannot be read (Expecting property name*"),
        ('{"schema_version": 2, "tests": {}}', "has schema version 2; this pytest-advrobust reads schema version 1*"),
        ('{"schema_version": 1, "tests": []}', "is not a baseline file this pytest-advrobust wrote: tests must be*"),
    ],
    ids=["not-json", "other-schema", "wrong-shape"],
)
def test_an_update_replaces_a_baseline_file_it_cannot_read_and_says_so(
    project: pytest.Pytester, content: str, why: str
) -> None:
    path = _baseline_path(project)
    path.parent.mkdir()
    path.write_text(content)
    result = project.runpytest("--adv-baseline-update", "-p", "no:randomly")
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    result.assert_outcomes(passed=2, warnings=1)
    result.stdout.fnmatch_lines(
        [f"*advrobust: baseline file */test_model.py.json {why}: replaced by this run's entries"]
    )
    result.stdout.no_fnmatch_line("*Traceback*")
    assert sorted(json.loads(path.read_text())["tests"]) == ["test_one", "test_two"]
    project.runpytest().assert_outcomes(passed=2)  # and it compares now


def test_the_replacement_note_is_a_note_even_under_warnings_as_errors(project: pytest.Pytester) -> None:
    path = _baseline_path(project)
    path.parent.mkdir()
    path.write_text("{not json")
    result = project.runpytest("--adv-baseline-update", "-W", "error", "-p", "no:randomly")
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    result.stdout.fnmatch_lines(["*advrobust: baseline file */test_model.py.json cannot be read*: replaced by*"])
    assert sorted(json.loads(path.read_text())["tests"]) == ["test_one", "test_two"]


@posix_only
def test_a_baseline_file_that_is_a_link_is_refused_and_its_target_unchanged(
    project: pytest.Pytester, tmp_path_factory: pytest.TempPathFactory
) -> None:
    outside = _outside(tmp_path_factory, '{"schema_version": 1, "tests": {}}\n')
    path = _baseline_path(project)
    path.parent.mkdir()
    path.symlink_to(outside)
    result = project.runpytest("--adv-baseline-update")
    output = result.stdout.str() + result.stderr.str()
    assert result.ret != 0
    assert "1 baseline file(s) not written: refusing to write " in output
    assert f"{path}: it is a symbolic link (to {outside})" in output, output
    assert outside.read_text() == '{"schema_version": 1, "tests": {}}\n'
    assert path.is_symlink(), "not replaced silently either"


@posix_only
def test_a_committed_link_at_a_temp_name_is_never_followed(
    project: pytest.Pytester, tmp_path_factory: pytest.TempPathFactory
) -> None:
    outside = _outside(tmp_path_factory)
    path = _baseline_path(project)
    path.parent.mkdir()
    trap = path.with_name(path.name + ".tmp")  # the temp name earlier versions used
    trap.symlink_to(outside)
    project.runpytest("--adv-baseline-update").assert_outcomes(passed=2)
    assert outside.read_text() == "precious\n"
    assert trap.is_symlink() and not path.is_symlink()
    assert sorted(json.loads(path.read_text())["tests"]) == ["test_one", "test_two"]


@posix_only
def test_a_json_report_path_that_is_a_link_is_refused_and_its_target_unchanged(
    project: pytest.Pytester, tmp_path_factory: pytest.TempPathFactory
) -> None:
    outside = _outside(tmp_path_factory)
    link = project.path / "report.json"
    link.symlink_to(outside)
    result = project.runpytest("--adv-report=report.json")
    output = result.stdout.str() + result.stderr.str()
    assert result.ret != 0
    assert f"refusing to write {link}: it is a symbolic link (to {outside})" in output, output
    assert outside.read_text() == "precious\n"
    assert link.is_symlink()


def _entry() -> BaselineEntry:
    row = {"clean_label": 0, "clean_label_name": "red", "misclassified": False, "flipped": False}
    row |= {"adv_label": 0, "adv_label_name": "red", "minimal_epsilon": 0.01}
    return BaselineEntry.from_json({"settings": {"epsilon": 0.007}, "images": {"r.png": row}})


def test_the_replacement_note_goes_to_the_callers_notes_when_asked(tmp_path: Path) -> None:
    (tmp_path / "test_model.py.json").write_text("[]")
    notes: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning: the note is the caller's to show
        written = write_baselines(tmp_path, [Update("test_model.py", "test_one", _entry(), ["r.png"])], notes=notes)
    assert written == [tmp_path / "test_model.py.json"]
    assert notes == [
        f"advrobust: baseline file {tmp_path / 'test_model.py.json'} has no schema version; this pytest-advrobust reads schema version 1 (the number): replaced by this run's entries"
    ]


@posix_only
def test_a_baseline_file_that_cannot_be_written_fails_alone(tmp_path: Path) -> None:
    outside = tmp_path / "outside.json"
    outside.write_text("precious\n")
    folder = tmp_path / "advrobust-baselines"
    folder.mkdir()
    (folder / "test_a.py.json").symlink_to(outside)
    updates = [Update(module, "test_x", _entry(), ["r.png"]) for module in ("test_a.py", "test_b.py")]
    with pytest.raises(AdvRobustError) as failed:
        write_baselines(folder, updates)
    assert str(failed.value).startswith(
        f"1 baseline file(s) not written (1 other(s) written): refusing to write {folder / 'test_a.py.json'}: "
        "it is a symbolic link"
    )
    assert sorted(json.loads((folder / "test_b.py.json").read_text())["tests"]) == ["test_x"]
    assert outside.read_text() == "precious\n"
