"""`MemoryEntry`: one remembered event, action or feedback record, immutable once built."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from src.validation import finite_number, json_mapping, nonempty_str, number_in_range

__all__ = ["MemoryEntry", "MEMORY_ENTRY_KEYS", "weight_changes", "reweighted"]

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


# ---- a log that changed by its weights (decay), as a replica follows it ----

def _same_but_weight(a: MemoryEntry, b: MemoryEntry) -> bool:
    # `with_weight` keeps the other fields' objects: the same objects are equal values.
    return a is b or (a.timestamp is b.timestamp and a.event_type is b.event_type
                      and a.meaning_significance is b.meaning_significance
                      and a.feedback_data is b.feedback_data)


def weight_changes(old: Sequence[MemoryEntry], new: Sequence[MemoryEntry]
                   ) -> tuple[int, list[float], list[MemoryEntry]] | None:
    """``(skip, weights, added)`` such that ``reweighted(old, skip, weights) + added == new``.

    That is `new` as a log that evicted `old`'s first `skip` entries, gave
    the others new weights (`decay_memory_weights`) and appended `added`.
    None when it is not (an entry removed from the middle by a prune, a field
    other than the weight changed): then only the whole log says it.  O(n):
    for the Redis bridge, whose deltas would otherwise carry the whole memory
    log after every decay.
    """
    skip = next((i for i, e in enumerate(old) if _same_but_weight(e, new[0])),
                len(old)) if new else len(old)
    kept = len(old) - skip
    if kept > len(new) or not all(map(_same_but_weight, old[skip:], new[:kept])):
        return None
    return skip, [e.weight for e in new[:kept]], list(new[kept:])


def reweighted(old: Sequence[MemoryEntry], skip: object, weights: object) -> list[MemoryEntry]:
    """`old` from index `skip` on, each entry with its weight in `weights` (`weight_changes`).

    ValueError naming the bad value: `skip` not an int in ``[0, len(old)]``,
    `weights` not a list of one number >= 0 per entry kept.
    """
    if isinstance(skip, bool) or not isinstance(skip, int) or not 0 <= skip <= len(old):
        raise ValueError(f"reweighted memory: skip must be an int in [0, {len(old)}], "
                         f"got {skip!r}")
    if not isinstance(weights, list) or len(weights) != len(old) - skip:
        raise ValueError(f"reweighted memory: expected a list of {len(old) - skip} weights, "
                         f"got {weights!r:.80}")
    try:
        return [e.with_weight(w) for e, w in zip(old[skip:], weights)]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"reweighted memory: {exc}") from None
