"""`Event`: something that happens to Life, validated when it is built.

Events come from the environment's generator or from HTTP ``POST /event``
threads; they reach the state only through the runtime loop (the single
writer), which takes them from an `EventQueue` once per tick.

Types:

- the five **known types** of the original project (`KNOWN_EVENT_TYPES`):
  ``noise``, ``decay``, ``recovery``, ``shock``, ``idle``.  The meaning engine
  (`src.runtime.meaning`) gives each a weight and an impact on the vitals;
- a **free-form type**: any other identifier - a letter, then up to 63
  letters, digits, ``_``, ``-`` or ``.`` (e.g. ``"sound"``, ``"user.ping"``).
  It is weighed 1.0 and changes no vital (the original's defaults for an
  unknown type), but a significant one is remembered (memory,
  ``recent_events``) like any other.  ``action`` and ``feedback`` are reserved
  (they name memory entries the loop writes itself) and rejected.

A bad event raises at construction, naming the value: a type that is not a
string `TypeError`, a malformed or reserved one `ValueError`; an intensity that
is not a real number (bool included) `TypeError`, NaN or infinity
`ValueError`; the same for the timestamp; metadata that is not a JSON-ready
mapping `TypeError`/`ValueError`.  A finite intensity outside [-1, 1] is
clamped, as the vitals are.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from csnapshot import FrozenDict, freeze_value

from src.validation import check_json, finite_number

__all__ = ["Event", "KNOWN_EVENT_TYPES", "RESERVED_EVENT_TYPES", "check_event_type"]

KNOWN_EVENT_TYPES: tuple[str, ...] = ("noise", "decay", "recovery", "shock", "idle")
RESERVED_EVENT_TYPES: frozenset[str] = frozenset({"action", "feedback"})
_KNOWN = frozenset(KNOWN_EVENT_TYPES)
_FREE_FORM = re.compile(r"[A-Za-z][A-Za-z0-9_.\-]{0,63}")
_EMPTY: FrozenDict[str, Any] = FrozenDict()


def check_event_type(event_type: object) -> str:
    """`event_type` if it is a known or a well-formed free-form type, else TypeError/ValueError."""
    if type(event_type) is str and event_type in _KNOWN:
        return event_type
    if not isinstance(event_type, str):
        raise TypeError(f"Event.type: expected a string, got {event_type!r}")
    if event_type in RESERVED_EVENT_TYPES:
        raise ValueError(f"Event.type: {event_type!r} is reserved for the loop's own memory "
                         f"entries; known types: {', '.join(KNOWN_EVENT_TYPES)}")
    if not _FREE_FORM.fullmatch(event_type):
        raise ValueError(f"Event.type: {event_type!r} is neither a known type "
                         f"({', '.join(KNOWN_EVENT_TYPES)}) nor a free-form identifier "
                         f"(a letter, then up to 63 letters, digits, '_', '-' or '.')")
    return event_type


@dataclass(frozen=True, slots=True)
class Event:
    """One event: `type`, `intensity` in [-1, 1], `timestamp` (wall clock), `metadata`.

    Immutable and validated on construction (see the module doc); `intensity`
    is clamped to [-1, 1], `timestamp` defaults to ``time.time()``, `metadata`
    is stored deeply frozen (a `FrozenDict`, empty by default).
    """

    type: str
    intensity: float = 0.0
    timestamp: float = field(default_factory=time.time)
    metadata: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)

    def __post_init__(self) -> None:
        put = object.__setattr__  # frozen: normalise in place, once
        check_event_type(self.type)
        x = finite_number("Event.intensity", self.intensity)
        put(self, "intensity", -1.0 if x < -1.0 else 1.0 if x > 1.0 else x)
        put(self, "timestamp", finite_number("Event.timestamp", self.timestamp))
        md = self.metadata
        if md is None or (type(md) is FrozenDict and not md):
            put(self, "metadata", _EMPTY)
            return
        if not isinstance(md, Mapping):
            raise TypeError(f"Event.metadata: expected a mapping, got {md!r}")
        check_json("Event.metadata", md)
        put(self, "metadata", freeze_value(dict(md)))

    @property
    def known(self) -> bool:
        """True for the five known types, False for a free-form one."""
        return self.type in _KNOWN

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{type, intensity, timestamp, metadata}``."""
        return {"type": self.type, "intensity": self.intensity, "timestamp": self.timestamp,
                "metadata": self.metadata}

