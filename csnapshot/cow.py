"""Copy-on-write containers: what one writer hands to many lock-free readers.

A writer thread owns the live structures and publishes immutable snapshots of
them; reader threads (HTTP handlers, persistence) take the latest snapshot with
one reference load and keep it as long as they like.  Three types:

- `SnapshotLog` (writer) / `LogView` (reader): a bounded, append-mostly log.
  ``view()`` is O(1) whatever the length: a persistent 32-way trie holds the
  full chunks, and only the last partial chunk (< 32 entries) is copied.
- `CowDict` (writer) / `FrozenDict` (reader): a dict copied only on the first
  write after a ``freeze()``; the frozen dict is a real ``dict`` (so
  ``json.dumps`` takes it as is) whose mutating methods raise ``TypeError``.
- `PublishCell`: one ``(version, object)`` tuple swapped by ``publish()`` and
  read by ``latest()`` without a lock.

A snapshot reflects the state at the moment ``view()``/``freeze()``/
``publish()`` returned, and never changes afterwards.  Entries and dict values
are shared, not copied: they must be immutable (tuples, frozen dataclasses,
`freeze_value()` results).  Why this is safe without the GIL, and the limits:
docs/development/cow.md.
"""

from __future__ import annotations

import operator
import threading
from collections.abc import Iterable, Iterator, Mapping, MutableMapping, Sequence
from typing import Any, Callable, Generic, NoReturn, TypeVar, overload

__all__ = ["SnapshotLog", "LogView", "CowDict", "FrozenDict", "PublishCell",
           "freeze_value", "json_default"]

T = TypeVar("T")
K = TypeVar("K")
V = TypeVar("V")

# ---- the trie (shared by SnapshotLog and LogView) -------------------------
#
# Entries are numbered by an absolute append number `a`.  Full chunks of 32
# entries are leaves (tuples); inner nodes are 32-tuples of children or None.
# A root at `shift` finds the child of `a` at ``(a >> shift) & 31``; shift 5
# means "children are leaves".  Nodes are never mutated: a change copies the
# path from the root (O(32 * depth)), so any root ever handed out stays valid.
# The live entries are [start, end); entries >= toff are in the tail (< 32).
_W = 32
_Node = tuple[Any, ...]  # a leaf (entries) or an inner node (children or None)


def _leaf(root: Any, shift: int, a: int) -> _Node:
    node = root
    while shift:
        node = node[(a >> shift) & 31]
        shift -= 5
    return node  # type: ignore[no-any-return]


def _set_leaf(node: _Node | None, shift: int, a: int, leaf: _Node | None) -> _Node | None:
    """Copy the path to the leaf holding `a`, putting `leaf` there.

    None drops the leaf, and a node left with no children becomes None, so
    evicted chunks cost no memory and the writer never scans them again.
    """
    children = list(node) if node is not None else [None] * _W
    i = (a >> shift) & 31
    children[i] = leaf if shift == 5 else _set_leaf(children[i], shift - 5, a, leaf)
    if children[i] is None and children.count(None) == _W:
        return None
    return tuple(children)


def _build(entries: list[Any]) -> tuple[_Node | None, int, list[Any], int]:
    """(root, shift, tail, toff) holding `entries` numbered from 0, in O(n)."""
    full = len(entries) - len(entries) % _W
    nodes: list[_Node] = [tuple(entries[i:i + _W]) for i in range(0, full, _W)]
    if not nodes:
        return None, 5, entries[full:], full
    shift = 5
    while len(nodes) > _W:
        nodes = [_pad(nodes[i:i + _W]) for i in range(0, len(nodes), _W)]
        shift += 5
    return _pad(nodes), shift, entries[full:], full


def _pad(nodes: list[_Node]) -> _Node:
    return tuple(nodes) + (None,) * (_W - len(nodes))


def _collect(root: Any, shift: int, tail: Sequence[Any], toff: int, lo: int,
             hi: int) -> list[Any]:
    """The entries [lo, hi) as a new list: O(hi - lo) plus one descent per chunk."""
    out: list[Any] = []
    a, top = lo, min(hi, toff)
    while a < top:
        j = a & 31
        k = min(_W, j + top - a)
        out += _leaf(root, shift, a)[j:k]
        a += k - j
    if a < hi:
        out += tail[a - toff:hi - toff]
    return out


