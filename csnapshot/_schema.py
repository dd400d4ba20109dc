"""The schema of a vitals record: `Field`, schema checks and the shared errors.

Both implementations (the native `_vitals` and the pure-Python `_pyvitals`)
build their record from the same validated schema, so a schema is accepted or
rejected identically whichever one is in use.
"""

from __future__ import annotations

import math
import operator
import threading
from typing import Any, Iterable

__all__ = ["Field", "StalledWriterError", "check_schema", "INT64_MIN", "INT64_MAX"]

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


class StalledWriterError(TimeoutError):
    """A write section stayed open longer than the reader or writer would wait.

    Write sections last nanoseconds; this means a writer was stopped inside one
    (a debugger, a test hook, a native thread that never closed its section).
    """


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class Field:
    """One named numeric field of a `Vitals` record.

    ``kind`` is ``float`` (stored as a double) or ``int`` (a signed 64-bit
    integer).  Values written to the field are clamped to ``[min, max]``;
    ``None`` leaves that side unbounded.  ``default`` is the value a new record
    starts with: it must lie within the bounds; when omitted it is 0, or the
    nearest bound if 0 lies outside them.

    Fields are immutable, hashable, comparable and picklable.
    """

    __slots__ = ("name", "kind", "default", "min", "max")

    name: str
    kind: type
    default: float | int
    min: float | int | None
    max: float | int | None

    def __init__(
        self,
        name: str,
        kind: type = float,
        default: float | int | None = None,
        min: float | int | None = None,
        max: float | int | None = None,
    ) -> None:
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"field name must be a Python identifier, got {name!r}")
        if kind is not float and kind is not int:
            raise ValueError(f"field {name!r}: kind must be float or int, got {kind!r}")
        lo = _bound(name, "min", kind, min)
        hi = _bound(name, "max", kind, max)
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(f"field {name!r}: min {lo!r} is greater than max {hi!r}")
        if default is None:
            default = kind(0)
            if lo is not None and default < lo:
                default = lo
            elif hi is not None and default > hi:
                default = hi
        else:
            default = _bound(name, "default", kind, default)
            if (lo is not None and default < lo) or (hi is not None and default > hi):
                raise ValueError(
                    f"field {name!r}: default {default!r} is outside [{_show(lo)}, {_show(hi)}]"
                )
        for attr, value in (("name", name), ("kind", kind), ("default", default),
                            ("min", lo), ("max", hi)):
            object.__setattr__(self, attr, value)

    def __setattr__(self, attr: str, value: Any) -> None:
        raise AttributeError(f"Field is immutable; cannot set {attr!r}")

    def __delattr__(self, attr: str) -> None:
        raise AttributeError(f"Field is immutable; cannot delete {attr!r}")

    def _key(self) -> tuple[Any, ...]:
        return (self.name, self.kind, self.default, self.min, self.max)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Field):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        parts = [repr(self.name), f"kind={self.kind.__name__}", f"default={self.default!r}"]
        if self.min is not None:
            parts.append(f"min={self.min!r}")
        if self.max is not None:
            parts.append(f"max={self.max!r}")
        return f"Field({', '.join(parts)})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Field, self._key())


def _show(bound: object) -> str:
    return "unbounded" if bound is None else repr(bound)


def _bound(name: str, what: str, kind: type, value: object) -> Any:
    """Validate a bound or default of a field, returning it as `kind`."""
    if value is None:
        return None
    if not _is_number(value):
        raise ValueError(f"field {name!r}: {what} must be a number, got {value!r}")
    if kind is float:
        try:
            value = float(value)  # type: ignore[arg-type]
        except OverflowError:
            raise ValueError(f"field {name!r}: {what} {value!r} is too large for a float") from None
        if math.isnan(value):
            raise ValueError(f"field {name!r}: {what} must not be NaN")
        if not math.isfinite(value):
            # An infinite bound would let a delta carry the field to inf, after which
            # the record cannot be serialised; None is the way to say "unbounded".
            raise ValueError(f"field {name!r}: {what} must be finite (None for no bound), "
                             f"got {value!r}")
        return value
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"field {name!r}: {what} {value!r} is not an integer")
        value = int(value)
    if not INT64_MIN <= value <= INT64_MAX:  # type: ignore[operator]
        raise ValueError(f"field {name!r}: {what} {value!r} is outside the int64 range")
    return value


