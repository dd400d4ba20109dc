"""`EventQueue`: the bounded hand-off from event producers to the runtime loop.

Producers (HTTP handler threads, the generator) call `push`; the loop calls
`pop_all` once per tick.  `push` never blocks: when the queue holds `maxsize`
events the new one is dropped, counted in `dropped` and False is returned (a
warning is logged on the first drop after each `pop_all`, not for every one).
Every method is thread-safe; each holds one short lock (no I/O, no waiting).
"""

from __future__ import annotations

import logging
import threading

from src.validation import positive_int

from .event import Event

__all__ = ["EventQueue", "EventSinkUnavailable"]

logger = logging.getLogger(__name__)


class EventSinkUnavailable(Exception):
    """Raised by a remote event sink's ``push`` that cannot reach its queue now.

    The in-process `EventQueue` never raises it; a follower's sink (the Redis
    bridge) does when Redis is unreachable.  The message says why.
    """


class EventQueue:
    """A bounded FIFO of `Event`s (default `maxsize` 100) that drops, never blocks, when full."""

    __slots__ = ("_maxsize", "_items", "_lock", "_dropped", "_warned")

    def __init__(self, maxsize: int = 100) -> None:
        self._maxsize = positive_int("maxsize", maxsize)
        self._items: list[Event] = []
        self._lock = threading.Lock()
        self._dropped = 0
        self._warned = False

    @property
    def maxsize(self) -> int:
        return self._maxsize

    def push(self, event: Event) -> bool:
        """Queue `event`; False (and ``dropped`` + 1) if the queue is full.  Never blocks."""
        if not isinstance(event, Event):
            raise TypeError(f"EventQueue.push() takes an Event, got {event!r}")
        with self._lock:
            if len(self._items) < self._maxsize:
                self._items.append(event)
                return True
            self._dropped += 1
            warn, self._warned = not self._warned, True
        if warn:
            logger.warning("event queue full (%d events): dropping %s events until the loop "
                           "takes them (see EventQueue.dropped)", self._maxsize, event.type)
        return False

    def pop_all(self) -> list[Event]:
        """Every queued event, oldest first, leaving the queue empty (the loop's call)."""
        with self._lock:
            items = self._items
            if not items:
                return []
            self._items = []
            self._warned = False
        return items

    def pop(self) -> Event | None:
        """The oldest event, or None when the queue is empty."""
        with self._lock:
            return self._items.pop(0) if self._items else None

    # Reads take the lock too: `_items` is replaced by pop_all, and a __slots__
    # read racing a replacement is not safe on free-threaded 3.13.
    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def is_empty(self) -> bool:
        return len(self) == 0

    @property
    def dropped(self) -> int:
        """Events dropped because the queue was full, since creation or `reset_dropped`."""
        with self._lock:
            return self._dropped

    def reset_dropped(self) -> int:
        """Set the drop counter to 0 and return its previous value."""
        with self._lock:
            n, self._dropped = self._dropped, 0
        return n

    def __repr__(self) -> str:
        return f"<EventQueue {len(self)}/{self._maxsize} dropped={self.dropped}>"
