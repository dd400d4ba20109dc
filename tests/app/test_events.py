"""Events, the bounded event queue and the generator (issue #5)."""

import math
import threading
import time
from collections import Counter

import pytest

from csnapshot import FrozenDict
from src.environment import Event, EventGenerator, EventQueue, KNOWN_EVENT_TYPES
from src.environment.generator import DEFAULT_WEIGHTS, INTENSITY_RANGES

# ---- Event --------------------------------------------------------------------


def test_event_known_types_and_defaults():
    before = time.time()
    e = Event("shock", -0.5)
    assert (e.type, e.intensity, e.known) == ("shock", -0.5, True)
    assert before <= e.timestamp <= time.time()
    assert e.metadata == {} and isinstance(e.metadata, FrozenDict)
    assert set(KNOWN_EVENT_TYPES) == {"noise", "decay", "recovery", "shock", "idle"}
    assert Event("idle", 0, 12).to_dict() == {"type": "idle", "intensity": 0.0,
                                              "timestamp": 12.0, "metadata": {}}


@pytest.mark.parametrize("raw, stored", [(2.0, 1.0), (-3, -1.0), (1, 1.0), (0.25, 0.25),
                                         (-1.0, -1.0), (10**400, None)])
def test_intensity_is_clamped(raw, stored):
    if stored is None:  # an int too large for a float is not a finite real
        with pytest.raises(ValueError, match="too large"):
            Event("noise", raw)
        return
    e = Event("noise", raw)
    assert e.intensity == stored and type(e.intensity) is float


@pytest.mark.parametrize("bad, error", [("0.5", TypeError), (None, TypeError), (True, TypeError),
                                        ([1], TypeError), (math.nan, ValueError),
                                        (math.inf, ValueError), (-math.inf, ValueError)])
def test_bad_intensity_is_refused_naming_the_value(bad, error):
    with pytest.raises(error, match=r"Event\.intensity") as info:
        Event("noise", bad)
    assert repr(bad) in str(info.value)


@pytest.mark.parametrize("bad, error", [("x", TypeError), (math.nan, ValueError),
                                        (False, TypeError)])
def test_bad_timestamp_is_refused(bad, error):
    with pytest.raises(error, match=r"Event\.timestamp"):
        Event("noise", 0.1, bad)


def test_free_form_types_are_accepted():
    for name in ("sound", "user.ping", "A-1_b", "x" * 64):
        e = Event(name, 0.3)
        assert e.type == name and not e.known


@pytest.mark.parametrize("bad, error", [("", ValueError), ("9lives", ValueError),
                                        ("has space", ValueError), ("x" * 65, ValueError),
                                        ("ünïcode", ValueError), ("action", ValueError),
                                        ("feedback", ValueError), (None, TypeError),
                                        (b"noise", TypeError), (1, TypeError)])
def test_bad_types_are_refused(bad, error):
    with pytest.raises(error, match=r"Event\.type"):
        Event(bad, 0.1)


def test_metadata_is_frozen_and_must_be_json():
    md = {"source": "http", "tags": ["a", "b"], "n": {"k": 1.5}}
    e = Event("noise", 0.1, 1.0, md)
    md["source"] = "changed"
    assert e.metadata["source"] == "http"
    assert e.metadata["tags"] == ("a", "b")
    with pytest.raises(TypeError):
        e.metadata["x"] = 1  # type: ignore[index]
    with pytest.raises(TypeError, match="keys must be strings"):
        Event("noise", 0.1, 1.0, {1: "x"})
    with pytest.raises(ValueError, match="finite"):
        Event("noise", 0.1, 1.0, {"x": math.nan})
    with pytest.raises(TypeError, match="not JSON"):
        Event("noise", 0.1, 1.0, {"x": {1, 2}})
    with pytest.raises(TypeError, match="mapping"):
        Event("noise", 0.1, 1.0, ["x"])  # type: ignore[arg-type]


def test_event_is_immutable():
    e = Event("noise", 0.1)
    with pytest.raises(AttributeError):
        e.intensity = 0.9  # type: ignore[misc]


# ---- EventQueue ---------------------------------------------------------------


def test_queue_fifo_and_pop_all():
    q = EventQueue()
    assert q.maxsize == 100 and len(q) == 0 and q.is_empty() and q.pop_all() == []
    events = [Event("noise", i / 10, i) for i in range(5)]
    assert all(q.push(e) for e in events)
    assert len(q) == 5 and q.pop() is events[0]
    assert q.pop_all() == events[1:]
    assert q.is_empty() and q.pop() is None


