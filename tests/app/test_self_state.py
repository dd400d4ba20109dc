"""SelfState: clamping, identity, caps, all-or-nothing writes, status dict, persistence."""

from __future__ import annotations

import dataclasses
import json
import math
import time
import uuid

import pytest

from csnapshot import FrozenDict, SnapshotLog, Vitals
from src.state.self_state import (
    ADAPTATION_PARAMS_DEFAULT,
    LEARNING_PARAMS_DEFAULT,
    SCHEMA_VERSION,
    STATUS_LIMIT_KEYS,
    FrozenState,
    MemoryEntry,
    SelfState,
    SubjectiveTimeParams,
    VitalValues,
)

VITALS = ("energy", "integrity", "stability", "fatigue", "tension", "age", "subjective_time",
          "ticks", "last_event_intensity", "last_significance")

# life-domain.md §4: the original's 22 default keys, in its order.
DEFAULT_STATUS_KEYS = [
    "life_id", "birth_timestamp", "age", "subjective_time", "ticks", "energy", "integrity",
    "stability", "fatigue", "tension", "active", "last_significance", "planning",
    "intelligence", "subjective_time_base_rate", "subjective_time_rate_min",
    "subjective_time_rate_max", "subjective_time_intensity_coeff",
    "subjective_time_stability_coeff", "last_event_intensity", "learning_params",
    "adaptation_params"]
OPTIONAL_STATUS_KEYS = {"life_id", "birth_timestamp", "planning", "intelligence",
                        "learning_params", "adaptation_params", "subjective_time_base_rate",
                        "subjective_time_rate_min", "subjective_time_rate_max",
                        "subjective_time_intensity_coeff", "subjective_time_stability_coeff"}
ALL_LIMITS = dict.fromkeys(STATUS_LIMIT_KEYS, 1000)


def entry(t: float, *, sig: float = 0.5, weight: float = 1.0, kind: str = "noise",
          feedback: dict | None = None) -> MemoryEntry:
    return MemoryEntry(kind, sig, t, weight, feedback)


def busy_state(n: int = 20) -> SelfState:
    """A state with something in every part."""
    s = SelfState(life_id="life-1", birth_timestamp=1000.0)
    for i in range(n):
        s.apply_delta({"ticks": 1, "age": 0.5, "subjective_time": 0.7, "energy": -1.0})
        s.add_memory(entry(1000.0 + i, sig=i / n))
        s.add_event(("noise", "shock")[i % 2])
        s.record_history()
        if i % 5 == 0:
            s.add_adaptation_record({"tick": i, "changes": {"noise": 0.01}, "old": [1, 2]})
    s.add_memory(entry(2000.0, sig=0.0, kind="feedback",
                       feedback={"action_id": "a1", "state_delta": {"energy": -0.5},
                                 "associated_events": ["noise", "shock"]}))
    s.set_vitals(last_event_intensity=0.4, last_significance=0.3, fatigue=2.0, tension=1.5)
    s.set_planning_and_intelligence({"potential_sequences": [["noise", "shock"]]},
                                    {"processed_sources": {"memory_proxy_size": n}})
    s.update_learning_params({"event_type_sensitivity": {"noise": 0.25}})
    s.update_adaptation_params({"behavior_coefficients": {"dampen": 0.6}})
    s.set_subjective_time_params(base_rate=1.2)
    s.last_pattern = "dampen"
    s.activated_memory = (s.memory[0],)
    return s


# ---- construction and identity ----------------------------------------------

def test_defaults():
    before = time.time()
    s = SelfState()
    v = s.read_vitals()
    assert v == VitalValues(100.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0, 0.0, 0.0)
    assert tuple(s.vitals.read()) == VITALS
    assert s.active and s.is_viable()
    assert uuid.UUID(s.life_id).version == 4
    assert before <= s.birth_timestamp <= time.time()
    assert s.caps == {"memory_cap": 50, "recent_events_cap": 1000, "history_cap": 1000,
                      "adaptation_history_cap": 50}
    assert len(s.memory) == len(s.recent_events) == len(s.energy_history) == 0
    assert s.planning == {} and s.intelligence == {}
    assert s.subjective_time_params == SubjectiveTimeParams(1.0, 0.1, 3.0, 1.0, 0.5)
    assert s.last_pattern == "" and s.activated_memory == ()
    assert isinstance(s.vitals, Vitals) and isinstance(s.memory, SnapshotLog)


def test_learning_and_adaptation_defaults_are_the_originals():
    types = ("noise", "decay", "recovery", "shock", "idle")
    s = SelfState()
    assert s.learning_params == {
        "event_type_sensitivity": dict.fromkeys(types, 0.2),
        "significance_thresholds": dict.fromkeys(types, 0.1),
        "response_coefficients": {"dampen": 0.5, "absorb": 1.0, "ignore": 0.0}}
    assert s.adaptation_params == {
        "behavior_sensitivity": dict.fromkeys(types, 0.2),
        "behavior_thresholds": dict.fromkeys(types, 0.1),
        "behavior_coefficients": {"dampen": 0.5, "absorb": 1.0, "ignore": 0.0}}
    assert s.learning_params == LEARNING_PARAMS_DEFAULT
    assert s.adaptation_params == ADAPTATION_PARAMS_DEFAULT


