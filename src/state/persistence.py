"""Snapshot persistence: published snapshots written to disk off the loop's thread.

Files: ``<data_dir>/snapshots/snapshot_{tick:06d}.json``, each the JSON of
`StateSnapshot.to_dict()` (`SelfState`'s persistence format, with
``schema_version``), one per saved tick.

**Writing** (`SnapshotPersistence`, one background thread per data folder):

- The runtime loop calls `submit(snapshot)` with a published, immutable
  `StateSnapshot`.  That stores one reference and, if the writer is idle,
  wakes it: O(1), no serialisation, no I/O on the loop's thread.
- The writer thread serialises the *latest* submitted snapshot and writes it.
  Snapshots submitted while it is busy replace each other (the latest wins;
  the replaced ones are counted in ``stats.superseded``), so a slow disk makes
  it skip snapshots; nothing queues up.
- It starts a write at most once every `min_interval` seconds (default
  0.05 s): serialising takes the GIL, and a fast loop with
  ``snapshot_period=1`` must not spend its time waiting for it.  `flush()` and
  `close()` skip the wait.
- Each write is atomic (`write_snapshot_file`): a temporary file
  ``snapshot_{tick:06d}.json.tmp-<pid>-<n>`` in the same folder, written and
  fsynced, renamed over the final name with ``os.replace``, then the folder is
  fsynced.  A crash at any moment leaves the old file or the new one; a
  leftover temporary file is never loaded (and is removed when the next
  writer starts).
- Retention: after each write, only the newest `keep` files (by tick number,
  default 20) are kept.
- An error while saving (disk full, folder removed, permissions) is logged
  with the file's name and counted in ``stats.failed``; the next submitted
  snapshot is tried as usual.  It never reaches the loop.

**Reading** (start-up): `load_latest(data_dir, **caps)` tries the files from
the newest tick down and returns the first that loads; a corrupt, truncated
or foreign file (bad JSON, another schema, a tick that does not match its
name) is skipped with a warning naming it.  With none valid it returns a
fresh `SelfState`.  Only names ``snapshot_<digits>.json`` are considered, so
temporary files are never loaded.

One process writes a data folder at a time.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import re
import threading
import time
from pathlib import Path
from typing import NamedTuple

from .self_state import FrozenState, SelfState
from .snapshot_manager import StateSnapshot

__all__ = ["SnapshotPersistence", "PersistenceStats", "load_latest", "load_snapshot",
           "read_snapshot_file", "write_snapshot_file", "encode_snapshot", "list_snapshots",
           "snapshot_dir", "snapshot_path", "prune_snapshots", "KEEP_DEFAULT",
           "MIN_INTERVAL_DEFAULT"]

logger = logging.getLogger(__name__)

KEEP_DEFAULT = 20
MIN_INTERVAL_DEFAULT = 0.05
SNAPSHOT_DIRNAME = "snapshots"
_NAME = re.compile(r"snapshot_(\d+)\.json")
_TEMP = re.compile(r"snapshot_\d+\.json\.tmp-.*")
_temp_numbers = itertools.count()
_temp_lock = threading.Lock()

PathLike = str | os.PathLike[str]


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


def encode_snapshot(snapshot: StateSnapshot | FrozenState) -> bytes:
    """The file's bytes: compact JSON of ``snapshot.to_dict()``."""
    return json.dumps(snapshot.to_dict(), separators=(",", ":"), allow_nan=False).encode()


def write_snapshot_file(folder: PathLike, tick: int, payload: bytes, *,
                        fsync: bool = True) -> Path:
    """Atomically make ``folder/snapshot_{tick:06d}.json`` hold `payload`; returns its path.

    Temporary file in `folder` -> write -> fsync -> ``os.replace`` -> fsync of
    `folder`.  On error the temporary file is removed and the error raised;
    the previous file of that name, if any, is untouched.  `folder` must exist.
    """
    folder = Path(folder)
    final = folder / f"snapshot_{tick:06d}.json"
    with _temp_lock:
        n = next(_temp_numbers)
    tmp = folder / f"{final.name}.tmp-{os.getpid()}-{n}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        try:
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view):]
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if fsync and hasattr(os, "O_DIRECTORY"):
        # The rename is durable only once the folder's entry is on disk.
        dfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    return final


def prune_snapshots(data_dir: PathLike, keep: int) -> list[Path]:
    """Delete all but the newest `keep` snapshot files (by tick); returns the deleted paths."""
    files = list_snapshots(data_dir)
    doomed = [path for _, path in files[:max(len(files) - keep, 0)]]
    removed = []
    for path in doomed:
        try:
            path.unlink()
            removed.append(path)
        except FileNotFoundError:
            pass
    return removed


