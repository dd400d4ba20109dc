"""Scenario 6: the runtime loop flat out - ticks per second and tick latency, persistence on and off.

Runs `run_loop` at ``tick_interval=0`` on this thread, stopped by a timer, per
configuration:

- persistence off (no ``data_dir``) or on (``data_dir`` in a temporary folder,
  ``snapshot_period`` 1 or 10, the writer's default rate limit);
- no events, or the default environment at 0.67 events per tick (the event
  rate of the original project's own measurement).

Tick latency is the time between two consecutive monitor calls: one whole
iteration (the tick, the publish, the hand-off to persistence).  The table
also shows what the persistence thread did (files written, snapshots
superseded by a newer one before they were written).
"""

from __future__ import annotations

import gc
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, NamedTuple

from .. import app
from .. import formatting as F
from ..charts import Bars, Chart, bar_chart
from ..timing import percentile

ID = 6
NAME = "loop"
TITLE = "the runtime loop flat out: ticks/s and tick latency, persistence on and off"

# The original project, as its authors' notes report it (not measured here): about
# 780 ticks/s at 0.67 events per tick, writing a snapshot (5.6 ms) on the loop's
# own thread every 10 ticks.
ORIGINAL_TICKS_PER_S = 780
ORIGINAL_SAVE_MS = 5.6


class Config(NamedTuple):
    name: str
    persist: bool
    period: int
    events_per_tick: float


CONFIGS = (
    Config("persistence off, no events", False, 1, 0.0),
    Config("persistence on (period 1), no events", True, 1, 0.0),
    Config(f"persistence off, {app.EVENTS_PER_TICK} events/tick", False, 1, app.EVENTS_PER_TICK),
    Config(f"persistence on (period 1), {app.EVENTS_PER_TICK} events/tick", True, 1,
           app.EVENTS_PER_TICK),
    Config(f"persistence on (period 10), {app.EVENTS_PER_TICK} events/tick", True, 10,
           app.EVENTS_PER_TICK),
)
HEADLINE = CONFIGS[4]  # the original project's configuration


def _settings(quick: bool) -> tuple[float, int]:
    """(seconds per run, runs per configuration)."""
    return (0.5, 1) if quick else (2.0, 3)


def estimate(ctx) -> float:
    seconds, repeats = _settings(ctx.quick)
    return len(CONFIGS) * repeats * (seconds + 0.15)


def _run_once(cfg: Config, seconds: float, seed: int) -> dict[str, Any]:
    stop = threading.Event()
    stamps: list[float] = []
    perf = time.perf_counter
    with tempfile.TemporaryDirectory(prefix="bench-loop-") as tmp:
        timer = threading.Timer(seconds, stop.set)
        timer.start()
        started = perf()
        result = app.run_loop_flat_out(stop, lambda s: stamps.append(perf()),
                                       data_dir=tmp if cfg.persist else None,
                                       snapshot_period=cfg.period,
                                       events_per_tick=cfg.events_per_tick, seed=seed)
        timer.cancel()
    elapsed = stamps[-1] - started
    gaps = sorted(b - a for a, b in zip(stamps, stamps[1:]))
    return {"ticks_per_s": result.ticks / elapsed,
            "p50_us": percentile(gaps, 0.50) * 1e6, "p99_us": percentile(gaps, 0.99) * 1e6,
            "p999_us": percentile(gaps, 0.999) * 1e6, "max_us": gaps[-1] * 1e6,
            "files_written": result.files_written, "superseded": result.superseded}