class LogView(Sequence[T]):
    """An immutable view of a `SnapshotLog` at one moment (O(1) to take).

    ``len``, indexing (negative too) and iteration as for a tuple; slicing,
    ``last(k)`` and ``to_list()`` return new lists in time proportional to
    their length.  ``json.dumps`` cannot take it directly (the encoder only
    walks real lists/tuples): serialise ``to_list()``, or pass
    ``default=json_default``.  ``LogView(entries)`` builds one from a sequence.
    """

    # One tuple (root, shift, tail, toff, start, end): one immutable slot, so
    # __setattr__ can refuse everything and building a view stays cheap.
    # `_lineage`: its log's numbering of entries (see `appended_since`).
    __slots__ = ("_s", "_lineage")
    _s: tuple[_Node | None, int, tuple[T, ...], int, int, int]
    _lineage: object

    def __new__(cls, entries: Iterable[T] = ()) -> "LogView[T]":
        root, shift, tail, toff = _build(list(entries))
        return _make_view(root, shift, tuple(tail), toff, 0, toff + len(tail), object())

    def __len__(self) -> int:
        s = self._s
        return s[5] - s[4]

    @overload
    def __getitem__(self, i: int) -> T: ...
    @overload
    def __getitem__(self, i: slice) -> list[T]: ...

    def __getitem__(self, i: int | slice) -> T | list[T]:
        root, shift, tail, toff, start, end = self._s
        if isinstance(i, slice):
            r = range(end - start)[i]
            if r.step == 1:
                return _collect(root, shift, tail, toff, start + r.start, start + r.stop)
            return [self[k] for k in r]
        n = end - start
        k = operator.index(i)
        if k < 0:
            k += n
        if not 0 <= k < n:
            raise IndexError(f"LogView index {i} out of range for a view of {n} entries")
        a = start + k
        if a >= toff:
            return tail[a - toff]
        found: T = _leaf(root, shift, a)[a & 31]
        return found

    def __iter__(self) -> Iterator[T]:
        root, shift, tail, toff, start, end = self._s
        a = start
        while a < min(end, toff):
            j = a & 31
            k = min(_W, j + min(end, toff) - a)
            yield from _leaf(root, shift, a)[j:k]
            a += k - j
        if a < end:
            yield from tail[a - toff:end - toff]

    def __reversed__(self) -> Iterator[T]:
        root, shift, tail, toff, start, end = self._s
        a = end
        if a > toff:
            lo = max(start, toff)
            yield from reversed(tail[lo - toff:a - toff])
            a = lo
        while a > start:
            j = (a - 1) & 31
            lo = max(start, a - 1 - j)
            yield from reversed(_leaf(root, shift, a - 1)[lo & 31:j + 1])
            a = lo

    def last(self, k: int) -> list[T]:
        """The last `k` entries (all if fewer), oldest first, in O(k)."""
        k = operator.index(k)
        if k < 0:
            raise ValueError(f"last() takes a count >= 0, got {k}")
        root, shift, tail, toff, start, end = self._s
        return _collect(root, shift, tail, toff, max(start, end - k), end)

    def to_list(self, limit: int | None = None) -> list[T]:
        """All entries, or the last `limit`, as a new JSON-ready list."""
        if limit is None:
            root, shift, tail, toff, start, end = self._s
            return _collect(root, shift, tail, toff, start, end)
        return self.last(limit)

    def chunks(self) -> Iterator[tuple[T, ...]]:
        """The entries as consecutive tuples, oldest first: O(1) a chunk, none copied whole.

        Every chunk of 32 entries that the view holds whole is one of the log's
        own immutable tuples - the same object in every later view that still
        holds it - so a serialiser can keep each one's encoding by identity
        (holding a reference to the tuple: an id alone can be reused).  The
        first and the last chunk may be partial: new tuples, as slices are.
        """
        root, shift, tail, toff, start, end = self._s
        a, top = start, min(end, toff)
        while a < top:
            j = a & 31
            k = min(_W, j + top - a)
            leaf = _leaf(root, shift, a)
            yield leaf if k - j == _W else leaf[j:k]
            a += k - j
        if a < end:
            yield tail[a - toff:end - toff]

    def appended_since(self, older: "LogView[T]") -> list[T] | None:
        """What was appended to the log after `older` was taken, if nothing else changed.

        A list of the entries, oldest first (O(their number)), when this view is
        `older` with those appended and the oldest evicted, as ``append`` does: a
        log of the same ``maxlen`` holding `older`'s entries holds this view's
        once they are appended to it.  None when the log was edited otherwise in
        between (``replace``, ``remove_if``, ``transform``, ``clear``, an
        ``extend`` of ``maxlen`` or more entries, or one of the rare renumberings
        that keep the trie shallow), when `older` is newer than this view, or when
        the two are views of different logs: then only the whole view says what
        it holds.  For a replica that follows a log by its changes.
        """
        if not isinstance(older, LogView) or older._lineage is not self._lineage:
            return None
        root, shift, tail, toff, start, end = self._s
        old_start, old_end = older._s[4], older._s[5]
        if end < old_end or start < old_start:
            return None
        return _collect(root, shift, tail, toff, max(old_end, start), end)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, (LogView, list, tuple)):
            return NotImplemented
        return len(self) == len(other) and all(x == y for x, y in zip(self, other))

    __hash__ = None  # type: ignore[assignment]

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise TypeError(f"LogView is immutable: cannot set {name!r}")

    def __delattr__(self, name: str) -> NoReturn:
        raise TypeError(f"LogView is immutable: cannot delete {name!r}")

    def __copy__(self) -> "LogView[T]":
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return (LogView, (self.to_list(),))

    def __repr__(self) -> str:
        n = len(self)
        if n <= 8:
            return f"LogView({self.to_list()!r})"
        return f"<LogView of {n} entries, last 3: {self.last(3)!r}>"


