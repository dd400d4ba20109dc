"""Run the chosen scenarios one after the other and write the report folder.

Each scenario runs inside its own error boundary (one failure must not lose
the others' figures) with the load average recorded around it, so a reader of
the report can tell which figures a busy neighbour may have skewed.
"""

from __future__ import annotations

import datetime
import logging
import os
import shlex
import time
import traceback
from pathlib import Path
from typing import Any

from . import charts, machine, report
from .scenarios import Context, load

ROOT = Path(__file__).resolve().parent.parent
log = logging.getLogger("benchmarks")


def _loadavg() -> tuple[float, float, float] | None:
    return os.getloadavg() if hasattr(os, "getloadavg") else None


def run(args: Any, argv: list[str]) -> int:
    """Measure, write report.md / results.json / charts; 1 if a scenario failed.

    `args` is `__main__.parse_args`'s result, `argv` the command line it parsed
    (quoted back into the report)."""
    log.setLevel(logging.DEBUG if args.verbose else logging.INFO)
    machine.require_native()  # never time the pure-Python fallback
    modules = [load(i) for i in args.scenarios]
    out = (args.out or ROOT / "reports" / datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)

    facts = machine.machine_info(ROOT)
    ctx = Context(quick=args.quick, out=out, root=ROOT, machine=facts,
                  caption=machine.caption(facts, args.quick), verbose=args.verbose, log=log,
                  readers=args.readers, write_rate=args.write_rate, rounds=args.rounds,
                  tick_interval=args.tick_interval)
    peers = machine.peers()
    missing = [k for k, v in peers.items() if v["version"] is None]
    no_charts = charts.available()
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
        sec, raw[str(mod.ID)] = _run_one(mod, ctx, est, no_charts is None)
        sections.append(sec)
        log.info("[%d/%d] scenario %d %s in %.1f s%s", i, len(modules), mod.ID,
                 "FAILED" if sec["error"] else "done", sec["elapsed_s"],
                 "" if sec["error"] else "; " + (sec["summary"][0] if sec["summary"] else ""))

    total = time.perf_counter() - t_start
    command = ("python -m benchmarks " + " ".join(shlex.quote(a) for a in argv)).strip()
    run_facts = {"machine": facts, "peers": peers, "quick": args.quick, "command": command,
                 "scenarios_requested": args.scenarios, "total_s": total,
                 "estimate_s": sum(estimates), "charts_note": no_charts}
    report.write_json(out / "results.json", {
        "schema": "csnapshot-benchmarks/1", **run_facts,
        "scenarios": {str(s["id"]): {**raw.get(str(s["id"]), {}), "elapsed_s": s["elapsed_s"],
                                     "estimate_s": s["estimate_s"], "loadavg": s["loadavg"],
                                     "charts": [c.file for c in s["charts"]]}
                      for s in sections}})
    (out / "report.md").write_text(report.render(run_facts, sections))
    pngs = sorted(p.name for p in out.glob("*.png"))
    log.info("done in %.0f s: %s (report.md, results.json, %d chart(s)%s)", total, out, len(pngs),
             "" if no_charts is None else f"; no charts: {no_charts}")
    if args.docs:
        written = report.update_docs(out, ROOT / "docs" / "benchmarks.md",
                                     ROOT / "docs" / "benchmarks")
        log.info("docs updated: %s", ", ".join(str(p.relative_to(ROOT)) for p in written))
    return 1 if any(s["error"] for s in sections) else 0


def _run_one(mod, ctx: Context, estimate: float,
             draw_charts: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """(report section, raw results) of one scenario."""
    load_before = _loadavg()
    t0 = time.perf_counter()
    sec: dict[str, Any] = {"id": mod.ID, "title": mod.TITLE, "estimate_s": estimate,
                           "charts": [], "summary": [], "markdown": "", "error": None}
    try:
        data = mod.run(ctx)
        raw: dict[str, Any] = {"title": mod.TITLE, "data": data}
        sec["summary"] = mod.summary(data)
        sec["markdown"] = mod.markdown(data, ctx)
        if draw_charts:
            sec["charts"] = mod.charts(data, ctx)
    except Exception as e:  # one failed scenario must not lose the others
        sec["error"] = f"{type(e).__name__}: {e}"
        raw = {"title": mod.TITLE, "error": sec["error"], "traceback": traceback.format_exc()}
        log.error("scenario %d failed: %s", mod.ID, sec["error"])
        log.debug("%s", traceback.format_exc())
    sec["elapsed_s"] = time.perf_counter() - t0
    sec["loadavg"] = [load_before, _loadavg()]
    return sec, raw
