"""`SelfState`: the Life application's state, written by one thread (the runtime loop).

The state has three kinds of parts, each in the container that suits how it is
read:

- **Vitals** (energy, integrity, stability, fatigue, tension, age,
  subjective_time, ticks, last_event_intensity, last_significance) live in a
  `csnapshot.Vitals` seqlock record.  A write (``state.energy = 75``,
  ``apply_delta``) is clamped, is one write section, and is visible to every
  reader of the record at once.
- **Logs** (memory, recent_events, energy/stability/adaptation histories) are
  bounded `csnapshot.SnapshotLog`s: appends evict the oldest entry when full,
  and taking a view of them is O(1) whatever their length.
- **Dicts** (learning_params, adaptation_params, planning, intelligence) are
  copy-on-write: readers get `FrozenDict`s, nested values frozen too.

`SelfState.freeze()` captures all of it as one immutable `FrozenState` in time
that does not depend on the size of the logs; the snapshot manager publishes
those.  `FrozenState.status_dict()` is the API's view (the original's
``get_safe_status_dict``) and `FrozenState.to_dict()` the persistence format
(schema version `SCHEMA_VERSION`), read back by `SelfState.from_dict()`.

The single-writer rule: one thread mutates a `SelfState`.  Other threads never
touch it; they read published snapshots (`StateSnapshotManager`), or the vitals
record itself, which is built for concurrent readers.  The data model and its
staleness rules: docs/components/self-state.md.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, NoReturn

from csnapshot import CowDict, Field, FrozenDict, LogView, SnapshotLog, Vitals, freeze_value

__all__ = ["SelfState", "MemoryEntry", "FrozenState", "VitalValues", "SubjectiveTimeParams",
           "SCHEMA_VERSION", "VITAL_FIELDS", "STATUS_LIMIT_KEYS", "LEARNING_PARAMS_DEFAULT",
           "ADAPTATION_PARAMS_DEFAULT", "PARAM_BOUNDS"]

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1

# ---- vitals ------------------------------------------------------------------

VITAL_FIELDS: tuple[Field, ...] = (
    Field("energy", float, default=100.0, min=0.0, max=100.0),
    Field("integrity", float, default=1.0, min=0.0, max=1.0),
    Field("stability", float, default=1.0, min=0.0, max=1.0),
    Field("fatigue", float, default=0.0, min=0.0),
    Field("tension", float, default=0.0, min=0.0),
    Field("age", float, default=0.0, min=0.0),
    Field("subjective_time", float, default=0.0, min=0.0),
    Field("ticks", int, default=0, min=0),
    Field("last_event_intensity", float, default=0.0, min=0.0, max=1.0),
    # Unbounded as in the original (the meaning engine already keeps it in [0, 1]).
    Field("last_significance", float, default=0.0),
)
_VITAL_NAMES = tuple(f.name for f in VITAL_FIELDS)
_VITAL_SET = frozenset(_VITAL_NAMES)


class VitalValues(NamedTuple):
    """The vitals at one moment, in schema order: ``Vitals.read_tuple()`` with names."""

    energy: float
    integrity: float
    stability: float
    fatigue: float
    tension: float
    age: float
    subjective_time: float
    ticks: int
    last_event_intensity: float
    last_significance: float

    @property
    def active(self) -> bool:
        """Derived, never stored: energy, integrity and stability all > 0."""
        return self.energy > 0 and self.integrity > 0 and self.stability > 0


assert VitalValues._fields == _VITAL_NAMES, "VitalValues must follow VITAL_FIELDS"
_vital_values = VitalValues._make


class SubjectiveTimeParams(NamedTuple):
    """How fast subjective time runs.

    ``rate = clamp(base_rate + intensity_coeff * last_event_intensity
    + stability_coeff * (stability - 1), rate_min, rate_max)``.
    """

    base_rate: float = 1.0
    rate_min: float = 0.1
    rate_max: float = 3.0
    intensity_coeff: float = 1.0
    stability_coeff: float = 0.5


_ST_KEYS = tuple(f"subjective_time_{name}" for name in SubjectiveTimeParams._fields)


def _checked_st_params(params: Mapping[str, Any], prefix: str = "") -> SubjectiveTimeParams:
    values = {name: _number(f"{prefix}{name}", params[name]) for name in params}
    p = SubjectiveTimeParams(**values)
    if p.rate_min < 0:
        raise ValueError(f"{prefix}rate_min: must be >= 0, got {p.rate_min!r}")
    if p.rate_min > p.rate_max:
        raise ValueError(f"{prefix}rate_min ({p.rate_min!r}) must not exceed "
                         f"{prefix}rate_max ({p.rate_max!r})")
    return p


# ---- value checks ------------------------------------------------------------


def _number(where: str, value: object) -> float:
    """`value` as a finite float, or TypeError/ValueError naming `where`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{where}: expected a number, got {value!r}")
    try:
        x = float(value)
    except OverflowError:
        raise ValueError(f"{where}: {value!r} is too large for a float") from None
    if not math.isfinite(x):
        raise ValueError(f"{where}: must be finite, got {value!r}")
    return x