def _make_view(root: _Node | None, shift: int, tail: tuple[T, ...], toff: int, start: int,
               end: int, lineage: object) -> LogView[T]:
    view = object.__new__(LogView)
    object.__setattr__(view, "_s", (root, shift, tail, toff, start, end))
    object.__setattr__(view, "_lineage", lineage)
    return view


class SnapshotLog(Generic[T]):
    """The writer side of a bounded log; ``view()`` gives readers an O(1) snapshot.

    ``append`` evicts the oldest entry when ``maxlen`` entries are live
    (amortised O(1): one O(log32 n) path copy per 32 appends); ``replace`` is
    O(log32 n); ``remove_if``/``transform``/``clear`` rebuild in O(n).
    Entries are stored, never copied or mutated: keep them immutable.  One
    writer by contract; a lock keeps a second writer from corrupting it.
    Reader threads use views, never this object.
    """

    __slots__ = ("_maxlen", "_root", "_shift", "_tail", "_toff", "_start", "_end",
                 "_dropped", "_view", "_lineage", "_lock")
    _root: _Node | None
    _shift: int
    _tail: list[T]       # entries [toff, end): the writer's own, never seen by readers
    _toff: int
    _start: int          # live entries are [start, end), by absolute append number
    _end: int
    _dropped: int        # chunks below this number are gone from the trie
    _view: LogView[T] | None  # the last view(), until the next change
    _lineage: object     # renewed whenever an entry's number or content changes

    def __init__(self, maxlen: int, entries: Iterable[T] = ()) -> None:
        if isinstance(maxlen, bool) or not isinstance(maxlen, int) or maxlen <= 0:
            raise ValueError(f"SnapshotLog maxlen must be a positive int, got {maxlen!r}")
        self._maxlen = maxlen
        self._lock = threading.Lock()
        self._reset([])
        self.extend(entries)

    @property
    def maxlen(self) -> int:
        return self._maxlen

    def __len__(self) -> int:
        return self._end - self._start

    @overload
    def __getitem__(self, i: int) -> T: ...
    @overload
    def __getitem__(self, i: slice) -> list[T]: ...

    def __getitem__(self, i: int | slice) -> T | list[T]:
        if isinstance(i, slice):
            return self.view()[i]
        n = self._end - self._start
        k = operator.index(i)
        if k < 0:
            k += n
        if not 0 <= k < n:
            raise IndexError(f"SnapshotLog index {i} out of range for a log of {n} entries")
        return self._get(self._start + k)

    def __iter__(self) -> Iterator[T]:
        # Iterate a view, so the writer may append while it iterates.
        return iter(self.view())

    def view(self) -> LogView[T]:
        """An immutable snapshot of the live entries, O(1) (copies < 32 entries)."""
        v = self._view
        if v is not None:  # built under the lock from a whole state: no need to lock
            return v
        with self._lock:
            v = self._view
            if v is None:  # cached until the next change: re-publishing is free
                v = self._view = _make_view(self._root, self._shift, tuple(self._tail),
                                            self._toff, self._start, self._end,
                                            self._lineage)
            return v

    def append(self, entry: T) -> None:
        with self._lock:
            self._append(entry)
            self._view = None

    def extend(self, entries: Iterable[T]) -> None:
        items = list(entries)  # before the lock: `entries` may be this log
        with self._lock:
            if len(items) >= self._maxlen:  # everything live is replaced
                self._reset(items[len(items) - self._maxlen:])
            else:
                for e in items:
                    self._append(e)
            self._view = None

    def replace(self, i: int, entry: T) -> None:
        """Put `entry` in place of the i-th live entry (negative counts from the end)."""
        with self._lock:
            n = self._end - self._start
            k = operator.index(i)
            if k < 0:
                k += n
            if not 0 <= k < n:
                raise IndexError(f"SnapshotLog.replace index {i} out of range "
                                 f"for a log of {n} entries")
            a = self._start + k
            if a >= self._toff:
                self._tail[a - self._toff] = entry  # views hold a tuple copy of the tail
            else:
                leaf = list(_leaf(self._root, self._shift, a))
                leaf[a & 31] = entry
                self._root = _set_leaf(self._root, self._shift, a, tuple(leaf))
            self._lineage = object()  # an entry changed in place: no view is older + appends
            self._view = None

    def remove_if(self, pred: Callable[[T], object]) -> int:
        """Drop the entries for which ``pred(entry)`` is true; O(n).  Returns how many.

        `pred` runs under the writers' lock: it must not call back into this log.
        """
        with self._lock:
            old = self._all()
            keep = [e for e in old if not pred(e)]
            if len(keep) != len(old):
                self._reset(keep)
            return len(old) - len(keep)

    def transform(self, fn: Callable[[T], T]) -> None:
        """Replace every entry by ``fn(entry)`` in one O(n) rebuild (vs n replaces)."""
        with self._lock:
            self._reset([fn(e) for e in self._all()])

    def clear(self) -> None:
        with self._lock:
            self._reset([])

    def __repr__(self) -> str:
        return f"<SnapshotLog of {len(self)} entries, maxlen={self._maxlen}>"

    # ---- internals: called with the lock held ----

    def _get(self, a: int) -> T:
        if a >= self._toff:
            return self._tail[a - self._toff]
        found: T = _leaf(self._root, self._shift, a)[a & 31]
        return found

    def _all(self) -> list[T]:
        return _collect(self._root, self._shift, self._tail, self._toff, self._start, self._end)

    def _reset(self, entries: list[T]) -> None:
        # Renumbering from 0 is safe: each view keeps its own root and numbers.
        self._root, self._shift, self._tail, self._toff = _build(entries)
        self._start = self._dropped = 0
        self._end = len(entries)
        self._lineage = object()  # numbers start again: older views are not comparable
        self._view = None

    def _push_tail(self) -> None:
        cap = 1 << (self._shift + 5)  # entries the root can number
        if self._toff >= cap:
            if (self._end - self._start) * _W <= cap:
                # Numbers only grow, and the depth with them.  Renumbering from
                # 0 once the live entries fill 1/32 of the root keeps the trie
                # at most one level deeper than len needs: O(n) once per
                # ~31 n appends, still amortised O(1).
                self._reset(self._all())
                return
            if self._root is not None:
                self._root = (self._root,) + (None,) * (_W - 1)
            self._shift += 5
        self._root = _set_leaf(self._root, self._shift, self._toff, tuple(self._tail))
        self._toff += _W
        self._tail = []

    def _append(self, entry: T) -> None:
        tail = self._tail
        tail.append(entry)
        self._end += 1
        if len(tail) == _W:
            self._push_tail()
        if self._end - self._start > self._maxlen:
            self._start += 1
            # Drop a chunk once all of it is evicted: amortised O(1) per eviction.
            while self._dropped + _W <= self._start and self._dropped < self._toff:
                self._root = _set_leaf(self._root, self._shift, self._dropped, None)
                self._dropped += _W


