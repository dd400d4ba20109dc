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

The loop thread is the only writer of the state, and it does no file I/O and
no serialisation: `SnapshotPersistence` (src/state/persistence.py) writes on
its own thread.  An exception inside a tick is logged with its traceback
(at most once a second per kind; the rest are counted), costs 0.05
integrity, and the loop carries on after waiting out the tick.  On stop
(`stop_event`, or `max_ticks`) a final snapshot is published and handed to
persistence; a persistence object the loop created itself (from `data_dir`)
is then flushed and closed.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from os import PathLike
from typing import Protocol

from src.environment.event import Event
from src.environment.event_queue import EventQueue
from src.environment.generator import EventGenerator
from src.state.persistence import (KEEP_DEFAULT, MIN_INTERVAL_DEFAULT, PersistenceStats,
                                   SnapshotPersistence)
from src.state.self_state import VITAL_FIELDS, MemoryEntry, SelfState, SubjectiveTimeParams
from src.state.snapshot_manager import StateSnapshot, StateSnapshotManager

from .learning import (ADAPTATION_INTERVAL, LEARNING_INTERVAL, adaptation_changes,
                       adaptation_record, learning_changes)
from .meaning import MeaningEngine

__all__ = ["run_loop", "LoopSummary", "WEAKNESS_THRESHOLD", "WEAKNESS_PENALTY",
           "TICK_ERROR_INTEGRITY_COST", "DECAY_INTERVAL", "PRUNE_INTERVAL",
           "LEARNING_INTERVAL", "ADAPTATION_INTERVAL", "subjective_rate"]

logger = logging.getLogger(__name__)

DECAY_INTERVAL = 10            # ticks between memory weight decays
PRUNE_INTERVAL = 50            # ticks between prunes of light memories
MEMORY_DECAY_FACTOR = 0.99
MEMORY_MIN_WEIGHT = 0.1
WEAKNESS_THRESHOLD = 0.05
WEAKNESS_PENALTY = 0.02        # per second of dt; x2 for stability and integrity
TICK_ERROR_INTEGRITY_COST = 0.05
FLUSH_TIMEOUT = 3.0            # seconds the stop waits for an owned persistence to finish


def _bounds(name: str) -> tuple[float, float]:
    """The clamp bounds of a vital, from the state's schema (the final write clamps too)."""
    field = next(f for f in VITAL_FIELDS if f.name == name)
    assert field.min is not None and field.max is not None
    return float(field.min), float(field.max)


_E_LO, _E_HI = _bounds("energy")
_S_LO, _S_HI = _bounds("stability")
_I_LO, _I_HI = _bounds("integrity")


class _Queue(Protocol):
    def pop_all(self) -> list[Event]: ...


class _StopEvent(Protocol):
    def is_set(self) -> bool: ...
    def wait(self, timeout: float | None = None) -> bool: ...


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


def subjective_rate(params: SubjectiveTimeParams, last_event_intensity: float,
                    stability: float) -> float:
    """How fast subjective time runs (`SubjectiveTimeParams`), clamped to [rate_min, rate_max]."""
    rate = (params.base_rate + params.intensity_coeff * last_event_intensity
            + params.stability_coeff * (stability - 1.0))
    return params.rate_min if rate < params.rate_min else \
        params.rate_max if rate > params.rate_max else rate


class _ErrorLog:
    """Tracebacks logged at most once per second per kind; the rest are counted."""

    __slots__ = ("_next", "_muted")

    def __init__(self) -> None:
        self._next: dict[str, float] = {}
        self._muted: dict[str, int] = {}

    def exception(self, kind: str, msg: str, *args: object) -> None:
        now = time.monotonic()
        if now < self._next.get(kind, 0.0):
            self._muted[kind] = self._muted.get(kind, 0) + 1
            return
        muted = self._muted.pop(kind, 0)
        if muted:
            msg += " (%d more since the last report)"
            args += (muted,)
        logger.error(msg, *args, exc_info=True)
        self._next[kind] = now + 1.0


