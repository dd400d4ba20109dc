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

The private names follow _vitals.pyx name for name (``_slot``, ``_apply_dict``,
``_convert``, ``_commit``, ``FieldWriter._slots``, ``_HeldSection``, ``_restore``,
``_INTERNAL``, ``STACK_SLOTS``), so a change to one is easy to find in the other.
Only the twin has ``_cell``/``_write_lock`` (its record), ``_lows``/``_highs`` (the
native bounds table) and ``_timeout_wait`` (the native ``_timeout_ns``, in seconds).
"""

from __future__ import annotations

import math
import threading
from typing import Any, Iterable, Iterator, Literal, Mapping

from ._schema import (
    INT64_MAX,
    INT64_MIN,
    Field,
    StalledWriterError,
    check_layout,
    check_schema,
    check_timeout,
    coerce,
    timeout_forever,
    unknown_field,
)

__all__ = ["Vitals"]


class Vitals:
    """A record of named numeric fields: consistent reads, all-or-nothing writes."""

    __slots__ = ("_fields", "_names", "_index", "_lows", "_highs", "_cell",
                 "_write_lock", "_timeout", "_timeout_wait", "_layout", "__weakref__")

    def __init__(self, fields: Iterable[Field], *, timeout: float = 1.0,
                 layout: str = "classic") -> None:
        schema = check_schema(fields)
        timeout = check_timeout(timeout)
        latch = check_layout(layout)
        with _INIT_LOCK:  # one __init__ per object, as in the native type
            try:
                object.__getattribute__(self, "_cell")
            except AttributeError:
                pass
            else:
                raise RuntimeError("Vitals.__init__ may only be called once")
            self._init(schema, timeout, latch)

    def _init(self, schema: tuple[Field, ...], timeout: float, latch: bool) -> None:
        # The twin has one record form: readers of its cell never wait in
        # either layout, which it only remembers (the native latch's _latch).
        self._layout = "latch" if latch else "classic"
        self._timeout = timeout
        # The native _timeout_ns: what the lock waits take (-1: forever).
        self._timeout_wait = -1 if timeout_forever(timeout) else timeout
        self._fields = schema
        self._names = tuple(f.name for f in schema)
        self._index = {f.name: i for i, f in enumerate(schema)}
        self._lows = tuple(_low(f) for f in schema)
        self._highs = tuple(_high(f) for f in schema)
        self._write_lock = threading.Lock()
        # [(completed write sections, values in schema order)]: one reference.
        self._cell: list[tuple[int, tuple[Any, ...]]] = [
            (0, tuple(f.default for f in schema))]

    def __getattr__(self, name: str) -> Any:
        # Only reached when a slot is unset: the object's __init__ never ran
        # (Vitals.__new__(Vitals), a subclass that skipped super().__init__).
        # The native type raises the same error from every entry point.
        if name in _SLOTS:
            raise _not_initialised(self)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    # ---- reads: one attribute load, never a lock ----

    @property
    def fields(self) -> tuple[Field, ...]:
        return self._fields

    @property
    def layout(self) -> str:
        return self._layout

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
        return self._cell[0][1][self._slot(name)]

    __getitem__ = get

    def __contains__(self, name: object) -> bool:
        try:
            return name in self._index
        except TypeError:  # an unhashable name is not a field, as in the native type
            return False

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    # ---- writes: validate everything, then one section under the lock ----

    def write(self, **values: Any) -> None:
        self._apply_dict(values, False)

    def apply_delta(self, deltas: Mapping[str, Any]) -> None:
        if not isinstance(deltas, Mapping):
            raise TypeError(f"apply_delta() takes a mapping of field names to numbers, "
                            f"got {type(deltas).__name__}")
        self._apply_dict(deltas, True)

    def write_tuple(self, values: Iterable[Any]) -> None:
        values = tuple(values)
        if len(values) != len(self._names):
            raise ValueError(f"write_tuple() needs {len(self._names)} values in schema order "
                             f"({', '.join(self._names)}), got {len(values)}")
        self._commit([(k, self._convert(k, v, False)) for k, v in enumerate(values)], False)

    def index(self, name: str) -> int:
        return self._slot(name)

    def writer(self, *names: str) -> "FieldWriter":
        if len(set(names)) != len(names):
            raise ValueError(f"writer() got a field name twice: {names!r}")
        if len(names) > STACK_SLOTS:
            raise ValueError(f"writer() takes at most {STACK_SLOTS} fields, got {len(names)}")
        return FieldWriter(_INTERNAL, self, tuple(self._slot(n) for n in names))

    def _slot(self, name: object) -> int:
        try:
            return self._index[name]  # type: ignore[index]
        except (KeyError, TypeError):
            raise unknown_field(name, self._fields) from None

    def _apply_dict(self, values: Mapping[str, Any], delta: bool) -> None:
        # Every value is checked and converted before the section opens.
        prepared = []
        for name, value in values.items():
            i = self._slot(name)
            prepared.append((i, self._convert(i, value, delta)))
        self._commit(prepared, delta)

    def _convert(self, i: int, value: Any, delta: bool) -> float | int:
        # One value as field i's kind, unclamped (clamping happens in _commit),
        # except that an int saturates at the int64 range first: the native
        # slot holds an int64, so a delta of -2**64 adds INT64_MIN there.
        out = coerce(self._fields[i], value, delta=delta)
        if self._fields[i].kind is int:
            out = min(max(out, INT64_MIN), INT64_MAX)
        return out

    def _commit(self, prepared: list[tuple[int, Any]], delta: bool) -> None:
        if not prepared:
            return  # nothing to write: no section, no new version
        if not self._write_lock.acquire(timeout=self._timeout_wait):
            raise StalledWriterError(
                f"Vitals: another writer held the write lock for over {self._timeout} s")
        try:
            version, current = self._cell[0]
            new = list(current)
            for i, value in prepared:
                if delta:
                    value = new[i] + value
                    if not math.isfinite(value):  # nothing is published: unchanged
                        raise ValueError(f"delta for field {self._fields[i].name!r} would "
                                         f"make it {value!r}; the record is unchanged")
                    if self._fields[i].kind is int:
                        value = min(max(value, INT64_MIN), INT64_MAX)
                new[i] = min(max(value, self._lows[i]), self._highs[i])
            self._cell[0] = (version + 1, tuple(new))
        finally:
            self._write_lock.release()

    # ---- copying, pickling, repr ----

    def __copy__(self) -> "Vitals":
        new: Vitals = _restore(*self.__reduce__()[1])
        return new

    def __deepcopy__(self, memo: dict[int, Any]) -> "Vitals":
        return self.__copy__()

    def __reduce__(self) -> tuple[Any, ...]:
        if self._layout == "classic":  # the classic form: what older pickles hold too
            return (_restore, (type(self), self._fields, self._cell[0][1], self._timeout))
        return (_restore, (type(self), self._fields, self._cell[0][1], self._timeout, "latch"))

    def __repr__(self) -> str:
        try:
            version, values = self._cell[0]
        except RuntimeError:
            return f"<{type(self).__name__} (not initialised)>"

        body = ", ".join(f"{n}={v!r}" for n, v in zip(self._names, values))
        return f"<Vitals {body} version={version}>"

    # ---- test hook ----

    def _hold_write_section(self) -> "_HeldSection":
        """Keep the writers' lock taken until the `with` block ends (tests of stalled writers only)."""
        return _HeldSection(_INTERNAL, self)