# ---- dicts -----------------------------------------------------------------

_dict_setitem = dict.__setitem__
_dict_delitem = dict.__delitem__
_dict_new = dict.__new__
_MISSING: Any = object()


def _refuse(name: str) -> Any:
    def refuse(self: object, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError(f"FrozenDict is read-only (a published snapshot): {name}() is "
                        f"not allowed; use dict(d) for a mutable copy")
    refuse.__name__ = name
    return refuse


class FrozenDict(dict[K, V]):
    """A read-only ``dict``: ``json.dumps``, ``isinstance(x, dict)`` and reads work as usual.

    The mutating methods raise ``TypeError``, and so does ``d.__class__ = X``
    (a dict subclass with the same layout would otherwise make it mutable).
    Limits: ``dict.__setitem__(d, k, v)``, ``object.__setattr__(d,
    "__class__", X)`` and friends bypass this (no reader does that by
    accident), and the values are as mutable as they were stored (see
    `freeze_value`).  ``d | x`` and ``d.copy()`` return plain, mutable dicts.
    """

    __slots__ = ()

    def __setattr__(self, name: str, value: object) -> None:
        if name == "__class__":
            raise TypeError("FrozenDict is read-only (a published snapshot): its __class__ "
                            "cannot be reassigned; use dict(d) for a mutable copy")
        object.__setattr__(self, name, value)  # no __dict__: AttributeError

    def __new__(cls, *args: Any, **kwargs: Any) -> "FrozenDict[K, V]":
        self = dict.__new__(cls)
        dict.update(self, *args, **kwargs)
        return self

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass  # filled by __new__: calling __init__ again must not add items

    __setitem__ = _refuse("__setitem__")
    __delitem__ = _refuse("__delitem__")
    __ior__ = _refuse("__ior__")
    clear = _refuse("clear")
    pop = _refuse("pop")
    popitem = _refuse("popitem")
    setdefault = _refuse("setdefault")
    update = _refuse("update")

    @classmethod
    def fromkeys(cls, iterable: Iterable[Any], value: Any = None) -> "FrozenDict[Any, Any]":
        return cls(dict.fromkeys(iterable, value))

    def __copy__(self) -> "FrozenDict[K, V]":
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenDict, (dict(self),))

    def __repr__(self) -> str:
        return f"FrozenDict({dict.__repr__(self)})"