class _Ticker:
    """The loop's per-run state and the tick itself (runs on the loop's thread only)."""

    def __init__(self, state: SelfState, queue: _Queue | None,
                 generator: EventGenerator | None, clock: Callable[[], float],
                 wall_clock: Callable[[], float]) -> None:
        self.state = state
        self.queue = queue
        self.generator = generator
        self.clock = clock
        self.wall_clock = wall_clock
        self.engine = MeaningEngine()
        self.patterns: Counter[str] = Counter()
        self.events = 0
        self.last = clock()

    def tick(self) -> None:
        state = self.state
        now = self.clock()
        dt = now - self.last
        self.last = now
        if not dt > 0.0:  # a clock that stood still or went back (or NaN)
            dt = 0.0
        wall = self.wall_clock()
        v = state.read_vitals()
        energy, stability, integrity = v.energy, v.stability, v.integrity
        rate = subjective_rate(state.subjective_time_params, v.last_event_intensity, stability)

        events: list[Event] = list(self.queue.pop_all()) if self.queue is not None else []
        if self.generator is not None:
            events += self.generator.events(wall)
        intensity = 0.0
        significance = v.last_significance
        if events:
            self.events += len(events)
            lp, ap = state.learning_params, state.adaptation_params
            process = self.engine.process
            for e in events:
                if e.intensity > intensity:
                    intensity = e.intensity
                m = process(e.type, e.intensity, stability, integrity, lp, ap)
                if m.pattern == "ignore" or not m.significance > 0.0:
                    continue
                energy = min(max(energy + m.energy, _E_LO), _E_HI)
                stability = min(max(stability + m.stability, _S_LO), _S_HI)
                integrity = min(max(integrity + m.integrity, _I_LO), _I_HI)
                state.memory.append(MemoryEntry(e.type, m.significance, wall))
                state.add_event(e.type)
                significance = m.significance
                state.last_pattern = m.pattern
                self.patterns[m.pattern] += 1
            self._plan(energy, stability)

        if energy <= WEAKNESS_THRESHOLD or integrity <= WEAKNESS_THRESHOLD \
                or stability <= WEAKNESS_THRESHOLD:
            p = WEAKNESS_PENALTY * dt
            energy -= p
            stability -= 2 * p
            integrity -= 2 * p
        ticks = v.ticks + 1
        state.set_vitals(ticks=ticks, age=v.age + dt, subjective_time=v.subjective_time + dt * rate,
                         energy=energy, stability=stability, integrity=integrity,
                         last_event_intensity=intensity, last_significance=significance)
        state.record_history(energy=energy, stability=stability)

        if ticks % LEARNING_INTERVAL == 0:
            changes = learning_changes(state.memory, state.learning_params, self.patterns)
            self.patterns.clear()
            if changes:
                state.update_learning_params(changes)
        if ticks % DECAY_INTERVAL == 0:
            state.decay_memory_weights(MEMORY_DECAY_FACTOR, now=wall)
        if ticks % PRUNE_INTERVAL == 0:
            state.prune_memory(MEMORY_MIN_WEIGHT)
        if ticks % ADAPTATION_INTERVAL == 0:
            self._adapt(ticks, wall)

    def _plan(self, energy: float, stability: float) -> None:
        state = self.state
        recent = state.recent_events
        n = len(recent)
        sequences = [recent[-2:]] if n >= 2 else []
        state.set_planning_and_intelligence(
            {"potential_sequences": sequences,
             "sources_used": {"memory_proxy": n, "learning_proxy": len(state.stability_history),
                              "adaptation_proxy": len(state.energy_history)}},
            {"processed_sources": {"memory_proxy_size": n, "adaptation_proxy": energy,
                                   "learning_proxy": stability,
                                   "planning_proxy_size": len(sequences)}})

    def _adapt(self, tick: int, wall: float) -> None:
        state = self.state
        lp, old = state.learning_params, state.adaptation_params
        changes = adaptation_changes(lp, old)
        if changes:
            state.update_adaptation_params(changes)
            state.add_adaptation_record(
                adaptation_record(tick, wall, old, state.adaptation_params, changes, lp))


def _check(name: str, ok: bool, value: object, expected: str,
           error: type[Exception] = TypeError) -> None:
    if not ok:
        raise error(f"run_loop(): {name} must be {expected}, got {value!r}")


