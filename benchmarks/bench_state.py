"""Publishing the Life state: StateSnapshotManager against copying it, by memory size.

For a `SelfState` whose memory holds N = 10^2, 10^4, 10^6 entries (full: every
append evicts the oldest), it times one memory append followed by a publish
(median of repeats with the GC off, µs per operation), the reader calls, and
the same "append, then publish the state's complex parts" done the ways a user
might pick instead: `copy.deepcopy`, plain `list`/`dict` copies, and the
persistent containers of immutables and pyrsistent ("not installed" when they
are missing: ``pip install -e .[bench]``).  Every row publishes through a
`csnapshot.PublishCell` together with a vitals read, so rows differ only in how
the complex parts are snapshotted.  The table gives the ratio N=10^6 / N=10^2
(1.0 = the cost does not grow with the state) and the row's widest spread.

Goal (issue #4): `update_snapshot` ratio <= 1.5 and under 10 µs at N = 10^6.

    python benchmarks/bench_state.py [--quick]

Run it by path (see benchmarks/README.md).  Progress goes to stderr, the table
and the goal check to stdout.
"""

from __future__ import annotations

import argparse
import copy
import functools
import sys
import sysconfig
import time
from pathlib import Path
from typing import Any, Callable, NamedTuple

# `src` runs from the checkout and is not installed.  Appended, never
# prepended: the checkout's csnapshot/ must not shadow the installed package.
sys.path.append(str(Path(__file__).resolve().parent.parent))

from bench_publish import Timing, format_table, measure  # noqa: E402
from vitals_impls import require_native  # noqa: E402

from csnapshot import PublishCell  # noqa: E402
from src.state.self_state import MemoryEntry, SelfState  # noqa: E402
from src.state.snapshot_manager import StateSnapshotManager  # noqa: E402

SIZES = (100, 10_000, 1_000_000)
Step = Callable[[], object]
NEW = MemoryEntry("noise", 0.5, -1.0)


@functools.lru_cache(maxsize=1)
def entries(n: int) -> tuple[MemoryEntry, ...]:
    """N distinct entries (built once per size: 10^6 take a few seconds)."""
    return tuple(MemoryEntry("noise", 0.5, float(i)) for i in range(n))


def full_state(n: int) -> SelfState:
    """A state with n memory entries (at its cap) and something in every other part."""
    s = SelfState(memory_cap=n)
    s.memory.extend(entries(n))
    for i in range(1000):
        s.add_event("noise")
        s.record_history(energy=float(i), stability=1.0)
    for i in range(50):
        s.add_adaptation_record({"tick": i, "changes": {"noise": 0.01}})
    s.set_planning_and_intelligence({"potential_sequences": [["noise", "decay"]]},
                                    {"processed_sources": {"memory_proxy_size": 1000}})
    return s


def complex_parts(s: SelfState, n: int) -> dict[str, Any]:
    """The same parts as plain Python objects: what the copying baselines copy."""
    return {"memory": list(entries(n)), "recent_events": list(s.recent_events),
            "energy_history": list(s.energy_history),
            "stability_history": list(s.stability_history),
            "adaptation_history": [dict(r) for r in s.adaptation_history],
            "learning_params": {k: dict(v) for k, v in s.learning_params.items()},
            "adaptation_params": {k: dict(v) for k, v in s.adaptation_params.items()},
            "planning": {"potential_sequences": [["noise", "decay"]]},
            "intelligence": {"processed_sources": {"memory_proxy_size": 1000}}}


# ---- csnapshot -------------------------------------------------------------

def bench_update_snapshot(n: int) -> Step:
    s, m = full_state(n), StateSnapshotManager()
    append, update = s.memory.append, m.update_snapshot

    def step() -> None:
        append(NEW)
        update(s)
    return step


def bench_update_unchanged(n: int) -> Step:
    s, m = full_state(n), StateSnapshotManager()
    return functools.partial(m.update_snapshot, s)


def _published(n: int) -> StateSnapshotManager:
    m = StateSnapshotManager()
    m.update_snapshot(full_state(n))
    return m


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


def run(sizes: tuple[int, ...] = SIZES, *, quick: bool = False,
        cases: tuple[Case, ...] = CASES) -> dict[str, list[Timing | str]]:
    """{case name: [timing, or why skipped, for each size]}."""
    repeats, target = (3, 0.02) if quick else (7, 0.05)
    results: dict[str, list[Timing | str]] = {c.name: [] for c in cases}
    for n in sizes:
        print(f"N={n:>9,}: building {n:,} entries ...", file=sys.stderr, flush=True)
        entries(n)
        for case in cases:
            print(f"N={n:>9,} {case.name} ...", file=sys.stderr, flush=True)
            step = case.factory(n)
            if isinstance(step, str):
                results[case.name].append(step)
                continue
            results[case.name].append(measure(step, repeats=repeats, target=target))
            del step
    return results


def goal_line(row: list[Timing | str]) -> str:
    first, last = row[0], row[-1]
    if not isinstance(first, Timing) or not isinstance(last, Timing):
        return "goal: not measured"
    ratio, us = last.median / first.median, last.median * 1e6
    ok = ratio <= 1.5 and us < 10
    return (f"goal {'met' if ok else 'MISSED'}: update_snapshot N={SIZES[-1]:,} / "
            f"N={SIZES[0]:,} = {ratio:.2f} (goal <= 1.5), {us:.2f} µs at "
            f"N={SIZES[-1]:,} (goal < 10 µs)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter repeats")
    args = parser.parse_args(argv)
    require_native()
    t0 = time.perf_counter()
    results = run(quick=args.quick)
    gil = "free-threaded" if sysconfig.get_config_var("Py_GIL_DISABLED") else "GIL"
    print(f"Python {sys.version.split()[0]} ({gil} build); "
          f"{'quick: 3 repeats of ~20 ms' if args.quick else '7 repeats of ~50 ms'} per cell\n")
    print(format_table(results, SIZES))
    print("\n" + goal_line(results[UPDATE]))
    print(f"\ntotal {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
