"""`RedisPublisher`: mirrors the published snapshots into a Redis stream, on two threads of its own.

The loop never waits on the network and hands nothing over: the snapshot
manager's publish cell is a latest-wins single slot, and its short history
(``StateSnapshotManager(history=...)``) keeps the last versions.

- The **encoder** thread blocks in ``wait_for_update(last encoded)``, then
  takes every version published since that the manager still holds
  (`snapshots_after`) and encodes each as a change of the one before
  (`src.bridge.codec`: the vitals, the log entries appended, a dict that was
  written; a keyframe with the whole state every few entries), with the
  plain ``/status`` body through the API's cache.  Under the GIL it runs
  once per thread switch while the loop publishes many versions, so taking
  them all is what lets it keep up.  It leaves the entries in a short
  pending list (at most `MAX_BATCH`; one while Redis is unreachable) and
  waits while that is full, so it never encodes faster than Redis takes
  entries and nothing queues: versions published meanwhile fall out of the
  history and are skipped (the latest wins; the next delta spans them).
- The **sender** thread writes everything pending in one pipelined round
  trip: one ``XADD <prefix>:versions MAXLEN ~ <retention> * v .. run .. t ..
  tick .. body .. base .. delta .. [state ..]`` per entry (bounded retention
  in the same command) and, once per `HEARTBEAT` seconds (with a write, or
  on its own when no version is published), ``SET <prefix>:origin <run> PX
  <ttl>``, the heartbeat followers read as the origin's liveness.  At a
  steady rate a write is one ``XADD`` alone, without a pipeline: at 1 kHz a
  heartbeat per version was a third of the sender's commands for nothing.

At most `max_rate` versions are encoded per second (default 100): each one
is Python on a thread of the loop's process, and under the GIL that time is
taken from the loop and the API's threads.

A failed write marks the bridge disconnected, is logged at most once per 5 s
(the URL masked), and is retried with a growing pause (up to 2 s).  The
entries of that write may be lost, and each delta needs the one before it,
so the pending entries are dropped and the chain starts again: the next
entry is a keyframe of the latest version.  The client reconnects by itself
on the next command.  `health()` is the ``/health`` block: connected, last
version mirrored, how far behind it is.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from src.state.snapshot_manager import StateSnapshot, StateSnapshotManager

from .codec import KEYFRAME_EVERY, EntryEncoder
from .connection import Keys, connect, import_redis, mask_url
from src.ratelog import RateLimitedLog

__all__ = ["RedisPublisher", "DEFAULT_RETENTION", "HEARTBEAT", "HEARTBEAT_TTL", "MAX_BATCH"]

logger = logging.getLogger(__name__)

DEFAULT_RETENTION = 100  # stream entries kept (approximately: MAXLEN ~)
DEFAULT_MAX_RATE = 100   # versions mirrored per second, at most (the latest wins)
HEARTBEAT = 0.5          # seconds between heartbeats when no version is published
HEARTBEAT_TTL = 3.0      # seconds a heartbeat lives: followers call the origin dead after it
MAX_BATCH = 128          # encoded versions waiting for the sender, at most
_MAX_BACKOFF = 2.0


class RedisPublisher:
    """Mirrors `manager`'s snapshots to Redis at `url` under `keys` (call `start`, then `close`).

    `run`: this origin's run tag (the API's ETag prefix); `body(snapshot)`:
    the plain ``/status`` body (`LifeApi.default_status_body`); `caps`: the
    state's log caps (`SelfState.caps`), which a follower needs to rebuild it.
    """

    def __init__(self, manager: StateSnapshotManager, url: str, keys: Keys, *, run: str,
                 body: Callable[[StateSnapshot], bytes], caps: Mapping[str, int],
                 retention: int = DEFAULT_RETENTION, max_rate: float = DEFAULT_MAX_RATE) -> None:
        self._redis = import_redis()
        self._manager = manager
        self._url = url
        self._keys = keys
        self._run = run
        self._body = body
        # A follower joining reads the newest entries: a keyframe must be among those kept.
        self._encoder = EntryEncoder(caps, max(1, min(KEYFRAME_EVERY, retention // 2)))
        self._retention = retention
        self._max_rate = float(max_rate)
        self._client = connect(url, reply_timeout=2.0)
        self._stop = threading.Event()
        # Encoded entries not yet written, oldest first (see the module doc).
        # (None, fields): a keyframe of the version before it (not a version of its own).
        self._pending: list[tuple[StateSnapshot | None, dict[bytes, bytes]]] = []
        self._pending_changed = threading.Condition()
        self._chain = 0  # bumped when entries are lost: the encoder starts with a keyframe
        self._encoder_thread = threading.Thread(target=self._encode_main,
                                                name="life-redis-encoder", daemon=True)
        self._thread = threading.Thread(target=self._main, name="life-redis-publisher",
                                        daemon=True)
        self._errors = RateLimitedLog(logger)
        # Read by /health from other threads: plain attributes, each one store.
        self.connected = False
        self.last_version = 0       # last version written to Redis
        self.last_mirrored_at = 0.0  # time.time() of that write
        self.last_lag = 0.0         # seconds from its publish to its write
        self.mirrored = 0           # versions written
        self.skipped = 0            # versions published but never mirrored (latest wins)
        self.failures = 0           # writes that failed

    @property
    def client(self) -> Any:
        return self._client

    def start(self) -> RedisPublisher:
        self._encoder_thread.start()
        self._thread.start()
        return self

    def close(self, timeout: float = 3.0) -> None:
        """Stop the threads (after the write in flight, if any), drop the heartbeat, close."""
        self._stop.set()
        with self._pending_changed:
            self._pending_changed.notify_all()
        for thread in (self._encoder_thread, self._thread):
            if thread.is_alive():
                thread.join(timeout)
        try:  # a clean stop frees the prefix at once (a successor need not wait out the TTL)
            if self._client.get(self._keys.origin) == self._run.encode():
                self._client.delete(self._keys.origin)
        except self._redis.RedisError:
            pass  # the heartbeat expires by itself
        self._client.close()

    # -- the encoder thread ---------------------------------------------------------------

    def _room(self) -> int:
        """Entries the sender takes now: `MAX_BATCH`, or one while Redis is unreachable."""
        return MAX_BATCH if self.connected else 1

    def _encode_main(self) -> None:
        version = 0
        chain = self._chain
        budget, refilled = 1.0, time.monotonic()  # versions it may encode now (max_rate)
        while not self._stop.is_set():
            with self._pending_changed:  # a full list: Redis is behind, or gone
                while len(self._pending) >= self._room() and not self._stop.is_set():
                    self._pending_changed.wait(HEARTBEAT)
                room = self._room() - len(self._pending)
            snapshot = self._manager.wait_for_update(version, HEARTBEAT)
            if snapshot is None or self._stop.is_set():
                continue
            now = time.monotonic()
            budget, refilled = min(float(MAX_BATCH), budget + (now - refilled) * self._max_rate), now
            if budget < 1.0:  # at most max_rate versions/s: each costs the process CPU
                self._stop.wait((1.0 - budget) / self._max_rate)
                continue
            # Every version since the last one encoded that the history holds, up to the
            # room and the budget (the newest of them: the rest are skipped).
            todo = (self._manager.snapshots_after(version) or [snapshot])[-min(room, int(budget)):]
            if chain != self._chain:  # entries were lost: a new chain, from a keyframe
                chain = self._chain
                self._encoder.restart()
            entries = []
            for snap in todo:
                try:
                    entries.append((snap, self._encoder.encode(snap, self._run,
                                                               self._body(snap))))
                except Exception:  # a bug, not the network: keep mirroring later versions
                    self.failures += 1
                    self._errors.log(logging.ERROR, "encode", "Redis bridge: could not encode "
                                     "version %d", snap.version, exc_info=True)
                    self._encoder.restart()  # the next entry cannot follow this one
                version = snap.version
            budget -= len(todo)
            with self._pending_changed:
                if chain != self._chain:  # lost as well (the sender failed meanwhile)
                    continue
                self._pending.extend(entries)
                self._pending_changed.notify_all()
                if not self._encoder.keyframe_due:
                    continue
                # The keyframe goes after these deltas, once the sender has them: no
                # version waits for the whole state to be encoded.
                while self._pending and chain == self._chain and not self._stop.is_set():
                    self._pending_changed.wait(HEARTBEAT)
            if chain == self._chain:
                self._encode_keyframe(chain)

    def _encode_keyframe(self, chain: int) -> None:
        base = self._encoder.base
        assert base is not None  # keyframe_due: a chain has begun
        try:
            fields = self._encoder.keyframe(self._run, self._body(base))
        except Exception:  # a bug, not the network: a delta chain that joiners cannot start
            self.failures += 1
            self._errors.log(logging.ERROR, "encode", "Redis bridge: could not encode a "
                             "keyframe of version %d", base.version, exc_info=True)
            return
        with self._pending_changed:
            if chain == self._chain:
                self._pending.append((None, fields))
                self._pending_changed.notify_all()

    # -- the sender thread ----------------------------------------------------------------

    def _main(self) -> None:
        backoff = 0.0
        next_beat = 0.0
        while not self._stop.is_set():
            if backoff:
                self._stop.wait(backoff)
                if self._stop.is_set():
                    break
            with self._pending_changed:
                if not self._pending:
                    self._pending_changed.wait(max(0.0, next_beat - time.monotonic()))
                batch, self._pending = self._pending, []
                self._pending_changed.notify_all()  # room for the encoder
            if not batch and time.monotonic() < next_beat and backoff == 0.0:
                continue
            beat = not batch or not self.connected or time.monotonic() >= next_beat
            try:
                self._write(batch, beat)
            except self._redis.RedisError as exc:
                self.failures += 1
                if self.connected:
                    logger.warning("Redis bridge: lost Redis at %s (%s); the loop carries on, "
                                   "the latest version is mirrored once it is back",
                                   mask_url(self._url), type(exc).__name__)
                else:
                    self._errors.log(logging.WARNING, "write",
                                     "Redis bridge: cannot write to %s: %s", mask_url(self._url),
                                     type(exc).__name__)
                self._restart_chain(connected=False)
                backoff = min(_MAX_BACKOFF, max(0.05, backoff * 2))
                continue
            except Exception:  # a bug, not the network: keep mirroring later versions
                self.failures += 1
                self._errors.log(logging.ERROR, "bug", "Redis bridge: could not mirror a "
                                 "version", exc_info=True)
                self._restart_chain(connected=self.connected)
                backoff = min(_MAX_BACKOFF, max(0.05, backoff * 2))
                continue
            if not self.connected:
                logger.info("Redis bridge: mirroring to %s (prefix %r)", mask_url(self._url),
                            self._keys.prefix)
                self._errors.reset("write")
            with self._pending_changed:
                self.connected = True
                self._pending_changed.notify_all()  # a full batch of room again
            backoff = 0.0
            if beat:
                next_beat = time.monotonic() + HEARTBEAT

    def _restart_chain(self, *, connected: bool) -> None:
        """After a failed write: its entries may be lost, so the next one is a keyframe."""
        with self._pending_changed:
            self.connected = connected
            self._pending = []
            self._chain += 1
            self._pending_changed.notify_all()

    def _write(self, batch: list[tuple[StateSnapshot | None, dict[bytes, bytes]]],
               beat: bool) -> None:
        """One round trip: the batch's XADDs and, if `beat`, the heartbeat's SET."""
        if len(batch) == 1 and not beat:  # the usual case at a steady rate: no pipeline
            self._client.xadd(self._keys.versions, batch[0][1], maxlen=self._retention,
                              approximate=True)
        else:
            pipe = self._client.pipeline(transaction=False)
            for _, fields in batch:
                pipe.xadd(self._keys.versions, fields, maxlen=self._retention, approximate=True)
            if beat:
                pipe.set(self._keys.origin, self._run.encode(), px=int(HEARTBEAT_TTL * 1000))
            pipe.execute()
        now = time.time()
        versions = [snapshot for snapshot, _ in batch if snapshot is not None]
        for snapshot in versions:
            if self.last_version:
                self.skipped += max(0, snapshot.version - self.last_version - 1)
            self.mirrored += 1
            self.last_version = snapshot.version
        if versions:
            self.last_lag = max(0.0, now - versions[-1].published_at)
            self.last_mirrored_at = now

    def health(self) -> dict[str, Any]:
        """The ``/health`` block of the origin's bridge."""
        latest = self._manager.get_snapshot()
        behind = 0 if latest is None else max(0, latest.version - self.last_version)
        return {"role": "origin", "status": "ok" if self.connected else "disconnected",
                "connected": self.connected, "url": mask_url(self._url),
                "prefix": self._keys.prefix, "last_version_mirrored": self.last_version,
                "versions_behind": behind,
                "last_mirror_age_s": (None if not self.last_mirrored_at
                                      else round(max(0.0, time.time() - self.last_mirrored_at), 4)),
                "last_lag_s": round(self.last_lag, 6), "versions_mirrored": self.mirrored,
                "versions_skipped": self.skipped, "keyframes": self._encoder.keyframes,
                "write_failures": self.failures}