def check_schema(fields: Iterable[Field]) -> tuple[Field, ...]:
    """Return the schema as a tuple, or raise ValueError/TypeError naming the problem."""
    if isinstance(fields, (str, bytes, Field)):
        raise TypeError("Vitals() takes a sequence of Field objects, not a single value")
    try:
        schema = tuple(fields)
    except TypeError:
        raise TypeError(
            f"Vitals() takes a sequence of Field objects, got {type(fields).__name__}"
        ) from None
    if not schema:
        raise ValueError("a Vitals schema needs at least one Field")
    seen: set[str] = set()
    for f in schema:
        if not isinstance(f, Field):
            raise TypeError(f"a Vitals schema holds Field objects, got {f!r}")
        if f.name in seen:
            raise ValueError(f"duplicate field name {f.name!r} in the Vitals schema")
        seen.add(f.name)
    if len(schema) > 4096:
        raise ValueError(f"a Vitals schema holds at most 4096 fields, got {len(schema)}")
    return schema


# A timeout at least this long waits forever (Lock.acquire's own limit: about
# 292 years here).  Both implementations map it, and math.inf, to "no
# deadline": the native one to -1 ns, the twin to acquire(timeout=-1).
TIMEOUT_FOREVER = threading.TIMEOUT_MAX


def check_timeout(timeout: object) -> float:
    """A record's timeout in seconds: a positive int or float; inf (or >= TIMEOUT_FOREVER) is forever."""
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    try:
        t = float(timeout)
    except OverflowError:  # an int beyond the float range: forever
        return math.inf
    if not t > 0:  # also NaN
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    return t


LAYOUTS = ("classic", "latch")


def check_layout(layout: object) -> bool:
    """A record's layout, checked: True for ``"latch"``, False for ``"classic"``."""
    if not isinstance(layout, str) or layout not in LAYOUTS:
        raise ValueError(f"layout must be 'classic' or 'latch', got {layout!r}")
    return layout == "latch"


def timeout_forever(timeout: float) -> bool:
    """True when `timeout` (from check_timeout) means "wait forever"."""
    return timeout >= TIMEOUT_FOREVER


def unknown_field(name: object, schema: tuple[Field, ...]) -> KeyError:
    valid = ", ".join(f.name for f in schema)
    return KeyError(f"unknown field {name!r}; valid fields: {valid}")


def coerce(field: Field, value: Any, *, delta: bool = False) -> float | int:
    """Check one value for `field` and return it as the field's kind (unclamped).

    The pure-Python twin uses this directly; the native type implements the
    same rules in C and the contract tests hold both to them.
    """
    if type(value) is float and field.kind is float and math.isfinite(value):
        return value  # the common case, first
    what = "delta for" if delta else "value for"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if hasattr(type(value), "__index__") and not isinstance(value, bool):
            value = operator.index(value)  # TypeError when __index__ returns a non-int
        elif hasattr(type(value), "__float__") and not isinstance(value, (str, bytes, bool)):
            value = float(value)
        else:
            raise TypeError(
                f"{what} field {field.name!r} must be a number (int or float), got {value!r}"
            )
    if isinstance(value, float):
        # A float subclass (numpy.float64) as an exact float; float.__pos__ runs no
        # Python-level override, so a hostile subclass cannot return something else.
        real: float = float.__pos__(value)
        if not math.isfinite(real):
            raise ValueError(f"{what} field {field.name!r} must be finite, got {value!r}")
        if field.kind is int:
            if not real.is_integer():
                raise ValueError(
                    f"{what} int field {field.name!r} must be integral, got {value!r}"
                )
            return int(real)
        return real
    assert isinstance(value, int)
    whole: int = int.__pos__(value)  # an int subclass as an int (numpy ints: __index__ above)
    if field.kind is float:
        try:
            return float(whole)
        except OverflowError:
            raise ValueError(
                f"{what} field {field.name!r} is too large for a float: {value!r}"
            ) from None
    return whole
