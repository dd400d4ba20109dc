"""`Publication`: what the loop's process publishes in shared memory for API processes.

Three named segments per instance name ``N`` (``/dev/shm/N-...``):

- ``N-vitals`` (`csnapshot.SharedVitals`): the vitals of the latest published
  snapshot, followed by a few numbers about it and the loop (`META_FIELDS`:
  snapshot version, publish time, queue depth and capacity, events dropped,
  number of workers, a random run id that tags ETags);
- ``N-status`` (`csnapshot.SharedBytes`): the ``/status`` body of the default
  query, serialised once per snapshot version;
- ``N-full`` (`csnapshot.SharedBytes`): the status view with every log at its
  full length, serialised once per version; API processes derive a query with
  limits from it (`SharedState`), so a limited query costs its output.

Both byte segments carry the snapshot version as their version.  The writer
(`PublicationWriter`) publishes ``full``, then ``status``, then the vitals
record last: a reader that sees a vitals version has the bodies of it.
The writer role is held with a lock the kernel releases when the process dies
(csnapshot's), so a stale set of segments from a crashed run is replaced at
start-up, and never while a live instance owns it.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from csnapshot import Field, SegmentBusyError, SharedBytes, SharedVitals

from src.api.query import LIMIT_KEYS, MAX_LIMIT
from src.api.status_json import StatusEncoder
from src.state.snapshot_manager import StateSnapshot
from src.state.vitals import VITAL_FIELDS, VITAL_NAMES, SubjectiveTimeParams, VitalValues

__all__ = ["PublicationWriter", "PublicationReader", "PublishedState", "SharedState",
           "META_FIELDS", "BRIDGE_ROLES", "SHM_NAME_ENV", "segment_names", "PublicationBusy",
           "DEFAULT_CAPACITY"]

log = logging.getLogger(__name__)

SHM_NAME_ENV = "LIFE_SHM_NAME"
DEFAULT_CAPACITY = 8 * 2**20  # bytes per body segment
META_FIELDS: tuple[Field, ...] = (
    Field("snapshot_version", int, default=0, min=0),
    Field("published_at", float, default=0.0),
    Field("queue_depth", int, default=0, min=0),
    Field("queue_capacity", int, default=0, min=0),
    Field("events_dropped", int, default=0, min=0),
    Field("workers", int, default=0, min=0),
    Field("run_id", int, default=0, min=0),
    # The Redis bridge, refreshed by the publisher thread even while no new
    # snapshot comes (a follower cut off from Redis gets none):
    Field("bridge_role", int, default=0, min=0, max=2),        # BRIDGE_ROLES
    Field("bridge_connected", int, default=0, min=0, max=1),
    Field("bridge_version", int, default=0, min=0),            # last mirrored / followed
    Field("bridge_lag", float, default=0.0, min=0.0),          # seconds
)
BRIDGE_ROLES = ("none", "origin", "follower")
_ALL_FIELDS = VITAL_FIELDS + META_FIELDS
_N_VITALS = len(VITAL_FIELDS)
_FULL_LIMITS = {key: MAX_LIMIT for key in LIMIT_KEYS}


class PublicationBusy(RuntimeError):
    """Another live process owns the segments of this name."""


def segment_names(name: str) -> tuple[str, str, str]:
    """``(vitals, status, full)`` segment names of instance `name`."""
    return f"{name}-vitals", f"{name}-status", f"{name}-full"


def _fresh(create: Any, name: str, *args: Any) -> Any:
    """`create(name, ...)`, re-made empty if it took over a dead run's segment."""
    path = os.path.join("/dev/shm", name)
    existed = os.path.exists(path)
    try:
        handle = create(name, *args)
    except SegmentBusyError as exc:
        raise PublicationBusy(f"shared-memory segment {path} is owned by a running "
                              f"process ({exc}); stop it or choose another name") from None
    if existed:  # a stale segment of a crashed run: start this run's versions afresh
        log.info("replacing the stale shared-memory segment %s of a stopped run", path)
        handle.unlink()
        handle.close()
        handle = create(name, *args)
    return handle


