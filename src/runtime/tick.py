"""One tick of the runtime loop: what the state becomes from one tick to the next.

`Ticker.tick()` is steps 1-5 of a tick as docs/components/runtime-loop.md and
`src.runtime.loop` list them (time, events, weakness, one write section for
the vitals, the periodic learning, decay, pruning and adaptation).  It runs on
the loop's thread only; publishing, persistence and pacing are the loop's.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Protocol

from src.environment.event import Event
from src.environment.generator import EventGenerator
from src.state.memory import MemoryEntry
from src.state.self_state import SelfState
from src.state.vitals import SubjectiveTimeParams, vital_bounds

from .learning import (ADAPTATION_INTERVAL, LEARNING_INTERVAL, adaptation_changes,
                       adaptation_record, learning_changes)
from .meaning import MeaningEngine

__all__ = ["Ticker", "subjective_rate", "WEAKNESS_THRESHOLD", "WEAKNESS_PENALTY",
           "DECAY_INTERVAL", "PRUNE_INTERVAL", "MEMORY_DECAY_FACTOR", "MEMORY_MIN_WEIGHT",
           "LEARNING_INTERVAL", "ADAPTATION_INTERVAL"]

DECAY_INTERVAL = 10            # ticks between memory weight decays
PRUNE_INTERVAL = 50            # ticks between prunes of light memories
MEMORY_DECAY_FACTOR = 0.99
MEMORY_MIN_WEIGHT = 0.1
WEAKNESS_THRESHOLD = 0.05
WEAKNESS_PENALTY = 0.02        # per second of dt; x2 for stability and integrity



_E_LO, _E_HI = vital_bounds("energy")
_S_LO, _S_HI = vital_bounds("stability")
_I_LO, _I_HI = vital_bounds("integrity")


class EventSource(Protocol):
    """What the loop drains every tick (`EventQueue`, or anything with ``pop_all``)."""

    def pop_all(self) -> list[Event]: ...


def subjective_rate(params: SubjectiveTimeParams, last_event_intensity: float,
                    stability: float) -> float:
    """How fast subjective time runs (`SubjectiveTimeParams`), clamped to [rate_min, rate_max]."""
    rate = (params.base_rate + params.intensity_coeff * last_event_intensity
            + params.stability_coeff * (stability - 1.0))
    return params.rate_min if rate < params.rate_min else \
        params.rate_max if rate > params.rate_max else rate


class Ticker:
    """The loop's per-run state and the tick itself (runs on the loop's thread only)."""

    def __init__(self, state: SelfState, queue: EventSource | None,
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
