"""Scenario 8: serving from several processes - /status and /vitals requests/s by deployment mode.

Each mode runs the real command in its own process, the loop at
``--tick-interval`` (default 0.001 s, as in scenario 5; 0 = flat out), no
generator: one process (the default), ``--workers
1/2/4``, ``--workers 0`` with uvicorn or granian (2 workers each, skipped if
not installed), and the fixed-bytes ceiling (the built-in HTTP stack answering
a constant body of the size of a real `/status`, in this process).  The load
is `CLIENTS` client processes with one keep-alive connection each, for a fixed
time per path; the loop's ticks/s is read from ``/health`` before and after.
On a machine with few cores the clients share them with the servers: the
figures compare the modes on one machine, they are not a capacity.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

from .. import app
from .. import formatting as F
from ..charts import Chart

ID = 8
NAME = "serving"
TITLE = "serving: /status and /vitals req/s for one process, --workers N, uvicorn, granian"

CLIENTS = 4
PATHS = ("/status", "/vitals")
MODES = ("one process", "--workers 1", "--workers 2", "--workers 4", "uvicorn x2",
         "granian x2", "fixed bytes", "fixed bytes x2", "fixed bytes x4")
# The ceiling a mode is held against: the fixed-bytes server with as many processes.
CEILING = {"one process": "fixed bytes", "--workers 1": "fixed bytes",
           "--workers 2": "fixed bytes x2", "--workers 4": "fixed bytes x4",
           "uvicorn x2": "fixed bytes x2", "granian x2": "fixed bytes x2"}

# One client process: a keep-alive connection for `seconds`; prints the count.
CLIENT = r"""
import http.client, sys, time
port, path, seconds = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
n = errors = 0
end = time.monotonic() + seconds
while time.monotonic() < end:
    try:
        conn.request("GET", path); r = conn.getresponse(); r.read()
        n += r.status == 200; errors += r.status != 200
    except OSError:
        errors += 1; conn.close(); conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