class FieldWriter:
    """``vitals.writer("a", "b")(1.0, 2.0)``: a positional write of fixed fields.

    Made only by `Vitals.writer`; immutable and not picklable, like the
    native one.
    """

    __slots__ = ("_vitals", "_slots")
    _vitals: Vitals
    _slots: tuple[int, ...]

    def __init__(self, token: object = None, vitals: Any = None, slots: Any = None) -> None:
        if token is not _INTERNAL:
            raise TypeError("FieldWriter objects are made by Vitals.writer(*names) only")
        object.__setattr__(self, "_vitals", vitals)
        object.__setattr__(self, "_slots", slots)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"FieldWriter is immutable; cannot set {name!r}")

    def __reduce_ex__(self, protocol: object) -> Any:
        raise TypeError("cannot pickle 'FieldWriter' object")

    def __repr__(self) -> str:
        names = ", ".join(self._vitals._names[i] for i in self._slots)
        return f"<FieldWriter ({names})>"

    def __call__(self, *values: Any) -> None:
        v = self._vitals
        if len(values) != len(self._slots):
            raise TypeError(f"this writer takes {len(self._slots)} values "
                            f"({', '.join(v._names[i] for i in self._slots)}), "
                            f"got {len(values)}")
        v._commit([(i, v._convert(i, x, False)) for i, x in zip(self._slots, values)], False)


