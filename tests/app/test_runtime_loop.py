"""The runtime loop (issue #5): one tick, determinism, stop, errors, no I/O on its thread."""

import json
import logging
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import src.state.persistence as persistence_mod
from src.environment import Event, EventGenerator, EventQueue
from src.runtime import loop as loop_mod
from src.runtime.loop import LoopConfig, LoopSummary, run_loop, subjective_rate
from src.runtime.meaning import MeaningEngine
from src.state.persistence import SnapshotPersistence, list_snapshots, load_latest
from src.state.self_state import LEARNING_PARAMS_DEFAULT, ADAPTATION_PARAMS_DEFAULT, SelfState
from src.state.snapshot_manager import StateSnapshotManager

REPO = Path(__file__).resolve().parents[2]


class FakeClock:
    """Returns start, start + step, start + 2 step... (one value per call)."""

    def __init__(self, start=100.0, step=0.5):
        self.now, self.step = start - step, step

    def __call__(self):
        self.now += self.step
        return self.now


def queue_of(*events):
    q = EventQueue()
    for e in events:
        assert q.push(e)
    return q


def deterministic_state():
    return SelfState(life_id="life-test", birth_timestamp=0.0)


# ---- the meaning engine --------------------------------------------------------

LP, AP = LEARNING_PARAMS_DEFAULT, ADAPTATION_PARAMS_DEFAULT


@pytest.mark.parametrize("etype, intensity, base", [
    ("shock", -1.0, (-1.5, -0.10, -0.05)), ("noise", 0.3, (-0.3, -0.02, 0.0)),
    ("recovery", 0.5, (1.0, 0.05, 0.02)), ("decay", -0.5, (-0.5, -0.01, -0.01)),
    ("idle", 1.0, (-0.1, 0.0, 0.0)), ("sound", 0.4, (0.0, 0.0, 0.0))])
def test_meaning_per_type(etype, intensity, base):
    weight = {"shock": 1.5, "noise": 0.5, "recovery": 1.0, "decay": 1.0, "idle": 0.2,
              "sound": 1.0}[etype]
    modifier = 0.6 if etype != "sound" else 1.0  # default sensitivities 0.2 -> 0.5 + 0.1
    sig = min(abs(intensity) * weight * modifier, 1.0)
    engine = MeaningEngine()
    for stability, pattern, coef in ((1.0, "dampen", 0.5), (0.5, "absorb", 1.0),
                                     (0.2, "amplify", 1.5)):
        m = engine.process(etype, intensity, stability, 1.0, LP, AP)
        s = min(sig * (1.2 if stability < 0.5 else 1.0), 1.0)
        assert m.significance == pytest.approx(s)
        if s < 0.1:
            assert (m.pattern, m.energy, m.stability, m.integrity) == ("ignore", 0, 0, 0)
            continue
        assert m.pattern == pattern
        k = abs(intensity) * s * coef
        assert (m.energy, m.stability, m.integrity) == pytest.approx(tuple(b * k for b in base))


def test_meaning_context_and_parameters():
    engine = MeaningEngine()
    # low integrity x1.5 and low stability x1.2, clamped to 1
    assert engine.process("decay", 0.5, 1.0, 0.2, LP, AP).significance == pytest.approx(0.45)
    assert engine.process("decay", 0.5, 0.4, 0.2, LP, AP).significance == pytest.approx(0.54)
    assert engine.process("shock", 1.0, 0.4, 0.2, LP, AP).significance == 1.0
    # thresholds: adaptation's first, then learning's
    lp = {**LP, "significance_thresholds": {**LP["significance_thresholds"], "decay": 0.5}}
    assert engine.process("decay", 0.5, 1.0, 1.0, lp, AP).pattern == "dampen"  # 0.3 >= 0.1
    ap = {**AP, "behavior_thresholds": {**AP["behavior_thresholds"], "decay": 0.5}}
    assert engine.process("decay", 0.5, 1.0, 1.0, LP, ap).pattern == "ignore"
    # sensitivity 1.0 in both -> modifier 1.0
    lp1 = {**LP, "event_type_sensitivity": {"decay": 1.0}}
    ap1 = {**AP, "behavior_sensitivity": {"decay": 1.0}}
    assert engine.process("decay", 0.5, 1.0, 1.0, lp1, ap1).significance == pytest.approx(0.5)
    # coefficients: behaviour's over learning's
    ap2 = {**AP, "behavior_coefficients": {"dampen": 0.0}}
    m = engine.process("decay", 0.5, 1.0, 1.0, LP, ap2)
    assert m.pattern == "dampen" and m.energy == 0.0