print(n, errors)
"""


def _seconds(quick: bool) -> float:
    return 1.0 if quick else 3.0


def estimate(ctx) -> float:
    return len(MODES) * (len(PATHS) * _seconds(ctx.quick) + 4)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(port: int, path: str) -> tuple[int, bytes]:
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def _wait_ready(port: int, procs: list[subprocess.Popen], seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for p in procs:
            if p.poll() is not None:
                raise RuntimeError(f"a server process exited with {p.returncode}")
        try:
            if _get(port, "/vitals")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)  # a bounded poll: the server gives no other signal
    raise RuntimeError(f"nothing answered on {port} within {seconds:.0f} s")


def _tick(port: int) -> int | None:
    try:
        status, body = _get(port, "/status")
        return json.loads(body).get("ticks") if status == 200 else None
    except (OSError, ValueError):
        return None


def _load(port: int, path: str, seconds: float) -> tuple[float, int]:
    procs = [subprocess.Popen([sys.executable, "-c", CLIENT, str(port), path, str(seconds)],
                              stdout=subprocess.PIPE, text=True, cwd="/")
             for _ in range(CLIENTS)]
    ok = errors = 0
    for p in procs:
        out, _ = p.communicate(timeout=seconds + 60)
        n, e = map(int, out.split())
        ok += n
        errors += e
    return ok / seconds, errors


def _start(mode: str, port: int, data: str, root: str,
           tick_interval: float) -> tuple[list[subprocess.Popen], Any]:
    loop_options = ["--tick-interval", repr(tick_interval), "--no-generator", "--log-level", "WARNING"]
    if mode == "fixed bytes":
        return [], app.RunningDesign("fixed bytes", 0.0)
    if mode.startswith("fixed bytes x"):
        return [subprocess.Popen(app.fixed_bytes_command(port), cwd=root,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                for _ in range(int(mode.rsplit("x", 1)[1]))], None
    if mode == "one process":
        return [subprocess.Popen(app.server_command(port, data, *loop_options), cwd=root,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)], None
    if mode.startswith("--workers"):
        n = mode.split()[1]
        return [subprocess.Popen(app.server_command(port, data, "--workers", n, *loop_options),
                                 cwd=root, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)], None
    server = mode.split()[0]
    name = f"life-bench-{os.getpid()}-{port}"
    loop = subprocess.Popen(app.server_command(_free_port(), data, "--workers", "0",
                                               "--shm-name", name, *loop_options), cwd=root,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not os.path.exists(f"/dev/shm/{name}-vitals") and time.monotonic() < deadline:
        time.sleep(0.05)
    web = subprocess.Popen(app.asgi_command(server, port), cwd=root,
                           env=dict(os.environ, **{app.SHM_NAME_ENV: name}),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return [web, loop], None


def _stop(procs: list[subprocess.Popen], inproc: Any) -> None:
    if inproc is not None:
        inproc.close()
    for p in procs:  # the web server before the loop
        p.terminate()
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def run(ctx) -> dict[str, Any]:
    seconds = _seconds(ctx.quick)
    results: dict[str, Any] = {}
    for mode in MODES:
        server = mode.split()[0]
        if server in ("uvicorn", "granian") and importlib.util.find_spec(server) is None:
            results[mode] = {"skipped": f"{server} is not installed (pip install -e '.[serve]')"}
            continue
        with tempfile.TemporaryDirectory(prefix="csnap-serving-") as data:
            port = _free_port()
            procs, inproc = _start(mode, port, data, str(ctx.root), ctx.tick_interval)
            try:
                if inproc is not None:
                    port = inproc.port
                _wait_ready(port, procs)
                row: dict[str, Any] = {}
                t0, k0 = time.monotonic(), _tick(port)
                if k0 is not None and not mode.startswith("fixed"):  # the loop unloaded
                    time.sleep(seconds / 2)  # a measurement window, not a synchronisation
                    t1, k1 = time.monotonic(), _tick(port)
                    row["idle_ticks_per_s"] = (k1 - k0) / (t1 - t0) if k1 is not None else None
                    t0, k0 = t1, k1
                for path in PATHS:
                    rate, errors = _load(port, path, seconds)
                    row[path] = {"rps": rate, "errors": errors}
                t1, k1 = time.monotonic(), _tick(port)
                row["ticks_per_s"] = (None if k0 is None or k1 is None or mode.startswith("fixed")
                                      else (k1 - k0) / (t1 - t0))
                results[mode] = row
            finally:
                _stop(procs, inproc)
        ctx.log.info("  %s: %s", mode, {p: round(results[mode][p]["rps"]) for p in PATHS})
    return {"python": sys.version.split()[0], "cpus": os.cpu_count(), "clients": CLIENTS,
            "seconds": seconds, "tick_interval": ctx.tick_interval, "modes": results}


def _ratios(data: dict[str, Any]) -> dict[str, Any]:
    modes = data["modes"]
    def rps(m: str) -> float | None:
        r = modes.get(m) or {}
        return None if "skipped" in r or "/status" not in r else r["/status"]["rps"]
    out: dict[str, Any] = {}
    single, two = rps("one process"), rps("--workers 2")
    if single and two:
        out["workers2_vs_single"] = two / single
    for m, r in modes.items():
        if m in CEILING and rps(m) and rps(CEILING[m]):
            out.setdefault("vs_ceiling", {})[m] = rps(m) / rps(CEILING[m])  # type: ignore[operator]
        if r.get("idle_ticks_per_s") and r.get("ticks_per_s") is not None:
            out.setdefault("loop_kept", {})[m] = r["ticks_per_s"] / r["idle_ticks_per_s"]
    return out


def summary(data: dict[str, Any]) -> list[str]:
    parts = [f"{m} {F.rate(r['/status']['rps'])}" for m, r in data["modes"].items()
             if "skipped" not in r]
    ratios = _ratios(data)
    lines = [f"serving /status with {data['clients']} keep-alive clients on {data['cpus']} "
             "cores (req/s): " + ", ".join(parts)]
    if "workers2_vs_single" in ratios:
        lines.append(f"--workers 2 serves {ratios['workers2_vs_single']:.2f}x the one-process "
                     "server's /status")
    return lines


def markdown(data: dict[str, Any], ctx) -> str:
    rows = []
    for mode, r in data["modes"].items():
        if "skipped" in r:
            rows.append([mode, "-", "-", "-", "-", "-", r["skipped"]])
            continue
        ticks = r.get("ticks_per_s")
        errors = sum(r[p]["errors"] for p in PATHS)
        ratios = _ratios(data)
        ceiling = ratios.get("vs_ceiling", {}).get(mode)
        kept = ratios.get("loop_kept", {}).get(mode)
        rows.append([mode, F.rate(r["/status"]["rps"]), F.rate(r["/vitals"]["rps"]),
                     "-" if ticks is None else F.rate(ticks),
                     "-" if kept is None else f"{kept:.0%}",
                     "-" if ceiling is None else f"{ceiling:.0%} of {CEILING[mode]}",
                     f"{errors} errors"])
    return (f"{data['clients']} client processes, one keep-alive connection each, "
            f"{data['seconds']:g} s per path; the loop at tick_interval="
            f"{data.get('tick_interval', 0)!r} s (ticks/s while loaded; 0 = flat out).\n\n"
            + F.table(["mode", "/status req/s", "/vitals req/s", "loop ticks/s (loaded)",
                       "loop kept", "/status vs ceiling", "notes"], rows))


def charts(data: dict[str, Any], ctx) -> list[Chart]:
    return []