def _frozen_copy(d: dict[K, V]) -> FrozenDict[K, V]:
    # FrozenDict(d) without the Python-level __new__/__init__: 3x faster on small dicts.
    new: FrozenDict[K, V] = _dict_new(FrozenDict)
    dict.update(new, d)
    return new


class CowDict(MutableMapping[K, V]):
    """The writer side of a dict whose ``freeze()`` is O(1).

    ``freeze()`` hands out the current dict itself and marks it shared; the
    first write after that copies it (O(n): right for small dicts, the kind a
    state record has).  Stored values are shared with every snapshot: store
    immutable ones, or pass nested dicts/lists through `freeze_value`.
    """

    __slots__ = ("_data", "_shared", "_lock")

    def __init__(self, initial: Mapping[K, V] | Iterable[tuple[K, V]] | None = None) -> None:
        self._data: FrozenDict[K, V] = FrozenDict(initial or ())
        self._shared = False
        self._lock = threading.Lock()

    def freeze(self) -> FrozenDict[K, V]:
        """A read-only snapshot of the current items, O(1)."""
        with self._lock:
            self._shared = True
            return self._data

    def _writable(self) -> FrozenDict[K, V]:
        # Called with the lock held.  Readers may hold the shared dict, so it
        # is never written again: copy it once, then write the copy in place.
        if self._shared:
            self._data = _frozen_copy(self._data)
            self._shared = False
        return self._data

    def __getitem__(self, key: K) -> V:
        return self._data[key]

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __iter__(self) -> Iterator[K]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: K, default: Any = None) -> Any:
        return self._data.get(key, default)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, CowDict):
            return self._data == other._data
        return self._data == other if isinstance(other, Mapping) else NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __setitem__(self, key: K, value: V) -> None:
        with self._lock:
            if self._data.get(key, _MISSING) is value:
                return  # no change: keep sharing
            _dict_setitem(self._writable(), key, value)

    def __delitem__(self, key: K) -> None:
        with self._lock:
            if key not in self._data:
                raise KeyError(key)
            _dict_delitem(self._writable(), key)

    def pop(self, key: K, default: Any = _MISSING) -> Any:
        with self._lock:
            if key not in self._data:
                if default is _MISSING:
                    raise KeyError(key)
                return default
            return dict.pop(self._writable(), key)

    def popitem(self) -> tuple[K, V]:
        with self._lock:
            if not self._data:
                raise KeyError("popitem(): CowDict is empty")
            return dict.popitem(self._writable())

    def setdefault(self, key: K, default: Any = None) -> Any:
        with self._lock:
            if key in self._data:
                return self._data[key]
            _dict_setitem(self._writable(), key, default)
            return default

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        items = dict(other, **kwargs)  # outside the lock: `other` may be this dict
        if items:
            with self._lock:
                dict.update(self._writable(), items)

    def clear(self) -> None:
        with self._lock:
            if self._shared:  # nothing to copy
                self._data, self._shared = FrozenDict(), False
            else:
                dict.clear(self._data)

    def __repr__(self) -> str:
        return f"CowDict({dict.__repr__(self._data)})"


