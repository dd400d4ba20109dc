"""In-process stress of the latch records (the ThreadSanitizer run's share).

Native nogil reader threads and Python reader threads against native and
Python writer threads on one SharedVitals / SharedBytes mapping: the same
protocol as across processes, where ThreadSanitizer can see every access.
CSNAPSHOT_STRESS_MIN_READS scales the counts (the sanitizer run lowers it).
"""

import hashlib
import os
import threading

from csnapshot import Field, SharedBytes, SharedVitals, _harness

MIN_READS = int(os.environ.get("CSNAPSHOT_STRESS_MIN_READS", "1000000"))


def test_native_and_python_readers_with_native_and_python_writers(shm_name):
    v = SharedVitals.create(shm_name, [Field(f"f{i}") for i in range(8)])
    r = SharedVitals.open(shm_name)
    results, py = [], []
    done = threading.Event()

    def native_reader():
        results.append(_harness.latch_reader(r, MIN_READS // 2, min_changes=10))

    def python_reader():
        torn = reads = 0
        while not done.is_set() or reads < 1000:
            t = r.read_tuple()
            reads += 1
            torn += any(t[i] != t[0] * (i + 1) for i in range(8))
        py.append((reads, torn))

    def python_writer():
        # Reads k back under the writer lock's protection of a single writer
        # thread at a time: apply_delta adds (i + 1) to slot i, k += 1.
        step = {f"f{i}": float(i + 1) for i in range(8)}
        for _ in range(max(MIN_READS // 100, 1000)):
            v.apply_delta(step)

    threads = [threading.Thread(target=native_reader) for _ in range(2)]
    threads += [threading.Thread(target=python_reader)]
    writers = [threading.Thread(target=python_writer),
               threading.Thread(target=_harness.latch_writer, args=(v, MIN_READS // 10))]
    for t in threads + writers:
        t.start()
    for t in writers:
        t.join()
    done.set()
    for t in threads:
        t.join()
    writes = max(MIN_READS // 100, 1000) + MIN_READS // 10
    print(f"\n2 native readers: {sum(x['reads'] for x in results):,} reads, "
          f"{sum(x['torn'] for x in results)} torn, {sum(x['changes'] for x in results):,} "
          f"versions seen; Python reader: {py[0][0]:,} reads, {py[0][1]} torn; "
          f"{writes:,} writes by 2 writer threads")
    assert sum(x["torn"] for x in results) == 0 and py[0][1] == 0
    assert v.read_tuple()[0] == writes and v.version == writes      # no lost write


def test_bytes_readers_and_a_publisher_thread(shm_name):
    b = SharedBytes.create(shm_name, 4096)
    r = SharedBytes.open(shm_name)
    bad = []
    n = max(MIN_READS // 200, 500)

    def reader():
        last = -1
        for _ in range(n):
            ver, body = r.read()
            if ver and (hashlib.sha1(body[20:]).digest() != body[:20] or ver < last):
                bad.append(ver)
            last = ver

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for i in range(n):
        body = str(i).encode() * (1 + i % 300)
        b.publish(hashlib.sha1(body).digest() + body)
    for t in threads:
        t.join()
    print(f"\n2 reader threads x {n:,} reads, {n:,} publishes: {len(bad)} torn")
    assert not bad and r.version == n
