"""Torn-read stress: readers run until a deadline and count what they saw.

Seconds per run come from CSNAPSHOT_STRESS_SECONDS (default 1.0); the
ThreadSanitizer run lowers it (docs/development/sanitizers.md).
"""

import os
import threading
import time

import pytest

from csnapshot import Field
from csnapshot.testing import stress

SECONDS = float(os.environ.get("CSNAPSHOT_STRESS_SECONDS", "1.0"))
MIN_READS = int(os.environ.get("CSNAPSHOT_STRESS_MIN_READS", "1000000"))


@pytest.mark.parametrize("readers, writer, writers", [
    (2, "native", 1),   # readers and a flat-out writer compete for 2 cores
    (1, "native", 1),
    (2, "python", 1),   # the calling thread writes through Vitals.apply_delta
    (2, "native", 2),   # two writers serialise on the record's lock
])
def test_native_readers_see_no_torn_copy(readers, writer, writers):
    r = stress(readers=readers, seconds=SECONDS, writer=writer, writers=writers)
    print("\n" + r.summary())
    assert r.torn == 0
    assert r.lost_writes == 0
    assert r.timeouts == 0
    assert r.writes > 0 and r.changes > 1, "readers never saw a write: threads did not overlap"
    assert r.reads >= MIN_READS / 4


def test_native_reads_exceed_a_million_without_a_tear():
    # The bar: >= 10^6 native reads, zero torn, at a realistic write rate.
    r = stress(readers=2, seconds=SECONDS, writer="native", write_rate=100_000)
    print("\n" + r.summary())
    assert r.torn == 0 and r.reads >= MIN_READS and r.changes > 1


def run_python_readers(Vitals, writer_threads, seconds=SECONDS, readers=3):
    """Python reader threads against Python writer threads until a deadline.

    Each write adds (i + 1) to field i in one apply_delta, so a whole copy has
    field i == k * (i + 1) for one k, and k never decreases for a reader.
    """
    names = [f"f{i}" for i in range(8)]
    v = Vitals([Field(n) for n in names])
    step = {n: float(i + 1) for i, n in enumerate(names)}
    stop = threading.Event()
    results = []
    lock = threading.Lock()

    def reader():
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
        with lock:
            results.append((reads, torn, changes))

    writes = []

    def writer():
        n = 0
        while not stop.is_set():
            v.apply_delta(step)
            n += 1
        with lock:
            writes.append(n)

    threads = [threading.Thread(target=reader) for _ in range(readers)]
    threads += [threading.Thread(target=writer) for _ in range(writer_threads)]
    for t in threads:
        t.start()
    stop.wait(seconds)  # the run's duration, not a synchronisation
    stop.set()
    for t in threads:
        t.join()
    reads = sum(r[0] for r in results)
    torn = sum(r[1] for r in results)
    changes = sum(r[2] for r in results)
    final_k = v.read_tuple()[0]
    return reads, torn, changes, sum(writes), final_k


@pytest.mark.parametrize("writer_threads", [1, 2])
def test_python_reader_threads_see_no_torn_copy(Vitals, writer_threads):
    reads, torn, changes, writes, final_k = run_python_readers(Vitals, writer_threads)
    print(f"\n{Vitals.__module__}: {reads:,} Python reads, {changes:,} changes seen, "
          f"{writes:,} writes by {writer_threads} writer thread(s), {torn} torn")
    assert torn == 0
    assert final_k == writes, "a write was lost or applied twice"
    assert reads > 1000 and changes > 1 and writes > 10  # writes: few under ThreadSanitizer
