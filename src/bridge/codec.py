"""One published version as a Redis stream entry, and back: the bridge's wire format.

ZeroMQ's "Clone" updates: most entries carry what changed since the entry
before them, and every few a whole state (a keyframe) that a follower can
start from.  An entry's fields (all bytes):

- ``v``: the snapshot version (decimal); ``run``: the origin's run tag (the
  prefix of its ETags; a restarted origin has a new one); ``t``: the origin's
  ``published_at`` (``repr`` of the float, exact); ``tick``.
- ``body``: the plain ``GET /status`` body, exactly the origin's bytes.
- ``base`` and ``delta`` (every entry but the first of a chain): the version
  of the entry before it and JSON ``{"format": 1, "vitals_version",
  "appended", "state"}``, ``state`` a partial persistence dict
  (`src.state.state_format`): every scalar, the dicts that changed, and per
  log either the entries appended (the log named in ``appended``) or the
  whole log (it was edited otherwise: pruned).  After a decay the memory log
  goes as its new weights instead: ``"format": 2`` and ``"reweighted_memory":
  [skip, weights]`` (`src.state.memory.weight_changes`; the entries appended
  since, if any, under ``appended``), 50 numbers instead of 50 entries.
  Applied to the state of version ``base`` (`SelfState.apply_changes`) it
  gives this version's.  Each entry has the lowest format that describes
  it, so a reader of format 1 only rejects the deltas after a decay (and
  waits for the next keyframe) instead of misreading them.
- ``state`` (a keyframe: the first entry of a chain, and after every
  `EntryEncoder.keyframe_every`-th delta an extra entry of the same version
  as that delta): JSON ``{"format": 1, "vitals_version", "caps", "state"}``
  with the whole state in the persistence format.

Together they let a follower answer any ``/status`` query (limits,
include_optional) and ``/vitals`` as the origin would for that version:
`decode_header` reads the four small fields only, `Replica` rebuilds the
state from a keyframe (every value validated) and then keeps it current
delta by delta, in time proportional to what changed.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any, NamedTuple

from src.api.errors import json_bytes
from src.state.frozen import FrozenState
from src.state.memory import weight_changes
from src.state.self_state import SelfState
from src.state.snapshot_manager import StateSnapshot
from src.state.state_format import (DICT_PARTS, LARGE_PARTS, LOG_ENTRY, LOGS, StateEncoder,
                                    encode_state)

__all__ = ["FORMAT", "REWEIGHTED_FORMAT", "KEYFRAME_EVERY", "Header", "EntryEncoder", "Replica",
           "encode_entry", "decode_header", "decode_frozen", "decode_snapshot"]

FORMAT = 1             # a keyframe, and a delta without reweighted memory
REWEIGHTED_FORMAT = 2  # a delta with "reweighted_memory"
_FORMATS = (FORMAT, REWEIGHTED_FORMAT)  # what this build reads
KEYFRAME_EVERY = 32  # deltas from one keyframe to the next, at most
_CAP_NAMES = ("memory_cap", "recent_events_cap", "history_cap", "adaptation_history_cap")


class Header(NamedTuple):
    """The small fields of an entry: enough to decide whether to serve it."""

    version: int
    run: str
    published_at: float
    tick: int


# A delta carries every scalar (they change every tick), the dicts that are new objects
# (frozen dicts stay the same object until written) and per log what was appended.
_SKIPPED = frozenset(DICT_PARTS) | frozenset(LOGS)


class EntryEncoder:
    """Encodes the versions of one state, each entry a change of the one before it.

    One publisher thread owns it; the entries it returns must reach Redis in
    order, every one: after a failed write call `restart`, and the next entry
    is a keyframe.  A delta costs what changed since the last entry (the
    vitals, a few appended log entries, a dict that was written), not the
    size of the state; a keyframe (the first of a chain, then `keyframe()`
    when `keyframe_due`) writes the whole state, reusing the JSON of the
    parameter dicts and of the logs' whole chunks from the last keyframe
    (`LogView.chunks`).  Either gives exactly ``encode_state``'s dict
    (`Replica`).
    """

    def __init__(self, caps: Mapping[str, int], keyframe_every: int = KEYFRAME_EVERY) -> None:
        if isinstance(keyframe_every, bool) or not isinstance(keyframe_every, int) \
                or keyframe_every < 1:
            raise ValueError(f"keyframe_every: expected an int >= 1, got {keyframe_every!r}")
        self._caps = {name: caps[name] for name in _CAP_NAMES}
        self.keyframe_every = keyframe_every
        self._base: StateSnapshot | None = None  # the last version encoded
        self._since_keyframe = 0
        self.keyframes = 0                       # keyframes encoded
        self._state_json = StateEncoder()        # a keyframe costs what changed since the last

    def restart(self) -> None:
        """Start a new chain: the next entry is a keyframe (the entries before were lost)."""
        self._base = None

    @property
    def base(self) -> StateSnapshot | None:
        """The last version encoded (None: the next entry starts a chain)."""
        return self._base

    @property
    def keyframe_due(self) -> bool:
        """Whether `keyframe()` should follow the last entry (every `keyframe_every`)."""
        return self._base is not None and self._since_keyframe >= self.keyframe_every

    def encode(self, snapshot: StateSnapshot, run: str, body: bytes) -> dict[bytes, bytes]:
        """The stream fields of `snapshot`, following the last one (the publisher's thread).

        A delta, or the first of a chain: a keyframe.
        """
        fields = _header_fields(snapshot, run, body)
        base = self._base
        if base is None:
            fields[b"state"] = self._keyframe(snapshot.state)
        else:
            fields[b"base"] = str(base.version).encode()
            fields[b"delta"] = self._delta(base.state, snapshot.state)
            self._since_keyframe += 1
        self._base = snapshot
        return fields

    def keyframe(self, run: str, body: bytes) -> dict[bytes, bytes]:
        """A keyframe of the last version encoded, to write after its delta.

        Written after the delta, not in place of it, so no version waits for the
        whole state to be encoded: a follower that holds the chain skips it (not
        newer than what it serves), one that joins or lost entries starts from it.
        `body` is that version's plain ``/status`` body.
        """
        base = self._base
        if base is None:
            raise RuntimeError("keyframe() before the first encode() of a chain")
        fields = _header_fields(base, run, body)
        fields[b"state"] = self._keyframe(base.state)
        return fields

    def _delta(self, old: FrozenState, new: FrozenState) -> bytes:
        """What changed from `old` to `new` (see the module doc)."""
        data = encode_state(new, _SKIPPED)  # the scalars, every time: they change every tick
        for key in DICT_PARTS:
            if getattr(new, key) is not getattr(old, key):
                data[key] = LARGE_PARTS[key](new)
        appended = []
        delta: dict[str, Any] = {"format": FORMAT, "vitals_version": new.vitals_version}
        for key in LOGS:
            added = getattr(new, key).appended_since(getattr(old, key))
            if added is None and key == "memory":  # decayed? then its weights say it
                change = weight_changes(old.memory.to_list(), new.memory.to_list())
                if change is not None:
                    skip, weights, added = change
                    delta["format"], delta["reweighted_memory"] = REWEIGHTED_FORMAT, \
                        [skip, weights]
            if added is None:      # edited otherwise: the whole log
                data[key] = LARGE_PARTS[key](new)
            elif added:
                entry = LOG_ENTRY.get(key)
                data[key] = added if entry is None else [entry(e) for e in added]
                appended.append(key)
        delta["appended"], delta["state"] = appended, data
        return json_bytes(delta)

    def _keyframe(self, frozen: FrozenState) -> bytes:
        """The whole state (its JSON through `StateEncoder`), with what a follower needs."""
        self._since_keyframe = 0
        self.keyframes += 1
        head = json_bytes({"format": FORMAT, "vitals_version": frozen.vitals_version,
                           "caps": self._caps})
        return head[:-1] + b',"state":' + self._state_json.encode(frozen) + b"}"


def _header_fields(snapshot: StateSnapshot, run: str, body: bytes) -> dict[bytes, bytes]:
    return {b"v": str(snapshot.version).encode(), b"run": run.encode(),
            b"t": repr(snapshot.published_at).encode(), b"tick": str(snapshot.tick).encode(),
            b"body": body}


def encode_entry(snapshot: StateSnapshot, run: str, body: bytes,
                 caps: Mapping[str, int]) -> dict[bytes, bytes]:
    """The stream fields of one `snapshot` as a keyframe, with nothing reused."""
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


def _json_object(header: Header, what: str, raw: bytes) -> dict[str, Any]:
    """The entry's `what` field parsed: a dict of this build's format and a vitals_version."""
    try:
        data: Any = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"malformed {what} in version entry {header.version}: {exc!r}") from None
    if not isinstance(data, dict) or data.get("format") not in _FORMATS \
            or isinstance(data.get("format"), bool):
        raise ValueError(f"version entry {header.version}: {what} format "
                         f"{data.get('format') if isinstance(data, dict) else '?'!r}, "
                         f"this build reads {' and '.join(map(str, _FORMATS))}")
    if not isinstance(data.get("vitals_version"), int) or not isinstance(data.get("state"), dict):
        raise ValueError(f"version entry {header.version}: {what} without a vitals_version "
                         "or a state")
    return data


def _decode_keyframe(header: Header, raw: bytes) -> tuple[SelfState, int]:
    """The entry's ``state`` field as a `SelfState` and the origin's vitals version."""
    data = _json_object(header, "state", raw)
    caps = data.get("caps")
    if not isinstance(caps, dict) or set(caps) != set(_CAP_NAMES):
        raise ValueError(f"version entry {header.version}: bad caps")
    return SelfState.from_dict(data["state"], **caps), data["vitals_version"]


def _frozen(state: SelfState, header: Header, vitals_version: int) -> FrozenState:
    frozen = state.freeze()
    if frozen.tick != header.tick:
        raise ValueError(f"version entry {header.version}: its state is at tick {frozen.tick}, "
                         f"its header says {header.tick}")
    # The rebuilt record counts its own writes: the origin's count is the one served.
    return dataclasses.replace(frozen, vitals_version=vitals_version)


def decode_frozen(header: Header, raw: bytes) -> FrozenState:
    """A keyframe's ``state`` field as the origin's `FrozenState`; ValueError if it is not one."""
    state, vitals_version = _decode_keyframe(header, raw)
    return _frozen(state, header, vitals_version)


def decode_snapshot(fields: Mapping[bytes, bytes]) -> tuple[StateSnapshot, bytes]:
    """``(snapshot, plain /status body)`` of a keyframe entry; ValueError if invalid."""
    header = decode_header(fields)
    try:
        body, raw = fields[b"body"], fields[b"state"]
    except KeyError as exc:
        raise ValueError(f"malformed version entry {header.version}: {exc!r}") from None
    frozen = decode_frozen(header, raw)
    return StateSnapshot(header.version, header.published_at, frozen, origin=header.run), body


class Replica:
    """A follower's copy of the origin's state: loaded from a keyframe, then kept by deltas.

    One follower thread owns it.  `advance(header, fields)` returns the
    version's `FrozenState`: the entry's delta applied when the replica holds
    its ``base`` (same run), else its keyframe loaded; None when it has
    neither (a gap: the entries in between were lost, the next keyframe ends
    it).  A bad entry raises ValueError and leaves the replica empty, so only
    a keyframe is taken after it.
    """

    def __init__(self) -> None:
        self._state: SelfState | None = None
        self._at: Header | None = None  # the version the state is at
        self.keyframes = 0              # keyframes loaded (joining, after a gap)

    @property
    def at(self) -> Header | None:
        """The header of the version the replica holds (None: empty)."""
        return self._at

    def holds(self, run: str, version: int) -> bool:
        at = self._at
        return at is not None and at.run == run and at.version == version

    def advance(self, header: Header, fields: Mapping[bytes, bytes]) -> FrozenState | None:
        base, delta, raw = fields.get(b"base"), fields.get(b"delta"), fields.get(b"state")
        try:
            if delta is not None and base is not None and self._state is not None \
                    and self.holds(header.run, int(base)):
                data = _json_object(header, "delta", delta)
                appended = data.get("appended")
                if not isinstance(appended, list) or not all(isinstance(k, str)
                                                             for k in appended):
                    raise ValueError(f"version entry {header.version}: bad appended list")
                reweighted = data.get("reweighted_memory") \
                    if data["format"] == REWEIGHTED_FORMAT else None
                if reweighted is not None and (not isinstance(reweighted, list)
                                               or len(reweighted) != 2):
                    raise ValueError(f"version entry {header.version}: bad reweighted_memory")
                self._state.apply_changes(data["state"], appended,
                                          None if reweighted is None else tuple(reweighted))
                frozen = _frozen(self._state, header, data["vitals_version"])
            elif raw is not None:
                state, vitals_version = _decode_keyframe(header, raw)
                frozen = _frozen(state, header, vitals_version)
                self._state = state
                self.keyframes += 1
            else:
                return None
        except ValueError:
            self._state = self._at = None
            raise
        self._at = header
        return frozen