def freeze_value(obj: Any) -> Any:
    """A deeply read-only equivalent of `obj`, built once by the writer.

    dict/Mapping -> FrozenDict, list/tuple -> tuple (namedtuples keep their
    type), set -> frozenset, CowDict -> its ``freeze()``, SnapshotLog -> its
    ``view()``; the same object comes back when nothing inside needed
    freezing.  Anything else (str, numbers, frozen dataclasses...) is assumed
    immutable and returned as is.  Not for cyclic structures.
    """
    if obj is None or type(obj) in _ATOMS:
        return obj
    if isinstance(obj, CowDict):
        return obj.freeze()
    if isinstance(obj, SnapshotLog):
        return obj.view()
    if isinstance(obj, Mapping):
        items = {k: freeze_value(v) for k, v in obj.items()}
        if isinstance(obj, FrozenDict) and all(items[k] is v for k, v in obj.items()):
            return obj
        return FrozenDict(items)
    if isinstance(obj, tuple):
        vals = [freeze_value(v) for v in obj]
        if all(a is b for a, b in zip(vals, obj)):
            return obj
        return obj._make(vals) if hasattr(obj, "_make") else tuple(vals)
    if isinstance(obj, list):
        return tuple(freeze_value(v) for v in obj)
    if isinstance(obj, (set, frozenset)):
        return frozenset(obj)
    return obj


_ATOMS = frozenset({str, int, float, bool, bytes, complex})


def json_default(obj: Any) -> Any:
    """``json.dumps(x, default=json_default)``: serialise `LogView`s found inside `x`.

    Only the views reached are converted, each in time proportional to its
    length (what the encoder spends on it anyway).
    """
    if isinstance(obj, LogView):
        return obj.to_list()
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


# ---- publication -----------------------------------------------------------


class PublishCell(Generic[T]):
    """One published object and its version, swapped as one reference.

    ``publish()`` (writers, serialised by a lock) stores ``(version + 1,
    obj)`` as one tuple; ``latest()`` returns that tuple without a lock, so the
    pair can never tear.  Version 0 is the initial object.

    The tuple lives in a one-element list (``_cell[0]``) rather than in an
    attribute: list item reads are documented as safe against a concurrent
    replacement on free-threaded CPython (``PyList_GetItemRef``), member
    descriptor reads of ``__slots__`` are not on 3.13.
    """

    __slots__ = ("_cell", "_lock", "_cond", "_waiters")

    def __init__(self, initial: Any = None) -> None:
        self._cell: list[tuple[int, T]] = [(0, initial)]
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._waiters = 0  # notify_all() costs as much as the rest of publish: skip it

    def publish(self, obj: T) -> int:
        """Make `obj` the latest object; returns its version."""
        with self._lock:
            version = self._cell[0][0] + 1
            self._cell[0] = (version, obj)
            if self._waiters:
                self._cond.notify_all()
        return version

    def latest(self) -> tuple[int, T]:
        """``(version, obj)``, consistent, lock-free."""
        return self._cell[0]

    def get(self) -> T:
        return self._cell[0][1]

    @property
    def version(self) -> int:
        return self._cell[0][0]

    def wait_newer(self, version: int, timeout: float | None = None) -> tuple[int, T]:
        """Wait until a version > `version` is published (or `timeout` s), then ``latest()``.

        On timeout the returned version is still <= `version`.
        """
        state = self._cell[0]
        if state[0] > version:
            return state  # readers that are not behind never lock
        with self._lock:
            self._waiters += 1
            try:
                self._cond.wait_for(lambda: self._cell[0][0] > version, timeout)
            finally:
                self._waiters -= 1
            return self._cell[0]

    def __repr__(self) -> str:
        version, obj = self._cell[0]
        return f"<PublishCell version={version} obj={type(obj).__name__}>"
