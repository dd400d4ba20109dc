"""`RedisFollower`: serves what an origin mirrors, by following its Redis stream on one thread.

ZeroMQ's "Clone" pattern with the snapshot version as the sequence number:

1. on start, after every reconnect and when far behind, ``XREVRANGE
   <prefix>:versions + - COUNT <JOIN_SCAN>`` reads the newest entries, and
   the follower starts from the newest keyframe among them and applies the
   deltas after it (the "snapshot on join"; whatever came before is skipped);
2. then ``XREAD BLOCK <ms> COUNT <BATCH> STREAMS <prefix>:versions <last id>``
   waits for new entries (a blocking read, no polling).  Each one's delta is
   applied to the follower's `codec.Replica` (time proportional to what
   changed); the newest of a batch is served.  A full batch means it is far
   behind: it jumps to the newest keyframe with step 1.

A delta whose base the replica does not hold (entries lost: the origin's
write failed, Redis restarted) is a gap: the follower keeps serving what it
serves until the next keyframe, at most `KEYFRAME_EVERY` entries later.
Monotonic: an entry is served only if it is newer than what is served - a
higher version of the same origin run, or a newer run (a restarted origin,
with a later publish time and a new ETag prefix).  So after a Redis restart,
a network cut or a stale entry, a follower never serves an older version
than one it served.  Each served version goes to `sink(snapshot)` (the
local publication: a snapshot manager and the API's cache).  Between
entries (at most every `BLOCK` seconds) the origin's heartbeat is read for
``/health``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from src.state.snapshot_manager import StateSnapshot

from .codec import KEYFRAME_EVERY, Header, Replica, decode_header
from .connection import Keys, connect, import_redis, mask_url
from .mirror import MirroredSnapshot
from .publisher import HEARTBEAT_TTL, MAX_BATCH
from src.ratelog import RateLimitedLog

__all__ = ["RedisFollower", "BLOCK", "BATCH", "JOIN_SCAN"]

logger = logging.getLogger(__name__)

BLOCK = 1.0       # seconds one XREAD blocks (then the heartbeat is read, and it blocks again)
BATCH = 2 * MAX_BATCH  # entries per XREAD (two of the origin's writes); a full batch means
                       # "far behind": jump to the newest keyframe
JOIN_SCAN = 2 * KEYFRAME_EVERY + 1  # newest entries read on joining: a keyframe among them
_MAX_BACKOFF = 2.0
_LAG_SAMPLES = 1024  # the lags of the last versions served, for /health's p50/p99


class RedisFollower:
    """Follows `keys`' version stream at `url`, handing each newer version to `sink`.

    `sink(snapshot)` runs on the follower's thread; it must not block.
    `start()` begins; `wait_first(timeout)` waits for the first version;
    `close()` stops.
    """

    def __init__(self, url: str, keys: Keys,
                 sink: Callable[[StateSnapshot], None]) -> None:
        self._redis = import_redis()
        self._url = url
        self._keys = keys
        self._sink = sink
        self._client = connect(url, reply_timeout=BLOCK + 2.0)
        self._stop = threading.Event()
        self._first = threading.Event()
        self._thread = threading.Thread(target=self._main, name="life-redis-follower",
                                        daemon=True)
        self._errors = RateLimitedLog(logger)
        self._last_id = b"0-0"
        self._served: Header | None = None
        self._replica = Replica()
        # Read by /health from other threads: plain attributes, each one store.
        self.connected = False
        self.origin_run: str | None = None  # the heartbeat's run tag (None: no heartbeat)
        self.heartbeat_at = 0.0             # time.monotonic() of the last heartbeat read
        self.applied_at = 0.0               # time.time() when the served version arrived
        self.last_lag = 0.0                 # seconds from the origin's publish to serving it
        self.versions = 0                   # versions served
        self.stale = 0                      # entries refused as not newer than the served one
        self.bad = 0                        # entries that could not be decoded
        self.gaps = 0                       # deltas skipped: their base was lost (until a keyframe)
        self.reconnects = 0
        self._lags: deque[float] = deque(maxlen=_LAG_SAMPLES)  # appended by the thread only

    @property
    def served(self) -> Header | None:
        """The header of the version served (None before the first)."""
        return self._served

    def start(self) -> RedisFollower:
        self._thread.start()
        return self

    def wait_first(self, timeout: float) -> bool:
        return self._first.wait(timeout)

    def close(self, timeout: float = BLOCK + 3.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._client.close()

    # ---- the thread ----

    def _main(self) -> None:
        backoff = 0.0
        while not self._stop.is_set():
            if backoff:
                self._stop.wait(backoff)
            try:
                if not self.connected:
                    again = self.reconnects > 0 or self.versions > 0
                    self._join()
                    if again:
                        logger.info("Redis bridge: following %s again (prefix %r)",
                                    mask_url(self._url), self._keys.prefix)
                    self.connected = True
                    self._errors.reset("read")
                    backoff = 0.0
                self._follow()
            except self._redis.RedisError as exc:
                if self.connected:
                    self.reconnects += 1
                    logger.warning("Redis bridge: lost Redis at %s (%s); serving version %s "
                                   "until it is back", mask_url(self._url), type(exc).__name__,
                                   self._served.version if self._served else None)
                else:
                    self._errors.log(logging.WARNING, "read",
                                     "Redis bridge: cannot read from %s: %s",
                                     mask_url(self._url), type(exc).__name__)
                self.connected = False
                backoff = min(_MAX_BACKOFF, max(0.05, backoff * 2))
            except Exception:
                logger.exception("Redis bridge: the follower failed; retrying")
                self.connected = False
                backoff = min(_MAX_BACKOFF, max(0.05, backoff * 2))

    def _join(self) -> None:
        """Start from the newest keyframe among the newest entries, then follow from them."""
        newest = self._client.xrevrange(self._keys.versions, "+", "-", count=JOIN_SCAN)
        self._beat()
        if not newest:
            self._last_id = b"0-0"  # an empty (e.g. restarted) Redis: everything that comes
            return
        entries = newest[::-1]  # oldest first
        start = next((i for i in range(len(entries) - 1, -1, -1)
                      if b"state" in entries[i][1]), 0)
        self._serve(self._advance(entries[start:]))

    def _follow(self) -> None:
        reply = self._client.xread({self._keys.versions: self._last_id},
                                   count=BATCH, block=int(BLOCK * 1000))
        if not reply:
            self._beat()
            return
        entries = reply[0][1]
        if len(entries) >= BATCH:  # far behind: start again from the newest keyframe
            self._join()
            return
        self._serve(self._advance(entries))
        if time.monotonic() - self.heartbeat_at >= BLOCK:
            self._beat()

    def _beat(self) -> None:
        run = self._client.get(self._keys.origin)
        self.origin_run = None if run is None else run.decode("ascii", "replace")
        self.heartbeat_at = time.monotonic()

    def _advance(self, entries: list[tuple[bytes, Any]]
                 ) -> tuple[MirroredSnapshot, Header] | None:
        """Apply `entries` (oldest first) to the replica; the newest version to serve, if any."""
        newest: tuple[MirroredSnapshot, Header] | None = None
        latest = self._served  # the newest version held: served, or applied in this batch
        for entry_id, fields in entries:
            self._last_id = entry_id
            try:
                header = decode_header(fields)
            except ValueError as exc:
                self.bad += 1
                self._errors.log(logging.WARNING, "bad", "Redis bridge: skipping an entry: %s",
                                 exc)
                continue
            if latest is not None and not _newer(header, latest):
                self.stale += 1
                continue
            body = fields.get(b"body")
            try:
                if body is None:
                    raise ValueError("no body")
                frozen = self._replica.advance(header, fields)
            except ValueError as exc:
                self.bad += 1
                self._errors.log(logging.WARNING, "bad", "Redis bridge: skipping version %d: "
                                 "%s", header.version, exc)
                continue
            if frozen is None:
                self.gaps += 1
                self._errors.log(logging.INFO, "gap", "Redis bridge: versions before %d were "
                                 "lost; serving %s until the next keyframe", header.version,
                                 latest.version if latest else None)
                continue
            newest, latest = (MirroredSnapshot(header, frozen, body), header), header
        return newest

    def _serve(self, newest: tuple[MirroredSnapshot, Header] | None) -> None:
        if newest is None:
            return
        snapshot, header = newest
        served = self._served
        if served is not None and snapshot.origin != served.run:
            logger.info("Redis bridge: the origin restarted (run %s, from version %d)",
                        snapshot.origin, snapshot.version)
        self._sink(snapshot)
        now = time.time()
        self.last_lag = max(0.0, now - snapshot.published_at)
        self._lags.append(self.last_lag)
        self.applied_at = now
        self.versions += 1
        self._served = header
        self._first.set()

    # ---- /health ----

    def health(self) -> dict[str, Any]:
        """The ``/health`` block of a follower: Redis, the origin's liveness, the lag."""
        served = self._served
        beat_age = time.monotonic() - self.heartbeat_at if self.heartbeat_at else None
        alive = (self.connected and self.origin_run is not None and beat_age is not None
                 and beat_age < BLOCK + HEARTBEAT_TTL)
        ok = self.connected and alive and served is not None
        return {"role": "follower", "status": "ok" if ok else
                ("disconnected" if not self.connected else "origin-unseen"),
                "connected": self.connected, "url": mask_url(self._url),
                "prefix": self._keys.prefix, "origin_alive": alive,
                "origin_run": self.origin_run,
                "version": None if served is None else served.version,
                "origin_published_age_s": (None if served is None else
                                           round(max(0.0, time.time() - served.published_at), 4)),
                "lag_s": round(self.last_lag, 6), **_percentiles(self._lags),
                "versions_served": self.versions,
                "stale_entries": self.stale, "bad_entries": self.bad, "gaps": self.gaps,
                "keyframes_loaded": self._replica.keyframes,
                "reconnects": self.reconnects}


def _percentiles(lags: deque[float]) -> dict[str, float | None]:
    """p50/p99 of the recent lags (publish on the origin -> served here), in seconds."""
    ordered = sorted(list(lags))  # list(): a copy first, the thread appends meanwhile
    if not ordered:
        return {"lag_p50_s": None, "lag_p99_s": None, "lag_samples": 0}
    n = len(ordered)
    return {"lag_p50_s": round(ordered[n // 2], 6),
            "lag_p99_s": round(ordered[min(n - 1, int(0.99 * n))], 6), "lag_samples": n}


def _newer(entry: Header, served: Header) -> bool:
    """Whether `entry` may replace `served`: a later version, or a later run of the origin."""
    if entry.run == served.run:
        return entry.version > served.version
    return entry.published_at > served.published_at
