"""`RedisPublisher`: mirrors the latest published snapshot into a Redis stream, on its own thread.

The loop never waits on the network and hands nothing over: the snapshot
manager's publish cell is already a latest-wins single slot.  The publisher
thread blocks in ``wait_for_update(last mirrored)``, which returns the
*newest* snapshot, so when Redis is slow or down every version published in
the meantime is skipped, and nothing queues.  Each version it takes is
serialised once (`src.bridge.codec`, the plain ``/status`` body through the
API's cache) and written with one pipelined round trip:

- ``XADD <prefix>:versions MAXLEN ~ <retention> * v .. run .. t .. tick .. body .. state ..``
  (bounded retention in the same command);
- ``SET <prefix>:origin <run> PX <ttl>``: the heartbeat followers read as the
  origin's liveness, renewed at least every `HEARTBEAT` seconds even when no
  version is published.

At most `max_rate` versions are mirrored per second (default 100): each one
is a full serialisation of the state on a thread of the loop's process, and
under the GIL that time is taken from the loop and the API's threads.

A failed write marks the bridge disconnected, is logged at most once per 5 s
(the URL masked), and is retried with a growing pause (up to 2 s); the
client reconnects by itself on the next command.  `health()` is the
``/health`` block: connected, last version mirrored, how far behind it is.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from src.state.snapshot_manager import StateSnapshot, StateSnapshotManager

from .codec import EntryEncoder
from .connection import Keys, connect, import_redis, mask_url
from src.ratelog import RateLimitedLog

__all__ = ["RedisPublisher", "DEFAULT_RETENTION", "HEARTBEAT", "HEARTBEAT_TTL"]

logger = logging.getLogger(__name__)

DEFAULT_RETENTION = 100  # stream entries kept (approximately: MAXLEN ~)
DEFAULT_MAX_RATE = 100   # versions mirrored per second, at most (the latest wins)
HEARTBEAT = 0.5          # seconds between heartbeats when no version is published
HEARTBEAT_TTL = 3.0      # seconds a heartbeat lives: followers call the origin dead after it
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
        self._encoder = EntryEncoder(caps)
        self._retention = retention
        self._min_interval = 1.0 / max_rate
        self._client = connect(url, reply_timeout=2.0)
        self._stop = threading.Event()
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
        self._thread.start()
        return self

    def close(self, timeout: float = 3.0) -> None:
        """Stop the thread (after the write in flight, if any), drop the heartbeat, close."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        try:  # a clean stop frees the prefix at once (a successor need not wait out the TTL)
            if self._client.get(self._keys.origin) == self._run.encode():
                self._client.delete(self._keys.origin)
        except self._redis.RedisError:
            pass  # the heartbeat expires by itself
        self._client.close()

    def _main(self) -> None:
        backoff = 0.0
        next_beat = 0.0
        while not self._stop.is_set():
            if backoff:
                self._stop.wait(backoff)
                if self._stop.is_set():
                    break
            snapshot = self._manager.wait_for_update(self.last_version, HEARTBEAT)
            started = time.monotonic()
            if snapshot is None and time.monotonic() < next_beat and backoff == 0.0:
                continue
            try:
                self._write(snapshot)
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
                self.connected = False
                backoff = min(_MAX_BACKOFF, max(0.05, backoff * 2))
                continue
            except Exception:  # a bug, not the network: keep mirroring later versions
                self.failures += 1
                logger.exception("Redis bridge: could not mirror a version")
                backoff = min(_MAX_BACKOFF, max(0.05, backoff * 2))
                continue
            if not self.connected:
                logger.info("Redis bridge: mirroring to %s (prefix %r)", mask_url(self._url),
                            self._keys.prefix)
                self._errors.reset("write")
            self.connected = True
            backoff = 0.0
            next_beat = time.monotonic() + HEARTBEAT
            if snapshot is not None:  # at most max_rate versions/s: each costs the process CPU
                self._stop.wait(self._min_interval - (time.monotonic() - started))

    def _write(self, snapshot: StateSnapshot | None) -> None:
        pipe = self._client.pipeline(transaction=False)
        if snapshot is not None and snapshot.version > self.last_version:
            fields = self._encoder.encode(snapshot, self._run, self._body(snapshot))
            pipe.xadd(self._keys.versions, fields, maxlen=self._retention, approximate=True)
        else:
            snapshot = None
        pipe.set(self._keys.origin, self._run.encode(), px=int(HEARTBEAT_TTL * 1000))
        pipe.execute()
        if snapshot is not None:
            if self.last_version:
                self.skipped += max(0, snapshot.version - self.last_version - 1)
            self.mirrored += 1
            now = time.time()
            self.last_lag = max(0.0, now - snapshot.published_at)
            self.last_mirrored_at = now
            self.last_version = snapshot.version

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
                "versions_skipped": self.skipped, "write_failures": self.failures}