def test_queue_overflow_drops_and_counts_without_blocking(caplog):
    q = EventQueue(maxsize=3)
    with caplog.at_level("WARNING", logger="src.environment.event_queue"):
        started = time.perf_counter()
        results = [q.push(Event("noise", 0.1)) for _ in range(10)]
        assert time.perf_counter() - started < 1.0  # never waits for room
    assert results == [True] * 3 + [False] * 7
    assert q.dropped == 7 and len(q) == 3
    # one warning per overflow episode, not one per dropped event
    assert len([r for r in caplog.records if "full" in r.getMessage()]) == 1
    q.pop_all()
    assert q.push(Event("noise", 0.1)) and q.dropped == 7
    assert q.reset_dropped() == 7 and q.dropped == 0


def test_queue_validation():
    for bad in (0, -1, 1.5, True, None):
        with pytest.raises(ValueError, match="maxsize"):
            EventQueue(bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Event"):
        EventQueue().push({"type": "noise"})  # type: ignore[arg-type]


def test_queue_concurrent_producers_lose_nothing_uncounted():
    q = EventQueue(maxsize=50)
    producers, per_producer = 4, 2000
    popped: list[Event] = []
    done = threading.Event()

    def produce(k):
        for i in range(per_producer):
            q.push(Event("noise", 0.0, float(k * per_producer + i)))

    def consume():
        while not done.is_set():
            popped.extend(q.pop_all())
        popped.extend(q.pop_all())

    consumer = threading.Thread(target=consume)
    consumer.start()
    threads = [threading.Thread(target=produce, args=(k,)) for k in range(producers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    consumer.join()
    assert len(popped) + q.dropped == producers * per_producer
    assert len({e.timestamp for e in popped}) == len(popped)  # none delivered twice
    for k in range(producers):  # each producer's events keep their order
        mine = [e.timestamp for e in popped if k * per_producer <= e.timestamp
                < (k + 1) * per_producer]
        assert mine == sorted(mine)


# ---- EventGenerator -----------------------------------------------------------


def test_generator_is_deterministic_with_a_seed():
    a = [EventGenerator(seed=5).generate(1.0) for _ in range(1)]
    g1, g2 = EventGenerator(seed=5), EventGenerator(seed=5)
    s1 = [(e.type, e.intensity) for e in (g1.generate(1.0) for _ in range(200))]
    s2 = [(e.type, e.intensity) for e in (g2.generate(1.0) for _ in range(200))]
    assert s1 == s2 and (a[0].type, a[0].intensity) == s1[0]
    s3 = [(e.type, e.intensity) for e in (EventGenerator(seed=6).generate(1.0)
                                           for _ in range(200))]
    assert s3 != s1
    assert EventGenerator(seed=5).seed == 5


def test_generator_weights_and_intensity_ranges():
    g = EventGenerator(seed=1)
    events = [g.generate(0.0) for _ in range(20_000)]
    counts = Counter(e.type for e in events)
    for t, w in DEFAULT_WEIGHTS.items():
        assert counts[t] / len(events) == pytest.approx(w, abs=0.015), t
    for e in events:
        lo, hi = INTENSITY_RANGES[e.type]
        assert lo <= e.intensity <= hi and e.timestamp == 0.0
    assert {e.intensity for e in events if e.type == "idle"} == {0.0}


def test_generator_rate_per_tick():
    assert all(len(EventGenerator(seed=s, rate=2.0).events(0.0)) == 2 for s in range(5))
    assert EventGenerator(seed=1, rate=0).events(0.0) == []
    g = EventGenerator(seed=3, rate=0.25)
    n = sum(len(g.events(0.0)) for _ in range(8000))
    assert n / 8000 == pytest.approx(0.25, abs=0.02)


def test_generator_validation():
    for bad in (-1, math.nan, math.inf, "1", True):
        with pytest.raises(ValueError, match="rate"):
            EventGenerator(rate=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="positive weight"):
        EventGenerator(weights={"noise": 0})
    with pytest.raises(ValueError, match="weights"):
        EventGenerator(weights={"noise": -1})
    with pytest.raises(ValueError, match="Event.type"):
        EventGenerator(weights={"bad type": 1})
    # a free-form type gets intensities in [-1, 1]
    e = EventGenerator(seed=0, weights={"sound": 1}).generate(0.0)
    assert e.type == "sound" and -1 <= e.intensity <= 1


def test_generator_as_a_producer_thread():
    q, stop = EventQueue(), threading.Event()
    g = EventGenerator(seed=2)
    result = []
    t = threading.Thread(target=lambda: result.append(g.run(q, stop, interval=0.01)))
    t.start()
    deadline = time.monotonic() + 5
    while len(q) < 3 and time.monotonic() < deadline:
        time.sleep(0.005)
    stop.set()
    t.join(2)
    assert not t.is_alive()
    assert result[0] >= 3 and result[0] == len(q.pop_all())
    with pytest.raises(ValueError, match="interval"):
        g.run(q, stop, interval=0)
