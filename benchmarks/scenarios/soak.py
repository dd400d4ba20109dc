"""Scenario 9: the soak - 16 clients against the real command, good and hostile.

`python -m src.main_server_api` runs in its own process (the loop at 1 ms ticks,
snapshots saved, the default event generator), exactly as an operator starts
it.  A client process runs 16 threads, each a fixed number of rounds (a count,
not a deadline).  A round is four keep-alive requests - `/status`, `/vitals`,
`/status?memory_limit=5`, a `POST /event` - and, every tenth round, one
hostile request on a connection of its own, in turn: an oversized header
(431), a malformed request line (400), a body the server must not read as the
next request (a GET with a body), a head abandoned half-way.  Every answer's
status is checked against the one expected; anything else, or a connection
error on a good request, is a lost request.

The server's resident memory is sampled from ``/proc/<pid>/status`` while the
clients run: the first sample after the warm-up round, the peak and the last.
Memory that stays flat while 16 clients come and go is the point; so is a
loss count of 0.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

from .. import app
from .. import formatting as F
from ..charts import Chart

ID = 9
NAME = "soak"
TITLE = "soak: 16 clients, good and hostile requests, server memory and losses"

CLIENTS = 16

# The load, run with `python -c` in its own process; prints one JSON line.
CLIENT = r"""
import http.client, json, socket, sys, threading
port, clients, rounds = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
GOOD = [("GET", "/status", None, 200), ("GET", "/vitals", None, 200),
        ("GET", "/status?memory_limit=5", None, 200),
        ("POST", "/event", b'{"type": "shock", "intensity": 0.2}', 202)]
