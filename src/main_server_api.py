"""The Life HTTP API (the readers) and the application's main command.

Readers never touch the live `SelfState`: ``GET /status`` serves the latest
snapshot published by the runtime loop (`StateSnapshotManager`, one lock-free
load), ``GET /vitals`` does one consistent seqlock read of the live vitals
record, and ``POST /event`` only puts an event into the bounded queue that the
loop - the one writer - drains every tick.

Built on the standard library's ``ThreadingHTTPServer`` (a thread per
connection), with the traps of that server handled: keep-alive with
``TCP_NODELAY`` (without it Nagle + delayed ACK cost ~40 ms per response),
status and headers sent only once the body is complete, a JSON 500 (logged
with its traceback) for unexpected errors, client resets logged at debug level
instead of a traceback per connection, a read timeout per connection and a cap
on concurrent connections.  Endpoint reference: docs/components/api-server.md.

Run it: ``python -m src.main_server_api --help``.
"""

from __future__ import annotations

import argparse
import hmac
import json
import logging
import os
import secrets
import signal
import socket
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from src.environment.event import Event
from src.environment.event_queue import EventQueue
from src.state.snapshot_manager import StateSnapshot, StateSnapshotManager

__all__ = ["LifeHandler", "LifeServer", "start_api_server", "main", "LIMIT_KEYS", "MAX_LIMIT"]

log = logging.getLogger("src.api")

HOST = "127.0.0.1"
PORT = 8000
LIMIT_KEYS = ("memory_limit", "events_limit", "energy_history_limit",
              "stability_history_limit", "adaptation_history_limit")
MAX_LIMIT = 100_000          # largest accepted *_limit (the state's caps bound the output anyway)
MAX_BODY = 16 * 1024         # largest accepted POST body, bytes
MAX_CACHED_QUERIES = 64      # distinct /status queries cached per snapshot version
TOKEN_ENV = "LIFE_API_TOKEN"


class BadRequest(Exception):
    """A client error: becomes a JSON response with `status`."""

    def __init__(self, status: HTTPStatus, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


# ---- /status: serialised at most once per snapshot version and query ------

class _Pending:
    """A cache slot being filled by one thread; the others wait for it."""

    __slots__ = ("done", "body", "error")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.body: bytes | None = None
        self.error: BaseException | None = None


class StatusCache:
    """``(snapshot version, query) -> JSON bytes``, shared by all handler threads.

    One dict per snapshot version, held in a one-item list cell and replaced
    when a newer version is asked for.  A miss claims its slot with
    ``dict.setdefault`` (atomic), so exactly one thread serialises a given
    query of a given version and concurrent askers wait for its bytes.
    Readers never take a lock; the cost of a hit is two dict lookups.
    """

    def __init__(self, max_queries: int = MAX_CACHED_QUERIES) -> None:
        self._cell: list[tuple[int, dict[tuple[Any, ...], Any]]] = [(0, {})]
        self._swap = threading.Lock()  # taken once per new version, never on a hit
        self._max = max_queries
        self.serialisations = 0  # bodies built (a statistic for tests and /health)

    def get(self, snapshot: StateSnapshot, key: tuple[Any, ...], build: Any) -> bytes:
        version, entries = self._cell[0]
        if version != snapshot.version:
            with self._swap:
                version, entries = self._cell[0]
                if version > snapshot.version:  # older than the cache's: don't cache it
                    return build()
                if version < snapshot.version:
                    entries = {}
                    self._cell[0] = (snapshot.version, entries)
        found = entries.get(key)
        if isinstance(found, bytes):
            return found
        if found is None:
            if len(entries) >= self._max:
                return build()
            mine = _Pending()
            found = entries.setdefault(key, mine)
            if found is mine:
                try:
                    mine.body = build()
                    self.serialisations += 1
                except BaseException as exc:
                    mine.error = exc
                    entries.pop(key, None)
                    raise
                finally:
                    mine.done.set()
                entries[key] = mine.body
                return mine.body
            if isinstance(found, bytes):
                return found
        found.done.wait()
        if found.body is None:
            return build()  # the builder failed; try for ourselves
        return found.body


def _json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False, default=_default).encode()


