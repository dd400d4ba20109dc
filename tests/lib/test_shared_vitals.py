"""SharedVitals across processes: torn-read stress, a writer killed inside a write, bad segments.

The stress's read count (not a duration) is what the runs must reach:
CSNAPSHOT_SHM_SOAK sets the total native reads (default 10^7; 10^9 for a soak).
Every reader and writer is a separate process; counts are printed (pytest -s).
"""

import json
import math
import os
import signal
import stat
import struct
import time

import pytest

from csnapshot import (Field, NotWriterError, SegmentBusyError, SegmentError, SharedBytes,
                       SharedVitals, StalledWriterError, segment_path)

TOTAL_NATIVE_READS = int(os.environ.get("CSNAPSHOT_SHM_SOAK", str(10**7)))
PY_READS = int(os.environ.get("CSNAPSHOT_SHM_PY_READS", "200000"))
NREADERS = 3


def invariant_fields():
    return [Field(f"f{i}") for i in range(8)]


WRITER = """
import sys
from csnapshot import SharedVitals, Field, _harness
v = SharedVitals.create(sys.argv[1], [Field(f"f{i}") for i in range(8)])
print("ready", flush=True)
if sys.argv[2] == "native":
    while True:                      # killed by the test when the readers are done
        _harness.latch_writer(v, 100000)
k = 0
while True:
    k += 1
    v.write_tuple([k * (i + 1.0) for i in range(8)])
"""

READER = """
import json, sys
from csnapshot import SharedVitals, _harness
v = SharedVitals.open(sys.argv[1])
native = _harness.latch_reader(v, int(sys.argv[2]), min_changes=100)
torn = back = changes = reads = 0
last_k = 0.0
last = None
while reads < int(sys.argv[3]) or changes < 10:
    reads += 1
    t = v.read_tuple()
    k = t[0]
    if any(t[i] != k * (i + 1) for i in range(8)):
        torn += 1
    if k < last_k:
        back += 1
    if t is not last:
        changes += 1
    last_k, last = k, t
print(json.dumps(dict(native=native, py_reads=reads, py_torn=torn, py_back=back,
                      py_changes=changes)))
"""


@pytest.mark.slow
@pytest.mark.parametrize("writer", ["native", "python"])
def test_cross_process_readers_never_see_a_torn_copy(spawn, shm_name, writer):
    w = spawn(WRITER, shm_name, writer)
    assert w.stdout.readline().strip() == "ready", w.stderr.read()
    native_each = math.ceil((TOTAL_NATIVE_READS if writer == "native" else 10**6) / NREADERS)
    readers = [spawn(READER, shm_name, native_each, PY_READS) for _ in range(NREADERS)]
    results = []
    for r in readers:
        out, err = r.communicate(timeout=600)
        assert r.returncode == 0, err
        results.append(json.loads(out))
    w.kill()
    w.wait()
    native = sum(x["native"]["reads"] for x in results)
    torn = sum(x["native"]["torn"] for x in results)
    py = sum(x["py_reads"] for x in results)
    py_torn = sum(x["py_torn"] + x["py_back"] for x in results)
    print(f"\n{writer} writer, {NREADERS} reader processes: {native:,} native reads "
          f"({torn} torn, {sum(x['native']['changes'] for x in results):,} versions seen, "
          f"{sum(x['native']['retries'] for x in results):,} retries), {py:,} Python reads "
          f"({py_torn} torn or backwards, {sum(x['py_changes'] for x in results):,} new tuples)")
    assert torn == 0 and py_torn == 0
    assert native >= NREADERS * native_each
    for x in results:
        assert x["native"]["changes"] >= 100 and x["py_changes"] >= 10, \
            "a reader saw too few writes: the processes did not overlap"


# ---- a writer killed inside a write section ---------------------------------

STALLER = """
import sys, threading
from csnapshot import SharedVitals, Field
v = SharedVitals.create(sys.argv[1], [Field("a", default=50.0), Field("b", default=50.0),
                                      Field("n", kind=int)])
v.write(a=30.0, b=70.0, n=1)
v.write(a=40.0, b=60.0, n=2)
v._stop_inside_write(int(sys.argv[2]), a=10.0, b=90.0, n=3)
print("stalled", flush=True)
threading.Event().wait()            # inside the write section until SIGKILL
"""

