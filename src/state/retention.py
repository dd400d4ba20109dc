"""Retention: which snapshot files a writer keeps, and what it does with the rest.

One job: after each save, keep the file just written and the newest
``keep - 1`` other *valid* files (by tick number) and delete the older ones.
Kept apart from the writer thread (`persistence.py`) because deciding what
counts as valid - and never letting a bad file cost a good one its place - is
its own set of rules, with its own state (which files are known to load).

- A file that does not load (corrupt, truncated, another ``schema_version``,
  not a regular file, over the size cap) never counts: it is moved aside to
  ``snapshots/rejected/`` with a warning naming it and why (or, if it cannot
  be moved, left out of retention, warned once).  Each file is read once to
  check it; files the writer wrote are known valid (`Retention.wrote`).
- Disk full: `Retention.make_room` removes every valid snapshot except the
  newest one (the writer then retries once).
- `prune_snapshots` is the plain, file-name-only variant for tools and tests.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

from .snapshot_files import (MAX_SNAPSHOT_BYTES_DEFAULT, PathLike, file_signature,
                             list_snapshots, read_snapshot_file, remove_temp_files, snapshot_dir)

__all__ = ["Retention", "prune_snapshots", "KEEP_DEFAULT", "REJECTED_DIRNAME"]

# The name persistence has always logged under (operators' log configuration, tests).
logger = logging.getLogger("src.state.persistence")

KEEP_DEFAULT = 20
REJECTED_DIRNAME = "rejected"   # <data_dir>/snapshots/rejected: files that do not load


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


class Retention:
    """The retention of one writer's ``<data_dir>/snapshots`` (module doc); writer thread only.

    `keep`: valid files kept (checked by the caller).  `max_bytes`: the size
    cap used when checking existing files (as `load_latest`).
    """

    def __init__(self, data_dir: PathLike, *, keep: int = KEEP_DEFAULT,
                 max_bytes: int = MAX_SNAPSHOT_BYTES_DEFAULT) -> None:
        self._data_dir = Path(data_dir)
        self._folder = snapshot_dir(data_dir)
        self._keep = keep
        self._max_bytes = max_bytes
        # name -> lstat signature of files known to load, and names of files that do
        # not load but could not be moved aside (warned once).
        self._valid: dict[str, tuple[int, int, int, int]] = {}
        self._unmovable: set[str] = set()

    def wrote(self, path: Path) -> None:
        """Record `path`, just written by the writer, as known to load."""
        with contextlib.suppress(OSError):
            self._valid[path.name] = file_signature(os.lstat(path))  # ours: known to load

    def valid_files(self) -> list[tuple[int, Path]]:
        """``(tick, path)`` of the snapshot files that load, oldest first.

        A file not known yet is read once (`read_snapshot_file`, this writer's
        size cap); one that does not load is moved aside (`reject`).
        """
        valid: list[tuple[int, Path]] = []
        known: dict[str, tuple[int, int, int, int]] = {}
        for tick, path in list_snapshots(self._data_dir):
            try:
                sig = file_signature(os.lstat(path))
            except FileNotFoundError:
                continue
            if self._valid.get(path.name) != sig:
                if path.name in self._unmovable:
                    continue
                try:
                    read_snapshot_file(path, max_bytes=self._max_bytes)
                except (OSError, ValueError) as exc:
                    self.reject(path, exc)
                    continue
            known[path.name] = sig
            valid.append((tick, path))
        self._valid = known
        return valid

    def reject(self, path: Path, why: Exception) -> None:
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

    def retain(self, just_written: Path) -> None:
        """Keep the file just written and the newest ``keep - 1`` other valid files."""
        others = [p for _, p in self.valid_files() if p != just_written]
        for path in others[:max(len(others) - (self._keep - 1), 0)]:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            self._valid.pop(path.name, None)

    def make_room(self) -> tuple[Path | None, list[Path]]:
        """Disk full: remove every valid snapshot but the newest; returns (kept, removed)."""
        remove_temp_files(self._folder)
        valid = self.valid_files()
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
