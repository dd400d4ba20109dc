"""Scenario 5: end to end over HTTP - the loop's ticks/s and the API's requests/s
against 0, 1, 4 and 8 clients.

Three servers, started the same way (benchmarks/app.py: `start_api_server`, a
`run_loop` thread with the default event generator, keep-alive HTTP/1.1):
csnapshot's design, the original project's design (every `/status`
deep-copies the live state under an RLock the loop also takes once per tick),
and a fixed-bytes server (a constant body of the same size, no loop: the
ceiling of this HTTP stack on this machine).  The loop runs at
``--tick-interval`` (default 0.001 s: up to 1,000 ticks/s, sleeping between
ticks as the application does).  Clients run in a separate process (k threads,
one keep-alive connection each) so the server's process has its own core.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .. import app
from .. import formatting as F
from ..charts import CSNAPSHOT_COLOR, Chart, Panel, Series, line_chart

ID = 5
NAME = "end_to_end"
TITLE = "end to end: loop ticks/s and HTTP requests/s against clients"

DESIGNS = app.DESIGNS

# The load generator, run with `python -c` in its own process.
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


def _plan(quick: bool) -> tuple[list[int], float]:
    return ([0, 1, 4], 0.7) if quick else ([0, 1, 4, 8], 2.5)


def estimate(ctx) -> float:
    clients, seconds = _plan(ctx.quick)
    points = (2 + 2 + 1) * len(clients)  # /status and /vitals for two designs, /status for one
    return points * (seconds + 0.4) + 6


def _load(port: int, path: str, clients: int, seconds: float) -> dict:
    out = subprocess.run([sys.executable, "-c", CLIENT, str(port), path, str(clients),
                          str(seconds)], capture_output=True, text=True, timeout=seconds + 60,
                         cwd="/")
    if out.returncode != 0:
        raise RuntimeError(f"client process failed: {out.stderr[-500:]}")
    return json.loads(out.stdout)


def run(ctx) -> dict[str, Any]:
    clients, seconds = _plan(ctx.quick)
    ctx.log.info("  clients %s, %.1f s per point, loop at tick_interval=%g",
                 ",".join(map(str, clients)), seconds, ctx.tick_interval)
    results: dict = {}
    for name in DESIGNS:
        d = app.RunningDesign(name, ctx.tick_interval)
        try:
            paths = ["/status"] if name == "fixed bytes" else ["/status", "/vitals"]
            for path in paths:
                for k in clients:
                    ctx.log.debug("  %s %s with %d client(s) ...", name, path, k)
                    t0, k0 = time.monotonic(), d.ticks()
                    if k:
                        res = _load(d.port, path, k, seconds)
                    else:
                        time.sleep(seconds)
                        res = {"ok": 0, "errors": 0, "seconds": seconds}
                    ticks = (d.ticks() - k0) / (time.monotonic() - t0)
                    results.setdefault(name, {}).setdefault(path, {}).setdefault(
                        str(k), []).append({"rps": res["ok"] / res["seconds"],
                                            "errors": res["errors"], "ticks_per_s": ticks})
        finally:
            d.close()
    return {"python": sys.version.split()[0], "cpus": os.cpu_count(), "seconds": seconds,
            "tick_interval": ctx.tick_interval, "rounds": 1, "results": results}


def _table(data: dict) -> str:
    med = statistics.median
    lines = [f"Python {data['python']}, {data['cpus']} CPUs; loop at "
             f"tick_interval={data['tick_interval']} with "
             f"{app.EVENTS_PER_TICK} events/tick; clients in a separate process, keep-alive; "
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


def _med(runs: list[dict], key: str) -> float:
    return F.median([r[key] for r in runs]) if runs else math.nan


def summary(data: dict[str, Any]) -> list[str]:
    res = data["results"]
    try:
        cs, base, fixed = (res[d]["/status"] for d in DESIGNS)
    except KeyError:
        return ["scenario 5 has no /status results"]
    k = "4" if "4" in cs else max(cs, key=int)
    idle = _med(cs["0"], "ticks_per_s")
    base_idle = _med(base["0"], "ticks_per_s")
    return [f"with {k} `/status` clients the csnapshot loop keeps "
            f"{_med(cs[k], 'ticks_per_s') / idle:.0%} of its unloaded {F.rate(idle)} ticks/s "
            f"(RLock + deep copy: {_med(base[k], 'ticks_per_s') / base_idle:.0%}); "
            f"`/status` serves {F.rate(_med(cs[k], 'rps'))} requests/s, "
            f"{_med(cs[k], 'rps') / _med(fixed[k], 'rps'):.0%} of a fixed-bytes server "
            f"(RLock + deep copy: {F.rate(_med(base[k], 'rps'))})"]


def markdown(data: dict[str, Any], ctx) -> str:
    paced = (f"`tick_interval={data['tick_interval']:g}` (up to {1 / data['tick_interval']:,.0f} "
             "ticks/s, sleeping between ticks as the application does)"
             if data["tick_interval"] else "`tick_interval=0` (flat out)")
    out = [_table(data), "",
           f"The loop runs at {paced} with {app.EVENTS_PER_TICK} generated events per tick; "
           "clients run "
           "in a separate process with one keep-alive connection each. The fixed-bytes "
           "server returns a constant body of the same size and runs no loop: it is the "
           "ceiling of the standard library's HTTP stack here. With `--tick-interval 0` "
           "(`python -m benchmarks --scenarios end_to_end --tick-interval 0`) every server in "
           "the loop's process waits for the GIL, which a CPU-bound thread hands over only "
           "every 5 ms."]
    return "\n".join(out)


def charts(data: dict[str, Any], ctx) -> list[Chart]:
    res = data["results"]
    panels = []
    for key, ylabel, title in (("ticks_per_s", "loop ticks/s", "the loop under /status load"),
                               ("rps", "/status requests/s", "/status throughput")):
        series = []
        for design in DESIGNS:
            if key == "ticks_per_s" and design == "fixed bytes":
                continue
            per_k = res.get(design, {}).get("/status", {})
            xs = sorted(int(k) for k in per_k)
            if key == "rps":
                xs = [x for x in xs if x > 0]
            ys = [_med(per_k[str(x)], key) for x in xs]
            ref = design == "csnapshot"
            series.append(Series(design, xs, ys, emphasis=ref,
                                 color=CSNAPSHOT_COLOR if ref else None))
        panels.append(Panel(title, "HTTP clients (keep-alive connections)", ylabel, series,
                            ylog=False, xticks=sorted({int(k) for d in res.values()
                                                       for k in d.get("/status", {})})))
    path = Path(ctx.out) / "scenario5-end-to-end.png"
    title = "Scenario 5: end to end - loop ticks/s and /status requests/s against clients"
    line_chart(path, title, panels, ctx.caption)
    return [Chart(path.name, title, ctx.caption)]
