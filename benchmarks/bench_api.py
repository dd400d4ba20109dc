"""End to end: the loop's ticks/s and the API's requests/s under 0..8 HTTP clients.

    python benchmarks/bench_api.py [--quick] [--clients 0,1,4,8] [--seconds 3] [--json F]

Three servers, started the same way (`start_api_server`, a `run_loop` thread
with the default event generator, keep-alive HTTP/1.1).  The loop runs at
``--tick-interval`` (default 0.001 s: up to 1,000 ticks/s, the loop sleeping
between ticks as the application does); ``--tick-interval 0`` runs it flat
out, which makes every server in its process wait for the GIL (a CPU-bound
thread hands the GIL over only every switch interval, 5 ms):

- **csnapshot**: the application as shipped - readers serve the published
  snapshot (cached bytes per version) and live seqlock reads;
- **rlock+deepcopy**: the original project's approach - every `/status`
  deep-copies the live state under an `RLock` that the loop also takes once
  per tick (so the writer waits for readers), `/vitals` reads the live fields
  under the same lock;
- **fixed bytes**: a server whose `/status` returns a constant body of the same
  size (the ceiling of this HTTP stack on this machine; no loop).

Clients run in a separate process (k threads, one keep-alive connection each)
so the server's process has its own core.  Progress goes to stderr; a
Markdown table to stdout.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))  # the application runs from the checkout; append: never shadow

import vitals_impls  # noqa: E402  (benchmarks/ is on sys.path when run by path)
from src.environment.event_queue import EventQueue  # noqa: E402
from src.environment.generator import EventGenerator  # noqa: E402
from src.main_server_api import LifeHandler, LifeServer, start_api_server  # noqa: E402
from src.runtime.loop import run_loop  # noqa: E402
from src.state.self_state import SelfState  # noqa: E402
from src.state.snapshot_manager import StateSnapshotManager  # noqa: E402

log = logging.getLogger("bench_api")

CLIENT = r"""
import http.client, json, sys, threading, time
port, path, k, seconds = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
counts, errors = [0] * k, [0] * k
start = threading.Barrier(k + 1)
stop_at = [0.0]
def client(i):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    start.wait()
    while time.monotonic() < stop_at[0]:
        conn.request("GET", path)
        r = conn.getresponse(); r.read()
        if r.status == 200: counts[i] += 1
        else: errors[i] += 1
    conn.close()