# ---- one tick ------------------------------------------------------------------


def test_one_tick():
    s, m = deterministic_state(), StateSnapshotManager()
    q = queue_of(Event("shock", -1.0, 5.0), Event("noise", 0.1, 5.0), Event("idle", 0.5, 5.0))
    seen = []
    summary = run_loop(s, monitor=seen.append, tick_interval=0, event_queue=q,
                       snapshot_manager=m, max_ticks=1, clock=FakeClock(100.0, 0.5),
                       wall_clock=lambda: 1000.0)
    assert isinstance(summary, LoopSummary)
    assert (summary.ticks, summary.errors, summary.events, summary.last_tick) == (1, 0, 3, 1)
    assert seen == [s]
    v = s.read_vitals()
    # time: dt = 0.5, rate = 1 + 1 * 0 + 0.5 * (1 - 1) = 1
    assert (v.ticks, v.age, v.subjective_time) == (1, 0.5, 0.5)
    # shock: significance 1 x 1.5 x 0.6 = 0.9, dampened (stability 1 > 0.8) by 0.5:
    # k = 1 x 0.9 x 0.5; noise (0.03) and idle (0.06) are below the 0.1 threshold.
    k = 0.45
    assert v.energy == pytest.approx(100 - 1.5 * k)
    assert v.stability == pytest.approx(1 - 0.10 * k)
    assert v.integrity == pytest.approx(1 - 0.05 * k)
    assert v.last_event_intensity == 0.5 and v.last_significance == pytest.approx(0.9)
    assert s.last_pattern == "dampen"
    assert [(e.event_type, e.timestamp) for e in s.memory] == [("shock", 1000.0)]
    assert s.memory[0].meaning_significance == pytest.approx(0.9)
    assert list(s.recent_events) == ["shock"]
    assert list(s.energy_history) == [v.energy] and list(s.stability_history) == [v.stability]
    assert s.planning == {"potential_sequences": (),
                          "sources_used": {"memory_proxy": 1, "learning_proxy": 0,
                                           "adaptation_proxy": 0}}
    assert s.intelligence == {"processed_sources": {
        "memory_proxy_size": 1, "adaptation_proxy": v.energy, "learning_proxy": v.stability,
        "planning_proxy_size": 0}}
    # published at the tick, and once more on stop
    snap = m.get_snapshot()
    assert snap is summary.final_snapshot and snap.tick == 1 and m.version == 2
    assert snap.vitals == v and len(snap.state.memory) == 1
    assert summary.persistence is None and summary.dropped_events == 0


def test_second_tick_uses_the_last_intensity_for_subjective_time():
    s = deterministic_state()
    clock = FakeClock(0.0, 1.0)
    run_loop(s, tick_interval=0, event_queue=queue_of(Event("shock", -1.0), Event("idle", 0.5)),
             max_ticks=1, clock=clock)
    v1 = s.read_vitals()
    run_loop(s, tick_interval=0, max_ticks=1, clock=clock)  # next run: dt = 1 again
    v2 = s.read_vitals()
    rate = 1 + 1.0 * 0.5 + 0.5 * (v1.stability - 1)
    assert rate == subjective_rate(s.subjective_time_params, 0.5, v1.stability)
    assert v2.subjective_time - v1.subjective_time == pytest.approx(rate)
    assert v2.last_event_intensity == 0.0 and v2.ticks == 2
    # the rate is clamped
    st = s.subjective_time_params
    assert subjective_rate(st, 1.0, 1.0) == 2.0
    assert subjective_rate(st._replace(rate_max=1.5), 1.0, 1.0) == 1.5
    assert subjective_rate(st, 0.0, -10.0) == 0.1


def test_weakness_penalty():
    s = deterministic_state()
    s.set_vitals(energy=0.04)
    run_loop(s, tick_interval=0, max_ticks=1, clock=FakeClock(0.0, 2.0))
    p = 0.02 * 2.0
    v = s.read_vitals()
    assert (v.energy, v.stability, v.integrity) == pytest.approx((0.0, 1 - 2 * p, 1 - 2 * p))
    assert not s.active  # weak, never stopped
    run_loop(s, tick_interval=0, max_ticks=3)
    assert s.ticks == 4


def test_free_form_events_are_remembered_without_impact():
    s = deterministic_state()
    run_loop(s, tick_interval=0, event_queue=queue_of(Event("sound", 0.5)), max_ticks=1)
    v = s.read_vitals()
    assert (v.energy, v.stability, v.integrity) == (100.0, 1.0, 1.0)
    assert list(s.recent_events) == ["sound"] and s.memory[0].event_type == "sound"
    assert v.last_significance == 0.5  # weight 1.0, no sensitivity entry


