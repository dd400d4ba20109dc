"""PNG charts for the comparison report (matplotlib, Agg backend: no display needed).

Two shapes cover the report's charts: `line_chart` (one or more panels of
series against a numeric x: reads/s against reader threads, publish cost
against state size, ticks/s and requests/s against HTTP clients) and
`bar_chart` (one value per implementation, per panel).  Every figure carries
axis labels with units, a legend, and a caption naming the machine and Python.
"""

from __future__ import annotations

import dataclasses
import math
import textwrap
from pathlib import Path
from typing import Sequence


def available() -> str | None:
    """None when charts can be drawn, else why not (e.g. matplotlib is missing)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return "matplotlib is not installed (pip install '.[bench]')"
    return None


def _plt():
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    return plt


@dataclasses.dataclass
class Series:
    label: str
    x: Sequence[float]
    y: Sequence[float]          # medians; NaN = not measured
    lo: Sequence[float] | None = None   # spread (e.g. min and max of repeats)
    hi: Sequence[float] | None = None
    style: str = "-o"
    emphasis: bool = False      # csnapshot's own rows: a thicker line
    color: str | None = None    # None: the next colour of the cycle


@dataclasses.dataclass
class Panel:
    title: str
    xlabel: str
    ylabel: str
    series: list[Series]
    xlog: bool = False
    ylog: bool = True
    xticks: Sequence[float] | None = None   # e.g. the reader counts


@dataclasses.dataclass
class Chart:
    """A PNG written under the report folder, and what the report says about it."""

    file: str       # name inside the report folder
    title: str
    caption: str


def _caption(fig, caption: str) -> None:
    fig.text(0.01, 0.005, "\n".join(textwrap.wrap(caption, 150)), fontsize=7, color="#444",
             ha="left", va="bottom")


CSNAPSHOT_COLOR = "#d62728"
# matplotlib's tab10 without its red, which is csnapshot's.
OTHER_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                "#bcbd22", "#17becf", "#000000"]


def line_chart(path: Path, title: str, panels: list[Panel], caption: str,
               ncols: int | None = None, shared_legend: bool = False) -> None:
    """Panels side by side; `shared_legend`: one legend right of the panels
    (when every panel shows the same series), else one inside each panel."""
    plt = _plt()
    ncols = ncols or len(panels)
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 4.2 * nrows + 0.6),
                             squeeze=False)
    for ax, panel in zip(axes.flat, panels):
        ax.set_prop_cycle(color=OTHER_COLORS)
        for s in panel.series:
            pts = [(x, y, (s.lo or [math.nan] * len(s.x))[i], (s.hi or [math.nan] * len(s.x))[i])
                   for i, (x, y) in enumerate(zip(s.x, s.y))
                   if y is not None and not math.isnan(y) and (not panel.ylog or y > 0)]
            if not pts:
                continue
            xs, ys, los, his = zip(*pts)
            lw = 2.8 if s.emphasis else 1.4
            kw = {"color": s.color} if s.color else {}
            if s.lo is not None and s.hi is not None:
                err = [[max(0.0, y - lo) if not math.isnan(lo) else 0.0 for y, lo in zip(ys, los)],
                       [max(0.0, hi - y) if not math.isnan(hi) else 0.0 for y, hi in zip(ys, his)]]
                ax.errorbar(xs, ys, yerr=err, fmt=s.style, label=s.label, linewidth=lw,
                            markersize=4, capsize=2.5, elinewidth=0.8, zorder=3 if s.emphasis else 2,
                            **kw)
            else:
                ax.plot(xs, ys, s.style, label=s.label, linewidth=lw, markersize=4, **kw)
        if panel.xlog:
            ax.set_xscale("log")
        if panel.ylog:
            ax.set_yscale("log")
        if panel.xticks:
            from matplotlib.ticker import NullFormatter, NullLocator
            ax.xaxis.set_minor_locator(NullLocator())
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_xticks(list(panel.xticks))
            ax.set_xticklabels([f"{t:g}" for t in panel.xticks])
        ax.set_title(panel.title, fontsize=10)
        ax.set_xlabel(panel.xlabel)
        ax.set_ylabel(panel.ylabel)
        ax.grid(True, which="major", alpha=0.35)
        ax.grid(True, which="minor", alpha=0.12)
        if ax.get_legend_handles_labels()[0] and not shared_legend:
            ax.legend(fontsize=7, loc="best", framealpha=0.8)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=12)
    _caption(fig, caption)
    fig.tight_layout(rect=(0, 0.05, 1, 0.96))
    if shared_legend:
        handles, labels = axes.flat[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.55), fontsize=8,
                   title="legend", title_fontsize=8)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


@dataclasses.dataclass
class Bars:
    title: str
    xlabel: str
    labels: list[str]           # one bar per label (top to bottom)
    values: list[float]         # medians; NaN = not measured
    lo: list[float] | None = None
    hi: list[float] | None = None
    highlight: str | None = None  # the label drawn in a different colour
    xlog: bool = True


def bar_chart(path: Path, title: str, panels: list[Bars], caption: str,
              legend: bool = True) -> None:
    """Horizontal bars, one panel per operation; every panel must list the same
    labels in the same order (they share the y axis).  `legend`: the colour key
    csnapshot / alternatives (off when every bar is csnapshot's)."""
    plt = _plt()
    n = max(len(p.labels) for p in panels)
    fig, axes = plt.subplots(1, len(panels), figsize=(5.6 * len(panels), 0.34 * n + 2.0),
                             squeeze=False, sharey=True)
    for ax, p in zip(axes.flat, panels):
        ys = list(range(len(p.labels)))[::-1]
        vals = [v if v == v else 0.0 for v in p.values]
        colors = [CSNAPSHOT_COLOR if lab == p.highlight else "#1f77b4" for lab in p.labels]
        err = None
        if p.lo is not None and p.hi is not None:
            err = [[max(0.0, v - lo) for v, lo in zip(vals, p.lo)],
                   [max(0.0, hi - v) for v, hi in zip(vals, p.hi)]]
        ax.barh(ys, vals, xerr=err, color=colors, capsize=2, error_kw={"elinewidth": 0.8})
        ax.set_yticks(ys)
        ax.set_yticklabels(p.labels, fontsize=8)
        if p.xlog:
            ax.set_xscale("log")
        ax.set_title(p.title, fontsize=10)
        ax.set_xlabel(p.xlabel)
        ax.grid(True, axis="x", which="both", alpha=0.3)
        for y, v in zip(ys, p.values):
            if v == v:
                ax.annotate(f"{v:,.0f}", (v, y), xytext=(3, 0), textcoords="offset points",
                            va="center", fontsize=7)
    # A legend for the colours: csnapshot against everyone else.
    from matplotlib.patches import Patch
    fig.suptitle(title, fontsize=12)
    _caption(fig, caption)
    fig.tight_layout(rect=(0, 0.06, 1, 0.95))
    if legend:
        fig.legend(handles=[Patch(color=CSNAPSHOT_COLOR, label=panels[0].highlight or "csnapshot"),
                            Patch(color="#1f77b4", label="alternatives")],
                   fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