ts = [threading.Thread(target=client, args=(i,)) for i in range(k)]
for t in ts: t.start()
stop_at[0] = time.monotonic() + seconds
start.wait()
t0 = time.monotonic()
for t in ts: t.join()
print(json.dumps({"ok": sum(counts), "errors": sum(errors), "seconds": time.monotonic() - t0}))
"""


class BaselineHandler(LifeHandler):
    """The original design: deep-copy the live state under the shared RLock."""

    def _get_status(self, query):
        server = self.server
        with server.state_lock:
            data = copy.deepcopy(server.live_state.to_dict())
        for key in ("memory", "recent_events", "energy_history", "stability_history",
                    "adaptation_history", "schema_version"):
            data.pop(key, None)
        return 200, json.dumps(data, default=str).encode(), {}

    def _get_vitals(self, query):
        server = self.server
        with server.state_lock:
            vitals = server.live_state.read_vitals()._asdict()
        return 200, json.dumps({"vitals": vitals}).encode(), {}


class FixedHandler(LifeHandler):
    def _get_status(self, query):
        return 200, self.server.fixed_body, {}

    _get_vitals = _get_status


class Design:
    def __init__(self, name: str, tick_interval: float) -> None:
        self.name = name
        self.state = SelfState()
        self.manager = StateSnapshotManager()
        self.manager.update_snapshot(self.state)
        self.stop = threading.Event()
        self.lock = threading.RLock()
        self.loop: threading.Thread | None = None
        if name == "fixed bytes":
            body = json.dumps(self.manager.status_dict()).encode()
            self.server = LifeServer(("127.0.0.1", 0), self.manager, max_connections=64)
            self.server.RequestHandlerClass = FixedHandler
            self.server.fixed_body = body
            self.server.start()
            return
        monitor = None
        if name == "rlock+deepcopy":
            lock = self.lock

            def monitor(state):  # the writer takes the readers' lock once per tick
                with lock:
                    pass

        queue = EventQueue()
        self.loop = threading.Thread(target=run_loop, args=(self.state,), kwargs=dict(
            monitor=monitor, tick_interval=tick_interval, stop_event=self.stop, event_queue=queue,
            snapshot_manager=self.manager, generator=EventGenerator(seed=1, rate=0.67)),
            daemon=True)
        self.server = start_api_server(self.manager, "127.0.0.1", 0, queue,
                                       loop_thread=self.loop)
        if name == "rlock+deepcopy":
            self.server.RequestHandlerClass = BaselineHandler
            self.server.state_lock = self.lock
            self.server.live_state = self.state
        self.loop.start()

    def tick(self) -> int:
        snap = self.manager.get_snapshot()
        return snap.tick if snap is not None else 0

    def close(self) -> None:
        self.stop.set()
        if self.loop is not None:
            self.loop.join(10)
        self.server.shutdown()


def load(port: int, path: str, clients: int, seconds: float) -> dict:
    out = subprocess.run([sys.executable, "-c", CLIENT, str(port), path, str(clients),
                          str(seconds)], capture_output=True, text=True, timeout=seconds + 60,
                         cwd="/")
    if out.returncode != 0:
        raise RuntimeError(f"client process failed: {out.stderr[-500:]}")
    return json.loads(out.stdout)


def run(clients: list[int], seconds: float, rounds: int, tick_interval: float) -> dict:
    results: dict = {}
    designs = ["csnapshot", "rlock+deepcopy", "fixed bytes"]
    for r in range(rounds):
        for name in designs:
            d = Design(name, tick_interval)
            try:
                port = d.server.server_address[1]
                paths = ["/status"] if name == "fixed bytes" else ["/status", "/vitals"]
                for path in paths:
                    for k in clients:
                        log.info("round %d: %s %s with %d client(s) ...", r + 1, name, path, k)
                        t0, k0 = time.monotonic(), d.tick()
                        if k:
                            res = load(port, path, k, seconds)
                        else:
                            d.stop.wait(seconds) if name == "fixed bytes" else time.sleep(seconds)
                            res = {"ok": 0, "errors": 0, "seconds": seconds}
                        elapsed = time.monotonic() - t0
                        ticks = (d.tick() - k0) / elapsed
                        results.setdefault(name, {}).setdefault(path, {}).setdefault(
                            str(k), []).append({"rps": res["ok"] / res["seconds"],
                                                "errors": res["errors"], "ticks_per_s": ticks})
            finally:
                d.close()
    return {"python": sys.version.split()[0], "cpus": os.cpu_count(), "seconds": seconds,
            "tick_interval": tick_interval,
            "rounds": rounds, "results": results}


def report(data: dict) -> str:
    med = statistics.median
    lines = [f"Python {data['python']}, {data['cpus']} CPUs; loop at "
             f"tick_interval={data['tick_interval']} with "
             f"0.67 events/tick; clients in a separate process, keep-alive; "
             f"{data['seconds']} s per point, median of {data['rounds']}", "",
             "| design | endpoint | clients | requests/s | loop ticks/s | errors |",
             "|---|---|---:|---:|---:|---:|"]
    res = data["results"]
    for name, per_path in res.items():
        for path, per_k in per_path.items():
            for k, runs in per_k.items():
                ticks = med(r["ticks_per_s"] for r in runs)
                lines.append(f"| {name} | {path} | {k} | {med(r['rps'] for r in runs):,.0f} | "
                             f"{'-' if name == 'fixed bytes' else f'{ticks:,.0f}'} | "
                             f"{sum(r['errors'] for r in runs)} |")
    try:
        cs = res["csnapshot"]["/status"]
        base = res["rlock+deepcopy"]["/status"]
        fixed = res["fixed bytes"]["/status"]
        idle = med(r["ticks_per_s"] for r in cs["0"])
        lines.append("")
        if "4" in cs:
            four = med(r["ticks_per_s"] for r in cs["4"])
            lines.append(f"- csnapshot loop with 4 /status clients keeps {four / idle:.0%} of its "
                         f"unloaded {idle:,.0f} ticks/s (goal >= 50%); the RLock+deepcopy loop "
                         f"keeps {med(r['ticks_per_s'] for r in base['4']) / med(r['ticks_per_s'] for r in base['0']):.0%}.")
            ratio = med(r["rps"] for r in cs["4"]) / med(r["rps"] for r in fixed["4"])
            lines.append(f"- csnapshot /status with 4 clients serves {ratio:.0%} of the fixed-bytes "
                         "server's requests/s (goal >= 70%).")
    except KeyError:
        pass
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python benchmarks/bench_api.py",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="1 s per point, clients 0,1,4")
    p.add_argument("--clients", default=None, help="comma-separated (default 0,1,4,8)")
    p.add_argument("--seconds", type=float, default=None, help="per point (default 3)")
    p.add_argument("--rounds", type=int, default=1, help="repeats (default 1)")
    p.add_argument("--tick-interval", type=float, default=0.001,
                   help="the loop's tick interval (default 0.001; 0 = flat out)")
    p.add_argument("--json", metavar="FILE", help="also write the raw results as JSON")
    args = p.parse_args(argv)
    if not args.tick_interval >= 0:
        p.error(f"--tick-interval must be >= 0, got {args.tick_interval}")
    clients_text = args.clients or ("0,1,4" if args.quick else "0,1,4,8")
    try:
        clients = [int(c) for c in clients_text.split(",")]
    except ValueError:
        p.error(f"--clients must be comma-separated integers, got {clients_text!r}")
    if any(c < 0 for c in clients) or args.rounds < 1:
        p.error("--clients must be >= 0 and --rounds >= 1")
    seconds = args.seconds or (1.0 if args.quick else 3.0)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("src").setLevel(logging.WARNING)
    vitals_impls.require_native()
    data = run(clients, seconds, args.rounds, args.tick_interval)
    print(report(data))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(data, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