class _HeldSection:
    # Made only by Vitals._hold_write_section(); the native one keeps the
    # seqlock's write section open, this one the writers' lock.
    __slots__ = ("_vitals", "_held", "_exit_lock")

    def __init__(self, token: object, vitals: Vitals) -> None:
        if token is not _INTERNAL:
            raise TypeError("_HeldSection objects are made by Vitals._hold_write_section() only")
        self._vitals = vitals
        self._held = False
        self._exit_lock = threading.Lock()

    def __reduce_ex__(self, protocol: object) -> Any:
        raise TypeError("cannot pickle '_HeldSection' object")

    def __enter__(self) -> "_HeldSection":
        if not self._vitals._write_lock.acquire(timeout=self._vitals._timeout_wait):
            raise StalledWriterError("Vitals: write section busy")
        self._held = True
        return self

    def __exit__(self, *exc: object) -> Literal[False]:
        # Only one exit releases the lock, however many threads leave the block.
        with self._exit_lock:
            held, self._held = self._held, False
        if held:
            self._vitals._write_lock.release()
        return False


def _low(f: Field) -> float | int:
    if f.min is not None:
        return f.min
    return -float("inf") if f.kind is float else INT64_MIN


def _high(f: Field) -> float | int:
    if f.max is not None:
        return f.max
    return float("inf") if f.kind is float else INT64_MAX


_SLOTS = frozenset(Vitals.__slots__)
_INIT_LOCK = threading.Lock()
_INTERNAL = object()
STACK_SLOTS = 32  # the native writer's fixed index array: the most fields a writer takes


def _not_initialised(self: object) -> RuntimeError:
    return RuntimeError(
        f"this {type(self).__name__} object is not initialised: Vitals.__init__ did not run "
        "(a subclass __init__ must call super().__init__(fields, ...))")


def _restore(cls: type, fields: tuple[Field, ...], values: tuple[Any, ...], timeout: float,
             layout: str = "classic") -> Any:
    """Unpickle/copy: a new record with the same schema, values and layout, version 0."""
    if not (isinstance(cls, type) and issubclass(cls, Vitals)):
        raise TypeError(f"cannot restore Vitals: {cls!r} is not a Vitals type")
    check_layout(layout)
    # The classic layout without the keyword: a subclass's __init__ need not take it.
    new = (cls(fields, timeout=timeout) if layout == "classic"
           else cls(fields, timeout=timeout, layout=layout))
    values = tuple(values)
    if len(values) != len(new._names):
        raise ValueError(f"cannot restore Vitals: {len(new._names)} fields but {len(values)} values")
    new.write_tuple(values)  # validated and clamped like any write
    new._cell[0] = (0, new._cell[0][1])  # nobody else can see `new` yet: version 0
    return new