def _run_id(tag: str) -> int:
    """An origin's ETag tag (8 hex digits) as the run id ETags are formatted from."""
    try:
        value = int(tag, 16)
    except ValueError:
        raise ValueError(f"origin tag {tag!r} is not hexadecimal") from None
    if not 0 <= value < 2**32:
        raise ValueError(f"origin tag {tag!r} is out of range")
    return value


class PublicationWriter:
    """The loop process's handles: `publish(snapshot, ...)` once per new snapshot."""

    def __init__(self, name: str, *, capacity: int = DEFAULT_CAPACITY, workers: int = 0,
                 queue_capacity: int = 0) -> None:
        self.name = name
        v, s, f = segment_names(name)
        self._vitals = _fresh(SharedVitals.create, v, _ALL_FIELDS)
        try:
            self._status = _fresh(SharedBytes.create, s, capacity)
            self._full = _fresh(SharedBytes.create, f, capacity)
        except BaseException:
            self._vitals.unlink()
            raise
        self.run_id = secrets.randbits(31)
        self.workers = workers
        self.queue_capacity = queue_capacity
        self.published = 0  # snapshots published
        self._status_json = StatusEncoder()  # one publisher thread: the bodies of each version
        # The Redis bridge's ``health()`` (src.bridge), set once it runs: its
        # state reaches the workers' /health and POST /event through the meta fields.
        self.bridge_health: Any = None

    def publish(self, snapshot: StateSnapshot, queue_depth: int = 0,
                events_dropped: int = 0) -> None:
        """Serialise `snapshot`'s bodies once and publish them, then its vitals and meta."""
        state = snapshot.state
        version = snapshot.version
        if version <= self._status.version:
            return
        full = self._status_json.encode(state, True, _FULL_LIMITS)
        # A mirror of another origin's snapshot (a Redis follower's) carries that origin's
        # plain body and run tag: its workers serve the origin's bytes and ETags.
        body = getattr(snapshot, "plain_status_body", None) or \
            self._status_json.encode(state, True, {})
        run_id = self.run_id if snapshot.origin is None else _run_id(snapshot.origin)
        self._full.publish(full, version)
        self._status.publish(body, version)
        self._vitals.write_tuple(tuple(snapshot.vitals) + (
            version, snapshot.published_at, queue_depth, self.queue_capacity,
            events_dropped, self.workers, run_id) + self._bridge_fields())
        self.published += 1

    def _bridge_fields(self) -> tuple[int, int, int, float]:
        health = self.bridge_health
        if health is None:
            return (0, 0, 0, 0.0)
        h = health()
        role = BRIDGE_ROLES.index(h.get("role", "none"))
        version = h.get("last_version_mirrored") if role == 1 else h.get("version")
        lag = h.get("last_lag_s") if role == 1 else h.get("lag_s")
        return (role, int(bool(h.get("connected"))), int(version or 0), float(lag or 0.0))

    def publish_bridge(self, queue_depth: int = 0) -> None:
        """Refresh the bridge's fields and the queue's depth alone (between snapshots)."""
        if self.bridge_health is not None:
            role, connected, version, lag = self._bridge_fields()
            self._vitals.write(bridge_role=role, bridge_connected=connected,
                               bridge_version=version, bridge_lag=lag,
                               queue_depth=queue_depth, queue_capacity=self.queue_capacity,
                               workers=self.workers)

    def close(self) -> None:
        """Remove the segments' names and give up the writer role."""
        for handle in (self._vitals, self._status, self._full):
            try:
                handle.unlink()
            except OSError:
                pass
            handle.close()


@dataclass(frozen=True, slots=True)
class PublishedState:
    """One consistent read of the vitals segment."""

    vitals: VitalValues
    snapshot_version: int
    published_at: float
    queue_depth: int
    queue_capacity: int
    events_dropped: int
    workers: int
    run_id: int
    bridge_role: int
    bridge_connected: int
    bridge_version: int
    bridge_lag: float

    @property
    def tick(self) -> int:
        return self.vitals.ticks


class _Log(list):  # type: ignore[type-arg]
    """A published log (a list) with the ``last(n)`` of a `LogView`."""

    def last(self, n: int) -> list[Any]:
        return list(self[-n:]) if n > 0 else []