LATE_READER = """
import sys, time
from csnapshot import SharedVitals
v = SharedVitals.open(sys.argv[1])
print("attached", flush=True)
sys.stdin.readline()                # the test kills the writer, then says go
t = time.perf_counter(); values = v.read_tuple(); dt = time.perf_counter() - t
print(repr((values, v.version, v.writer_alive, dt)), flush=True)
"""


@pytest.mark.parametrize("half", [1, 2])
def test_writer_killed_inside_a_write(spawn, shm_name, half):
    w = spawn(STALLER, shm_name, half)
    assert w.stdout.readline().strip() == "stalled", w.stderr.read()
    # half 1: the write stopped in the first copy, readers keep the previous
    # version; half 2: the first copy was whole and readers moved to it.
    expected = (40.0, 60.0, 2) if half == 1 else (10.0, 90.0, 3)
    r = SharedVitals.open(shm_name)
    late = spawn(LATE_READER, shm_name)
    assert late.stdout.readline().strip() == "attached"
    t = time.perf_counter()
    assert r.read_tuple() == expected
    stalled_read = time.perf_counter() - t
    assert r.writer_alive and r.writer_pid == w.pid
    w.send_signal(signal.SIGKILL)
    w.wait()
    t = time.perf_counter()
    assert r.read_tuple() == expected
    dead_read = time.perf_counter() - t
    assert not r.writer_alive, "the kernel released the dead writer's lock"
    late.stdin.write("go\n")
    late.stdin.flush()
    values, version, alive, dt = eval(late.stdout.readline())
    assert values == expected and version == (2 if half == 1 else 3) and alive is False
    print(f"\nhalf {half}: read with the writer stalled {stalled_read * 1e6:.0f} us, dead "
          f"{dead_read * 1e6:.0f} us, in another process {dt * 1e6:.0f} us")
    assert max(stalled_read, dead_read, dt) < 0.05
    # A successor takes over: the record is whole, and the unfinished write
    # counts as one write of the values readers already had.
    s = SharedVitals.create(shm_name, r.fields)
    assert s.read_tuple() == expected and r.read_tuple() == expected
    assert r.version == 3 and r.writer_alive and r.writer_pid == os.getpid()
    s.write(a=55.0, b=45.0)
    assert r.read_tuple() == (55.0, 45.0, expected[2]) and r.version == 4
    s.apply_delta({"n": 1})
    assert r.read_tuple() == (55.0, 45.0, expected[2] + 1) and r.version == 5


def test_stalled_writer_thread_never_blocks_readers(shm_name):
    v = SharedVitals.create(shm_name, [Field("a"), Field("b")], timeout=0.05)
    v.write(a=1.0, b=2.0)
    r = SharedVitals.open(shm_name)
    with v._hold_write_section():
        assert r.read_tuple() == (1.0, 2.0) and v.read() == {"a": 1.0, "b": 2.0}
        with pytest.raises(StalledWriterError, match="write lock"):
            v.write(a=5.0)
    v.write(a=5.0)
    assert r.read_tuple() == (5.0, 2.0)


def test_a_successor_cannot_take_over_a_stopped_but_live_writer(spawn, shm_name):
    w = spawn(STALLER, shm_name, 1)
    assert w.stdout.readline().strip() == "stalled"
    with pytest.raises(SegmentBusyError, match=rf"{shm_name}: the segment has a live writer "
                                               rf"\(pid {w.pid}\)"):
        SharedVitals.create(shm_name, [Field("a", default=50.0), Field("b", default=50.0),
                                       Field("n", kind=int)])


# ---- the writer role ---------------------------------------------------------

def test_one_writer_per_segment(shm_name):
    v = SharedVitals.create(shm_name, [Field("a")])
    with pytest.raises(SegmentBusyError, match="live writer"):
        SharedVitals.create(shm_name, [Field("a")])
    r = SharedVitals.open(shm_name)
    for write in (lambda: r.write(a=1.0), lambda: r.apply_delta({"a": 1.0}),
                  lambda: r.write_tuple((1.0,)), lambda: r.writer("a")):
        with pytest.raises(NotWriterError, match=r"not the writer: it was opened with "
                                                 r"SharedVitals.open\(\)"):
            write()
    assert r.version == 0 and not r.is_writer and v.is_writer
    v.close()                                   # gives up the role, keeps reading
    assert not r.writer_alive and not v.writer_alive
    with pytest.raises(NotWriterError):
        v.write(a=2.0)
    s = SharedVitals.create(shm_name, [Field("a")])
    s.write(a=3.0)
    assert v.read_tuple() == (3.0,) and r.read_tuple() == (3.0,)


