"""The report folder: machine facts, peers, Markdown, results.json, and the docs page.

`python -m benchmarks` calls `machine_info`, `peers`, then each scenario, then
`write`.  `update_docs` copies the generated part of a report into
docs/benchmarks.md (between the ``<!-- report:begin -->`` / ``<!-- report:end -->``
markers) and its charts into docs/benchmarks/ (``python -m benchmarks --docs``).
"""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any, Iterable, Sequence

# The peers of the bench extra, and what each is for.
PEERS = {
    "readerwriterlock": "scenarios 1-2: RW locks (fair, reader-priority)",
    "cereggii": "scenarios 1-2: AtomicRef + tuple",
    "immutables": "scenario 4: HAMT Map",
    "pyrsistent": "scenario 4: pvector",
    "pytest-benchmark": "scenario 1: pytest-benchmark JSON",
    "matplotlib": "charts",
}
MISSING_HINT = "missing: not installed (pip install -e '.[bench]')"
MISSING_HINT_CEREGGII = ("missing: not installed (it is in the bench extra on CPython; "
                         "where pip cannot install it, it is not installable here)")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("model name", "Model", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git(root: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def gil_state() -> tuple[str, bool]:
    """("GIL build" | "free-threaded build", GIL enabled right now)."""
    ft = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
    enabled = sys._is_gil_enabled() if hasattr(sys, "_is_gil_enabled") else True
    return ("free-threaded build" if ft else "GIL build"), enabled


def machine_info(root: Path) -> dict[str, Any]:
    import csnapshot

    build, gil = gil_state()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    commit = _git(root, "rev-parse", "--short", "HEAD")
    dirty = _git(root, "status", "--porcelain", "--untracked-files=no")
    return {
        "cpu_model": _cpu_model(),
        "cpus": os.cpu_count(),
        "cpus_usable": usable,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "python_full": sys.version.replace("\n", " "),
        "implementation": platform.python_implementation(),
        "build": build,
        "gil_enabled": gil,
        "executable": sys.executable,
        "csnapshot": f"{csnapshot.__version__} ({csnapshot.IMPLEMENTATION})",
        "commit": (commit + (" + local changes" if dirty else "")) if commit else None,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "loadavg_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def caption(m: dict[str, Any], quick: bool) -> str:
    gil = "GIL enabled" if m["gil_enabled"] else "GIL disabled"
    return (f"{m['cpu_model']}, {m['cpus']} CPUs; {m['implementation']} {m['python']} "
            f"({m['build']}, {gil}); {m['platform']}; {m['date']}"
            + ("; quick mode (short runs, indicative only)" if quick else ""))


def peers() -> dict[str, dict[str, Any]]:
    """{distribution: {"version": str | None, "status": str, "used_for": str}}."""
    out = {}
    for dist, used_for in PEERS.items():
        try:
            version = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            version = None
        status = (f"found {version}" if version else
                  MISSING_HINT_CEREGGII if dist == "cereggii" else MISSING_HINT)
        out[dist] = {"version": version, "status": status, "used_for": used_for}
    return out


# ---- formatting helpers shared by the scenarios ----------------------------

def median(xs: Sequence[float]) -> float:
    xs = sorted(x for x in xs if x == x)
    if not xs:
        return math.nan
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def num(x: float, digits: int = 3) -> str:
    """A compact human number: 1,234 / 12.3 / 0.0456 / 12.3 M."""
    if x is None or x != x:
        return "–"
    a = abs(x)
    if a >= 10_000_000:
        return f"{x / 1e6:,.1f} M"
    if a >= 100:
        return f"{x:,.0f}"
    if a == 0:
        return "0"
    return f"{x:.{digits}g}"


def rate(x: float) -> str:
    """Operations per second: 12.3 M, 456 k, 789."""
    if x is None or x != x:
        return "–"
    # Thresholds just below 1e6/1e3: 999,700 is "1 M", not "1e+03 k".
    if x >= 999.5e3:
        return f"{x / 1e6:.3g} M"
    if x >= 999.5:
        return f"{x / 1e3:.3g} k"
    return f"{x:.3g}"


def spread(lo: float, hi: float, fmt=num) -> str:
    return f"[{fmt(lo)}–{fmt(hi)}]"


def ratio(x: float, ref: float) -> str:
    if x != x or ref != ref or not ref:
        return "–"
    r = x / ref
    return f"{r:.2g}×" if r < 0.1 else f"{r:.2f}×" if r < 100 else f"{r:,.0f}×"


def table(header: Sequence[str], rows: Iterable[Sequence[Any]], align: str | None = None) -> str:
    """A Markdown table; `align` is one character per column: l or r (default: l then r)."""
    align = align or "l" + "r" * (len(header) - 1)
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---" if a == "l" else "---:" for a in align) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
    return "\n".join(lines)


# ---- the report folder ------------------------------------------------------

def _jsonable(obj: Any) -> Any:
    if isinstance(obj, float) and (obj != obj or obj in (math.inf, -math.inf)):
        return None
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


def write_json(path: Path, data: Any) -> None:
    with open(path, "w") as f:
        json.dump(_jsonable(data), f, indent=1, sort_keys=False)


def render(run: dict[str, Any], sections: list[dict[str, Any]]) -> str:
    """The whole report.md.

    run: {"machine", "peers", "quick", "command", "scenarios_requested",
          "started", "total_s", "estimate_s", "charts_note"}
    sections: per scenario {"id", "title", "summary": [..], "markdown": str,
              "charts": [Chart], "elapsed_s", "estimate_s", "loadavg": [before, after],
              "error": str | None}
    """
    m = run["machine"]
    mode = "quick mode: short runs, figures are indicative only" if run["quick"] else "full mode"
    out = [
        "# csnapshot comparison report",
        "",
        f"Generated {m['date']} by `{run['command']}` ({mode}). "
        f"Total {run['total_s']:.0f} s (estimated {run['estimate_s']:.0f} s).",
        "",
        "Medians with their spread in brackets (min–max over repeats or rounds) and the "
        "ratio to csnapshot (× = this row / csnapshot; for rates, above 1 means faster "
        "than csnapshot, for costs, above 1 means slower).",
        "",
        "## Machine",
        "",
        table(["", ""], [
            ("CPU", f"{m['cpu_model']} ({m['cpus']} CPUs, {m['cpus_usable']} usable)"),
            ("OS", m["platform"]),
            ("Python", f"{m['implementation']} {m['python_full']}"),
            ("build / GIL", f"{m['build']}, GIL {'enabled' if m['gil_enabled'] else 'disabled'}"),
            ("csnapshot", m["csnapshot"] + (f", commit {m['commit']}" if m.get("commit") else "")),
            ("load average at start", " / ".join(f"{x:.2f}" for x in m["loadavg_start"] or [])),
        ], "ll"),
        "",
        "## Peers (the `bench` extra)",
        "",
        table(["package", "status", "used for"],
              [(k, v["status"], v["used_for"]) for k, v in run["peers"].items()], "lll"),
        "",
        "## Summary",
        "",
    ]
    for s in sections:
        out.append(f"**Scenario {s['id']}: {s['title']}**")
        out.append("")
        if s.get("error"):
            out.append(f"- FAILED: {s['error']}")
        out += [f"- {line}" for line in s.get("summary", [])]
        out.append("")
    for s in sections:
        out += [f"## Scenario {s['id']}: {s['title']}", ""]
        if s.get("error"):
            out += [f"**This scenario failed:** `{s['error']}`", ""]
        if s.get("markdown"):
            out += [s["markdown"], ""]
        for c in s.get("charts", []):
            out += [f"![{c.title}]({c.file})", "", f"*{c.title}. {c.caption}*", ""]
    if run.get("charts_note"):
        out += [f"Charts: {run['charts_note']}", ""]
    out += ["## Run", "",
            table(["scenario", "estimated s", "took s", "load average before → after"],
                  [(f"{s['id']}: {s['title']}", f"{s['estimate_s']:.0f}", f"{s['elapsed_s']:.1f}",
                    " → ".join(f"{la[0]:.2f}" for la in s.get("loadavg", []) if la))
                   for s in sections]),
            "",
            "The load average counts runnable threads on the whole machine: a value well above "
            "the CPU count while a scenario ran means a neighbour competed for the cores, and "
            "that scenario's absolute figures are suspect (ratios measured in the same round "
            "suffer less).",
            "",
            "Files: `report.md` (this), `results.json` (every raw figure), "
            "`scenario1-pytest-benchmark.json` (pytest-benchmark's JSON for the single-thread "
            "operations), `*.png` (charts).",
            "",
            "Reproduce: `pip install -e '.[bench]'`, then from the repository root "
            f"`python -m benchmarks{' --quick' if run['quick'] else ''} "
            f"--scenarios {','.join(map(str, run['scenarios_requested']))}`.",
            ""]
    return "\n".join(out)


# ---- docs/benchmarks.md ------------------------------------------------------

BEGIN, END = "<!-- report:begin -->", "<!-- report:end -->"


def update_docs(report_dir: Path, docs_md: Path, images_dir: Path | None) -> list[Path]:
    """Put the report's generated sections between the markers of `docs_md`.

    Copies the report's PNGs to `images_dir` (links are relative to docs_md)
    and returns the files written; with `images_dir=None` the charts are
    named but not linked.  The text outside the markers (how to reproduce, the
    reading of the results) is left alone.
    """
    text = docs_md.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{docs_md} has no {BEGIN} ... {END} block to fill")
    report = (report_dir / "report.md").read_text()
    written = []
    if images_dir is not None:
        images_dir.mkdir(parents=True, exist_ok=True)
        rel = os.path.relpath(images_dir, docs_md.parent)
        for png in sorted(report_dir.glob("*.png")):
            shutil.copyfile(png, images_dir / png.name)
            written.append(images_dir / png.name)
    # Demote the report's headings by one level and point images at the docs copy.
    body = report.split("\n", 1)[1]  # drop the "# csnapshot comparison report" title
    body = re.sub(r"^(#+) ", lambda mo: "#" + mo.group(1) + " ", body, flags=re.M)
    image = re.compile(r"!\[([^\]]*)\]\(([^)/]+\.png)\)")
    if images_dir is not None:
        body = image.sub(lambda mo: f"![{mo.group(1)}]({rel}/{mo.group(2)})", body)
    else:
        body = image.sub(lambda mo: f"(chart `{mo.group(2)}`: in the report folder; "
                                    "`python -m benchmarks --docs` copies it here)", body)
    # The report's own links (raw JSON) point into its folder, not next to this page.
    body = re.sub(r"\[`([^`]+\.json)`\]\(\1\)", r"`\1` (in the report folder)", body)
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    docs_md.write_text(f"{head}{BEGIN}\n\n{body.strip()}\n\n{END}{tail}")
    written.append(docs_md)
    return written
