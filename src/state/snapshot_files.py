"""Snapshot files: the name, the bytes and the reading and writing of one file.

One job: turn one `StateSnapshot` into one file on disk and one file back
into a `SelfState`, safely.  Kept apart from the writer thread
(`persistence.py`) and from retention (`retention.py`) because these are the
rules a crash or a hostile folder must not break, and they are easiest to
check on their own.

Files: ``<data_dir>/snapshots/snapshot_{tick:06d}.json``, each the JSON of
`StateSnapshot.to_dict()` (`SelfState`'s persistence format, with
``schema_version``), one per saved tick.

**Writing** (`write_snapshot_file`): a temporary file
``snapshot_{tick:06d}.json.tmp-<pid>-<n>`` in the same folder, written and
fsynced, renamed over the final name with ``os.replace``, then the folder is
fsynced.  A crash at any moment leaves the old file or the new one; a
leftover temporary file is never loaded (and is removed when the next writer
starts, `remove_temp_files`).  `fault` (tests): a callable ``fault(step,
path)`` called before each step of a write (``"open"``, ``"write"``,
``"fsync"``, ``"replace"``, ``"dirsync"``); whatever it raises is that
step's error.

**Reading** (start-up): `load_latest(data_dir, **caps)` tries the files from
the newest tick down and returns the first that loads; a corrupt, truncated
or foreign file (bad JSON, another schema, a tick that does not match its
name) is skipped with a warning naming it.  With none valid it returns a
fresh `SelfState`.  Only names ``snapshot_<digits>.json`` are considered, so
temporary files are never loaded.  Only regular files are read (never
through a symbolic link, never a FIFO or a device: no hang, no endless read),
and only up to `max_bytes` (default `MAX_SNAPSHOT_BYTES_DEFAULT`, 16 MiB; a
full default-capped state is about 64 KB); anything else is skipped with a
warning.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import re
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .self_state import FrozenState, SelfState
from .snapshot_manager import StateSnapshot
from .state_format import StateEncoder

__all__ = ["load_latest", "load_snapshot", "read_snapshot_file", "read_regular_file",
           "write_snapshot_file", "encode_snapshot", "list_snapshots", "snapshot_dir",
           "snapshot_path", "remove_temp_files", "file_signature", "check_max_bytes",
           "SNAPSHOT_DIRNAME", "MAX_SNAPSHOT_BYTES_DEFAULT", "PathLike", "Fault"]

# The name persistence has always logged under (operators' log configuration, tests).
logger = logging.getLogger("src.state.persistence")

SNAPSHOT_DIRNAME = "snapshots"
MAX_SNAPSHOT_BYTES_DEFAULT = 16 * 2**20  # about 250x a full default-capped state
_NAME = re.compile(r"snapshot_(\d+)\.json")
_TEMP = re.compile(r"snapshot_\d+\.json\.tmp-.*")
_temp_numbers = itertools.count()
_temp_lock = threading.Lock()

PathLike = str | os.PathLike[str]
Fault = Callable[[str, Path], Any]


# ---- file names ----------------------------------------------------------------


def snapshot_dir(data_dir: PathLike) -> Path:
    """``<data_dir>/snapshots``."""
    return Path(data_dir) / SNAPSHOT_DIRNAME


def snapshot_path(data_dir: PathLike, tick: int) -> Path:
    """``<data_dir>/snapshots/snapshot_{tick:06d}.json``."""
    return snapshot_dir(data_dir) / f"snapshot_{tick:06d}.json"


def list_snapshots(data_dir: PathLike) -> list[tuple[int, Path]]:
    """``(tick, path)`` of every snapshot file, oldest tick first (temporary files excluded).

    An absent folder gives ``[]``.
    """
    folder = snapshot_dir(data_dir)
    found = []
    try:
        with os.scandir(folder) as it:
            for entry in it:
                m = _NAME.fullmatch(entry.name)
                if m:
                    found.append((int(m.group(1)), folder / entry.name))
    except FileNotFoundError:
        return []
    found.sort()
    return found


# ---- writing -------------------------------------------------------------------


def encode_snapshot(snapshot: StateSnapshot | FrozenState,
                    encoder: StateEncoder | None = None) -> bytes:
    """The file's bytes: compact JSON of ``snapshot.to_dict()``.

    `encoder`: a writer's own `StateEncoder`, which gives the same bytes
    re-encoding only what changed since its last call (a writer that saves
    one state over and over: the persistence thread).
    """
    if encoder is not None:
        return encoder.encode(snapshot.state if isinstance(snapshot, StateSnapshot) else snapshot)
    return json.dumps(snapshot.to_dict(), separators=(",", ":"), allow_nan=False).encode()


def write_snapshot_file(folder: PathLike, tick: int, payload: bytes, *,
                        fsync: bool = True, fault: Fault | None = None) -> Path:
    """Atomically make ``folder/snapshot_{tick:06d}.json`` hold `payload`; returns its path.

    Temporary file in `folder` -> write -> fsync -> ``os.replace`` -> fsync of
    `folder`.  On error the temporary file is removed and the error raised;
    the previous file of that name, if any, is untouched.  `folder` must exist.
    `fault(step, path)`, if given, is called before each step (module doc).
    """
    folder = Path(folder)
    step = fault or _no_fault
    final = folder / f"snapshot_{tick:06d}.json"
    with _temp_lock:
        n = next(_temp_numbers)
    tmp = folder / f"{final.name}.tmp-{os.getpid()}-{n}"
    step("open", tmp)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        try:
            view = memoryview(payload)
            while view:
                step("write", tmp)
                view = view[os.write(fd, view):]
            if fsync:
                step("fsync", tmp)
                os.fsync(fd)
        finally:
            os.close(fd)
        step("replace", final)
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if fsync and hasattr(os, "O_DIRECTORY"):
        # The rename is durable only once the folder's entry is on disk.
        step("dirsync", folder)
        dfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    return final


def _no_fault(step: str, path: Path) -> None:
    return None


def remove_temp_files(folder: Path) -> int:
    """Remove temporary files left by a writer that died mid-write."""
    n = 0
    try:
        with os.scandir(folder) as it:
            names = [e.name for e in it if _TEMP.fullmatch(e.name)]
    except FileNotFoundError:
        return 0
    for name in names:
        with contextlib.suppress(FileNotFoundError):
            (folder / name).unlink()
            n += 1
    if n:
        logger.info("removed %d temporary snapshot file(s) left in %s", n, folder)
    return n


# ---- reading -------------------------------------------------------------------


def file_signature(st: os.stat_result) -> tuple[int, int, int, int]:
    """What identifies one version of a file (a replaced or rewritten file is read again)."""
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_mode)


def check_max_bytes(max_bytes: object) -> None:
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes <= 0:
        raise ValueError(f"max_bytes must be a positive int, got {max_bytes!r}")


def _file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISLNK, "a symbolic link")):
        if test(mode):
            return name
    return "not a regular file"


def read_regular_file(path: PathLike, max_bytes: int = MAX_SNAPSHOT_BYTES_DEFAULT) -> bytes:
    """The bytes of `path`, which must be a regular file of at most `max_bytes` bytes.

    A symbolic link (even to a regular file), a FIFO, a device or a folder is
    a `ValueError` naming what it is, as is a file over the cap (checked
    before reading, and again while reading, in case it grows).  Opening
    never blocks (``O_NONBLOCK``: a FIFO without a writer would hang) and
    never follows a link (``O_NOFOLLOW``), so a file swapped after the
    check cannot slip through.
    """
    check_max_bytes(max_bytes)
    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"is {_file_kind(st.st_mode)}; only regular files are loaded")
    if st.st_size > max_bytes:
        raise ValueError(f"is {st.st_size} bytes, over the {max_bytes}-byte cap "
                         "(max_snapshot_bytes)")
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) \
        | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError("was replaced by something other than a regular file")
        chunks, total = [], 0
        while True:
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > max_bytes:
                raise ValueError(f"grew over the {max_bytes}-byte cap (max_snapshot_bytes) "
                                 "while being read")
    finally:
        os.close(fd)
    return b"".join(chunks)


def read_snapshot_file(path: PathLike, *, memory_cap: int = 50, recent_events_cap: int = 1000,
                       history_cap: int = 1000, adaptation_history_cap: int = 50,
                       max_bytes: int = MAX_SNAPSHOT_BYTES_DEFAULT) -> SelfState:
    """The `SelfState` saved in `path`.

    Raises `OSError` if it cannot be read and `ValueError` if it is not a
    valid snapshot: not a regular file of at most `max_bytes` bytes
    (`read_regular_file`), not UTF-8 JSON, not `SelfState.from_dict` data, or
    (for a file named ``snapshot_<tick>.json``) holding another tick than its
    name.
    """
    path = Path(path)
    raw = read_regular_file(path, max_bytes)
    try:
        data = json.loads(raw)
    except RecursionError:
        raise ValueError("nested too deeply to be a snapshot") from None
    state = SelfState.from_dict(data, memory_cap=memory_cap, recent_events_cap=recent_events_cap,
                                history_cap=history_cap,
                                adaptation_history_cap=adaptation_history_cap)
    m = _NAME.fullmatch(path.name)
    if m and int(m.group(1)) != state.ticks:
        raise ValueError(f"holds tick {state.ticks}, but its name says {int(m.group(1))}")
    return state


def load_snapshot(data_dir: PathLike, tick: int, *, memory_cap: int = 50,
                  recent_events_cap: int = 1000, history_cap: int = 1000,
                  adaptation_history_cap: int = 50,
                  max_bytes: int = MAX_SNAPSHOT_BYTES_DEFAULT) -> SelfState:
    """The state saved at `tick` (``FileNotFoundError`` if there is no such file)."""
    return read_snapshot_file(snapshot_path(data_dir, tick), memory_cap=memory_cap,
                              recent_events_cap=recent_events_cap, history_cap=history_cap,
                              adaptation_history_cap=adaptation_history_cap,
                              max_bytes=max_bytes)


def load_latest(data_dir: PathLike, *, memory_cap: int = 50, recent_events_cap: int = 1000,
                history_cap: int = 1000, adaptation_history_cap: int = 50,
                max_bytes: int = MAX_SNAPSHOT_BYTES_DEFAULT) -> tuple[SelfState, Path | None]:
    """``(state, path)`` from the newest valid snapshot, else ``(SelfState(**caps), None)``.

    Files are tried from the highest tick down; each one that cannot be read
    or is not a valid snapshot is skipped with a warning naming it: that
    includes anything but a regular file, and a file over `max_bytes`
    (default 16 MiB).  The caps are `SelfState`'s log caps.
    """
    check_max_bytes(max_bytes)
    caps = {"memory_cap": memory_cap, "recent_events_cap": recent_events_cap,
            "history_cap": history_cap, "adaptation_history_cap": adaptation_history_cap}
    for _, path in reversed(list_snapshots(data_dir)):
        try:
            return read_snapshot_file(path, max_bytes=max_bytes, **caps), path
        except (OSError, ValueError) as exc:
            logger.warning("skipping snapshot %s: %s", path, exc)
    logger.info("no valid snapshot in %s: starting a fresh state", snapshot_dir(data_dir))
    return SelfState(memory_cap=memory_cap, recent_events_cap=recent_events_cap,
                     history_cap=history_cap, adaptation_history_cap=adaptation_history_cap), None
