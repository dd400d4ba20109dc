"""The runtime loop flat out: ticks per second and tick latency, persistence on and off.

Runs `run_loop` at ``tick_interval=0`` for a few seconds per configuration, on
this thread, stopped by a timer:

- persistence off (no ``data_dir``) or on (``data_dir`` in a temporary folder,
  ``snapshot_period`` 1 or 10, the writer's default rate limit of 0.05 s);
- no events, or the default environment at 0.67 events per tick (the event
  rate of the original project's measurement in the notes).

Tick latency is the time between two consecutive monitor calls: one whole
iteration (the tick, the publish, the hand-off to persistence).  The table
also shows what the persistence thread did (files written, snapshots
superseded) and, for comparison, the original project measured on the same
kind of machine (../shared/notes/life-domain.md section 6): about 780 ticks/s
at 0.67 events per tick, and ``save_snapshot`` taking 5.6 ms *on the loop's
thread* every 10 ticks.

    python benchmarks/bench_loop.py [--quick] [--seconds S] [--repeats N] [--json F]

Run it by path (see benchmarks/README.md).  Progress goes to stderr, the table
to stdout.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import sysconfig
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, NamedTuple

# `src` runs from the checkout and is not installed.  Appended, never
# prepended: the checkout's csnapshot/ must not shadow the installed package.
sys.path.append(str(Path(__file__).resolve().parent.parent))

from vitals_impls import require_native  # noqa: E402

from src.environment import EventGenerator  # noqa: E402
from src.runtime.loop import run_loop  # noqa: E402
from src.state.self_state import SelfState  # noqa: E402
from src.state.snapshot_manager import StateSnapshotManager  # noqa: E402

ORIGINAL_TICKS_PER_S = 780
ORIGINAL_SAVE_MS = 5.6


class Config(NamedTuple):
    name: str
    persist: bool
    period: int
    rate: float


CONFIGS = (
    Config("persistence off, no events", False, 1, 0.0),
    Config("persistence on (period 1), no events", True, 1, 0.0),
    Config("persistence off, 0.67 events/tick", False, 1, 0.67),
    Config("persistence on (period 1), 0.67 events/tick", True, 1, 0.67),
    Config("persistence on (period 10), 0.67 events/tick", True, 10, 0.67),
)


class Result(NamedTuple):
    ticks_per_s: float
    p50_us: float
    p99_us: float
    p999_us: float
    max_us: float
    written: int
    superseded: int


def run_once(cfg: Config, seconds: float, seed: int) -> Result:
    state, manager, stop = SelfState(), StateSnapshotManager(), threading.Event()
    stamps: list[float] = []
    perf = time.perf_counter
    with tempfile.TemporaryDirectory(prefix="bench-loop-") as tmp:
        timer = threading.Timer(seconds, stop.set)
        timer.start()
        started = perf()
        summary = run_loop(state, monitor=lambda s: stamps.append(perf()), tick_interval=0.0,
                           snapshot_period=cfg.period, stop_event=stop,
                           snapshot_manager=manager, data_dir=tmp if cfg.persist else None,
                           generator=EventGenerator(seed=seed, rate=cfg.rate)
                           if cfg.rate else None)
        elapsed = stamps[-1] - started
        timer.cancel()
    gaps = sorted(b - a for a, b in zip(stamps, stamps[1:]))

    def q(p: float) -> float:
        return gaps[min(len(gaps) - 1, int(p * len(gaps)))] * 1e6

    stats = summary.persistence
    return Result(summary.ticks / elapsed, q(0.50), q(0.99), q(0.999), gaps[-1] * 1e6,
                  stats.written if stats else 0, stats.superseded if stats else 0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="1 s per configuration, 1 repeat")
    ap.add_argument("--seconds", type=float, help="run time per repeat (default 3)")
    ap.add_argument("--repeats", type=int, help="repeats per configuration (default 3)")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = ap.parse_args(argv)
    require_native()
    seconds = args.seconds or (1.0 if args.quick else 3.0)
    repeats = args.repeats or (1 if args.quick else 3)
    gil = "GIL on" if getattr(sys, "_is_gil_enabled", lambda: True)() else "GIL off"
    ft = " (free-threaded build)" if sysconfig.get_config_var("Py_GIL_DISABLED") else ""
    print(f"Python {sys.version.split()[0]}{ft}, {gil}; {seconds:g} s x {repeats} per row",
          file=sys.stderr)

    rows: list[dict[str, Any]] = []
    for cfg in CONFIGS:
        results = []
        for r in range(repeats):
            print(f"  {cfg.name} [{r + 1}/{repeats}]", file=sys.stderr)
            gc.collect()
            results.append(run_once(cfg, seconds, seed=r))
        tps = [x.ticks_per_s for x in results]
        best = sorted(results, key=lambda x: x.ticks_per_s)[len(results) // 2]  # median run
        rows.append({"config": cfg.name, "ticks_per_s": statistics.median(tps),
                     "ticks_per_s_min": min(tps), "ticks_per_s_max": max(tps),
                     "p50_us": best.p50_us, "p99_us": best.p99_us, "p999_us": best.p999_us,
                     "max_us": best.max_us, "files_written": best.written,
                     "superseded": best.superseded, "seconds": seconds})

    print(f"\nrun_loop at tick_interval=0 (Python {sys.version.split()[0]}{ft}, {gil}; "
          f"median of {repeats} x {seconds:g} s; latency from the median run)\n")
    print("| configuration | ticks/s (min-max) | p50 µs | p99 µs | p99.9 µs | max µs "
          "| files written | superseded |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['config']} | {row['ticks_per_s']:,.0f} ({row['ticks_per_s_min']:,.0f}-"
              f"{row['ticks_per_s_max']:,.0f}) | {row['p50_us']:.1f} | {row['p99_us']:.1f} | "
              f"{row['p999_us']:.1f} | {row['max_us']:,.0f} | {row['files_written']} | "
              f"{row['superseded']:,} |")
    print(f"| original project (notes §6), 0.67 events/tick, snapshot every 10 ticks | "
          f"~{ORIGINAL_TICKS_PER_S} | – | – | – | – | – | – |")
    evented = next(r for r in rows if r["config"] == CONFIGS[4].name)
    print(f"\nWith events and a snapshot every 10 ticks: {evented['ticks_per_s']:,.0f} ticks/s, "
          f"{evented['ticks_per_s'] / ORIGINAL_TICKS_PER_S:.0f}x the original's "
          f"~{ORIGINAL_TICKS_PER_S}.  The original spent {ORIGINAL_SAVE_MS} ms per "
          f"save_snapshot on the loop's thread; here the loop hands over one reference and "
          f"the files are written on the persistence thread (p99 tick above).")
    if args.json:
        Path(args.json).write_text(json.dumps({"python": sys.version, "gil": gil, "rows": rows},
                                              indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
