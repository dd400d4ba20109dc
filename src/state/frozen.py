"""`FrozenState`: every part of a `SelfState` at one moment, immutable and O(1) to take."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from csnapshot import FrozenDict, LogView

from .memory import MemoryEntry
from .state_format import encode_state
from .status import check_limits, status_view
from .vitals import SubjectiveTimeParams, VitalValues

__all__ = ["FrozenState"]


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
        return status_view(self, include_optional, check_limits(limits))

    def to_dict(self) -> dict[str, Any]:
        """Everything persistent, JSON-ready, read back by `SelfState.from_dict`.

        The format is `src.state.state_format`; O(size of the state): for
        persistence threads, not for request handlers.
        """
        return encode_state(self)
