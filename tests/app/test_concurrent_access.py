"""One writer mutates and publishes a SelfState while reader threads take snapshots.

The writer's tick k goes everywhere at once: the vitals (ticks == age == k, in
one write section), the last memory entry's timestamp, the last recent event,
the last energy-history value, planning and intelligence (replaced together:
the original project published them torn), and the publish version (one
publish per tick).  Every snapshot a reader takes must agree with itself on k,
whatever the interleaving; a snapshot a reader keeps must never change; live
vitals must never be older than a snapshot taken before them.  Runs until a
deadline with a threading.Event stop flag; no sleeps as synchronisation.  On a
free-threaded build the threads really run at once.
"""

from __future__ import annotations

import json
import threading
import time
import traceback
from collections.abc import Callable

from src.state.self_state import STATUS_LIMIT_KEYS, MemoryEntry, SelfState
from src.state.snapshot_manager import StateSnapshot, StateSnapshotManager

RUN_SECONDS = 1.0
MIN_VERSIONS_PER_READER = 5
GIVE_UP_SECONDS = 30.0  # the writer stops anyway; the assertions then fail
MEMORY_CAP, EVENTS_CAP, HISTORY_CAP = 70, 33, 40  # around the 32-entry chunks of the log
ALL_LIMITS = dict.fromkeys(STATUS_LIMIT_KEYS, 1000)


def write_tick(state: SelfState, k: int) -> None:
    state.apply_delta({"ticks": 1, "age": 1.0})  # one section: ticks == age == k
    state.energy = float(k % 101)
    state.add_memory(MemoryEntry("noise", 0.5, float(k)))
    state.add_event(f"e{k}")
    state.record_history(energy=float(k), stability=float(k % 2))
    # Built separately, as the original loop did; stored as one pair.
    planning = {"tick": k, "potential_sequences": [[f"e{k - 1}", f"e{k}"]]}
    intelligence = {"tick": k, "processed_sources": {"planning_proxy_size": 1}}
    state.set_planning_and_intelligence(planning, intelligence)
    if k % 10 == 0:
        state.add_adaptation_record({"tick": k})
        state.update_learning_params({"event_type_sensitivity": {"noise": (k % 100) / 100}})


def snapshot_problems(snap: StateSnapshot) -> list[str]:
    """Everything that must agree on the snapshot's tick k."""
    s, k = snap.state, snap.tick
    problems = []

    def check(what: str, got: object, want: object) -> None:
        if got != want:
            problems.append(f"version {snap.version} tick {k}: {what} = {got!r}, want {want!r}")

    check("version", snap.version, k)
    check("vitals.age", s.vitals.age, float(k))
    check("vitals.energy", s.vitals.energy, float(k % 101))
    check("planning.tick", s.planning["tick"], k)
    check("intelligence.tick", s.intelligence["tick"], k)
    check("memory[-1].timestamp", s.memory[-1].timestamp, float(k))
    check("memory[0].timestamp", s.memory[0].timestamp, float(max(1, k - MEMORY_CAP + 1)))
    check("len(memory)", len(s.memory), min(k, MEMORY_CAP))
    check("recent_events[-1]", s.recent_events[-1], f"e{k}")
    check("len(recent_events)", len(s.recent_events), min(k, EVENTS_CAP))
    check("energy_history[-1]", s.energy_history[-1], float(k))
    check("stability_history[-1]", s.stability_history[-1], float(k % 2))
    if k >= 10:
        check("adaptation_history[-1].tick", s.adaptation_history[-1]["tick"], k - k % 10)
        check("learning noise sensitivity",
              s.learning_params["event_type_sensitivity"]["noise"], ((k - k % 10) % 100) / 100)
    return problems


def status_problems(d: dict) -> list[str]:
    """The same agreement, seen through the JSON status dict."""
    k = d["ticks"]
    got = {"age": d["age"], "planning": d["planning"]["tick"],
           "intelligence": d["intelligence"]["tick"], "memory": d["memory"][-1]["timestamp"],
           "events": d["recent_events"][-1], "energy_history": d["energy_history"][-1]}
    want = {"age": float(k), "planning": k, "intelligence": k, "memory": float(k),
            "events": f"e{k}", "energy_history": float(k)}
    return [f"status tick {k}: {name} = {got[name]!r}, want {want[name]!r}"
            for name in got if got[name] != want[name]]


class Run:
    """Shared counters and the stop flag; each thread adds its own totals once at the end."""

    def __init__(self, readers: int) -> None:
        self.stop = threading.Event()
        self.start = threading.Barrier(readers + 1)
        self.lock = threading.Lock()
        self.reads = self.writes = self.inconsistent = 0
        self.versions_seen = [0] * readers  # one slot per reader, written by that reader only
        self.examples: list[str] = []
        self.errors: list[str] = []

    def report(self, reads: int, problems: list[str]) -> None:
        with self.lock:
            self.reads += reads
            self.inconsistent += len(problems)
            self.examples.extend(problems[:5 - len(self.examples)])

    def thread(self, body: Callable[[], None]) -> threading.Thread:
        def guarded() -> None:
            try:
                body()
            except BaseException:
                self.errors.append(traceback.format_exc())
                self.stop.set()
        return threading.Thread(target=guarded, daemon=True)


