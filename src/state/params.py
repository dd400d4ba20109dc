"""Learning and adaptation parameters: their groups, defaults and bounds, defined once.

Two dicts of groups of numbers, both keyed by the event types
(`src.environment.event.KNOWN_EVENT_TYPES`) or by the response patterns
(`RESPONSE_PATTERNS`, what the meaning engine answers an event with):

- ``learning_params``: ``event_type_sensitivity``, ``significance_thresholds``
  (per event type, in [0, 1]) and ``response_coefficients`` (per pattern, in
  [0, 2]);
- ``adaptation_params``: ``behavior_sensitivity``, ``behavior_thresholds``,
  ``behavior_coefficients``, the same shapes and bounds.

`PARAM_BOUNDS` is what every writer clamps to: an update through `SelfState`,
a snapshot load, and each learning or adaptation step (`src.runtime.learning`).
Coefficients go to 2.0 (the original's load bound): ``amplify`` is 1.5 and
learning must be able to raise ``absorb`` (1.0) above 1.
"""

from __future__ import annotations

from collections.abc import Mapping

from csnapshot import FrozenDict

from src.environment.event import KNOWN_EVENT_TYPES
from src.validation import finite_number

__all__ = ["RESPONSE_PATTERNS", "RESPONSE_COEFFICIENTS_DEFAULT", "LEARNING_PARAMS_DEFAULT",
           "ADAPTATION_PARAMS_DEFAULT", "PARAM_BOUNDS", "merged_param_changes"]

# What the meaning engine answers an event with.  "ignore" has no impact; the
# other three scale the event's impact by their coefficient, looked up in the
# adaptation params, then the learning params, then `RESPONSE_COEFFICIENTS_DEFAULT`.
RESPONSE_PATTERNS: tuple[str, ...] = ("ignore", "dampen", "absorb", "amplify")
RESPONSE_COEFFICIENTS_DEFAULT: FrozenDict[str, float] = FrozenDict(
    {"dampen": 0.5, "absorb": 1.0, "amplify": 1.5})
# The parameter dicts start as the original's: three coefficients, "ignore"'s
# (never applied) included and "amplify"'s left to the default above.
_STORED_COEFFICIENTS: FrozenDict[str, float] = FrozenDict(
    {"dampen": RESPONSE_COEFFICIENTS_DEFAULT["dampen"],
     "absorb": RESPONSE_COEFFICIENTS_DEFAULT["absorb"], "ignore": 0.0})

LEARNING_PARAMS_DEFAULT: FrozenDict[str, FrozenDict[str, float]] = FrozenDict({
    "event_type_sensitivity": FrozenDict(dict.fromkeys(KNOWN_EVENT_TYPES, 0.2)),
    "significance_thresholds": FrozenDict(dict.fromkeys(KNOWN_EVENT_TYPES, 0.1)),
    "response_coefficients": _STORED_COEFFICIENTS,
})
ADAPTATION_PARAMS_DEFAULT: FrozenDict[str, FrozenDict[str, float]] = FrozenDict({
    "behavior_sensitivity": FrozenDict(dict.fromkeys(KNOWN_EVENT_TYPES, 0.2)),
    "behavior_thresholds": FrozenDict(dict.fromkeys(KNOWN_EVENT_TYPES, 0.1)),
    "behavior_coefficients": _STORED_COEFFICIENTS,
})
PARAM_BOUNDS: FrozenDict[str, tuple[float, float]] = FrozenDict({
    "event_type_sensitivity": (0.0, 1.0),
    "significance_thresholds": (0.0, 1.0),
    "response_coefficients": (0.0, 2.0),
    "behavior_sensitivity": (0.0, 1.0),
    "behavior_thresholds": (0.0, 1.0),
    "behavior_coefficients": (0.0, 2.0),
})


def merged_param_changes(where: str, current: Mapping[str, Mapping[str, float]],
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
            x = finite_number(f"{where}.{group}.{key}", value)
            new[key] = min(max(x, lo), hi)  # clamped, like the vitals
        merged[group] = FrozenDict(new)
    return merged
