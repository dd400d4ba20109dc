"""Scenario 10: the Redis bridge - versions mirrored/s, publish -> follower lag, follower req/s.

A real ``redis-server`` on a free loopback port (no persistence) and the real
command in separate processes, as an operator runs them:

1. **Mirroring flat out**: an origin with ``--tick-interval 0 --redis URL``;
   over a window, the loop's ticks/s and the versions written to Redis per
   second (`/health`'s ``redis.versions_mirrored``).  The publisher takes the
   latest version each time, so the gap is skipped versions, never a queue.
2. **Lag**: the origin at 1 kHz ticks (``--tick-interval 0.001``) and a
   follower (``--follow URL``); the follower measures each served version's
   lag from the origin's publish timestamp (the same clock: one machine) and
   reports p50/p99 of its last 1,024 in `/health`.
3. **The floor**: the same machine's bare hop - one pipelined ``XADD`` of
   an entry-sized value (stamped with ``time.time()``) plus the heartbeat
   ``SET`` from this (otherwise idle) process, paced at 1 kHz, to another
   process blocked in ``XREAD`` - p50/p99: the path a version takes from
   origin to follower with nothing encoded or applied; no lag on this
   machine can be lower.  Measured twice: on an idle machine, and right
   after the lag window with the 1 kHz origin and the follower still
   running (the cores they share with Redis are what a version's hop gets;
   the floor's own two processes add a little load to it).
4. **Requests/s**: a client process with `CLIENTS` keep-alive threads on
   ``GET /status``, for the same time against the follower (the origin
   running), then against the origin alone (its bridge on, the follower
   stopped), then against an origin without ``--redis`` (the bridge's cost
   to the origin's readers).  One worker each.

Skipped (reported as such) when ``redis-server`` or the ``redis`` package is
missing.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

from .. import app
from .. import formatting as F
from ..charts import Chart

ID = 10
NAME = "redis_bridge"
TITLE = "Redis bridge: versions mirrored/s, publish -> follower lag, follower /status req/s"

CLIENTS = 4
# The bridge's own ceiling is measured: no --redis-max-rate cap (the default is 100/s).
UNLIMITED = ("--redis-max-rate", "10000000")

CLIENT = r"""
import http.client, json, sys, threading, time
port, clients, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
counts = [0] * clients; errors = [0] * clients
def run(i):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            conn.request("GET", "/status"); r = conn.getresponse(); r.read()
            counts[i] += r.status == 200
        except Exception:
            errors[i] += 1; conn.close(); conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
t0 = time.monotonic()
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps({"requests": sum(counts), "errors": sum(errors), "seconds": time.monotonic() - t0}))
"""


def _plan(quick: bool) -> float:
    """Seconds per measuring window."""
    return 3.0 if quick else 8.0


def estimate(ctx) -> float:
    return 5 * _plan(ctx.quick) + 15 + 2 * (0.6 if ctx.quick else 3.5)  # + the floors' hops


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def _health(port: int) -> dict[str, Any]:
    return json.loads(_get(port, "/health")[2])


def _wait(what: str, condition, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            if condition():
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {seconds:.0f} s")
        time.sleep(0.05)  # a bounded poll: the processes give no other signal


class _Procs:
    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []

    def start(self, cmd: list[str], cwd: str) -> subprocess.Popen:
        p = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(p)
        return p

    def stop(self, p: subprocess.Popen) -> None:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)

    def close(self) -> None:
        for p in reversed(self.procs):
            self.stop(p)


def _missing() -> str | None:
    if shutil.which("redis-server") is None:
        return "redis-server is not installed (apt-get install -y redis-server)"
    try:
        import redis  # noqa: F401
    except ImportError:
        return "the redis package is not installed (pip install -e '.[redis]')"
    return None


def _rps(port: int, seconds: float) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-c", CLIENT, str(port), str(CLIENTS), str(seconds)],
                         capture_output=True, text=True, cwd="/", timeout=seconds * 5 + 60)
    if out.returncode != 0:
        raise RuntimeError(f"client process failed: {out.stderr[-500:]}")
    data = json.loads(out.stdout)
    data["rps"] = data["requests"] / data["seconds"]
    return data


HOP_READER = r"""
import json, sys, time, redis
port, count = int(sys.argv[1]), int(sys.argv[2])
client = redis.Redis(port=port, socket_timeout=10)
last, lags = "$", []
print("ready", flush=True)
while len(lags) < count:
    reply = client.xread({"floor:versions": last}, block=5000, count=64)
    now = time.time()
    if not reply:
        break
    for entry_id, fields in reply[0][1]:
        last = entry_id
    lags.append(now - float(reply[0][1][-1][1][b"t"]))
