"""Run the whole comparison (issue #7) and write a report folder.

    python -m benchmarks [--quick] [--out DIR] [--scenarios 1,2,3,4,5] [--docs] [--verbose]

From the repository root, after ``pip install -e '.[bench]'``.  Writes
DIR/report.md (summary and tables), DIR/results.json (every raw figure),
DIR/scenario1-pytest-benchmark.json and DIR/*.png (charts).  Progress goes to
stderr, one line per scenario (more with --verbose).  Full mode takes about
5-8 minutes on a 2-core machine, --quick well under one.
"""

from __future__ import annotations

import argparse
import datetime
import logging
import os
import shlex
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# The existing scripts import their siblings as top-level modules
# (`import vitals_impls`), and bench_state imports `src` from the checkout:
# append both folders (never prepend: nothing here may shadow an installed package).
for _p in (str(HERE), str(ROOT)):
    if _p not in sys.path:
        sys.path.append(_p)

log = logging.getLogger("benchmarks")


def _parse_scenarios(text: str) -> list[int]:
    try:
        ids = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}")
    if not ids:
        raise argparse.ArgumentTypeError("no scenario given")
    return ids


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from .scenarios import PLANNED, REGISTRY

    known = ", ".join(f"{k}" for k in sorted(REGISTRY))
    planned = "; ".join(f"{k}: {v} (not implemented yet)" for k, v in PLANNED.items()
                        if k not in REGISTRY)
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Run csnapshot's comparison benchmarks (issue #7) and write a report "
                    "folder: report.md, results.json, scenario1-pytest-benchmark.json, *.png.",
        epilog=f"Scenarios: {known}. Planned: {planned}." if planned else f"Scenarios: {known}.")
    p.add_argument("--quick", action="store_true",
                   help="short runs, fewer sizes and reader counts (under a minute)")
    p.add_argument("--out", metavar="DIR", type=Path,
                   help="report folder (default: reports/<timestamp>/ in the repository)")
    p.add_argument("--scenarios", type=_parse_scenarios, default=sorted(REGISTRY),
                   metavar="LIST", help=f"comma-separated scenario numbers (default: {known})")
    p.add_argument("--docs", action="store_true",
                   help="also copy the report's tables into docs/benchmarks.md (between its "
                        "report markers) and its charts into docs/benchmarks/")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="progress of every measurement, not only of every scenario")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    # The reused scripts log a line per measurement; keep those for --verbose.
    for name in ("bench_vitals", "bench_threads"):
        logging.getLogger(name).setLevel(logging.INFO if args.verbose else logging.WARNING)

    import vitals_impls

    vitals_impls.require_native()  # never time the pure-Python fallback

    from . import charts as C
    from . import report as R
    from .scenarios import Context, load

    try:
        modules = [load(i) for i in args.scenarios]
    except LookupError as e:
        log.error("python -m benchmarks: %s", e)
        return 2
    out = args.out or ROOT / "reports" / datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)

    machine = R.machine_info(ROOT)
    ctx = Context(quick=args.quick, out=out, root=ROOT, machine=machine,
                  caption=R.caption(machine, args.quick), verbose=args.verbose, log=log)
    peers = R.peers()
    missing = [k for k, v in peers.items() if v["version"] is None]
    no_charts = C.available()
    estimates = [m.estimate(ctx) for m in modules]
    log.info("csnapshot comparison, %s mode: scenarios %s -> %s",
             "quick" if args.quick else "full", ",".join(map(str, args.scenarios)), out)
    log.info("machine: %s", ctx.caption)
    if missing:
        log.info("missing peers (reported as missing): %s", ", ".join(missing))
    log.info("estimated time: %.0f s (%s)", sum(estimates),
             ", ".join(f"#{m.ID} ~{e:.0f} s" for m, e in zip(modules, estimates)))

    t_start = time.perf_counter()
    sections, raw = [], {}
    for i, (mod, est) in enumerate(zip(modules, estimates), 1):
        log.info("[%d/%d] scenario %d: %s (~%.0f s) ...", i, len(modules), mod.ID, mod.TITLE, est)
        load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
        t0 = time.perf_counter()
        sec = {"id": mod.ID, "title": mod.TITLE, "estimate_s": est, "charts": [],
               "summary": [], "markdown": "", "error": None}
        try:
            data = mod.run(ctx)
            raw[str(mod.ID)] = {"title": mod.TITLE, "data": data}
            sec["summary"] = mod.summary(data)
            sec["markdown"] = mod.markdown(data, ctx)
            if no_charts is None:
                sec["charts"] = mod.charts(data, ctx)
        except Exception as e:  # one failed scenario must not lose the others
            sec["error"] = f"{type(e).__name__}: {e}"
            raw[str(mod.ID)] = {"title": mod.TITLE, "error": sec["error"],
                                "traceback": traceback.format_exc()}
            log.error("scenario %d failed: %s", mod.ID, sec["error"])
            if args.verbose:
                log.error("%s", traceback.format_exc())
        sec["elapsed_s"] = time.perf_counter() - t0
        sec["loadavg"] = [load_before, os.getloadavg() if hasattr(os, "getloadavg") else None]
        sections.append(sec)
        log.info("[%d/%d] scenario %d %s in %.1f s%s", i, len(modules), mod.ID,
                 "FAILED" if sec["error"] else "done", sec["elapsed_s"],
                 "" if sec["error"] else "; " + (sec["summary"][0] if sec["summary"] else ""))

    total = time.perf_counter() - t_start
    command = "python -m benchmarks " + " ".join(shlex.quote(a) for a in (argv if argv is not None
                                                                         else sys.argv[1:]))
    run = {"machine": machine, "peers": peers, "quick": args.quick, "command": command.strip(),
           "scenarios_requested": args.scenarios, "total_s": total,
           "estimate_s": sum(estimates), "charts_note": no_charts}
    R.write_json(out / "results.json", {
        "schema": "csnapshot-benchmarks/1", **run,
        "scenarios": {str(s["id"]): {**raw.get(str(s["id"]), {}), "elapsed_s": s["elapsed_s"],
                                     "estimate_s": s["estimate_s"], "loadavg": s["loadavg"],
                                     "charts": [c.file for c in s["charts"]]}
                      for s in sections}})
    (out / "report.md").write_text(R.render(run, sections))
    pngs = sorted(p.name for p in out.glob("*.png"))
    log.info("done in %.0f s: %s (report.md, results.json, %d chart(s)%s)", total, out, len(pngs),
             "" if no_charts is None else f"; no charts: {no_charts}")
    if args.docs:
        written = R.update_docs(out, ROOT / "docs" / "benchmarks.md", ROOT / "docs" / "benchmarks")
        log.info("docs updated: %s", ", ".join(str(p.relative_to(ROOT)) for p in written))
    return 1 if any(s["error"] for s in sections) else 0


if __name__ == "__main__":
    sys.exit(main())