def test_identity_is_immutable():
    s = SelfState(life_id="abc", birth_timestamp=5.0)
    assert (s.life_id, s.birth_timestamp) == ("abc", 5.0)
    with pytest.raises(AttributeError, match="life_id is read-only"):
        s.life_id = "other"
    with pytest.raises(AttributeError, match="birth_timestamp is read-only"):
        s.birth_timestamp = 6.0
    assert (s.life_id, s.birth_timestamp) == ("abc", 5.0)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"life_id": ""}, ValueError, "life_id: must not be empty"),
    ({"life_id": 5}, TypeError, "life_id: expected a string, got 5"),
    ({"birth_timestamp": "now"}, TypeError, "birth_timestamp: expected a number"),
    ({"birth_timestamp": math.inf}, ValueError, "birth_timestamp: must be finite"),
    ({"memory_cap": 0}, ValueError, "memory_cap must be a positive int, got 0"),
    ({"memory_cap": -3}, ValueError, "memory_cap must be a positive int, got -3"),
    ({"memory_cap": 1.5}, ValueError, "memory_cap must be a positive int, got 1.5"),
    ({"memory_cap": True}, ValueError, "memory_cap must be a positive int, got True"),
    ({"recent_events_cap": "10"}, ValueError, "recent_events_cap must be a positive int"),
    ({"history_cap": None}, ValueError, "history_cap must be a positive int, got None"),
    ({"adaptation_history_cap": 0}, ValueError, "adaptation_history_cap must be a positive"),
])
def test_bad_constructor_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        SelfState(**kwargs)


def test_other_attributes_are_refused():
    s = SelfState()
    with pytest.raises(AttributeError):
        s.no_such_field = 1
    with pytest.raises(AttributeError, match="active is read-only"):
        s.active = False
    with pytest.raises(AttributeError):
        s.memory = []
    with pytest.raises(AttributeError):
        s.planning = {}
    with pytest.raises(AttributeError, match="cannot delete"):
        del s.energy
    assert not hasattr(s, "__dict__")


# ---- vitals ------------------------------------------------------------------

@pytest.mark.parametrize("name, value, expected", [
    ("energy", 175.0, 100.0), ("energy", -5.0, 0.0), ("energy", 75, 75.0),
    ("integrity", 1.5, 1.0), ("integrity", -0.1, 0.0),
    ("stability", 2.0, 1.0), ("stability", -1.0, 0.0),
    ("fatigue", -1.0, 0.0), ("fatigue", 1e9, 1e9), ("tension", -0.5, 0.0),
    ("age", -3.0, 0.0), ("subjective_time", -3.0, 0.0),
    ("last_event_intensity", 1.7, 1.0), ("last_event_intensity", -0.2, 0.0),
    ("last_significance", -2.5, -2.5), ("ticks", 7, 7), ("ticks", 7.0, 7),
])
def test_assignment_clamps_and_is_visible_in_the_record(name, value, expected):
    s = SelfState()
    setattr(s, name, value)
    assert getattr(s, name) == expected
    assert s.vitals.read()[name] == expected  # what a reader of the record sees, at once
    assert type(getattr(s, name)) is (int if name == "ticks" else float)


@pytest.mark.parametrize("name", ["energy", "integrity", "stability"])
def test_active_is_derived(name):
    s = SelfState()
    setattr(s, name, 0.0)
    assert not s.active and not s.read_vitals().active
    setattr(s, name, 0.5)
    assert s.active


def test_is_viable_is_the_stricter_test():
    s = SelfState()
    s.energy = 10.0
    assert s.active and not s.is_viable()


@pytest.mark.parametrize("name, value, error", [
    ("energy", "75", TypeError), ("energy", None, TypeError), ("energy", True, TypeError),
    ("energy", math.nan, ValueError), ("energy", math.inf, ValueError),
    ("ticks", -1, ValueError), ("ticks", 1.5, ValueError), ("ticks", "1", TypeError),
])
def test_bad_assignment_raises_and_changes_nothing(name, value, error):
    s = SelfState()
    before, version = s.read_vitals(), s.vitals.version
    with pytest.raises(error, match=name):
        setattr(s, name, value)
    assert s.read_vitals() == before and s.vitals.version == version


def test_apply_delta_is_one_clamped_write_section():
    s = SelfState()
    version = s.vitals.version
    s.apply_delta({"energy": -30.0, "stability": 0.5, "ticks": 3, "age": 1.25})
    assert s.vitals.version == version + 1
    v = s.read_vitals()
    assert (v.energy, v.stability, v.ticks, v.age) == (70.0, 1.0, 3, 1.25)
    s.apply_delta({"energy": -500.0, "integrity": -0.25})
    assert (s.energy, s.integrity) == (0.0, 0.75) and not s.active
    s.apply_delta({})  # nothing to write
    assert s.vitals.version == version + 2


