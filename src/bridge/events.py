"""Events POSTed on followers, carried to the origin through a bounded Redis stream.

- `RedisEventSink` (a follower's ``event_queue``): ``push(event)`` appends the
  already validated event to ``<prefix>:events`` with one atomic script that
  refuses when the stream holds `maxlen` entries (False: the API answers 503
  with Retry-After) and raises `EventSinkUnavailable` when Redis cannot be
  reached (also a 503).  Nothing is dropped silently: a refused event is the
  client's to retry.  Every process that answers ``POST /event`` has its
  own sink (a follower's workers find the stream through `sink_from_env`),
  so the check for room and the append are one step however many
  processes push.
- `RedisEventDrain` (the origin, its own thread): ``XREAD BLOCK`` from that
  stream, each entry validated again (`Event`) and pushed into the origin's
  `EventQueue`, then ``XDEL``-ed.  It reads at most as many entries as the
  queue has room for, so when the origin's loop falls behind the stream
  fills and followers get 503s rather than the origin dropping events.

The stream only ever holds events not yet taken by the origin: its length
is the backlog, bounded by `maxlen`.  The origin stays the only writer of
the state.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from typing import Any

from src.environment.event import Event
from src.environment.event_queue import EventQueue, EventSinkUnavailable

from .connection import DEFAULT_PREFIX, BridgeError, Keys, connect, import_redis, mask_url
from src.ratelog import RateLimitedLog

__all__ = ["RedisEventSink", "RedisEventDrain", "DEFAULT_EVENTS_MAX", "EVENTS_URL_ENV",
           "EVENTS_PREFIX_ENV", "EVENTS_MAX_ENV", "sink_from_env"]

logger = logging.getLogger(__name__)

DEFAULT_EVENTS_MAX = 1000  # events waiting in Redis for the origin, at most
# A follower's API processes (its --workers, uvicorn/granian workers) each push
# through their own sink; they find the stream here.  The URL travels in the
# environment, never in argv, so its password does not show in `ps`.
EVENTS_URL_ENV = "LIFE_REDIS_EVENTS_URL"
EVENTS_PREFIX_ENV = "LIFE_REDIS_PREFIX"
EVENTS_MAX_ENV = "LIFE_REDIS_EVENTS_MAX"
_FIELDS = ("type", "intensity", "timestamp", "metadata")
_DRAIN_BLOCK = 1.0
_MAX_BACKOFF = 2.0

# Append ARGV[2] unless the stream already holds ARGV[1] entries; the new length, or -1.
# One script, so the check and the append cannot interleave with another follower's.
_ADD_IF_ROOM = """
local n = redis.call('XLEN', KEYS[1])
if n >= tonumber(ARGV[1]) then return -1 end
redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[1], '*', 'e', ARGV[2])
return n + 1
"""


class RedisEventSink:
    """A follower's event queue: events go to the origin through Redis (see the module doc)."""

    def __init__(self, url: str, keys: Keys, maxlen: int = DEFAULT_EVENTS_MAX) -> None:
        self._redis = import_redis()
        self._url = url
        self._keys = keys
        self._maxlen = maxlen
        self._client = connect(url, reply_timeout=1.0)
        self._add = self._client.register_script(_ADD_IF_ROOM)
        self._errors = RateLimitedLog(logger)
        self._depth = 0
        self._refused = 0

    @property
    def maxsize(self) -> int:
        return self._maxlen

    def push(self, event: Event) -> bool:
        """Send `event` to the origin; False if the stream is full; EventSinkUnavailable if down."""
        payload = json.dumps(event.to_dict(), separators=(",", ":"), allow_nan=False)
        try:
            depth = int(self._add(keys=[self._keys.events], args=[self._maxlen, payload]))
        except self._redis.RedisError as exc:
            self._refused += 1
            self._errors.log(logging.WARNING, "push", "Redis bridge: cannot send an event to %s: "
                             "%s", mask_url(self._url), type(exc).__name__)
            raise EventSinkUnavailable("the origin's event stream in Redis cannot be "
                                       "reached") from None
        if depth < 0:
            self._refused += 1
            self._depth = self._maxlen
            return False
        self._depth = depth
        return True

    def __len__(self) -> int:
        """The stream's length at this sink's last push (the origin's backlog then)."""
        return self._depth

    @property
    def dropped(self) -> int:
        """Events refused (stream full or Redis unreachable): answered 503, never lost quietly."""
        return self._refused

    def close(self) -> None:
        self._client.close()