def test_takeover_needs_the_same_schema(shm_name):
    SharedVitals.create(shm_name, [Field("a"), Field("n", kind=int)]).close()
    with pytest.raises(SegmentError, match=r"holds another schema .*Field\('a'"):
        SharedVitals.create(shm_name, [Field("a")])
    with pytest.raises(SegmentError, match="is a SharedVitals segment, not a SharedBytes"):
        SharedBytes.create(shm_name, 100)


def test_memo_returns_the_same_tuple_until_a_write(shm_name):
    v = SharedVitals.create(shm_name, [Field("a"), Field("n", kind=int)])
    r = SharedVitals.open(shm_name)
    t = r.read_tuple()
    assert r.read_tuple() is t and r.read_versioned() == (0, t)
    v.write(n=1)
    t2 = r.read_tuple()
    assert t2 == (0.0, 1) and t2 is not t and r.read_tuple() is t2
    assert type(t2[1]) is int and r.get("n") == 1 and r["a"] == 0.0
    with pytest.raises(KeyError, match="unknown field 'x'; valid fields: a, n"):
        r["x"]


# ---- bad segments ------------------------------------------------------------

def _make(shm_name):
    SharedVitals.create(shm_name, [Field("a"), Field("b")]).close()
    return segment_path(shm_name)


def _patch(path, offset, data):
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def test_open_missing(shm_name):
    with pytest.raises(FileNotFoundError, match=rf"no shared-memory segment .*{shm_name} "
                                                r"\(SharedVitals.create makes one\)"):
        SharedVitals.open(shm_name)


@pytest.mark.parametrize("case, match", [
    ("not a segment", "not a csnapshot segment"),
    ("short junk", "not a csnapshot segment"),
    ("empty", "truncated: 0 bytes"),
    ("truncated header", "truncated: 40 bytes, shorter than the 64-byte segment header"),
    ("truncated record", r"truncated: the header says \d+ bytes, the file has 200"),
    ("layout", "segment layout version 7; this csnapshot reads layout version 1 only"),
    ("kind", "is a SharedBytes segment, not a SharedVitals"),
    ("schema", "the schema stored in the segment is corrupt"),
    ("directory", "not a regular file"),
])
def test_open_refuses_a_bad_segment(shm_name, case, match):
    path = segment_path(shm_name)
    if case == "not a segment":
        with open(path, "wb") as f:
            f.write(os.urandom(4096))
    elif case == "short junk":
        with open(path, "wb") as f:
            f.write(b"hello")
    elif case == "empty":
        open(path, "wb").close()
    elif case == "truncated header":
        _make(shm_name)
        os.truncate(path, 40)
    elif case == "truncated record":
        _make(shm_name)
        os.truncate(path, 200)
    elif case == "layout":
        _make(shm_name)
        _patch(path, 8, struct.pack("<I", 7))
    elif case == "kind":
        SharedBytes.create(shm_name, 64).close()
    elif case == "schema":
        _make(shm_name)
        _patch(path, 64, b"{]")
    elif case == "directory":
        os.mkdir(path)
    try:
        os.chmod(path, 0o600)
        with pytest.raises(SegmentError, match=match) as info:
            SharedVitals.open(shm_name)
        assert path in str(info.value)
    finally:
        if case == "directory":
            os.rmdir(path)


# ---- permissions -------------------------------------------------------------

def test_created_0600_by_default_and_mode_is_exact(shm_name):
    SharedVitals.create(shm_name, [Field("a")])
    assert stat.S_IMODE(os.stat(segment_path(shm_name)).st_mode) == 0o600
    old = os.umask(0o077)
    try:
        SharedVitals.create(shm_name + "-g", [Field("a")], mode=0o640)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(segment_path(shm_name + "-g")).st_mode) == 0o640
    with pytest.raises(ValueError, match="mode 0666 lets every user write the segment"):
        SharedVitals.create(shm_name + "-w", [Field("a")], mode=0o666)
    assert not os.path.exists(segment_path(shm_name + "-w"))


def test_open_refuses_a_world_writable_segment(shm_name):
    path = _make(shm_name)
    os.chmod(path, 0o666)
    with pytest.raises(PermissionError, match=r"refusing a segment every user may write "
                                              r"\(mode 0666\)"):
        SharedVitals.open(shm_name)
    with pytest.raises(PermissionError, match="every user may write"):
        SharedVitals.create(shm_name, [Field("a"), Field("b")])


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_open_without_read_permission(shm_name):
    path = _make(shm_name)
    os.chmod(path, 0o000)
    with pytest.raises(PermissionError, match="no permission to read segment"):
        SharedVitals.open(shm_name)


