"""Scenario 4's containers: csnapshot.cow against copying and persistent containers.

Each factory takes N and returns a zero-argument step doing "change one thing,
then publish a snapshot" (or one reader operation) on a state of N entries or
keys, or a string saying why the case is skipped.  Every publish goes through
the same `PublishCell.publish` (its cost alone is one case), so the cases
differ only in the container.  Growing baselines restart from their N-entry
state at 2N entries.  Entries are 5-field namedtuples.
"""

from __future__ import annotations

import collections
import copy
import itertools
from typing import Any, Callable, NamedTuple

from csnapshot.cow import CowDict, PublishCell, SnapshotLog

Entry = collections.namedtuple("Entry", "event_type significance timestamp weight feedback")

Step = Callable[[], object]


def make_entries(n: int) -> list[Entry]:
    return [Entry("noise", 0.5, float(i), 1.0, None) for i in range(n)]


def _growing(start: Any, n: int, grow: Callable[[Any, Entry], Any],
             publish: Callable[[Any], object]) -> Step:
    """A step that grows a copy of `start`, restarting from it at 2n entries."""
    state = [start]
    e = Entry("noise", 0.5, -1.0, 1.0, None)

    def step() -> None:
        cur = state[0]
        if len(cur) >= 2 * n:
            cur = start
        state[0] = new = grow(cur, e)
        publish(new)
    return step


# ---- log: append one entry, then publish ----

def bench_snapshotlog(n: int) -> Step:
    log: SnapshotLog[Entry] = SnapshotLog(n, make_entries(n))  # full: every append evicts
    cell: PublishCell[Any] = PublishCell()
    e = Entry("noise", 0.5, -1.0, 1.0, None)

    def step() -> None:
        log.append(e)
        cell.publish(log.view())
    return step


def _list_append(old: list[Entry], e: Entry) -> list[Entry]:
    new = list(old)
    new.append(e)
    return new


def _deepcopy_append(old: list[Entry], e: Entry) -> list[Entry]:
    new = copy.deepcopy(old)
    new.append(e)
    return new


def bench_list_copy(n: int) -> Step:
    return _growing(make_entries(n), n, _list_append, PublishCell().publish)


def bench_deepcopy(n: int) -> Step | str:
    if n > 10_000:
        return "skipped (minutes per size)"
    return _growing(make_entries(n), n, _deepcopy_append, PublishCell().publish)


def bench_pvector(n: int) -> Step | str:
    try:
        import pyrsistent
    except ImportError:
        return "not installed"
    return _growing(pyrsistent.pvector(make_entries(n)), n,
                    lambda old, e: old.append(e), PublishCell().publish)


# ---- dict of N keys: change one key, then publish ----

def _keys(n: int) -> dict[str, Any]:
    return {f"k{i}": e for i, e in enumerate(make_entries(n))}


def bench_dict_copy(n: int) -> Step:
    state = [_keys(n)]
    cell: PublishCell[Any] = PublishCell()
    counter = itertools.count()

    def step() -> None:
        new = state[0].copy()
        new["k1"] = next(counter)
        state[0] = new
        cell.publish(new)
    return step


def bench_cowdict(n: int) -> Step:
    d: CowDict[str, Any] = CowDict(_keys(n))
    cell: PublishCell[Any] = PublishCell()
    counter = itertools.count()

    def step() -> None:
        d["k1"] = next(counter)
        cell.publish(d.freeze())
    return step


def bench_immutables_map(n: int) -> Step | str:
    try:
        import immutables
    except ImportError:
        return "not installed"
    state = [immutables.Map(_keys(n))]
    cell: PublishCell[Any] = PublishCell()
    counter = itertools.count()

    def step() -> None:
        state[0] = new = state[0].set("k1", next(counter))
        cell.publish(new)
    return step


# ---- reads and the publish itself ----

def bench_publish_only(n: int) -> Step:
    cell: PublishCell[Any] = PublishCell()
    obj = object()
    return lambda: cell.publish(obj)


def _published(n: int) -> PublishCell[Any]:
    log: SnapshotLog[Entry] = SnapshotLog(n, make_entries(n))
    d: CowDict[str, Any] = CowDict({"counter": n})
    cell: PublishCell[Any] = PublishCell()
    cell.publish((log.view(), d.freeze()))
    return cell


def bench_latest(n: int) -> Step:
    return _published(n).latest


def bench_view_index(n: int) -> Step:
    view = _published(n).get()[0]
    middle = n // 2
    return lambda: view[middle]


def bench_view_last10(n: int) -> Step:
    view = _published(n).get()[0]
    return lambda: view.last(10)


class Case(NamedTuple):
    name: str
    factory: Callable[[int], Step | str]


CASES = (
    Case("SnapshotLog append (evicts) + view() + publish", bench_snapshotlog),
    Case("`list(old)` + append + publish", bench_list_copy),
    Case("`copy.deepcopy` + append + publish", bench_deepcopy),
    Case("pyrsistent `pvector.append` + publish", bench_pvector),
    Case("dict of N keys: `dict.copy()` + set + publish", bench_dict_copy),
    Case("dict of N keys: CowDict set + freeze() + publish", bench_cowdict),
    Case("dict of N keys: immutables `Map.set` + publish", bench_immutables_map),
    Case("`PublishCell.publish` alone", bench_publish_only),
    Case("reader: `PublishCell.latest()`", bench_latest),
    Case("reader: `LogView[N//2]`", bench_view_index),
    Case("reader: `LogView.last(10)`", bench_view_last10),
)
