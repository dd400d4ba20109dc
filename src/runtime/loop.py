"""`run_loop`: the runtime loop, the one thread that writes Life's state.

One tick (the original project's, ``src/runtime/loop.py``; details in
docs/components/runtime-loop.md):

1. **Time**: ``dt`` since the last tick (the `clock`, monotonic by default);
   ``ticks + 1``, ``age + dt``, ``subjective_time + dt x rate`` with ``rate =
   clamp(base_rate + intensity_coeff x last_event_intensity + stability_coeff x
   (stability - 1), rate_min, rate_max)`` (last tick's intensity).
2. **Events**: everything queued (`event_queue.pop_all()`), then the
   generator's batch for this tick.  ``last_event_intensity`` = the largest
   intensity of the batch (0 without events, and for negative ones).  Each
   event goes through the meaning engine (`src.runtime.meaning`) with the
   stability and integrity left by the events before it; unless it is ignored
   (significance 0, or below its threshold) its impact is added to energy,
   stability and integrity, it is appended to memory (a `MemoryEntry`) and to
   ``recent_events``, and ``last_significance`` / ``last_pattern`` are set.
   After a batch, ``planning`` and ``intelligence`` are derived together and
   replaced as one pair.
3. **Weakness**: if energy, integrity or stability is <= 0.05, a penalty ``p
   = 0.02 x dt``: energy - p, stability - 2p, integrity - 2p.  Nothing
   stops the loop (the original's "no death, only weakness").
4. All vital changes of the tick are written in **one write section**, so a
   reader of the live vitals sees a tick whole or not at all; the energy and
   stability histories get one entry.
5. **Periodic**: learning every 75 ticks, memory weight decay every 10,
   pruning of memories lighter than 0.1 every 50 (the original archived them
   to a file there), adaptation every 100 (`src.runtime.learning`).
6. ``monitor(state)``, if given (errors are logged, never fatal).
7. **Publish**: ``snapshot_manager.update_snapshot(state)``, every tick (O(1)).
   Every `snapshot_period` ticks (ticks divisible by it) the snapshot is handed
   to persistence: one reference, O(1).  Then the loop waits out the rest of
   `tick_interval` on `stop_event`.

Steps 1-5 are `Ticker.tick()` (`src.runtime.tick`); this module runs the
ticks, publishes and paces them.  The loop thread is the only writer of the
state, and it does no file I/O and no serialisation: `SnapshotPersistence`
(src/state/persistence.py), built and closed by the caller (the command,
`src.cli`), writes on its own thread.  An exception inside a tick is logged with its traceback
(at most once a second per kind; the rest are counted), costs 0.05
integrity, and the loop carries on after waiting out the tick.  On stop
(`stop_event`, or `max_ticks`) a final snapshot is published and handed to
persistence; flushing and closing it is the caller's.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from src.environment.generator import EventGenerator
from src.ratelog import RateLimitedLog
from src.state.persistence import PersistenceStats, SnapshotPersistence
from src.state.self_state import SelfState
from src.state.snapshot_manager import StateSnapshot, StateSnapshotManager
from src.validation import is_finite_number, is_int, positive_int

from .tick import (ADAPTATION_INTERVAL, DECAY_INTERVAL, LEARNING_INTERVAL, PRUNE_INTERVAL,
                   WEAKNESS_PENALTY, WEAKNESS_THRESHOLD, EventSource, Ticker, subjective_rate)

__all__ = ["run_loop", "LoopConfig", "LoopSummary", "WEAKNESS_THRESHOLD", "WEAKNESS_PENALTY",
           "TICK_ERROR_INTEGRITY_COST", "DECAY_INTERVAL", "PRUNE_INTERVAL",
           "LEARNING_INTERVAL", "ADAPTATION_INTERVAL", "subjective_rate"]

logger = logging.getLogger(__name__)

TICK_ERROR_INTEGRITY_COST = 0.05


class _StopEvent(Protocol):
    def is_set(self) -> bool: ...
    def wait(self, timeout: float | None = None) -> bool: ...


def _refuse(name: str, value: object, expected: str, error: type[Exception] = TypeError) -> None:
    raise error(f"run_loop(): {name} must be {expected}, got {value!r}")


@dataclass(frozen=True, slots=True)
class LoopConfig:
    """How the loop runs: its pacing and what it calls; checked when built.

    - `tick_interval`: seconds per tick (>= 0; 0 runs flat out).  The loop
      waits out the rest of each tick on the stop event, so a stop is seen at
      once; without a stop event it sleeps.
    - `snapshot_period`: every this many ticks (ticks divisible by it) the
      published snapshot goes to persistence.
    - `max_ticks`: stop after this many ticks (None: only the stop event stops it).
    - `monitor(state)`: called every tick on the loop's thread after the state
      changes and before it is published; keep it cheap and free of I/O.
    - `clock` (monotonic seconds, for ``dt``) and `wall_clock` (timestamps of
      memories, events and adaptation records) can be replaced for
      deterministic runs; the tick pacing always uses real time.
    """

    tick_interval: float = 1.0
    snapshot_period: int = 10
    max_ticks: int | None = None
    monitor: Callable[[SelfState], object] | None = None
    clock: Callable[[], float] = time.monotonic
    wall_clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        if not is_finite_number(self.tick_interval) or self.tick_interval < 0:
            _refuse("tick_interval", self.tick_interval, "a finite number >= 0", ValueError)
        positive_int("run_loop(): snapshot_period", self.snapshot_period)
        n = self.max_ticks
        if n is not None and (not is_int(n) or n < 0):
            _refuse("max_ticks", n, "an int >= 0 or None", ValueError)
        if self.monitor is not None and not callable(self.monitor):
            _refuse("monitor", self.monitor, "callable or None")
        for name in ("clock", "wall_clock"):
            if not callable(getattr(self, name)):
                _refuse(name, getattr(self, name), "callable")


_CONFIG_FIELDS = tuple(f.name for f in dataclasses.fields(LoopConfig))


@dataclass(frozen=True, slots=True)
class LoopSummary:
    """What one `run_loop` call did (returned when it stops)."""

    ticks: int                 # ticks run by this call
    errors: int                # ticks (each cost integrity) or publishes that raised
    monitor_errors: int        # monitor calls that raised
    events: int                # events taken from the queue and the generator
    dropped_events: int        # the queue's drop counter at the end (0 without a queue)
    last_tick: int             # state.ticks at the end
    final_snapshot: StateSnapshot | None
    persistence: PersistenceStats | None


def run_loop(self_state: SelfState,
             config: LoopConfig | None = None,
             *,
             stop_event: _StopEvent | None = None,
             event_queue: EventSource | None = None,
             snapshot_manager: StateSnapshotManager | None = None,
             persistence: SnapshotPersistence | None = None,
             generator: EventGenerator | None = None,
             **options: Any) -> LoopSummary:
    """Run ticks on the calling thread until `stop_event` is set (or `max_ticks` ran).

    - `self_state`: the state; this thread becomes its only writer.
    - `config`: a `LoopConfig`; `options` override its fields by name
      (``run_loop(s, tick_interval=0.0, max_ticks=10)``), so a caller may pass
      either.
    - `stop_event`: a ``threading.Event``-like object; setting it stops the loop.
    - `event_queue`: where producers put events (`EventQueue`, or anything
      with ``pop_all()``); `generator`: an `EventGenerator` asked for a batch
      every tick.
    - `snapshot_manager`: where a snapshot is published every tick (a private
      one when None).
    - `persistence`: a `SnapshotPersistence` to hand snapshots to (started if
      it is not); the caller builds it and closes it.

    Returns a `LoopSummary`.  Arguments are checked before anything runs
    (TypeError/ValueError naming them).
    """
    unknown = [name for name in options if name not in _CONFIG_FIELDS]
    if unknown:
        raise TypeError(f"run_loop(): unknown option(s) {', '.join(unknown)}; valid: "
                        f"{', '.join(_CONFIG_FIELDS)} (persistence is built by the caller)")
    if config is not None and not isinstance(config, LoopConfig):
        _refuse("config", config, "a LoopConfig or None")
    cfg = dataclasses.replace(config or LoopConfig(), **options) if options else \
        config or LoopConfig()
    if not isinstance(self_state, SelfState):
        _refuse("self_state", self_state, "a SelfState object")
    if stop_event is not None and not (hasattr(stop_event, "is_set")
                                       and hasattr(stop_event, "wait")):
        _refuse("stop_event", stop_event, "a threading.Event-like object or None")
    if event_queue is not None and not hasattr(event_queue, "pop_all"):
        _refuse("event_queue", event_queue, "an EventQueue-like object (with pop_all) or None")
    if snapshot_manager is not None and not isinstance(snapshot_manager, StateSnapshotManager):
        _refuse("snapshot_manager", snapshot_manager, "a StateSnapshotManager object or None")
    if persistence is not None and not isinstance(persistence, SnapshotPersistence):
        _refuse("persistence", persistence, "a SnapshotPersistence object or None")
    if generator is not None and not isinstance(generator, EventGenerator):
        _refuse("generator", generator, "an EventGenerator object or None")

    tick_interval, snapshot_period = cfg.tick_interval, cfg.snapshot_period
    max_ticks, monitor = cfg.max_ticks, cfg.monitor
    manager = StateSnapshotManager() if snapshot_manager is None else snapshot_manager
    if persistence is not None:
        persistence.start()

    ticker = Ticker(self_state, event_queue, generator, cfg.clock, cfg.wall_clock)
    errors = RateLimitedLog(logger, period=1.0)  # tracebacks at most once a second per kind
    n_ticks = n_errors = n_monitor_errors = 0
    last_submitted = -1
    final: StateSnapshot | None = None
    monotonic = time.monotonic
    logger.debug("run_loop: starting at tick %d (tick_interval=%s, snapshot_period=%d)",
                 self_state.ticks, tick_interval, snapshot_period)
    try:
        while (stop_event is None or not stop_event.is_set()) \
                and (max_ticks is None or n_ticks < max_ticks):
            started = monotonic()
            try:
                ticker.tick()
            except Exception:
                n_errors += 1
                errors.log(logging.ERROR, "tick", "a tick failed (the state is at tick %d)",
                           self_state.ticks, exc_info=True)
                try:
                    self_state.apply_delta({"integrity": -TICK_ERROR_INTEGRITY_COST})
                except Exception:
                    errors.log(logging.ERROR, "penalty", "could not apply the tick-error penalty",
                               exc_info=True)
            n_ticks += 1
            if monitor is not None:
                try:
                    monitor(self_state)
                except Exception:
                    n_monitor_errors += 1
                    errors.log(logging.ERROR, "monitor", "monitor %r failed", monitor, exc_info=True)
            try:
                snapshot = manager.update_snapshot(self_state)
                if persistence is not None and snapshot.tick % snapshot_period == 0 \
                        and snapshot.tick != last_submitted:
                    persistence.submit(snapshot)
                    last_submitted = snapshot.tick
            except Exception:
                n_errors += 1
                errors.log(logging.ERROR, "publish", "publishing tick %d failed", self_state.ticks,
                           exc_info=True)
            if tick_interval > 0:
                remaining = tick_interval - (monotonic() - started)
                if remaining > 0:
                    if stop_event is not None:
                        stop_event.wait(remaining)
                    else:
                        time.sleep(remaining)
    finally:
        try:
            final = manager.update_snapshot(self_state)
            if persistence is not None:
                persistence.submit(final)
        except Exception:
            logger.exception("run_loop: could not publish or hand over the final snapshot")
    logger.debug("run_loop: stopped at tick %d after %d ticks (%d failed)",
                 self_state.ticks, n_ticks, n_errors)
    dropped = getattr(event_queue, "dropped", 0)
    return LoopSummary(n_ticks, n_errors, n_monitor_errors, ticker.events,
                       dropped if isinstance(dropped, int) else 0, self_state.ticks, final,
                       None if persistence is None else persistence.stats)