@pytest.mark.parametrize("delta, error, match", [
    ({"energy": -1.0, "no_such_field": 1.0}, KeyError, "'no_such_field' is not a vital"),
    ({"energy": -1.0, "active": 1.0}, KeyError, "'active' is not a vital"),
    ({"energy": -1.0, "planning": 1.0}, KeyError, "deltas apply to energy, integrity"),
    ({"energy": -1.0, "stability": "x"}, TypeError, "stability"),
    ({"energy": -1.0, "stability": None}, TypeError, "stability"),
    ({"energy": -1.0, "stability": False}, TypeError, "stability"),
    ({"energy": -1.0, "stability": math.nan}, ValueError, "stability"),
    ({"energy": -1.0, "stability": -math.inf}, ValueError, "stability"),
    ({"energy": -1.0, "ticks": -1}, ValueError, "ticks delta must be >= 0"),
    ({"energy": -1.0, "ticks": 0.5}, ValueError, "ticks"),
])
def test_apply_delta_all_or_nothing(delta, error, match):
    s = SelfState()
    s.ticks = 5
    before, version = s.read_vitals(), s.vitals.version
    with pytest.raises(error, match=match):
        s.apply_delta(delta)
    assert s.read_vitals() == before and s.vitals.version == version


def test_apply_delta_takes_a_mapping():
    with pytest.raises(TypeError, match="mapping"):
        SelfState().apply_delta([("energy", 1.0)])


def test_set_vitals_is_one_section():
    s = SelfState()
    version = s.vitals.version
    s.set_vitals(energy=150.0, stability=0.5, ticks=4)
    assert s.vitals.version == version + 1
    assert (s.energy, s.stability, s.ticks) == (100.0, 0.5, 4)
    with pytest.raises(KeyError, match="nope"):
        s.set_vitals(energy=1.0, nope=2.0)
    with pytest.raises(ValueError, match="ticks must be >= 0"):
        s.set_vitals(energy=1.0, ticks=-1)
    assert s.energy == 100.0 and s.vitals.version == version + 1


# ---- memory ------------------------------------------------------------------

def test_memory_entry_is_immutable_and_frozen_deeply():
    fb = {"action_id": "a", "state_delta": {"energy": -1.0}, "associated_events": ["noise"]}
    e = MemoryEntry("feedback", 0, 5, feedback_data=fb)
    assert (e.meaning_significance, e.timestamp, e.weight) == (0.0, 5.0, 1.0)
    assert type(e.timestamp) is float
    with pytest.raises(dataclasses.FrozenInstanceError):
        e.weight = 2.0  # type: ignore[misc]
    # Refused either way; 3.11-3.13 raise TypeError here (a CPython bug with
    # frozen slotted dataclasses, python/cpython#105936), fixed ones AttributeError.
    with pytest.raises((AttributeError, TypeError)):
        e.extra = 1  # type: ignore[attr-defined]
    assert isinstance(e.feedback_data, FrozenDict)
    assert isinstance(e.feedback_data["state_delta"], FrozenDict)
    assert e.feedback_data["associated_events"] == ("noise",)
    with pytest.raises(TypeError):
        e.feedback_data["action_id"] = "b"  # type: ignore[index]
    fb["state_delta"]["energy"] = 99.0  # the caller's dict is not shared
    assert e.feedback_data["state_delta"]["energy"] == -1.0
    assert e.to_dict() == {"event_type": "feedback", "meaning_significance": 0.0,
                           "timestamp": 5.0, "weight": 1.0, "feedback_data": fb | {
                               "state_delta": {"energy": -1.0},
                               "associated_events": ("noise",)}}
    assert MemoryEntry.from_dict(json.loads(json.dumps(e.to_dict()))) == e


@pytest.mark.parametrize("args, error, match", [
    (("", 0.5, 1.0), ValueError, "event_type: must not be empty"),
    ((None, 0.5, 1.0), TypeError, "event_type: expected a string"),
    (("noise", 1.5, 1.0), ValueError, r"meaning_significance: must be in \[0.0, 1.0\], got 1.5"),
    (("noise", -0.1, 1.0), ValueError, "meaning_significance"),
    (("noise", "high", 1.0), TypeError, "meaning_significance: expected a number"),
    (("noise", 0.5, math.nan), ValueError, "timestamp: must be finite"),
    (("noise", 0.5, "now"), TypeError, "timestamp: expected a number"),
    (("noise", 0.5, 1.0, -0.5), ValueError, "weight: must be >= 0.0, got -0.5"),
    (("noise", 0.5, 1.0, math.inf), ValueError, "weight: must be finite"),
    (("noise", 0.5, 1.0, True), TypeError, "weight: expected a number, got True"),
    (("noise", 0.5, 1.0, 1.0, ["a"]), TypeError, "feedback_data: expected a mapping"),
    (("noise", 0.5, 1.0, 1.0, {"s": {1, 2}}), TypeError, r"feedback_data.s: a set is not JSON"),
    (("noise", 0.5, 1.0, 1.0, {1: "a"}), TypeError, "feedback_data: keys must be strings"),
    (("noise", 0.5, 1.0, 1.0, {"x": [math.nan]}), ValueError, r"feedback_data.x\[0\]"),
])
def test_memory_entry_validation(args, error, match):
    with pytest.raises(error, match=match):
        MemoryEntry(*args)


