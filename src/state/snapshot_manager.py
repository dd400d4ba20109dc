"""`StateSnapshotManager`: the writer publishes, any number of readers take, nobody waits.

The runtime loop (the one writer of a `SelfState`) calls `update_snapshot(state)`
after each tick: it captures the whole state as an immutable `StateSnapshot` in
O(1) (the logs are shared, never copied) and swaps it in with one reference
store (`csnapshot.PublishCell`).  Readers (HTTP handlers, the persistence
thread) call `get_snapshot()`: one lock-free load, no copy; the snapshot they
hold never changes, however long they keep it.

What a reader sees:

- a published snapshot is one point in time: its vitals were read from the
  record at publish time (with the record's version), and its logs and dicts
  were taken in the same call, with no write in between;
- vitals written to the record are visible at once through `live_vitals()`;
  everything else (memory, histories, parameters, planning/intelligence)
  becomes visible at the next `update_snapshot`, so it is at most one publish
  period old.

This plan replaces the original project's "copy the whole state under a lock
on every read" (see docs/development/concurrent-access.md).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from csnapshot import PublishCell, Vitals

from .self_state import FrozenState, SelfState, VitalValues

__all__ = ["StateSnapshotManager", "StateSnapshot", "NoSnapshotError"]


class NoSnapshotError(LookupError):
    """Nothing has been published yet (`StateSnapshotManager.status_dict` before any update)."""


@dataclass(frozen=True, slots=True)
class StateSnapshot:
    """One published, immutable state: what `get_snapshot()` returns.

    `version` counts publishes of its manager (1 for the first); `published_at`
    is the manager's clock (``time.time()``) at publish; `state` holds every
    part (`FrozenState`: vitals with their record version, identity, log views,
    frozen dicts).  `origin` is None for a snapshot published here; a mirror
    of another process's snapshot (`StateSnapshotManager.publish_mirrored`)
    carries that process's run tag, and keeps its `version` and `published_at`.
    """

    version: int
    published_at: float
    state: FrozenState
    origin: str | None = None

    @property
    def tick(self) -> int:
        """The tick the snapshot shows (``ticks`` of its vitals)."""
        return self.state.vitals.ticks

    @property
    def vitals(self) -> VitalValues:
        """The vitals as read from the record at publish time."""
        return self.state.vitals

    def status_dict(self, include_optional: bool = True,
                    limits: Mapping[str, int | None] | None = None) -> dict[str, Any]:
        """The API's status dict, in time proportional to its size; see `FrozenState.status_dict`.

        Equal to what ``SelfState.get_safe_status_dict`` returned at publish time.
        """
        return self.state.status_dict(include_optional, limits)

    def to_dict(self) -> dict[str, Any]:
        """The persistence format of `SelfState.to_dict` (readable by `SelfState.from_dict`)."""
        return self.state.to_dict()


class StateSnapshotManager:
    """Publishes `StateSnapshot`s of a `SelfState`; lock-free for readers.

    One writer calls `update_snapshot`; a lock serialises accidental second
    writers so versions stay exact, and readers never take it.
    ``get_snapshot()`` returns None until the first update; `status_dict`
    raises `NoSnapshotError` then.  `clock` stamps ``published_at``.
    `history`: how many of the latest snapshots `snapshots_after` can return
    (0: only the latest), for a reader that sends every version on (the
    Redis bridge's encoder, which under the GIL runs once per thread switch,
    while the loop publishes many); each costs only what its logs' tails hold.
    """

    __slots__ = ("_cell", "_live", "_lock", "_clock", "_recent")

    def __init__(self, *, clock: Callable[[], float] = time.time, history: int = 0) -> None:
        if isinstance(history, bool) or not isinstance(history, int) or history < 0:
            raise ValueError(f"history: expected an int >= 0, got {history!r}")
        self._cell: PublishCell[StateSnapshot | None] = PublishCell(None)
        # The vitals record of the last published state, for live reads.  A
        # one-item list: item reads are safe against a concurrent replacement
        # on free-threaded CPython, attribute reads of __slots__ are not on 3.13.
        self._live: list[Vitals | None] = [None]
        self._lock = threading.Lock()
        self._clock = clock
        # A ring: version v in slot v % history (one item store by the writer, one load per
        # slot by a reader: atomic on free-threaded builds too, where a deque's iteration
        # is not safe against a concurrent append).
        self._recent: list[StateSnapshot | None] | None = [None] * history if history else None

    # ---- writer ----

    def update_snapshot(self, state: SelfState) -> StateSnapshot:
        """Publish `state` as it is now and return the snapshot; O(1) in its size.

        The writer's call (the thread that mutates `state`): a snapshot taken
        from another thread while the writer is mid-update could combine parts
        from before and after one of its changes.
        """
        if not isinstance(state, SelfState):
            raise TypeError(f"update_snapshot() takes a SelfState, got {type(state).__name__}")
        with self._lock:
            # Frozen inside the lock (O(1)): frozen outside, a second writer
            # could publish a higher version carrying an older state.
            frozen = state.freeze()
            snapshot = StateSnapshot(self._cell.version + 1, self._clock(), frozen)
            recent = self._recent
            if recent is not None:  # before the cell: a reader that sees it finds it here
                recent[snapshot.version % len(recent)] = snapshot
            self._cell.publish(snapshot)
            if self._live[0] is not state.vitals:
                self._live[0] = state.vitals
        return snapshot

    def publish_mirrored(self, snapshot: StateSnapshot) -> None:
        """Publish a snapshot another process published (a follower's call, its only writer).

        The snapshot keeps its own `version` and `published_at` (the origin's),
        so readers see the origin's numbers, and `wait_for_update` waits for
        them; `version` (the property) still counts local publishes.  Never
        mix with `update_snapshot` on one manager.
        """
        if not isinstance(snapshot, StateSnapshot) or snapshot.origin is None:
            raise TypeError("publish_mirrored() takes a StateSnapshot with an origin tag, "
                            f"got {snapshot!r}")
        with self._lock:
            self._cell.publish(snapshot)

    # ---- readers ----

    def get_snapshot(self) -> StateSnapshot | None:
        """The latest snapshot (None before the first update): one load, no lock, no copy."""
        return self._cell.get()

    @property
    def version(self) -> int:
        """Number of snapshots published so far (0 before the first)."""
        return self._cell.version

    def status_dict(self, include_optional: bool = True,
                    limits: Mapping[str, int | None] | None = None) -> dict[str, Any]:
        """The latest snapshot's status dict (time proportional to the output).

        Raises `NoSnapshotError` before the first update.
        """
        snapshot = self._cell.get()
        if snapshot is None:
            raise NoSnapshotError("no state snapshot has been published yet")
        return snapshot.status_dict(include_optional, limits)

    def live_vitals(self) -> VitalValues | None:
        """The vitals now, from one consistent seqlock read (None before the first update).

        Newer than the latest snapshot's vitals, and read without a lock.
        """
        record = self._live[0]
        return None if record is None else VitalValues._make(record.read_tuple())

    def live_vitals_versioned(self) -> tuple[int, VitalValues] | None:
        """``(record version, vitals)`` from one consistent read (None before the first update).

        The record version counts completed vitals writes; it is a cheap ETag
        for a live read.
        """
        record = self._live[0]
        if record is None:
            return None
        version, values = record.read_versioned()
        return version, VitalValues._make(values)

    def snapshots_after(self, version: int) -> list[StateSnapshot]:
        """The snapshots newer than `version` still in the history, oldest first.

        Consecutive versions up to the latest, at most `history` of them (those
        published before are gone: a reader that fell further behind skips
        them); with no history, the latest alone if it is newer.  Lock-free:
        one load per slot, from the newest down to the first one overwritten.
        """
        latest = self._cell.get()
        if latest is None or latest.version <= version:
            return []
        recent = self._recent
        if recent is None:
            return [latest]
        found = []
        for v in range(latest.version, max(version, latest.version - len(recent)), -1):
            snapshot = recent[v % len(recent)]
            if snapshot is None or snapshot.version != v:
                break  # overwritten by a newer version meanwhile: older ones are gone too
            found.append(snapshot)
        return found[::-1] or [latest]

    def wait_for_update(self, version: int, timeout: float | None = None) -> StateSnapshot | None:
        """Block until a snapshot newer than `version` is published, then return it.

        Returns None if none is published within `timeout` seconds.  Readers
        that are already behind return at once without locking.
        """
        # By the snapshots' own versions: a mirror's (`publish_mirrored`) are its origin's,
        # not the cell's count of publishes (for `update_snapshot` the two are equal).
        local, snapshot = self._cell.latest()
        if snapshot is not None and snapshot.version > version:
            return snapshot  # readers that are behind return at once, without locking
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return None
            local, snapshot = self._cell.wait_newer(local, remaining)
            if snapshot is not None and snapshot.version > version:
                return snapshot

    def __repr__(self) -> str:
        snapshot = self._cell.get()
        tick = "-" if snapshot is None else snapshot.tick
        return f"<StateSnapshotManager version={self._cell.version} tick={tick}>"
