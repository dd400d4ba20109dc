"""The benchmarks' command line: ``python -m benchmarks --help``.

The only argument parser of the benchmarks; `runner.run` does the work.
"""

from __future__ import annotations

import argparse
import logging
import sys
import textwrap
from pathlib import Path

from .scenarios import REGISTRY, resolve


def _scenario_list(text: str) -> list[int]:
    try:
        ids = sorted({resolve(x) for x in text.split(",") if x.strip()})
    except LookupError as e:
        raise argparse.ArgumentTypeError(str(e))
    if not ids:
        raise argparse.ArgumentTypeError("no scenario given")
    return ids


def _counts(text: str) -> list[int]:
    try:
        counts = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")
    if not counts or counts[0] < 1:
        raise argparse.ArgumentTypeError("reader counts must be positive integers")
    return counts


def _non_negative(text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}")
    if not x >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return x


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    table = "\n".join(f"  {n}  {name:<12} {what}" for n, (name, what) in REGISTRY.items())
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.fill("Compare csnapshot with what users would pick instead, in one run on one "
                    "machine, and write a report folder: report.md, results.json, "
                    "scenario1-pytest-benchmark.json and PNG charts. Run it from the "
                    "repository root after pip install -e '.[bench]'. Progress goes to "
                    "stderr. A full run takes 5-8 minutes on 2 cores, --quick about 30 s.", 79),
        epilog=f"scenarios (number or name):\n{table}\n\n"
               "Free-threaded reader scaling: run scenario 2 with a free-threaded interpreter, "
               "e.g.\n  python -m benchmarks --scenarios threads --readers 1,2 --rounds 3 "
               "--write-rate 1000")
    p.add_argument("--quick", action="store_true",
                   help="short runs, fewer sizes and reader counts (figures indicative only)")
    p.add_argument("--out", metavar="DIR", type=Path,
                   help="report folder (default: reports/<timestamp>/ in the repository)")
    p.add_argument("--scenarios", type=_scenario_list, default=sorted(REGISTRY), metavar="LIST",
                   help="comma-separated scenario numbers or names (default: all)")
    p.add_argument("--docs", action="store_true",
                   help="also copy the report's tables into docs/benchmarks.md (between its "
                        "report markers) and its charts into docs/benchmarks/")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="progress of every measurement, not only of every scenario")
    threads = p.add_argument_group("scenario 2 (Python threads)")
    threads.add_argument("--readers", type=_counts, metavar="LIST",
                         help="reader thread counts (default: 1,2,4,8; --quick: 1,2)")
    threads.add_argument("--write-rate", type=_non_negative, default=0.0, metavar="R",
                         help="the writer's writes per second (default: 0 = flat out)")
    threads.add_argument("--rounds", type=_positive_int, metavar="N",
                         help="interleaved rounds (default: 3; --quick: 1)")
    e2e = p.add_argument_group("scenario 5 (end to end)")
    e2e.add_argument("--tick-interval", type=_non_negative, default=0.001, metavar="S",
                     help="the loop's tick interval in seconds, scenarios 5 and 8 (default: 0.001; 0 = flat out)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    from . import runner

    return runner.run(args, argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
