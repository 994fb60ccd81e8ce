"""The JSON writer and the update lock: atomic (temp file + fsync + rename), never through a link, the
format every file of the plugin shares, and read-merge-write updates that all land."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pytest_advrobust.core import jsonfile
from pytest_advrobust.core.errors import AdvRobustError
from pytest_advrobust.core.jsonfile import locked, write_json

posix_only = pytest.mark.skipif(os.name == "nt", reason="symbolic links need privileges on Windows")
TEMP_NAME = re.compile(r"\.(?P<target>.+)\.advrobust-[0-9a-f]{8}\.tmp")


def _outside(tmp_path: Path) -> Path:
    """A file outside the written folder that a link points to: it must never change."""
    outside = tmp_path / "outside" / "precious.txt"
    outside.parent.mkdir()
    outside.write_text("precious\n")
    return outside


def test_write_json_is_sorted_indented_finite_and_creates_the_folder(tmp_path: Path) -> None:
    path = tmp_path / "new" / "folder" / "x.json"
    write_json(path, {"b": float("nan"), "a": [1.5, float("inf"), Path("p")], "c": {"z": 1, "y": {2, 1}}})
    text = path.read_text(encoding="utf-8")
    assert (
        text
        == json.dumps({"a": [1.5, None, "p"], "b": None, "c": {"y": [1, 2], "z": 1}}, indent=2, sort_keys=True) + "\n"
    )
    assert os.listdir(path.parent) == ["x.json"], "no temp file left behind"
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask, "the mode of a plain write, not a temp file's 0600"


def test_rewriting_replaces_the_file_whole(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    write_json(path, {"long": "x" * 1000})
    write_json(path, {"short": 1})
    assert json.loads(path.read_text()) == {"short": 1}


@posix_only
def test_a_link_at_the_old_fixed_temp_name_is_never_followed(tmp_path: Path) -> None:
    # earlier versions wrote <name>.tmp and renamed it: a committed link of that name was written through
    outside = _outside(tmp_path)
    folder = tmp_path / "baselines"
    folder.mkdir()
    (folder / "x.json.tmp").symlink_to(outside)
    write_json(folder / "x.json", {"a": 1})
    assert outside.read_text() == "precious\n"
    assert (folder / "x.json.tmp").is_symlink(), "the link is not ours: left as it is"
    assert not (folder / "x.json").is_symlink() and json.loads((folder / "x.json").read_text()) == {"a": 1}


@posix_only
def test_a_link_at_the_drawn_temp_name_is_never_opened(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    outside = _outside(tmp_path)
    drawn = iter(["aaaaaaaa", "bbbbbbbb"])
    monkeypatch.setattr(jsonfile.secrets, "token_hex", lambda n: next(drawn))
    (tmp_path / ".x.json.advrobust-aaaaaaaa.tmp").symlink_to(outside)
    write_json(tmp_path / "x.json", {"a": 1})
    assert outside.read_text() == "precious\n"
    assert (tmp_path / ".x.json.advrobust-aaaaaaaa.tmp").is_symlink()
    assert json.loads((tmp_path / "x.json").read_text()) == {"a": 1}
    assert not (tmp_path / ".x.json.advrobust-bbbbbbbb.tmp").exists(), "the temp file became x.json"


@posix_only
def test_a_target_that_is_a_link_is_refused_and_named(tmp_path: Path) -> None:
    outside = _outside(tmp_path)
    link = tmp_path / "report.json"
    link.symlink_to(outside)
    with pytest.raises(
        AdvRobustError, match=r"refusing to write .*report\.json: it is a symbolic link \(to .*precious"
    ):
        write_json(link, {"a": 1})
    assert outside.read_text() == "precious\n"
    assert link.is_symlink(), "not replaced silently either"
    assert sorted(os.listdir(tmp_path)) == ["outside", "report.json"]


def test_a_target_that_is_a_folder_is_refused_and_named(tmp_path: Path) -> None:
    (tmp_path / "x.json").mkdir()
    with pytest.raises(AdvRobustError, match=r"refusing to write .*x\.json: it is a folder"):
        write_json(tmp_path / "x.json", {"a": 1})


def test_a_failed_write_keeps_the_old_file_and_removes_its_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "x.json"
    write_json(path, {"old": 1})

    def full_disk(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(jsonfile.os, "fsync", full_disk)
    with pytest.raises(AdvRobustError, match=r"cannot write .*x\.json: No space left on device"):
        write_json(path, {"new": 1})
    monkeypatch.undo()
    assert json.loads(path.read_text()) == {"old": 1}
    assert os.listdir(tmp_path) == ["x.json"]


KILLED_WRITER = """
import sys
from pathlib import Path
from pytest_advrobust.core.jsonfile import write_json

