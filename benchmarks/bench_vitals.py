"""Uncontended cost of reading and writing the vitals, every scheme in one run.

    python benchmarks/bench_vitals.py [--quick] [--json FILE]

Prints a Markdown table: median ns per operation (timeit, GC off, best-of-N
loops per repeat, median over repeats), the spread (min-max of repeats), and
the ratio to csnapshot.  The figures the issue asks about are printed last:
read_tuple of unchanged data against the plain object's attribute reads, and
a 3-field clamped write against the plain object's clamped write.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import timeit

import vitals_impls as impls

log = logging.getLogger("bench_vitals")

OPS = {
    "read_tuple": lambda s: s.read_tuple,
    "read_dict": lambda s: s.read_dict,
    "write3 (positional)": lambda s: (lambda w=s.write3: w(50.0, 0.5, 0.5)),
    "write3 (keywords)": lambda s: (s.write3_kw_op() if hasattr(s, "write3_kw_op")
                                    else (lambda w=s.write3: w(50.0, 0.5, 0.5))),
    "delta3": lambda s: (lambda d=s.delta3: d(0.0)),
}


def measure(fn, repeats: int, number: int) -> list[float]:
    """ns per call for each repeat (timeit disables the GC while timing)."""
    return [t / number * 1e9 for t in timeit.repeat(fn, number=number, repeat=repeats)]


def run(quick: bool, repeats: int | None = None, number: int | None = None) -> dict:
    """Every scheme and operation; `repeats`/`number` override the mode's defaults."""
    default_repeats, default_number = (5, 20_000) if quick else (15, 200_000)
    repeats, number = repeats or default_repeats, number or default_number
    extra, missing = impls.optional_schemes()
    schemes = impls.BASE_SCHEMES + extra
    results: dict[str, dict[str, list[float]]] = {}
    for cls in schemes:
        s = cls()
        log.info("measuring %s ...", cls.name)
        results[cls.name] = {op: measure(make(s), repeats, number) for op, make in OPS.items()}
    return {"results": results, "missing": missing, "python": sys.version.split()[0],
            "repeats": repeats, "number": number}


def report(data: dict) -> str:
    res = data["results"]
    ref = res[impls.CSnapshot.name]
    lines = [f"Python {data['python']}, median ns per operation "
             f"({data['repeats']} repeats x {data['number']:,} calls; min-max in brackets; "
             "x = ratio to csnapshot)", ""]
    header = "| scheme | " + " | ".join(OPS) + " |"
    lines += [header, "|---" * (len(OPS) + 1) + "|"]
    for name, ops in res.items():
        cells = []
        for op, ts in ops.items():
            med = statistics.median(ts)
            cells.append(f"{med:.0f} [{min(ts):.0f}-{max(ts):.0f}] "
                         f"{med / statistics.median(ref[op]):.2f}x")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    for peer in data["missing"]:
        lines.append(f"| {peer} | not installed (pip install '.[bench]') |")
    plain = res[impls.Plain.name]
    m = statistics.median
    lines += ["",
              f"- read_tuple of unchanged data: csnapshot / plain attributes = "
              f"{m(ref['read_tuple']) / m(plain['read_tuple']):.2f} (goal <= 0.6)",
              f"- 3-field clamped write, positional: csnapshot / plain = "
              f"{m(ref['write3 (positional)']) / m(plain['write3 (positional)']):.2f} "
              "(goal <= 1.0, aim 0.5)",
              f"- 3-field clamped write, keywords: csnapshot / plain = "
              f"{m(ref['write3 (keywords)']) / m(plain['write3 (positional)']):.2f}",
              f"- apply_delta of 3 fields: csnapshot / plain = "
              f"{m(ref['delta3']) / m(plain['delta3']):.2f}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python benchmarks/bench_vitals.py",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer repeats (a few seconds)")
    p.add_argument("--json", metavar="FILE", help="also write the raw timings as JSON")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    impls.require_native()
    data = run(args.quick)
    print(report(data))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(data, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
