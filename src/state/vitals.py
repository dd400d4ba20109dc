"""The vitals schema: the fields of the seqlock record, their bounds, and the subjective-time rate.

`VITAL_FIELDS` is the one definition of the vitals (names, kinds, defaults,
clamp bounds); `VitalValues` names one consistent read of them, in schema
order.  `SubjectiveTimeParams` are the five numbers that set how fast
subjective time runs (persisted under the ``subjective_time_*`` keys).
`VitalAttribute`/`TicksAttribute` make each vital an attribute of a
`SelfState` that reads and writes its record.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple, NoReturn

from csnapshot import Field

from src.validation import finite_number, is_number

__all__ = ["VITAL_FIELDS", "VITAL_NAMES", "VitalValues", "SubjectiveTimeParams",
           "SUBJECTIVE_TIME_KEYS", "checked_subjective_time_params", "vital_bounds",
           "VitalAttribute", "TicksAttribute", "refuse_negative_ticks"]

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
VITAL_NAMES: tuple[str, ...] = tuple(f.name for f in VITAL_FIELDS)


def vital_bounds(name: str) -> tuple[float, float]:
    """The clamp bounds of a bounded vital (energy, integrity, stability, ...)."""
    field = next(f for f in VITAL_FIELDS if f.name == name)
    assert field.min is not None and field.max is not None, f"{name} has no upper bound"
    return float(field.min), float(field.max)


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


assert VitalValues._fields == VITAL_NAMES, "VitalValues must follow VITAL_FIELDS"


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


# Their names in the persisted and status dicts.
SUBJECTIVE_TIME_KEYS = tuple(f"subjective_time_{name}" for name in SubjectiveTimeParams._fields)


def checked_subjective_time_params(params: Mapping[str, Any],
                                   prefix: str = "") -> SubjectiveTimeParams:
    """`SubjectiveTimeParams` from a mapping of some of its fields: finite, 0 <= min <= max."""
    values = {name: finite_number(f"{prefix}{name}", params[name]) for name in params}
    p = SubjectiveTimeParams(**values)
    if p.rate_min < 0:
        raise ValueError(f"{prefix}rate_min: must be >= 0, got {p.rate_min!r}")
    if p.rate_min > p.rate_max:
        raise ValueError(f"{prefix}rate_min ({p.rate_min!r}) must not exceed "
                         f"{prefix}rate_max ({p.rate_max!r})")
    return p


def refuse_negative_ticks(what: str, value: object) -> None:
    # The tick counter only moves forward: clamping a negative value would hide a bug.
    if is_number(value) and value < 0:  # type: ignore[operator]
        raise ValueError(f"{what} must be >= 0, got {value!r}")


class VitalAttribute:
    """A vital as an attribute of a `SelfState` (its record in ``obj._vitals``).

    ``state.<name>``: one atomic load of the record; assignment is one clamped write.
    """

    def __init__(self, name: str, doc: str) -> None:
        self.name = name
        self.__doc__ = doc

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        return obj._vitals.get(self.name)

    def __set__(self, obj: Any, value: float) -> None:
        obj._vitals.write(**{self.name: value})

    def __delete__(self, obj: Any) -> NoReturn:
        raise AttributeError(f"cannot delete the vital {self.name!r}")


class TicksAttribute(VitalAttribute):
    """The tick counter: clamping a negative value would hide a bug, so it raises."""

    def __set__(self, obj: Any, value: float) -> None:
        refuse_negative_ticks("ticks", value)
        obj._vitals.write(ticks=value)