def sink_from_env(environ: Mapping[str, str]) -> RedisEventSink | None:
    """The sink named by `EVENTS_URL_ENV` & co. in `environ`; None if that is unset.

    BridgeError for a bad URL, prefix or maximum (nothing is sent yet: a
    Redis that is down now is a 503 per event, not a start-up failure).
    """
    url = environ.get(EVENTS_URL_ENV)
    if not url:
        return None
    raw_max = environ.get(EVENTS_MAX_ENV, str(DEFAULT_EVENTS_MAX))
    try:
        maxlen = int(raw_max)
    except ValueError:
        maxlen = 0
    if not 1 <= maxlen <= 10_000_000:
        raise BridgeError(f"${EVENTS_MAX_ENV}: expected an integer from 1 to 10000000, "
                          f"got {raw_max!r}")
    prefix = environ.get(EVENTS_PREFIX_ENV, DEFAULT_PREFIX)
    try:
        keys = Keys(prefix)
    except BridgeError:
        raise BridgeError(f"${EVENTS_PREFIX_ENV}: expected 1-64 letters, digits, '_', '-' or "
                          f"'.', got {prefix!r}") from None
    return RedisEventSink(url, keys, maxlen)


class RedisEventDrain:
    """The origin's thread moving follower events from Redis into `queue` (see the module doc)."""

    def __init__(self, url: str, keys: Keys, queue: EventQueue) -> None:
        self._redis = import_redis()
        self._url = url
        self._keys = keys
        self._queue = queue
        self._client = connect(url, reply_timeout=_DRAIN_BLOCK + 2.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name="life-redis-events",
                                        daemon=True)
        self._errors = RateLimitedLog(logger)
        self._last_id: bytes | str = "0-0"  # taken entries are deleted: start at the oldest
        self.received = 0   # events pushed into the queue
        self.rejected = 0   # entries that failed validation here

    def start(self) -> RedisEventDrain:
        self._thread.start()
        return self

    def close(self, timeout: float = _DRAIN_BLOCK + 3.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._client.close()

    def _main(self) -> None:
        backoff = 0.0
        while not self._stop.is_set():
            room = self._queue.maxsize - len(self._queue)
            if backoff or room <= 0:  # the loop has not taken the last batch yet
                self._stop.wait(backoff or 0.02)
                if room <= 0:
                    continue
            try:
                self._drain(room)
                if backoff:
                    self._errors.reset("drain")
                backoff = 0.0
            except self._redis.RedisError as exc:
                self._errors.log(logging.WARNING, "drain", "Redis bridge: cannot read follower "
                                 "events from %s: %s", mask_url(self._url), type(exc).__name__)
                backoff = min(_MAX_BACKOFF, max(0.05, backoff * 2))

    def _drain(self, room: int) -> None:
        reply = self._client.xread({self._keys.events: self._last_id}, count=min(room, 100),
                                   block=int(_DRAIN_BLOCK * 1000))
        if not reply:
            return
        ids = []
        for entry_id, fields in reply[0][1]:
            ids.append(entry_id)
            event = self._event(fields.get(b"e", b""))
            if event is not None and self._queue.push(event):
                self.received += 1
        self._client.xdel(self._keys.events, *ids)
        self._last_id = ids[-1]

    def _event(self, raw: bytes) -> Event | None:
        """The entry validated again, as the origin's API would; None (logged) if it is not."""
        try:
            data: Any = json.loads(raw)
            if not isinstance(data, dict) or "type" not in data or set(data) - set(_FIELDS):
                raise ValueError(f"not an event object: {raw[:80]!r}")
            return Event(type=data["type"], intensity=data.get("intensity", 0.0),
                         timestamp=data.get("timestamp", 0.0),
                         metadata=data.get("metadata") or {})
        except (TypeError, ValueError, UnicodeDecodeError) as exc:
            self.rejected += 1
            self._errors.log(logging.WARNING, "reject",
                             "Redis bridge: dropping an invalid follower event: %s", exc)
            return None

    def health(self) -> dict[str, Any]:
        return {"events_received": self.received, "events_rejected": self.rejected}
