"""The learning and adaptation steps (src/runtime/learning.py): pure functions of the parameters."""

from __future__ import annotations

import pytest

from src.runtime.learning import (MAX_DELTA, MIN_DELTA, adaptation_changes, adaptation_record,
                                  learning_changes)
from src.state.memory import MemoryEntry
from src.state.params import ADAPTATION_PARAMS_DEFAULT, LEARNING_PARAMS_DEFAULT, PARAM_BOUNDS

LP, AP = LEARNING_PARAMS_DEFAULT, ADAPTATION_PARAMS_DEFAULT


def memory(*types_and_sigs: tuple[str, float]) -> list[MemoryEntry]:
    return [MemoryEntry(t, sig, float(i)) for i, (t, sig) in enumerate(types_and_sigs)]


def test_nothing_to_learn_from_gives_no_changes():
    assert learning_changes([], LP, {}) == {}
    # Only the loop's own entries: they are not events.
    assert learning_changes(memory(("action", 0.0), ("feedback", 0.0)), LP, {}) == {}


def test_a_frequent_type_gains_sensitivity_and_a_rare_one_loses_it():
    mem = memory(*[("shock", 0.3)] * 9, ("noise", 0.3))  # shock 90 %, noise 10 %: not < 10 %
    changes = learning_changes(mem, LP, {})
    sens = changes["event_type_sensitivity"]
    assert sens["shock"] == pytest.approx(0.2 + MAX_DELTA)
    for absent in ("decay", "recovery", "idle"):  # 0 % of the events
        assert sens[absent] == pytest.approx(0.2 - MAX_DELTA)
    assert "noise" not in sens  # exactly 10 %: inside the dead band


def test_thresholds_follow_the_mean_significance():
    mem = memory(("shock", 0.9), ("shock", 0.8), ("noise", 0.1), ("decay", 0.3))
    th = learning_changes(mem, LP, {})["significance_thresholds"]
    assert th["shock"] == pytest.approx(0.1 - MAX_DELTA)   # mean 0.85 > 0.5: lower
    assert th["noise"] == pytest.approx(0.1 + MAX_DELTA)   # mean 0.1 < 0.2: raise
    assert "decay" not in th and "idle" not in th          # in the band / never seen


def test_response_coefficients_can_rise_above_one():
    # absorb starts at 1.0; a clamp at 1.0 once kept it from ever rising.
    changes = learning_changes([], LP, {"absorb": 8, "dampen": 2})
    coef = changes["response_coefficients"]
    assert coef["absorb"] == pytest.approx(1.0 + MAX_DELTA)
    assert "dampen" not in coef  # 20 %: inside the band
    assert "ignore" not in coef  # 0 %, but already at its floor: no move


def test_steps_stop_at_the_groups_bounds():
    lo, hi = PARAM_BOUNDS["response_coefficients"]
    at_top = {**LP, "response_coefficients": {"absorb": hi}}
    assert learning_changes([], at_top, {"absorb": 1}) == {}
    near_top = {**LP, "response_coefficients": {"absorb": hi - MAX_DELTA / 2}}
    assert learning_changes([], near_top, {"absorb": 1}) == {
        "response_coefficients": {"absorb": hi}}
    s_hi = PARAM_BOUNDS["event_type_sensitivity"][1]
    full = {**LP, "event_type_sensitivity": {"shock": s_hi}}
    assert learning_changes(memory(("shock", 0.3)), full, {}).get("event_type_sensitivity",
                                                                  {}) == {}


def test_a_move_under_min_delta_is_dropped():
    lo = PARAM_BOUNDS["event_type_sensitivity"][0]
    barely = {**LP, "event_type_sensitivity": {"noise": lo + MIN_DELTA / 2}}
    mem = memory(("shock", 0.3))  # noise 0 %: it would fall, by less than MIN_DELTA
    assert "event_type_sensitivity" not in learning_changes(mem, barely, {})


def test_adaptation_moves_each_value_toward_its_learning_counterpart():
    lp = {"event_type_sensitivity": {"shock": 0.5, "noise": 0.195},
          "significance_thresholds": {"shock": 0.1},
          "response_coefficients": {"absorb": 1.5}}
    ap = {"behavior_sensitivity": {"shock": 0.2, "noise": 0.2},
          "behavior_thresholds": {"shock": 0.1},
          "behavior_coefficients": {"absorb": 1.0}}
    changes = adaptation_changes(lp, ap)
    assert changes["behavior_sensitivity"]["shock"] == pytest.approx(0.2 + MAX_DELTA)
    assert changes["behavior_sensitivity"]["noise"] == pytest.approx(0.195)  # the gap < MAX_DELTA
    assert "behavior_thresholds" not in changes  # equal already
    # Coefficients follow above 1.0 too (their bound is 2.0).
    assert changes["behavior_coefficients"]["absorb"] == pytest.approx(1.0 + MAX_DELTA)


def test_adaptation_of_the_defaults_changes_nothing():
    assert adaptation_changes(LP, AP) == {}


def test_adaptation_record_lists_old_new_and_delta():
    new = {"behavior_sensitivity": {"shock": 0.21}}
    changes = {"behavior_sensitivity": {"shock": 0.21}}
    rec = adaptation_record(100, 5.0, AP, new, changes, LP)
    assert rec["tick"] == 100 and rec["timestamp"] == 5.0
    assert rec["old_params"] is AP and rec["new_params"] is new
    assert rec["learning_params_snapshot"] is LP
    change = rec["changes"]["behavior_sensitivity"]["shock"]
    assert change["old"] == 0.2 and change["new"] == 0.21
    assert change["delta"] == pytest.approx(0.01)
