"""StateSnapshotManager: publishing, versions, immutability of published snapshots, staleness."""

from __future__ import annotations

import dataclasses
import itertools
import json
import threading

import pytest

from csnapshot import FrozenDict, LogView
from src.state.self_state import STATUS_LIMIT_KEYS, MemoryEntry, SelfState
from src.state.snapshot_manager import NoSnapshotError, StateSnapshot, StateSnapshotManager

ALL_LIMITS = dict.fromkeys(STATUS_LIMIT_KEYS, 10**9)
LIMIT_CASES = [
    (True, None), (False, None), (True, ALL_LIMITS), (False, ALL_LIMITS),
    (True, {"memory_limit": 0}), (True, {"memory_limit": 3, "events_limit": 2}),
    (False, {"energy_history_limit": 1, "stability_history_limit": 5,
             "adaptation_history_limit": -1}),
]


def step(state: SelfState, k: int) -> None:
    """One writer tick: k goes into the vitals, the logs and the dicts alike."""
    state.apply_delta({"ticks": 1, "age": 1.0, "energy": -0.001})
    state.add_memory(MemoryEntry("noise", 0.5, float(k)))
    state.add_event(f"e{k}")
    state.record_history(energy=float(k))
    state.set_planning_and_intelligence({"tick": k}, {"tick": k})
    if k % 10 == 0:
        state.add_adaptation_record({"tick": k})
        state.update_learning_params({"event_type_sensitivity": {"noise": (k % 100) / 100}})


def test_nothing_published_yet():
    m = StateSnapshotManager()
    assert m.get_snapshot() is None and m.version == 0 and m.live_vitals() is None
    with pytest.raises(NoSnapshotError, match="no state snapshot has been published yet"):
        m.status_dict()
    assert isinstance(NoSnapshotError(), LookupError)
    assert m.wait_for_update(0, timeout=0.001) is None
    assert "version=0" in repr(m)


def test_update_returns_what_readers_get_and_versions_count_by_one():
    s, m = SelfState(), StateSnapshotManager()
    for k in range(1, 6):
        step(s, k)
        snap = m.update_snapshot(s)
        assert isinstance(snap, StateSnapshot)
        assert m.get_snapshot() is snap  # the object itself: no copy per read
        assert snap.version == m.version == k and snap.tick == k
    again = m.update_snapshot(s)  # nothing changed: still a new version
    assert again.version == 6 and again.state == snap.state
    assert "version=6 tick=5" in repr(m)


def test_update_takes_a_self_state():
    with pytest.raises(TypeError, match="update_snapshot\\(\\) takes a SelfState, got dict"):
        StateSnapshotManager().update_snapshot({"energy": 1.0})  # type: ignore[arg-type]


def test_snapshot_records_vitals_version_and_publish_time():
    clock = itertools.count(1000.0, 0.5)
    s, m = SelfState(), StateSnapshotManager(clock=lambda: next(clock))
    s.energy = 40.0
    first = m.update_snapshot(s)
    assert first.published_at == 1000.0
    assert first.state.vitals_version == s.vitals.version
    assert first.vitals == s.read_vitals() and first.vitals.energy == 40.0
    s.apply_delta({"energy": 1.0})
    assert m.update_snapshot(s).published_at == 1000.5
    assert m.get_snapshot().state.vitals_version == first.state.vitals_version + 1


def test_snapshot_is_immutable():
    s, m = SelfState(), StateSnapshotManager()
    step(s, 1)
    snap = m.update_snapshot(s)
    with pytest.raises(dataclasses.FrozenInstanceError):
        snap.version = 7  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        snap.state.memory = LogView()  # type: ignore[misc]
    assert isinstance(snap.state.memory, LogView)
    with pytest.raises(TypeError):
        snap.state.planning["tick"] = 2  # type: ignore[index]
    with pytest.raises(TypeError):
        snap.state.learning_params["event_type_sensitivity"]["noise"] = 1.0  # type: ignore[index]
    with pytest.raises(AttributeError):
        snap.state.memory.append(MemoryEntry("x", 0.0, 0.0))  # type: ignore[attr-defined]
    assert isinstance(snap.state.learning_params["event_type_sensitivity"], FrozenDict)


@pytest.mark.slow
def test_earlier_snapshot_is_unchanged_by_1e5_later_writes():
    s, m = SelfState(memory_cap=1000, recent_events_cap=100, history_cap=100,
                     adaptation_history_cap=10), StateSnapshotManager()
    for k in range(1, 51):
        step(s, k)
    old = m.update_snapshot(s)
    before = json.dumps(old.status_dict(limits=ALL_LIMITS)), json.dumps(old.to_dict())
    memory_before = list(old.state.memory)
    for k in range(51, 51 + 10**5):
        s.apply_delta({"ticks": 1, "energy": -0.0001})
        s.add_memory(MemoryEntry("noise", 0.5, float(k)))
        if k % 100 == 0:
            step(s, k)
            s.decay_memory_weights(now=float(k))
            s.prune_memory(0.05)
            m.update_snapshot(s)
    assert s.ticks > 10**5 and m.version > 1000
    assert (json.dumps(old.status_dict(limits=ALL_LIMITS)), json.dumps(old.to_dict())) == before
    assert list(old.state.memory) == memory_before and old.tick == 50
    assert json.dumps(m.get_snapshot().to_dict()) != before[1]


