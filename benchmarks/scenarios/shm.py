"""Scenario 7: readers in other processes (SharedVitals, SharedBytes) against the usual answers.

Every reader is a process of its own, the writer another one:
- 8 float fields, writer at 1 kHz and flat out, 1/2/4 reader processes:
  `SharedVitals.read_tuple` (at 1 kHz nearly every read is a memo hit; flat out
  nearly every read is the first after a write), the nogil native read
  (`csnapshot._harness.latch_reader`), and `multiprocessing.shared_memory` +
  `struct.unpack_from` (unsynchronised: the floor, and its torn reads counted);
- `multiprocessing.Manager().dict()`: one consistent read is one `copy()` round trip;
- `SharedBytes.read` of a new 10 KB / 1 MB body per version against receiving the
  same body through a pipe.
- a Redis `GET` of the 8 fields packed with `struct`, from a `redis-server` this
  scenario starts on a free loopback port (where `redis-server` and the `redis`
  client are installed: the `redis` extra and Debian's package).
UltraDict is not measured (not installable here).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from typing import Any

from .. import formatting as F

ID = 7
NAME = "shm"
TITLE = "readers in other processes: SharedVitals / SharedBytes vs shared_memory, Manager, a pipe"

WRITER = """
import struct, sys, time
from multiprocessing import shared_memory
from csnapshot import Field, SharedVitals
name, rate = sys.argv[1], float(sys.argv[2])
v = SharedVitals.create(name, [Field(f"f{i}") for i in range(8)])
shm = shared_memory.SharedMemory(name + "-mp", create=True, size=64)
pack = struct.Struct("8d").pack_into
w = v.writer(*v)
print("ready", flush=True)
period = 1.0 / rate if rate else 0.0
k, nxt = 0, time.perf_counter()
while True:
    k += 1
    vals = [k * (i + 1.0) for i in range(8)]
    w(*vals)
    pack(shm.buf, 0, *vals)
    if period:                       # sleep, do not spin: the readers need the cores
        nxt += period
        delay = nxt - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
"""

READER = """
import json, struct, sys, time
from multiprocessing import resource_tracker, shared_memory
from csnapshot import SharedVitals, _harness
name, seconds = sys.argv[1], float(sys.argv[2])
v = SharedVitals.open(name)
shm = shared_memory.SharedMemory(name + "-mp")
resource_tracker.unregister(shm._name, "shared_memory")   # the writer owns it
out = {}
read = v.read_tuple
n, end = 0, time.perf_counter() + seconds
while time.perf_counter() < end:
    for _ in range(1000):
        read()
    n += 1000
out["py_ns"] = seconds / n * 1e9
t = time.perf_counter()
r = _harness.latch_reader(v, 2_000_000)
out["c_ns"] = (time.perf_counter() - t) / r["reads"] * 1e9
out["c_torn"] = r["torn"]
unpack, buf = struct.Struct("8d").unpack_from, shm.buf
n = torn = 0
end = time.perf_counter() + seconds
while time.perf_counter() < end:
    for _ in range(1000):
        t8 = unpack(buf, 0)
        if t8[1] != 2 * t8[0] or t8[7] != 8 * t8[0]:
            torn += 1
    n += 1000
out["mp_ns"] = seconds / n * 1e9
out["mp_reads"], out["mp_torn"] = n, torn
shm.close()
print(json.dumps(out))
"""

BYTES_READER = """
import json, os, sys, time
from csnapshot import SharedBytes
name, count, fd = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
b = SharedBytes.open(name)
times, version = [], b.version
while len(times) < count and b.wait_newer(version, 5):
    t = time.perf_counter()
    version, body = b.read()         # the copy of the new body
    times.append(time.perf_counter() - t)
size = len(body)
pipe, got = [], 0
with os.fdopen(fd, "rb", buffering=0) as f:
    for _ in range(count):
        t = time.perf_counter()
        left = size
        while left:
            left -= len(f.read(left))
        pipe.append(time.perf_counter() - t)