def run(ctx) -> dict[str, Any]:
    seconds, repeats = _settings(ctx.quick)
    ctx.log.info("  %d configurations, %g s x %d run(s) each", len(CONFIGS), seconds, repeats)
    rows = []
    for cfg in CONFIGS:
        runs = []
        for r in range(repeats):
            ctx.log.debug("  %s [%d/%d]", cfg.name, r + 1, repeats)
            gc.collect()  # start every run from the same heap, not the last run's garbage
            runs.append(_run_once(cfg, seconds, seed=r))
        rows.append({"config": cfg.name, "runs": runs})
    return {"seconds": seconds, "repeats": repeats, "rows": rows,
            "original_ticks_per_s": ORIGINAL_TICKS_PER_S, "original_save_ms": ORIGINAL_SAVE_MS}


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median ticks/s: its latencies belong together."""
    return sorted(runs, key=lambda r: r["ticks_per_s"])[len(runs) // 2]


def _row(data: dict[str, Any], name: str) -> dict[str, Any]:
    return next(r for r in data["rows"] if r["config"] == name)


def summary(data: dict[str, Any]) -> list[str]:
    bare = _row(data, CONFIGS[0].name)["runs"]
    head = _row(data, HEADLINE.name)["runs"]
    tps = F.median([r["ticks_per_s"] for r in head])
    return [f"{HEADLINE.name}: {F.num(tps)} ticks/s "
            f"({tps / data['original_ticks_per_s']:.0f}× the original project's reported "
            f"~{data['original_ticks_per_s']}), tick p50/p99 {F.num(_median_run(head)['p50_us'])}/"
            f"{F.num(_median_run(head)['p99_us'])} µs; without events or persistence "
            f"{F.num(F.median([r['ticks_per_s'] for r in bare]))} ticks/s"]


def markdown(data: dict[str, Any], ctx) -> str:
    rows = []
    for row in data["rows"]:
        tps = [r["ticks_per_s"] for r in row["runs"]]
        m = _median_run(row["runs"])
        spread = f" {F.spread(min(tps), max(tps))}" if len(tps) > 1 else ""
        rows.append([row["config"], f"{F.num(F.median(tps))}{spread}", F.num(m["p50_us"]),
                     F.num(m["p99_us"]), F.num(m["p999_us"]), F.num(m["max_us"]),
                     f"{m['files_written']:,}", f"{m['superseded']:,}"])
    return "\n".join([
        f"`run_loop` at `tick_interval=0` on one thread, {data['seconds']:g} s per run, "
        f"median [min–max] of {data['repeats']} run(s); latencies from the median run. A tick's "
        "latency is the time between consecutive monitor calls: tick + publish + hand-off to "
        "the persistence thread. Files are written by that thread, at most every 0.05 s "
        "(its default rate limit); superseded: snapshots replaced by a newer one before "
        "they were written.",
        "",
        F.table(["configuration", "ticks/s", "p50 µs", "p99 µs", "p99.9 µs", "max µs",
                 "files written", "superseded"], rows),
        "",
        f"For scale (reported by the original project, not measured here): about "
        f"{data['original_ticks_per_s']} ticks/s at 0.67 events per tick, with "
        f"`save_snapshot` taking {data['original_save_ms']} ms on the loop's own thread every "
        "10 ticks. Here the loop hands over one reference and the files are written on the "
        "persistence thread."])


def charts(data: dict[str, Any], ctx) -> list[Chart]:
    names = [r["config"] for r in data["rows"]]
    runs = {r["config"]: r["runs"] for r in data["rows"]}
    panels = [
        Bars(title="ticks per second", xlabel="ticks/s (median; bars: min–max)", xlog=False,
             labels=names, values=[F.median([r["ticks_per_s"] for r in runs[n]]) for n in names],
             lo=[min(r["ticks_per_s"] for r in runs[n]) for n in names],
             hi=[max(r["ticks_per_s"] for r in runs[n]) for n in names]),
        Bars(title="tick latency p99", xlabel="µs (median run)", xlog=False, labels=names,
             values=[_median_run(runs[n])["p99_us"] for n in names]),
    ]
    path = Path(ctx.out) / "scenario6-loop.png"
    title = "Scenario 6: the runtime loop flat out, persistence on and off"
    bar_chart(path, title, panels, ctx.caption, legend=False)
    return [Chart(path.name, title, ctx.caption)]