def test_memory_entry_from_dict_errors():
    with pytest.raises(ValueError, match="unknown key.*'colour'"):
        MemoryEntry.from_dict({"event_type": "noise", "meaning_significance": 0.1,
                               "timestamp": 1.0, "colour": "red"})
    with pytest.raises(ValueError, match="missing key.*timestamp"):
        MemoryEntry.from_dict({"event_type": "noise", "meaning_significance": 0.1})
    with pytest.raises(TypeError, match="expected a mapping"):
        MemoryEntry.from_dict(["noise"])  # type: ignore[arg-type]


def test_memory_is_a_fifo_bounded_log():
    s = SelfState(memory_cap=10)
    for i in range(25):
        (s.add_memory if i % 2 else s.memory.append)(entry(float(i)))
    assert len(s.memory) == 10
    assert [e.timestamp for e in s.memory] == [float(i) for i in range(15, 25)]
    with pytest.raises(TypeError, match="add_memory\\(\\) takes a MemoryEntry"):
        s.add_memory({"event_type": "noise"})  # type: ignore[arg-type]


def test_memory_cap_of_a_million_takes_1e5_appends():
    s = SelfState(memory_cap=10**6)
    e = entry(1.0)
    append = s.memory.append
    for _ in range(10**5):
        append(e)
    s.add_memory(entry(2.0))
    assert len(s.memory) == 10**5 + 1 and s.memory.maxlen == 10**6
    frozen = s.freeze()
    assert len(frozen.memory) == 10**5 + 1 and frozen.memory[-1].timestamp == 2.0
    status = frozen.status_dict(limits={"memory_limit": 3})
    assert [m["timestamp"] for m in status["memory"]] == [1.0, 1.0, 2.0]


def test_decay_memory_weights_follows_the_original_formula():
    s = SelfState()
    now = 100_000.0
    s.add_memory(entry(now, sig=0.0, weight=1.0))            # fresh, significance 0
    s.add_memory(entry(now - 86400.0, sig=1.0, weight=0.8))  # one day old, significance 1
    s.add_memory(entry(now + 50.0, sig=0.5, weight=0.001))   # from the "future": age 0
    before = s.freeze()
    s.decay_memory_weights(0.99, now=now, min_weight=0.0005)
    weights = [e.weight for e in s.memory]
    assert weights[0] == pytest.approx(1.0 * 0.99 * 1.0 * 0.5)
    assert weights[1] == pytest.approx(0.8 * 0.99 / 2.0 * 1.0)
    assert weights[2] == pytest.approx(0.001 * 0.99 * 0.75)
    assert [e.weight for e in before.memory] == [1.0, 0.8, 0.001]  # the old view is untouched
    s.decay_memory_weights(0.5, now=now, min_weight=0.3)
    assert [e.weight for e in s.memory] == [0.3, 0.3, 0.3]  # floored at min_weight


@pytest.mark.parametrize("kwargs, match", [
    ({"decay_factor": 0.0}, "decay_factor: must be > 0"),
    ({"decay_factor": 1.5}, r"decay_factor: must be in \[0.0, 1.0\]"),
    ({"decay_factor": "x"}, "decay_factor: expected a number"),
    ({"min_weight": -1.0}, "min_weight: must be >= 0"),
    ({"now": math.nan}, "now: must be finite"),
])
def test_decay_memory_weights_validation(kwargs, match):
    s = SelfState()
    s.add_memory(entry(1.0))
    with pytest.raises((TypeError, ValueError), match=match):
        s.decay_memory_weights(**kwargs)
    assert s.memory[0].weight == 1.0


def test_prune_memory_removes_light_entries():
    s = SelfState()
    for i, w in enumerate([0.5, 0.05, 0.1, 0.0, 0.09, 1.0]):
        s.add_memory(entry(float(i), weight=w))
    assert s.prune_memory() == 3
    assert [e.weight for e in s.memory] == [0.5, 0.1, 1.0]
    assert s.prune_memory(min_weight=0.6) == 2
    assert [e.timestamp for e in s.memory] == [5.0]
    with pytest.raises(ValueError, match=r"min_weight: must be in \[0.0, 1.0\], got 2"):
        s.prune_memory(2)


def test_events_and_histories_are_bounded():
    s = SelfState(recent_events_cap=3, history_cap=4, adaptation_history_cap=2)
    for i in range(10):
        s.add_event(f"e{i}")
        s.energy = float(i)
        s.record_history()
        s.add_adaptation_record({"tick": i})
    assert list(s.recent_events) == ["e7", "e8", "e9"]
    assert list(s.energy_history) == [6.0, 7.0, 8.0, 9.0]
    assert list(s.stability_history) == [1.0] * 4
    assert [r["tick"] for r in s.adaptation_history] == [8, 9]
    s.record_history(stability=0.5)
    assert s.stability_history[-1] == 0.5 and s.energy_history[-1] == 9.0


def test_log_writer_input_is_checked():
    s = SelfState()
    with pytest.raises(ValueError, match="event_type: must not be empty"):
        s.add_event("")
    with pytest.raises(TypeError, match="event_type: expected a string"):
        s.add_event(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="stability: must be finite"):
        s.record_history(energy=1.0, stability=math.nan)
    assert len(s.energy_history) == 0  # both checked before either is appended
    with pytest.raises(TypeError, match="adaptation record: expected a mapping"):
        s.add_adaptation_record([1, 2])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"adaptation record.when: a datetime"):
        import datetime
        s.add_adaptation_record({"when": datetime.datetime.now()})
    record = {"changes": {"noise": [0.1, 0.2]}}
    s.add_adaptation_record(record)
    record["changes"]["noise"].append(0.3)
    assert s.adaptation_history[-1] == {"changes": {"noise": (0.1, 0.2)}}


