"""Publish cost versus state size: csnapshot.cow against copying and persistent containers.

For N = 10^2, 10^4, 10^6 it times "change one thing, then publish a snapshot"
(median of repeats with the GC off, µs per operation) and a few reader
operations, and prints a Markdown table with the ratio N=10^6 / N=10^2 (1.0 =
the cost does not grow with the state) and the row's widest spread (slowest -
fastest repeat, relative to the median).  Every publish goes through the same
`PublishCell.publish` (its cost alone is one row), so rows differ only in the
container.  Growing baselines restart from their N-entry state at 2N entries.
Entries are 5-field namedtuples.  immutables/pyrsistent rows say "not
installed" when those packages are missing (``pip install -e .[bench]``).

    python benchmarks/bench_publish.py [--quick]

Progress goes to stderr, the table to stdout.  The ``bench_*`` factories are
importable: each takes N and returns a zero-argument callable doing one
operation (or a string saying why the case is skipped).
"""

from __future__ import annotations

import argparse
import collections
import copy
import gc
import itertools
import statistics
import sys
import sysconfig
import time
from typing import Any, Callable, NamedTuple

from csnapshot.cow import CowDict, PublishCell, SnapshotLog

Entry = collections.namedtuple("Entry", "event_type significance timestamp weight feedback")

SIZES = (100, 10_000, 1_000_000)
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


class Timing(NamedTuple):
    median: float  # seconds per call
    low: float     # fastest and slowest repeat: the spread
    high: float


def measure(step: Step, *, repeats: int, target: float) -> Timing:
    """Seconds per call over `repeats` runs of about `target` seconds each, GC off."""
    gc_was_enabled = gc.isenabled()
    gc.disable()  # like timeit: a collection would land in one row and not another
    try:
        return _measure(step, repeats, target)
    finally:
        if gc_was_enabled:
            gc.enable()


def _measure(step: Step, repeats: int, target: float) -> Timing:
    number = 1
    while True:  # calibrate like timeit.autorange, to `target`
        t0 = time.perf_counter()
        for _ in range(number):
            step()
        elapsed = time.perf_counter() - t0
        if elapsed >= target / 4 or number >= 1 << 22:
            break
        number *= 2 if elapsed == 0 else max(2, min(16, int(target / 4 / elapsed) + 1))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(number):
            step()
        times.append((time.perf_counter() - t0) / number)
    return Timing(statistics.median(times), min(times), max(times))


def run(sizes: tuple[int, ...] = SIZES, *, quick: bool = False,
        cases: tuple[Case, ...] = CASES) -> dict[str, list[Timing | str]]:
    """{case name: [timing, or why skipped, for each size]}."""
    repeats, target = (3, 0.02) if quick else (7, 0.05)
    results: dict[str, list[Timing | str]] = {c.name: [] for c in cases}
    for n in sizes:
        for case in cases:
            print(f"N={n:>9,} {case.name} ...", file=sys.stderr, flush=True)
            step = case.factory(n)
            if isinstance(step, str):
                results[case.name].append(step)
                continue
            results[case.name].append(measure(step, repeats=repeats, target=target))
            del step
    return results


def _fmt(x: Timing | str) -> str:
    if isinstance(x, str):
        return x
    us = x.median * 1e6
    return f"{us:,.0f}" if us >= 100 else f"{us:.3g}"


def format_table(results: dict[str, list[Timing | str]], sizes: tuple[int, ...] = SIZES) -> str:
    head = "| operation (µs, median) | " + " | ".join(f"N={n:,}" for n in sizes) + \
        f" | ×(N={sizes[-1]:,} / N={sizes[0]:,}) | spread |"
    lines = [head, "|---|" + "---:|" * (len(sizes) + 2)]
    for name, row in results.items():
        timed = [x for x in row if isinstance(x, Timing)]
        first, last = row[0], row[-1]
        if isinstance(first, Timing) and isinstance(last, Timing):
            ratio = f"{last.median / first.median:,.2f}"
        else:
            ratio = "–"
        # The widest (slowest - fastest repeat) / median among the row's cells.
        spread = f"{max((t.high - t.low) / t.median for t in timed):.0%}" if timed else "–"
        lines.append(f"| {name} | " + " | ".join(_fmt(x) for x in row) +
                     f" | {ratio} | {spread} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter repeats")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    results = run(quick=args.quick)
    gil = "free-threaded" if sysconfig.get_config_var("Py_GIL_DISABLED") else "GIL"
    print(f"Python {sys.version.split()[0]} ({gil} build); "
          f"{'quick: 3 repeats of ~20 ms' if args.quick else '7 repeats of ~50 ms'} per cell\n")
    print(format_table(results))
    print(f"\ntotal {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
