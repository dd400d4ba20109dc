"""The report folder: report.md, results.json, and the docs page built from them.

`render` assembles report.md from the machine facts and every scenario's
section; `write_json` writes the raw figures; `update_docs` copies the
generated part of a report into docs/benchmarks.md (between the
``<!-- report:begin -->`` / ``<!-- report:end -->`` markers) and its charts into
docs/benchmarks/ (``python -m benchmarks --docs``).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from pathlib import Path
from typing import Any

from .formatting import table

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
          "total_s", "estimate_s", "charts_note"}
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
