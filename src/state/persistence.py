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
- Retention: after each write, the file just written and the newest
  ``keep - 1`` other *valid* files (by tick number, `keep` default 20) are
  kept.  A file that does not load (corrupt, truncated, another
  ``schema_version``, not a regular file, over the size cap) never counts:
  the writer moves it aside to ``snapshots/rejected/`` with a warning naming
  it and why (or, if it cannot be moved, leaves it out of retention).  Each
  file is read once to check it; files this writer wrote are known valid.
- Disk full (``ENOSPC``/``EDQUOT``): the writer removes every older valid
  snapshot except the newest one and retries once.
- An error while saving (disk full, folder removed, permissions) is counted
  in ``stats.failed`` and logged rate-limited: one ERROR line when saves start
  failing, then one summary with a count every `error_log_interval` seconds
  (default 10) while they go on, and an INFO line when they succeed again.
  The next submitted snapshot is tried as usual; nothing reaches the loop.
  `health()` reports it (a plain dict for ``/health``), and `finish()` (close
  + check) raises `FinalSaveError` when the last snapshot did not reach disk.
- `fault` (tests): a callable ``fault(step, path)`` called before each step
  of a write (``"open"``, ``"write"``, ``"fsync"``, ``"replace"``,
  ``"dirsync"``); whatever it raises is that step's error.

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

One process writes a data folder at a time: `src.state.data_dir.open_data_dir`
checks the folder and locks it.
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
import errno
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from .self_state import FrozenState, SelfState
from .snapshot_manager import StateSnapshot

__all__ = ["SnapshotPersistence", "PersistenceStats", "load_latest", "load_snapshot",
           "read_snapshot_file", "read_regular_file", "write_snapshot_file", "encode_snapshot",
           "list_snapshots",
           "snapshot_dir", "snapshot_path", "prune_snapshots", "KEEP_DEFAULT",
           "MIN_INTERVAL_DEFAULT", "MAX_SNAPSHOT_BYTES_DEFAULT", "ERROR_LOG_INTERVAL_DEFAULT",
           "REJECTED_DIRNAME", "PersistenceError", "FinalSaveError"]

logger = logging.getLogger(__name__)

KEEP_DEFAULT = 20
MIN_INTERVAL_DEFAULT = 0.05
SNAPSHOT_DIRNAME = "snapshots"
REJECTED_DIRNAME = "rejected"   # <data_dir>/snapshots/rejected: files that do not load
MAX_SNAPSHOT_BYTES_DEFAULT = 16 * 2**20  # about 250x a full default-capped state
ERROR_LOG_INTERVAL_DEFAULT = 10.0        # seconds between summaries of repeated save errors
_NO_SPACE = frozenset(e for e in (errno.ENOSPC, getattr(errno, "EDQUOT", None)) if e)
_NAME = re.compile(r"snapshot_(\d+)\.json")
_TEMP = re.compile(r"snapshot_\d+\.json\.tmp-.*")
_temp_numbers = itertools.count()
_temp_lock = threading.Lock()

PathLike = str | os.PathLike[str]
Fault = Callable[[str, Path], Any]


class PersistenceError(Exception):
    """Snapshot persistence failed in a way the caller must know about."""


class FinalSaveError(PersistenceError):
    """The last snapshot submitted is not on disk (`SnapshotPersistence.finish`)."""


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


def prune_snapshots(data_dir: PathLike, keep: int) -> list[Path]:
    """Delete all but the newest `keep` snapshot files (by tick); returns the deleted paths.

    It does not look inside the files: the writer's own retention
    (`SnapshotPersistence`) counts only valid ones.
    """
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
    last_error: str | None = None  # the last save error (None once a save succeeds again)


