"""`SharedLifeApi`: the Life API served from what the loop's process published.

For API processes without a loop (``--workers N`` workers, uvicorn and
granian workers): the same routes, query rules and errors as `LifeApi`,
reading `src.publication` segments instead of a snapshot manager.

- ``/status``: the default query's body is served as published (serialised
  once per version by the loop's process); a query with limits is built by
  `status_view` from the published full view (parsed once per version) and
  cached per version and query.  The ETag is ``"<run id>-<version>"``, the
  same in every process.  When the loop's process is gone the last snapshot is
  still served, with ``X-Life-Stale: true``.
- ``/vitals``: the vitals of the latest published snapshot.
- ``/health``: the loop's liveness (writer alive, tick age), this process's
  ``pid`` and the number of workers; 503 ``stalled`` when the loop is gone.
- ``POST /event``: validated here, then sent through `src.event_channel`; on
  a follower, pushed to the origin's Redis stream by this process's own
  `event_queue` (a `src.bridge.events.RedisEventSink`), whose ``queue_depth``
  and ``events_dropped`` this process's ``/health`` reports.
"""

from __future__ import annotations

import os
import time
from http import HTTPStatus
from typing import Any

from src.bridge.events import EVENTS_URL_ENV
from src.environment.event import Event
from src.event_channel import ChannelDown, ChannelFull, EventSender
from src.publication import BRIDGE_ROLES, PublicationReader
from src.state.snapshot_manager import StateSnapshotManager
from src.state.status import status_view

from .cache import StatusCache
from .errors import BadRequest, Response, json_bytes
from .query import parse_status_query
from .routes import LifeApi, _etag_matches

__all__ = ["SharedLifeApi"]

_NOT_YET = "no state has been published yet; retry shortly"


class _Version:
    """What `StatusCache` needs of a snapshot: its version."""

    __slots__ = ("version",)

    def __init__(self, version: int) -> None:
        self.version = version


