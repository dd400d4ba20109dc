"""Scenario 4: publish cost against state size, 10^2..10^6.

Two measurements, both "change one thing, then publish a snapshot", median µs
per operation over repeats with the GC off (`timing.per_call`):
- containers (containers.py): csnapshot's SnapshotLog and CowDict against
  `list(old)`, `copy.deepcopy`, `dict.copy()`, `immutables.Map` and
  `pyrsistent.pvector`;
- the Life state (life_state.py): `StateSnapshotManager.update_snapshot` after
  one memory append, against the same done with deep copies, list/dict copies,
  immutables and pyrsistent.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ... import formatting as F
from ...charts import CSNAPSHOT_COLOR, Chart, Panel, Series, line_chart
from ...timing import per_call
from . import containers as BP
from . import life_state as BS

ID = 4
NAME = "publish"
TITLE = "publish cost against state size"

# The container cases, grouped: (group title, csnapshot's row, [rows])
LOG, DICT, READ = "memory log: append one entry, then publish", \
    "dict of N keys: change one key, then publish", "readers, and the publish alone"
GROUPS = {
    LOG: (BP.bench_snapshotlog, [BP.bench_snapshotlog, BP.bench_list_copy, BP.bench_deepcopy,
                                 BP.bench_pvector]),
    DICT: (BP.bench_cowdict, [BP.bench_cowdict, BP.bench_dict_copy, BP.bench_immutables_map]),
    READ: (None, [BP.bench_publish_only, BP.bench_latest, BP.bench_view_index,
                  BP.bench_view_last10]),
}
STATE = "the Life state: one memory append, then publish the whole state"
STATE_PUBLISH = [BS.bench_update_snapshot, BS.bench_deepcopy, BS.bench_shallow_copies,
                 BS.bench_immutables, BS.bench_pvector]


def _sizes(quick: bool) -> tuple[int, ...]:
    return (100, 1_000, 10_000, 100_000) if quick else (100, 1_000, 10_000, 100_000, 1_000_000)


def estimate(ctx) -> float:
    sizes = _sizes(ctx.quick)
    cells = (len(BP.CASES) + len(BS.CASES)) * len(sizes)
    per_cell = 0.08 if ctx.quick else 0.3
    big = sum(n for n in sizes if n >= 100_000) / 1e6  # building and copying big states
    return cells * per_cell + big * 20


def _settings(quick: bool) -> tuple[int, float]:
    """(repeats, seconds per repeat)."""
    return (3, 0.02) if quick else (7, 0.05)


def _measure(cases, n: int, repeats: int, target: float, ctx) -> dict[str, dict[str, Any]]:
    """{case name: {median_us, min_us, max_us} or {skipped: why}} at size n."""
    out = {}
    for case in cases:
        ctx.log.debug("  N=%9s %s ...", f"{n:,}", case.name)
        step = case.factory(n)
        if isinstance(step, str):
            out[case.name] = {"skipped": step}
            continue
        times = per_call(step, repeats=repeats, target=target)
        del step  # a big state must go before the next case builds its own
        out[case.name] = {"median_us": F.median(times) * 1e6, "min_us": min(times) * 1e6,
                          "max_us": max(times) * 1e6}
    return out


def run(ctx) -> dict[str, Any]:
    sizes = _sizes(ctx.quick)
    repeats, target = _settings(ctx.quick)
    ctx.log.info("  sizes %s; containers (%d cases) and the Life state (%d cases) per size",
                 ", ".join(f"{n:,}" for n in sizes), len(BP.CASES), len(BS.CASES))
    pub: dict[str, list] = {c.name: [] for c in BP.CASES}
    state: dict[str, list] = {c.name: [] for c in BS.CASES}
    for n in sizes:
        for name, cell in _measure(BP.CASES, n, repeats, target, ctx).items():
            pub[name].append(cell)
        ctx.log.debug("  N=%9s: building the Life state's %s entries ...", f"{n:,}", f"{n:,}")
        BS.entries(n)
        for name, cell in _measure(BS.CASES, n, repeats, target, ctx).items():
            state[name].append(cell)
    by_factory = {c.factory.__name__: c.name for c in BP.CASES}
    state_names = {c.factory.__name__: c.name for c in BS.CASES}
    groups = {}
    for title, (ref, rows) in GROUPS.items():
        groups[title] = {"ref": by_factory[ref.__name__] if ref else None,
                         "rows": {by_factory[f.__name__]: pub[by_factory[f.__name__]]
                                  for f in rows}}
    groups[STATE] = {"ref": state_names[BS.bench_update_snapshot.__name__], "rows": state,
                     "publish_rows": [state_names[f.__name__] for f in STATE_PUBLISH]}
    return {"sizes": list(sizes), "repeats": repeats, "target_s": target, "groups": groups}


def _med(cell: dict) -> float:
    return cell.get("median_us", math.nan)


def summary(data: dict[str, Any]) -> list[str]:
    sizes, g = data["sizes"], data["groups"]
    big = sizes[-1]
    lines = []
    for title in (LOG, DICT, STATE):
        rows, ref = g[title]["rows"], g[title]["ref"]
        r0, r1 = _med(rows[ref][0]), _med(rows[ref][-1])
        others = []
        for name, cells in rows.items():
            if name == ref or name not in g[title].get("publish_rows", rows):
                continue
            c = cells[-1]
            others.append(f"{_short(name)} {F.num(_med(c))} µs" if "median_us" in c
                          else f"{_short(name)} {c['skipped']}")
        lines.append(f"{title}, N = {big:,}: csnapshot ({_short(ref)}) {F.num(r1)} µs "
                     f"({F.num(r1 / r0)}× its cost at N = {sizes[0]:,}); " + "; ".join(others))
    return lines


def _short(name: str) -> str:
    return name.replace("`", "").replace(" + publish", "").replace("dict of N keys: ", "")


# Chart labels: short enough for a legend inside the panel.
LABEL = {
    BP.bench_snapshotlog: "csnapshot SnapshotLog", BP.bench_list_copy: "list(old) copy",
    BP.bench_deepcopy: "copy.deepcopy", BP.bench_pvector: "pyrsistent pvector",
    BP.bench_cowdict: "csnapshot CowDict", BP.bench_dict_copy: "dict.copy()",
    BP.bench_immutables_map: "immutables Map",
    BS.bench_update_snapshot: "csnapshot update_snapshot", BS.bench_deepcopy: "copy.deepcopy",
    BS.bench_shallow_copies: "list/dict copies", BS.bench_immutables: "immutables Map",
    BS.bench_pvector: "pyrsistent pvector",
}


def _table(title: str, g: dict[str, Any], sizes: list[int]) -> str:
    rows_out = []
    ref = g["ref"]
    for name, cells in g["rows"].items():
        row = [f"**{name}**" if name == ref else name]
        for i, c in enumerate(cells):
            if "median_us" not in c:
                row.append(c["skipped"])
                continue
            cell = f"{F.num(_med(c))} {F.spread(c['min_us'], c['max_us'])}"
            if ref and name != ref:
                cell += f" {F.ratio(_med(c), _med(g['rows'][ref][i]))}"
            row.append(cell)
        first, last = cells[0], cells[-1]
        growth = (f"{_med(last) / _med(first):,.2f}" if "median_us" in first and "median_us" in last
                  else "–")
        rows_out.append(row + [growth])
    head = ["operation (µs)", *[f"N={n:,}" for n in sizes], f"×(N={sizes[-1]:,} / N={sizes[0]:,})"]
    return "\n".join([f"**{title}**", "", F.table(head, rows_out)])


def markdown(data: dict[str, Any], ctx) -> str:
    sizes, g = data["sizes"], data["groups"]
    out = [f"µs per operation: median [min–max] of {data['repeats']} repeats of "
           f"~{data['target_s'] * 1000:.0f} ms each, GC off; × = ratio to csnapshot's row "
           "(bold; above 1 = costlier than csnapshot). The last column is the growth from the "
           "smallest to the largest state (1.0 = the cost does not grow with the state). "
           "Entries are 5-field namedtuples; every publish goes through the same "
           "`PublishCell.publish`. Deep copies are skipped above 10,000 entries (minutes per "
           "size).", ""]
    for title in (LOG, DICT, READ, STATE):
        out += [_table(title, g[title], sizes), ""]
    return "\n".join(out)


def charts(data: dict[str, Any], ctx) -> list[Chart]:
    sizes, g = data["sizes"], data["groups"]

    labels = {c.name: LABEL[c.factory] for c in (*BP.CASES, *BS.CASES) if c.factory in LABEL}

    def series(title: str, names: list[str]) -> list[Series]:
        out = []
        for name in names:
            cells = g[title]["rows"][name]
            ref = name == g[title]["ref"]
            out.append(Series(labels.get(name, _short(name)), sizes, [_med(c) for c in cells],
                              [c.get("min_us", math.nan) for c in cells],
                              [c.get("max_us", math.nan) for c in cells],
                              emphasis=ref, color=CSNAPSHOT_COLOR if ref else None))
        return out

    xlabel = "state size N (entries or keys, log scale)"
    ylabel = "µs per change + publish (log scale)"
    panels = [Panel(LOG, xlabel, ylabel, series(LOG, list(g[LOG]["rows"])), xlog=True),
              Panel(DICT, xlabel, ylabel, series(DICT, list(g[DICT]["rows"])), xlog=True),
              Panel("Life state: memory append + publish", "memory entries N (log scale)", ylabel,
                    series(STATE, g[STATE]["publish_rows"]), xlog=True)]
    path = Path(ctx.out) / "scenario4-publish-cost.png"
    title = "Scenario 4: publish cost against state size"
    line_chart(path, title, panels, ctx.caption)
    return [Chart(path.name, title + " (log-log)", ctx.caption)]