def _default(obj: Any) -> Any:
    # Views of the copy-on-write log and named tuples reach here.
    from csnapshot import json_default

    return json_default(obj)


def parse_status_query(query: str) -> tuple[bool, dict[str, int] | None]:
    """``(include_optional, limits)`` from a /status query string, or BadRequest naming the parameter."""
    include_optional = True
    limits: dict[str, int] = {}
    seen: set[str] = set()
    for name, raw in parse_qsl(query, keep_blank_values=True, strict_parsing=False):
        if name in seen:
            raise BadRequest(HTTPStatus.BAD_REQUEST, f"query parameter {name!r} given twice")
        seen.add(name)
        if name == "include_optional":
            value = raw.strip().lower()
            if value in ("1", "true", "yes"):
                include_optional = True
            elif value in ("0", "false", "no"):
                include_optional = False
            else:
                raise BadRequest(HTTPStatus.BAD_REQUEST,
                                 f"include_optional must be true or false, got {raw!r}")
        elif name in LIMIT_KEYS:
            if not (raw.isascii() and raw.isdigit()) or len(raw) > 7 or int(raw) > MAX_LIMIT:
                raise BadRequest(HTTPStatus.BAD_REQUEST,
                                 f"{name} must be an integer from 0 to {MAX_LIMIT}, got {raw!r}")
            limits[name] = int(raw)
        else:
            allowed = ", ".join(("include_optional",) + LIMIT_KEYS)
            raise BadRequest(HTTPStatus.BAD_REQUEST,
                             f"unknown query parameter {name!r}; allowed: {allowed}")
    return include_optional, (limits or None)


# ---- /health ---------------------------------------------------------------

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


# ---- the server --------------------------------------------------------------