# ---- dicts -------------------------------------------------------------------

def test_param_updates_clamp_and_copy_on_write():
    s = SelfState()
    old = s.learning_params
    s.update_learning_params({"event_type_sensitivity": {"noise": 1.7, "shock": -0.2},
                              "response_coefficients": {"absorb": 2.5, "new_response": 0.7}})
    new = s.learning_params
    assert new["event_type_sensitivity"]["noise"] == 1.0
    assert new["event_type_sensitivity"]["shock"] == 0.0
    assert new["event_type_sensitivity"]["decay"] == 0.2
    assert new["response_coefficients"] == {"dampen": 0.5, "absorb": 2.0, "ignore": 0.0,
                                            "new_response": 0.7}
    assert old == LEARNING_PARAMS_DEFAULT  # what a reader held is unchanged
    s.update_adaptation_params({"behavior_thresholds": {"idle": 5}})
    assert s.adaptation_params["behavior_thresholds"]["idle"] == 1.0
    assert isinstance(new["event_type_sensitivity"], FrozenDict)
    with pytest.raises(TypeError):
        new["event_type_sensitivity"]["noise"] = 0.0
    with pytest.raises(TypeError):
        new["response_coefficients"] = {}


@pytest.mark.parametrize("changes, error, match", [
    ({"event_type_sensitivity": {"noise": 0.3}, "bogus_group": {"x": 1.0}}, KeyError,
     "unknown group 'bogus_group'; valid groups: event_type_sensitivity"),
    ({"event_type_sensitivity": {"noise": 0.3}, "significance_thresholds": {"noise": "x"}},
     TypeError, "learning_params.significance_thresholds.noise: expected a number, got 'x'"),
    ({"event_type_sensitivity": {"noise": 0.3}, "response_coefficients": {"absorb": math.nan}},
     ValueError, "response_coefficients.absorb: must be finite"),
    ({"event_type_sensitivity": 0.3}, TypeError, "expected a mapping of numbers"),
    ({"event_type_sensitivity": {3: 0.3}}, TypeError, "keys must be non-empty strings"),
    ([("event_type_sensitivity", {})], TypeError, "expected a mapping of groups"),
])
def test_param_updates_are_all_or_nothing(changes, error, match):
    s = SelfState()
    with pytest.raises(error, match=match):
        s.update_learning_params(changes)
    assert s.learning_params == LEARNING_PARAMS_DEFAULT


def test_planning_and_intelligence_are_replaced_together_and_frozen():
    s = SelfState()
    planning = {"potential_sequences": [["noise", "decay"]], "sources_used": {"memory_proxy": 2}}
    s.set_planning_and_intelligence(planning, {"processed_sources": {"planning_proxy_size": 1}})
    planning["sources_used"]["memory_proxy"] = 99
    assert s.planning == {"potential_sequences": (("noise", "decay"),),
                          "sources_used": {"memory_proxy": 2}}
    assert isinstance(s.planning["sources_used"], FrozenDict)
    assert s.intelligence["processed_sources"]["planning_proxy_size"] == 1
    with pytest.raises(TypeError, match="intelligence: expected a mapping"):
        s.set_planning_and_intelligence({"tick": 2}, None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="planning.x: a set is not JSON"):
        s.set_planning_and_intelligence({"x": {1}}, {})
    assert s.planning["sources_used"]["memory_proxy"] == 2  # unchanged by the failures


def test_subjective_time_params():
    s = SelfState()
    s.set_subjective_time_params(base_rate=1.5, rate_max=4)
    assert s.subjective_time_params == SubjectiveTimeParams(1.5, 0.1, 4.0, 1.0, 0.5)
    with pytest.raises(ValueError, match=r"rate_min \(5.0\) must not exceed rate_max \(4.0\)"):
        s.set_subjective_time_params(rate_min=5.0)
    with pytest.raises(ValueError, match="rate_min: must be >= 0"):
        s.set_subjective_time_params(rate_min=-1.0)
    with pytest.raises(TypeError, match="unknown subjective-time parameter.*speed"):
        s.set_subjective_time_params(speed=2.0)
    with pytest.raises(TypeError, match="base_rate: expected a number"):
        s.set_subjective_time_params(base_rate="fast")
    assert s.subjective_time_params.base_rate == 1.5


# ---- status dict -------------------------------------------------------------

def test_status_dict_default_keys_and_order():
    s = busy_state()
    status = s.get_safe_status_dict()
    assert list(status) == DEFAULT_STATUS_KEYS
    json.dumps(status)
    assert status["ticks"] == 20 and status["energy"] == 80.0 and status["active"] is True
    assert status["subjective_time_base_rate"] == 1.2
    assert status["learning_params"]["event_type_sensitivity"]["noise"] == 0.25
    assert s.get_safe_status_dict(limits={}) == status == s.get_safe_status_dict(limits=None)