class SharedLifeApi(LifeApi):
    """`LifeApi` over a `PublicationReader` and an `EventSender` (see the module doc)."""

    def __init__(self, reader: PublicationReader, sender: EventSender | None, *,
                 role: str = "worker", **options: Any) -> None:
        super().__init__(StateSnapshotManager(), **options)
        self.reader = reader
        self.sender = sender
        self.role = role
        self.derived_cache = StatusCache()

    def _published(self) -> Any:
        meta = self.reader.state()
        if meta.snapshot_version == 0:
            raise BadRequest(HTTPStatus.SERVICE_UNAVAILABLE, _NOT_YET, {"Retry-After": "1"})
        return meta

    def status(self, query: str, if_none_match: str | None = None) -> Response:
        include_optional, limits = parse_status_query(query)
        meta = self._published()
        if include_optional and not limits:
            version, body = self.reader.status_body()
        else:
            version, state = self.reader.full_state()
            body = self.derived_cache.get(
                _Version(version),  # type: ignore[arg-type]  # only .version is read
                (include_optional,) + tuple(sorted(limits.items())),
                lambda: json_bytes(status_view(state, include_optional, limits)))  # type: ignore[arg-type]
        etag = f'"{meta.run_id:08x}-{version}"'
        headers = {"ETag": etag, "Cache-Control": "no-cache",
                   "X-Snapshot-Version": str(version)}
        if version == meta.snapshot_version:
            headers["X-Life-Tick"] = str(meta.tick)
        if not self.reader.writer_alive:
            headers["X-Life-Stale"] = "true"
        if _etag_matches(if_none_match, etag):
            return HTTPStatus.NOT_MODIFIED, b"", headers
        return HTTPStatus.OK, body, headers

    def vitals(self, query: str) -> Response:
        if query:
            raise BadRequest(HTTPStatus.BAD_REQUEST, "/vitals takes no query parameters")
        meta = self._published()
        body = {"version": meta.snapshot_version, "vitals": meta.vitals._asdict(),
                "active": meta.vitals.active}
        headers = {"Cache-Control": "no-store"}
        if not self.reader.writer_alive:
            headers["X-Life-Stale"] = "true"
        return HTTPStatus.OK, json_bytes(body), headers

    def health(self, query: str) -> Response:
        if query:
            raise BadRequest(HTTPStatus.BAD_REQUEST, "/health takes no query parameters")
        meta = self.reader.state()
        alive = self.reader.writer_alive
        body: dict[str, Any] = {"pid": os.getpid(), "role": self.role,
                                "workers": meta.workers, "loop_alive": alive,
                                "queue_depth": meta.queue_depth,
                                "events_dropped": meta.events_dropped}
        if self.event_queue is not None:  # a follower's process: its own sink's view
            body.update(queue_depth=len(self.event_queue), events_dropped=self.event_queue.dropped)
        if meta.bridge_role:
            body["redis"] = _bridge_block(meta)
        if meta.snapshot_version == 0:
            body.update(status="starting" if alive else "stalled", tick=None,
                        last_tick_age_s=None, ticks_per_second=None)
            return HTTPStatus.SERVICE_UNAVAILABLE, json_bytes(body), {"Retry-After": "1"}
        age = max(0.0, time.time() - meta.published_at)
        rate = self.tick_rate.update(time.monotonic(), meta.tick)
        stalled = not alive or age > self.stall_after
        body.update(status="stalled" if stalled else "ok", tick=meta.tick,
                    snapshot_version=meta.snapshot_version, last_tick_age_s=round(age, 4),
                    ticks_per_second=round(rate, 2))
        status = HTTPStatus.SERVICE_UNAVAILABLE if stalled else HTTPStatus.OK
        return status, json_bytes(body), {"Cache-Control": "no-store"}

    def enqueue(self, event: Event) -> Response:
        meta = self.reader.state()
        if BRIDGE_ROLES[meta.bridge_role] == "follower":
            # A follower's events go to the origin through Redis, from this process.
            if not meta.bridge_connected:
                raise BadRequest(HTTPStatus.SERVICE_UNAVAILABLE,
                                 "the Redis event stream is unreachable; retry later",
                                 {"Retry-After": "1"})
            if self.event_queue is None:
                raise BadRequest(HTTPStatus.SERVICE_UNAVAILABLE,
                                 f"this follower process has no route to the origin's event "
                                 f"stream: start it with ${EVENTS_URL_ENV} set to the --follow "
                                 f"URL")
        if self.event_queue is not None:
            return super().enqueue(event)  # 503 when the stream is full or unreachable
        sender = self.sender
        if sender is None:
            raise BadRequest(HTTPStatus.SERVICE_UNAVAILABLE, "no event queue is configured")
        if meta.queue_capacity and meta.queue_depth >= meta.queue_capacity:
            raise BadRequest(HTTPStatus.SERVICE_UNAVAILABLE,
                             "the event queue is full; retry later", {"Retry-After": "1"})
        try:
            sender.send(event)
        except ChannelFull:
            raise BadRequest(HTTPStatus.SERVICE_UNAVAILABLE,
                             "the event queue is full; retry later",
                             {"Retry-After": "1"}) from None
        except ChannelDown:
            raise BadRequest(HTTPStatus.SERVICE_UNAVAILABLE,
                             "the runtime loop is not running; retry later",
                             {"Retry-After": "1"}) from None
        return (HTTPStatus.ACCEPTED,
                json_bytes({"accepted": True, "type": event.type, "intensity": event.intensity,
                            "queue_depth": meta.queue_depth + 1}), {})


def _bridge_block(meta: Any) -> dict[str, Any]:
    """The ``redis`` block of a worker's /health, from what the main process published."""
    role = BRIDGE_ROLES[meta.bridge_role]
    connected = bool(meta.bridge_connected)
    block: dict[str, Any] = {"role": role, "connected": connected,
                             "status": "ok" if connected else "disconnected"}
    if role == "origin":
        block.update(last_version_mirrored=meta.bridge_version, last_lag_s=meta.bridge_lag)
    else:
        block.update(version=meta.bridge_version, lag_s=meta.bridge_lag)
    return block
