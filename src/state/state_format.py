"""The persistence format of a `SelfState`, both directions, in one place.

`encode_state` writes a frozen state as a JSON-ready dict: the original
project's snapshot keys in its file order, after ``"schema_version"``
(`SCHEMA_VERSION`).  Transient fields (``last_pattern``, ``activated_memory``)
and the caps are not written; ``active`` is written for readers of the files
and ignored on load.

Reading is `check_header` (the version and the key set) and then
`decode_state`, which validates every value and returns them as
`DecodedState` without writing anywhere, so `SelfState.from_dict` builds a
state only from data that is valid as a whole.  Vitals and parameters are
clamped to their bounds as the original did on load (``ticks`` < 0 is an
error); logs longer than their cap keep their newest entries.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from operator import is_
from typing import TYPE_CHECKING, Any, NamedTuple

from csnapshot import FrozenDict

from src.validation import finite_number, json_mapping, nonempty_str

from .memory import MemoryEntry
from .params import ADAPTATION_PARAMS_DEFAULT, LEARNING_PARAMS_DEFAULT, merged_param_changes
from .vitals import (SUBJECTIVE_TIME_KEYS, VITAL_NAMES, SubjectiveTimeParams,
                     checked_subjective_time_params)

if TYPE_CHECKING:
    from .frozen import FrozenState

__all__ = ["SCHEMA_VERSION", "PERSISTED_KEYS", "LOGS", "DICT_PARTS", "LARGE_PARTS", "StateEncoder", "encode_state", "check_header",
           "decode_state", "DecodedState"]

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1

PERSISTED_KEYS = frozenset({
    "schema_version", "life_id", "birth_timestamp", *VITAL_NAMES, "active", "recent_events",
    "energy_history", "stability_history", "planning", "intelligence", "memory",
    *SUBJECTIVE_TIME_KEYS, "learning_params", "adaptation_params", "adaptation_history"})

# Which of `SelfState.caps` bounds each persisted log.
_LOG_CAPS = {"memory": "memory_cap", "recent_events": "recent_events_cap",
             "energy_history": "history_cap", "stability_history": "history_cap",
             "adaptation_history": "adaptation_history_cap"}
LOGS = tuple(_LOG_CAPS)  # the persisted logs (the rest are scalars and dicts)


def encode_state(state: FrozenState, skip: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Everything persistent of `state`, JSON-ready (O(size of the state)).

    `skip`: keys of the large parts (`LARGE_PARTS`) to leave out, for a caller
    that already holds their encoding (the Redis bridge's encoder, which
    would otherwise copy every log on every version only to drop it).
    """
    v = state.vitals
    out: dict[str, Any] = {"schema_version": SCHEMA_VERSION,
                           "life_id": state.life_id,
                           "birth_timestamp": state.birth_timestamp}

    def large(*keys: str) -> None:
        for key in keys:
            if key not in skip:
                out[key] = LARGE_PARTS[key](state)
    for name in ("age", "subjective_time", "ticks", "energy", "integrity", "stability",
                 "fatigue", "tension"):
        out[name] = getattr(v, name)
    out["active"] = v.active  # derived; written for readers of the files, ignored on load
    large("recent_events")
    out["last_significance"] = v.last_significance
    large("energy_history", "stability_history", "planning", "intelligence", "memory")
    for key, value in zip(SUBJECTIVE_TIME_KEYS, state.subjective_time_params):
        out[key] = value
    out["last_event_intensity"] = v.last_event_intensity
    large("learning_params", "adaptation_params", "adaptation_history")
    return out


# The parts whose size grows with the state (logs and dicts), each encoded by its own
# function, in `encode_state`'s order; everything else is a handful of scalars.
LARGE_PARTS: dict[str, Callable[[FrozenState], Any]] = {
    "recent_events": lambda state: state.recent_events.to_list(),
    "energy_history": lambda state: state.energy_history.to_list(),
    "stability_history": lambda state: state.stability_history.to_list(),
    "planning": lambda state: state.planning,
    "intelligence": lambda state: state.intelligence,
    "memory": lambda state: [e.to_dict() for e in state.memory],
    "learning_params": lambda state: state.learning_params,
    "adaptation_params": lambda state: state.adaptation_params,
    "adaptation_history": lambda state: state.adaptation_history.to_list(),
}
_LARGE_KEYS = frozenset(LARGE_PARTS)