def test_queue_overflow_is_counted():
    q = EventQueue(maxsize=100)
    pushed = [q.push(Event("noise", 0.0)) for _ in range(150)]
    assert pushed.count(False) == 50
    summary = run_loop(deterministic_state(), tick_interval=0, event_queue=q, max_ticks=1)
    assert summary.events == 100 and summary.dropped_events == 50 and len(q) == 0


# ---- deterministic runs --------------------------------------------------------


def seeded_run(seed, ticks=400):
    s = deterministic_state()
    summary = run_loop(s, tick_interval=0, generator=EventGenerator(seed=seed, rate=0.7),
                       max_ticks=ticks, clock=FakeClock(0.0, 0.01),
                       wall_clock=FakeClock(1_000_000.0, 0.01))
    return s, summary


def test_a_seeded_run_is_deterministic():
    s1, sum1 = seeded_run(11)
    s2, sum2 = seeded_run(11)
    assert s1.to_dict() == s2.to_dict()
    assert sum1.events == sum2.events > 200
    assert s1.ticks == 400 and s1.age == pytest.approx(4.0)
    # learning (ticks 75, 150...) and adaptation (100, 200...) ran
    assert s1.learning_params != LEARNING_PARAMS_DEFAULT
    assert s1.adaptation_params != ADAPTATION_PARAMS_DEFAULT
    ticks = [r["tick"] for r in s1.adaptation_history]
    assert ticks and set(ticks) <= {100, 200, 300, 400}
    for record in s1.adaptation_history:
        for group in record["changes"].values():
            for change in group.values():
                assert abs(change["delta"]) <= 0.01 + 1e-12
    # memory decay ran: older entries are lighter
    assert min(e.weight for e in s1.memory) < 1.0
    s3, _ = seeded_run(12)
    assert s3.to_dict() != s1.to_dict()


def test_seed_is_shorthand_for_a_generator():
    a, b = deterministic_state(), deterministic_state()
    run_loop(a, tick_interval=0, generator=EventGenerator(seed=3), max_ticks=50, clock=FakeClock(), wall_clock=FakeClock())
    run_loop(b, tick_interval=0, generator=EventGenerator(seed=3), max_ticks=50,
             clock=FakeClock(), wall_clock=FakeClock())
    assert a.to_dict() == b.to_dict()


# ---- stopping, pacing, errors ----------------------------------------------------


def run_in_thread(**kw):
    result = {}
    t = threading.Thread(target=lambda: result.update(summary=run_loop(**kw)))
    t.start()
    return t, result


def test_stop_event_is_honoured_within_the_tick_interval():
    s, m, stop = deterministic_state(), StateSnapshotManager(), threading.Event()
    t, result = run_in_thread(self_state=s, tick_interval=10.0, stop_event=stop,
                              snapshot_manager=m)
    assert m.wait_for_update(0, timeout=10) is not None  # first tick done: now waiting 10 s
    started = time.monotonic()
    stop.set()
    t.join(10)
    took = time.monotonic() - started
    assert not t.is_alive() and took < 1.0, took
    assert result["summary"].ticks == 1 and m.get_snapshot().tick == 1


def test_stop_at_full_speed_with_persistence(tmp_path):
    s, stop = deterministic_state(), threading.Event()
    p = SnapshotPersistence(tmp_path)
    t, result = run_in_thread(self_state=s, tick_interval=0, snapshot_period=1, stop_event=stop,
                              persistence=p, generator=EventGenerator(seed=1))
    deadline = time.monotonic() + 30
    while s.ticks <= 100 and time.monotonic() < deadline:
        time.sleep(0.01)  # polling until the loop has run at full speed for a while
    started = time.monotonic()
    stop.set()
    t.join(10)
    assert not t.is_alive() and time.monotonic() - started < 2.0
    assert p.close(5)  # the caller's to close: it flushes the final snapshot
    summary = result["summary"]
    assert summary.ticks > 100 and summary.errors == 0
    # the final snapshot was handed over on stop and written by the time close() returned
    assert summary.final_snapshot.tick == s.ticks == summary.last_tick
    assert p.stats.last_tick == s.ticks
    state, path = load_latest(tmp_path)
    assert path.name == f"snapshot_{s.ticks:06d}.json" and state.to_dict() == s.to_dict()