path = Path(sys.argv[1])
big = {"rows": [{"value": k, "text": "x" * 200} for k in range(5000)]}  # about 1.3 MB: writes take a while
k = 0
while True:
    write_json(path, {"k": k % 2, **big})
    k += 1
"""


def test_a_writer_killed_between_writes_leaves_a_whole_file_and_only_named_temp_files(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(path)])
    try:
        deadline = time.monotonic() + 30
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)  # a few writes in: most likely in the middle of one
    finally:
        writer.send_signal(signal.SIGKILL if hasattr(signal, "SIGKILL") else signal.SIGTERM)
        writer.wait()
    assert json.loads(path.read_text())["k"] in (0, 1), "never half a file"
    strays = [name for name in os.listdir(tmp_path) if name != "big.json"]
    assert len(strays) <= 1 and all(
        (m := TEMP_NAME.fullmatch(name)) and m["target"] == "big.json" for name in strays
    ), f"a stray temp file says what it is: {strays}"


COUNTER = """
import json, os, sys, time
from pathlib import Path
from pytest_advrobust.core.jsonfile import locked, write_json

path, barrier, who = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
(barrier / who).touch()
while len(os.listdir(barrier)) < 2:
    time.sleep(0.0005)
for _ in range(150):
    with locked(path):
        count = json.loads(path.read_text())["count"] if path.exists() else 0
        write_json(path, {"count": count + 1})
"""


def test_read_modify_writes_under_the_lock_from_two_processes_all_land(tmp_path: Path) -> None:
    path, barrier = tmp_path / "counter.json", tmp_path / "barrier"
    barrier.mkdir()
    workers = [subprocess.Popen([sys.executable, "-c", COUNTER, str(path), str(barrier), who]) for who in "ab"]
    assert [worker.wait(timeout=120) for worker in workers] == [0, 0]
    assert json.loads(path.read_text()) == {"count": 300}
    assert sorted(os.listdir(tmp_path)) == ["barrier", "counter.json"], "no lock file or temp file left"


def test_the_lock_excludes_other_holders_and_names_its_file_when_it_times_out(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    with locked(path):
        assert (tmp_path / ".x.json.lock").exists()
        failures: list[BaseException] = []

        def other() -> None:  # another open file description: excluded even within this process
            try:
                with locked(path, timeout=0.2):
                    pass
            except AdvRobustError as exc:
                failures.append(exc)

        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
        assert len(failures) == 1
        assert re.search(
            r"cannot lock .*x\.json: another process has held its lock file .*\.x\.json\.lock", str(failures[0])
        )
    assert not (tmp_path / ".x.json.lock").exists(), "released and removed"
    with pytest.raises(RuntimeError), locked(path):
        raise RuntimeError("a failed update")
    with locked(path, timeout=0.2):  # released after an error too
        pass


@posix_only
def test_a_lock_file_that_is_a_link_is_refused(tmp_path: Path) -> None:
    outside = _outside(tmp_path)
    (tmp_path / ".x.json.lock").symlink_to(outside)
    refused = r"cannot lock .*x\.json: cannot open its lock file .*\.x\.json\.lock: Too many levels of symbolic links"
    with pytest.raises(AdvRobustError, match=refused), locked(tmp_path / "x.json"):
        pass
    assert outside.read_text() == "precious\n"


def test_a_long_name_gets_a_temp_name_within_the_file_name_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[str] = []
    create = jsonfile._create_temp

    def recorded(path: Path) -> tuple[int, Path]:
        fd, tmp = create(path)
        made.append(tmp.name)
        return fd, tmp

    monkeypatch.setattr(jsonfile, "_create_temp", recorded)
    path = tmp_path / ("é" * 120 + ".json")  # 245 bytes: the name itself fits, with a temp suffix it would not
    write_json(path, {"a": 1})
    assert json.loads(path.read_text()) == {"a": 1}
    assert len(made) == 1 and len(os.fsencode(made[0])) <= 255 and made[0].endswith(".tmp")
