"""Contended vitals: one Python writer thread and k Python reader threads.

    python benchmarks/bench_threads.py [--readers 1,2] [--seconds 2] [--rounds 3] [--json F]

The writer alternates two complementary records, A = (100, 1, 1) and
B = (0, 0, 0) for energy/integrity/stability, as fast as it can; every read
checks that the three fields come from the same record.  Per scheme and
reader count it reports reads/s (all readers), writes/s, the writer's
latency per write (p50/p99/max over a sample) and the torn reads seen.  The
unsynchronised plain object is in the table to show that tears really happen.

On a free-threaded CPython the readers run in parallel with the writer and
with each other; on a GIL build they take turns.  Compare both by running
this with each interpreter (and `PYTHON_GIL=1` on the free-threaded one).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import sysconfig
import threading
import time

import vitals_impls as impls

log = logging.getLogger("bench_threads")

A = (100.0, 1.0, 1.0)
B = (0.0, 0.0, 0.0)


def run_once(cls: type, readers: int, seconds: float, write_rate: float = 0.0) -> dict:
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
    q = (lambda p: latencies[min(len(latencies) - 1, int(p * len(latencies)))] / 1000
         if latencies else float("nan"))
    return {"reads_per_s": sum(c[0] for c in counts) / elapsed,
            "writes_per_s": (writes[0] or 0) / elapsed,
            "torn": sum(c[1] for c in counts),
            "writer_p50_us": q(0.50), "writer_p99_us": q(0.99),
            "writer_max_us": latencies[-1] / 1000 if latencies else float("nan")}


def interpreter_label() -> str:
    ft = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
    gil = sys._is_gil_enabled() if hasattr(sys, "_is_gil_enabled") else True
    kind = ("free-threaded, GIL disabled" if ft and not gil else
            "free-threaded build, GIL re-enabled" if ft else "GIL build")
    return f"CPython {sys.version.split()[0]} ({kind}), {os.cpu_count()} CPUs"


def run(reader_counts: list[int], seconds: float, rounds: int, write_rate: float) -> dict:
    extra, missing = impls.optional_schemes()
    schemes = impls.BASE_SCHEMES + extra
    results: dict[str, dict[int, list[dict]]] = {}
    total = len(schemes) * len(reader_counts) * rounds
    done = 0
    # Rounds interleave the schemes so a noisy neighbour hits all of them alike.
    for r in range(rounds):
        for k in reader_counts:
            for cls in schemes:
                done += 1
                log.info("[%d/%d] round %d: %s, %d reader(s) ...", done, total, r + 1,
                         cls.name, k)
                results.setdefault(cls.name, {}).setdefault(k, []).append(
                    run_once(cls, k, seconds, write_rate))
    return {"interpreter": interpreter_label(), "seconds": seconds, "rounds": rounds,
            "write_rate": write_rate,
            "results": results, "missing": missing}


def median_of(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def report(data: dict) -> str:
    res = data["results"]
    counts = sorted({k for per in res.values() for k in per})
    ref = res[impls.CSnapshot.name]
    rate = (f"writer at ~{data['write_rate']:,.0f} writes/s" if data.get("write_rate")
            else "writer flat out")
    lines = [f"{data['interpreter']}; 1 writer ({rate}) + k reader threads, "
             f"{data['seconds']} s per run, median of {data['rounds']} interleaved runs", "",
             "| scheme | readers | reads/s | x csnapshot | writes/s | writer p50 µs | p99 µs "
             "| max µs | torn reads |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, per in res.items():
        for k in counts:
            runs = per[k]
            reads = median_of(runs, "reads_per_s")
            lines.append(
                f"| {name} | {k} | {reads:,.0f} | {reads / median_of(ref[k], 'reads_per_s'):.2f} "
                f"| {median_of(runs, 'writes_per_s'):,.0f} | {median_of(runs, 'writer_p50_us'):.2f} "
                f"| {median_of(runs, 'writer_p99_us'):.2f} | {median_of(runs, 'writer_max_us'):,.1f} "
                f"| {sum(r['torn'] for r in runs):,} |")
    if len(counts) > 1:
        lines += ["", f"Scaling of reads/s from {counts[0]} to {counts[-1]} readers:"]
        for name, per in res.items():
            a, b = median_of(per[counts[0]], "reads_per_s"), median_of(per[counts[-1]], "reads_per_s")
            lines.append(f"- {name}: x{b / a:.2f}")
    for peer in data["missing"]:
        lines.append(f"- {peer}: not installed (pip install '.[bench]')")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python benchmarks/bench_threads.py",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--readers", default="1,2",
                   help="comma-separated reader thread counts (default: 1,2)")
    p.add_argument("--seconds", type=float, default=2.0, help="per run (default: 2)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved runs (default: 3)")
    p.add_argument("--write-rate", type=float, default=0.0,
                   help="writes per second (default: 0 = flat out)")
    p.add_argument("--json", metavar="FILE", help="also write the raw results as JSON")
    args = p.parse_args(argv)
    if args.write_rate < 0:
        p.error(f"--write-rate must be >= 0, got {args.write_rate}")
    try:
        readers = [int(x) for x in args.readers.split(",")]
    except ValueError:
        p.error(f"--readers must be comma-separated integers, got {args.readers!r}")
    if any(k < 1 for k in readers) or args.seconds <= 0 or args.rounds < 1:
        p.error("--readers counts, --seconds and --rounds must be positive")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    impls.require_native()
    data = run(readers, args.seconds, args.rounds, args.write_rate)
    print(report(data))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(data, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