class FailingQueue:
    """pop_all raises on the calls listed in `fail_on` (1-based), or on every call."""

    def __init__(self, fail_on=None):
        self.calls, self.fail_on = 0, fail_on

    def pop_all(self):
        self.calls += 1
        if self.fail_on is None or self.calls in self.fail_on:
            raise RuntimeError(f"boom {self.calls}")
        return []


def test_an_exception_in_a_tick_is_logged_and_costs_integrity(caplog):
    s = deterministic_state()
    with caplog.at_level(logging.ERROR, logger="src.runtime.loop"):
        summary = run_loop(s, tick_interval=0, event_queue=FailingQueue({3}), max_ticks=5)
    assert (summary.ticks, summary.errors) == (5, 1)
    assert s.ticks == 4  # the failed tick did not count
    assert s.integrity == pytest.approx(1 - 0.05)
    records = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(records) == 1 and "tick failed" in records[0].getMessage()
    assert records[0].exc_info and "boom 3" in str(records[0].exc_info[1])


def test_a_failing_tick_never_busy_loops(caplog):
    s, q, stop = deterministic_state(), FailingQueue(), threading.Event()
    with caplog.at_level(logging.ERROR, logger="src.runtime.loop"):
        t, result = run_in_thread(self_state=s, tick_interval=0.05, stop_event=stop,
                                  event_queue=q)
        time.sleep(0.5)
        stop.set()
        t.join(5)
    assert not t.is_alive()
    assert 3 <= q.calls <= 13, q.calls  # ~10 ticks in 0.5 s: it waited out every tick
    assert result["summary"].errors == q.calls
    assert s.integrity == pytest.approx(max(0.0, 1 - 0.05 * q.calls))
    # tracebacks are rate-limited (once a second), the rest counted
    assert 1 <= len([r for r in caplog.records if r.levelno == logging.ERROR]) <= 2


def test_monitor_errors_are_logged_not_fatal(caplog):
    s = deterministic_state()

    def monitor(state):
        raise ValueError("bad monitor")

    with caplog.at_level(logging.ERROR, logger="src.runtime.loop"):
        summary = run_loop(s, monitor=monitor, tick_interval=0, max_ticks=5)
    assert (summary.ticks, summary.errors, summary.monitor_errors) == (5, 0, 5)
    assert s.ticks == 5 and s.integrity == 1.0
    assert any("monitor" in r.getMessage() for r in caplog.records)


def test_tick_interval_paces_the_loop():
    s = deterministic_state()
    started = time.monotonic()
    run_loop(s, tick_interval=0.02, max_ticks=10)  # no stop_event: it sleeps
    assert time.monotonic() - started >= 0.18
    assert s.age >= 0.17  # nine 0.02 s intervals between ten ticks


@pytest.mark.parametrize("kw, error", [
    ({"self_state": object()}, TypeError), ({"monitor": 3}, TypeError),
    ({"tick_interval": -1}, ValueError), ({"tick_interval": float("nan")}, ValueError),
    ({"tick_interval": "1"}, ValueError), ({"snapshot_period": 0}, ValueError),
    ({"snapshot_period": 1.5}, ValueError), ({"stop_event": object()}, TypeError),
    ({"event_queue": []}, TypeError), ({"snapshot_manager": object()}, TypeError),
    ({"persistence": "x"}, TypeError), ({"generator": 1}, TypeError),
    ({"max_ticks": -1}, ValueError), ({"clock": 1}, TypeError),
    ({"config": {"tick_interval": 0}}, TypeError), ({"data_dir": "x"}, TypeError),
    ({"seed": 1}, TypeError)])
def test_bad_arguments_are_refused_before_anything_runs(kw, error):
    args = {"self_state": deterministic_state(), "max_ticks": 1, **kw}
    with pytest.raises(error, match="run_loop"):
        run_loop(**args)


def test_the_loop_builds_no_persistence(tmp_path):
    # Building persistence is the command's: the loop refuses a folder and writes nothing.
    with pytest.raises(TypeError, match="persistence is built by the caller"):
        run_loop(deterministic_state(), data_dir=tmp_path, max_ticks=1)
    assert list(tmp_path.iterdir()) == []


def test_config_object_and_keyword_overrides_agree():
    a, b = deterministic_state(), deterministic_state()
    cfg = LoopConfig(tick_interval=0, max_ticks=7, clock=FakeClock(), wall_clock=FakeClock())
    run_loop(a, cfg, generator=EventGenerator(seed=5))
    run_loop(b, LoopConfig(tick_interval=5.0, max_ticks=1), tick_interval=0, max_ticks=7,
             clock=FakeClock(), wall_clock=FakeClock(), generator=EventGenerator(seed=5))
    assert a.ticks == b.ticks == 7 and a.to_dict() == b.to_dict()


