"""`MirroredSnapshot`: a follower's snapshot of an origin's version, its state decoded on demand.

A follower serves most requests - a plain ``GET /status`` (the origin's body,
carried as `plain_status_body`, which the API serves as that version's body),
``/health`` - from an entry's small fields alone.  Rebuilding the whole state (`codec.decode_frozen`, every value
validated: ~2 ms for a full one) is only needed for a ``/status`` query with
limits or ``/vitals``, so it is done by the first reader that asks, once per
version, and never for versions nobody queried.  That keeps the follower's
thread (and its lag) free of the one costly step, and its CPU for its readers.

It is a `StateSnapshot` (the API and the snapshot manager take it as one)
whose `state` is a property: the raw bytes are decoded under a lock by one
thread, the others wait for its result.  A state that fails to decode raises
ValueError to each reader (the request fails; the origin and the follower
run the same format, so this means a corrupted entry).
"""

from __future__ import annotations

import threading

from src.state.frozen import FrozenState
from src.state.snapshot_manager import StateSnapshot

from .codec import Header, decode_frozen

__all__ = ["MirroredSnapshot"]


class MirroredSnapshot(StateSnapshot):
    """The origin's version `header`, its plain ``/status`` `body`, its state `raw` (decoded when read)."""

    __slots__ = ("_header", "_raw", "_frozen", "_error", "_lock", "plain_status_body")
    plain_status_body: bytes
    _header: Header
    _raw: bytes
    _frozen: FrozenState | None
    _error: str | None
    _lock: threading.Lock

    def __init__(self, header: Header, raw: bytes, body: bytes) -> None:  # not the dataclass's
        put = object.__setattr__  # frozen: the parent's fields, set once here
        put(self, "version", header.version)
        put(self, "published_at", header.published_at)
        put(self, "origin", header.run)
        put(self, "_header", header)
        put(self, "_raw", raw)
        put(self, "_frozen", None)
        put(self, "_error", None)
        put(self, "_lock", threading.Lock())
        put(self, "plain_status_body", body)  # the origin's bytes of a plain GET /status

    @property  # type: ignore[override]
    def state(self) -> FrozenState:
        frozen = self._frozen
        if frozen is not None:
            return frozen
        with self._lock:
            if self._frozen is None:
                if self._error is not None:
                    raise ValueError(self._error)
                try:
                    object.__setattr__(self, "_frozen", decode_frozen(self._header, self._raw))
                except ValueError as exc:
                    object.__setattr__(self, "_error", str(exc))
                    raise
                object.__setattr__(self, "_raw", b"")  # decoded: the bytes are not needed
            assert self._frozen is not None
            return self._frozen

    @property
    def tick(self) -> int:
        """The origin's tick, from the entry's header (no decoding)."""
        return self._header.tick

    @property
    def decoded(self) -> bool:
        return self._frozen is not None

    def __repr__(self) -> str:
        return (f"<MirroredSnapshot version={self.version} tick={self.tick} "
                f"origin={self.origin} decoded={self.decoded}>")
