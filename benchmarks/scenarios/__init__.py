"""The scenarios of the comparison report, one module each.

A scenario module defines:

    ID: int                      its number in the report and on --scenarios
    NAME: str                    its short name, also accepted by --scenarios
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

REGISTRY: dict[int, tuple[str, str]] = {
    1: ("uncontended", "one thread: read all vitals, 3-field clamped write"),
    2: ("threads", "Python threads: 1 writer + k readers"),
    3: ("native", "native nogil readers: seqlock vs pthread mutex / rwlock"),
    4: ("publish", "publish cost against state size"),
    5: ("end_to_end", "over HTTP: loop ticks/s and requests/s against clients"),
    6: ("loop", "the runtime loop flat out: ticks/s, tick latency, persistence"),
    7: ("shm", "readers in other processes: SharedVitals/SharedBytes vs shared_memory, Manager, pipe"),
    8: ("serving", "/status and /vitals req/s: one process, --workers N, uvicorn, granian"),
    9: ("soak", "16 clients, good and hostile requests: server memory and losses"),
    10: ("redis_bridge", "Redis bridge: versions mirrored/s, follower lag and req/s"),
}
"""Scenario number -> (module name in this package, one-line description)."""


@dataclasses.dataclass
class Context:
    """What every scenario gets: the mode, where to write, who we are on, its options."""

    quick: bool
    out: Path                 # the report folder (exists)
    root: Path                # the repository root
    machine: dict[str, Any]   # machine.machine_info()
    caption: str              # one line: machine + Python, for chart captions
    verbose: bool = False
    log: logging.Logger = dataclasses.field(
        default_factory=lambda: logging.getLogger("benchmarks"))
    # Scenario 2's options (None: the mode's default); see `python -m benchmarks --help`.
    readers: list[int] | None = None
    write_rate: float = 0.0
    rounds: int | None = None
    # Scenario 5's loop tick interval.
    tick_interval: float = 0.001


def resolve(token: str) -> int:
    """A scenario's number from its number or name ("3", "native")."""
    token = token.strip()
    if token.isdigit() and int(token) in REGISTRY:
        return int(token)
    for number, (name, _) in REGISTRY.items():
        if token == name:
            return number
    raise LookupError(f"no scenario {token!r}; known: "
                      + ", ".join(f"{n} ({name})" for n, (name, _) in REGISTRY.items()))


def load(number: int) -> ModuleType:
    return importlib.import_module(f"{__name__}.{REGISTRY[number][0]}")
