"""SharedBytes across processes: whole bodies only, a publisher killed mid-publish, limits.

Counts are printed (pytest -s).  CSNAPSHOT_SHM_BYTES_READS sets the reads each
reader process must reach (default 20000); the runs stop on that count.
"""

import json
import os
import signal
import time

import pytest

from csnapshot import NotWriterError, SegmentBusyError, SegmentError, SharedBytes, SharedVitals

READS = int(os.environ.get("CSNAPSHOT_SHM_BYTES_READS", "20000"))

PUBLISHER = """
import hashlib, sys
from csnapshot import SharedBytes
b = SharedBytes.create(sys.argv[1], 1 << 16)
print("ready", flush=True)
i = 0
while True:                          # killed by the test when the readers are done
    i += 1
    body = (str(i).encode() * 8000)[:1000 + (i * 7919) % 60000]
    b.publish(hashlib.sha1(body).digest() + body)
"""

BYTES_READER = """
import hashlib, json, sys
from csnapshot import SharedBytes
b = SharedBytes.open(sys.argv[1])
reads = torn = back = versions = same = 0
last_v, last_body = -1, None
while reads < int(sys.argv[2]) or versions < 10:
    v, body = b.read()
    reads += 1
    if hashlib.sha1(body[20:]).digest() != body[:20]:
        torn += 1
    if v < last_v:
        back += 1
    if v != last_v:
        versions += 1
    elif body is last_body:
        same += 1
    last_v, last_body = v, body
print(json.dumps(dict(reads=reads, torn=torn, back=back, versions=versions, same=same)))
"""


@pytest.mark.slow
def test_cross_process_bodies_are_never_torn(spawn, shm_name):
    w = spawn(PUBLISHER, shm_name)
    assert w.stdout.readline().strip() == "ready", w.stderr.read()
    readers = [spawn(BYTES_READER, shm_name, READS) for _ in range(3)]
    results = []
    for r in readers:
        out, err = r.communicate(timeout=600)
        assert r.returncode == 0, err
        results.append(json.loads(out))
    w.kill()
    w.wait()
    total = {k: sum(x[k] for x in results) for k in results[0]}
    print(f"\n3 reader processes: {total['reads']:,} reads of bodies of 1-61 KB, "
          f"{total['torn']} torn, {total['back']} versions back, {total['versions']:,} "
          f"versions seen, {total['same']:,} repeats served from the cache")
    assert total["torn"] == 0 and total["back"] == 0
    assert all(x["versions"] >= 10 for x in results)


STALLER = """
import sys, threading
from csnapshot import SharedBytes
b = SharedBytes.create(sys.argv[1], 1 << 20)
b.publish(b"first" * 1000)
b.publish(b"second" * 100000)
b._stop_inside_publish(b"third" * 200000, half=int(sys.argv[2]))
print("stalled", flush=True)
threading.Event().wait()            # inside the publish until SIGKILL
"""


@pytest.mark.parametrize("half", [1, 2])
def test_publisher_killed_mid_publish(spawn, shm_name, half):
    w = spawn(STALLER, shm_name, half)
    assert w.stdout.readline().strip() == "stalled", w.stderr.read()
    expected = (2, b"second" * 100000) if half == 1 else (3, b"third" * 200000)
    r = SharedBytes.open(shm_name)
    assert r.read() == expected and r.writer_alive
    w.send_signal(signal.SIGKILL)
    w.wait()
    t = time.perf_counter()
    assert r.read() == expected
    dt = time.perf_counter() - t
    assert not r.writer_alive
    print(f"\nhalf {half}: first read after the kill {dt * 1e6:.0f} us ({len(expected[1]):,} B)")
    s = SharedBytes.create(shm_name, 1 << 20)       # the successor takes over
    assert s.read() == expected and r.read() == expected
    assert s.publish(b"fourth") == expected[0] + 1
    assert r.read() == (expected[0] + 1, b"fourth")
    with pytest.raises(SegmentError, match="capacity is 1048576 bytes, not 10"):
        s.close()
        SharedBytes.create(shm_name, 10)


def test_publish_read_and_the_cache(shm_name):
    b = SharedBytes.create(shm_name, 1 << 20)
    r = SharedBytes.open(shm_name)
    assert r.read() == (0, b"") and r.version == 0 and r.capacity == 1 << 20
    assert b.publish(b"abc") == 1
    v, body = r.read()
    assert (v, body) == (1, b"abc") and r.read()[1] is body      # no copy while unchanged
    big = os.urandom(1 << 20)
    assert b.publish(bytearray(big)) == 2 and r.read() == (2, big)
    assert b.publish(memoryview(big)[:13], version=10) == 10 and r.read() == (10, big[:13])
    assert b.publish(b"") == 11 and r.read() == (11, b"")


def test_a_body_that_does_not_fit_changes_nothing(shm_name):
    b = SharedBytes.create(shm_name, 100)
    b.publish(b"x" * 100)
    with pytest.raises(ValueError, match="a body of 101 bytes does not fit the segment's "
                                         "capacity of 100 bytes; nothing was published"):
        b.publish(b"y" * 101)
    for bad, exc, match in [(3, ValueError, "greater than the current version 3"),
                            (1, ValueError, "greater than the current version"),
                            (2**63, ValueError, "greater than"),
                            ("7", TypeError, "version must be an int")]:
        if bad == 3:
            b.publish(b"z", version=3)
        with pytest.raises(exc, match=match):
            b.publish(b"w", version=bad)
    assert SharedBytes.open(shm_name).read() == (3, b"z")
    with pytest.raises(TypeError):
        b.publish("text is not bytes")
    for cap in (0, -1, 2**40, 1.5, True):
        with pytest.raises(ValueError, match="capacity must be an int"):
            SharedBytes.create(shm_name + "-c", cap)


def test_one_publisher(shm_name):
    b = SharedBytes.create(shm_name, 64)
    with pytest.raises(SegmentBusyError, match="live writer"):
        SharedBytes.create(shm_name, 64)
    r = SharedBytes.open(shm_name)
    with pytest.raises(NotWriterError, match="not the writer"):
        r.publish(b"x")
    with pytest.raises(SegmentError, match="is a SharedBytes segment, not a SharedVitals"):
        SharedVitals.open(shm_name)
    with pytest.raises(FileNotFoundError, match=r"SharedBytes.create makes one"):
        SharedBytes.open(shm_name + "-missing")
    b.close()
    assert not r.writer_alive


WAITER = """
import sys
from csnapshot import SharedBytes
b = SharedBytes.open(sys.argv[1])
print("waiting", b.version, flush=True)
print(b.wait_newer(b.version, 10), *b.read(), flush=True)
"""


def test_wait_newer_across_processes(spawn, shm_name):
    b = SharedBytes.create(shm_name, 64)
    b.publish(b"a", version=5)
    w = spawn(WAITER, shm_name)
    assert w.stdout.readline().split() == ["waiting", "5"]
    b.publish(b"b")
    line = w.stdout.readline()
    assert line.split() == ["True", "6", "b'b'"], line or w.stderr.read()
    assert b.wait_newer(6, 0.02) is False and b.wait_newer(5, 1) is True
