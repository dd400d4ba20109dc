"""Stress-testing tools for csnapshot's seqlock record.

`stress()` runs N native reader threads that read a `Vitals` record without the
GIL while a writer keeps a checkable invariant (slot ``i`` holds ``k * (i+1)``
for a growing k), until a deadline, and returns what the readers saw::

    >>> from csnapshot.testing import stress
    >>> r = stress(readers=2, seconds=0.5)
    >>> r.torn
    0

The writer is either a native thread (``writer="native"``, flat out or at
``write_rate`` writes per second) or the calling Python thread writing through
the public API (``writer="python"``).

``sync="mutex"`` or ``sync="rwlock"`` runs the same native loops against a
copy of the data guarded by a ``pthread_mutex_t`` or a ``pthread_rwlock_t``
instead of the seqlock, for comparison (benchmarks/, scenario 3).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from . import _native_vitals
from ._schema import Field

__all__ = ["StressResult", "stress", "invariant_vitals", "SYNC_MODES"]

SYNC_MODES = ("seqlock", "mutex", "rwlock")
"""What `stress(sync=...)` accepts: csnapshot's seqlock and the two comparison locks."""


@dataclasses.dataclass(frozen=True)
class StressResult:
    """What the readers of one `stress()` run counted."""

    readers: int
    seconds: float        # the run's measured wall time (>= the requested seconds)
    writer: str
    reads: int            # consistent copies taken (all readers)
    retries: int          # optimistic attempts discarded because a write overlapped
    fallbacks: int        # reads that gave up spinning and took the writers' lock
    timeouts: int         # fallbacks that found the section open for the whole timeout
    torn: int             # copies that broke the invariant: must be 0
    changes: int          # reads that saw a newer version than the reader's previous read
    writes: int           # completed write sections (all writers)
    lost_writes: int      # writes not reflected in the final k: must be 0
    writers: int
    per_reader: tuple[int, ...]
    sync: str = "seqlock"  # "seqlock", or the comparison lock: "mutex" / "rwlock"

    @property
    def overlapped(self) -> bool:
        """True when readers observed writes while they were reading."""
        return self.writes > 0 and self.changes > 1

    def summary(self) -> str:
        rate = self.reads / self.seconds if self.seconds else 0.0
        who = f"{self.writers} {self.writer}" if self.writer == "native" else self.writer
        via = "" if self.sync == "seqlock" else f" ({self.sync})"
        return (f"{self.readers} native readers{via} + {who} writer(s), {self.seconds:.2f} s: "
                f"{self.reads:,} reads ({rate / 1e6:.1f} M/s), {self.writes:,} writes, "
                f"{self.changes:,} version changes seen, {self.retries:,} retries, "
                f"{self.fallbacks:,} fallbacks, {self.torn} torn, {self.lost_writes} lost writes")


def invariant_vitals(nfields: int = 8, layout: str = "classic") -> Any:
    """A native `Vitals` of `nfields` unbounded float fields, all 0.0, of `layout`."""
    if _native_vitals is None:
        raise RuntimeError("csnapshot.testing needs the compiled extension")
    return _native_vitals.Vitals([Field(f"f{i}") for i in range(nfields)], layout=layout)


