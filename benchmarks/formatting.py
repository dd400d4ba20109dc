"""The one formatter: how every figure and table of the report is written.

Medians, compact numbers and rates, spreads ``[min–max]``, ratios ``1.23×`` and
Markdown tables; the scenarios build their sections from these alone.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence


def median(xs: Sequence[float]) -> float:
    """The median of the finite values (NaN, e.g. a skipped cell, is left out)."""
    xs = sorted(x for x in xs if x == x)
    if not xs:
        return math.nan
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def num(x: float | None, digits: int = 3) -> str:
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


def rate(x: float | None) -> str:
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