class _Entry(dict):  # type: ignore[type-arg]
    """A published memory entry: its ``to_dict()`` is itself."""

    def to_dict(self) -> dict[str, Any]:
        return self


class SharedState:
    """The published full view of one version, shaped like the `FrozenState` that
    `status_view` reads, so every query is built by the same function as in one process."""

    def __init__(self, full: Mapping[str, Any]) -> None:
        self.vitals = VitalValues(*(full[name] for name in VITAL_NAMES))
        self.life_id = full["life_id"]
        self.birth_timestamp = full["birth_timestamp"]
        self.subjective_time_params = SubjectiveTimeParams(
            *(full[f"subjective_time_{n}"] for n in SubjectiveTimeParams._fields))
        self.memory = _Log(_Entry(e) for e in full.get("memory", ()))
        for key in ("recent_events", "energy_history", "stability_history",
                    "adaptation_history"):
            setattr(self, key, _Log(full.get(key, ())))
        for key in ("learning_params", "adaptation_params", "planning", "intelligence"):
            setattr(self, key, full[key])


class PublicationReader:
    """An API process's handles on instance `name` (read only)."""

    def __init__(self, name: str) -> None:
        self.name = name
        v, s, f = segment_names(name)
        self._vitals = SharedVitals.open(v)
        self._status = SharedBytes.open(s)
        self._full = SharedBytes.open(f)
        self._parsed: tuple[int, SharedState] | None = None

    @property
    def writer_alive(self) -> bool:
        """Whether the loop's process (the segments' writer) is alive."""
        return bool(self._vitals.writer_alive)

    @property
    def replaced(self) -> bool:
        """Whether a newer run re-created the segments (reopen to follow it)."""
        return bool(self._vitals.replaced)

    def state(self) -> PublishedState:
        values = self._vitals.read_tuple()
        return PublishedState(VitalValues._make(values[:_N_VITALS]), *values[_N_VITALS:])  # type: ignore[arg-type]

    def status_body(self) -> tuple[int, bytes]:
        """``(version, body)`` of the default ``/status`` query."""
        version, body = self._status.read()
        return int(version), bytes(body)

    def full_state(self) -> tuple[int, SharedState]:
        """``(version, SharedState)``: the full view, parsed once per version."""
        version, body = self._full.read()
        parsed = self._parsed
        if parsed is not None and parsed[0] == version:
            return parsed
        parsed = (int(version), SharedState(json.loads(body)))
        self._parsed = parsed
        return parsed

    def close(self) -> None:
        for handle in (self._vitals, self._status, self._full):
            handle.close()


class PublisherThread:
    """Publishes every new snapshot of `manager` through `writer`, off the loop's thread.

    It follows the manager's versions (``wait_for_update``): when the loop
    publishes faster than the bodies are serialised, the newest is taken and
    the ones in between are skipped, so the loop never waits for it.
    """

    def __init__(self, writer: PublicationWriter, manager: Any, queue: Any = None) -> None:
        import threading
        self.writer = writer
        self.manager = manager
        self.queue = queue
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="life-publish", daemon=True)

    def start(self) -> "PublisherThread":
        self.publish_latest()
        self._thread.start()
        return self

    def publish_latest(self) -> None:
        snapshot = self.manager.get_snapshot()
        if snapshot is not None:
            q = self.queue
            self.writer.publish(snapshot, 0 if q is None else len(q),
                                0 if q is None else q.dropped)

    def _run(self) -> None:
        version = 0
        while not self._stop.is_set():
            snapshot = self.manager.wait_for_update(version, 0.2)
            if snapshot is None:
                try:
                    # Redis may come and go between snapshots, a follower's stream drain.
                    self.writer.publish_bridge(0 if self.queue is None else len(self.queue))
                except Exception:
                    log.exception("publishing the bridge's state failed")
                continue
            version = snapshot.version
            try:
                self.publish_latest()
            except Exception:
                log.exception("publishing snapshot version %d failed", version)
                self._stop.wait(0.5)

    def stop(self) -> None:
        """Stop the thread, after publishing the latest snapshot once more."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        try:
            self.publish_latest()
        except Exception:
            log.exception("publishing the final snapshot failed")