def run_writer(run: Run, state: SelfState, manager: StateSnapshotManager) -> None:
    run.start.wait()
    began = time.monotonic()
    k = 0
    while not run.stop.is_set():
        k += 1
        write_tick(state, k)
        manager.update_snapshot(state)
        elapsed = time.monotonic() - began
        if elapsed > GIVE_UP_SECONDS or (
                elapsed > RUN_SECONDS and min(run.versions_seen) >= MIN_VERSIONS_PER_READER):
            run.stop.set()
    run.writes = k


def snapshot_reader(run: Run, slot: int, manager: StateSnapshotManager) -> None:
    reads, problems, versions = 0, [], set()
    held: StateSnapshot | None = None
    held_json = ""
    last_version = 0
    run.start.wait()
    while True:
        stopping = run.stop.is_set()  # one more full pass after the stop
        snap = manager.get_snapshot()
        if snap is not None:
            reads += 1
            problems += snapshot_problems(snap)
            if snap.version < last_version:
                problems.append(f"version went back from {last_version} to {snap.version}")
            last_version = snap.version
            if snap.version not in versions:
                versions.add(snap.version)
                run.versions_seen[slot] = len(versions)
            if held is None:
                held, held_json = snap, json.dumps(snap.status_dict(limits=ALL_LIMITS))
            live = manager.live_vitals()  # read after the snapshot: never older
            if live is None or live.ticks < snap.tick or live.age != float(live.ticks):
                problems.append(f"live vitals {live} against snapshot tick {snap.tick}")
        if stopping:
            break
    if held is not None and json.dumps(held.status_dict(limits=ALL_LIMITS)) != held_json:
        problems.append(f"the snapshot of version {held.version} changed while held")
    run.report(reads, problems)


def status_reader(run: Run, slot: int, manager: StateSnapshotManager) -> None:
    reads, problems, versions = 0, [], set()
    run.start.wait()
    while True:
        stopping = run.stop.is_set()
        snap = manager.get_snapshot()
        if snap is not None:
            d = json.loads(json.dumps(snap.status_dict(limits={
                "memory_limit": 2, "events_limit": 2, "energy_history_limit": 1})))
            reads += 1
            problems += status_problems(d)
            if snap.version not in versions:
                versions.add(snap.version)
                run.versions_seen[slot] = len(versions)
        if stopping:
            break
    run.report(reads, problems)


def test_readers_always_see_consistent_snapshots(capsys):
    readers = [snapshot_reader, snapshot_reader, status_reader]
    run = Run(len(readers))
    state = SelfState(memory_cap=MEMORY_CAP, recent_events_cap=EVENTS_CAP,
                      history_cap=HISTORY_CAP, adaptation_history_cap=3)
    manager = StateSnapshotManager()
    threads = [run.thread(lambda r=r, i=i: r(run, i, manager)) for i, r in enumerate(readers)]
    threads.append(run.thread(lambda: run_writer(run, state, manager)))
    for t in threads:
        t.start()
    for t in threads:
        t.join(GIVE_UP_SECONDS + 30)
    alive = [t for t in threads if t.is_alive()]
    with capsys.disabled():
        print(f"\nconcurrent access: reads={run.reads} writes={run.writes} "
              f"versions seen per reader={run.versions_seen} "
              f"inconsistencies={run.inconsistent}")
    assert not alive, f"{len(alive)} threads did not finish"
    assert not run.errors, run.errors[0]
    assert run.reads > 0 and run.writes > 0
    assert min(run.versions_seen) >= MIN_VERSIONS_PER_READER, run.versions_seen
    assert run.inconsistent == 0, run.examples
    assert manager.version == run.writes == state.ticks


def test_the_checks_can_fail():
    """The invariants are not vacuous: a torn pair or a stale log is reported."""
    state, manager = SelfState(memory_cap=MEMORY_CAP, recent_events_cap=EVENTS_CAP,
                               history_cap=HISTORY_CAP), StateSnapshotManager()
    for k in range(1, 12):
        write_tick(state, k)
        manager.update_snapshot(state)
    assert snapshot_problems(manager.get_snapshot()) == []
    state.apply_delta({"ticks": 1, "age": 1.0})
    state.energy = 12.0
    state.set_planning_and_intelligence({"tick": 12}, {"tick": 11})  # torn, as in the original
    problems = snapshot_problems(manager.update_snapshot(state))
    assert any("intelligence.tick" in p for p in problems)
    assert any("memory[-1].timestamp" in p for p in problems)
    d = manager.status_dict(limits={"memory_limit": 2, "events_limit": 2,
                                    "energy_history_limit": 1})
    assert any("intelligence" in p for p in status_problems(d))
