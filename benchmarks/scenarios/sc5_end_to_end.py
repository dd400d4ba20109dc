"""Scenario 5: end to end over HTTP - the loop's ticks/s and the API's requests/s
against 0, 1, 4 and 8 clients, csnapshot's design against the RLock-and-deep-copy
design and a fixed-bytes server (benchmarks/bench_api.py does the measuring).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import bench_api as BA

from .. import report as R
from ..charts import CSNAPSHOT_COLOR, Chart, Panel, Series, line_chart

ID = 5
TITLE = "end to end: loop ticks/s and HTTP requests/s against clients"

DESIGNS = ("csnapshot", "rlock+deepcopy", "fixed bytes")


def _plan(quick: bool) -> tuple[list[int], float]:
    return ([0, 1, 4], 0.7) if quick else ([0, 1, 4, 8], 2.5)


def estimate(ctx) -> float:
    clients, seconds = _plan(ctx.quick)
    points = (2 + 2 + 1) * len(clients)  # /status and /vitals for two designs, /status for one
    return points * (seconds + 0.4) + 6


def run(ctx) -> dict[str, Any]:
    clients, seconds = _plan(ctx.quick)
    ctx.log.info("  clients %s, %.1f s per point, loop at tick_interval=0.001",
                 ",".join(map(str, clients)), seconds)
    return BA.run(clients, seconds, 1, 0.001)


def _med(runs: list[dict], key: str) -> float:
    return R.median([r[key] for r in runs]) if runs else math.nan


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
            f"{_med(cs[k], 'ticks_per_s') / idle:.0%} of its unloaded {R.rate(idle)} ticks/s "
            f"(RLock + deep copy: {_med(base[k], 'ticks_per_s') / base_idle:.0%}); "
            f"`/status` serves {R.rate(_med(cs[k], 'rps'))} requests/s, "
            f"{_med(cs[k], 'rps') / _med(fixed[k], 'rps'):.0%} of a fixed-bytes server "
            f"(RLock + deep copy: {R.rate(_med(base[k], 'rps'))})"]


def markdown(data: dict[str, Any], ctx) -> str:
    out = [BA.report(data), "",
           "The loop runs at `tick_interval=0.001` (up to 1,000 ticks/s, sleeping between "
           "ticks as the application does) with 0.67 generated events per tick; clients run "
           "in a separate process with one keep-alive connection each. The fixed-bytes "
           "server returns a constant body of the same size and runs no loop: it is the "
           "ceiling of the standard library's HTTP stack here. With `--tick-interval 0` "
           "(`python benchmarks/bench_api.py --tick-interval 0`) every server in the loop's "
           "process waits for the GIL, which a CPU-bound thread hands over only every 5 ms."]
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
