"""`LifeApi`: the request logic of the Life API, independent of the server that carries it.

Each endpoint is a method from the request's parts (query string, a header
value, the body bytes) to a `Response` ``(status, body, headers)``; client
errors raise `BadRequest`.  Nothing here knows ``ThreadingHTTPServer``: the
handler (`src.api.handler`) only moves bytes, so another transport (worker
processes, an ASGI application) can serve the same logic.

Readers never touch the live `SelfState`: ``GET /status`` serves the latest
snapshot the loop published (one lock-free load; the body built once per
version and query), ``GET /vitals`` does one consistent seqlock read of the
vitals record it was given, and ``POST /event`` only puts an event into the
bounded queue the loop drains every tick.
"""

from __future__ import annotations

import hmac
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

from csnapshot import Vitals

from src.environment.event import Event
from src.environment.event_queue import EventQueue, EventSinkUnavailable
from src.state.snapshot_manager import StateSnapshot, StateSnapshotManager
from src.state.vitals import VitalValues
from src.validation import MAX_JSON_DEPTH, is_number, json_text_depth, positive_int

from .cache import StatusCache
from .errors import BadRequest, Response, json_bytes
from .health import TickRate, health_response
from .query import parse_status_query
from .status_json import StatusEncoder

__all__ = ["LifeApi", "MAX_BODY", "GET_ROUTES", "POST_ROUTES", "DEFAULT_STATUS_KEY",
           "check_api_token"]

MAX_BODY = 16 * 1024  # largest accepted POST body, bytes
GET_ROUTES = ("/status", "/vitals", "/health")
POST_ROUTES = ("/event",)
_EVENT_FIELDS = ("type", "intensity", "timestamp", "metadata")
DEFAULT_STATUS_KEY = (True,)  # the cache key of a plain GET /status (no query)
_NOT_YET = "no state has been published yet; retry shortly"


