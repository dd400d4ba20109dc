"""The data folder: checked once at start-up, and locked for the process's lifetime.

``open_data_dir(path)`` is what a command calls before it loads or writes
anything in ``path``:

- it makes sure ``path`` is a folder this process can read and write (creating
  it and its ``snapshots`` subfolder when missing), and raises `DataDirError`
  with one line naming the path and the problem otherwise - a regular file,
  ``/dev/null``, a folder it cannot read or write, a read-only file system;
- it takes an advisory lock, ``fcntl.flock(LOCK_EX | LOCK_NB)`` on
  ``<path>/life.lock``, held until `DataDir.close()` or the process ends (the
  kernel drops it when the process dies, even by SIGKILL, so a crash never
  leaves a stale lock).  A second process on the same folder gets
  `DataDirLocked` instead of silently overwriting the first one's snapshots
  under the same ``life_id``.  The lock file holds the owner's pid, for the
  message only: the lock itself is the flock, never the file's existence.

The lock is advisory: it keeps out other Life processes, not other programs.
On a platform without ``fcntl`` (Windows) the folder is checked but not locked.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path

from .snapshot_files import SNAPSHOT_DIRNAME

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX
    fcntl = None  # type: ignore[assignment]

__all__ = ["DataDir", "DataDirError", "DataDirLocked", "open_data_dir", "LOCK_NAME"]

LOCK_NAME = "life.lock"

PathLike = str | os.PathLike[str]


class DataDirError(Exception):
    """The data folder cannot be used; the message is one line naming the path and why."""

    def __init__(self, path: PathLike, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"data dir {str(path)!r}: {problem}")


class DataDirLocked(DataDirError):
    """Another process holds the data folder's lock."""


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISREG, "a regular file"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISLNK, "a symbolic link")):
        if test(mode):
            return name
    return "not a folder"


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


class DataDir:
    """A checked and locked data folder (from `open_data_dir`); ``close()`` releases the lock."""

    def __init__(self, path: Path, lock_fd: int | None) -> None:
        self._path = path
        self._lock_fd = lock_fd

    @property
    def path(self) -> Path:
        return self._path

    @property
    def snapshots(self) -> Path:
        """``<path>/snapshots``."""
        return self._path / SNAPSHOT_DIRNAME

    @property
    def lock_path(self) -> Path:
        return self._path / LOCK_NAME

    @property
    def locked(self) -> bool:
        return self._lock_fd is not None

    def close(self) -> None:
        """Release the lock (idempotent).  The lock file stays: removing it would race a new owner."""
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            os.close(fd)  # closing the only descriptor drops the flock

    def __enter__(self) -> DataDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __fspath__(self) -> str:
        return str(self._path)

    def __repr__(self) -> str:
        return f"<DataDir {str(self._path)!r}{' locked' if self.locked else ''}>"


def _check_folder(path: Path, what: str) -> None:
    """Raise DataDirError unless `path` is (or could be made) a usable folder."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DataDirError(path, f"cannot create the {what}: {_reason(exc)}") from None
        return
    except OSError as exc:  # ENOTDIR (a file on the way), EACCES, ELOOP...
        raise DataDirError(path, f"cannot use the {what}: {_reason(exc)}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise DataDirError(path, f"is {_kind(st.st_mode)}, not a folder")
    try:
        with os.scandir(path):
            pass
    except OSError as exc:
        raise DataDirError(path, f"cannot read it: {_reason(exc)}") from None


def open_data_dir(path: PathLike, *, lock: bool = True) -> DataDir:
    """Check `path` for use as the data folder and lock it; returns the `DataDir`.

    Creates ``path`` and ``path/snapshots`` when missing.  Raises `DataDirError`
    (one line: the path and the problem) when it is not a folder, cannot be
    created, read or written, and `DataDirLocked` when another process holds
    it.  Keep the returned object for as long as the process uses the folder.
    """
    path = Path(path)
    _check_folder(path, "data folder")
    snapshots = path / SNAPSHOT_DIRNAME
    _check_folder(snapshots, "snapshots folder")
    # Permission bits say little (root, ACLs, read-only mounts): try a write.
    probe = snapshots / f".write-probe-{os.getpid()}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0),
                     0o600)
        os.close(fd)
        os.unlink(probe)
    except FileExistsError:
        with contextlib.suppress(OSError):
            os.unlink(probe)  # a leftover of a dead process with our pid
    except OSError as exc:
        raise DataDirError(snapshots, f"cannot write in it: {_reason(exc)}") from None
    if not lock or fcntl is None:
        return DataDir(path, None)
    lock_path = path / LOCK_NAME
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
    except OSError as exc:
        raise DataDirError(lock_path, f"cannot open the lock file: {_reason(exc)}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        owner = ""
        with contextlib.suppress(OSError, ValueError):
            pid = int(os.pread(fd, 32, 0).decode().strip() or "x")
            owner = f" (pid {pid})"
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise DataDirLocked(path, f"in use by another Life process{owner}: two processes "
                                "must not write one data dir; stop it or pick another "
                                "--data-dir") from None
        raise DataDirError(lock_path, f"cannot lock it: {_reason(exc)}") from None
    with contextlib.suppress(OSError):  # informational only (the message above)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return DataDir(path, fd)
