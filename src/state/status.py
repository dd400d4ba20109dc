"""The API's status view of a frozen state (the original's ``get_safe_status_dict``).

`STATUS_LIMIT_KEYS` names the logs a caller may ask for and is the one list
of them (the HTTP query parser accepts exactly these).  `check_limits`
validates a caller's limits; `status_view` builds the dict from limits that
are already valid, so a caller that validated them once (the HTTP layer,
while parsing the query) does not pay for it twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from src.validation import is_int

from .vitals import SUBJECTIVE_TIME_KEYS

if TYPE_CHECKING:
    from .frozen import FrozenState

__all__ = ["STATUS_LIMIT_KEYS", "check_limits", "status_view"]

STATUS_LIMIT_KEYS = ("memory_limit", "events_limit", "energy_history_limit",
                     "stability_history_limit", "adaptation_history_limit")


def check_limits(limits: Mapping[str, int | None] | None) -> dict[str, int]:
    """The given limits (``None`` values dropped), or ValueError/TypeError naming the bad one."""
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
        if not is_int(n):
            raise TypeError(f"{key}: expected an int, got {n!r}")
        checked[key] = n
    return checked


def status_view(state: FrozenState, include_optional: bool,
                limits: Mapping[str, int]) -> dict[str, Any]:
    """The status dict of `state`; `limits` must have passed `check_limits`.

    See `FrozenState.status_dict` for what is included.
    """
    lim = limits
    v = state.vitals
    out: dict[str, Any] = {}
    # Key order follows the original's snapshot files (dataclass field order).
    if include_optional:
        out["life_id"] = state.life_id
        out["birth_timestamp"] = state.birth_timestamp
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
        out["recent_events"] = state.recent_events.last(lim["events_limit"])
    out["last_significance"] = v.last_significance
    if lim.get("energy_history_limit", 0) > 0:
        out["energy_history"] = state.energy_history.last(lim["energy_history_limit"])
    if lim.get("stability_history_limit", 0) > 0:
        out["stability_history"] = state.stability_history.last(lim["stability_history_limit"])
    if include_optional:
        out["planning"] = state.planning
        out["intelligence"] = state.intelligence
    if "memory_limit" in lim:
        n = lim["memory_limit"]
        out["memory"] = [e.to_dict() for e in state.memory.last(n)] if n > 0 else []
    if include_optional:
        for key, value in zip(SUBJECTIVE_TIME_KEYS, state.subjective_time_params):
            out[key] = value
    out["last_event_intensity"] = v.last_event_intensity
    if include_optional:
        out["learning_params"] = state.learning_params
        out["adaptation_params"] = state.adaptation_params
    if lim.get("adaptation_history_limit", 0) > 0:
        out["adaptation_history"] = state.adaptation_history.last(
            lim["adaptation_history_limit"])
    return out
