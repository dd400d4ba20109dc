"""Scenario 1: uncontended read of all vitals and a 3-field clamped write, one thread.

Two measurements of the same operations (`OPS` on every scheme of
benchmarks/schemes.py):
- `timing.per_call`: median ns per call over repeats, GC off;
- pytest-benchmark, in a subprocess (benchmarks/test_bench_vitals.py), whose
  JSON lands in the report folder as scenario1-pytest-benchmark.json.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .. import formatting as F
from .. import schemes
from ..charts import Bars, Chart, bar_chart
from ..timing import per_call

ID = 1
NAME = "uncontended"
TITLE = "uncontended read and 3-field clamped write (one thread)"
PYTEST_JSON = "scenario1-pytest-benchmark.json"
REF = schemes.CSnapshot.name

# Operation name -> a function of a scheme returning the zero-argument call to time.
OPS = {
    "read_tuple": lambda s: s.read_tuple,
    "read_dict": lambda s: s.read_dict,
    "write3 (positional)": lambda s: (lambda w=s.write3: w(50.0, 0.5, 0.5)),
    "write3 (keywords)": lambda s: (s.write3_kw_op() if hasattr(s, "write3_kw_op")
                                    else (lambda w=s.write3: w(50.0, 0.5, 0.5))),
    "delta3": lambda s: (lambda d=s.delta3: d(0.0)),
}


def all_schemes() -> tuple[list[type], list[str]]:
    """(every scheme class available here, the peers that are missing)."""
    extra, missing = schemes.optional_schemes()
    return schemes.BASE_SCHEMES + extra, missing


def _settings(quick: bool) -> dict[str, Any]:
    if quick:
        return {"repeats": 5, "number": 20_000,
                # Rounds of >= 100 µs keep the raw JSON small (it stores every round).
                "pytest": ["--benchmark-max-time=0.01", "--benchmark-min-time=0.0001",
                           "--benchmark-min-rounds=3",
                           "--benchmark-warmup=off"]}
    return {"repeats": 9, "number": 100_000,
            "pytest": ["--benchmark-max-time=0.2", "--benchmark-min-time=0.0005",
                       "--benchmark-min-rounds=5",
                       "--benchmark-warmup=on"]}


def _schemes() -> int:
    return len(all_schemes()[0])


def estimate(ctx) -> float:
    s = _settings(ctx.quick)
    calls = s["repeats"] * s["number"] * len(OPS) * _schemes()
    timeit_s = calls * 650e-9  # ~650 ns per call on average over the schemes, with overhead
    pytest_s = 3 + len(OPS) * _schemes() * (0.05 if ctx.quick else 0.55)
    return timeit_s + pytest_s


def run(ctx) -> dict[str, Any]:
    s = _settings(ctx.quick)
    ctx.log.info("  timeit: %d repeats x %s calls per scheme and operation",
                 s["repeats"], f"{s['number']:,}")
    classes, missing = all_schemes()
    results: dict[str, dict[str, list[float]]] = {}
    for cls in classes:
        ctx.log.debug("  measuring %s ...", cls.name)
        scheme = cls()
        results[cls.name] = {op: [t * 1e9 for t in per_call(make(scheme), repeats=s["repeats"],
                                                               number=s["number"])]
                             for op, make in OPS.items()}
    data = {"results": results, "missing": missing, "python": sys.version.split()[0],
            "repeats": s["repeats"], "number": s["number"]}
    out: dict[str, Any] = {"timeit": data, "ops": list(OPS)}
    out["pytest_benchmark"] = _pytest_benchmark(ctx, s["pytest"])
    return out


def _pytest_benchmark(ctx, opts: list[str]) -> dict[str, Any]:
    try:
        import pytest_benchmark  # noqa: F401
    except ImportError:
        return {"error": "pytest-benchmark is not installed (pip install -e '.[bench]')"}
    path = ctx.out / PYTEST_JSON
    cmd = [sys.executable, "-m", "pytest", "benchmarks/test_bench_vitals.py", "--benchmark-only",
           f"--benchmark-json={path}", "-p", "no:cacheprovider", "-q",
           "--benchmark-disable-gc", "--benchmark-sort=name", *opts]
    ctx.log.debug("  pytest-benchmark: %s", " ".join(cmd[1:]))
    env = dict(os.environ, CSNAPSHOT_REQUIRE_NATIVE="1")
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=ctx.root, env=env, capture_output=True, text=True,
                              timeout=120 if ctx.quick else 400)
    except subprocess.TimeoutExpired:
        return {"error": "pytest-benchmark timed out", "command": cmd}
    res: dict[str, Any] = {"command": " ".join(["python", *cmd[1:]]).replace(str(ctx.out), "DIR"),
                           "returncode": proc.returncode,
                           "seconds": round(time.perf_counter() - t0, 1)}
    if proc.returncode != 0 or not path.exists():
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-15:]
        res["error"] = f"pytest exited {proc.returncode}: " + " / ".join(tail)
        return res
    with open(path) as f:
        raw = json.load(f)
    stats: dict[str, dict[str, dict[str, float]]] = {}
    for b in raw["benchmarks"]:
        op, param = b["params"]["op"], b["param"]
        # The test id is "<scheme name>-<op>" (scheme names may contain "-").
        name = (param[:-len(op) - 1] if param.endswith("-" + op) else
                param[len(op) + 1:] if param.startswith(op + "-") else param)
        st = b["stats"]
        stats.setdefault(name, {})[op] = {
            "median_ns": st["median"] * 1e9, "min_ns": st["min"] * 1e9,
            "max_ns": st["max"] * 1e9, "iqr_ns": st["iqr"] * 1e9, "rounds": st["rounds"]}
    res["stats"] = stats
    return res


def summary(data: dict[str, Any]) -> list[str]:
    res = data["timeit"]["results"]
    ref = res[REF]
    m = F.median
    lines = []
    # The best alternative that is actually consistent (the plain object tears).
    others = [n for n in res if n not in (REF, schemes.Plain.name)]
    for op, what in (("read_tuple", "read of all 8 vitals (`read_tuple`)"),
                     ("write3 (positional)", "3-field clamped write")):
        best = min(others, key=lambda n: m(res[n][op]))
        lines.append(f"{what}: csnapshot {F.num(m(ref[op]))} ns; best consistent alternative "
                     f"{best} {F.num(m(res[best][op]))} ns ({F.ratio(m(res[best][op]), m(ref[op]))}"
                     f" csnapshot's cost); `threading.Lock` {F.num(m(res[schemes.Locked.name][op]))}"
                     f" ns; plain object, no sync {F.num(m(res[schemes.Plain.name][op]))} ns")
    for peer in data["timeit"]["missing"]:
        lines.append(f"{peer}: missing (not installed), its rows are absent")
    pb = data.get("pytest_benchmark", {})
    if pb.get("error"):
        lines.append(f"pytest-benchmark view: not produced ({pb['error'][:200]})")
    return lines


def markdown(data: dict[str, Any], ctx) -> str:
    t = data["timeit"]
    res, ops = t["results"], data["ops"]
    ref = res[REF]
    m = F.median
    rows = []
    for name, per in res.items():
        cells = [f"{F.num(m(per[op]))} {F.spread(min(per[op]), max(per[op]))} "
                 f"{F.ratio(m(per[op]), m(ref[op]))}" for op in ops]
        rows.append([f"**{name}**" if name == REF else name, *cells])
    for peer in t["missing"]:
        rows.append([peer, *(["missing (not installed)"] * len(ops))])
    out = [f"`timing.per_call` (timeit), ns per call: median [min–max] of {t['repeats']} repeats × "
           f"{t['number']:,} calls, GC off; × = ratio to csnapshot (below 1 = cheaper than "
           "csnapshot). `write3 (keywords)` is `Vitals.write(energy=..., ...)`; for the other "
           "schemes it is the same positional call. Every row includes one Python-level call "
           "(~20 ns).",
           "",
           F.table(["scheme", *ops], rows)]
    pb = data.get("pytest_benchmark", {})
    out.append("")
    if pb.get("error"):
        out.append(f"pytest-benchmark view: not produced: {pb['error']}")
    else:
        stats = pb["stats"]
        prow = []
        for name, per in stats.items():
            prow.append([name, *[f"{F.num(per[op]['median_ns'])} (IQR {F.num(per[op]['iqr_ns'])})"
                                 if op in per else "–" for op in ops]])
        out += [f"The same operations through pytest-benchmark (`{pb['command']}`, "
                f"{pb['seconds']} s): median ns (interquartile range). Raw: "
                f"[`{PYTEST_JSON}`]({PYTEST_JSON}).",
                "",
                F.table(["scheme", *ops], prow)]
    return "\n".join(out)


def charts(data: dict[str, Any], ctx) -> list[Chart]:
    res = data["timeit"]["results"]
    m = F.median
    panels = []
    names = sorted(res, key=lambda n: m(res[n]["read_tuple"]))  # one order for both panels
    for op, label in (("read_tuple", "read all 8 vitals (read_tuple)"),
                      ("write3 (positional)", "3-field clamped write")):
        panels.append(Bars(title=label, xlabel="ns per call (median, log scale; bars: min–max)",
                           labels=names, values=[m(res[n][op]) for n in names],
                           lo=[min(res[n][op]) for n in names],
                           hi=[max(res[n][op]) for n in names], highlight=REF))
    path = Path(ctx.out) / "scenario1-uncontended.png"
    title = "Scenario 1: uncontended read and write, one thread"
    bar_chart(path, title, panels, ctx.caption)
    return [Chart(path.name, title, ctx.caption)]