HOSTILE = [
    (b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n", b" 431 "),
    (b"GARBAGE\r\n\r\n", b" 400 "),
    (b"GET /vitals HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 20\r\n\r\n"
     b"GET /x HTTP/1.1\r\n\r\n", b" 200 "),
    (b"GET /status HTTP/1.1\r\nHost: 127.0", None),   # abandoned half-way: no answer expected
]
stats = {"sent": 0, "ok": 0, "unexpected": 0, "errors": 0, "hostile": 0, "hostile_ok": 0}
lock = threading.Lock()
def count(**kw):
    with lock:
        for k, v in kw.items(): stats[k] += v
def hostile(i):
    raw, want = HOSTILE[i % len(HOSTILE)]
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    try:
        s.sendall(raw)
        if want is None:
            count(hostile=1, hostile_ok=1); return
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk: break
            data += chunk
        count(hostile=1, hostile_ok=int(want in data.split(b"\r\n", 1)[0]))
    except OSError:
        count(hostile=1)
    finally:
        s.close()
def client(n):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for r in range(rounds):
        for method, path, body, want in GOOD:
            headers = {"Content-Type": "application/json"} if body else {}
            try:
                conn.request(method, path, body=body, headers=headers)
                resp = conn.getresponse(); resp.read()
                count(sent=1, ok=int(resp.status == want), unexpected=int(resp.status != want))
            except (OSError, http.client.HTTPException):
                count(sent=1, errors=1)
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        if r % 10 == 9:
            hostile(n + r // 10)
    conn.close()
threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps(stats))
"""


def _plan(quick: bool) -> int:
    """Rounds per client (4 good requests each)."""
    return 150 if quick else 1000


def estimate(ctx) -> float:
    # ~1,200 requests/s on 2 cores, plus start-up.
    return CLIENTS * _plan(ctx.quick) * 4 / 1200 + 5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def _wait_listening(proc: subprocess.Popen, port: int, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode} before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)  # a bounded poll for the port: the server gives no other signal
    raise RuntimeError(f"the server did not listen on {port} within {seconds:.0f} s")


def run(ctx) -> dict[str, Any]:
    rounds = _plan(ctx.quick)
    port = _free_port()
    ctx.log.info("  %d clients x %d rounds (%d good requests, %d hostile) against the real "
                 "command", CLIENTS, rounds, CLIENTS * rounds * 4, CLIENTS * (rounds // 10))
    with tempfile.TemporaryDirectory(prefix="csnap-soak-") as data:
        server = subprocess.Popen(
            app.server_command(port, data, "--tick-interval", "0.001", "--log-level", "WARNING",
                               "--queue-size", "1000"),
            cwd=ctx.root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            _wait_listening(server, port)
            rss_idle = _rss_mb(server.pid)
            samples: list[tuple[float, float]] = []
            done = threading.Event()

            def sample() -> None:
                t0 = time.monotonic()
                while not done.wait(0.25):
                    samples.append((time.monotonic() - t0, _rss_mb(server.pid)))

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            t0 = time.monotonic()
            out = subprocess.run([sys.executable, "-c", CLIENT, str(port), str(CLIENTS),
                                  str(rounds)], capture_output=True, text=True, cwd="/",
                                 timeout=estimate(ctx) * 10 + 120)
            elapsed = time.monotonic() - t0
            done.set()
            sampler.join()
            if out.returncode != 0:
                raise RuntimeError(f"client process failed: {out.stderr[-500:]}")
            stats = json.loads(out.stdout)
            rss_end = _rss_mb(server.pid)
        finally:
            server.terminate()
            try:
                err = server.communicate(timeout=30)[1]
            except subprocess.TimeoutExpired:
                server.kill()
                err = server.communicate()[1]
        if server.returncode != 0:
            raise RuntimeError(f"the server exited with {server.returncode}: {err[-500:]}")
    warm = [mb for t, mb in samples if t >= min(2.0, elapsed / 5)] or [rss_end]
    return {"python": sys.version.split()[0], "cpus": os.cpu_count(), "clients": CLIENTS,
            "rounds": rounds, "elapsed_s": elapsed, "stats": stats,
            "rss_mb": {"idle": rss_idle, "after_warmup": warm[0], "peak": max(warm),
                       "end": rss_end},
            "samples": samples}


def _lost(stats: dict[str, int]) -> int:
    return stats["errors"] + stats["unexpected"] + stats["hostile"] - stats["hostile_ok"]


def summary(data: dict[str, Any]) -> list[str]:
    s, m = data["stats"], data["rss_mb"]
    return [f"soak: {data['clients']} clients, {s['sent']:,} good + {s['hostile']:,} hostile "
            f"requests in {data['elapsed_s']:.0f} s; {_lost(s)} lost; server memory "
            f"{m['after_warmup']:.1f} -> {m['end']:.1f} MB (peak {m['peak']:.1f})"]


def markdown(data: dict[str, Any], ctx) -> str:
    s, m = data["stats"], data["rss_mb"]
    rows = [("good requests sent", f"{s['sent']:,}"),
            ("answered as expected", f"{s['ok']:,}"),
            ("unexpected status", f"{s['unexpected']:,}"),
            ("connection errors", f"{s['errors']:,}"),
            ("hostile requests (431, 400, body-smuggling GET, abandoned head)",
             f"{s['hostile']:,} ({s['hostile_ok']:,} answered as expected)"),
            ("requests/s (good)", F.rate(s["sent"] / data["elapsed_s"])),
            ("server RSS idle / after warm-up / peak / end (MB)",
             f"{m['idle']:.1f} / {m['after_warmup']:.1f} / {m['peak']:.1f} / {m['end']:.1f}")]
    return "\n".join([
        f"Python {data['python']}, {data['cpus']} CPUs; `python -m src.main_server_api "
        f"--tick-interval 0.001` in its own process; {data['clients']} client threads x "
        f"{data['rounds']} rounds in another.", "",
        F.table(("", "value"), rows, "lr"), "",
        f"- lost requests: {_lost(s)} (goal 0); memory growth after warm-up: "
        f"{m['end'] - m['after_warmup']:+.1f} MB (goal: flat, within a few MB)."])


def charts(data: dict[str, Any], ctx) -> list[Chart]:
    return []