def test_status_dict_without_optional_fields():
    status = busy_state().get_safe_status_dict(include_optional=False)
    assert list(status) == [k for k in DEFAULT_STATUS_KEYS if k not in OPTIONAL_STATUS_KEYS]
    assert len(status) == 11


def test_status_dict_never_shows_transient_or_internal_fields():
    status = busy_state().get_safe_status_dict(limits=ALL_LIMITS)
    assert not {"last_pattern", "activated_memory", "archive_memory"} & set(status)
    assert not [k for k in status if k.startswith("_")]


def test_status_dict_limits():
    s = busy_state()
    st = s.get_safe_status_dict(limits={"memory_limit": 2, "events_limit": 3,
                                        "energy_history_limit": 2,
                                        "stability_history_limit": 1,
                                        "adaptation_history_limit": 1})
    assert [m["timestamp"] for m in st["memory"]] == [1019.0, 2000.0]
    assert set(st["memory"][0]) == {"event_type", "meaning_significance", "timestamp",
                                    "weight", "feedback_data"}
    assert st["memory"][1]["feedback_data"]["associated_events"] == ("noise", "shock")
    assert st["recent_events"] == ["shock", "noise", "shock"]
    assert st["energy_history"] == [81.0, 80.0] and st["stability_history"] == [1.0]
    assert st["adaptation_history"] == [{"tick": 15, "changes": {"noise": 0.01},
                                         "old": (1, 2)}]
    json.dumps(st)
    big = s.get_safe_status_dict(limits=ALL_LIMITS)
    assert len(big["memory"]) == 21 and len(big["recent_events"]) == 20
    assert len(big["energy_history"]) == 20 and len(big["adaptation_history"]) == 4


@pytest.mark.parametrize("n", [0, -1, -100])
def test_status_dict_non_positive_limits(n):
    s = busy_state()
    st = s.get_safe_status_dict(limits=dict.fromkeys(STATUS_LIMIT_KEYS, n))
    assert st["memory"] == []  # memory_limit given: always present
    assert not {"recent_events", "energy_history", "stability_history",
                "adaptation_history"} & set(st)  # the others only when > 0


def test_status_dict_none_limit_counts_as_not_given():
    st = busy_state().get_safe_status_dict(limits={"memory_limit": None, "events_limit": 2})
    assert "memory" not in st and len(st["recent_events"]) == 2


@pytest.mark.parametrize("limits, error, match", [
    ({"memory": 3}, ValueError, "unknown limit 'memory'; valid limits: memory_limit"),
    ({"memory_limit": "3"}, TypeError, "memory_limit: expected an int, got '3'"),
    ({"events_limit": 2.0}, TypeError, "events_limit: expected an int"),
    ({"events_limit": True}, TypeError, "events_limit: expected an int"),
    ([("memory_limit", 3)], TypeError, "limits must be a mapping"),
])
def test_status_dict_bad_limits(limits, error, match):
    with pytest.raises(error, match=match):
        busy_state().get_safe_status_dict(limits=limits)


def test_status_dict_cannot_change_the_state():
    s = busy_state()
    st = s.get_safe_status_dict(limits=ALL_LIMITS)
    st["energy"] = -1
    st["memory"].clear()
    st["recent_events"].append("x")
    with pytest.raises(TypeError):
        st["planning"]["potential_sequences"] = []
    with pytest.raises(TypeError):
        st["learning_params"]["event_type_sensitivity"]["noise"] = 0.0
    again = s.get_safe_status_dict(limits=ALL_LIMITS)
    assert again["energy"] == 80.0 and len(again["memory"]) == 21
    assert again["recent_events"][-1] == "shock"


# ---- freeze ------------------------------------------------------------------

def test_freeze_is_a_point_in_time():
    s = busy_state()
    f = s.freeze()
    assert isinstance(f, FrozenState) and f.vitals_version == s.vitals.version
    assert f.tick == 20 and f.active and f.vitals == s.read_vitals()
    before = json.dumps(f.status_dict(limits=ALL_LIMITS))
    s.apply_delta({"ticks": 1, "energy": -50})
    s.add_memory(entry(3000.0))
    s.add_event("idle")
    s.update_learning_params({"event_type_sensitivity": {"noise": 0.9}})
    s.set_planning_and_intelligence({"a": 1}, {"b": 2})
    s.decay_memory_weights(now=5000.0)
    s.prune_memory(0.9)
    assert json.dumps(f.status_dict(limits=ALL_LIMITS)) == before
    with pytest.raises(dataclasses.FrozenInstanceError):
        f.planning = {}  # type: ignore[misc]


# ---- persistence -------------------------------------------------------------

def test_to_dict_round_trip_through_json():
    s = busy_state()
    d = s.to_dict()
    assert d["schema_version"] == SCHEMA_VERSION == 1
    assert list(d)[:3] == ["schema_version", "life_id", "birth_timestamp"]
    assert "last_pattern" not in d and "activated_memory" not in d
    assert len(d["memory"]) == 21 and d["memory"][-1]["feedback_data"]["action_id"] == "a1"
    text = json.dumps(d)
    back = SelfState.from_dict(json.loads(text))
    assert json.dumps(back.to_dict()) == text
    assert back.life_id == s.life_id and back.birth_timestamp == s.birth_timestamp
    assert back.read_vitals() == s.read_vitals()
    assert list(back.memory) == list(s.memory)
    assert back.last_pattern == "" and back.activated_memory == ()  # transient
    assert back.caps == s.caps