def run_loop(self_state: SelfState,
             monitor: Callable[[SelfState], object] | None = None,
             tick_interval: float = 1.0,
             snapshot_period: int = 10,
             stop_event: _StopEvent | None = None,
             event_queue: EventQueue | _Queue | None = None,
             snapshot_manager: StateSnapshotManager | None = None,
             *,
             persistence: SnapshotPersistence | None = None,
             data_dir: str | PathLike[str] | None = None,
             keep_snapshots: int = KEEP_DEFAULT,
             min_save_interval: float = MIN_INTERVAL_DEFAULT,
             generator: EventGenerator | None = None,
             seed: int | None = None,
             max_ticks: int | None = None,
             clock: Callable[[], float] = time.monotonic,
             wall_clock: Callable[[], float] = time.time,
             flush_timeout: float = FLUSH_TIMEOUT) -> LoopSummary:
    """Run ticks on the calling thread until `stop_event` is set (or `max_ticks` ran).

    - `self_state`: the state; this thread becomes its only writer.
    - `monitor(state)`: called every tick on this thread after the state
      changes and before it is published; keep it cheap and free of I/O.
    - `tick_interval`: seconds per tick (>= 0; 0 runs flat out).  The loop
      waits out the rest of each tick on `stop_event`, so a stop is seen at
      once; without a stop event it sleeps.
    - `snapshot_period`: every this many ticks (ticks divisible by it) the
      published snapshot goes to persistence.
    - `event_queue`: where producers put events (`EventQueue`, or anything
      with ``pop_all()``); `generator`: an `EventGenerator` asked for a batch
      every tick (`seed`: shorthand for ``generator=EventGenerator(seed=seed)``).
    - `snapshot_manager`: where a snapshot is published every tick (a private
      one when None).
    - `persistence`: a `SnapshotPersistence` to hand snapshots to (started if
      it is not; the caller closes it); or `data_dir`: the loop creates one
      for ``<data_dir>/snapshots`` (`keep_snapshots`, `min_save_interval`),
      and on stop closes it, waiting at most `flush_timeout` seconds for the
      final write.
    - `clock` (monotonic seconds, for ``dt``) and `wall_clock` (timestamps of
      memories, events and adaptation records) can be replaced for
      deterministic runs; the tick pacing always uses real time.

    Returns a `LoopSummary`.  Arguments are checked before anything runs
    (TypeError/ValueError).
    """
    _check("self_state", isinstance(self_state, SelfState), self_state, "a SelfState object")
    _check("monitor", monitor is None or callable(monitor), monitor, "callable or None")
    _check("tick_interval", not isinstance(tick_interval, bool)
           and isinstance(tick_interval, (int, float)) and math.isfinite(tick_interval)
           and tick_interval >= 0, tick_interval, "a finite number >= 0", ValueError)
    _check("snapshot_period", not isinstance(snapshot_period, bool)
           and isinstance(snapshot_period, int) and snapshot_period > 0, snapshot_period,
           "a positive int", ValueError)
    _check("stop_event", stop_event is None or (hasattr(stop_event, "is_set")
                                                and hasattr(stop_event, "wait")),
           stop_event, "a threading.Event-like object or None")
    _check("event_queue", event_queue is None or hasattr(event_queue, "pop_all"), event_queue,
           "an EventQueue-like object (with pop_all) or None")
    _check("snapshot_manager", snapshot_manager is None
           or isinstance(snapshot_manager, StateSnapshotManager), snapshot_manager,
           "a StateSnapshotManager object or None")
    _check("persistence", persistence is None or isinstance(persistence, SnapshotPersistence),
           persistence, "a SnapshotPersistence object or None")
    _check("generator", generator is None or isinstance(generator, EventGenerator), generator,
           "an EventGenerator object or None")
    _check("max_ticks", max_ticks is None or (not isinstance(max_ticks, bool)
                                              and isinstance(max_ticks, int) and max_ticks >= 0),
           max_ticks, "an int >= 0 or None", ValueError)
    _check("clock", callable(clock), clock, "callable")
    _check("wall_clock", callable(wall_clock), wall_clock, "callable")
    if persistence is not None and data_dir is not None:
        raise ValueError("run_loop(): pass persistence or data_dir, not both")
    if generator is not None and seed is not None:
        raise ValueError("run_loop(): pass generator or seed, not both")
    if seed is not None:
        generator = EventGenerator(seed=seed)

    manager = StateSnapshotManager() if snapshot_manager is None else snapshot_manager
    owned = None
    if data_dir is not None:
        # Only builds the object and starts its thread: the folder is created
        # (and every file touched) by that thread, not this one.
        persistence = owned = SnapshotPersistence(data_dir, keep=keep_snapshots,
                                                  min_interval=min_save_interval)
    if persistence is not None:
        persistence.start()

    ticker = _Ticker(self_state, event_queue, generator, clock, wall_clock)
    errors = _ErrorLog()
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
                errors.exception("tick", "a tick failed (the state is at tick %d)",
                                 self_state.ticks)
                try:
                    self_state.apply_delta({"integrity": -TICK_ERROR_INTEGRITY_COST})
                except Exception:
                    errors.exception("penalty", "could not apply the tick-error penalty")
            n_ticks += 1
            if monitor is not None:
                try:
                    monitor(self_state)
                except Exception:
                    n_monitor_errors += 1
                    errors.exception("monitor", "monitor %r failed", monitor)
            try:
                snapshot = manager.update_snapshot(self_state)
                if persistence is not None and snapshot.tick % snapshot_period == 0 \
                        and snapshot.tick != last_submitted:
                    persistence.submit(snapshot)
                    last_submitted = snapshot.tick
            except Exception:
                n_errors += 1
                errors.exception("publish", "publishing tick %d failed", self_state.ticks)
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
        if owned is not None:
            owned.close(flush_timeout)
    logger.debug("run_loop: stopped at tick %d after %d ticks (%d failed)",
                 self_state.ticks, n_ticks, n_errors)
    dropped = getattr(event_queue, "dropped", 0)
    return LoopSummary(n_ticks, n_errors, n_monitor_errors, ticker.events,
                       dropped if isinstance(dropped, int) else 0, self_state.ticks, final,
                       None if persistence is None else persistence.stats)

