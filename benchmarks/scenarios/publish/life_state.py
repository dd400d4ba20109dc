"""Scenario 4's Life state: `StateSnapshotManager` against copying the state, by memory size.

For a `SelfState` whose memory holds N entries (at its cap: every append
evicts the oldest), each factory returns a step doing one memory append and a
publish, or one reader call, or the same "append, then publish the state's
complex parts" done the ways a user might pick instead: `copy.deepcopy`, plain
`list`/`dict` copies, and the persistent containers of immutables and
pyrsistent.  Every baseline publishes through a `csnapshot.PublishCell`
together with a vitals read, so they differ only in how the complex parts are
snapshotted.  The application's objects come from benchmarks/app.py.
"""

from __future__ import annotations

import copy
import functools
from typing import Any, Callable, NamedTuple

from csnapshot import PublishCell

from ... import app

Step = Callable[[], object]
NEW = app.memory_entry(-1.0)


@functools.lru_cache(maxsize=1)
def entries(n: int) -> tuple[Any, ...]:
    """N distinct memory entries (built once per size: 10^6 take a few seconds)."""
    return tuple(app.memory_entry(float(i)) for i in range(n))


def full_state(n: int):
    return app.full_state(entries(n))


def complex_parts(s, n: int) -> dict[str, Any]:
    return app.plain_parts(s, entries(n))


# ---- csnapshot -------------------------------------------------------------

def bench_update_snapshot(n: int) -> Step:
    s, m = full_state(n), app.snapshot_manager()
    append, update = s.memory.append, m.update_snapshot

    def step() -> None:
        append(NEW)
        update(s)
    return step


def bench_update_unchanged(n: int) -> Step:
    s, m = full_state(n), app.snapshot_manager()
    return functools.partial(m.update_snapshot, s)


def _published(n: int):
    return app.snapshot_manager(full_state(n))


def bench_get_snapshot(n: int) -> Step:
    return _published(n).get_snapshot


def bench_status_default(n: int) -> Step:
    return _published(n).status_dict


def bench_status_memory10(n: int) -> Step:
    return functools.partial(_published(n).status_dict, limits={"memory_limit": 10})


# ---- what users would pick instead -----------------------------------------

def bench_deepcopy(n: int) -> Step | str:
    if n > 10_000:
        return "skipped (minutes per size)"
    s = full_state(n)
    parts, cell, vitals = complex_parts(s, n), PublishCell(), s.vitals

    def step() -> None:
        parts["memory"].append(NEW)
        del parts["memory"][0]
        cell.publish((vitals.read_versioned(), copy.deepcopy(parts)))
    return step


def bench_shallow_copies(n: int) -> Step:
    s = full_state(n)
    parts, cell, vitals = complex_parts(s, n), PublishCell(), s.vitals

    def step() -> None:
        parts["memory"] = parts["memory"][1:] + [NEW]  # bounded: drop the oldest
        published = {k: (list(v) if isinstance(v, list) else
                          {g: dict(d) if isinstance(d, dict) else d for g, d in v.items()})
                     for k, v in parts.items()}
        cell.publish((vitals.read_versioned(), published))
    return step


def bench_immutables(n: int) -> Step | str:
    try:
        import immutables
    except ImportError:
        return "not installed"
    s = full_state(n)
    rest = immutables.Map({k: v for k, v in complex_parts(s, n).items() if k != "memory"})
    memory = [immutables.Map(enumerate(entries(n))), n]  # keyed by append number
    cell, vitals = PublishCell(), s.vitals

    def step() -> None:
        mem, k = memory
        memory[0] = mem = mem.set(k, NEW).delete(k - n)  # bounded: drop the oldest
        memory[1] = k + 1
        cell.publish((vitals.read_versioned(), mem, rest))
    return step


def bench_pvector(n: int) -> Step | str:
    try:
        import pyrsistent
    except ImportError:
        return "not installed"
    s = full_state(n)
    start = pyrsistent.pvector(entries(n))
    rest = pyrsistent.freeze({k: v for k, v in complex_parts(s, n).items() if k != "memory"})
    state, cell, vitals = [start], PublishCell(), s.vitals

    def step() -> None:
        cur = state[0]
        if len(cur) >= 2 * n:  # no O(1) drop of the oldest: grow, restart at 2N
            cur = start
        state[0] = new = cur.append(NEW)
        cell.publish((vitals.read_versioned(), new, rest))
    return step


class Case(NamedTuple):
    name: str
    factory: Callable[[int], Step | str]


UPDATE = "`StateSnapshotManager.update_snapshot` after `memory.append`"
CASES = (
    Case(UPDATE, bench_update_snapshot),
    Case("`update_snapshot`, nothing changed", bench_update_unchanged),
    Case("`copy.deepcopy` of the complex parts + append + publish", bench_deepcopy),
    Case("`list`/`dict` copies of the complex parts + append + publish", bench_shallow_copies),
    Case("immutables `Map` (memory by append number) set + delete oldest + publish",
         bench_immutables),
    Case("pyrsistent `pvector.append` (unbounded) + publish", bench_pvector),
    Case("reader: `get_snapshot()`", bench_get_snapshot),
    Case("reader: `status_dict()` (22 default keys)", bench_status_default),
    Case("reader: `status_dict(limits={'memory_limit': 10})`", bench_status_memory10),
)