print(json.dumps(lags))
"""


def _hop_floor(client: Any, port: int, entry_bytes: int, count: int) -> dict[str, float]:
    """p50/p99 (ms) of a bare hop: an XADD of an entry-sized value (+ the heartbeat SET,
    pipelined) from this process at 1 kHz, to another process's blocking XREAD - the
    path a version takes from origin to follower, with nothing encoded or applied."""
    reader = subprocess.Popen([sys.executable, "-c", HOP_READER, str(port), str(count)],
                              stdout=subprocess.PIPE, text=True, cwd="/")
    try:
        assert reader.stdout is not None and reader.stdout.readline().strip() == "ready"
        time.sleep(0.2)  # its first XREAD is blocking
        pad = b"s" * max(1, entry_bytes)
        for _ in range(count + 10):
            t0 = time.perf_counter()
            pipe = client.pipeline(transaction=False)
            pipe.xadd("floor:versions", {b"t": repr(time.time()).encode(), b"pad": pad},
                      maxlen=100, approximate=True)
            pipe.set("floor:origin", b"r", px=3000)
            pipe.execute()
            if reader.poll() is not None:
                break
            time.sleep(max(0.0, 0.001 - (time.perf_counter() - t0)))  # the pacing under test
        out, _ = reader.communicate(timeout=30)
    finally:
        if reader.poll() is None:
            reader.kill()
            reader.wait()
    times = sorted(json.loads(out.strip().splitlines()[-1]))
    client.delete("floor:versions", "floor:origin")
    return {"p50_ms": times[len(times) // 2] * 1e3,
            "p99_ms": times[min(len(times) - 1, int(0.99 * len(times)))] * 1e3,
            "samples": len(times)}


def run(ctx) -> dict[str, Any]:
    missing = _missing()
    if missing:
        ctx.log.warning("  scenario 10 skipped: %s", missing)
        return {"skipped": missing}
    window = _plan(ctx.quick)
    procs = _Procs()
    with tempfile.TemporaryDirectory(prefix="csnap-redis-") as tmp:
        try:
            rport = _free_port()
            procs.start(["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save",
                         "", "--appendonly", "no", "--dir", tmp], tmp)
            import redis
            client = redis.Redis(port=rport, socket_timeout=1)
            _wait("redis-server answers PING", client.ping)
            url = f"redis://127.0.0.1:{rport}/0"
            # 1. the loop flat out
            port = _free_port()
            o = procs.start(app.server_command(port, f"{tmp}/flat", "--tick-interval", "0",
                                               "--no-generator", "--log-level", "WARNING",
                                               "--redis", url, "--redis-prefix", "flat",
                                               *UNLIMITED),
                            str(ctx.root))
            _wait("the flat-out origin mirrors",
                  lambda: _health(port).get("redis", {}).get("connected"))
            h0, t0 = _health(port), time.monotonic()
            time.sleep(window)  # a measuring window
            h1, t1 = _health(port), time.monotonic()
            procs.stop(o)
            flat = {"ticks_per_s": (h1["tick"] - h0["tick"]) / (t1 - t0),
                    "mirrored_per_s": (h1["redis"]["versions_mirrored"]
                                       - h0["redis"]["versions_mirrored"]) / (t1 - t0),
                    "stream_len": client.xlen("flat:versions"),
                    "entry_bytes": client.memory_usage("flat:versions") //
                    max(1, client.xlen("flat:versions"))}
            ctx.log.info("  flat out: %.0f ticks/s, %.0f versions mirrored/s",
                         flat["ticks_per_s"], flat["mirrored_per_s"])
            floor = _hop_floor(client, rport, flat["entry_bytes"], 500 if ctx.quick else 3000)
            ctx.log.info("  floor: a bare XADD -> XREAD hop between two processes at 1 kHz: "
                         "p50 %.2f ms, p99 %.2f ms", floor["p50_ms"], floor["p99_ms"])
            # 2. and 3. the origin at 1 kHz, a follower
            oport, fport = _free_port(), _free_port()
            khz = procs.start(app.server_command(oport, f"{tmp}/khz", "--tick-interval", "0.001",
                                           "--log-level", "WARNING", "--redis", url,
                                           *UNLIMITED), str(ctx.root))
            _wait("the 1 kHz origin mirrors",
                  lambda: _health(oport).get("redis", {}).get("connected"))
            fol = procs.start(app.follower_command(fport, url, "--log-level", "WARNING"),
                              str(ctx.root))
            _wait("the follower serves", lambda: _get(fport, "/status")[0] == 200)
            oh0, t0 = _health(oport), time.monotonic()
            time.sleep(window)  # lags accumulate over the window
            fh = _health(fport)["redis"]
            oh, t1 = _health(oport), time.monotonic()
            # The same hop while the 1 kHz origin and its follower run: what the machine's
            # shared cores leave of the floor (its own two processes add a little load).
            loaded = _hop_floor(client, rport, flat["entry_bytes"], 500 if ctx.quick else 3000)
            ctx.log.info("  the same hop with the origin and the follower running: p50 %.2f ms, "
                         "p99 %.2f ms", loaded["p50_ms"], loaded["p99_ms"])
            follower_rps = _rps(fport, window)
            procs.stop(fol)  # the origin's readers measured with the bridge on, no follower
            origin_rps = _rps(oport, window)
            lag = {"p50_ms": fh["lag_p50_s"] * 1e3, "p99_ms": fh["lag_p99_s"] * 1e3,
                   "samples": fh["lag_samples"],
                   "origin_ticks_per_s": (oh["tick"] - oh0["tick"]) / (t1 - t0),
                   "mirrored_per_s": (oh["redis"]["versions_mirrored"]
                                      - oh0["redis"]["versions_mirrored"]) / (t1 - t0)}
            ctx.log.info("  lag p50 %.2f ms, p99 %.2f ms; /status %.0f req/s origin, %.0f "
                         "follower", lag["p50_ms"], lag["p99_ms"], origin_rps["rps"],
                         follower_rps["rps"])
            # The origin's readers without the bridge, for its cost on them.
            procs.stop(khz)
            pport = _free_port()
            plain = procs.start(app.server_command(pport, f"{tmp}/plain", "--tick-interval",
                                                   "0.001", "--log-level", "WARNING"),
                                str(ctx.root))
            _wait("the origin without the bridge serves", lambda: _get(pport, "/status")[0] == 200)
            plain_rps = _rps(pport, window)
            procs.stop(plain)
            client.close()
        finally:
            procs.close()
    return {"python": sys.version.split()[0], "cpus": os.cpu_count(), "window_s": window,
            "clients": CLIENTS, "flat": flat, "lag": lag, "floor": floor, "loaded_floor": loaded,
            "origin": origin_rps, "follower": follower_rps, "plain": plain_rps}


def summary(data: dict[str, Any]) -> list[str]:
    if "skipped" in data:
        return [f"Redis bridge: skipped ({data['skipped']})"]
    f, lag = data["flat"], data["lag"]
    ratio = data["follower"]["rps"] / data["origin"]["rps"]
    return [f"Redis bridge: {F.rate(f['mirrored_per_s'])} versions mirrored/s with the loop flat "
            f"out ({F.rate(f['ticks_per_s'])} ticks/s); publish -> follower lag p50 "
            f"{lag['p50_ms']:.2f} ms, p99 {lag['p99_ms']:.2f} ms at 1 kHz (a bare hop: "
            f"p99 {data['floor']['p99_ms']:.2f} ms idle, {_loaded(data, fmt='.2f')} ms under "
            f"the same load); follower /status {ratio:.0%} of the origin's requests/s"]


def _loaded(data: dict[str, Any], key: str = "p99_ms", fmt: str = ".3f") -> str:
    """The loaded floor's `key` (ms), or "-" in results saved before it was measured."""
    loaded = data.get("loaded_floor")
    return "-" if loaded is None else format(loaded[key], fmt)


