"""The bounded, non-blocking channel from API processes to the loop's event queue.

A Unix datagram socket in the abstract namespace (``\\0<name>-events``: no
file to leave behind, and the kernel frees the name when the loop's process
dies).  The loop's process binds it (`EventReceiver`, one thread that moves
each datagram into the bounded `EventQueue`); any API process sends to it
(`EventSender`).  A send never blocks: when the receiver's buffer is full the
kernel answers EAGAIN, which the sender reports as full (the API's 503 with
Retry-After).  One datagram is one event, as JSON; the receiver validates it
again before it reaches the loop.
"""

from __future__ import annotations

import errno
import json
import logging
import socket
import threading
from typing import Any

from src.environment.event import Event
from src.environment.event_queue import EventQueue

__all__ = ["EventSender", "EventReceiver", "channel_address", "ChannelFull", "ChannelDown",
           "MAX_DATAGRAM"]

log = logging.getLogger(__name__)

MAX_DATAGRAM = 64 * 1024


class ChannelFull(Exception):
    """The loop's receive buffer is full: retry later."""


class ChannelDown(Exception):
    """Nothing is bound at the channel's address (the loop's process is not running)."""


def channel_address(name: str) -> bytes:
    """The abstract-namespace address of instance `name`'s channel."""
    return b"\0" + f"{name}-events".encode()


def event_payload(event: Event) -> bytes:
    return json.dumps({"type": event.type, "intensity": event.intensity,
                       "timestamp": event.timestamp, "metadata": dict(event.metadata)},
                      separators=(",", ":"), allow_nan=False).encode()


class EventSender:
    """Sends events to the loop; `send` raises `ChannelFull` or `ChannelDown`, never blocks."""

    def __init__(self, name: str) -> None:
        self.address = channel_address(name)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.setblocking(False)
        self._lock = threading.Lock()

    def send(self, event: Event) -> None:
        data = event_payload(event)
        try:
            with self._lock:
                self._sock.sendto(data, self.address)
        except (BlockingIOError, InterruptedError):
            raise ChannelFull("the loop's event channel is full") from None
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.ENOBUFS):
                raise ChannelFull("the loop's event channel is full") from None
            if exc.errno in (errno.ECONNREFUSED, errno.ENOENT):
                raise ChannelDown("the loop is not running") from None
            raise

    def close(self) -> None:
        self._sock.close()


class EventReceiver:
    """The loop process's end: a thread moving datagrams into `queue` (re-validated)."""

    def __init__(self, name: str, queue: EventQueue, *, buffer_bytes: int = 256 * 1024) -> None:
        self.address = channel_address(name)
        self.queue = queue
        self.received = 0
        self.rejected = 0
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buffer_bytes)
            self._sock.bind(self.address)
        except OSError:
            self._sock.close()
            raise
        self._sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="life-events", daemon=True)

    def start(self) -> EventReceiver:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._sock.recv(MAX_DATAGRAM)
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                log.exception("event channel: receive failed")
                continue
            event = self._decode(data)
            if event is None:
                self.rejected += 1
                continue
            self.received += 1
            self.queue.push(event)  # a full queue drops it and counts it (EventQueue.dropped)

    @staticmethod
    def _decode(data: bytes) -> Event | None:
        try:
            payload: Any = json.loads(data)
            if not isinstance(payload, dict) or set(payload) - {"type", "intensity",
                                                                 "timestamp", "metadata"}:
                raise ValueError("not an event object")
            return Event(type=payload["type"], intensity=payload.get("intensity", 0.0),
                         timestamp=payload["timestamp"], metadata=payload.get("metadata") or {})
        except (ValueError, TypeError, KeyError, UnicodeDecodeError) as exc:
            log.warning("event channel: dropped an invalid datagram (%s)", exc)
            return None

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2)
        self._sock.close()
