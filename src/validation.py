"""The application's value checks, defined once: every module that validates input uses these.

Each check returns the normalised value or raises naming `where` (the field or
argument), so an error message always says what was wrong and where:
``TypeError`` for the wrong kind of value, ``ValueError`` for a bad value of
the right kind.  Bools are never numbers here: ``True`` for an intensity or a
cap is a caller's bug, not the number 1.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, TypeGuard

from csnapshot import FrozenDict, freeze_value

__all__ = ["MAX_JSON_DEPTH", "is_int", "is_number", "is_finite_number", "finite_number", "number_in_range", "positive_int",
           "nonempty_str", "check_json", "json_mapping", "json_text_depth"]

# Deeper than any structure the application builds (adaptation records are 4
# levels) and shallow enough that a cycle or a hostile body fails fast.
MAX_JSON_DEPTH = 32


def is_int(value: object) -> TypeGuard[int]:
    """An int, and not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    """An int or a float, and not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_finite_number(value: object) -> bool:
    """`is_number`, and not NaN or infinite (for checks that report their own error)."""
    return is_number(value) and math.isfinite(value)  # type: ignore[arg-type]


def finite_number(where: str, value: object) -> float:
    """`value` as a finite float, or TypeError/ValueError naming `where`."""
    if not is_number(value):
        raise TypeError(f"{where}: expected a number, got {value!r}")
    try:
        x = float(value)  # type: ignore[arg-type]
    except OverflowError:
        raise ValueError(f"{where}: {value!r} is too large for a float") from None
    if not math.isfinite(x):
        raise ValueError(f"{where}: must be finite, got {value!r}")
    return x


def number_in_range(where: str, value: object, lo: float | None, hi: float | None) -> float:
    """`finite_number`, and also ``lo <= value <= hi`` (either bound may be None)."""
    x = finite_number(where, value)
    if (lo is not None and x < lo) or (hi is not None and x > hi):
        if hi is None:
            shown = f">= {lo}"
        elif lo is None:
            shown = f"<= {hi}"
        else:
            shown = f"in [{lo}, {hi}]"
        raise ValueError(f"{where}: must be {shown}, got {value!r}")
    return x


def positive_int(where: str, value: object) -> int:
    """An int > 0 (not a bool), or ValueError naming `where`."""
    if not is_int(value) or value <= 0:
        raise ValueError(f"{where} must be a positive int, got {value!r}")
    return value


def nonempty_str(where: str, value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{where}: expected a string, got {value!r}")
    if not value:
        raise ValueError(f"{where}: must not be empty")
    return value


_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = bytes(set(range(256)) - set(b"[]{}"))


def json_text_depth(text: bytes) -> int:
    """How deep the arrays and objects of JSON `text` nest (0 for a scalar).

    Measured on the text, before parsing: ``json.loads`` recurses once per
    level, so a small hostile body (``[[[[...]]]]``) would otherwise reach the
    interpreter's recursion limit before `check_json` could refuse it.
    Strings are dropped first, so brackets inside them do not count.
    """
    brackets = _STRING.sub(b"", text).translate(None, _NOT_BRACKETS)
    depth = deepest = 0
    for byte in brackets:
        if byte in b"[{":
            depth += 1
            if depth > deepest:
                deepest = depth
        else:
            depth -= 1
    return deepest


def check_json(where: str, value: object, depth: int = 0) -> None:
    """Refuse anything `json.dumps` would reject (or turn into invalid JSON)."""
    if value is None or isinstance(value, (str, bool, int)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where}: {value!r} is not valid JSON (numbers must be finite)")
        return
    if depth >= MAX_JSON_DEPTH:
        raise ValueError(f"{where}: nested deeper than {MAX_JSON_DEPTH} levels (a cycle?)")
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"{where}: keys must be strings, got {k!r}")
            check_json(f"{where}.{k}", v, depth + 1)
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            check_json(f"{where}[{i}]", v, depth + 1)
    else:
        raise TypeError(f"{where}: a {type(value).__name__} is not JSON data (allowed: dict, "
                        f"list, tuple, str, int, float, bool, None)")


def json_mapping(where: str, value: object) -> FrozenDict[str, Any]:
    """A JSON-ready mapping, deeply frozen (built once by the writer, shared by readers)."""
    if not isinstance(value, Mapping):
        raise TypeError(f"{where}: expected a mapping, got {value!r}")
    check_json(where, value)
    frozen = freeze_value(value)
    assert isinstance(frozen, FrozenDict)
    return frozen
