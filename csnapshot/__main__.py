"""``python -m csnapshot``: a short demonstration of consistent reads under a busy writer.

Runs native reader threads (no GIL) and Python reader threads against writers
that keep an invariant, and prints what the readers counted.  Exit status 1 if
any read was torn.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading

log = logging.getLogger("csnapshot")


def python_readers(seconds: float, readers: int) -> tuple[int, int, int]:
    """Python threads read while the calling thread writes; returns (reads, writes, torn)."""
    from csnapshot import Field, Vitals

    names = [f"f{i}" for i in range(8)]
    v = Vitals([Field(n) for n in names])
    step = {n: float(i + 1) for i, n in enumerate(names)}
    stop = threading.Event()
    counts: list[tuple[int, int]] = []
    lock = threading.Lock()

    def reader() -> None:
        reads = torn = 0
        while not stop.is_set():
            t = v.read_tuple()
            reads += 1
            if any(t[i] != t[0] * (i + 1) for i in range(8)):
                torn += 1
        with lock:
            counts.append((reads, torn))

    threads = [threading.Thread(target=reader) for _ in range(readers)]
    for t in threads:
        t.start()
    timer = threading.Timer(seconds, stop.set)
    timer.start()
    writes = 0
    while not stop.is_set():
        v.apply_delta(step)
        writes += 1
    for t in threads:
        t.join()
    return sum(c[0] for c in counts), writes, sum(c[1] for c in counts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m csnapshot",
        description="Demonstrate csnapshot's consistent lock-free reads: readers run "
                    "against writers that keep an invariant, and every read is checked.")
    parser.add_argument("--seconds", type=float, default=1.0,
                        help="duration of each scenario (default: 1.0)")
    parser.add_argument("--readers", type=int, default=2,
                        help="reader threads per scenario (default: 2)")
    parser.add_argument("--log-level", default="INFO",
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    args = parser.parse_args(argv)
    if not args.seconds > 0:
        parser.error(f"--seconds must be positive, got {args.seconds}")
    if args.readers < 1:
        parser.error(f"--readers must be at least 1, got {args.readers}")
    logging.basicConfig(level=args.log_level, format="%(message)s")

    import csnapshot
    from csnapshot.testing import stress

    log.info("csnapshot %s (%s implementation), Python %s", csnapshot.__version__,
             csnapshot.IMPLEMENTATION, sys.version.split()[0])
    torn = 0
    if csnapshot.IMPLEMENTATION == "native":
        for writer, rate in (("native", 0.0), ("native", 100_000.0), ("python", 0.0)):
            what = f"{writer} writer " + (f"at {rate:,.0f} writes/s" if rate else "flat out")
            log.info("running %d native readers against a %s for %.1f s ...",
                     args.readers, what, args.seconds)
            r = stress(readers=args.readers, seconds=args.seconds, writer=writer,
                       write_rate=rate)
            log.info("  %s", r.summary())
            torn += r.torn + r.lost_writes
    log.info("running %d Python reader threads against a Python writer for %.1f s ...",
             args.readers, args.seconds)
    reads, writes, py_torn = python_readers(args.seconds, args.readers)
    log.info("  %s Python reads, %s writes, %d torn", f"{reads:,}", f"{writes:,}", py_torn)
    torn += py_torn
    log.info("result: %s", "no torn reads" if torn == 0 else f"{torn} TORN READS")
    return 0 if torn == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
