"""Scenario 2: contended, Python threads: one writer and k reader threads.

The writer alternates two complementary records, A = (100, 1, 1) and
B = (0, 0, 0) for energy/integrity/stability, flat out or at `--write-rate`;
every read checks that the three fields come from the same record (a torn read
otherwise).  Per scheme and reader count: reads/s (all readers), writes/s, the
writer's latency per write (p50/p99/max over a sample) and the torn reads seen.
The unsynchronised plain object is in the table to show that tears happen.
Rounds interleave the schemes, so a noisy neighbour hits all of them alike.

On a free-threaded CPython the readers run in parallel with the writer and
with each other; on a GIL build they take turns.  To compare, run this
scenario with each interpreter (and with ``PYTHON_GIL=1`` on the free-threaded
one): the table's last column is the reads/s scaling from the fewest readers.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from .. import formatting as F
from .. import schemes
from ..charts import CSNAPSHOT_COLOR, Chart, Panel, Series, line_chart
from ..machine import interpreter_label
from ..timing import percentile

ID = 2
NAME = "threads"
TITLE = "contended, Python threads: 1 writer + k readers"
REF = schemes.CSnapshot.name


def _settings(ctx) -> dict[str, Any]:
    quick = {"readers": [1, 2], "seconds": 0.25, "rounds": 1}
    full = {"readers": [1, 2, 4, 8], "seconds": 1.0, "rounds": 3}
    s = quick if ctx.quick else full
    return {"readers": ctx.readers or s["readers"], "seconds": s["seconds"],
            "rounds": ctx.rounds or s["rounds"], "write_rate": ctx.write_rate}


def _schemes() -> tuple[list[type], list[str]]:
    extra, missing = schemes.optional_schemes()
    return schemes.BASE_SCHEMES + extra, missing


def estimate(ctx) -> float:
    s = _settings(ctx)
    runs = len(_schemes()[0]) * len(s["readers"]) * s["rounds"]
    return runs * (s["seconds"] + 0.06)


def run(ctx) -> dict[str, Any]:
    s = _settings(ctx)
    rate = f"writer at {s['write_rate']:g} writes/s" if s["write_rate"] else "writer flat out"
    ctx.log.info("  readers %s, %.2f s per run, %d round(s), %s",
                 ",".join(map(str, s["readers"])), s["seconds"], s["rounds"], rate)
    classes, missing = _schemes()
    results: dict[str, dict[int, list[dict]]] = {}
    total, done = len(classes) * len(s["readers"]) * s["rounds"], 0
    for r in range(s["rounds"]):
        for k in s["readers"]:
            for cls in classes:
                done += 1
                ctx.log.debug("  [%d/%d] round %d: %s, %d reader(s) ...", done, total, r + 1,
                              cls.name, k)
                results.setdefault(cls.name, {}).setdefault(k, []).append(
                    _run_once(cls, k, s["seconds"], s["write_rate"]))
    return {"interpreter": interpreter_label(), "seconds": s["seconds"], "rounds": s["rounds"],
            "write_rate": s["write_rate"], "reader_counts": s["readers"],
            "results": results, "missing": missing}


A = (100.0, 1.0, 1.0)
B = (0.0, 0.0, 0.0)


def _run_once(cls: type, readers: int, seconds: float, write_rate: float = 0.0) -> dict:
    scheme = cls()
    write3 = scheme.write3
    stop = threading.Event()
    start = threading.Barrier(readers + 2)
    counts: list[tuple[int, int]] = []
    lock = threading.Lock()

    def reader() -> None:
        # A reader callable per thread: on free-threaded builds, sharing one
        # callable object between readers would make each call an atomic
        # refcount update on that object - a cost of the harness, not the
        # scheme - and a readerwriterlock reader must not be shared at all.
        read = scheme.thread_reader()
        reads = torn = 0
        start.wait()
        while not stop.is_set():
            for _ in range(64):  # check the flag every 64 reads
                t = read()
                if (t[0] == 100.0) != (t[1] == 1.0) or (t[1] == 1.0) != (t[2] == 1.0):
                    torn += 1
            reads += 64
        with lock:
            counts.append((reads, torn))

    latencies: list[int] = []
    writes: list[int | None] = [None]  # None until the writer finishes

    def writer() -> None:
        n = 0
        clock = time.perf_counter_ns
        # At a fixed rate the writer sleeps between pairs of writes (the pause
        # is the stop flag's wait, so it also ends the run promptly).
        pause = 2.0 / write_rate if write_rate else 0.0
        every = 1 if write_rate else 32
        start.wait()
        while not stop.is_set():
            t0 = clock()
            write3(*A)
            write3(*B)
            t1 = clock()
            n += 2
            if (n >> 1) % every == 0:  # flat out: sample one pair in 32
                latencies.append((t1 - t0) // 2)
            if pause:
                stop.wait(pause)
        writes[0] = n

    threads = [threading.Thread(target=reader) for _ in range(readers)]
    threads.append(threading.Thread(target=writer))
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    stop.wait(seconds)  # the run's duration
    stop.set()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    if len(counts) != readers or writes[0] is None:
        # A thread died (its traceback went to stderr): its counts are missing,
        # so the figures would be wrong.
        raise RuntimeError(f"{cls.name}: {readers - len(counts)} reader(s) or the writer "
                           "died during the run")
    latencies.sort()
    q = lambda p: percentile(latencies, p) / 1000  # noqa: E731  (ns -> µs)
    return {"reads_per_s": sum(c[0] for c in counts) / elapsed,
            "writes_per_s": (writes[0] or 0) / elapsed,
            "torn": sum(c[1] for c in counts),
            "writer_p50_us": q(0.50), "writer_p99_us": q(0.99),
            "writer_max_us": latencies[-1] / 1000 if latencies else float("nan")}


def _med(runs: list[dict], key: str) -> float:
    return F.median([r[key] for r in runs])


def summary(data: dict[str, Any]) -> list[str]:
    res, ks = data["results"], data["reader_counts"]
    k = ks[-1]
    ref = _med(res[REF][k], "reads_per_s")
    others = [n for n in res if n not in (REF, schemes.Plain.name)]
    best = max(others, key=lambda n: _med(res[n][k], "reads_per_s"))
    lock = _med(res[schemes.Locked.name][k], "reads_per_s")
    lines = [f"{k} readers: csnapshot {F.rate(ref)} reads/s; best consistent alternative {best} "
             f"{F.rate(_med(res[best][k], 'reads_per_s'))} "
             f"({F.ratio(_med(res[best][k], 'reads_per_s'), ref)} csnapshot's); `threading.Lock` "
             f"{F.rate(lock)} ({F.ratio(lock, ref)})"]
    lines.append(f"writer under {k} readers: csnapshot "
                 f"{F.rate(_med(res[REF][k], 'writes_per_s'))} writes/s, p99 "
                 f"{F.num(_med(res[REF][k], 'writer_p99_us'))} µs; `threading.Lock` p99 "
                 f"{F.num(_med(res[schemes.Locked.name][k], 'writer_p99_us'))} µs")
    torn_plain = sum(r["torn"] for kk in ks for r in res[schemes.Plain.name][kk])
    torn_others = sum(r["torn"] for n, per in res.items() if n != schemes.Plain.name
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
            spread = (" " + F.spread(min(reads), max(reads), F.rate)) if len(reads) > 1 else ""
            rows.append([f"**{name}**" if name == REF else name, k,
                         f"{F.rate(F.median(reads))}{spread}",
                         F.ratio(F.median(reads), ref),
                         F.rate(_med(runs, "writes_per_s")),
                         F.num(_med(runs, "writer_p50_us")), F.num(_med(runs, "writer_p99_us")),
                         F.num(max(r["writer_max_us"] for r in runs)),
                         f"{sum(r['torn'] for r in runs):,}",
                         F.ratio(F.median(reads), _med(per[ks[0]], "reads_per_s"))])
    for peer in data["missing"]:
        rows.append([peer, "–", "missing (not installed)", "", "", "", "", "", "", ""])
    writer = (f"at ~{data['write_rate']:,.0f} writes/s" if data.get("write_rate")
              else "flat out")
    timed = "every pair is timed" if data.get("write_rate") else "one pair in 32 is timed"
    return "\n".join([
        f"{data['interpreter']}. One writer thread ({writer}, alternating two complementary "
        f"3-field records) and k reader threads calling `read_tuple()`; {data['seconds']} s per "
        f"run, {data['rounds']} interleaved round(s). reads/s: all readers together, median "
        "[min–max] over rounds; × = reads/s ratio to csnapshot (above 1 = more reads than "
        "csnapshot). Writer latency per write: p50/p99 medians over rounds, max over all "
        f"rounds ({timed}). Torn reads: summed over rounds. Scaling: reads/s against the "
        f"same scheme's with {ks[0]} reader(s).",
        "",
        F.table(["scheme", "readers", "reads/s", "× csnapshot", "writes/s", "writer p50 µs",
                 "p99 µs", "max µs", "torn reads", "scaling"], rows),
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
            label = name + (" (tears)" if name == schemes.Plain.name else "")
            out.append(Series(label, ks, ys, los, his,
                              style="--x" if name == schemes.Plain.name else "-o",
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