def test_names_and_paths(shm_name, tmp_path):
    assert segment_path("x") == "/dev/shm/x" or not os.path.isdir("/dev/shm")
    p = tmp_path / "seg"
    v = SharedVitals.create(str(p), [Field("a")])
    assert v.path == str(p) and SharedVitals.open(p).read_tuple() == (0.0,)
    for bad in ("", "..", 5, "a\0b"):
        with pytest.raises(ValueError, match="segment name"):
            SharedVitals.open(bad)


# ---- fork, unlink and re-create ----------------------------------------------

def _in_child(fn):
    """Run fn() in a forked child; its return value (JSON) or its error text."""
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(rfd)
        try:
            out = json.dumps(["ok", fn()])
        except BaseException as e:  # noqa: BLE001 - reported to the parent
            out = json.dumps(["error", f"{type(e).__name__}: {e}"])
        os.write(wfd, out.encode())
        os._exit(0)
    os.close(wfd)
    with os.fdopen(rfd) as f:
        data = f.read()
    os.waitpid(pid, 0)
    return json.loads(data)


def test_fork_after_attach(shm_name):
    v = SharedVitals.create(shm_name, [Field("a"), Field("n", kind=int)])
    r = SharedVitals.open(shm_name)
    v.write(a=1.0, n=1)
    r.read_tuple()                               # a memo to inherit

    def child():
        v.write(n=2)
    status, msg = _in_child(child)
    assert status == "error" and "NotWriterError" in msg and "forked from the writer" in msg

    def child_reads():
        before = (r.read_tuple(), v.read_tuple(), r.writer_alive, v.writer_alive, v.is_writer)
        return [list(before[0]), list(before[1]), before[2], before[3], before[4]]
    status, seen = _in_child(child_reads)
    assert status == "ok" and seen == [[1.0, 1], [1.0, 1], True, True, False]
    v.write(n=3)                                 # the parent kept the role
    assert r.read_tuple() == (1.0, 3)
    # The child's copy of the writer's file does not hold the role: once the
    # parent gives it up, a successor can take over at once.
    v.close()
    assert not r.writer_alive
    SharedVitals.create(shm_name, r.fields).write(n=4)
    assert r.read_tuple() == (1.0, 4)


def test_unlink_and_recreate_while_readers_hold_the_old_mapping(shm_name):
    old = SharedVitals.create(shm_name, [Field("a")])
    old.write(a=1.0)
    r = SharedVitals.open(shm_name)
    assert not r.replaced
    old.unlink()
    assert r.replaced and r.read_tuple() == (1.0,)
    new = SharedVitals.create(shm_name, [Field("b", kind=int)])
    new.write(b=7)
    old.write(a=2.0)                              # the old segment lives on, nameless
    assert r.read_tuple() == (2.0,) and r.replaced and r.writer_alive
    old.close()
    assert not r.writer_alive and r.read_tuple() == (2.0,)
    fresh = SharedVitals.open(shm_name)
    assert fresh.read() == {"b": 7} and not fresh.replaced and fresh.writer_alive


# ---- waiting -----------------------------------------------------------------

WAITER = """
import sys, time
from csnapshot import SharedVitals
v = SharedVitals.open(sys.argv[1])
seen = v.version
print("waiting", seen, flush=True)
t = time.monotonic()
got = v.wait_newer(seen, 10)
print(got, v.version, v.read_tuple(), time.monotonic() - t, flush=True)
"""


def test_wait_newer_across_processes(spawn, shm_name):
    v = SharedVitals.create(shm_name, [Field("a")])
    w = spawn(WAITER, shm_name)
    assert w.stdout.readline().split() == ["waiting", "0"]
    v.write(a=4.0)
    line = w.stdout.readline()
    assert line, "the waiter died: " + w.stderr.read()
    got, version, values, dt = line.split(maxsplit=3)
    assert got == "True" and version == "1", line
    assert float(dt.split()[-1]) < 5
    t = time.monotonic()
    assert v.wait_newer(1, 0.05) is False and time.monotonic() - t >= 0.05
    assert v.wait_newer(0, 0) is True
    with pytest.raises(TypeError, match="int version"):
        v.wait_newer(1.5, 1)
