"""Snapshot persistence: published snapshots written to disk off the loop's thread.

One job: the background writer (`SnapshotPersistence`) - taking snapshots from
the loop in O(1), writing the latest one at a bounded rate, and reporting how
saving goes (`health()`, `stats`, `finish()`, rate-limited error logs).  The
file format, atomic writing and safe reading are in `snapshot_files.py`;
which files are kept, moved aside or removed is in `retention.py`.  This
module re-exports their public names, so ``src.state.persistence`` stays the
one import for callers.

- `submit(snapshot)` (the loop): stores one reference, wakes an idle writer;
  O(1), no serialisation, no I/O on the loop's thread.  Snapshots submitted
  while the writer is busy replace each other (``stats.superseded``): a slow
  disk makes it skip snapshots; nothing queues up.
- A write starts at most once every `min_interval` s (default 0.05:
  serialising takes the GIL); `flush()` and `close()` skip the wait.  Each
  write is atomic (`write_snapshot_file`), then retention runs (keep `keep`
  valid files, default 20; bad ones go to ``snapshots/rejected/``); disk
  full (``ENOSPC``/``EDQUOT``): keep only the newest valid file, retry once.
- A save error is counted (``stats.failed``) and logged rate-limited: one
  ERROR when saves start failing, a summary every `error_log_interval` s
  (default 10), an INFO when they succeed again; nothing reaches the loop.
  `health()` reports it (for ``/health``); `finish()` raises
  `FinalSaveError` when the last snapshot did not reach disk.

One process writes a data folder at a time: `src.state.data_dir.open_data_dir`.
"""

from __future__ import annotations

import errno
import logging
import os  # noqa: F401  (tests patch persistence.os; the calls are in snapshot_files)
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from .retention import KEEP_DEFAULT, REJECTED_DIRNAME, Retention, prune_snapshots
from .self_state import FrozenState
from .snapshot_files import (MAX_SNAPSHOT_BYTES_DEFAULT, Fault, PathLike,
                             check_max_bytes, encode_snapshot, list_snapshots, load_latest,
                             load_snapshot, read_regular_file, read_snapshot_file,
                             remove_temp_files, snapshot_dir, snapshot_path, write_snapshot_file)
from .snapshot_manager import StateSnapshot
from .state_format import StateEncoder

__all__ = ["SnapshotPersistence", "PersistenceStats", "load_latest", "load_snapshot",
           "read_snapshot_file", "read_regular_file", "write_snapshot_file", "encode_snapshot",
           "list_snapshots",
           "snapshot_dir", "snapshot_path", "prune_snapshots", "KEEP_DEFAULT",
           "MIN_INTERVAL_DEFAULT", "MAX_SNAPSHOT_BYTES_DEFAULT", "ERROR_LOG_INTERVAL_DEFAULT",
           "REJECTED_DIRNAME", "PersistenceError", "FinalSaveError"]

logger = logging.getLogger(__name__)

MIN_INTERVAL_DEFAULT = 0.05
ERROR_LOG_INTERVAL_DEFAULT = 10.0        # seconds between summaries of repeated save errors
_NO_SPACE = frozenset(e for e in (errno.ENOSPC, getattr(errno, "EDQUOT", None)) if e)


class PersistenceError(Exception):
    """Snapshot persistence failed in a way the caller must know about."""


class FinalSaveError(PersistenceError):
    """The last snapshot submitted is not on disk (`SnapshotPersistence.finish`)."""


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
        check_max_bytes(max_bytes)
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
        self._error_log_interval = float(error_log_interval)
        self._fault = fault
        # Saves re-encode only what changed since the last (the same bytes, 5-20x faster on
        # a live state): the writing thread's GIL time is the API's and the loop's too.
        self._json = StateEncoder()
        self._clock = clock
        # Health, under _cond: when the last save succeeded, the last error.
        self._last_ok_at: float | None = None
        self._last_error: tuple[str, float] | None = None
        self._consecutive_failures = 0
        # Error log (writer thread only): when the next summary is due, failures not logged.
        self._next_error_report = 0.0
        self._unreported = 0
        # Retention (writer thread only): which files are kept, moved aside, removed.
        self._retention = Retention(data_dir, keep=keep, max_bytes=max_bytes)

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
            remove_temp_files(self._folder)
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
            payload = encode_snapshot(snapshot, self._json)  # the thread's own encoder
            self._folder.mkdir(parents=True, exist_ok=True)
            try:
                path = self._write(tick, payload)
            except OSError as exc:
                if exc.errno not in _NO_SPACE:
                    raise
                # Retention itself may have filled the disk (keep x size > free):
                # without room made here every later save would fail too.
                kept, removed = self._retention.make_room()
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
        self._retention.wrote(path)
        try:
            self._retention.retain(path)
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

    def __repr__(self) -> str:
        s = self.stats
        return (f"<SnapshotPersistence {self._folder} written={s.written} "
                f"superseded={s.superseded} failed={s.failed}>")