class LifeServer(ThreadingHTTPServer):
    """`ThreadingHTTPServer` with the Life state attached and a connection cap."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    persistence_health: Any = None  # a callable -> dict (SnapshotPersistence.health) for /health

    def __init__(self, address: tuple[str, int], snapshot_manager: StateSnapshotManager, *,
                 event_queue: EventQueue | None = None, api_token: str | None = None,
                 protect_get: bool = False, max_connections: int = 64,
                 read_timeout: float = 10.0, stall_after: float = 5.0,
                 loop_thread: threading.Thread | None = None, max_body: int = MAX_BODY) -> None:
        if not isinstance(snapshot_manager, StateSnapshotManager):
            raise TypeError("start_api_server() needs a StateSnapshotManager, got "
                            f"{type(snapshot_manager).__name__}")
        for name, value in (("max_connections", max_connections), ("max_body", max_body)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        for name, fvalue in (("read_timeout", read_timeout), ("stall_after", stall_after)):
            if not isinstance(fvalue, (int, float)) or not fvalue > 0:
                raise ValueError(f"{name} must be a positive number of seconds, got {fvalue!r}")
        if api_token is not None and (not isinstance(api_token, str) or not api_token):
            raise ValueError("api_token must be a non-empty string or None")
        self.snapshot_manager = snapshot_manager
        self.event_queue = event_queue
        self.api_token = api_token
        self.protect_get = protect_get
        self.read_timeout = float(read_timeout)
        self.stall_after = float(stall_after)
        self.loop_thread = loop_thread
        self.max_body = max_body
        self.status_cache = StatusCache()
        self.tick_rate = TickRate()
        first = snapshot_manager.get_snapshot()
        if first is not None:
            self.tick_rate.update(time.monotonic(), first.tick)
        # A per-process tag in ETags: versions restart at 1 with each run, and a
        # client must never get a 304 for a body of a previous run.
        self.etag_prefix = secrets.token_hex(4)
        self._slots = threading.BoundedSemaphore(max_connections)
        self._thread: threading.Thread | None = None
        super().__init__(address, LifeHandler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def process_request(self, request: Any, client_address: Any) -> None:
        # Cap concurrent connections: over the cap, answer 503 at once and close.
        if not self._slots.acquire(blocking=False):
            try:
                body = _json_bytes({"error": "too many concurrent connections; retry later"})
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: "
                                b"application/json\r\nRetry-After: 1\r\nConnection: close\r\n"
                                b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
                                + body)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError, socket.timeout)):
            log.debug("connection from %s ended: %r", client_address, exc)
        else:
            log.exception("unhandled error serving %s", client_address)

    def start(self) -> "LifeServer":
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="life-api", daemon=True)
        self._thread.start()
        return self

    def shutdown(self) -> None:
        """Stop serving, close the listening socket, wait for the serving thread."""
        super().shutdown()
        self.server_close()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)


class LifeHandler(BaseHTTPRequestHandler):
    """Routes: GET /status, /vitals, /health; POST /event.  JSON everywhere."""

    server: LifeServer
    protocol_version = "HTTP/1.1"
    server_version = "Life/1.0"

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # The stdlib calls this for requests it cannot parse: answer in JSON too.
        try:
            status = HTTPStatus(code)
        except ValueError:
            status = HTTPStatus.BAD_REQUEST
        self.close_connection = True
        body = _json_bytes({"error": message or status.phrase})
        self.send_response(status, message)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and code >= 200 and code not in (204, 304):
            self.wfile.write(body)

    GET_ROUTES = ("/status", "/vitals", "/health")
    POST_ROUTES = ("/event",)

    def setup(self) -> None:
        self.timeout = self.server.read_timeout  # a slow client cannot hold a thread forever
        super().setup()
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    def handle(self) -> None:
        try:
            super().handle()
        except (ConnectionError, TimeoutError, socket.timeout) as exc:
            log.debug("client %s: %r", self.client_address, exc)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("%s %s", self.address_string(), format % args)

    # ---- dispatch ----

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def _dispatch(self, method: str) -> None:
        path, _, query = self.path.partition("?")
        try:
            path = urlsplit(path).path or "/"
            if path in self.GET_ROUTES:
                allowed = "GET"
                if method != "GET":
                    raise BadRequest(HTTPStatus.METHOD_NOT_ALLOWED,
                                     f"{method} is not allowed on {path}; use GET",
                                     {"Allow": allowed})
                if self.server.protect_get:
                    self._check_token()
                status, body, headers = getattr(self, "_get_" + path[1:])(query)
            elif path in self.POST_ROUTES:
                if method != "POST":
                    raise BadRequest(HTTPStatus.METHOD_NOT_ALLOWED,
                                     f"{method} is not allowed on {path}; use POST",
                                     {"Allow": "POST"})
                self._check_token()
                status, body, headers = self._post_event()
            else:
                raise BadRequest(HTTPStatus.NOT_FOUND, f"unknown endpoint {path!r}")
        except BadRequest as exc:
            status, body, headers = exc.status, _json_bytes({"error": str(exc)}), exc.headers
        except Exception:
            log.exception("error handling %s %s", method, self.path)
            status, body, headers = (HTTPStatus.INTERNAL_SERVER_ERROR,
                                     _json_bytes({"error": "internal server error"}), {})
        self._send(status, body, headers)

    def _send(self, status: HTTPStatus, body: bytes, headers: dict[str, str]) -> None:
        # The whole response is ready before the status line goes out.
        self.send_response(status)
        if status != HTTPStatus.NOT_MODIFIED:
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if status != HTTPStatus.NOT_MODIFIED and self.command != "HEAD":
            self.wfile.write(body)

    def _check_token(self) -> None:
        token = self.server.api_token
        if token is None:
            return
        given = self.headers.get("X-API-Key")
        auth = self.headers.get("Authorization", "")
        if given is None and auth[:7].lower() == "bearer ":
            given = auth[7:].strip()
        if given is None or not hmac.compare_digest(given.encode(), token.encode()):
            raise BadRequest(HTTPStatus.UNAUTHORIZED, "missing or wrong API token",
                             {"WWW-Authenticate": 'Bearer realm="life"'})

    # ---- GET ----

    def _snapshot(self) -> StateSnapshot:
        snapshot = self.server.snapshot_manager.get_snapshot()
        if snapshot is None:
            raise BadRequest(HTTPStatus.SERVICE_UNAVAILABLE,
                             "no state has been published yet; retry shortly",
                             {"Retry-After": "1"})
        return snapshot

    def _get_status(self, query: str) -> tuple[HTTPStatus, bytes, dict[str, str]]:
        include_optional, limits = parse_status_query(query)
        snapshot = self._snapshot()
        etag = f'"{self.server.etag_prefix}-{snapshot.version}"'
        headers = {"ETag": etag, "Cache-Control": "no-cache",
                   "X-Life-Tick": str(snapshot.tick),
                   "X-Snapshot-Version": str(snapshot.version)}
        if _etag_matches(self.headers.get("If-None-Match"), etag):
            return HTTPStatus.NOT_MODIFIED, b"", headers
        key = (include_optional,) + tuple(sorted((limits or {}).items()))
        body = self.server.status_cache.get(
            snapshot, key, lambda: _json_bytes(snapshot.status_dict(include_optional, limits)))
        return HTTPStatus.OK, body, headers

    def _get_vitals(self, query: str) -> tuple[HTTPStatus, bytes, dict[str, str]]:
        if query:
            raise BadRequest(HTTPStatus.BAD_REQUEST, "/vitals takes no query parameters")
        live = self.server.snapshot_manager.live_vitals_versioned()
        if live is None:
            raise BadRequest(HTTPStatus.SERVICE_UNAVAILABLE,
                             "no state has been published yet; retry shortly",
                             {"Retry-After": "1"})
        version, vitals = live
        body = {"version": version, "vitals": vitals._asdict(),
                "active": vitals.energy > 0 and vitals.integrity > 0 and vitals.stability > 0}
        return HTTPStatus.OK, _json_bytes(body), {"Cache-Control": "no-store"}

    def _get_health(self, query: str) -> tuple[HTTPStatus, bytes, dict[str, str]]:
        if query:
            raise BadRequest(HTTPStatus.BAD_REQUEST, "/health takes no query parameters")
        server = self.server
        snapshot = server.snapshot_manager.get_snapshot()
        queue = server.event_queue
        loop_thread = server.loop_thread
        loop_alive = None if loop_thread is None else loop_thread.is_alive()
        body: dict[str, Any] = {
            "queue_depth": None if queue is None else len(queue),
            "events_dropped": None if queue is None else queue.dropped,
            "loop_alive": loop_alive,
        }
        if snapshot is None:
            body.update(status="starting", tick=None, last_tick_age_s=None, ticks_per_second=None)
            return HTTPStatus.SERVICE_UNAVAILABLE, _json_bytes(body), {"Retry-After": "1"}
        age = max(0.0, time.time() - snapshot.published_at)
        rate = server.tick_rate.update(time.monotonic(), snapshot.tick)
        stalled = age > server.stall_after or loop_alive is False
        body.update(status="stalled" if stalled else "ok", tick=snapshot.tick,
                    snapshot_version=snapshot.version, last_tick_age_s=round(age, 4),
                    ticks_per_second=round(rate, 2))
        if server.persistence_health is not None:  # saves failing: "degraded", still a 200
            body["persistence"] = persisted = server.persistence_health()
            if not stalled and persisted["status"] != "ok":
                body["status"] = "degraded"
        status = HTTPStatus.SERVICE_UNAVAILABLE if stalled else HTTPStatus.OK
        return status, _json_bytes(body), {"Cache-Control": "no-store"}

    # ---- POST ----

    def _post_event(self) -> tuple[HTTPStatus, bytes, dict[str, str]]:
        raw_length = self.headers.get("Content-Length")
        if raw_length is None:
            self.close_connection = True
            raise BadRequest(HTTPStatus.LENGTH_REQUIRED, "Content-Length is required")
        try:
            length = int(raw_length)
            if length < 0:
                raise ValueError
        except ValueError:
            self.close_connection = True
            raise BadRequest(HTTPStatus.BAD_REQUEST,
                             f"bad Content-Length {raw_length!r}") from None
        if length > self.server.max_body:
            self.close_connection = True  # the unread body must not be parsed as a request
            raise BadRequest(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                             f"event body is {length} bytes; the limit is {self.server.max_body}")
        data = self.rfile.read(length)
        queue = self.server.event_queue
        try:
            payload = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            raise BadRequest(HTTPStatus.BAD_REQUEST, "malformed JSON body") from None
        if not isinstance(payload, dict):
            raise BadRequest(HTTPStatus.BAD_REQUEST,
                             "the body must be a JSON object: {\"type\": ..., \"intensity\": ...}")
        unknown = set(payload) - {"type", "intensity", "timestamp", "metadata"}
        if unknown:
            raise BadRequest(HTTPStatus.BAD_REQUEST,
                             f"unknown event field(s) {sorted(unknown)}; allowed: type, "
                             "intensity, timestamp, metadata")
        if "type" not in payload:
            raise BadRequest(HTTPStatus.BAD_REQUEST, "'type' is required")
        try:
            event = Event(type=payload["type"], intensity=payload.get("intensity", 0.0),
                          timestamp=payload.get("timestamp", time.time()),
                          metadata=payload.get("metadata") or {})
        except (TypeError, ValueError) as exc:
            raise BadRequest(HTTPStatus.BAD_REQUEST, f"invalid event: {exc}") from None
        if queue is None:
            raise BadRequest(HTTPStatus.SERVICE_UNAVAILABLE, "no event queue is configured")
        if not queue.push(event):
            raise BadRequest(HTTPStatus.SERVICE_UNAVAILABLE,
                             "the event queue is full; retry later", {"Retry-After": "1"})
        return (HTTPStatus.ACCEPTED,
                _json_bytes({"accepted": True, "type": event.type, "intensity": event.intensity,
                             "queue_depth": len(queue)}), {})


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    tags = [t.strip() for t in header.split(",")]
    return "*" in tags or etag in tags or ("W/" + etag) in tags


def start_api_server(snapshot_manager: StateSnapshotManager, host: str = HOST, port: int = PORT,
                     event_queue: EventQueue | None = None, **options: Any) -> LifeServer:
    """Start the API on `host`:`port` (0 picks a free port) in a daemon thread.

    Returns the running `LifeServer`: ``server.server_address`` / ``server.url``
    tell where it listens, ``server.shutdown()`` stops it and closes the socket.
    Options: ``api_token`` (protects POST; also GET with ``protect_get=True``),
    ``max_connections`` (64), ``read_timeout`` (10 s), ``stall_after`` (5 s,
    /health's threshold), ``loop_thread`` (checked by /health), ``max_body``.
    """
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"port must be an int from 0 to 65535, got {port!r}")
    server = LifeServer((host, port), snapshot_manager, event_queue=event_queue, **options)
    return server.start()


# ---- the main command ------------------------------------------------------

def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0-65535 (0 = any free port), got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m src.main_server_api",
        description="Run Life: the runtime loop (the one writer of the state), snapshot "
                    "persistence and the HTTP API (the readers).  Stops gracefully on "
                    "SIGINT/SIGTERM, saving a final snapshot.")
    p.add_argument("--host", default=HOST, help=f"address to bind (default {HOST}; use 0.0.0.0 "
                   "to expose the API beyond this machine - then set an API token)")
    p.add_argument("--port", type=_port, default=PORT, help=f"port (default {PORT}; 0 = any free)")
    p.add_argument("--tick-interval", type=_positive_float, default=1.0,
                   help="seconds per tick (default 1.0; 0 runs flat out)")
    p.add_argument("--snapshot-period", type=_positive_int, default=10,
                   help="save a snapshot to disk every N ticks (default 10)")
    p.add_argument("--data-dir", default="data",
                   help="folder for snapshots (<data-dir>/snapshots; default ./data)")
    p.add_argument("--keep-snapshots", type=_positive_int, default=20,
                   help="snapshot files to keep (default 20)")
    p.add_argument("--max-snapshot-bytes", type=_positive_int, default=16 * 2**20,
                   help="larger snapshot files are not loaded (default 16 MiB)")
    p.add_argument("--memory-cap", type=_positive_int, default=50,
                   help="memory entries kept (default 50)")
    p.add_argument("--seed", type=int, default=None, help="seed of the event generator")
    p.add_argument("--no-generator", action="store_true",
                   help="no random environment events: only POSTed ones")
    p.add_argument("--event-rate", type=_positive_float, default=0.67,
                   help="mean generated events per tick (default 0.67, as the original)")
    p.add_argument("--queue-size", type=_positive_int, default=100,
                   help="event queue capacity (default 100; a full queue drops events)")
    p.add_argument("--api-token", default=None,
                   help=f"token required for POST (default: ${TOKEN_ENV}, else none); "
                        "prefer the environment variable, command lines are visible to "
                        "other users")
    p.add_argument("--protect-get", action="store_true",
                   help="require the API token for GET endpoints too")
    p.add_argument("--max-connections", type=_positive_int, default=64,
                   help="concurrent connections served (default 64; more get 503)")
    p.add_argument("--read-timeout", type=_positive_float, default=10.0,
                   help="seconds a connection may stay idle mid-request (default 10)")
    p.add_argument("--log-level", default="INFO",
                   choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="default INFO")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the application until SIGINT/SIGTERM; returns the exit status."""
    from src.environment.generator import EventGenerator
    from src.runtime.loop import FLUSH_TIMEOUT, run_loop
    from src.state.data_dir import DataDirError, open_data_dir
    from src.state.persistence import FinalSaveError, SnapshotPersistence, load_latest

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    token = args.api_token if args.api_token is not None else os.environ.get(TOKEN_ENV) or None
    data_dir = Path(args.data_dir)
    try:  # checked, and locked for as long as this process runs (the kernel drops it at exit)
        data_lock = open_data_dir(data_dir)  # noqa: F841 - held, not used
    except DataDirError as exc:
        log.error("%s", exc)
        return 2

    state, path = load_latest(data_dir, memory_cap=args.memory_cap,
                              max_bytes=args.max_snapshot_bytes)
    persistence = SnapshotPersistence(data_dir, keep=args.keep_snapshots,
                                      max_bytes=args.max_snapshot_bytes)
    if path is None:
        log.info("starting a fresh state (life_id %s)", state.life_id)
    else:
        log.info("resumed from %s at tick %d", path, state.ticks)
    manager = StateSnapshotManager()
    manager.update_snapshot(state)  # /status answers before the first tick
    queue = EventQueue(args.queue_size)
    stop = threading.Event()
    generator = None if args.no_generator else EventGenerator(seed=args.seed,
                                                              rate=args.event_rate)
    outcome: dict[str, Any] = {}

    def loop_body() -> None:
        try:
            outcome["summary"] = run_loop(
                state, tick_interval=args.tick_interval, snapshot_period=args.snapshot_period,
                stop_event=stop, event_queue=queue, snapshot_manager=manager,
                persistence=persistence, generator=generator)
        except BaseException as exc:  # reported by main(); the server keeps answering /health
            outcome["error"] = exc
            log.exception("the runtime loop stopped with an error")
            stop.set()

    loop_thread = threading.Thread(target=loop_body, name="life-loop")
    try:
        server = start_api_server(manager, args.host, args.port, queue, api_token=token,
                                  protect_get=args.protect_get,
                                  max_connections=args.max_connections,
                                  read_timeout=args.read_timeout,
                                  stall_after=max(5.0, 5 * args.tick_interval),
                                  loop_thread=loop_thread)
    except OSError as exc:
        log.error("cannot listen on %s:%s: %s", args.host, args.port, exc)
        return 2
    server.persistence_health = persistence.health

    def request_stop(signum: int, frame: Any) -> None:
        log.info("received %s: stopping", signal.Signals(signum).name)
        stop.set()

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, request_stop)
    loop_thread.start()
    log.info("Life API listening on %s (tick %.3g s, snapshots every %d ticks in %s%s)",
             server.url, args.tick_interval, args.snapshot_period, data_dir / "snapshots",
             ", POST needs a token" if token else "")
    try:
        while not stop.wait(0.5):
            pass
    finally:
        stop.set()
        loop_thread.join()
        server.shutdown()
    try:
        final_path = persistence.finish(FLUSH_TIMEOUT)
    except FinalSaveError as exc:  # the final state is not on disk: not a clean stop
        log.error("%s", exc)
        outcome.setdefault("error", exc)
        final_path = None
    summary = outcome.get("summary")
    if summary is not None:
        log.info("stopped at tick %d after %d ticks (%d with errors); last snapshot on disk: %s",
                 summary.last_tick, summary.ticks, summary.errors, final_path or "none")
    return 1 if "error" in outcome else 0


if __name__ == "__main__":
    sys.exit(main())
