"""The scenarios of the comparison report (issue #7), one module each.

A scenario module defines:

    ID: int                      its number in the report and on --scenarios
    TITLE: str                   one line
    def estimate(ctx) -> float   seconds it will take (printed before the run)
    def run(ctx) -> dict         measure; the dict must be JSON-serialisable (results.json)
    def summary(data) -> list[str]             headline bullets (Markdown)
    def markdown(data, ctx) -> str             its report section, tables included
    def charts(data, ctx) -> list[charts.Chart]   PNGs written under ctx.out

and is registered in `REGISTRY` below.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
from pathlib import Path
from types import ModuleType
from typing import Any

REGISTRY: dict[int, str] = {
    1: "sc1_uncontended",
    2: "sc2_threads",
    3: "sc3_native",
    4: "sc4_publish",
    5: "sc5_end_to_end",
}
"""Scenario number -> module name in this package."""

PLANNED: dict[int, str] = {}
"""Scenarios announced in the issue but not written yet."""


@dataclasses.dataclass
class Context:
    """What every scenario gets: the mode, where to write, who we are on."""

    quick: bool
    out: Path                 # the report folder (exists)
    root: Path                # the repository root
    machine: dict[str, Any]   # report.machine_info()
    caption: str              # one line: machine + Python, for chart captions
    verbose: bool = False
    log: logging.Logger = dataclasses.field(
        default_factory=lambda: logging.getLogger("benchmarks"))


def load(number: int) -> ModuleType:
    if number in PLANNED and number not in REGISTRY:
        raise LookupError(f"scenario {number} ({PLANNED[number]}) is not implemented yet")
    if number not in REGISTRY:
        raise LookupError(f"no scenario {number}; known: "
                          f"{', '.join(map(str, sorted(REGISTRY)))}")
    return importlib.import_module(f"{__name__}.{REGISTRY[number]}")
