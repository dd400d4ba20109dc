"""Torn-read stress: readers run until a deadline and count what they saw.

Seconds per run come from CSNAPSHOT_STRESS_SECONDS (default 1.0) and the read
count the runs must reach from CSNAPSHOT_STRESS_MIN_READS (default 10^6); the
ThreadSanitizer run lowers both (docs/development/sanitizers.md).  The count is
the harness's stop condition (`stress(min_reads=...)`), not a race against the
clock: on a slow machine the run goes on past its seconds until the readers
have it, and fails only if a reader is starved for `max_seconds`.
"""

import math
import os
import threading
import time

import pytest

from csnapshot import Field
from csnapshot.testing import invariant_vitals, stress

SECONDS = float(os.environ.get("CSNAPSHOT_STRESS_SECONDS", "1.0"))
MIN_READS = int(os.environ.get("CSNAPSHOT_STRESS_MIN_READS", "1000000"))


@pytest.mark.parametrize("layout", ["classic", "latch"])
@pytest.mark.parametrize("readers, writer, writers", [
    (2, "native", 1),   # readers and a flat-out writer compete for 2 cores
    (1, "native", 1),
    (2, "python", 1),   # the calling thread writes through Vitals.write_tuple
    (2, "native", 2),   # two writers serialise on the record's lock
])
def test_native_readers_see_no_torn_copy(readers, writer, writers, layout):
    per_reader = math.ceil(MIN_READS / 4 / readers)
    r = stress(readers=readers, seconds=SECONDS, writer=writer, writers=writers,
               min_reads=per_reader, vitals=invariant_vitals(8, layout))
    print(f"\n{layout}: " + r.summary())
    assert r.torn == 0
    assert r.lost_writes == 0
    assert r.timeouts == 0
    assert r.writes > 0 and r.changes > 1, "readers never saw a write: threads did not overlap"
    assert min(r.per_reader) >= per_reader, "a reader was starved for max_seconds"


def test_native_reads_exceed_a_million_without_a_tear():
    # The bar: >= 10^6 native reads, zero torn, at a realistic write rate.
    r = stress(readers=2, seconds=SECONDS, writer="native", write_rate=100_000,
               min_reads=MIN_READS // 2)
    print("\n" + r.summary())
    assert r.torn == 0 and r.reads >= MIN_READS and r.changes > 1


# What each Python run must reach before it may stop (see run_python_readers).
PY_MIN_READS, PY_MIN_CHANGES, PY_MIN_WRITES = 1000, 2, 10


def run_python_readers(Vitals, writer_threads, seconds=SECONDS, readers=3, max_seconds=60.0):
    """Python reader threads against Python writer threads.

    Each write adds (i + 1) to field i in one apply_delta, so a whole copy has
    field i == k * (i + 1) for one k, and k never decreases for a reader.  The
    run lasts `seconds`, then goes on until the readers have PY_MIN_READS reads
    and PY_MIN_CHANGES changes between them and the writers PY_MIN_WRITES
    writes (a slow sanitizer build may need longer), but at most `max_seconds`.
    """
    names = [f"f{i}" for i in range(8)]
    v = Vitals([Field(n) for n in names])
    step = {n: float(i + 1) for i, n in enumerate(names)}
    stop = threading.Event()
    # Live counts, one slot per thread, so the main thread can tell when the
    # run has seen enough; each thread writes only its own slot.
    seen = [(0, 0, 0)] * readers          # (reads, torn, changes)
    written = [0] * writer_threads

    def reader(slot):
        reads = torn = changes = 0
        last_k = -1.0
        while not stop.is_set():
            t = v.read_tuple()
            reads += 1
            k = t[0]
            if any(t[i] != k * (i + 1) for i in range(8)) or k < last_k:
                torn += 1
            if k != last_k:
                changes += 1
                last_k = k
            seen[slot] = (reads, torn, changes)

    def writer(slot):
        n = 0
        while not stop.is_set():
            v.apply_delta(step)
            n += 1
            written[slot] = n

    def enough():
        return (sum(r[0] for r in seen) >= PY_MIN_READS
                and sum(r[2] for r in seen) >= PY_MIN_CHANGES
                and sum(written) >= PY_MIN_WRITES)

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(readers)]
    threads += [threading.Thread(target=writer, args=(i,)) for i in range(writer_threads)]
    start = time.monotonic()
    for t in threads:
        t.start()
    stop.wait(seconds)  # the run's duration, not a synchronisation
    while not enough() and time.monotonic() - start < max_seconds:
        stop.wait(0.01)  # polling the counts: the run's extension, not a synchronisation
    stop.set()
    for t in threads:
        t.join()
    reads = sum(r[0] for r in seen)
    torn = sum(r[1] for r in seen)
    changes = sum(r[2] for r in seen)
    final_k = v.read_tuple()[0]
    return reads, torn, changes, sum(written), final_k


@pytest.mark.parametrize("writer_threads", [1, 2])
def test_python_reader_threads_see_no_torn_copy(Vitals, writer_threads):
    reads, torn, changes, writes, final_k = run_python_readers(Vitals, writer_threads)
    print(f"\n{Vitals.__module__}: {reads:,} Python reads, {changes:,} changes seen, "
          f"{writes:,} writes by {writer_threads} writer thread(s), {torn} torn")
    assert torn == 0
    assert final_k == writes, "a write was lost or applied twice"
    assert reads >= PY_MIN_READS and changes >= PY_MIN_CHANGES and writes >= PY_MIN_WRITES
