"""The one timer of the benchmarks: seconds per call of a zero-argument callable.

Every single-thread figure (scenario 1's ns per call, scenario 4's µs per
publish) comes from `per_call`, so all of them share one loop overhead and one
garbage-collector policy.  The threaded scenarios count operations over a
wall-clock window instead; `percentile` turns their latency samples into p50/p99.
"""

from __future__ import annotations

import timeit
from typing import Callable, Sequence

# Calibration stops doubling here: a callable this cheap is timed with this many calls.
_MAX_NUMBER = 1 << 22


def per_call(fn: Callable[[], object], *, repeats: int, number: int | None = None,
             target: float = 0.05) -> list[float]:
    """Seconds per call of `fn`, one figure per repeat, the GC off while timing.

    With `number`, each repeat makes that many calls; without, the count is
    calibrated so that one repeat takes at least a quarter of `target` seconds
    (a cost that grows with the state then still gets one whole call per repeat).
    """
    timer = timeit.Timer(fn)  # timeit disables the GC around each repeat
    if number is None:
        number = _calibrate(timer, target)
    return [t / number for t in timer.repeat(repeat=repeats, number=number)]


def _calibrate(timer: timeit.Timer, target: float) -> int:
    number = 1
    while True:
        elapsed = timer.timeit(number)
        if elapsed >= target / 4 or number >= _MAX_NUMBER:
            return number
        number *= 2 if elapsed == 0 else max(2, min(16, int(target / 4 / elapsed) + 1))


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """The `p` quantile (0..1) of an already sorted sample, NaN when it is empty."""
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(p * len(sorted_values)))]
