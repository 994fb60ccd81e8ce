"""The one JSON writer: sorted keys, two-space indent, no NaN, written atomically, and the lock that
read-merge-write updates (the baseline files) hold.

What a write guarantees (docs/explanation/files.md):

- a reader sees the old file or the new one, never half of one: the text goes to a temp file created
  exclusively in the target's folder (``.<name>.advrobust-<random>.tmp``), is fsynced, then renamed over
  the target (and the folder fsynced, so the rename survives a power cut);
- nothing is written through a link: the temp file is created with ``O_CREAT|O_EXCL|O_NOFOLLOW`` (a link
  already there under that name is never followed; another name is drawn), and a target that is itself a
  symbolic link (or not a regular file) is refused, with an error naming it;
- a run killed between two writes leaves every target whole, and at most a stray temp file named after
  its target;
- :func:`locked` makes read-merge-write updates of one file by several processes land one after the
  other (``flock`` on POSIX, ``msvcrt.locking`` on Windows).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import AdvRobustError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]
    import msvcrt

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_BINARY = getattr(os, "O_BINARY", 0)
TEMP_SUFFIX = ".tmp"
"""Temp files are ``.<target name>.advrobust-<8 hex digits>.tmp`` beside their target."""
LOCK_TIMEOUT_S = 120.0
"""How long :func:`locked` waits for another process's update of the same file before giving up."""


def dumps(data: Any) -> str:
    """Diff-friendly JSON text (sorted keys, one value per line) ending in a newline."""
    return json.dumps(_finite(data), indent=2, sort_keys=True, allow_nan=False, default=_plain) + "\n"


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` to ``path`` so that a reader never sees half a file; creates the folder.

    Raises :class:`~.errors.AdvRobustError` naming ``path`` when it is a symbolic link or not a regular
    file, or when the folder cannot be written.
    """
    write_text(path, dumps(data))


def write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically: temp file created exclusively beside it, fsync,
    rename over it. Never follows or replaces a link; creates the folder."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        refuse_link(path)
        fd, tmp = _create_temp(path)
        try:
            with open(fd, "wb") as out:
                out.write(text.encode("utf-8"))
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as exc:
        raise AdvRobustError(f"cannot write {path}: {_why(exc)}") from exc
    _fsync_folder(path.parent)


def refuse_link(path: Path) -> None:
    """Raise :class:`~.errors.AdvRobustError` naming ``path`` if it exists and is a symbolic link or
    anything but a regular file (a folder, a FIFO): such a target is neither written through nor
    replaced."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISLNK(mode):
        try:
            where = f" (to {os.readlink(path)})"
        except OSError:
            where = ""
        raise AdvRobustError(
            f"refusing to write {path}: it is a symbolic link{where}; pytest-advrobust never writes through a "
            "link or replaces one: delete the link, or name the file it points to"
        )
    if not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "not a regular file"
        raise AdvRobustError(f"refusing to write {path}: it is {kind}")


@contextlib.contextmanager
def locked(path: Path, timeout: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold the exclusive lock of ``path`` (a file that is read, merged and written back): other
    processes and threads locking the same path wait, so each one's update lands.

    The lock is ``.<name>.lock`` beside ``path``, opened without following a link and removed on release
    (a run killed while holding it leaves it behind; it is harmless and reused). The folder must exist.
    Raises :class:`~.errors.AdvRobustError` naming the lock file when it cannot be created or another
    process holds it for more than ``timeout`` seconds.
    """
    lock = path.with_name(f".{path.name}.lock")
    deadline = time.monotonic() + timeout
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | _NOFOLLOW | _CLOEXEC | _BINARY, 0o666)
        except OSError as exc:
            raise AdvRobustError(f"cannot lock {path}: cannot open its lock file {lock}: {_why(exc)}") from exc
        try:
            _acquire(fd, lock, path, deadline, timeout)
            if _same_file(fd, lock):
                break
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # the holder before us removed the file we locked: lock the one there now
    try:
        yield
    finally:
        _release(fd, lock)


def _acquire(fd: int, lock: Path, path: Path, deadline: float, timeout: float) -> None:
    pause = 0.001
    while not _try_lock(fd, lock):
        if time.monotonic() > deadline:
            raise AdvRobustError(
                f"cannot lock {path}: another process has held its lock file {lock} for more than "
                f"{timeout:g} s (a hung pytest run updating the same file?)"
            )
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


def _try_lock(fd: int, lock: Path) -> bool:
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except (BlockingIOError, PermissionError):
        return False
    except OSError as exc:
        if fcntl is None:  # msvcrt says EACCES or EDEADLOCK while another handle holds the byte
            return False
        raise AdvRobustError(f"cannot lock {lock}: {_why(exc)}") from exc
    return True


def _same_file(fd: int, lock: Path) -> bool:
    """Whether the locked file is still the one at ``lock`` (a releasing holder removes it)."""
    try:
        there = os.stat(lock, follow_symlinks=False)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (mine.st_dev, mine.st_ino) == (there.st_dev, there.st_ino)


def _release(fd: int, lock: Path) -> None:
    if fcntl is not None:
        # removed while still held: a waiter that opened this file finds it gone and locks a new one
        with contextlib.suppress(OSError):
            os.unlink(lock)
        os.close(fd)  # releases the flock
        return
    with contextlib.suppress(OSError):
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
    os.close(fd)
    with contextlib.suppress(OSError):  # Windows cannot remove a file another process has open: it stays
        os.unlink(lock)


def _create_temp(path: Path) -> tuple[int, Path]:
    """A new, empty temp file beside ``path``, created exclusively (an entry of that name, a link
    included, is never opened: another name is drawn); its mode is the umask's, as a plain write's."""
    stem = path.name
    while len(os.fsencode(stem)) > 200:  # room for the rest within the 255 bytes of a file name
        stem = stem[:-1]
    for _ in range(100):
        tmp = path.with_name(f".{stem}.advrobust-{secrets.token_hex(4)}{TEMP_SUFFIX}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC | _BINARY, 0o666)
        except FileExistsError:
            continue
        return fd, tmp
    raise FileExistsError(f"no free temp file name beside {path} after 100 tries")


def _fsync_folder(folder: Path) -> None:
    """Make the rename durable (POSIX); a folder that cannot be opened or synced is left as it is."""
    if os.name == "nt":
        return
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _why(exc: OSError) -> str:
    """The reason alone (the caller names the path): "Permission denied", "Too many levels of symbolic links"."""
    return exc.strerror or str(exc)


def _finite(value: Any) -> Any:
    """NaN and ±Inf become null (JSON has no spelling for them)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
