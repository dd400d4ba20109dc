"""The Life API's HTTP server lifecycle: `LifeServer` and `start_api_server`.

Built on the standard library's ``ThreadingHTTPServer`` (a thread per
connection), with the traps of that server handled here and in
`src.api.handler`: a cap on concurrent connections (answered 503 at once), a
read timeout per connection, client resets logged at debug level instead of
a traceback per connection, and a clean shutdown that closes the socket and
joins the serving thread.  The request logic is `src.api.routes.LifeApi`.
"""

from __future__ import annotations

import logging
import socket
import sys
import threading
from http.server import ThreadingHTTPServer
from typing import Any

from src.environment.event_queue import EventQueue
from src.state.snapshot_manager import StateSnapshotManager
from src.validation import is_int, is_number, positive_int

from .cache import StatusCache
from .deadlines import HEAD, ConnectionDeadlines
from .errors import json_bytes
from .handler import LifeHandler
from .routes import LifeApi

__all__ = ["LifeServer", "start_api_server", "HOST", "PORT"]

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
PORT = 8000


class LifeServer(ThreadingHTTPServer):
    """`ThreadingHTTPServer` serving a `LifeApi`, with a connection cap and a read timeout.

    Keyword options: ``max_connections`` (64; more get an immediate 503),
    ``read_timeout`` (10 s a connection may stay silent mid-request),
    ``request_timeout`` (10 s for a request's head, and again for its body,
    however its bytes are paced), ``keepalive_timeout`` (5 s idle between
    requests); the rest
    (``vitals``, ``event_queue``, ``api_token``, ``protect_get``,
    ``stall_after``, ``loop_thread``, ``max_body``) go to `LifeApi`.
    """

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], snapshot_manager: StateSnapshotManager, *,
                 max_connections: int = 64, read_timeout: float = 10.0,
                 request_timeout: float = 10.0, keepalive_timeout: float = 5.0,
                 api: LifeApi | None = None, reuse_port: bool = False,
                 **api_options: Any) -> None:
        # The request logic first: its argument errors come before a socket is bound.
        # `api`: a ready `LifeApi` (a worker's `SharedLifeApi`) instead of one built here.
        self.api = LifeApi(snapshot_manager, **api_options) if api is None else api
        # SO_REUSEPORT: several worker processes listen on one port (the kernel
        # spreads the new connections across them).
        self.allow_reuse_port = reuse_port
        positive_int("max_connections", max_connections)
        if not is_number(read_timeout) or not read_timeout > 0:
            raise ValueError(f"read_timeout must be a positive number of seconds, "
                             f"got {read_timeout!r}")
        self.read_timeout = float(read_timeout)
        # Whole-phase deadlines (slowloris): the head, and separately the body,
        # within request_timeout; an idle keep-alive connection within keepalive_timeout.
        self.deadlines = ConnectionDeadlines(idle_timeout=keepalive_timeout,
                                             head_timeout=request_timeout,
                                             body_timeout=request_timeout)
        self._slots = threading.BoundedSemaphore(max_connections)
        self._thread: threading.Thread | None = None
        super().__init__(address, LifeHandler)

    @property
    def snapshot_manager(self) -> StateSnapshotManager:
        return self.api.snapshot_manager

    @property
    def event_queue(self) -> EventQueue | None:
        return self.api.event_queue

    @property
    def status_cache(self) -> StatusCache:
        return self.api.status_cache

    @property
    def persistence_health(self) -> Any:
        """The callable whose dict ``/health`` reports as ``persistence`` (or None)."""
        return self.api.persistence_health

    @persistence_health.setter
    def persistence_health(self, health: Any) -> None:
        self.api.persistence_health = health

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"  # an AF_INET(6) server: host is a str

    def process_request(self, request: Any, client_address: Any) -> None:
        # Cap concurrent connections.  At the cap, close the connection that has
        # waited longest on its client (idle, or a head still arriving) and take
        # its slot; only if every connection is being served, answer 503.
        if not self._slots.acquire(blocking=False) and not (
                self.deadlines.evict_oldest_waiting() and self._slots.acquire(timeout=1.0)):
            try:
                body = json_bytes({"error": "too many concurrent connections; retry later"})
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: "
                                b"application/json\r\nRetry-After: 1\r\nConnection: close\r\n"
                                b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
                                + body)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        # Waiting on its head from the moment it is accepted, before its thread
        # runs: else a newcomer at the cap finds no one to evict and gets a 503.
        self.deadlines.enter(request, HEAD)
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.deadlines.leave(request)
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
        self.deadlines.start()
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="life-api", daemon=True)
        self._thread.start()
        return self

    def shutdown(self) -> None:
        """Stop serving, close the listening socket, wait for the serving thread."""
        super().shutdown()
        self.deadlines.stop()
        self.server_close()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)


def start_api_server(snapshot_manager: StateSnapshotManager, host: str = HOST, port: int = PORT,
                     event_queue: EventQueue | None = None, **options: Any) -> LifeServer:
    """Start the API on `host`:`port` (0 picks a free port) in a daemon thread.

    Returns the running `LifeServer`: ``server.server_address`` / ``server.url``
    tell where it listens, ``server.shutdown()`` stops it and closes the socket.
    Options: ``vitals`` (the live record /vitals reads, ``state.vitals``;
    without it /vitals serves the last published vitals), ``api_token``
    (protects POST; also GET with ``protect_get=True``), ``max_connections``
    (64), ``read_timeout`` (10 s), ``stall_after`` (5 s, /health's threshold),
    ``loop_thread`` (checked by /health), ``max_body``.
    """
    if not is_int(port) or not 0 <= port <= 65535:
        raise ValueError(f"port must be an int from 0 to 65535, got {port!r}")
    server = LifeServer((host, port), snapshot_manager, event_queue=event_queue, **options)
    return server.start()
