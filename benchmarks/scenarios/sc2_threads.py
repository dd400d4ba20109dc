"""Scenario 2: contended, Python threads: one writer flat out and k reader threads.

benchmarks/bench_threads.py does the measuring: the writer alternates two
complementary records, every read checks that the three written fields come
from one record (a torn read otherwise), rounds interleave the schemes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import bench_threads
import vitals_impls as impls

from .. import report as R
from ..charts import CSNAPSHOT_COLOR, Chart, Panel, Series, line_chart

ID = 2
TITLE = "contended, Python threads: 1 writer + k readers"
REF = impls.CSnapshot.name


def _settings(quick: bool) -> dict[str, Any]:
    if quick:
        return {"readers": [1, 2], "seconds": 0.25, "rounds": 1}
    return {"readers": [1, 2, 4, 8], "seconds": 1.0, "rounds": 3}


def estimate(ctx) -> float:
    s = _settings(ctx.quick)
    extra, _ = impls.optional_schemes()
    runs = (len(impls.BASE_SCHEMES) + len(extra)) * len(s["readers"]) * s["rounds"]
    return runs * (s["seconds"] + 0.06)


def run(ctx) -> dict[str, Any]:
    s = _settings(ctx.quick)
    ctx.log.info("  readers %s, %.2f s per run, %d round(s), writer flat out",
                 ",".join(map(str, s["readers"])), s["seconds"], s["rounds"])
    data = bench_threads.run(s["readers"], s["seconds"], s["rounds"], 0.0)
    data["reader_counts"] = s["readers"]
    return data


def _med(runs: list[dict], key: str) -> float:
    return R.median([r[key] for r in runs])


def summary(data: dict[str, Any]) -> list[str]:
    res, ks = data["results"], data["reader_counts"]
    k = ks[-1]
    ref = _med(res[REF][k], "reads_per_s")
    others = [n for n in res if n not in (REF, impls.Plain.name)]
    best = max(others, key=lambda n: _med(res[n][k], "reads_per_s"))
    lock = _med(res[impls.Locked.name][k], "reads_per_s")
    lines = [f"{k} readers: csnapshot {R.rate(ref)} reads/s; best consistent alternative {best} "
             f"{R.rate(_med(res[best][k], 'reads_per_s'))} "
             f"({R.ratio(_med(res[best][k], 'reads_per_s'), ref)} csnapshot's); `threading.Lock` "
             f"{R.rate(lock)} ({R.ratio(lock, ref)})"]
    lines.append(f"writer under {k} readers: csnapshot "
                 f"{R.rate(_med(res[REF][k], 'writes_per_s'))} writes/s, p99 "
                 f"{R.num(_med(res[REF][k], 'writer_p99_us'))} µs; `threading.Lock` p99 "
                 f"{R.num(_med(res[impls.Locked.name][k], 'writer_p99_us'))} µs")
    torn_plain = sum(r["torn"] for kk in ks for r in res[impls.Plain.name][kk])
    torn_others = sum(r["torn"] for n, per in res.items() if n != impls.Plain.name
                      for kk in ks for r in per[kk])
    lines.append(f"torn reads: plain object (no sync) {torn_plain:,} (it must tear: the GIL "
                 f"switches threads between its attribute stores); every other scheme "
                 f"{torn_others:,}")
    for peer in data["missing"]:
        lines.append(f"{peer}: missing (not installed), its rows are absent")
    return lines


def markdown(data: dict[str, Any], ctx) -> str:
    res, ks = data["results"], data["reader_counts"]
    rows = []
    for k in ks:
        ref = _med(res[REF][k], "reads_per_s")
        for name, per in res.items():
            runs = per[k]
            reads = [r["reads_per_s"] for r in runs]
            spread = (" " + R.spread(min(reads), max(reads), R.rate)) if len(reads) > 1 else ""
            rows.append([f"**{name}**" if name == REF else name, k,
                         f"{R.rate(R.median(reads))}{spread}",
                         R.ratio(R.median(reads), ref),
                         R.rate(_med(runs, "writes_per_s")),
                         R.num(_med(runs, "writer_p50_us")), R.num(_med(runs, "writer_p99_us")),
                         R.num(max(r["writer_max_us"] for r in runs)),
                         f"{sum(r['torn'] for r in runs):,}"])
    for peer in data["missing"]:
        rows.append([peer, "–", "missing (not installed)", "", "", "", "", "", ""])
    return "\n".join([
        f"{data['interpreter']}. One writer thread (flat out, alternating two complementary "
        f"3-field records) and k reader threads calling `read_tuple()`; {data['seconds']} s per "
        f"run, {data['rounds']} interleaved round(s). reads/s: all readers together, median "
        "[min–max] over rounds; × = reads/s ratio to csnapshot (above 1 = more reads than "
        "csnapshot). Writer latency per write: p50/p99 medians over rounds, max over all "
        "rounds (flat out, one pair in 32 is timed). Torn reads: summed over rounds.",
        "",
        R.table(["scheme", "readers", "reads/s", "× csnapshot", "writes/s", "writer p50 µs",
                 "p99 µs", "max µs", "torn reads"], rows),
        "",
        "On a GIL build the threads take turns: reads/s measures how much of the GIL's time "
        "each scheme's reads need, not parallel reads; rerun with a free-threaded interpreter "
        "to see real parallelism. Writer max latencies of milliseconds are GIL switch "
        "intervals (5 ms), not the scheme."])


def charts(data: dict[str, Any], ctx) -> list[Chart]:
    res, ks = data["results"], data["reader_counts"]

    def series(key: str) -> list[Series]:
        out = []
        for name, per in res.items():
            ys = [_med(per[k], key) for k in ks]
            los = [min(r[key] for r in per[k]) for k in ks]
            his = [max(r[key] for r in per[k]) for k in ks]
            label = name + (" (tears)" if name == impls.Plain.name else "")
            out.append(Series(label, ks, ys, los, his,
                              style="--x" if name == impls.Plain.name else "-o",
                              emphasis=name == REF, color=CSNAPSHOT_COLOR if name == REF else None))
        return out

    panels = [Panel("reads/s, all reader threads", "reader threads (k)",
                    "reads per second (log scale)", series("reads_per_s"), xlog=True, xticks=ks),
              Panel("writes/s of the one writer", "reader threads (k)",
                    "writes per second (log scale)", series("writes_per_s"), xlog=True,
                    xticks=ks)]
    path = Path(ctx.out) / "scenario2-python-threads.png"
    title = "Scenario 2: 1 Python writer + k Python reader threads"
    line_chart(path, title, panels, ctx.caption, shared_legend=True)
    return [Chart(path.name, title + " (reads/s and writes/s against reader threads, log scale)",
                  ctx.caption)]
