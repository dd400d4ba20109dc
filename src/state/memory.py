"""`MemoryEntry`: one remembered event, action or feedback record, immutable once built."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from src.validation import finite_number, json_mapping, nonempty_str, number_in_range

__all__ = ["MemoryEntry", "MEMORY_ENTRY_KEYS"]

# The 5 keys of an entry in snapshots and /status, in order; the first 3 are required.
MEMORY_ENTRY_KEYS = ("event_type", "meaning_significance", "timestamp", "weight",
                     "feedback_data")


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
        nonempty_str("MemoryEntry.event_type", self.event_type)
        put(self, "meaning_significance", number_in_range(
            "MemoryEntry.meaning_significance", self.meaning_significance, 0.0, 1.0))
        put(self, "timestamp", finite_number("MemoryEntry.timestamp", self.timestamp))
        put(self, "weight", number_in_range("MemoryEntry.weight", self.weight, 0.0, None))
        if self.feedback_data is not None:
            put(self, "feedback_data",
                json_mapping("MemoryEntry.feedback_data", self.feedback_data))

    def with_weight(self, weight: float) -> MemoryEntry:
        """A copy with another weight (what decay builds for every entry: kept cheap)."""
        w = number_in_range("MemoryEntry.weight", weight, 0.0, None)
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
            raise TypeError(f"expected a mapping with {', '.join(MEMORY_ENTRY_KEYS)}, "
                            f"got {data!r}")
        unknown = [k for k in data if k not in MEMORY_ENTRY_KEYS]
        if unknown:
            raise ValueError(f"unknown key(s) {', '.join(map(repr, unknown))}; "
                             f"valid: {', '.join(MEMORY_ENTRY_KEYS)}")
        missing = [k for k in MEMORY_ENTRY_KEYS[:3] if k not in data]
        if missing:
            raise ValueError(f"missing key(s) {', '.join(missing)}")
        return cls(**data)