def stress(readers: int = 2, seconds: float = 1.0, *, writer: str = "native",
           writers: int = 1, write_rate: float = 0.0, nfields: int = 8, vitals: Any = None,
           read_timeout: float = 5.0, sync: str = "seqlock", min_reads: int = 0,
           max_seconds: float | None = None) -> StressResult:
    """Run native nogil readers against a writer until `seconds` have passed.

    All the run's threads start together (each waits at a gate until the
    last has been started, and `seconds` counts from then), so on a small
    machine no early reader spins while the writer is still being started.
    The readers stop at the deadline, or later, once each has taken
    `min_reads` copies; the writers stop when the last reader has.  So a count
    a test asserts on is a stop condition rather than a hope about the
    machine's speed: on a slow or loaded machine (a sanitizer build, a busy CI
    box) the run just takes longer.  It never takes longer than `max_seconds`
    (default: ``max(60, 10 * seconds)``); a reader that has not got its reads
    by then is starved, and the result shows it.  `StressResult.seconds` is
    the run's measured wall time.

    readers: number of reader threads (each a native loop without the GIL).
    writer: ``"native"`` (a nogil thread), ``"python"`` (the calling thread,
        through `Vitals.write_tuple`) or ``"none"``.
    writers: number of native writer threads (``writer="native"`` only); they
        serialise on the record's writers' lock.
    write_rate: writes per second per writer; 0 means flat out.
    vitals: a native `Vitals` whose fields are all unbounded floats, of
        either layout (default: a new classic one with `nfields` fields); the
        loops use the record's own protocol (the latch's for
        ``layout="latch"``).
    read_timeout: how long a fallback read waits for a stalled writer.
    sync: ``"seqlock"`` (the record itself), or for comparison ``"mutex"`` /
        ``"rwlock"``: the same loops on a copy of the record's current values
        guarded by a pthread mutex / rwlock (readers take the read lock); the
        record is left unchanged, retries and fallbacks are 0.  Needs
        ``writer="native"`` or ``"none"``.
    """
    from . import _harness

    if isinstance(readers, bool) or not isinstance(readers, int) or readers < 0:
        raise ValueError(f"readers must be a non-negative int, got {readers!r}")
    if not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"seconds must be a positive number, got {seconds!r}")
    if writer not in ("native", "python", "none"):
        raise ValueError(f"writer must be 'native', 'python' or 'none', got {writer!r}")
    if isinstance(writers, bool) or not isinstance(writers, int) or writers < 1:
        raise ValueError(f"writers must be a positive int, got {writers!r}")
    if not (isinstance(write_rate, (int, float)) and write_rate >= 0):
        raise ValueError(f"write_rate must be >= 0 writes per second, got {write_rate!r}")
    if sync not in SYNC_MODES:
        raise ValueError(f"sync must be one of {', '.join(map(repr, SYNC_MODES))}, got {sync!r}")
    if isinstance(min_reads, bool) or not isinstance(min_reads, int) or min_reads < 0:
        raise ValueError(f"min_reads must be a non-negative int, got {min_reads!r}")
    if max_seconds is None:
        max_seconds = max(60.0, 10.0 * seconds)
    elif not (isinstance(max_seconds, (int, float)) and math.isfinite(max_seconds)
              and max_seconds >= seconds):
        raise ValueError(f"max_seconds must be a number >= seconds ({seconds!r}), "
                         f"got {max_seconds!r}")
    if sync != "seqlock" and writer == "python":
        raise ValueError("writer='python' writes through the Vitals API: it needs sync='seqlock'")
    if vitals is None:
        if not isinstance(nfields, int) or nfields < 1:
            raise ValueError(f"nfields must be a positive int, got {nfields!r}")
        vitals = invariant_vitals(nfields)
    elif _native_vitals is None or not isinstance(vitals, _native_vitals.Vitals):
        raise TypeError("stress() needs a native csnapshot Vitals record")
    elif any(f.kind is not float or f.min is not None or f.max is not None
             for f in vitals.fields):
        raise ValueError("stress() needs a record whose fields are all unbounded floats")
    k_before = vitals.read_tuple()[0]
    run = _harness.run
    totals, writes = run(vitals, readers, float(seconds), writer, writers,
                         float(write_rate), float(read_timeout), sync,
                         min_reads, float(max_seconds))
    total_writes = sum(writes)
    k_after = totals["k_after"] if sync != "seqlock" else vitals.read_tuple()[0]
    return StressResult(readers=readers, seconds=totals["elapsed"], writer=writer,
                        reads=totals["reads"], retries=totals["retries"],
                        fallbacks=totals["fallbacks"], timeouts=totals["timeouts"],
                        torn=totals["torn"], changes=totals["changes"], writes=total_writes,
                        lost_writes=int(total_writes - (k_after - k_before)),
                        writers=writers if writer == "native" else int(writer == "python"),
                        per_reader=tuple(totals["per_reader"]), sync=sync)