@pytest.mark.parametrize("include_optional, limits", LIMIT_CASES)
def test_status_dict_equals_the_state_at_publish_time(include_optional, limits):
    s, m = SelfState(memory_cap=20, recent_events_cap=5), StateSnapshotManager()
    for k in range(1, 40):
        step(s, k)
    expected = s.get_safe_status_dict(include_optional, limits)
    snap = m.update_snapshot(s)
    assert snap.status_dict(include_optional, limits) == expected
    assert m.status_dict(include_optional, limits) == expected
    assert json.dumps(snap.status_dict(include_optional, limits)) == json.dumps(expected)
    step(s, 40)  # later writes: the live state moves on, the snapshot does not
    assert s.get_safe_status_dict(include_optional, limits) != expected
    assert snap.status_dict(include_optional, limits) == expected


def test_to_dict_is_the_persistence_format_and_loads_back():
    s, m = SelfState(), StateSnapshotManager()
    for k in range(1, 30):
        step(s, k)
    s.add_memory(MemoryEntry("feedback", 0.0, 30.0, 0.5,
                             {"action_id": "x", "state_delta": {"energy": -0.1},
                              "associated_events": ["e1"]}))
    expected = s.to_dict()
    snap = m.update_snapshot(s)
    s.energy = 1.0
    assert snap.to_dict() == expected
    text = json.dumps(snap.to_dict())
    back = SelfState.from_dict(json.loads(text))
    assert json.dumps(back.to_dict()) == text
    assert json.dumps(StateSnapshotManager().update_snapshot(back).to_dict()) == text


def test_status_dict_limits_on_a_snapshot():
    s, m = SelfState(memory_cap=10, history_cap=4), StateSnapshotManager()
    for k in range(1, 21):
        step(s, k)
    snap = m.update_snapshot(s)
    st = m.status_dict(limits={"memory_limit": 3, "events_limit": 2, "energy_history_limit": 10,
                               "adaptation_history_limit": 1})
    assert [e["timestamp"] for e in st["memory"]] == [18.0, 19.0, 20.0]
    assert st["recent_events"] == ["e19", "e20"]
    assert st["energy_history"] == [17.0, 18.0, 19.0, 20.0]
    assert st["adaptation_history"] == [{"tick": 20}]
    assert "stability_history" not in st
    assert st["planning"] == st["intelligence"] == {"tick": 20} and st["ticks"] == 20
    assert snap.status_dict(limits={"memory_limit": 0})["memory"] == []
    with pytest.raises(ValueError, match="unknown limit"):
        m.status_dict(limits={"memory_limt": 3})


def test_vitals_are_live_complex_parts_wait_for_the_next_publish():
    s, m = SelfState(), StateSnapshotManager()
    step(s, 1)
    m.update_snapshot(s)
    s.energy = 12.5
    s.apply_delta({"ticks": 1})
    step(s, 3)  # ticks is now 3
    assert m.live_vitals().energy == pytest.approx(12.499) and m.live_vitals().ticks == 3
    snap = m.get_snapshot()
    assert snap.vitals.energy == pytest.approx(99.999) and snap.tick == 1
    assert snap.state.planning == {"tick": 1} and snap.state.memory[-1].timestamp == 1.0
    m.update_snapshot(s)
    snap = m.get_snapshot()
    assert snap.tick == 3 and snap.state.planning == {"tick": 3}
    assert snap.state.memory[-1].timestamp == 3.0
    assert m.live_vitals() == snap.vitals


def test_live_vitals_follow_the_last_published_state():
    m = StateSnapshotManager()
    a, b = SelfState(), SelfState()
    b.ticks = 99
    m.update_snapshot(a)
    assert m.live_vitals().ticks == 0
    m.update_snapshot(b)
    assert m.live_vitals().ticks == 99


def test_wait_for_update():
    s, m = SelfState(), StateSnapshotManager()
    first = m.update_snapshot(s)
    assert m.wait_for_update(0) is first  # already newer: returns at once
    assert m.wait_for_update(1, timeout=0.001) is None
    got: list[StateSnapshot | None] = []
    waiter = threading.Thread(target=lambda: got.append(m.wait_for_update(1, timeout=60)))
    waiter.start()
    second = m.update_snapshot(s)  # whether the waiter is already waiting or not
    waiter.join(60)
    assert not waiter.is_alive() and got == [second] and second.version == 2