class LifeApi:
    """The API over one snapshot manager (and, for ``/vitals``, the live vitals record).

    `vitals`: the record ``/vitals`` reads live (``state.vitals``); without it
    ``/vitals`` serves the vitals of the latest published snapshot, with their
    record version.  `event_queue`: where ``POST /event`` puts events (None:
    503).  `api_token` protects POST (and GET with `protect_get`).
    `stall_after`: seconds without a publish before ``/health`` says
    stalled; `loop_thread`, if given, is checked by ``/health`` too;
    `persistence_health`, if given (``SnapshotPersistence.health``), is
    reported by ``/health`` as its ``persistence`` block, `bridge_health`
    (the Redis bridge's state, `src.bridge`) as its ``redis`` block.
    """

    def __init__(self, snapshot_manager: StateSnapshotManager, *, vitals: Vitals | None = None,
                 event_queue: EventQueue | None = None, api_token: str | None = None,
                 protect_get: bool = False, stall_after: float = 5.0,
                 loop_thread: threading.Thread | None = None, max_body: int = MAX_BODY,
                 persistence_health: Callable[[], dict[str, Any]] | None = None,
                 allowed_hosts: Iterable[str] | None = None,
                 bridge_health: Callable[[], dict[str, Any]] | None = None) -> None:
        if not isinstance(snapshot_manager, StateSnapshotManager):
            raise TypeError("start_api_server() needs a StateSnapshotManager, got "
                            f"{type(snapshot_manager).__name__}")
        positive_int("max_body", max_body)
        if not is_number(stall_after) or not stall_after > 0:
            raise ValueError(f"stall_after must be a positive number of seconds, "
                             f"got {stall_after!r}")
        if api_token is not None:
            check_api_token(api_token)
        if vitals is not None and not hasattr(vitals, "read_versioned"):
            raise TypeError(f"vitals must be a csnapshot.Vitals record, got {vitals!r}")
        self.snapshot_manager = snapshot_manager
        self.vitals_record = vitals
        self.event_queue = event_queue
        self.api_token = api_token
        self.protect_get = protect_get
        self.stall_after = float(stall_after)
        self.loop_thread = loop_thread
        self.persistence_health = persistence_health
        self.bridge_health = bridge_health
        # Host names (lower case, no port) served; None serves any.  Checked on
        # every request: a DNS-rebinding page reaches a loopback server under
        # its own name, which is how it is told apart.
        self.allowed_hosts = (None if allowed_hosts is None
                              else frozenset(h.lower() for h in allowed_hosts))
        self.max_body = max_body
        self.status_cache = StatusCache()
        self.status_json = StatusEncoder()  # bodies reuse the unchanged dicts' JSON
        self.tick_rate = TickRate()
        first = snapshot_manager.get_snapshot()
        if first is not None:
            self.tick_rate.update(time.monotonic(), first.tick)
        # A per-process tag in ETags: versions restart at 1 with each run, and a
        # client must never get a 304 for a body of a previous run.
        self.etag_prefix = secrets.token_hex(4)

    # ---- routing and auth ----

    @staticmethod
    def route(method: str, path: str) -> str:
        """The endpoint's name (``status``, ``vitals``, ``health``, ``event``), or 404/405."""
        if path in GET_ROUTES:
            if method not in ("GET", "HEAD"):  # HEAD: the GET's headers, no body
                raise BadRequest(HTTPStatus.METHOD_NOT_ALLOWED,
                                 f"{method} is not allowed on {path}; use GET",
                                 {"Allow": "GET, HEAD"})
        elif path in POST_ROUTES:
            if method != "POST":
                raise BadRequest(HTTPStatus.METHOD_NOT_ALLOWED,
                                 f"{method} is not allowed on {path}; use POST",
                                 {"Allow": "POST"})
        else:
            raise BadRequest(HTTPStatus.NOT_FOUND, f"unknown endpoint {path!r}")
        return path[1:]

    def check_host(self, host: str | None) -> None:
        """400 unless the ``Host`` header names one of `allowed_hosts` (any port)."""
        allowed = self.allowed_hosts
        if allowed is None:
            return
        name = (host or "").strip().lower()
        if name.startswith("["):  # [::1]:8000
            name = name[:name.find("]") + 1] if "]" in name else name
        else:
            name = name.rpartition(":")[0] if name.count(":") == 1 else name
        if name not in allowed:
            raise BadRequest(HTTPStatus.BAD_REQUEST,
                             f"Host {host!r} is not served here; allowed: "
                             f"{', '.join(sorted(allowed))} (--allowed-hosts)")

    def check_token(self, api_key: str | None, authorization: str | None) -> None:
        """401 unless the token is given (``X-API-Key`` or ``Authorization: Bearer``)."""
        token = self.api_token
        if token is None:
            return
        given = api_key
        auth = authorization or ""
        if given is None and auth[:7].lower() == "bearer ":
            given = auth[7:].strip()
        if given is None or not hmac.compare_digest(given.encode(), token.encode()):
            raise BadRequest(HTTPStatus.UNAUTHORIZED, "missing or wrong API token",
                             {"WWW-Authenticate": 'Bearer realm="life"'})

    # ---- GET ----

    def _snapshot(self) -> StateSnapshot:
        snapshot = self.snapshot_manager.get_snapshot()
        if snapshot is None:
            raise BadRequest(HTTPStatus.SERVICE_UNAVAILABLE, _NOT_YET, {"Retry-After": "1"})
        return snapshot

    def status(self, query: str, if_none_match: str | None = None) -> Response:
        include_optional, limits = parse_status_query(query)
        snapshot = self._snapshot()
        # A mirrored snapshot carries its origin's tag: a follower's ETag is the origin's.
        etag = f'"{snapshot.origin or self.etag_prefix}-{snapshot.version}"'
        headers = {"ETag": etag, "Cache-Control": "no-cache",
                   "X-Life-Tick": str(snapshot.tick),
                   "X-Snapshot-Version": str(snapshot.version)}
        if _etag_matches(if_none_match, etag):
            return HTTPStatus.NOT_MODIFIED, b"", headers
        key = (include_optional,) + tuple(sorted(limits.items()))
        # A mirrored snapshot (a follower's) carries its origin's plain body: served as is.
        ready = getattr(snapshot, "plain_status_body", None) if key == DEFAULT_STATUS_KEY \
            else None
        body = ready if ready is not None else self.status_cache.get(
            snapshot, key, lambda: self.status_json.encode(snapshot.state, include_optional,
                                                           limits))
        return HTTPStatus.OK, body, headers

    def default_status_body(self, snapshot: StateSnapshot) -> bytes:
        """The body of a plain ``GET /status`` of `snapshot`, through the cache (once per version).

        The Redis bridge's publisher mirrors these bytes, so the origin builds
        them once for its own readers and for every follower.
        """
        return self.status_cache.get(snapshot, DEFAULT_STATUS_KEY,
                                     lambda: self.status_json.encode(snapshot.state, True, {}))

    def read_vitals(self) -> tuple[int, VitalValues]:
        """``(record version, vitals)``: live from the record, else as last published."""
        record = self.vitals_record
        if record is not None:
            version, values = record.read_versioned()
            return version, VitalValues._make(values)
        snapshot = self._snapshot()
        return snapshot.state.vitals_version, snapshot.vitals

    def vitals(self, query: str) -> Response:
        if query:
            raise BadRequest(HTTPStatus.BAD_REQUEST, "/vitals takes no query parameters")
        if self.snapshot_manager.get_snapshot() is None:
            raise BadRequest(HTTPStatus.SERVICE_UNAVAILABLE, _NOT_YET, {"Retry-After": "1"})
        version, vitals = self.read_vitals()
        body = {"version": version, "vitals": vitals._asdict(), "active": vitals.active}
        return HTTPStatus.OK, json_bytes(body), {"Cache-Control": "no-store"}

    def health(self, query: str) -> Response:
        if query:
            raise BadRequest(HTTPStatus.BAD_REQUEST, "/health takes no query parameters")
        loop = self.loop_thread
        persistence = self.persistence_health
        bridge = self.bridge_health
        return health_response(self.snapshot_manager.get_snapshot(), self.event_queue,
                               None if loop is None else loop.is_alive(), self.tick_rate,
                               self.stall_after,
                               None if persistence is None else persistence(),
                               None if bridge is None else bridge())

    # ---- POST ----

    def post_event(self, data: bytes) -> Response:
        """Queue the event in the JSON body ``{type, intensity?, timestamp?, metadata?}``."""
        if json_text_depth(data) > MAX_JSON_DEPTH:
            raise BadRequest(HTTPStatus.BAD_REQUEST,
                             f"the body nests deeper than {MAX_JSON_DEPTH} levels")
        try:
            payload = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            raise BadRequest(HTTPStatus.BAD_REQUEST, "malformed JSON body") from None
        if not isinstance(payload, dict):
            raise BadRequest(HTTPStatus.BAD_REQUEST,
                             "the body must be a JSON object: {\"type\": ..., \"intensity\": ...}")
        unknown = set(payload) - set(_EVENT_FIELDS)
        if unknown:
            raise BadRequest(HTTPStatus.BAD_REQUEST,
                             f"unknown event field(s) {sorted(unknown)}; allowed: "
                             f"{', '.join(_EVENT_FIELDS)}")
        if "type" not in payload:
            raise BadRequest(HTTPStatus.BAD_REQUEST, "'type' is required")
        metadata = payload.get("metadata")
        if metadata is None:  # absent, or JSON null: no metadata
            metadata = {}
        elif not isinstance(metadata, dict):  # never silently dropped: 0, false, "", []
            raise BadRequest(HTTPStatus.BAD_REQUEST,
                             f"'metadata' must be a JSON object, got {json.dumps(metadata)}")
        try:
            event = Event(type=payload["type"], intensity=payload.get("intensity", 0.0),
                          timestamp=payload.get("timestamp", time.time()),
                          metadata=metadata)
        except (TypeError, ValueError) as exc:
            raise BadRequest(HTTPStatus.BAD_REQUEST, f"invalid event: {exc}") from None
        return self.enqueue(event)

    def enqueue(self, event: Event) -> Response:
        """Put a validated event where the loop takes it: 202, or 503 when full."""
        queue = self.event_queue
        if queue is None:
            raise BadRequest(HTTPStatus.SERVICE_UNAVAILABLE, "no event queue is configured")
        try:
            pushed = queue.push(event)
        except EventSinkUnavailable as exc:  # a remote queue (a follower's) cannot be reached
            raise BadRequest(HTTPStatus.SERVICE_UNAVAILABLE, f"{exc}; retry later",
                             {"Retry-After": "1"}) from None
        if not pushed:
            raise BadRequest(HTTPStatus.SERVICE_UNAVAILABLE,
                             "the event queue is full; retry later", {"Retry-After": "1"})
        return (HTTPStatus.ACCEPTED,
                json_bytes({"accepted": True, "type": event.type, "intensity": event.intensity,
                            "queue_depth": len(queue)}), {})


def check_api_token(token: object) -> str:
    """`token` if it can be sent in a header and matched: printable ASCII, no spaces.

    A token with non-ASCII characters or surrounding spaces could never match
    what a client sends (headers are ASCII, and their spaces are stripped), so
    it is refused when the server starts rather than locking every client out.
    """
    if not isinstance(token, str) or not token:
        raise ValueError(f"the API token must be a non-empty string, got {token!r}")
    bad = sorted({c for c in token if not "!" <= c <= "~"})
    if bad:
        raise ValueError("the API token may hold only printable ASCII without spaces "
                         f"(33-126); it has {', '.join(repr(c) for c in bad[:5])}")
    return token


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    tags = [t.strip() for t in header.split(",")]
    return "*" in tags or etag in tags or ("W/" + etag) in tags
