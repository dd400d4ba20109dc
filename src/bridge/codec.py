"""One published version as a Redis stream entry, and back: the bridge's wire format.

An entry's fields (all bytes):

- ``v``: the snapshot version (decimal); ``run``: the origin's run tag (the
  prefix of its ETags; a restarted origin has a new one); ``t``: the origin's
  ``published_at`` (``repr`` of the float, exact); ``tick``.
- ``body``: the plain ``GET /status`` body, exactly the origin's bytes.
- ``state``: JSON ``{"format": 1, "vitals_version", "caps", "state"}`` with
  ``state`` in the persistence format (`src.state.state_format`): what a
  follower needs to answer any ``/status`` query (limits, include_optional)
  and ``/vitals`` as the origin would for that version.

`decode_header` reads the four small fields only, so a follower can drop an
entry it will not serve without parsing its state.  `decode_frozen` rebuilds
the state through `SelfState.from_dict` (every value validated);
`decode_snapshot` returns a `StateSnapshot` with the origin's version, time
and tag at once, `src.bridge.mirror.MirroredSnapshot` the same lazily.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from src.api.errors import json_bytes
from src.state.frozen import FrozenState
from src.state.memory import MemoryEntry
from src.state.self_state import SelfState
from src.state.snapshot_manager import StateSnapshot
from src.state.state_format import LARGE_PARTS, encode_state

__all__ = ["FORMAT", "Header", "EntryEncoder", "encode_entry", "decode_header", "decode_frozen",
           "decode_snapshot"]

FORMAT = 1
_CAP_NAMES = ("memory_cap", "recent_events_cap", "history_cap", "adaptation_history_cap")


class Header(NamedTuple):
    """The small fields of an entry: enough to decide whether to serve it."""

    version: int
    run: str
    published_at: float
    tick: int


# Parts of a state that stay the same object while unchanged (frozen dicts are, until the
# next write): their JSON is reused from version to version.
_REUSED = ("planning", "intelligence", "learning_params", "adaptation_params")


# The logs: a new entry most ticks (the float histories every tick), so rarely the same
# view twice, but all of their 32-entry chunks except the newest (and the oldest, being
# trimmed) are the same tuples from version to version: each chunk's JSON is reused.
# How an entry is written where it is not JSON as it stands (None: as it stands).
_CHUNKED: dict[str, Callable[[Any], Any] | None] = {
    "recent_events": None, "energy_history": None, "stability_history": None,
    "memory": MemoryEntry.to_dict, "adaptation_history": None}
_SKIPPED = frozenset(_REUSED) | frozenset(_CHUNKED)


class EntryEncoder:
    """Encodes versions of one state; the JSON of parts unchanged since the last one is reused.

    One publisher thread owns it.  The vitals are encoded every time; the
    parameter dicts only when they changed; the logs (memory, events,
    histories: in a live state most of the bytes, the adaptation history
    alone ~half) a chunk at a time, only the chunks that are new or partial
    (`LogView.chunks`), so a version costs the size of what changed, not of
    the state.  The result parses to exactly ``encode_state``'s dict.
    """

    def __init__(self, caps: Mapping[str, int]) -> None:
        self._caps = {name: caps[name] for name in _CAP_NAMES}
        self._parts: dict[str, tuple[object, bytes]] = {}
        # Per history: id(chunk) -> (chunk, its JSON without brackets), for the chunks
        # of the last version only (the tuple is held, so its id cannot be reused).
        self._chunks: dict[str, dict[int, tuple[tuple[Any, ...], bytes]]] = {}

    def encode(self, snapshot: StateSnapshot, run: str, body: bytes) -> dict[bytes, bytes]:
        """The stream fields of `snapshot` (the publisher's thread, never the loop)."""
        frozen = snapshot.state
        data = encode_state(frozen, _SKIPPED)  # the scalars: the large parts come below
        reused = []
        for key in _REUSED:
            source = getattr(frozen, key)
            cached = self._parts.get(key)
            if cached is None or cached[0] is not source:
                cached = (source, json_bytes(LARGE_PARTS[key](frozen)))
                self._parts[key] = cached
            reused.append(b'"%s":%s' % (key.encode(), cached[1]))
        for key in _CHUNKED:
            reused.append(b'"%s":%s' % (key.encode(), self._chunked(key, getattr(frozen, key))))
        state = json_bytes(data)[:-1] + b"," + b",".join(reused) + b"}"
        head = json_bytes({"format": FORMAT, "vitals_version": frozen.vitals_version,
                           "caps": self._caps})
        return {b"v": str(snapshot.version).encode(), b"run": run.encode(),
                b"t": repr(snapshot.published_at).encode(), b"tick": str(snapshot.tick).encode(),
                b"body": body, b"state": head[:-1] + b',"state":' + state + b"}"}

    def _chunked(self, key: str, view: Any) -> bytes:
        """The JSON list of `view` (a `LogView`), whole chunks' JSON reused from last time."""
        known = self._chunks.get(key, {})
        kept: dict[int, tuple[tuple[Any, ...], bytes]] = {}
        parts = []
        for chunk in view.chunks():   # never empty
            cached = known.get(id(chunk))
            if cached is None or cached[0] is not chunk:
                entry = _CHUNKED[key]
                cached = (chunk, json_bytes(chunk if entry is None else
                                            [entry(e) for e in chunk])[1:-1])
            kept[id(chunk)] = cached
            parts.append(cached[1])
        self._chunks[key] = kept
        return b"[" + b",".join(parts) + b"]"


def encode_entry(snapshot: StateSnapshot, run: str, body: bytes,
                 caps: Mapping[str, int]) -> dict[bytes, bytes]:
    """The stream fields of one `snapshot`, with nothing reused (see `EntryEncoder`)."""
    return EntryEncoder(caps).encode(snapshot, run, body)


def decode_header(fields: Mapping[bytes, bytes]) -> Header:
    """The entry's `Header`; ValueError if a field is missing or malformed."""
    try:
        version = int(fields[b"v"])
        run = fields[b"run"].decode("ascii")
        published_at = float(fields[b"t"])
        tick = int(fields[b"tick"])
    except (KeyError, ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"malformed version entry: {exc!r}") from None
    if version < 1 or not run or tick < 0:
        raise ValueError(f"malformed version entry: v={version} run={run!r} tick={tick}")
    return Header(version, run, published_at, tick)


def decode_frozen(header: Header, raw: bytes) -> FrozenState:
    """The entry's ``state`` field as the origin's `FrozenState`; ValueError if it is not one."""
    try:
        data: Any = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"malformed version entry {header.version}: {exc!r}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"version entry {header.version}: format "
                         f"{data.get('format') if isinstance(data, dict) else '?'!r}, "
                         f"this build reads {FORMAT}")
    caps = data.get("caps")
    vitals_version = data.get("vitals_version")
    if not isinstance(caps, dict) or set(caps) != set(_CAP_NAMES) \
            or not isinstance(vitals_version, int):
        raise ValueError(f"version entry {header.version}: bad caps or vitals_version")
    state = data.get("state")
    if not isinstance(state, dict):
        raise ValueError(f"version entry {header.version}: no state")
    frozen = SelfState.from_dict(state, **caps).freeze()
    if frozen.tick != header.tick:
        raise ValueError(f"version entry {header.version}: its state is at tick {frozen.tick}, "
                         f"its header says {header.tick}")
    # The rebuilt record counts its own writes: the origin's count is the one served.
    return dataclasses.replace(frozen, vitals_version=vitals_version)


def decode_snapshot(fields: Mapping[bytes, bytes]) -> tuple[StateSnapshot, bytes]:
    """``(snapshot, plain /status body)`` of an entry, decoded at once; ValueError if invalid."""
    header = decode_header(fields)
    try:
        body, raw = fields[b"body"], fields[b"state"]
    except KeyError as exc:
        raise ValueError(f"malformed version entry {header.version}: {exc!r}") from None
    frozen = decode_frozen(header, raw)
    return StateSnapshot(header.version, header.published_at, frozen, origin=header.run), body