def _in_range(where: str, value: object, lo: float | None, hi: float | None) -> float:
    x = _number(where, value)
    if (lo is not None and x < lo) or (hi is not None and x > hi):
        shown = f"[{lo}, {hi}]" if hi is not None else f">= {lo}"
        raise ValueError(f"{where}: must be {'in ' if hi is not None else ''}{shown}, "
                         f"got {value!r}")
    return x


def _positive_int(where: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{where} must be a positive int, got {value!r}")
    return value


def _nonempty_str(where: str, value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{where}: expected a string, got {value!r}")
    if not value:
        raise ValueError(f"{where}: must not be empty")
    return value


_MAX_DEPTH = 32


def _check_json(where: str, value: object, depth: int = 0) -> None:
    """Refuse anything `json.dumps` would reject (or turn into invalid JSON)."""
    if value is None or isinstance(value, (str, bool, int)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where}: {value!r} is not valid JSON (numbers must be finite)")
        return
    if depth >= _MAX_DEPTH:
        raise ValueError(f"{where}: nested deeper than {_MAX_DEPTH} levels (a cycle?)")
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"{where}: keys must be strings, got {k!r}")
            _check_json(f"{where}.{k}", v, depth + 1)
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_json(f"{where}[{i}]", v, depth + 1)
    else:
        raise TypeError(f"{where}: a {type(value).__name__} is not JSON data (allowed: dict, "
                        f"list, tuple, str, int, float, bool, None)")


def _json_mapping(where: str, value: object) -> FrozenDict[str, Any]:
    """A JSON-ready mapping, deeply frozen (built once by the writer, shared by readers)."""
    if not isinstance(value, Mapping):
        raise TypeError(f"{where}: expected a mapping, got {value!r}")
    _check_json(where, value)
    frozen = freeze_value(value)
    assert isinstance(frozen, FrozenDict)
    return frozen


# ---- memory ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MemoryEntry:
    """One remembered event, action or feedback record; immutable once built.

    `meaning_significance` is in [0, 1] (0 for "action" and "feedback" entries),
    `weight` >= 0 (1.0 when new; decayed by `SelfState.decay_memory_weights`),
    `timestamp` a finite wall-clock time.  `feedback_data`, if given, must be a
    JSON-ready mapping; it is stored deeply frozen.  Bad values raise
    `TypeError`/`ValueError` naming the field.
    """

    event_type: str
    meaning_significance: float
    timestamp: float
    weight: float = 1.0
    feedback_data: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        put = object.__setattr__  # the dataclass is frozen: normalise in place, once
        _nonempty_str("MemoryEntry.event_type", self.event_type)
        put(self, "meaning_significance", _in_range(
            "MemoryEntry.meaning_significance", self.meaning_significance, 0.0, 1.0))
        put(self, "timestamp", _number("MemoryEntry.timestamp", self.timestamp))
        put(self, "weight", _in_range("MemoryEntry.weight", self.weight, 0.0, None))
        if self.feedback_data is not None:
            put(self, "feedback_data",
                _json_mapping("MemoryEntry.feedback_data", self.feedback_data))

    def with_weight(self, weight: float) -> MemoryEntry:
        """A copy with another weight (what decay builds for every entry: kept cheap)."""
        w = _in_range("MemoryEntry.weight", weight, 0.0, None)
        new = object.__new__(MemoryEntry)
        put = object.__setattr__
        put(new, "event_type", self.event_type)
        put(new, "meaning_significance", self.meaning_significance)
        put(new, "timestamp", self.timestamp)
        put(new, "weight", w)
        put(new, "feedback_data", self.feedback_data)
        return new

    def to_dict(self) -> dict[str, Any]:
        """The 5-key dict of the original's snapshots and ``/status``."""
        return {"event_type": self.event_type,
                "meaning_significance": self.meaning_significance,
                "timestamp": self.timestamp,
                "weight": self.weight,
                "feedback_data": self.feedback_data}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MemoryEntry:
        """Inverse of `to_dict`; ``weight`` and ``feedback_data`` may be missing."""
        if not isinstance(data, Mapping):
            raise TypeError(f"expected a mapping with {', '.join(_ENTRY_KEYS)}, got {data!r}")
        unknown = [k for k in data if k not in _ENTRY_KEYS]
        if unknown:
            raise ValueError(f"unknown key(s) {', '.join(map(repr, unknown))}; "
                             f"valid: {', '.join(_ENTRY_KEYS)}")
        missing = [k for k in _ENTRY_KEYS[:3] if k not in data]
        if missing:
            raise ValueError(f"missing key(s) {', '.join(missing)}")
        return cls(**data)


_ENTRY_KEYS = ("event_type", "meaning_significance", "timestamp", "weight", "feedback_data")

# ---- learning and adaptation parameters --------------------------------------

_EVENT_TYPES = ("noise", "decay", "recovery", "shock", "idle")
_RESPONSES = {"dampen": 0.5, "absorb": 1.0, "ignore": 0.0}

LEARNING_PARAMS_DEFAULT: FrozenDict[str, FrozenDict[str, float]] = FrozenDict({
    "event_type_sensitivity": FrozenDict(dict.fromkeys(_EVENT_TYPES, 0.2)),
    "significance_thresholds": FrozenDict(dict.fromkeys(_EVENT_TYPES, 0.1)),
    "response_coefficients": FrozenDict(_RESPONSES),
})
ADAPTATION_PARAMS_DEFAULT: FrozenDict[str, FrozenDict[str, float]] = FrozenDict({
    "behavior_sensitivity": FrozenDict(dict.fromkeys(_EVENT_TYPES, 0.2)),
    "behavior_thresholds": FrozenDict(dict.fromkeys(_EVENT_TYPES, 0.1)),
    "behavior_coefficients": FrozenDict(_RESPONSES),
})
# The original clamps to these on load; its learning steps stay inside them.
PARAM_BOUNDS: FrozenDict[str, tuple[float, float]] = FrozenDict({
    "event_type_sensitivity": (0.0, 1.0),
    "significance_thresholds": (0.0, 1.0),
    "response_coefficients": (0.0, 2.0),
    "behavior_sensitivity": (0.0, 1.0),
    "behavior_thresholds": (0.0, 1.0),
    "behavior_coefficients": (0.0, 2.0),
})


def _param_changes(where: str, current: Mapping[str, Mapping[str, float]],
                   changes: object) -> dict[str, FrozenDict[str, float]]:
    """Validate `changes` ({group: {key: number}}) and return the merged, clamped groups.

    Nothing is written here: the caller stores the result only if every group
    passed, so an update is all-or-nothing.
    """
    if not isinstance(changes, Mapping):
        raise TypeError(f"{where}: expected a mapping of groups, got {changes!r}")
    merged: dict[str, FrozenDict[str, float]] = {}
    for group, values in changes.items():
        if group not in current:
            raise KeyError(f"{where}: unknown group {group!r}; valid groups: "
                           f"{', '.join(current)}")
        if not isinstance(values, Mapping):
            raise TypeError(f"{where}.{group}: expected a mapping of numbers, got {values!r}")
        lo, hi = PARAM_BOUNDS[group]
        new = dict(current[group])
        for key, value in values.items():
            if not isinstance(key, str) or not key:
                raise TypeError(f"{where}.{group}: keys must be non-empty strings, got {key!r}")
            x = _number(f"{where}.{group}.{key}", value)
            new[key] = min(max(x, lo), hi)  # clamped, like the vitals
        merged[group] = FrozenDict(new)
    return merged


# ---- status and persistence --------------------------------------------------

STATUS_LIMIT_KEYS = ("memory_limit", "events_limit", "energy_history_limit",
                     "stability_history_limit", "adaptation_history_limit")

_PERSISTED_KEYS = frozenset({
    "schema_version", "life_id", "birth_timestamp", *_VITAL_NAMES, "active", "recent_events",
    "energy_history", "stability_history", "planning", "intelligence", "memory", *_ST_KEYS,
    "learning_params", "adaptation_params", "adaptation_history"})


def _check_limits(limits: Mapping[str, int | None] | None) -> dict[str, int]:
    if limits is None:
        return {}
    if not isinstance(limits, Mapping):
        raise TypeError(f"limits must be a mapping ({', '.join(STATUS_LIMIT_KEYS)}), "
                        f"got {limits!r}")
    checked: dict[str, int] = {}
    for key, n in limits.items():
        if key not in STATUS_LIMIT_KEYS:
            raise ValueError(f"unknown limit {key!r}; valid limits: {', '.join(STATUS_LIMIT_KEYS)}")
        if n is None:
            continue  # not given
        if isinstance(n, bool) or not isinstance(n, int):
            raise TypeError(f"{key}: expected an int, got {n!r}")
        checked[key] = n
    return checked


@dataclass(frozen=True, slots=True)
class FrozenState:
    """Every part of a `SelfState` at one moment; immutable, O(1) to take.

    Built by `SelfState.freeze()` (the writer's thread); safe to hand to any
    number of reader threads.  `vitals` was read from the record with its
    version (`vitals_version`, the record's count of write sections).  Logs are
    `LogView`s (index, ``last(k)``, iterate), dicts `FrozenDict`s.
    """

    vitals_version: int
    vitals: VitalValues
    life_id: str
    birth_timestamp: float
    subjective_time_params: SubjectiveTimeParams
    memory: LogView[MemoryEntry]
    recent_events: LogView[str]
    energy_history: LogView[float]
    stability_history: LogView[float]
    adaptation_history: LogView[FrozenDict[str, Any]]
    learning_params: FrozenDict[str, FrozenDict[str, float]]
    adaptation_params: FrozenDict[str, FrozenDict[str, float]]
    planning: FrozenDict[str, Any]
    intelligence: FrozenDict[str, Any]

    @property
    def tick(self) -> int:
        return self.vitals.ticks

    @property
    def active(self) -> bool:
        return self.vitals.active

    def status_dict(self, include_optional: bool = True,
                    limits: Mapping[str, int | None] | None = None) -> dict[str, Any]:
        """The API's view of the state (the original's ``get_safe_status_dict``).

        Always: the vitals and ``active``.  With `include_optional` (default)
        also ``life_id``, ``birth_timestamp``, ``planning``, ``intelligence``,
        the five ``subjective_time_*`` parameters, ``learning_params`` and
        ``adaptation_params``.  Logs only when their limit is given in
        `limits` (keys: `STATUS_LIMIT_KEYS`; a ``None`` value counts as not
        given): ``memory`` when ``memory_limit`` is given (the last N entries
        as 5-key dicts; N <= 0 gives ``[]``), ``recent_events``,
        ``energy_history``, ``stability_history``, ``adaptation_history`` only
        when their limit is > 0 (the last N).  Transient and internal fields
        are never included.

        JSON-ready (``json.dumps`` takes it as is); the dict is new, nested
        dicts are shared `FrozenDict`s.  Cost: proportional to the output,
        not to the size of the state.  Unknown limit names raise
        `ValueError`, non-int limits `TypeError`.
        """
        lim = _check_limits(limits)
        v = self.vitals
        out: dict[str, Any] = {}
        # Key order follows the original's snapshot files (dataclass field order).
        if include_optional:
            out["life_id"] = self.life_id
            out["birth_timestamp"] = self.birth_timestamp
        out["age"] = v.age
        out["subjective_time"] = v.subjective_time
        out["ticks"] = v.ticks
        out["energy"] = v.energy
        out["integrity"] = v.integrity
        out["stability"] = v.stability
        out["fatigue"] = v.fatigue
        out["tension"] = v.tension
        out["active"] = v.active
        if lim.get("events_limit", 0) > 0:
            out["recent_events"] = self.recent_events.last(lim["events_limit"])
        out["last_significance"] = v.last_significance
        if lim.get("energy_history_limit", 0) > 0:
            out["energy_history"] = self.energy_history.last(lim["energy_history_limit"])
        if lim.get("stability_history_limit", 0) > 0:
            out["stability_history"] = self.stability_history.last(
                lim["stability_history_limit"])
        if include_optional:
            out["planning"] = self.planning
            out["intelligence"] = self.intelligence
        if "memory_limit" in lim:
            n = lim["memory_limit"]
            out["memory"] = [e.to_dict() for e in self.memory.last(n)] if n > 0 else []
        if include_optional:
            for key, value in zip(_ST_KEYS, self.subjective_time_params):
                out[key] = value
        out["last_event_intensity"] = v.last_event_intensity
        if include_optional:
            out["learning_params"] = self.learning_params
            out["adaptation_params"] = self.adaptation_params
        if lim.get("adaptation_history_limit", 0) > 0:
            out["adaptation_history"] = self.adaptation_history.last(
                lim["adaptation_history_limit"])
        return out

    def to_dict(self) -> dict[str, Any]:
        """Everything persistent, JSON-ready, read back by `SelfState.from_dict`.

        The original's snapshot keys in its file order, after
        ``"schema_version"``; transient fields (``last_pattern``,
        ``activated_memory``) and the caps are not included.  O(size of the
        state): for persistence threads, not for request handlers.
        """
        v = self.vitals
        out: dict[str, Any] = {"schema_version": SCHEMA_VERSION,
                               "life_id": self.life_id,
                               "birth_timestamp": self.birth_timestamp}
        for name in ("age", "subjective_time", "ticks", "energy", "integrity", "stability",
                     "fatigue", "tension"):
            out[name] = getattr(v, name)
        out["active"] = v.active  # derived; written for readers of the files, ignored on load
        out["recent_events"] = self.recent_events.to_list()
        out["last_significance"] = v.last_significance
        out["energy_history"] = self.energy_history.to_list()
        out["stability_history"] = self.stability_history.to_list()
        out["planning"] = self.planning
        out["intelligence"] = self.intelligence
        out["memory"] = [e.to_dict() for e in self.memory]
        for key, value in zip(_ST_KEYS, self.subjective_time_params):
            out[key] = value
        out["last_event_intensity"] = v.last_event_intensity
        out["learning_params"] = self.learning_params
        out["adaptation_params"] = self.adaptation_params
        out["adaptation_history"] = self.adaptation_history.to_list()
        return out


# ---- SelfState ---------------------------------------------------------------


class _Vital:
    """``state.<name>``: one atomic load of the record; assignment is one clamped write."""

    def __init__(self, name: str, doc: str) -> None:
        self.name = name
        self.__doc__ = doc

    def __get__(self, obj: SelfState | None, owner: type | None = None) -> Any:
        if obj is None:
            return self
        return obj._vitals.get(self.name)

    def __set__(self, obj: SelfState, value: float) -> None:
        obj._vitals.write(**{self.name: value})

    def __delete__(self, obj: SelfState) -> NoReturn:
        raise AttributeError(f"cannot delete the vital {self.name!r}")


class _Ticks(_Vital):
    """The tick counter: clamping a negative value would hide a bug, so it raises."""

    def __set__(self, obj: SelfState, value: float) -> None:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
            raise ValueError(f"ticks must be >= 0, got {value!r}")
        obj._vitals.write(ticks=value)


def _read_only(name: str, why: str) -> NoReturn:
    raise AttributeError(f"{name} is read-only: {why}")


class SelfState:
    """The live state of one Life instance.  One thread writes it; see the module doc.

    Keyword-only arguments: the caps of the bounded logs (positive ints;
    appending to a full log evicts its oldest entry) and the identity
    (`life_id`, a new UUID4 string by default; `birth_timestamp`,
    ``time.time()`` by default), immutable afterwards.

    Attribute access to a vital reads the live record; assigning clamps to
    the field's bounds and is visible to readers of the record at once
    (``ticks`` raises ValueError below 0 instead).  Everything else changes
    through the methods below and becomes visible to readers at the next
    publish.  Setting any other attribute raises AttributeError.
    """

    __slots__ = ("_vitals", "_life_id", "_birth_timestamp", "_memory", "_recent_events",
                 "_energy_history", "_stability_history", "_adaptation_history",
                 "_learning", "_adaptation", "_pi", "_st", "last_pattern", "activated_memory")

    _vitals: Vitals
    last_pattern: str
    """Transient: the loop's last decision pattern (never published or persisted)."""
    activated_memory: tuple[MemoryEntry, ...]
    """Transient: memories activated for the current event (never published or persisted)."""

    energy = _Vital("energy", "Energy, clamped to [0, 100].")
    integrity = _Vital("integrity", "Integrity, clamped to [0, 1].")
    stability = _Vital("stability", "Stability, clamped to [0, 1].")
    fatigue = _Vital("fatigue", "Fatigue, clamped to >= 0.")
    tension = _Vital("tension", "Tension, clamped to >= 0.")
    age = _Vital("age", "Wall-clock seconds lived, clamped to >= 0.")
    subjective_time = _Vital("subjective_time", "Subjective seconds lived, clamped to >= 0.")
    ticks = _Ticks("ticks", "Loop ticks (int); a negative value raises ValueError.")
    last_event_intensity = _Vital("last_event_intensity",
                                  "Intensity of the last event batch, clamped to [0, 1].")
    last_significance = _Vital("last_significance", "Significance of the last event.")

    def __init__(self, *, memory_cap: int = 50, recent_events_cap: int = 1000,
                 history_cap: int = 1000, adaptation_history_cap: int = 50,
                 life_id: str | None = None, birth_timestamp: float | None = None) -> None:
        caps = {"memory_cap": memory_cap, "recent_events_cap": recent_events_cap,
                "history_cap": history_cap, "adaptation_history_cap": adaptation_history_cap}
        for name, cap in caps.items():
            _positive_int(name, cap)
        self._life_id = str(uuid.uuid4()) if life_id is None else _nonempty_str("life_id", life_id)
        self._birth_timestamp = (time.time() if birth_timestamp is None
                                 else _number("birth_timestamp", birth_timestamp))
        self._vitals = Vitals(VITAL_FIELDS)
        self._memory: SnapshotLog[MemoryEntry] = SnapshotLog(memory_cap)
        self._recent_events: SnapshotLog[str] = SnapshotLog(recent_events_cap)
        self._energy_history: SnapshotLog[float] = SnapshotLog(history_cap)
        self._stability_history: SnapshotLog[float] = SnapshotLog(history_cap)
        self._adaptation_history: SnapshotLog[FrozenDict[str, Any]] = SnapshotLog(
            adaptation_history_cap)
        self._learning: CowDict[str, FrozenDict[str, float]] = CowDict(LEARNING_PARAMS_DEFAULT)
        self._adaptation: CowDict[str, FrozenDict[str, float]] = CowDict(
            ADAPTATION_PARAMS_DEFAULT)
        # One tuple, replaced whole: a snapshot can never pair planning from one
        # tick with intelligence from another (the original tore exactly there).
        self._pi: tuple[FrozenDict[str, Any], FrozenDict[str, Any]] = (FrozenDict(),
                                                                        FrozenDict())
        self._st = SubjectiveTimeParams()
        self.last_pattern = ""
        self.activated_memory = ()

    # ---- identity ----

    @property
    def life_id(self) -> str:
        return self._life_id

    @life_id.setter
    def life_id(self, value: object) -> NoReturn:
        _read_only("life_id", "the identity is fixed when the state is created")

    @property
    def birth_timestamp(self) -> float:
        return self._birth_timestamp

    @birth_timestamp.setter
    def birth_timestamp(self, value: object) -> NoReturn:
        _read_only("birth_timestamp", "the identity is fixed when the state is created")

    # ---- vitals ----

    @property
    def vitals(self) -> Vitals:
        """The live seqlock record: safe to read from any thread."""
        return self._vitals

    def read_vitals(self) -> VitalValues:
        """All vitals from one consistent read."""
        return _vital_values(self._vitals.read_tuple())

    @property
    def active(self) -> bool:
        """Energy, integrity and stability all > 0, from one consistent read."""
        return _vital_values(self._vitals.read_tuple()).active

    @active.setter
    def active(self, value: object) -> NoReturn:
        _read_only("active", "it is derived from energy, integrity and stability")

    def is_viable(self) -> bool:
        """The original's stricter test: energy > 10, integrity > 0.1, stability > 0.1."""
        v = _vital_values(self._vitals.read_tuple())
        return v.energy > 10 and v.integrity > 0.1 and v.stability > 0.1

    def set_vitals(self, **values: float) -> None:
        """Set several vitals in one write section (clamped; all or nothing)."""
        ticks = values.get("ticks")
        if isinstance(ticks, (int, float)) and not isinstance(ticks, bool) and ticks < 0:
            raise ValueError(f"ticks must be >= 0, got {ticks!r}")
        self._vitals.write(**values)

    def apply_delta(self, deltas: Mapping[str, float]) -> None:
        """Add each delta to its vital in one write section: clamped, all or nothing.

        Unlike the original, an unknown name is an error (KeyError naming the
        vitals), not silently ignored.  A non-number or bool raises TypeError,
        NaN or infinity ValueError, a non-integral or negative ``ticks`` delta
        ValueError (the tick counter only moves forward).  Nothing is written
        when anything is wrong.
        """
        if not isinstance(deltas, Mapping):
            raise TypeError(f"apply_delta() takes a mapping of vital names to numbers, "
                            f"got {deltas!r}")
        for name in deltas:
            if name not in _VITAL_SET:
                raise KeyError(f"apply_delta(): {name!r} is not a vital; deltas apply to "
                               f"{', '.join(_VITAL_NAMES)}")
        dt = deltas.get("ticks")
        if isinstance(dt, (int, float)) and not isinstance(dt, bool) and dt < 0:
            raise ValueError(f"apply_delta(): the ticks delta must be >= 0, got {dt!r}")
        self._vitals.apply_delta(deltas)

    # ---- logs ----

    @property
    def memory(self) -> SnapshotLog[MemoryEntry]:
        """The memory log (writer side).  FIFO: appending to a full log evicts the oldest.

        ``state.memory.append(entry)`` and `add_memory` are the same; entries
        must be `MemoryEntry`s.  Low-weight entries are removed only by
        `prune_memory` (the loop calls it every N ticks): per-append eviction
        by weight, as the original did, is O(n) per append.
        """
        return self._memory

    @property
    def recent_events(self) -> SnapshotLog[str]:
        """Event types, oldest first, at most ``recent_events_cap`` (`add_event`)."""
        return self._recent_events

    @property
    def energy_history(self) -> SnapshotLog[float]:
        return self._energy_history

    @property
    def stability_history(self) -> SnapshotLog[float]:
        return self._stability_history

    @property
    def adaptation_history(self) -> SnapshotLog[FrozenDict[str, Any]]:
        """Adaptation records (frozen mappings), at most ``adaptation_history_cap``."""
        return self._adaptation_history

    @property
    def caps(self) -> dict[str, int]:
        """The caps this state was built with (pass them to `from_dict` to rebuild it)."""
        return {"memory_cap": self._memory.maxlen,
                "recent_events_cap": self._recent_events.maxlen,
                "history_cap": self._energy_history.maxlen,
                "adaptation_history_cap": self._adaptation_history.maxlen}

    def add_memory(self, entry: MemoryEntry) -> None:
        """Append `entry`; when the log is full its oldest entry is evicted (O(1))."""
        if not isinstance(entry, MemoryEntry):
            raise TypeError(f"add_memory() takes a MemoryEntry, got {entry!r}")
        self._memory.append(entry)

    def decay_memory_weights(self, decay_factor: float = 0.99, *, min_weight: float = 0.0,
                             now: float | None = None) -> None:
        """Decay every entry's weight in one O(n) rebuild (the original's formula).

        ``w *= decay_factor / (1 + age_s / 86400) * (0.5 + 0.5 * significance)``,
        then at least `min_weight`.  `decay_factor` in (0, 1], `min_weight`
        >= 0; `now` defaults to ``time.time()``.  Meant for every N ticks, not
        every tick.
        """
        factor = _in_range("decay_factor", decay_factor, 0.0, 1.0)
        if factor == 0.0:
            raise ValueError("decay_factor: must be > 0, got 0")
        floor = _in_range("min_weight", min_weight, 0.0, None)
        t = time.time() if now is None else _number("now", now)

        def decayed(e: MemoryEntry) -> MemoryEntry:
            age = t - e.timestamp if t > e.timestamp else 0.0
            w = e.weight * factor / (1.0 + age / 86400.0) * (0.5 + 0.5 * e.meaning_significance)
            return e.with_weight(w if w > floor else floor)

        self._memory.transform(decayed)

    def prune_memory(self, min_weight: float = 0.1) -> int:
        """Remove entries lighter than `min_weight` (in [0, 1]) in one O(n) pass.

        Returns how many were removed.  The original ran this on every append.
        """
        threshold = _in_range("min_weight", min_weight, 0.0, 1.0)
        return self._memory.remove_if(lambda e: e.weight < threshold)

    def add_event(self, event_type: str) -> None:
        """Record a processed event's type in `recent_events` (oldest evicted when full)."""
        self._recent_events.append(_nonempty_str("event_type", event_type))

    def record_history(self, *, energy: float | None = None,
                       stability: float | None = None) -> None:
        """Append to the energy/stability histories; with no argument, the current vitals."""
        if energy is None and stability is None:
            v = _vital_values(self._vitals.read_tuple())
            energy, stability = v.energy, v.stability
        # Both checked before either is appended.
        e = None if energy is None else _number("energy", energy)
        s = None if stability is None else _number("stability", stability)
        if e is not None:
            self._energy_history.append(e)
        if s is not None:
            self._stability_history.append(s)

    def add_adaptation_record(self, record: Mapping[str, Any]) -> None:
        """Append an adaptation record (a JSON-ready mapping, stored frozen)."""
        self._adaptation_history.append(_json_mapping("adaptation record", record))

    # ---- dicts ----

    @property
    def learning_params(self) -> FrozenDict[str, FrozenDict[str, float]]:
        """The current learning parameters, read-only (`update_learning_params` changes them)."""
        return self._learning.freeze()

    @property
    def adaptation_params(self) -> FrozenDict[str, FrozenDict[str, float]]:
        return self._adaptation.freeze()

    def update_learning_params(self, changes: Mapping[str, Mapping[str, float]]) -> None:
        """Merge ``{group: {key: value}}`` into the learning parameters, all or nothing.

        Groups: ``event_type_sensitivity``, ``significance_thresholds`` (values
        clamped to [0, 1]) and ``response_coefficients`` ([0, 2]).  An unknown
        group raises KeyError, a non-number TypeError, NaN/infinity ValueError.
        """
        self._learning.update(_param_changes("learning_params", self._learning, changes))

    def update_adaptation_params(self, changes: Mapping[str, Mapping[str, float]]) -> None:
        """As `update_learning_params`; groups ``behavior_sensitivity``,
        ``behavior_thresholds`` ([0, 1]) and ``behavior_coefficients`` ([0, 2]).
        """
        self._adaptation.update(_param_changes("adaptation_params", self._adaptation, changes))

    @property
    def planning(self) -> FrozenDict[str, Any]:
        return self._pi[0]

    @property
    def intelligence(self) -> FrozenDict[str, Any]:
        return self._pi[1]

    def set_planning_and_intelligence(self, planning: Mapping[str, Any],
                                      intelligence: Mapping[str, Any]) -> None:
        """Replace both together (JSON-ready mappings, stored frozen): never torn apart."""
        pair = (_json_mapping("planning", planning), _json_mapping("intelligence", intelligence))
        self._pi = pair

    @property
    def subjective_time_params(self) -> SubjectiveTimeParams:
        return self._st

    def set_subjective_time_params(self, **changes: float) -> None:
        """Change some of ``base_rate, rate_min, rate_max, intensity_coeff, stability_coeff``.

        Finite numbers, ``0 <= rate_min <= rate_max``; all or nothing.
        """
        unknown = [k for k in changes if k not in SubjectiveTimeParams._fields]
        if unknown:
            raise TypeError(f"unknown subjective-time parameter(s) {', '.join(unknown)}; "
                            f"valid: {', '.join(SubjectiveTimeParams._fields)}")
        self._st = _checked_st_params({**self._st._asdict(), **changes})

    # ---- snapshots, status, persistence ----

    def freeze(self) -> FrozenState:
        """Every part as it is now, immutable; O(1) in the size of the logs.

        The writer's call (readers use published snapshots).
        """
        version, values = self._vitals.read_versioned()
        planning, intelligence = self._pi
        return FrozenState(version, _vital_values(values), self._life_id, self._birth_timestamp,
                           self._st, self._memory.view(), self._recent_events.view(),
                           self._energy_history.view(), self._stability_history.view(),
                           self._adaptation_history.view(), self._learning.freeze(),
                           self._adaptation.freeze(), planning, intelligence)

    def get_safe_status_dict(self, include_optional: bool = True,
                             limits: Mapping[str, int | None] | None = None) -> dict[str, Any]:
        """The API's view of the state now; see `FrozenState.status_dict`."""
        return self.freeze().status_dict(include_optional, limits)

    def to_dict(self) -> dict[str, Any]:
        """Everything persistent, JSON-ready; see `FrozenState.to_dict`."""
        return self.freeze().to_dict()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, memory_cap: int = 50,
                  recent_events_cap: int = 1000, history_cap: int = 1000,
                  adaptation_history_cap: int = 50) -> SelfState:
        """Rebuild a state from `to_dict()` output (after a JSON round trip too).

        ``schema_version`` must be `SCHEMA_VERSION`; any other key must be one
        `to_dict` writes.  Missing keys take their defaults; vitals and
        parameters are clamped to their bounds as the original did on load
        (``ticks`` < 0 is an error); ``active`` is derived and ignored.  Logs
        longer than their cap keep their newest entries.  Bad data raises
        `ValueError` naming the field, e.g. ``energy: expected a number, got 'x'``.
        """
        caps = {"memory_cap": memory_cap, "recent_events_cap": recent_events_cap,
                "history_cap": history_cap, "adaptation_history_cap": adaptation_history_cap}
        if not isinstance(data, Mapping):
            raise ValueError(f"snapshot data: expected a mapping, got {type(data).__name__}")
        try:
            return cls._from_dict(data, caps)
        except (TypeError, KeyError) as exc:
            # One exception type for every bad input, as the callers (loaders) expect.
            msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
            raise ValueError(msg) from None

    @classmethod
    def _from_dict(cls, data: Mapping[str, Any], caps: dict[str, int]) -> SelfState:
        version = data.get("schema_version")
        if version != SCHEMA_VERSION or isinstance(version, bool):
            raise ValueError(f"schema_version: this build reads version {SCHEMA_VERSION}, "
                             f"got {version!r}" if "schema_version" in data else
                             "schema_version: missing (not a SelfState.to_dict() snapshot?)")
        unknown = sorted(str(k) for k in data if k not in _PERSISTED_KEYS)
        if unknown:
            raise ValueError(f"unknown field(s): {', '.join(unknown)}")
        state = cls(**caps, life_id=data.get("life_id"),
                    birth_timestamp=data.get("birth_timestamp"))

        vitals: dict[str, float | int] = {}
        for name in _VITAL_NAMES:
            if name in data:
                vitals[name] = _number(name, data[name])
        if "ticks" in vitals:
            ticks = data["ticks"]
            if isinstance(ticks, float) and ticks.is_integer():
                ticks = int(ticks)
            if not isinstance(ticks, int) or ticks < 0:
                raise ValueError(f"ticks: expected an int >= 0, got {data['ticks']!r}")
            vitals["ticks"] = ticks
        if "active" in data and not isinstance(data["active"], bool):
            raise ValueError(f"active: expected a bool, got {data['active']!r}")
        state._st = _checked_st_params(
            {name: data[key] for name, key in zip(SubjectiveTimeParams._fields, _ST_KEYS)
             if key in data}, prefix="subjective_time_")

        def entries(key: str) -> list[Any]:
            value = data.get(key, [])
            if not isinstance(value, (list, tuple)):
                raise ValueError(f"{key}: expected a list, got {type(value).__name__}")
            cap = getattr(state, key).maxlen
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
        events = [_nonempty_str(f"recent_events[{i}]", e)
                  for i, e in enumerate(entries("recent_events"))]
        energy = [_number(f"energy_history[{i}]", x)
                  for i, x in enumerate(entries("energy_history"))]
        stability = [_number(f"stability_history[{i}]", x)
                     for i, x in enumerate(entries("stability_history"))]
        adaptation = [_json_mapping(f"adaptation_history[{i}]", r)
                      for i, r in enumerate(entries("adaptation_history"))]
        learning = _param_changes("learning_params", state._learning,
                                  data.get("learning_params", {}))
        adaptation_params = _param_changes("adaptation_params", state._adaptation,
                                           data.get("adaptation_params", {}))
        pi = (_json_mapping("planning", data.get("planning", {})),
              _json_mapping("intelligence", data.get("intelligence", {})))

        # Everything is valid: now build (nothing above wrote to the new state
        # except the subjective-time parameters).
        state._vitals.write(**vitals)
        state._memory.extend(memory)
        state._recent_events.extend(events)
        state._energy_history.extend(energy)
        state._stability_history.extend(stability)
        state._adaptation_history.extend(adaptation)
        state._learning.update(learning)
        state._adaptation.update(adaptation_params)
        state._pi = pi
        return state

    def __repr__(self) -> str:
        v = _vital_values(self._vitals.read_tuple())
        return (f"<SelfState {self._life_id} ticks={v.ticks} energy={v.energy:g} "
                f"integrity={v.integrity:g} stability={v.stability:g} "
                f"memory={len(self._memory)}/{self._memory.maxlen}>")
