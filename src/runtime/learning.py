"""Learning and adaptation: slow, bounded drifts of the state's parameters.

Both are the original project's rules (``src/learning/learning.py``,
``src/adaptation/adaptation.py``): no goals, no scoring, each value moves by
at most `MAX_DELTA` (0.01) per call, and a move smaller than `MIN_DELTA`
(0.001) is dropped.  Both are pure functions returning only what changed
(``{group: {key: new value}}``, empty when nothing did); the loop applies the
result with `SelfState.update_learning_params` / `update_adaptation_params`.

- **Learning** (every `LEARNING_INTERVAL` = 75 ticks), from the event entries
  in memory: a type's ``event_type_sensitivity`` rises when the type is more
  than 20 % of the remembered events and falls below 10 %; its
  ``significance_thresholds`` entry falls when the type's mean significance
  is above 0.5 and rises below 0.2; a ``response_coefficients`` entry rises
  when its pattern was more than 30 % of the responses since the last call and
  falls below 10 %.  The original counted patterns from its feedback records;
  here the loop counts the patterns it applied.  Values stay inside their
  group's `PARAM_BOUNDS` (sensitivities and thresholds [0, 1], coefficients
  [0, 2]: a clamp at 1.0 here used to keep ``absorb``, 1.0 by default, from
  ever rising).
- **Adaptation** (every `ADAPTATION_INTERVAL` = 100 ticks): each
  ``behavior_sensitivity`` / ``behavior_thresholds`` / ``behavior_coefficients``
  value moves toward its learning counterpart (``event_type_sensitivity`` /
  ``significance_thresholds`` / ``response_coefficients``) by at most 0.01,
  inside the same bounds.
  `adaptation_record` builds the history entry the loop stores.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from src.environment.event import RESERVED_EVENT_TYPES
from src.state.memory import MemoryEntry
from src.state.params import PARAM_BOUNDS

__all__ = ["learning_changes", "adaptation_changes", "adaptation_record", "MAX_DELTA",
           "MIN_DELTA", "LEARNING_INTERVAL", "ADAPTATION_INTERVAL"]

LEARNING_INTERVAL = 75
ADAPTATION_INTERVAL = 100
MAX_DELTA = 0.01
MIN_DELTA = 0.001
_NOT_EVENTS = RESERVED_EVENT_TYPES  # the loop's own entries, not events that happened
# Adaptation group <- the learning group it follows.
_FOLLOWS = {"behavior_sensitivity": "event_type_sensitivity",
            "behavior_thresholds": "significance_thresholds",
            "behavior_coefficients": "response_coefficients"}

Changes = dict[str, dict[str, float]]


def _clamped(group: str, value: float) -> float:
    lo, hi = PARAM_BOUNDS[group]
    return min(max(value, lo), hi)


def _step(group: str, current: float, direction: float) -> float | None:
    """`current` moved by `MAX_DELTA` in `direction`, or None when that is under `MIN_DELTA`."""
    new = _clamped(group, current + direction * MAX_DELTA)
    return new if abs(new - current) >= MIN_DELTA else None


def learning_changes(memory: Iterable[MemoryEntry],
                     learning_params: Mapping[str, Mapping[str, float]],
                     pattern_counts: Mapping[str, int]) -> Changes:
    """The learning step's changes (see the module doc); `pattern_counts` since the last step."""
    counts: dict[str, int] = {}
    total_sig: dict[str, float] = {}
    for e in memory:
        if e.event_type not in _NOT_EVENTS:
            counts[e.event_type] = counts.get(e.event_type, 0) + 1
            total_sig[e.event_type] = total_sig.get(e.event_type, 0.0) + e.meaning_significance
    changes: Changes = {}

    def put(group: str, key: str, new: float | None) -> None:
        if new is not None:
            changes.setdefault(group, {})[key] = new

    def by_frequency(group: str, of: Mapping[str, int], high: float, low: float) -> None:
        # A key more frequent than `high` rises, one rarer than `low` falls.
        total = sum(of.values())
        if total:
            for key, value in learning_params.get(group, {}).items():
                freq = of.get(key, 0) / total
                if freq > high or freq < low:
                    put(group, key, _step(group, value, 1.0 if freq > high else -1.0))

    by_frequency("event_type_sensitivity", counts, 0.2, 0.1)
    for key, value in learning_params.get("significance_thresholds", {}).items():
        n = counts.get(key, 0)
        if n:
            mean = total_sig[key] / n
            if mean > 0.5 or mean < 0.2:
                put("significance_thresholds", key,
                    _step("significance_thresholds", value, -1.0 if mean > 0.5 else 1.0))
    by_frequency("response_coefficients", pattern_counts, 0.3, 0.1)
    return changes


def adaptation_changes(learning_params: Mapping[str, Mapping[str, float]],
                       adaptation_params: Mapping[str, Mapping[str, float]]) -> Changes:
    """The adaptation step's changes: each behaviour value 0.01 closer to its learning value."""
    changes: Changes = {}
    for group, source in _FOLLOWS.items():
        target = learning_params.get(source, {})
        for key, value in adaptation_params.get(group, {}).items():
            if key in target:
                diff = target[key] - value
                step = max(-MAX_DELTA, min(MAX_DELTA, diff))
                new = _clamped(group, value + step)
                if abs(new - value) >= MIN_DELTA:
                    changes.setdefault(group, {})[key] = new
    return changes


def adaptation_record(tick: int, timestamp: float,
                      old: Mapping[str, Mapping[str, float]],
                      new: Mapping[str, Mapping[str, float]],
                      changes: Changes, learning_params: Mapping[str, Any]) -> dict[str, Any]:
    """The original's history entry: ``{timestamp, tick, old_params, new_params, changes,
    learning_params_snapshot}``, with ``changes[group][key] = {old, new, delta}``."""
    return {"timestamp": timestamp, "tick": tick, "old_params": old, "new_params": new,
            "changes": {g: {k: {"old": old[g][k], "new": v, "delta": v - old[g][k]}
                            for k, v in kv.items()} for g, kv in changes.items()},
            "learning_params_snapshot": learning_params}