# ---- persistence from the loop ---------------------------------------------------


def test_snapshots_go_to_persistence_every_period(tmp_path):
    s = deterministic_state()
    p = SnapshotPersistence(tmp_path, min_interval=0)
    submitted = []
    real_submit = p.submit
    p.submit = lambda snap: (submitted.append(snap.tick), real_submit(snap))  # type: ignore
    summary = run_loop(s, tick_interval=0, snapshot_period=10, persistence=p, max_ticks=25)
    assert submitted == [10, 20, 25]  # every 10th tick, then the final snapshot on stop
    assert p.thread is not None and p.thread.is_alive()  # the caller's: not closed by the loop
    assert p.close(5)
    assert summary.persistence.submitted == 3
    assert list_snapshots(tmp_path)[-1][0] == 25


def test_only_the_persistence_thread_writes_files(tmp_path, monkeypatch):
    writers = []
    real = persistence_mod.write_snapshot_file

    def recording(*args, **kw):
        writers.append(threading.get_ident())
        return real(*args, **kw)

    monkeypatch.setattr(persistence_mod, "write_snapshot_file", recording)
    loop_ident = threading.get_ident()
    p = SnapshotPersistence(tmp_path, min_interval=0)
    run_loop(deterministic_state(), tick_interval=0, snapshot_period=1, persistence=p,
             max_ticks=200, generator=EventGenerator(seed=4))
    assert p.close(5)
    assert writers and loop_ident not in writers
    assert set(writers) == {p.thread.ident}


AUDIT_CHILD = textwrap.dedent("""
    import json, sys, tempfile, threading, time
    sys.path.append({repo!r})
    from src.environment import Event, EventGenerator, EventQueue
    from src.runtime.loop import run_loop
    from src.state.persistence import SnapshotPersistence
    from src.state.self_state import SelfState
    from src.state.snapshot_manager import StateSnapshotManager

    opened = []
    def hook(event, args):
        if event == "open":
            opened.append((threading.get_ident(), str(args[0])))
    sys.addaudithook(hook)

    s, m, stop, q = SelfState(), StateSnapshotManager(), threading.Event(), EventQueue()
    seen = []
    ident = {{}}
    data_dir = tempfile.mkdtemp()  # (mkdtemp opens a file: not on the loop thread)
    p = SnapshotPersistence(data_dir)  # built here, as the command does: not by the loop
    def body():
        ident["loop"] = threading.get_ident()
        ident["summary"] = run_loop(s, monitor=lambda st: seen.append(1), tick_interval=0.0,
                                    snapshot_period=1, stop_event=stop, event_queue=q,
                                    snapshot_manager=m, persistence=p,
                                    generator=EventGenerator(seed=1, rate=0.7))
    t = threading.Thread(target=body)
    t.start()
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        q.push(Event("shock", 0.5))   # a producer thread, like an HTTP handler
        time.sleep(0.001)
    stop.set()
    t.join(10)
    p.close(5)
    loop_opens = [p for tid, p in opened if tid == ident["loop"]]
    other = [p for tid, p in opened if tid != ident["loop"] and ".json" in p]
    print(json.dumps({{"ticks": s.ticks, "loop_opens": loop_opens, "writer_json_opens": len(other),
                      "written": ident["summary"].persistence.written,
                      "alive": t.is_alive()}}))
""")


def test_the_loop_thread_opens_no_files(tmp_path):
    """Every "open" audit event (imports included) is recorded with its thread."""
    out = subprocess.run([sys.executable, "-c", AUDIT_CHILD.format(repo=str(REPO))],
                         capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print(result["ticks"], "ticks,", result["written"], "files written")
    assert not result["alive"] and result["ticks"] > 500
    assert result["loop_opens"] == []
    # the instrumentation works: the persistence thread's opens were seen
    assert result["written"] > 0 and result["writer_json_opens"] >= result["written"]


def test_the_tick_does_no_import(monkeypatch):
    """A module imported lazily inside a tick would open files on the loop thread."""
    s = deterministic_state()
    run_loop(s, tick_interval=0, generator=EventGenerator(seed=1), max_ticks=5)  # warm up
    before = set(sys.modules)
    run_loop(s, tick_interval=0, generator=EventGenerator(seed=1), max_ticks=300,
             snapshot_manager=StateSnapshotManager())
    assert set(sys.modules) == before
    assert loop_mod.__name__ in sys.modules
