"""Pure-Python twin of the native `Vitals`: a lock for writers, a tuple for readers.

It has the native type's API and semantics, and it is what the contract tests
hold the native type to.  It is also the fallback when the extension cannot be
imported.  The whole design in one sentence: the current values live in one
immutable tuple ``(version, values)``; writers build the next tuple under a
lock and publish it by replacing the one item of a list (the "cell"); readers
read that item and never wait.  A list item, not a plain attribute, because
list item access is what CPython makes safe against concurrent replacement on
free-threaded builds (PyList_GetItemRef / PyList_SetItem); a ``__slots__``
member read is not guaranteed to be on 3.13.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Iterable, Iterator, Mapping

from ._schema import (
    INT64_MAX,
    INT64_MIN,
    Field,
    StalledWriterError,
    check_schema,
    coerce,
    unknown_field,
)

__all__ = ["Vitals"]


class Vitals:
    """A record of named numeric fields: consistent reads, all-or-nothing writes."""

    __slots__ = ("_fields", "_names", "_index", "_lows", "_highs", "_cell",
                 "_write_lock", "_timeout", "__weakref__")

    def __init__(self, fields: Iterable[Field], *, timeout: float = 1.0) -> None:
        schema = check_schema(fields)
        self._timeout = _check_timeout(timeout)
        self._fields = schema
        self._names = tuple(f.name for f in schema)
        self._index = {f.name: i for i, f in enumerate(schema)}
        self._lows = tuple(_low(f) for f in schema)
        self._highs = tuple(_high(f) for f in schema)
        self._write_lock = threading.Lock()
        # [(completed write sections, values in schema order)]: one reference.
        self._cell: list[tuple[int, tuple[Any, ...]]] = [
            (0, tuple(f.default for f in schema))]

    # ---- reads: one attribute load, never a lock ----

    @property
    def fields(self) -> tuple[Field, ...]:
        return self._fields

    @property
    def version(self) -> int:
        return self._cell[0][0]

    def read_tuple(self) -> tuple[Any, ...]:
        return self._cell[0][1]

    def read_versioned(self) -> tuple[int, tuple[Any, ...]]:
        return self._cell[0]

    def read(self) -> dict[str, Any]:
        return dict(zip(self._names, self._cell[0][1]))

    def get(self, name: str) -> Any:
        try:
            i = self._index[name]
        except (KeyError, TypeError):
            raise unknown_field(name, self._fields) from None
        return self._cell[0][1][i]

    __getitem__ = get

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    # ---- writes: validate everything, then one section under the lock ----

    def write(self, **values: Any) -> None:
        self._commit(self._prepare(values, delta=False), delta=False)

    def apply_delta(self, deltas: Mapping[str, Any]) -> None:
        if not isinstance(deltas, Mapping):
            raise TypeError(f"apply_delta() takes a mapping of field names to numbers, "
                            f"got {type(deltas).__name__}")
        self._commit(self._prepare(deltas, delta=True), delta=True)

    def write_tuple(self, values: Iterable[Any]) -> None:
        values = tuple(values)
        if len(values) != len(self._names):
            raise ValueError(f"write_tuple() needs {len(self._names)} values in schema order "
                             f"({', '.join(self._names)}), got {len(values)}")
        self._commit([(i, coerce(self._fields[i], v)) for i, v in enumerate(values)],
                     delta=False)

    def index(self, name: str) -> int:
        return self._lookup(name)

    def writer(self, *names: str) -> "_FieldWriter":
        if len(set(names)) != len(names):
            raise ValueError(f"writer() got a field name twice: {names!r}")
        return _FieldWriter(self, tuple(self._lookup(n) for n in names))

    def _lookup(self, name: object) -> int:
        try:
            return self._index[name]  # type: ignore[index]
        except (KeyError, TypeError):
            raise unknown_field(name, self._fields) from None

    def _prepare(self, values: Mapping[str, Any], *, delta: bool) -> list[tuple[int, Any]]:
        prepared = []
        for name, value in values.items():
            i = self._lookup(name)
            prepared.append((i, coerce(self._fields[i], value, delta=delta)))
        return prepared

    def _commit(self, prepared: list[tuple[int, Any]], *, delta: bool) -> None:
        if not prepared:
            return  # nothing to write: no section, no new version
        if not self._write_lock.acquire(timeout=self._timeout):
            raise StalledWriterError(
                f"Vitals: another writer held the write lock for over {self._timeout} s")
        try:
            version, current = self._cell[0]
            new = list(current)
            for i, value in prepared:
                if delta:
                    value = new[i] + value
                    if self._fields[i].kind is int:
                        value = min(max(value, INT64_MIN), INT64_MAX)
                new[i] = min(max(value, self._lows[i]), self._highs[i])
            self._cell[0] = (version + 1, tuple(new))
        finally:
            self._write_lock.release()

    # ---- copying, pickling, repr ----

    def __copy__(self) -> "Vitals":
        return self._clone()

    def __deepcopy__(self, memo: dict[int, Any]) -> "Vitals":
        return self._clone()

    def _clone(self) -> "Vitals":
        new = type(self)(self._fields, timeout=self._timeout)
        new._cell[0] = (0, self._cell[0][1])
        return new

    def __reduce__(self) -> tuple[Any, ...]:
        return (_restore, (type(self), self._fields, self._cell[0][1], self._timeout))

    def __repr__(self) -> str:
        version, values = self._cell[0]
        body = ", ".join(f"{n}={v!r}" for n, v in zip(self._names, values))
        return f"<Vitals {body} version={version}>"

    # ---- test hook ----

    @contextlib.contextmanager
    def _hold_write_section(self) -> Iterator[None]:
        """Keep the writers' lock taken (tests of stalled writers only)."""
        if not self._write_lock.acquire(timeout=self._timeout):
            raise StalledWriterError("Vitals: write lock busy")
        try:
            yield
        finally:
            self._write_lock.release()


class _FieldWriter:
    """``vitals.writer("a", "b")(1.0, 2.0)``: a positional write of fixed fields."""

    __slots__ = ("_vitals", "_indexes")

    def __init__(self, vitals: Vitals, indexes: tuple[int, ...]) -> None:
        self._vitals = vitals
        self._indexes = indexes

    def __call__(self, *values: Any) -> None:
        v = self._vitals
        if len(values) != len(self._indexes):
            raise TypeError(f"this writer takes {len(self._indexes)} values "
                            f"({', '.join(v._names[i] for i in self._indexes)}), "
                            f"got {len(values)}")
        v._commit([(i, coerce(v._fields[i], x)) for i, x in zip(self._indexes, values)],
                  delta=False)


def _low(f: Field) -> float | int:
    if f.min is not None:
        return f.min
    return -float("inf") if f.kind is float else INT64_MIN


def _high(f: Field) -> float | int:
    if f.max is not None:
        return f.max
    return float("inf") if f.kind is float else INT64_MAX


def _check_timeout(timeout: object) -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    return float(timeout)


def _restore(cls: type, fields: tuple[Field, ...], values: tuple[Any, ...], timeout: float) -> Any:
    """Unpickle: a new record with the same schema and values, version 0."""
    new = cls(fields, timeout=timeout)
    new.write_tuple(values)  # validated like any write
    new._cell[0] = (0, new._cell[0][1])
    return new