# The large parts that stay the same object while unchanged (frozen dicts are, until the
# next write), and how a log's entry is written where it is not JSON as it stands.
DICT_PARTS = ("planning", "intelligence", "learning_params", "adaptation_params")
LOG_ENTRY: dict[str, Callable[[Any], Any]] = {"memory": MemoryEntry.to_dict}


# Logs whose entries are large and appended rarely (an adaptation record: ~40 floats,
# ~30 us to encode): their JSON is also kept entry by entry, so the slices at the log's
# ends, new tuples at every call, cost a join instead of up to 31 records re-encoded.
LOGS_BY_ENTRY = frozenset({"adaptation_history"})

_Chunk = tuple[tuple[Any, ...], bytes]  # a log chunk (held: its ids stay taken), its JSON
_LogCache = tuple[dict[int, _Chunk], dict[tuple[int, int, int], _Chunk],
                  dict[int, tuple[Any, bytes]]]


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), allow_nan=False).encode()


class StateEncoder:
    """``encode_state`` as compact JSON, the JSON of what did not change since the last call reused.

    Byte for byte ``json.dumps(encode_state(state), separators=(",", ":"))``
    (the snapshot files' format), in time proportional to what changed: the
    parameter dicts are re-encoded only when they were written (a new frozen
    dict), and each log a 32-entry chunk at a time, only the chunks with new
    entries (`LogView.chunks`).  Every whole chunk is the same tuple from
    version to version and is known by that identity; the first and the last
    are slices, new tuples at every call, and are known by their entries'
    identity instead (log entries are immutable: the same entries in the same
    order are the same JSON; the chunks are held, so the ids stay taken).
    Without that, a full log whose window moves re-encodes up to 31 entries at
    each end on every call.  For one thread that writes the versions of one
    state over and over (persistence, the Redis bridge's keyframes): 5-20x
    less time than the plain encoding on a live state
    (docs/components/runtime-loop.md, Persistence).
    """

    def __init__(self) -> None:
        self._order: tuple[str, ...] | None = None  # encode_state's keys, in its order
        self._parts: dict[str, tuple[object, bytes]] = {}
        # Per log, from the last call: its chunks by the tuple's identity, by their
        # entries', and (`LOGS_BY_ENTRY`) each entry's JSON.
        self._chunks: dict[str, _LogCache] = {}

    def encode(self, state: FrozenState) -> bytes:
        scalars = encode_state(state, _LARGE_KEYS)
        if self._order is None:
            self._order = tuple(encode_state(state))
        out = []
        for key in self._order:
            if key in scalars:
                value = _json(scalars[key])
            elif key in LOGS:
                value = self._log(key, getattr(state, key))
            else:
                source = getattr(state, key)
                cached = self._parts.get(key)
                if cached is None or cached[0] is not source:
                    cached = self._parts[key] = (source, _json(LARGE_PARTS[key](state)))
                value = cached[1]
            out.append(b'"%s":%s' % (key.encode(), value))
        return b"{" + b",".join(out) + b"}"

    def _log(self, key: str, view: Any) -> bytes:
        by_id, by_entries, each = self._chunks.get(key, ({}, {}, {}))
        kept: _LogCache = ({}, {}, {})
        parts = []
        for chunk in view.chunks():
            if not chunk:
                continue
            if key in LOGS_BY_ENTRY:  # a join of the entries' JSON (a few us), every time
                cached = _by_entry(key, chunk, each, kept[2])
            else:
                seen = by_id.get(id(chunk))
                cached = (seen if seen is not None and seen[0] is chunk  # a whole chunk
                          else _slice(key, chunk, by_entries, kept[1]))  # a slice, or new
                kept[0][id(chunk)] = cached  # a whole chunk is found by identity next time
            parts.append(cached[1])
        self._chunks[key] = kept
        return b"[" + b",".join(parts) + b"]"


def _slice(key: str, chunk: tuple[Any, ...], known: dict[tuple[int, int, int], _Chunk],
           kept: dict[tuple[int, int, int], _Chunk]) -> _Chunk:
    """`chunk` and its JSON, reused if the last call had a chunk of the same entries."""
    # Two chunks under one key differ only if an entry in between does: the check
    # tells them apart (a miss, then, never a wrong reuse).
    ident = (id(chunk[0]), id(chunk[-1]), len(chunk))
    cached = known.get(ident)
    if cached is None or not all(map(is_, cached[0], chunk)):
        entry = LOG_ENTRY.get(key)
        cached = (chunk, _json(chunk if entry is None else [entry(e) for e in chunk])[1:-1])
    kept[ident] = cached
    return cached