times.sort(); pipe.sort()
print(json.dumps({"shm_ns": times[len(times) // 2] * 1e9, "pipe_ns": pipe[len(pipe) // 2] * 1e9}))
"""


def _settings(quick: bool) -> dict[str, Any]:
    return ({"seconds": 0.3, "readers": [1, 2], "bodies": 50} if quick
            else {"seconds": 1.5, "readers": [1, 2, 4], "bodies": 300})


def estimate(ctx) -> float:
    s = _settings(ctx.quick)
    return 2 * len(s["readers"]) * (2 * s["seconds"] + 1.5) + 6


def _spawn(code: str, *args: object, **kw: Any) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
                            stdout=subprocess.PIPE, text=True, **kw)


def _vitals(ctx, s: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for rate in (1000.0, 0.0):
        name = f"csnapbench-{uuid.uuid4().hex[:8]}"
        w = _spawn(WRITER, name, rate)
        try:
            assert w.stdout is not None and w.stdout.readline().strip() == "ready"
            for k in s["readers"]:
                ctx.log.debug("  shm: writer %s, %d reader processes", rate or "flat out", k)
                procs = [_spawn(READER, name, s["seconds"]) for _ in range(k)]
                res = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
                rows.append({"rate": rate, "readers": k, "per_reader": res})
        finally:
            w.kill()
            w.wait()
            # The -mp segment is unlinked by the killed writer's resource tracker
            # (multiprocessing's own behaviour); ours we remove.
            try:
                os.unlink(f"/dev/shm/{name}")
            except OSError:
                pass
    return rows


def _manager(s: dict[str, Any]) -> float:
    from multiprocessing import Manager
    with Manager() as m:
        d = m.dict({f"f{i}": 0.0 for i in range(8)})
        n, end = 0, time.perf_counter() + s["seconds"]
        while time.perf_counter() < end:
            tuple(d.copy().values())
            n += 1
        return s["seconds"] / n * 1e9


def _redis(s: dict[str, Any]) -> float | str:
    """ns per consistent read of 8 packed floats through a local redis-server, or why not."""
    server_bin = shutil.which("redis-server")
    try:
        import redis
    except ImportError:
        return "the redis client is not installed (pip install -e '.[redis]')"
    if server_bin is None:
        return "redis-server is not installed (apt-get install redis-server)"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory(prefix="csnap-bench-redis-") as folder:
        server = subprocess.Popen([server_bin, "--port", str(port), "--bind", "127.0.0.1",
                                   "--save", "", "--appendonly", "no", "--dir", folder],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            client = redis.Redis(host="127.0.0.1", port=port)
            deadline = time.monotonic() + 10
            while True:  # bounded: the server answers PING once it listens
                try:
                    client.ping()
                    break
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        return "redis-server did not answer within 10 s"
                    time.sleep(0.02)
            client.set("vitals", struct.pack("8d", *range(8)))
            n, end = 0, time.perf_counter() + s["seconds"]
            while time.perf_counter() < end:
                struct.unpack("8d", client.get("vitals"))  # type: ignore[arg-type]
                n += 1
            client.close()
            return s["seconds"] / n * 1e9
        finally:
            server.terminate()
            server.wait(10)


def _bytes(s: dict[str, Any]) -> list[dict[str, Any]]:
    from csnapshot import SharedBytes
    rows = []
    for size in (10_000, 1_000_000):
        name = f"csnapbench-{uuid.uuid4().hex[:8]}"
        b = SharedBytes.create(name, size)
        r, w = os.pipe()
        p = _spawn(BYTES_READER, name, s["bodies"], r, pass_fds=(r,))
        os.close(r)
        try:
            body = bytearray(os.urandom(size))
            time.sleep(0.2)  # the reader attaches (a missed version only delays it)
            for i in range(s["bodies"]):
                body[0] = i & 255
                b.publish(body)
                time.sleep(0.002)
            for _ in range(s["bodies"]):
                os.write(w, body) if size <= 65536 else _write_all(w, body)
            os.close(w)
            rows.append({"size": size, **json.loads(p.communicate(timeout=120)[0])})
        finally:
            if p.poll() is None:
                p.kill()
            b.unlink()
    return rows


def _write_all(fd: int, data: bytes | bytearray) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def run(ctx) -> dict[str, Any]:
    s = _settings(ctx.quick)
    return {"vitals": _vitals(ctx, s), "manager_ns": _manager(s), "redis_ns": _redis(s),
            "bytes": _bytes(s), "settings": s}


def _med(row: dict[str, Any], key: str) -> float:
    return F.median([r[key] for r in row["per_reader"]])


def summary(data: dict[str, Any]) -> list[str]:
    one = {r["rate"]: r for r in data["vitals"] if r["readers"] == 1}
    out = []
    if 1000.0 in one and 0.0 in one:
        out.append(f"another process reads 8 fields: SharedVitals.read_tuple "
                   f"{F.num(_med(one[1000.0], 'py_ns'))} ns (writer 1 kHz), "
                   f"{F.num(_med(one[0.0], 'py_ns'))} ns (flat out); nogil C "
                   f"{F.num(_med(one[1000.0], 'c_ns'))} ns; Manager().dict() "
                   f"{F.num(data['manager_ns'])} ns; Redis GET "
                   f"{_redis_text(data.get('redis_ns'))}")
    torn = sum(r["mp_torn"] for row in data["vitals"] for r in row["per_reader"])
    ctorn = sum(r["c_torn"] for row in data["vitals"] for r in row["per_reader"])
    out.append(f"torn reads: csnapshot {ctorn}, shared_memory + struct {torn:,}")
    return out


def markdown(data: dict[str, Any], ctx) -> str:
    rows = []
    for row in data["vitals"]:
        rows.append([("1 kHz" if row["rate"] else "flat out"), str(row["readers"]),
                     F.num(_med(row, "py_ns")), F.num(_med(row, "c_ns")),
                     F.num(_med(row, "mp_ns")),
                     f"{sum(r['mp_torn'] for r in row['per_reader']):,} of "
                     f"{sum(r['mp_reads'] for r in row['per_reader']):,}"])
    head = ["writer", "reader processes", "SharedVitals.read_tuple ns", "nogil C read ns",
            "shared_memory + struct ns", "its torn reads"]
    table = "| " + " | ".join(head) + " |\n|" + "---|" * len(head) + "\n" + "\n".join(
        "| " + " | ".join(r) + " |" for r in rows)
    btable = "| body | SharedBytes.read of a new version | the same body through a pipe |\n|---|---|---|\n"
    btable += "\n".join(f"| {r['size'] // 1000:,} KB | {F.num(r['shm_ns'] / 1000)} µs | "
                        f"{F.num(r['pipe_ns'] / 1000)} µs |" for r in data["bytes"])
    return (f"Medians per reader process. `multiprocessing.Manager().dict()`: one consistent "
            f"read (`copy()`) {F.num(data['manager_ns'])} ns.\n\n{table}\n\n{btable}\n\n"
            f"A Redis `GET` + `struct.unpack` of the same 8 fields from a local "
            f"redis-server: {_redis_text(data.get('redis_ns'))}. UltraDict: not measured "
            "(not installable here).\n")


def _redis_text(value: Any) -> str:
    return f"{F.num(value)} ns" if isinstance(value, (int, float)) else f"not measured ({value})"


def charts(data: dict[str, Any], ctx) -> list:
    return []
