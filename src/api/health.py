"""``/health``: the tick-rate estimate and the health body (queue, loop, staleness)."""

from __future__ import annotations

import threading
import time
from http import HTTPStatus
from typing import Any

from src.environment.event_queue import EventQueue
from src.state.snapshot_manager import StateSnapshot

from .errors import Response, json_bytes

__all__ = ["TickRate", "health_response"]


class TickRate:
    """Ticks per second, estimated from the published snapshots' ticks.

    Keeps one baseline ``(time, tick)`` sample, moved forward once per
    `window` seconds; the rate is measured against it as soon as 0.2 s have
    passed.  Callers are /health requests (rare), so the small lock is never
    on the hot read path.
    """

    def __init__(self, window: float = 2.0) -> None:
        self._window = window
        self._lock = threading.Lock()
        self._base: tuple[float, int] | None = None
        self._rate = 0.0

    def update(self, now: float, tick: int) -> float:
        """Record the sample ``(now, tick)``; the current estimate in ticks per second."""
        with self._lock:
            if self._base is None or tick < self._base[1]:
                self._base = (now, tick)
                return self._rate
            t0, k0 = self._base
            if now - t0 >= 0.2:
                self._rate = (tick - k0) / (now - t0)
                if now - t0 >= self._window:
                    self._base = (now, tick)
            return self._rate


def health_response(snapshot: StateSnapshot | None, queue: EventQueue | None,
                    loop_alive: bool | None, tick_rate: TickRate,
                    stall_after: float, persistence: dict[str, Any] | None = None,
                    bridge: dict[str, Any] | None = None) -> Response:
    """200 ``ok``, or 503 ``starting`` (nothing published) / ``stalled`` (too old, or no loop).

    `persistence` (``SnapshotPersistence.health()``) is reported as is; while
    saves fail a live loop's status is ``degraded``, still a 200: the API
    serves, but what it serves is not reaching the disk.  `bridge` (the Redis
    bridge's state) is reported as the ``redis`` block, with the same rule:
    ``degraded`` while its status is not ``ok``.
    """
    body: dict[str, Any] = {
        "queue_depth": None if queue is None else len(queue),
        "events_dropped": None if queue is None else queue.dropped,
        "loop_alive": loop_alive,
    }
    if snapshot is None:
        body.update(status="starting", tick=None, last_tick_age_s=None, ticks_per_second=None)
        if bridge is not None:  # a follower waiting for its origin says why
            body["redis"] = bridge
        return HTTPStatus.SERVICE_UNAVAILABLE, json_bytes(body), {"Retry-After": "1"}
    age = max(0.0, time.time() - snapshot.published_at)
    rate = tick_rate.update(time.monotonic(), snapshot.tick)
    stalled = age > stall_after or loop_alive is False
    body.update(status="stalled" if stalled else "ok", tick=snapshot.tick,
                snapshot_version=snapshot.version, last_tick_age_s=round(age, 4),
                ticks_per_second=round(rate, 2))
    if persistence is not None:
        body["persistence"] = persistence
        if not stalled and persistence.get("status") != "ok":
            body["status"] = "degraded"
    if bridge is not None:
        body["redis"] = bridge
        if not stalled and bridge.get("status") != "ok":
            body["status"] = "degraded"
    status = HTTPStatus.SERVICE_UNAVAILABLE if stalled else HTTPStatus.OK
    return status, json_bytes(body), {"Cache-Control": "no-store"}