def _by_entry(key: str, chunk: tuple[Any, ...], known: dict[int, tuple[Any, bytes]],
              kept: dict[int, tuple[Any, bytes]]) -> _Chunk:
    """`chunk` and its JSON joined from its entries', each reused if the last call had it."""
    entry = LOG_ENTRY.get(key)
    texts = []
    for e in chunk:
        cached = known.get(id(e))
        if cached is None or cached[0] is not e:
            cached = (e, _json(e if entry is None else entry(e)))
        kept[id(e)] = cached
        texts.append(cached[1])
    return chunk, b",".join(texts)


def check_header(data: Mapping[str, Any]) -> None:
    """ValueError unless `data` is this build's schema version with only known keys."""
    version = data.get("schema_version")
    if version != SCHEMA_VERSION or isinstance(version, bool):
        raise ValueError(f"schema_version: this build reads version {SCHEMA_VERSION}, "
                         f"got {version!r}" if "schema_version" in data else
                         "schema_version: missing (not a SelfState.to_dict() snapshot?)")
    unknown = sorted(str(k) for k in data if k not in PERSISTED_KEYS)
    if unknown:
        raise ValueError(f"unknown field(s): {', '.join(unknown)}")


class DecodedState(NamedTuple):
    """The validated parts of a persisted state (identity aside), ready to load."""

    vitals: dict[str, float | int]
    subjective_time_params: SubjectiveTimeParams
    memory: list[MemoryEntry]
    recent_events: list[str]
    energy_history: list[float]
    stability_history: list[float]
    adaptation_history: list[FrozenDict[str, Any]]
    learning_params: dict[str, FrozenDict[str, float]]
    adaptation_params: dict[str, FrozenDict[str, float]]
    planning: FrozenDict[str, Any]
    intelligence: FrozenDict[str, Any]


def decode_state(data: Mapping[str, Any], caps: Mapping[str, int]) -> DecodedState:
    """Every value of `data` (after `check_header`) validated; missing keys are left out.

    `caps` are the caps of the state it will be loaded into (`SelfState.caps`).
    Raises TypeError/ValueError/KeyError naming the field.
    """
    vitals: dict[str, float | int] = {}
    for name in VITAL_NAMES:
        if name in data:
            vitals[name] = finite_number(name, data[name])
    if "ticks" in vitals:
        ticks = data["ticks"]
        if isinstance(ticks, float) and ticks.is_integer():
            ticks = int(ticks)
        if not isinstance(ticks, int) or ticks < 0:
            raise ValueError(f"ticks: expected an int >= 0, got {data['ticks']!r}")
        vitals["ticks"] = ticks
    if "active" in data and not isinstance(data["active"], bool):
        raise ValueError(f"active: expected a bool, got {data['active']!r}")
    st = checked_subjective_time_params(
        {name: data[key] for name, key in zip(SubjectiveTimeParams._fields, SUBJECTIVE_TIME_KEYS)
         if key in data}, prefix="subjective_time_")

    def entries(key: str) -> list[Any]:
        value = data.get(key, [])
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{key}: expected a list, got {type(value).__name__}")
        cap = caps[_LOG_CAPS[key]]
        if len(value) > cap:
            logger.warning("%s: %d entries in the data, cap %d: keeping the newest",
                           key, len(value), cap)
            return list(value[len(value) - cap:])
        return list(value)

    memory = []
    for i, item in enumerate(entries("memory")):
        try:
            memory.append(MemoryEntry.from_dict(item))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"memory[{i}]: {exc}") from None
    events = [nonempty_str(f"recent_events[{i}]", e)
              for i, e in enumerate(entries("recent_events"))]
    energy = [finite_number(f"energy_history[{i}]", x)
              for i, x in enumerate(entries("energy_history"))]
    stability = [finite_number(f"stability_history[{i}]", x)
                 for i, x in enumerate(entries("stability_history"))]
    adaptation = [json_mapping(f"adaptation_history[{i}]", r)
                  for i, r in enumerate(entries("adaptation_history"))]
    learning = merged_param_changes("learning_params", LEARNING_PARAMS_DEFAULT,
                                    data.get("learning_params", {}))
    adaptation_params = merged_param_changes("adaptation_params", ADAPTATION_PARAMS_DEFAULT,
                                             data.get("adaptation_params", {}))
    return DecodedState(vitals, st, memory, events, energy, stability, adaptation, learning,
                        adaptation_params, json_mapping("planning", data.get("planning", {})),
                        json_mapping("intelligence", data.get("intelligence", {})))