class SnapshotPersistence:
    """The background writer of `StateSnapshot`s into ``<data_dir>/snapshots`` (module doc).

    ``start()`` starts the thread (a daemon named ``life-persistence``);
    ``submit(snapshot)`` hands over the latest snapshot in O(1); ``flush()``
    waits until everything submitted so far is handled; ``close()`` writes
    what is pending and stops the thread.  Usable as a context manager.

    `keep` (positive int, default 20): valid files kept.  `min_interval`
    (seconds >= 0, default 0.05): least time between the starts of two
    writes.  `fsync` (default True): turn off only for tests on throwaway
    folders.  `max_bytes`: the size cap used when checking existing files
    (as `load_latest`).  `error_log_interval` (seconds > 0, default 10):
    least time between two summaries of repeated save errors.  `fault`: the
    test hook of `write_snapshot_file`.  `clock`: monotonic seconds (ages in
    `health()`, the error-log interval).
    """

    def __init__(self, data_dir: PathLike, *, keep: int = KEEP_DEFAULT,
                 min_interval: float = MIN_INTERVAL_DEFAULT, fsync: bool = True,
                 max_bytes: int = MAX_SNAPSHOT_BYTES_DEFAULT,
                 error_log_interval: float = ERROR_LOG_INTERVAL_DEFAULT,
                 fault: Fault | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if isinstance(keep, bool) or not isinstance(keep, int) or keep <= 0:
            raise ValueError(f"keep must be a positive int, got {keep!r}")
        if isinstance(min_interval, bool) or not isinstance(min_interval, (int, float)) \
                or not 0 <= min_interval < float("inf"):
            raise ValueError(f"min_interval must be a finite number >= 0, got {min_interval!r}")
        _check_max_bytes(max_bytes)
        if isinstance(error_log_interval, bool) \
                or not isinstance(error_log_interval, (int, float)) \
                or not 0 < error_log_interval < float("inf"):
            raise ValueError("error_log_interval must be a finite number > 0, got "
                             f"{error_log_interval!r}")
        if fault is not None and not callable(fault):
            raise TypeError(f"fault must be callable or None, got {fault!r}")
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
        self._max_bytes = max_bytes
        self._error_log_interval = float(error_log_interval)
        self._fault = fault
        self._clock = clock
        # Health, under _cond: when the last save succeeded, the last error.
        self._last_ok_at: float | None = None
        self._last_error: tuple[str, float] | None = None
        self._consecutive_failures = 0
        # Error log (writer thread only): when the next summary is due, failures not logged.
        self._next_error_report = 0.0
        self._unreported = 0
        # Retention (writer thread only): name -> lstat signature of files known to load,
        # and names of files that do not load but could not be moved aside (warned once).
        self._valid: dict[str, tuple[int, int, int, int]] = {}
        self._unmovable: set[str] = set()

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
                                    *self._last,
                                    None if self._last_error is None else self._last_error[0])

    def health(self) -> dict[str, Any]:
        """Persistence health as a plain JSON-ready dict (for ``/health``); no I/O.

        ``status``: ``"ok"`` (the last save succeeded, or none was tried yet),
        ``"failing"`` (the last save failed; ``consecutive_failures`` says how
        many in a row), or ``"stopped"`` (the writer thread is not running
        while it should).  ``last_save_tick`` / ``last_save_age_s`` /
        ``last_save_file``: the last file written (None before the first);
        ``last_error`` / ``last_error_age_s``: the last save error, cleared by
        the next success.
        """
        now = self._clock()
        with self._cond:
            tick, path = self._last
            failing = self._consecutive_failures
            thread_down = (self._thread is not None and self._stopped and not self._closing)
            err = self._last_error
            body: dict[str, Any] = {
                "status": "stopped" if thread_down else "failing" if failing else "ok",
                "last_save_tick": tick,
                "last_save_age_s": (None if self._last_ok_at is None
                                    else round(max(0.0, now - self._last_ok_at), 3)),
                "last_save_file": None if path is None else str(path),
                "last_error": None if err is None else err[0],
                "last_error_age_s": None if err is None else round(max(0.0, now - err[1]), 3),
                "consecutive_failures": failing,
                "saved": self._written,
                "failed": self._failed,
                "superseded": self._superseded,
            }
        return body

    def finish(self, timeout: float | None = None) -> Path | None:
        """`close(timeout)`, then check that the last snapshot submitted is on disk.

        Returns the file holding it (None if nothing was ever submitted).
        Raises `FinalSaveError` (one line: which tick, where, and the error)
        if its save failed, or did not finish within `timeout` seconds - for
        the command to turn into a non-zero exit status.
        """
        finished = self.close(timeout)
        with self._cond:
            if not finished:
                raise FinalSaveError(f"the final snapshot was not saved in {self._folder}: "
                                     f"still writing after {timeout} s")
            if self._seq == 0:
                return None
            if self._consecutive_failures or self._done < self._seq:
                why = "the writer stopped" if self._last_error is None else self._last_error[0]
                raise FinalSaveError(f"the final snapshot was not saved in {self._folder}: "
                                     f"{why}")
            return self._last[1]

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
        name = f"snapshot_{tick:06d}.json"
        try:
            payload = encode_snapshot(snapshot)
            self._folder.mkdir(parents=True, exist_ok=True)
            try:
                path = self._write(tick, payload)
            except OSError as exc:
                if exc.errno not in _NO_SPACE:
                    raise
                # Retention itself may have filled the disk (keep x size > free):
                # without room made here every later save would fail too.
                kept, removed = self._make_room()
                logger.warning("no space left to save %s in %s: removed %d older snapshot(s), "
                               "kept %s; retrying once", name, self._folder, len(removed),
                               kept.name if kept else "none")
                path = self._write(tick, payload)
        except Exception as exc:
            self._saving_failed(name, exc)
            return
        now = self._clock()
        with self._cond:
            self._written += 1
            self._last = (tick, path)
            self._last_ok_at = now
            failures, self._consecutive_failures = self._consecutive_failures, 0
            self._last_error = None
        if failures:
            self._unreported = 0
            self._next_error_report = 0.0
            logger.info("snapshots are being saved again (%s) after %d failed attempt(s)",
                        path, failures)
        with contextlib.suppress(OSError):
            self._valid[path.name] = _signature(os.lstat(path))  # ours: known to load
        try:
            self._retain(path)
        except OSError as exc:
            logger.warning("could not remove old snapshots in %s: %s", self._folder, exc)

    def _write(self, tick: int, payload: bytes) -> Path:
        if self._fault is None:  # keeps write_snapshot_file's signature for replacements
            return write_snapshot_file(self._folder, tick, payload, fsync=self._fsync)
        return write_snapshot_file(self._folder, tick, payload, fsync=self._fsync,
                                   fault=self._fault)

    def _saving_failed(self, name: str, exc: Exception) -> None:
        """Count a failed save; log the first of a run, then a summary per interval."""
        now = self._clock()
        text = f"{name}: {exc}"
        with self._cond:
            self._failed += 1
            self._consecutive_failures += 1
            first = self._consecutive_failures == 1
            self._last_error = (text, now)
        if first:
            logger.error("could not save %s in %s: %s (the next snapshot will be tried; "
                         "repeated failures are summarised every %g s)", name, self._folder,
                         exc, self._error_log_interval, exc_info=not isinstance(exc, OSError))
            self._next_error_report = now + self._error_log_interval
            self._unreported = 0
        elif now >= self._next_error_report:
            logger.error("snapshots in %s are still not being saved: %d more failure(s) since "
                         "the last report; the last: %s", self._folder, self._unreported + 1,
                         text)
            self._next_error_report = now + self._error_log_interval
            self._unreported = 0
        else:
            self._unreported += 1

    def _valid_files(self) -> list[tuple[int, Path]]:
        """``(tick, path)`` of the snapshot files that load, oldest first.

        A file not known yet is read once (`read_snapshot_file`, this writer's
        size cap); one that does not load is moved aside (`_reject`).
        """
        valid: list[tuple[int, Path]] = []
        known: dict[str, tuple[int, int, int, int]] = {}
        for tick, path in list_snapshots(self._data_dir):
            try:
                sig = _signature(os.lstat(path))
            except FileNotFoundError:
                continue
            if self._valid.get(path.name) != sig:
                if path.name in self._unmovable:
                    continue
                try:
                    read_snapshot_file(path, max_bytes=self._max_bytes)
                except (OSError, ValueError) as exc:
                    self._reject(path, exc)
                    continue
            known[path.name] = sig
            valid.append((tick, path))
        self._valid = known
        return valid

    def _reject(self, path: Path, why: Exception) -> None:
        """Move a file that does not load to ``snapshots/rejected/`` (kept for the operator)."""
        aside = self._folder / REJECTED_DIRNAME
        try:
            aside.mkdir(exist_ok=True)
            dest = aside / path.name
            n = 1
            while os.path.lexists(dest):
                dest = aside / f"{path.name}.{n}"
                n += 1
            os.rename(path, dest)  # moves a symlink itself, never its target
        except OSError as exc:
            self._unmovable.add(path.name)
            logger.warning("snapshot %s does not load (%s) and could not be moved aside (%s): "
                           "it is left out of retention", path, why, exc)
            return
        logger.warning("moved snapshot %s aside to %s: it does not load (%s)", path, dest, why)

    def _retain(self, just_written: Path) -> None:
        """Keep the file just written and the newest ``keep - 1`` other valid files."""
        others = [p for _, p in self._valid_files() if p != just_written]
        for path in others[:max(len(others) - (self._keep - 1), 0)]:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            self._valid.pop(path.name, None)

    def _make_room(self) -> tuple[Path | None, list[Path]]:
        """Disk full: remove every valid snapshot but the newest; returns (kept, removed)."""
        _remove_temp_files(self._folder)
        valid = self._valid_files()
        removed = []
        for _, path in valid[:-1]:
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                logger.warning("could not remove %s to make room: %s", path, exc)
                continue
            self._valid.pop(path.name, None)
            removed.append(path)
        return (valid[-1][1] if valid else None), removed

    def __repr__(self) -> str:
        s = self.stats
        return (f"<SnapshotPersistence {self._folder} written={s.written} "
                f"superseded={s.superseded} failed={s.failed}>")


# ---- reading -------------------------------------------------------------------


def _signature(st: os.stat_result) -> tuple[int, int, int, int]:
    """What identifies one version of a file (a replaced or rewritten file is read again)."""
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_mode)


def _check_max_bytes(max_bytes: object) -> None:
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
    _check_max_bytes(max_bytes)
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
    _check_max_bytes(max_bytes)
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
