"""Scenario 3: native reader threads without the GIL: seqlock and latch against pthread locks.

`csnapshot.testing.stress` runs the readers (nogil C loops, every copy checked
against the writer's invariant) and a native writer (flat out, or spin-paced
at a fixed rate).  ``"seqlock"`` reads csnapshot's classic record through the
header's bounded read (falling back to the writers' lock after spinning);
``"latch"`` the same loops on a ``Vitals(layout="latch")`` (two copies: readers
never wait for an open write); ``"mutex"`` / ``"rwlock"`` run the same loops on the same data behind a
``pthread_mutex_t`` / ``pthread_rwlock_t`` (glibc defaults, readers take the
read lock).  Rounds interleave everything, so a noisy neighbour hits all alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from csnapshot.testing import SYNC_MODES, invariant_vitals, stress

from .. import formatting as F
from ..charts import CSNAPSHOT_COLOR, Chart, Panel, Series, line_chart

ID = 3
NAME = "native"
TITLE = "native readers without the GIL: seqlock and latch vs pthread mutex / rwlock"
RATES = [(1_000.0, "1 kHz"), (100_000.0, "100 kHz"), (0.0, "flat out")]
# What each run reads: csnapshot's two layouts, then the lock baselines.
VARIANTS = ("seqlock", "latch") + tuple(m for m in SYNC_MODES if m != "seqlock")
LABELS = {"seqlock": "csnapshot seqlock (classic)", "latch": "csnapshot latch",
          "mutex": "pthread mutex", "rwlock": "pthread rwlock (readers share)"}


def _settings(quick: bool) -> dict[str, Any]:
    if quick:
        return {"readers": [1, 2], "seconds": 0.2, "rounds": 1}
    return {"readers": [1, 2, 3, 4], "seconds": 1.0, "rounds": 2}


def estimate(ctx) -> float:
    s = _settings(ctx.quick)
    return len(VARIANTS) * len(RATES) * len(s["readers"]) * s["rounds"] * (s["seconds"] + 0.02)


def run(ctx) -> dict[str, Any]:
    s = _settings(ctx.quick)
    ctx.log.info("  readers %s, writer at %s, %.2f s per run, %d round(s)",
                 ",".join(map(str, s["readers"])), ", ".join(lab for _, lab in RATES),
                 s["seconds"], s["rounds"])
    results: dict[str, dict[str, dict[str, list[dict]]]] = {}
    for _ in range(s["rounds"]):
        for rate, rate_label in RATES:
            for k in s["readers"]:
                for variant in VARIANTS:
                    latch = variant == "latch"
                    r = stress(readers=k, seconds=s["seconds"], writer="native",
                               write_rate=rate, sync="seqlock" if latch else variant,
                               vitals=invariant_vitals(8, "latch") if latch else None)
                    results.setdefault(rate_label, {}).setdefault(variant, {}).setdefault(
                        str(k), []).append({
                            "reads": r.reads, "per_reader": list(r.per_reader),
                            "reads_per_s_per_reader": r.reads / r.seconds / k,
                            "retries": r.retries, "retries_per_read": r.retries / max(r.reads, 1),
                            "fallbacks": r.fallbacks, "timeouts": r.timeouts, "torn": r.torn,
                            "writes_per_s": r.writes / r.seconds, "lost_writes": r.lost_writes,
                            "changes": r.changes})
    return {"readers": s["readers"], "seconds": s["seconds"], "rounds": s["rounds"],
            "rates": [lab for _, lab in RATES], "syncs": list(VARIANTS),
            "cpus": ctx.machine["cpus_usable"], "results": results}


def _med(runs: list[dict], key: str) -> float:
    return F.median([r[key] for r in runs])


def summary(data: dict[str, Any]) -> list[str]:
    res = data["results"]
    lines = []
    for rate in data["rates"]:
        parts = []
        for k in (data["readers"][0], data["readers"][-1]):
            seq = _med(res[rate]["seqlock"][str(k)], "reads_per_s_per_reader")
            mu = _med(res[rate]["mutex"][str(k)], "reads_per_s_per_reader")
            rw = _med(res[rate]["rwlock"][str(k)], "reads_per_s_per_reader")
            la = _med(res[rate]["latch"][str(k)], "reads_per_s_per_reader")
            parts.append(f"{k} reader(s): seqlock {F.rate(seq)}/s per reader, "
                         f"{F.ratio(seq, mu)} the mutex, {F.ratio(seq, rw)} the rwlock; "
                         f"latch {F.rate(la)}/s, {F.ratio(la, mu)} the mutex")
        lines.append(f"writer {rate}: " + "; ".join(parts))
    torn = sum(r["torn"] for per in res.values() for ks in per.values() for runs in ks.values()
               for r in runs)
    fb = {v: sum(r["fallbacks"] for ks in (res[rate][v] for rate in data["rates"])
                 for runs in ks.values() for r in runs) for v in ("seqlock", "latch")}
    lines.append(f"torn reads: {torn} in all runs (seqlock, latch, mutex and rwlock); "
                 f"fallbacks to the writers' lock: seqlock {fb['seqlock']:,}, "
                 f"latch {fb['latch']:,}")
    return lines


def markdown(data: dict[str, Any], ctx) -> str:
    res = data["results"]
    out = [f"Native reader threads (no GIL) copying the 8 slots and checking the writer's "
           f"invariant on every copy; one native writer at the given rate (spin-paced, so it "
           f"occupies a core) or flat out; {data['seconds']} s per run, {data['rounds']} "
           f"interleaved round(s); {data['cpus']} usable CPUs, so from "
           f"{max(1, data['cpus'])} reader(s) on, readers and writer share cores. reads/s per "
           "reader: median [min–max] over rounds; × = ratio to the seqlock (above 1 = more reads "
           "than csnapshot). retries/read: optimistic reads discarded because a write overlapped "
           "(always 0 for the locks); fallbacks: seqlock or latch reads that gave up retrying "
           "and took the writers' lock. The latch is a `Vitals(layout=\"latch\")`: two "
           "copies, readers never wait for an open write.", ""]
    for rate in data["rates"]:
        rows = []
        for k in data["readers"]:
            ref = _med(res[rate]["seqlock"][str(k)], "reads_per_s_per_reader")
            for sync in data["syncs"]:
                runs = res[rate][sync][str(k)]
                v = [r["reads_per_s_per_reader"] for r in runs]
                name = LABELS[sync]
                spread = (" " + F.spread(min(v), max(v), F.rate)) if len(v) > 1 else ""
                rows.append([f"**{name}**" if sync in ("seqlock", "latch") else name, k,
                             f"{F.rate(F.median(v))}{spread}",
                             F.ratio(F.median(v), ref),
                             f"{_med(runs, 'retries_per_read'):.2g}",
                             f"{sum(r['fallbacks'] for r in runs):,}",
                             F.rate(_med(runs, "writes_per_s")),
                             f"{sum(r['torn'] for r in runs):,}",
                             f"{sum(r['lost_writes'] for r in runs):,}"])
        out += [f"**Writer {rate}**", "",
                F.table(["sync", "readers", "reads/s per reader", "× seqlock", "retries/read",
                         "fallbacks", "writes/s", "torn", "lost writes"], rows), ""]
    out.append("The \"100 kHz\" writer is spin-paced on a clock; on a busy VM it may achieve "
               "less (the writes/s column says what it did).")
    return "\n".join(out)


def charts(data: dict[str, Any], ctx) -> list[Chart]:
    res, ks = data["results"], data["readers"]
    colors = {"seqlock": CSNAPSHOT_COLOR, "latch": "#9467bd", "mutex": "#1f77b4",
              "rwlock": "#2ca02c"}

    def series(rate: str, key: str) -> list[Series]:
        out = []
        for sync in data["syncs"]:
            per = res[rate][sync]
            out.append(Series(LABELS[sync], ks, [_med(per[str(k)], key) for k in ks],
                              [min(r[key] for r in per[str(k)]) for k in ks],
                              [max(r[key] for r in per[str(k)]) for k in ks],
                              emphasis=sync in ("seqlock", "latch"), color=colors[sync]))
        return out

    panels = [Panel(f"reads, writer {rate}", "native reader threads",
                    "reads per second per reader (log scale)",
                    series(rate, "reads_per_s_per_reader"), xticks=ks)
              for rate in data["rates"]]
    flat = data["rates"][-1]
    panels.append(Panel(f"writes, writer {flat}", "native reader threads",
                        "writes per second (log scale)", series(flat, "writes_per_s"), xticks=ks))
    path = Path(ctx.out) / "scenario3-native-readers.png"
    title = "Scenario 3: nogil native readers, seqlock and latch vs pthread locks"
    line_chart(path, title, panels, ctx.caption, ncols=2, shared_legend=True)
    return [Chart(path.name, title + " (reads/s per reader against reader threads at three "
                  "writer rates, and the flat-out writer's writes/s; log scale)",
                  ctx.caption)]
