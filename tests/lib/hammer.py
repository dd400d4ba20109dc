"""Threaded hammer of the public API: one thread per method, one shared object each.

Run as a script (tests/lib/test_hammer.py starts it in a child process, so a
crash is a failed test, not a dead pytest)::

    python tests/lib/hammer.py [CALLS_PER_THREAD]

One shared native `Vitals` record and one shared `FieldWriter` are called
from one thread per public method; the copy-on-write types (`SnapshotLog`,
`CowDict`, `PublishCell`) get the same treatment.  Every thread makes a fixed
number of calls (not a deadline), mixing valid and invalid arguments, and all
threads start together at a barrier.  The invariants, checked by the threads
as they go:

- every consistent read of the record satisfies ``a + b == 0`` (every writer
  keeps it, so a torn copy breaks it), ``c`` within its bounds [0, 10], and
  each field of its kind; the version a reader sees never decreases;
- an invalid call raises one of the exception types listed for it, and
  changes nothing that breaks the invariants;
- a log view never changes after it was taken; a frozen dict never changes;
  a cell's version never decreases for a reader.

The report (calls per method, exceptions by type, invariant failures) goes to
the log; the last line is ``hammer: ok`` when every invariant held.  Exit
status 0 only then.
"""

from __future__ import annotations

import collections
import copy
import logging
import pickle
import sys
import threading
from typing import Any, Callable

import csnapshot
from csnapshot import CowDict, Field, PublishCell, SnapshotLog, StalledWriterError

log = logging.getLogger("csnapshot.hammer")

# What an invalid call may raise; a call with valid arguments may raise only
# StalledWriterError (a held section outlasting the timeout on a slow box).
EXPECTED = (TypeError, ValueError, KeyError, IndexError, StalledWriterError)


class Report:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: collections.Counter[str] = collections.Counter()
        self.raised: dict[str, collections.Counter[str]] = collections.defaultdict(
            collections.Counter)
        self.failures: list[str] = []

    def fail(self, what: str) -> None:
        with self.lock:
            if len(self.failures) < 50:
                self.failures.append(what)


def vitals_methods(v: Any, w: Any, report: Report) -> dict[str, Callable[[int], Any]]:
    """One callable per public method of Vitals (and of the shared writer)."""
    last_version: dict[int, int] = collections.defaultdict(int)

    def check(values: tuple, where: str) -> None:
        a, b, c, n = values
        if a + b != 0 or not 0 <= c <= 10 or type(a) is not float or type(n) is not int:
            report.fail(f"{where}: inconsistent read {values!r}")

    def check_version(version: int, where: str) -> None:
        me = threading.get_ident()
        if version < last_version[me]:
            report.fail(f"{where}: version went back from {last_version[me]} to {version}")
        last_version[me] = version

    def read_tuple(i: int) -> None:
        check(v.read_tuple(), "read_tuple")

    def read_versioned(i: int) -> None:
        version, values = v.read_versioned()
        check(values, "read_versioned")
        check_version(version, "read_versioned")

    def read(i: int) -> None:
        d = v.read()
        check((d["a"], d["b"], d["c"], d["n"]), "read")

    def get(i: int) -> None:
        name = ("a", "b", "c", "n", "nope", [], None)[i % 7]
        x = v.get(name)
        if name == "c" and not 0 <= x <= 10:
            report.fail(f"get: c out of bounds {x!r}")

    def getitem(i: int) -> None:
        v[("a", "n", "nope", {})[i % 4]]

    def contains(i: int) -> None:
        name = ("a", "nope", [], None, b"a")[i % 5]
        if (name in v) is not (name == "a"):
            report.fail(f"contains: {name!r} in v is wrong")

    def version(i: int) -> None:
        check_version(v.version, "version")

    def length_iter_fields(i: int) -> None:
        if len(v) != 4 or list(v) != ["a", "b", "c", "n"] or len(v.fields) != 4:
            report.fail("len/iter/fields changed")

    def index(i: int) -> None:
        v.index(("a", "b", "nope", [])[i % 4])

    def write(i: int) -> None:
        x = float(i % 100)
        if i % 5 == 0:
            v.write(a=x, b="bad")        # TypeError before anything is stored
        elif i % 5 == 1:
            v.write(a=x, b=-x, nope=1.0)  # KeyError
        else:
            v.write(a=x, b=-x, c=i % 20 - 5)

    def apply_delta(i: int) -> None:
        if i % 4 == 0:
            v.apply_delta({"a": 1.0, "b": -1.0, "n": 1})
        elif i % 4 == 1:
            v.apply_delta({"a": 1.0, "b": float("nan")})  # ValueError
        elif i % 4 == 2:
            v.apply_delta([("a", 1.0)])                   # TypeError
        else:
            v.apply_delta({"a": -1.0, "b": 1.0, "c": 2**70, "n": -(2**70)})

    def write_tuple(i: int) -> None:
        x = float(i % 50)
        if i % 3 == 0:
            v.write_tuple((x, -x))                        # ValueError: too short
        else:
            v.write_tuple((x, -x, 3, i))

    def writer(i: int) -> None:
        if i % 3 == 0:
            v.writer("a", "a")                            # ValueError
        elif i % 3 == 1:
            v.writer("a", [])                             # TypeError (unhashable)
        else:
            v.writer("a", "b")(float(i), float(-i))

    def shared_writer(i: int) -> None:
        x = float(i % 30)
        if i % 4 == 0:
            w(x)                                          # TypeError: needs 2 values
        elif i % 4 == 1:
            w(x, "nope")                                  # TypeError
        else:
            w(x, -x)

    def copy_pickle(i: int) -> None:
        c = copy.copy(v) if i % 2 else pickle.loads(pickle.dumps(v))
        check(c.read_tuple(), "copy")

    def repr_(i: int) -> None:
        repr(v)
        repr(w)

    def hold(i: int) -> None:
        # The stalled-writer hook, held for no time at all: the other writers
        # wait for it (the record's timeout is long), readers take the memo or
        # the locked fallback.
        with v._hold_write_section():
            check((v.get("a"), v.get("b"), v.get("c"), v.get("n")), "get in held section")

    return {f.__name__.rstrip("_"): f for f in (
        read_tuple, read_versioned, read, get, getitem, contains, version,
        length_iter_fields, index, write, apply_delta, write_tuple, writer,
        shared_writer, copy_pickle, repr_, hold)}