def test_from_dict_defaults_missing_fields_and_clamps():
    back = SelfState.from_dict({
        "schema_version": 1, "energy": 150.0, "stability": -2, "ticks": 12,
        "learning_params": {"event_type_sensitivity": {"noise": 5.0},
                            "response_coefficients": {"absorb": 9}},
        "adaptation_params": {"behavior_coefficients": {"dampen": -1}},
        "active": False})
    assert (back.energy, back.stability, back.integrity, back.ticks) == (100.0, 0.0, 1.0, 12)
    assert back.learning_params["event_type_sensitivity"] == {
        "noise": 1.0, "decay": 0.2, "recovery": 0.2, "shock": 0.2, "idle": 0.2}
    assert back.learning_params["response_coefficients"]["absorb"] == 2.0
    assert back.adaptation_params["behavior_coefficients"]["dampen"] == 0.0
    assert len(back.memory) == 0 and back.planning == {}
    uuid.UUID(back.life_id)


def test_from_dict_keeps_the_newest_entries_beyond_the_cap():
    d = busy_state().to_dict()
    back = SelfState.from_dict(d, memory_cap=5, recent_events_cap=2, history_cap=3,
                               adaptation_history_cap=1)
    assert [e["timestamp"] for e in back.to_dict()["memory"]] == [
        m["timestamp"] for m in d["memory"][-5:]]
    assert list(back.recent_events) == d["recent_events"][-2:]
    assert list(back.energy_history) == d["energy_history"][-3:]
    assert list(back.adaptation_history) == d["adaptation_history"][-1:]


def _with(**changes):
    d = busy_state(3).to_dict()
    d.update(changes)
    return d


@pytest.mark.parametrize("data, match", [
    (_with(energy="x"), "energy: expected a number, got 'x'"),
    (_with(energy=math.nan), "energy: must be finite"),
    (_with(integrity=None), "integrity: expected a number, got None"),
    (_with(ticks=-1), "ticks: expected an int >= 0, got -1"),
    (_with(ticks=1.5), "ticks: expected an int >= 0, got 1.5"),
    (_with(ticks=True), "ticks: expected a number, got True"),
    (_with(life_id=5), "life_id: expected a string, got 5"),
    (_with(life_id=""), "life_id: must not be empty"),
    (_with(birth_timestamp="yesterday"), "birth_timestamp: expected a number"),
    (_with(active="yes"), "active: expected a bool"),
    (_with(schema_version=2), "schema_version: this build reads version 1, got 2"),
    (_with(schema_version="1"), "schema_version: this build reads version 1, got '1'"),
    ({k: v for k, v in _with().items() if k != "schema_version"}, "schema_version: missing"),
    (_with(archive_memory="<ArchiveMemory>"), r"unknown field\(s\): archive_memory"),
    (_with(memory={"a": 1}), "memory: expected a list"),
    (_with(memory=[{"event_type": "noise", "meaning_significance": 0.5, "timestamp": 1.0,
                    "weight": -1}]), r"memory\[0\]: MemoryEntry.weight: must be >= 0"),
    (_with(memory=[{"event_type": "noise"}]), r"memory\[0\]: missing key"),
    (_with(memory=["noise"]), r"memory\[0\]: expected a mapping"),
    (_with(recent_events=["noise", 3]), r"recent_events\[1\]: expected a string, got 3"),
    (_with(energy_history=[1.0, "x"]), r"energy_history\[1\]: expected a number"),
    (_with(stability_history="abc"), "stability_history: expected a list"),
    (_with(adaptation_history=[[1]]), r"adaptation_history\[0\]: expected a mapping"),
    (_with(planning=[1]), "planning: expected a mapping"),
    (_with(intelligence={"x": {1, 2}}), "intelligence.x: a set is not JSON"),
    (_with(learning_params={"foo": {}}), "learning_params: unknown group 'foo'"),
    (_with(learning_params={"event_type_sensitivity": {"noise": "high"}}),
     "learning_params.event_type_sensitivity.noise: expected a number, got 'high'"),
    (_with(adaptation_params=[]), "adaptation_params: expected a mapping of groups"),
    (_with(subjective_time_rate_min=5.0),
     r"subjective_time_rate_min \(5.0\) must not exceed subjective_time_rate_max"),
    (_with(subjective_time_base_rate="x"), "subjective_time_base_rate: expected a number"),
    ([1, 2], "snapshot data: expected a mapping"),
])
def test_from_dict_bad_data_names_the_field(data, match):
    with pytest.raises(ValueError, match=match):
        SelfState.from_dict(data)


def _live(seed: int = 0) -> SelfState:
    from src.environment.generator import EventGenerator
    from src.runtime.loop import run_loop
    from src.state.snapshot_manager import StateSnapshotManager
    state = SelfState(memory_cap=9)
    run_loop(state, tick_interval=0.0, max_ticks=140, snapshot_manager=StateSnapshotManager(),
             generator=EventGenerator(seed=seed, rate=0.67))
    return state