def test_status_dict_json_with_every_part():
    s, m = SelfState(), StateSnapshotManager()
    for k in range(1, 12):
        step(s, k)
    m.update_snapshot(s)
    data = json.loads(json.dumps(m.status_dict(limits=ALL_LIMITS)))
    assert data["planning"] == {"tick": 11} and len(data["memory"]) == 11
    assert data["learning_params"]["event_type_sensitivity"]["noise"] == 0.1


class _SignallingLock:
    """The manager's lock, instrumented: says when a second thread asks for it, and who holds it."""

    def __init__(self, first: int) -> None:
        self._lock = threading.Lock()
        self._first = first
        self.waiting = threading.Event()   # set when a thread other than `first` asks
        self.holder: int | None = None

    def __enter__(self) -> "_SignallingLock":
        me = threading.get_ident()
        if me != self._first:
            self.waiting.set()
        self._lock.acquire()
        self.holder = me
        return self

    def __exit__(self, *exc: object) -> None:
        self.holder = None
        self._lock.release()


def test_second_writer_cannot_publish_a_newer_version_with_an_older_state():
    # Contract-violating second writer: while writer A is inside freeze(), B
    # mutates the state and publishes.  With the freeze inside the manager's
    # lock, B waits for A, so versions follow the state's order.  If the
    # freeze ran before the lock, the test lets B publish first (it does not
    # wait on a lock A holds), and A's snapshot -- frozen before B's change --
    # would get the higher version: the last assertion catches that.
    main = threading.get_ident()
    m = StateSnapshotManager()
    lock = _SignallingLock(main)
    m._lock = lock  # type: ignore[misc]
    done = threading.Event()
    errors: list[BaseException] = []

    class HookedState(SelfState):
        __slots__ = ()
        armed = True

        def freeze(self):  # type: ignore[override]
            frozen = super().freeze()
            if HookedState.armed and threading.get_ident() == main:
                HookedState.armed = False
                b = threading.Thread(target=second_writer)
                b.start()
                assert lock.waiting.wait(10), "the second writer never reached the lock"
                if lock.holder != main:
                    # Freeze outside the lock: nothing stops B, so let it publish first.
                    assert done.wait(10), "the second writer did not finish"
                threads.append(b)
            return frozen

    def second_writer() -> None:
        try:
            step(s, 2)
            m.update_snapshot(s)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            done.set()

    threads: list[threading.Thread] = []
    s = HookedState()
    step(s, 1)
    first = m.update_snapshot(s)
    for t in threads:
        t.join(10)
    assert not errors, errors
    assert done.is_set() and m.version == 2
    last = m.get_snapshot()
    assert (first.version, first.tick) == (1, 1)
    assert (last.version, last.tick) == (2, 2), (
        "a higher version was published with an older state")


def test_snapshots_after_returns_the_history_oldest_first_and_skips_what_fell_out():
    state = SelfState()
    manager = StateSnapshotManager(history=4)
    assert manager.snapshots_after(0) == []
    published = []
    for k in range(10):
        step(state, k)
        published.append(manager.update_snapshot(state))
    assert manager.snapshots_after(0) == published[-4:]        # 6 fell out of the history
    assert manager.snapshots_after(8) == published[-2:]
    assert manager.snapshots_after(10) == []
    # Without a history: the latest alone, when it is newer.
    plain = StateSnapshotManager()
    assert plain.snapshots_after(0) == []
    latest = [plain.update_snapshot(state) for _ in range(3)][-1]
    assert plain.snapshots_after(0) == [latest] and plain.snapshots_after(3) == []
    for bad in (-1, 1.5, True, "4"):
        with pytest.raises(ValueError, match="history"):
            StateSnapshotManager(history=bad)  # type: ignore[arg-type]


def test_snapshots_after_is_consistent_while_the_writer_publishes():
    """A reader scanning the history while the writer publishes 20,000 versions sees, every
    time, consecutive versions ending no lower than the last it saw."""
    state = SelfState()
    manager = StateSnapshotManager(history=16)
    manager.update_snapshot(state)
    done = threading.Event()
    scans = [0]
    wrong: list[list[int]] = []

    def reader() -> None:
        last = 0
        while not done.is_set():
            got = [s.version for s in manager.snapshots_after(last - 5)]
            if got and (got != list(range(got[0], got[0] + len(got))) or len(got) > 16
                        or got[-1] < last):
                wrong.append(got)
            if got:
                last = got[-1]
            scans[0] += 1

    t = threading.Thread(target=reader)
    t.start()
    try:
        for _ in range(20_000):
            manager.update_snapshot(state)
    finally:
        done.set()
        t.join()
    assert scans[0] > 0 and not wrong, wrong[:3]
    print(f"{scans[0]} scans of the history during 20,000 publishes")
