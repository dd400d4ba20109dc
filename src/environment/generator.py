"""`EventGenerator`: the default environment, random events from a seedable RNG.

The original project's generator: each event's type is drawn with the weights
`DEFAULT_WEIGHTS` (noise 0.4, decay 0.3, recovery 0.2, shock 0.05, idle 0.05)
and its intensity uniformly from `INTENSITY_RANGES` (noise [-0.3, 0.3], decay
[-0.5, 0], recovery [0, 0.5], shock [-1, 1], idle 0).  Two ways to use it:

- inside the loop (``run_loop(..., generator=EventGenerator(seed=1))``): each
  tick the loop asks `events` for that tick's batch (`rate` events per tick on
  average).  Only the loop thread touches the RNG, so a seed gives the same
  run every time (with an injected clock, the same numbers too);
- as a producer thread, like the original's ``generator_cli`` (one event every
  5 s): ``threading.Thread(target=gen.run, args=(queue, stop_event)).start()``
  pushes into an `EventQueue` until `stop_event` is set.

An instance is not thread-safe: one thread draws from it.
"""

from __future__ import annotations

import bisect
import itertools
import random
import threading
import time
from collections.abc import Callable, Mapping

from src.validation import is_finite_number

from .event import Event, check_event_type
from .event_queue import EventQueue

__all__ = ["EventGenerator", "DEFAULT_WEIGHTS", "INTENSITY_RANGES"]

DEFAULT_WEIGHTS: Mapping[str, float] = {"noise": 0.4, "decay": 0.3, "recovery": 0.2,
                                        "shock": 0.05, "idle": 0.05}
INTENSITY_RANGES: Mapping[str, tuple[float, float]] = {
    "noise": (-0.3, 0.3), "decay": (-0.5, 0.0), "recovery": (0.0, 0.5),
    "shock": (-1.0, 1.0), "idle": (0.0, 0.0)}


class EventGenerator:
    """Random events; ``EventGenerator(seed=42)`` always produces the same sequence.

    `rate` (>= 0, default 1.0) is the mean number of events `events()` returns
    per call: ``floor(rate)``, plus one more with probability ``rate -
    floor(rate)``.  `weights` maps event types to non-negative weights (default
    `DEFAULT_WEIGHTS`); a type without an entry in `INTENSITY_RANGES` gets
    intensities in [-1, 1].  `rng` replaces the internal ``random.Random(seed)``.
    """

    def __init__(self, seed: int | None = None, *, rate: float = 1.0,
                 weights: Mapping[str, float] | None = None,
                 rng: random.Random | None = None) -> None:
        if not is_finite_number(rate) or rate < 0:
            raise ValueError(f"rate must be a finite number >= 0, got {rate!r}")
        w = dict(DEFAULT_WEIGHTS if weights is None else weights)
        for t, x in w.items():
            check_event_type(t)
            if not is_finite_number(x) or x < 0:
                raise ValueError(f"weights[{t!r}] must be a finite number >= 0, got {x!r}")
        if not w or sum(w.values()) <= 0:
            raise ValueError(f"weights must contain a positive weight, got {w!r}")
        self._seed = seed
        self._rng = random.Random(seed) if rng is None else rng
        self._rate = float(rate)
        self._types = tuple(w)
        self._cum = tuple(itertools.accumulate(w.values()))
        self._ranges = tuple(INTENSITY_RANGES.get(t, (-1.0, 1.0)) for t in self._types)

    @property
    def seed(self) -> int | None:
        return self._seed

    @property
    def rate(self) -> float:
        return self._rate

    def generate(self, timestamp: float | None = None) -> Event:
        """One event, stamped `timestamp` (default ``time.time()``)."""
        rng = self._rng
        i = bisect.bisect_right(self._cum, rng.random() * self._cum[-1])
        i = min(i, len(self._types) - 1)
        lo, hi = self._ranges[i]
        intensity = lo + (hi - lo) * rng.random() if hi > lo else lo
        return Event(self._types[i], intensity, time.time() if timestamp is None else timestamp)

    def events(self, timestamp: float | None = None) -> list[Event]:
        """One tick's batch: `rate` events on average, all stamped `timestamp`."""
        n = int(self._rate)
        frac = self._rate - n
        if frac and self._rng.random() < frac:
            n += 1
        return [self.generate(timestamp) for _ in range(n)]

    def run(self, queue: EventQueue, stop_event: threading.Event, interval: float = 5.0,
            *, clock: Callable[[], float] = time.time) -> int:
        """Push one event into `queue` every `interval` seconds until `stop_event` is set.

        The body of a producer thread; returns the number of events pushed
        (dropped ones not included).  Waits on `stop_event`, so it ends within
        one interval of the stop.
        """
        if not is_finite_number(interval) or interval <= 0:
            raise ValueError(f"interval must be a finite number > 0, got {interval!r}")
        pushed = 0
        while not stop_event.wait(interval):
            pushed += queue.push(self.generate(clock()))
        return pushed

    def __repr__(self) -> str:
        return f"<EventGenerator seed={self._seed!r} rate={self._rate:g}>"