def _remove_temp_files(folder: Path) -> int:
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


class PersistenceStats(NamedTuple):
    """Counters of a `SnapshotPersistence` (all since it was created)."""

    submitted: int       # submit() calls
    written: int         # files written
    superseded: int      # submitted snapshots replaced by a newer one before being written
    failed: int          # writes that raised (logged)
    last_tick: int | None  # tick of the last file written
    last_path: Path | None


class SnapshotPersistence:
    """The background writer of `StateSnapshot`s into ``<data_dir>/snapshots`` (module doc).

    ``start()`` starts the thread (a daemon named ``life-persistence``);
    ``submit(snapshot)`` hands over the latest snapshot in O(1); ``flush()``
    waits until everything submitted so far is handled; ``close()`` writes
    what is pending and stops the thread.  Usable as a context manager.

    `keep` (positive int, default 20): files kept.  `min_interval` (seconds >=
    0, default 0.05): least time between the starts of two writes.  `fsync`
    (default True): turn off only for tests on throwaway folders.
    """

    def __init__(self, data_dir: PathLike, *, keep: int = KEEP_DEFAULT,
                 min_interval: float = MIN_INTERVAL_DEFAULT, fsync: bool = True) -> None:
        if isinstance(keep, bool) or not isinstance(keep, int) or keep <= 0:
            raise ValueError(f"keep must be a positive int, got {keep!r}")
        if isinstance(min_interval, bool) or not isinstance(min_interval, (int, float)) \
                or not 0 <= min_interval < float("inf"):
            raise ValueError(f"min_interval must be a finite number >= 0, got {min_interval!r}")
        self._data_dir = Path(data_dir)
        self._folder = snapshot_dir(data_dir)
        self._keep = keep
        self._min_interval = float(min_interval)
        self._fsync = bool(fsync)
        self._cond = threading.Condition(threading.Lock())
        self._pending: StateSnapshot | FrozenState | None = None
        self._seq = 0           # submits so far
        self._done = 0          # every submit up to this one has been handled
        self._waiting = False   # the writer waits for work: submit must notify
        self._hurry = 0         # flush() callers waiting: skip the rate limit
        self._closing = False
        self._stopped = False   # the writer thread has ended
        self._thread: threading.Thread | None = None
        self._written = self._superseded = self._failed = 0
        self._last: tuple[int | None, Path | None] = (None, None)
        self._failing = False

    @property
    def data_dir(self) -> Path:
        return self._data_dir

    @property
    def folder(self) -> Path:
        """``<data_dir>/snapshots``."""
        return self._folder

    @property
    def thread(self) -> threading.Thread | None:
        """The writer thread (None before `start`)."""
        return self._thread

    @property
    def stats(self) -> PersistenceStats:
        with self._cond:
            return PersistenceStats(self._seq, self._written, self._superseded, self._failed,
                                    *self._last)

    def start(self) -> SnapshotPersistence:
        """Start the writer thread (no-op if it is running); returns self."""
        with self._cond:
            if self._closing:
                raise RuntimeError("this SnapshotPersistence is closed")
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="life-persistence",
                                                daemon=True)
                self._thread.start()
        return self

    def submit(self, snapshot: StateSnapshot | FrozenState) -> None:
        """Hand over `snapshot` to be written (the latest submitted wins).  O(1), no I/O."""
        if not isinstance(snapshot, (StateSnapshot, FrozenState)):
            raise TypeError(f"submit() takes a StateSnapshot, got {type(snapshot).__name__}")
        with self._cond:
            if self._closing:
                raise RuntimeError("this SnapshotPersistence is closed")
            if self._pending is not None:
                self._superseded += 1
            self._pending = snapshot
            self._seq += 1
            if self._waiting:
                self._cond.notify()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every snapshot submitted so far is written (or failed, or superseded).

        Skips the rate limit.  False on timeout, or if the thread is not running.
        """
        with self._cond:
            target = self._seq
            if self._done >= target:
                return True
            if self._thread is None or self._stopped:
                return False
            self._hurry += 1
            self._cond.notify_all()
            try:
                self._cond.wait_for(lambda: self._done >= target or self._stopped, timeout)
                return self._done >= target
            finally:
                self._hurry -= 1

    def close(self, timeout: float | None = None) -> bool:
        """Write the pending snapshot (no rate limit), stop the thread; True if it finished.

        After `timeout` seconds it gives up waiting (logged) and returns False;
        the daemon thread then finishes on its own or dies with the process
        (a write cut short leaves only a temporary file).
        """
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            thread = self._thread
            if thread is None and self._pending is not None:
                # Never started: start it just to write what was submitted.
                thread = self._thread = threading.Thread(
                    target=self._run, name="life-persistence", daemon=True)
                thread.start()
        if thread is None:
            return True
        thread.join(timeout)
        if thread.is_alive():
            logger.warning("snapshot persistence for %s still busy after %s s; not waiting "
                           "any longer", self._folder, timeout)
            return False
        return True

    def __enter__(self) -> SnapshotPersistence:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- the writer thread ----

    def _run(self) -> None:
        try:
            self._serve()
        finally:
            with self._cond:  # wake flush() callers, even if the thread died of an error
                self._stopped = True
                self._cond.notify_all()

    def _serve(self) -> None:
        try:
            self._folder.mkdir(parents=True, exist_ok=True)
            _remove_temp_files(self._folder)
        except OSError as exc:
            logger.error("snapshot folder %s: %s (will retry when saving)", self._folder, exc)
        cond = self._cond
        next_start = 0.0
        while True:
            with cond:
                # Rate limit: no write before next_start, unless flushing or closing.
                while not self._closing and not self._hurry:
                    remaining = next_start - time.monotonic()
                    if remaining <= 0:
                        break
                    cond.wait(remaining)
                while self._pending is None and not self._closing:
                    self._waiting = True
                    cond.wait()
                self._waiting = False
                snapshot, self._pending = self._pending, None
                taken = self._seq
                if snapshot is None:  # closing, nothing left to write
                    self._done = taken
                    cond.notify_all()
                    return
            next_start = time.monotonic() + self._min_interval
            self._save(snapshot)
            with cond:
                self._done = taken
                cond.notify_all()

    def _save(self, snapshot: StateSnapshot | FrozenState) -> None:
        tick = snapshot.tick
        try:
            payload = encode_snapshot(snapshot)
            self._folder.mkdir(parents=True, exist_ok=True)
            path = write_snapshot_file(self._folder, tick, payload, fsync=self._fsync)
        except Exception as exc:
            with self._cond:
                self._failed += 1
            logger.error("could not save snapshot_%06d.json in %s: %s (the next snapshot "
                         "will be tried)", tick, self._folder, exc,
                         exc_info=not isinstance(exc, OSError))
            self._failing = True
            return
        with self._cond:
            self._written += 1
            self._last = (tick, path)
        if self._failing:
            self._failing = False
            logger.info("snapshots are being saved again (%s)", path)
        try:
            prune_snapshots(self._data_dir, self._keep)
        except OSError as exc:
            logger.warning("could not remove old snapshots in %s: %s", self._folder, exc)

    def __repr__(self) -> str:
        s = self.stats
        return (f"<SnapshotPersistence {self._folder} written={s.written} "
                f"superseded={s.superseded} failed={s.failed}>")


# ---- reading -------------------------------------------------------------------


def read_snapshot_file(path: PathLike, *, memory_cap: int = 50, recent_events_cap: int = 1000,
                       history_cap: int = 1000, adaptation_history_cap: int = 50) -> SelfState:
    """The `SelfState` saved in `path`.

    Raises `OSError` if it cannot be read and `ValueError` if it is not a
    valid snapshot: not UTF-8 JSON, not `SelfState.from_dict` data, or (for a
    file named ``snapshot_<tick>.json``) holding another tick than its name.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_bytes())
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
                  adaptation_history_cap: int = 50) -> SelfState:
    """The state saved at `tick` (``FileNotFoundError`` if there is no such file)."""
    return read_snapshot_file(snapshot_path(data_dir, tick), memory_cap=memory_cap,
                              recent_events_cap=recent_events_cap, history_cap=history_cap,
                              adaptation_history_cap=adaptation_history_cap)


def load_latest(data_dir: PathLike, *, memory_cap: int = 50, recent_events_cap: int = 1000,
                history_cap: int = 1000,
                adaptation_history_cap: int = 50) -> tuple[SelfState, Path | None]:
    """``(state, path)`` from the newest valid snapshot, else ``(SelfState(**caps), None)``.

    Files are tried from the highest tick down; each one that cannot be read
    or is not a valid snapshot is skipped with a warning naming it.  The caps
    are `SelfState`'s log caps.
    """
    caps = {"memory_cap": memory_cap, "recent_events_cap": recent_events_cap,
            "history_cap": history_cap, "adaptation_history_cap": adaptation_history_cap}
    for _, path in reversed(list_snapshots(data_dir)):
        try:
            return read_snapshot_file(path, **caps), path
        except (OSError, ValueError) as exc:
            logger.warning("skipping snapshot %s: %s", path, exc)
    logger.info("no valid snapshot in %s: starting a fresh state", snapshot_dir(data_dir))
    return SelfState(memory_cap=memory_cap, recent_events_cap=recent_events_cap,
                     history_cap=history_cap, adaptation_history_cap=adaptation_history_cap), None