def cow_methods(report: Report) -> dict[str, Callable[[int], Any]]:
    logbook: SnapshotLog[int] = SnapshotLog(100)
    cd: CowDict[str, int] = CowDict({"k0": 0})
    cell: PublishCell[int] = PublishCell(0)
    cell_seen: dict[int, int] = collections.defaultdict(int)

    def log_append(i: int) -> None:
        logbook.append(i)

    def log_replace_remove(i: int) -> None:
        if i % 3 == 0:
            logbook.replace(i % 150, -i)                  # IndexError beyond the length
        elif i % 3 == 1:
            logbook.remove_if(lambda e: e % 7 == 0)
        else:
            logbook.extend(range(5))

    def log_view(i: int) -> None:
        view = logbook.view()
        first = list(view)
        if len(first) > 100 or list(view) != first or len(view) != len(first):
            report.fail("SnapshotLog.view changed or overflowed")
        if first:
            view[i % len(first)]
            view.last(3)

    def dict_write(i: int) -> None:
        key = f"k{i % 20}"
        if i % 4 == 0:
            cd.pop(key, None)
        elif i % 4 == 1:
            cd.update({key: i, "x": -i})
        else:
            cd[key] = i

    def dict_freeze(i: int) -> None:
        frozen = cd.freeze()
        before = dict(frozen)
        try:
            frozen["z"] = 1                               # TypeError: frozen
        except TypeError:
            pass
        if dict(frozen) != before:
            report.fail("FrozenDict changed")

    def dict_read(i: int) -> None:
        cd.get(f"k{i % 20}")
        f"k{i % 20}" in cd
        len(cd)

    def cell_publish(i: int) -> None:
        cell.publish(i)

    def cell_read(i: int) -> None:
        version, _ = cell.latest()
        me = threading.get_ident()
        if version < cell_seen[me]:
            report.fail("PublishCell version went back")
        cell_seen[me] = version

    return {f"cow.{f.__name__}": f for f in (
        log_append, log_replace_remove, log_view, dict_write, dict_freeze, dict_read,
        cell_publish, cell_read)}


def hammer(calls: int) -> Report:
    report = Report()
    v = csnapshot.Vitals([Field("a"), Field("b"), Field("c", kind=int, min=0, max=10),
                          Field("n", kind=int)], timeout=30.0)
    w = v.writer("a", "b")
    methods = {**vitals_methods(v, w, report), **cow_methods(report)}
    barrier = threading.Barrier(len(methods))

    def run(name: str, fn: Callable[[int], Any]) -> None:
        raised: collections.Counter[str] = collections.Counter()
        barrier.wait()
        for i in range(calls):
            try:
                fn(i)
            except EXPECTED as exc:
                raised[type(exc).__name__] += 1
            except BaseException as exc:  # noqa: BLE001 - every other type is a finding
                raised[type(exc).__name__] += 1
                report.fail(f"{name}: unexpected {type(exc).__name__}: {exc}")
        with report.lock:
            report.calls[name] += calls
            report.raised[name].update(raised)

    threads = [threading.Thread(target=run, args=item, name=f"hammer-{item[0]}")
               for item in methods.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    version, values = v.read_versioned()
    if values[0] + values[1] != 0:
        report.fail(f"final state inconsistent: {values!r}")
    log.info("hammer: %s, %s, GIL %s, %d threads x %d calls; final version %d",
             csnapshot.IMPLEMENTATION, sys.version.split()[0],
             "enabled" if getattr(sys, "_is_gil_enabled", lambda: True)() else "disabled",
             len(methods), calls, version)
    for name in methods:
        raised = ", ".join(f"{k} {n}" for k, n in sorted(report.raised[name].items())) or "-"
        log.info("  %-24s %7d calls; raised: %s", name, report.calls[name], raised)
    return report


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    calls = int(argv[1]) if len(argv) > 1 else 2000
    report = hammer(calls)
    for failure in report.failures:
        log.error("FAILED %s", failure)
    if report.failures:
        return 1
    log.info("hammer: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