def markdown(data: dict[str, Any], ctx) -> str:
    if "skipped" in data:
        return f"Skipped: {data['skipped']}."
    f, lag, o, fo = data["flat"], data["lag"], data["origin"], data["follower"]
    rows = [("loop flat out: ticks/s", F.rate(f["ticks_per_s"])),
            ("loop flat out: versions mirrored/s (goal >= 1,000)", F.rate(f["mirrored_per_s"])),
            ("stream length at the end (--redis-retention 100, MAXLEN ~)", f"{f['stream_len']}"),
            ("bytes per stream entry (the mean: deltas, 1 keyframe per 32)",
             f"{f['entry_bytes']:,}"),
            ("origin at 1 kHz: measured ticks/s", F.rate(lag["origin_ticks_per_s"])),
            ("origin at 1 kHz: versions mirrored/s", F.rate(lag["mirrored_per_s"])),
            ("publish -> follower lag p50 (ms)", f"{lag['p50_ms']:.3f}"),
            ("publish -> follower lag p99 (ms; goal <= 1)", f"{lag['p99_ms']:.3f}"),
            ("lag samples (the follower's last versions)", f"{lag['samples']}"),
            ("floor: a bare XADD -> XREAD hop between two processes at 1 kHz, p50 (ms)",
             f"{data['floor']['p50_ms']:.3f}"),
            ("floor: the same, p99 (ms)", f"{data['floor']['p99_ms']:.3f}"),
            ("floor under load: the same hop while the 1 kHz origin and the follower run, "
             "p50 (ms)", _loaded(data, "p50_ms")),
            ("floor under load: the same, p99 (ms)", _loaded(data, "p99_ms")),
            (f"origin /status req/s ({data['clients']} keep-alive clients, bridge on)",
             F.rate(o["rps"])),
            ("follower /status req/s (goal within 10% of the origin)", F.rate(fo["rps"])),
            ("follower / origin", f"{fo['rps'] / o['rps']:.0%}"),
            ("origin without --redis, alone: /status req/s", F.rate(data["plain"]["rps"]))]
    return "\n".join([
        f"Python {data['python']}, {data['cpus']} CPUs; redis-server, origin and follower in "
        f"their own processes on loopback; {data['window_s']:.0f} s windows.", "",
        F.table(("", "value"), rows, "lr")])


def charts(data: dict[str, Any], ctx) -> list[Chart]:
    return []
