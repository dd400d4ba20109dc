"""Deadlines on each connection's phases, enforced by one watchdog thread.

A socket timeout bounds one ``recv``; a client that drips a byte a second
resets it forever (slowloris) and holds a connection slot - with a few dozen
sockets, every slot.  So each connection is in one phase at a time, and the
phases that wait on the client have a deadline for the whole phase:

- ``idle``: a keep-alive connection waiting for its next request to start
  (`idle_timeout`, the shortest: closed quietly when it passes);
- ``head``: the request line and headers arriving (`head_timeout`, from the
  first byte; a 408 when it passes);
- ``body``: the request body arriving (`body_timeout`; a 408);
- ``busy``: the server handling the request: no deadline of the client's.

The watchdog closes an expired connection with ``shutdown()``, which makes the
handler thread's blocked ``recv`` return at once.  When every slot is taken,
the server evicts the connection that has waited longest in ``idle`` or
``head`` (`evict_oldest_waiting`): a drip-feeder never keeps out a client that
sends its request promptly, and a request being handled is never cut.
"""

from __future__ import annotations

import logging
import math
import socket
import threading
import time

from .errors import json_bytes

__all__ = ["ConnectionDeadlines", "IDLE", "HEAD", "BODY", "BUSY"]

log = logging.getLogger(__name__)

IDLE, HEAD, BODY, BUSY = "idle", "head", "body", "busy"
_WAITING_ON_CLIENT = (IDLE, HEAD)

_TIMEOUT_BODY = json_bytes({"error": "the request did not arrive in time"})
_TIMEOUT_RESPONSE = (b"HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\n"
                     b"Connection: close\r\nContent-Length: " + str(len(_TIMEOUT_BODY)).encode()
                     + b"\r\n\r\n" + _TIMEOUT_BODY)


class ConnectionDeadlines:
    """Phase and deadline of every open connection; a daemon thread closes expired ones."""

    def __init__(self, *, idle_timeout: float, head_timeout: float, body_timeout: float) -> None:
        for name, value in (("idle_timeout", idle_timeout), ("head_timeout", head_timeout),
                            ("body_timeout", body_timeout)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a finite number of seconds > 0, got {value!r}")
        self._timeouts = {IDLE: float(idle_timeout), HEAD: float(head_timeout),
                          BODY: float(body_timeout), BUSY: math.inf}
        self._lock = threading.Lock()
        # socket -> (phase, deadline, since): `since` orders eviction (longest waiting first)
        self._conns: dict[socket.socket, tuple[str, float, float]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.expired = 0   # connections closed by a deadline (a statistic for tests)
        self.evicted = 0   # connections closed to admit a new one

    def enter(self, sock: socket.socket, phase: str) -> None:
        """`sock` is now in `phase`; its deadline is that phase's timeout from now."""
        now = time.monotonic()
        with self._lock:
            self._conns[sock] = (phase, now + self._timeouts[phase], now)

    def leave(self, sock: socket.socket) -> None:
        with self._lock:
            self._conns.pop(sock, None)

    def evict_oldest_waiting(self) -> bool:
        """Close the connection waiting longest on its client (idle or head); False if none."""
        with self._lock:
            waiting = [(since, sock) for sock, (phase, _, since) in self._conns.items()
                       if phase in _WAITING_ON_CLIENT]
            if not waiting:
                return False
            _, sock = min(waiting, key=lambda item: item[0])
            phase = self._conns.pop(sock)[0]
            self.evicted += 1
        log.debug("connection cap reached: closing a connection waiting in %s", phase)
        _close(sock, answer=phase == HEAD)
        return True

    def start(self) -> None:
        self._thread = threading.Thread(target=self._watch, name="life-api-deadlines",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _watch(self) -> None:
        # Wakes at the earliest deadline (at most every 0.25 s, so a deadline set
        # after it went to sleep is at most that late).
        while True:
            now = time.monotonic()
            expired: list[tuple[socket.socket, str]] = []
            with self._lock:
                for sock, (phase, deadline, _) in list(self._conns.items()):
                    if deadline <= now:
                        del self._conns[sock]
                        expired.append((sock, phase))
                earliest = min((d for _, d, _ in self._conns.values()), default=math.inf)
                self.expired += len(expired)
            for sock, phase in expired:
                log.debug("closing a connection whose %s phase passed its deadline", phase)
                _close(sock, answer=phase in (HEAD, BODY))
            if self._stop.wait(max(0.01, min(earliest - now, 0.25))):
                return


def _close(sock: socket.socket, *, answer: bool) -> None:
    """Shut `sock` down (its handler's blocked recv returns), with a 408 if a request was arriving."""
    try:
        if answer:  # never blocks: a client that does not read just misses the 408
            sock.send(_TIMEOUT_RESPONSE, socket.MSG_DONTWAIT)
    except OSError:
        pass
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
