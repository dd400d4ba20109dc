"""`SelfState`: the Life application's state, written by one thread (the runtime loop).

Vitals (`src.state.vitals`) live in a `csnapshot.Vitals` seqlock record: a
write is clamped, one write section, and visible to every reader at once.
Logs (memory of `MemoryEntry`s, recent_events, the histories) are bounded
`csnapshot.SnapshotLog`s (O(1) views); dicts (learning/adaptation parameters,
`src.state.params`; planning, intelligence) are copy-on-write `FrozenDict`s.
`freeze()` captures it all as one immutable `FrozenState` in O(1); its
`status_dict()` is the API's view (`src.state.status`) and its `to_dict()` the
persistence format (`src.state.state_format`), read back by `from_dict()`.

One thread mutates a `SelfState`; others read published snapshots or the
vitals record (docs/components/self-state.md).  Names this module had before
the state layer was split are re-exported, so old imports keep working.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Collection, Mapping
from typing import Any, NoReturn

from csnapshot import CowDict, FrozenDict, SnapshotLog, Vitals

from src.validation import (finite_number, json_mapping, nonempty_str,
                            number_in_range, positive_int)

from .frozen import FrozenState
from .memory import MemoryEntry, reweighted as reweigh
from .params import (ADAPTATION_PARAMS_DEFAULT, LEARNING_PARAMS_DEFAULT, PARAM_BOUNDS,
                     merged_param_changes)
from .state_format import LOGS, SCHEMA_VERSION, check_header, decode_state
from .status import STATUS_LIMIT_KEYS
from .vitals import (SUBJECTIVE_TIME_KEYS, VITAL_FIELDS, VITAL_NAMES, SubjectiveTimeParams,
                     TicksAttribute, VitalAttribute, VitalValues, checked_subjective_time_params,
                     refuse_negative_ticks)

__all__ = ["SelfState", "MemoryEntry", "FrozenState", "VitalValues", "SubjectiveTimeParams",
           "SCHEMA_VERSION", "VITAL_FIELDS", "STATUS_LIMIT_KEYS", "LEARNING_PARAMS_DEFAULT",
           "ADAPTATION_PARAMS_DEFAULT", "PARAM_BOUNDS"]

logger = logging.getLogger(__name__)

_VITAL_SET = frozenset(VITAL_NAMES)
_vital_values = VitalValues._make


def _one_error(exc: TypeError | KeyError) -> ValueError:
    """One exception type for every bad input, as the callers (loaders) expect."""
    return ValueError(exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc))


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

    energy = VitalAttribute("energy", "Energy, clamped to [0, 100].")
    integrity = VitalAttribute("integrity", "Integrity, clamped to [0, 1].")
    stability = VitalAttribute("stability", "Stability, clamped to [0, 1].")
    fatigue = VitalAttribute("fatigue", "Fatigue, clamped to >= 0.")
    tension = VitalAttribute("tension", "Tension, clamped to >= 0.")
    age = VitalAttribute("age", "Wall-clock seconds lived, clamped to >= 0.")
    subjective_time = VitalAttribute("subjective_time", "Subjective seconds lived, clamped to >= 0.")
    ticks = TicksAttribute("ticks", "Loop ticks (int); a negative value raises ValueError.")
    last_event_intensity = VitalAttribute("last_event_intensity",
                                  "Intensity of the last event batch, clamped to [0, 1].")
    last_significance = VitalAttribute("last_significance", "Significance of the last event.")

    def __init__(self, *, memory_cap: int = 50, recent_events_cap: int = 1000,
                 history_cap: int = 1000, adaptation_history_cap: int = 50,
                 life_id: str | None = None, birth_timestamp: float | None = None) -> None:
        caps = {"memory_cap": memory_cap, "recent_events_cap": recent_events_cap,
                "history_cap": history_cap, "adaptation_history_cap": adaptation_history_cap}
        for name, cap in caps.items():
            positive_int(name, cap)
        self._life_id = str(uuid.uuid4()) if life_id is None else nonempty_str("life_id", life_id)
        self._birth_timestamp = (time.time() if birth_timestamp is None
                                 else finite_number("birth_timestamp", birth_timestamp))
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
        refuse_negative_ticks("ticks", values.get("ticks"))
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
                               f"{', '.join(VITAL_NAMES)}")
        refuse_negative_ticks("apply_delta(): the ticks delta", deltas.get("ticks"))
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
        factor = number_in_range("decay_factor", decay_factor, 0.0, 1.0)
        if factor == 0.0:
            raise ValueError("decay_factor: must be > 0, got 0")
        floor = number_in_range("min_weight", min_weight, 0.0, None)
        t = time.time() if now is None else finite_number("now", now)

        def decayed(e: MemoryEntry) -> MemoryEntry:
            age = t - e.timestamp if t > e.timestamp else 0.0
            w = e.weight * factor / (1.0 + age / 86400.0) * (0.5 + 0.5 * e.meaning_significance)
            return e.with_weight(w if w > floor else floor)

        self._memory.transform(decayed)

    def prune_memory(self, min_weight: float = 0.1) -> int:
        """Remove entries lighter than `min_weight` (in [0, 1]) in one O(n) pass.

        Returns how many were removed.  The original ran this on every append.
        """
        threshold = number_in_range("min_weight", min_weight, 0.0, 1.0)
        return self._memory.remove_if(lambda e: e.weight < threshold)

    def add_event(self, event_type: str) -> None:
        """Record a processed event's type in `recent_events` (oldest evicted when full)."""
        self._recent_events.append(nonempty_str("event_type", event_type))

    def record_history(self, *, energy: float | None = None,
                       stability: float | None = None) -> None:
        """Append to the energy/stability histories; with no argument, the current vitals."""
        if energy is None and stability is None:
            v = _vital_values(self._vitals.read_tuple())
            energy, stability = v.energy, v.stability
        # Both checked before either is appended.
        e = None if energy is None else finite_number("energy", energy)
        s = None if stability is None else finite_number("stability", stability)
        if e is not None:
            self._energy_history.append(e)
        if s is not None:
            self._stability_history.append(s)

    def add_adaptation_record(self, record: Mapping[str, Any]) -> None:
        """Append an adaptation record (a JSON-ready mapping, stored frozen)."""
        self._adaptation_history.append(json_mapping("adaptation record", record))

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
        self._learning.update(merged_param_changes("learning_params", self._learning, changes))

    def update_adaptation_params(self, changes: Mapping[str, Mapping[str, float]]) -> None:
        """As `update_learning_params`; groups ``behavior_sensitivity``,
        ``behavior_thresholds`` ([0, 1]) and ``behavior_coefficients`` ([0, 2]).
        """
        self._adaptation.update(merged_param_changes("adaptation_params", self._adaptation, changes))

    @property
    def planning(self) -> FrozenDict[str, Any]:
        return self._pi[0]

    @property
    def intelligence(self) -> FrozenDict[str, Any]:
        return self._pi[1]

    def set_planning_and_intelligence(self, planning: Mapping[str, Any],
                                      intelligence: Mapping[str, Any]) -> None:
        """Replace both together (JSON-ready mappings, stored frozen): never torn apart."""
        pair = (json_mapping("planning", planning), json_mapping("intelligence", intelligence))
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
        self._st = checked_subjective_time_params({**self._st._asdict(), **changes})

    # ---- snapshots, status, persistence ----

    def freeze(self) -> FrozenState:
        """Every part as it is now, immutable, in O(1): the writer's call (readers: snapshots)."""
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
            check_header(data)
            state = cls(**caps, life_id=data.get("life_id"),
                        birth_timestamp=data.get("birth_timestamp"))
            parts = decode_state(data, state.caps)
        except (TypeError, KeyError) as exc:
            raise _one_error(exc) from None
        state._load(data, parts)
        return state

    def apply_changes(self, data: Mapping[str, Any], appended: Collection[str] = (),
                      reweighted: tuple[object, object] | None = None) -> None:
        """Bring the state to the one `data` describes as a change of it: a replica's call.

        `data` is a partial `to_dict()` (``schema_version`` and any other keys):
        what it holds is set - a log replaced, or appended to for a log named in
        `appended` (the oldest evicted at the cap, as the writer's appends do) -
        and nothing else changes (``life_id`` and ``birth_timestamp`` never do).
        `reweighted`: ``(skip, weights)`` of `memory.weight_changes`, applied to
        the memory log before its appends (a decay).  So a replica follows a
        state by what changed between two versions (`LogView.appended_since`).
        Validated as `from_dict` validates, before anything is written: bad
        data is a ValueError naming the field.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"changes: expected a mapping, got {type(data).__name__}")
        unknown = sorted(str(k) for k in appended if k not in LOGS)
        if unknown:
            raise ValueError(f"appended: not a log: {', '.join(unknown)}; logs: "
                             f"{', '.join(LOGS)}")
        if reweighted is not None and "memory" in data and "memory" not in appended:
            raise ValueError("reweighted memory given with the whole memory log")
        memory = None if reweighted is None else reweigh(list(self._memory), *reweighted)
        try:
            check_header(data)
            parts = decode_state(data, self.caps)
        except (TypeError, KeyError) as exc:
            raise _one_error(exc) from None
        if memory is not None:
            self._memory.clear()
            self._memory.extend(memory)
        self._load(data, parts, appended)

    def _load(self, data: Mapping[str, Any], parts: Any, appended: Collection[str] = ()) -> None:
        """Write the validated `parts` of `data` (`decode_state`): the keys `data` holds only."""
        if any(key in data for key in SUBJECTIVE_TIME_KEYS):
            self._st = parts.subjective_time_params
        if parts.vitals:
            self._vitals.write(**parts.vitals)
        for key in LOGS:
            if key in data:
                log = getattr(self, f"_{key}")  # each log's attribute is its key's
                if key not in appended:
                    log.clear()
                log.extend(getattr(parts, key))
        if "learning_params" in data:
            self._learning.update(parts.learning_params)
        if "adaptation_params" in data:
            self._adaptation.update(parts.adaptation_params)
        planning, intelligence = self._pi
        self._pi = (parts.planning if "planning" in data else planning,
                    parts.intelligence if "intelligence" in data else intelligence)

    def __repr__(self) -> str:
        v = _vital_values(self._vitals.read_tuple())
        return (f"<SelfState {self._life_id} ticks={v.ticks} energy={v.energy:g} "
                f"integrity={v.integrity:g} stability={v.stability:g} "
                f"memory={len(self._memory)}/{self._memory.maxlen}>")