def test_apply_changes_sets_scalars_replaces_dicts_and_logs_and_appends_named_logs():
    state = _live()
    replica = SelfState.from_dict(state.to_dict(), memory_cap=9)
    before = replica.freeze()
    target = _live(seed=1).to_dict()  # another life's values, as changes of this one
    changes = {k: v for k, v in target.items() if k not in ("life_id", "birth_timestamp")}
    changes["recent_events"] = ["one", "two"]
    replica.apply_changes(changes, appended=["recent_events"])
    after = replica.to_dict()
    for key, value in changes.items():
        if key == "recent_events":
            assert after[key] == (before.recent_events.to_list() + ["one", "two"])[-1000:]
        else:
            assert after[key] == value, key
    assert (after["life_id"], after["birth_timestamp"]) == (before.life_id, before.birth_timestamp)
    # Only what is given changes: an empty change leaves everything as it was.
    replica.apply_changes({"schema_version": SCHEMA_VERSION})
    assert replica.to_dict() == after


@pytest.mark.parametrize("changes,appended,match", [
    ({"schema_version": SCHEMA_VERSION, "energy": "x"}, (), "energy"),
    ({"schema_version": SCHEMA_VERSION, "memory": [{"event_type": ""}]}, ("memory",), "memory"),
    ({"schema_version": SCHEMA_VERSION, "colour": 1}, (), "colour"),
    ({"energy": 1.0}, (), "schema_version"),
    ({"schema_version": SCHEMA_VERSION}, ("energy",), "not a log: energy"),
    ([1, 2], (), "mapping"),
])
def test_apply_changes_refuses_bad_data_and_changes_nothing(changes, appended, match):
    state = _live()
    before = state.to_dict()
    # A good value beside the bad one is not applied either.
    bad = {**changes, "stability": 0.25} if isinstance(changes, dict) else changes
    with pytest.raises(ValueError, match=match):
        state.apply_changes(bad, appended)  # type: ignore[arg-type]
    assert state.to_dict() == before


def _decayed_and_grown(state: SelfState, added: int) -> tuple[list[MemoryEntry], list[MemoryEntry]]:
    """The memory log before, and after `added` appends (evicting at the cap) and a decay."""
    old = state.memory.view().to_list()
    for i in range(added):
        state.add_memory(MemoryEntry("noise", 0.5, 1000.0 + i))
    state.decay_memory_weights(0.5, now=2000.0)
    return old, state.memory.view().to_list()


@pytest.mark.parametrize("added", [0, 3, 9, 12])
def test_weight_changes_describe_a_decay_and_reweighted_rebuilds_it(added):
    from src.state.memory import reweighted, weight_changes
    state = _live()
    assert len(state.memory) == 9  # full: every append evicts
    old, new = _decayed_and_grown(state, added)
    change = weight_changes(old, new)
    assert change is not None
    skip, weights, appended = change
    assert (skip, len(weights), len(appended)) == (min(added, 9), 9 - min(added, 9),
                                                   min(added, 9))
    assert all(w < e.weight for w, e in zip(weights, old[skip:]))  # decayed: lighter
    assert reweighted(old, skip, weights) + appended == new


def test_weight_changes_are_none_when_more_than_weights_changed():
    from src.state.memory import weight_changes
    state = _live()
    old = state.memory.view().to_list()
    state.memory.remove_if(lambda e: e is old[4])  # removed from the middle (a prune)
    assert weight_changes(old, state.memory.view().to_list()) is None
    edited = [*old[:3], dataclasses.replace(old[3], event_type="other"), *old[4:]]
    assert weight_changes(old, edited) is None
    assert weight_changes(old, old) == (0, [e.weight for e in old], [])


def test_apply_changes_with_reweighted_memory_follows_a_decay():
    from src.state.memory import weight_changes
    state = _live()
    replica = SelfState.from_dict(state.to_dict(), memory_cap=9)
    old, new = _decayed_and_grown(state, 2)
    skip, weights, appended = weight_changes(old, new)
    replica.apply_changes({"schema_version": SCHEMA_VERSION,
                           "memory": [e.to_dict() for e in appended]}, ["memory"],
                          (skip, weights))
    assert replica.to_dict() == state.to_dict()


@pytest.mark.parametrize("reweighted,memory,match", [
    ((10, []), None, r"skip must be an int in \[0, 9\], got 10"),
    ((True, []), None, "skip must be an int"),
    ((2, [1.0] * 6), None, "expected a list of 7 weights"),
    ((0, (1.0,) * 9), None, "expected a list of 9 weights"),
    ((8, [-1.0]), None, "reweighted memory: MemoryEntry.weight: must be >= 0.0, got -1.0"),
    ((8, ["x"]), None, "reweighted memory: MemoryEntry.weight: expected a number"),
    ((8, [1.0]), [], "reweighted memory given with the whole memory log"),
])
def test_apply_changes_refuses_bad_reweighted_memory_and_changes_nothing(reweighted, memory,
                                                                         match):
    state = _live()
    before = state.to_dict()
    changes = {"schema_version": SCHEMA_VERSION, "stability": 0.25}
    if memory is not None:
        changes["memory"] = memory
    with pytest.raises(ValueError, match=match):
        state.apply_changes(changes, (), reweighted)
    assert state.to_dict() == before
