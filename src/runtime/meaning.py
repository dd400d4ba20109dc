"""The meaning engine: what an event means to Life, given its state and parameters.

The original project's ``MeaningEngine`` (``src/meaning/engine.py``), as one
pure function of numbers (no state copy per event; the original deep-copied
the whole state for each one):

1. **Significance** = ``|intensity| x type weight x sensitivity modifier``,
   then x1.5 if integrity < 0.3 and x1.2 if stability < 0.5, clamped to
   [0, 1].  Type weights (`TYPE_WEIGHTS`): shock 1.5, noise 0.5, recovery 1.0,
   decay 1.0, idle 0.2; a free-form type 1.0.  The sensitivity modifier is the
   mean of ``0.5 + 0.5 x learning_params.event_type_sensitivity[type]`` and
   ``0.5 + 0.5 x adaptation_params.behavior_sensitivity[type]`` (each 1.0 when
   the type has no entry), at most 1.5.
2. **Response pattern**: ``ignore`` if significance < the type's threshold
   (``adaptation_params.behavior_thresholds``, else
   ``learning_params.significance_thresholds``, else 0.1); otherwise
   ``dampen`` when stability > 0.8, ``amplify`` when stability < 0.3,
   ``absorb`` in between.
3. **Impact** on (energy, stability, integrity) = base impact (`BASE_IMPACTS`:
   shock (-1.5, -0.10, -0.05), noise (-0.3, -0.02, 0), recovery (+1.0, +0.05,
   +0.02), decay (-0.5, -0.01, -0.01), idle (-0.1, 0, 0); a free-form type
   (0, 0, 0)) x ``|intensity| x significance x coefficient``, where the
   coefficient of the pattern comes from ``adaptation_params.behavior_coefficients``,
   else ``learning_params.response_coefficients``, else `DEFAULT_COEFFICIENTS`
   (dampen 0.5, absorb 1.0, amplify 1.5; `src.state.params` owns the pattern
   names and these values); ``ignore`` has no impact.

The per-type weights, thresholds and coefficients are recomputed only when
the parameter dicts change (they are immutable `FrozenDict`s, compared by
identity), so `process` is a few float operations.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from src.state.params import RESPONSE_COEFFICIENTS_DEFAULT

__all__ = ["Meaning", "MeaningEngine", "TYPE_WEIGHTS", "BASE_IMPACTS", "DEFAULT_COEFFICIENTS",
           "FREE_FORM_WEIGHT", "BASE_THRESHOLD"]

TYPE_WEIGHTS: Mapping[str, float] = {"shock": 1.5, "noise": 0.5, "recovery": 1.0,
                                     "decay": 1.0, "idle": 0.2}
FREE_FORM_WEIGHT = 1.0
BASE_IMPACTS: Mapping[str, tuple[float, float, float]] = {  # (energy, stability, integrity)
    "shock": (-1.5, -0.10, -0.05),
    "noise": (-0.3, -0.02, 0.0),
    "recovery": (1.0, 0.05, 0.02),
    "decay": (-0.5, -0.01, -0.01),
    "idle": (-0.1, 0.0, 0.0),
}
_NO_IMPACT = (0.0, 0.0, 0.0)
BASE_THRESHOLD = 0.1
# Owned by the parameters module (with the pattern names); kept here under its old name.
DEFAULT_COEFFICIENTS: Mapping[str, float] = RESPONSE_COEFFICIENTS_DEFAULT
_MAX_MODIFIER = 1.5


class Meaning(NamedTuple):
    """What one event means: its significance, the response pattern, and the vital deltas."""

    significance: float
    pattern: str  # one of src.state.params.RESPONSE_PATTERNS
    energy: float
    stability: float
    integrity: float


_Row = tuple[float, float, tuple[float, float, float]]  # weight x modifier, threshold, impact


class MeaningEngine:
    """`process` events against the current stability, integrity and parameters.

    Holds only a cache derived from the last parameter dicts it saw; one
    engine per loop (it is not shared between threads).
    """

    __slots__ = ("_lp", "_ap", "_rows", "_coef")

    def __init__(self) -> None:
        self._lp: Mapping[str, Any] | None = None
        self._ap: Mapping[str, Any] | None = None
        self._rows: dict[str, _Row] = {}
        self._coef: dict[str, float] = dict(DEFAULT_COEFFICIENTS)

    def _configure(self, lp: Mapping[str, Any], ap: Mapping[str, Any]) -> None:
        self._lp, self._ap, self._rows = lp, ap, {}
        coef = dict(DEFAULT_COEFFICIENTS)
        coef.update(lp.get("response_coefficients", {}))
        coef.update(ap.get("behavior_coefficients", {}))
        self._coef = coef

    def _row(self, event_type: str) -> _Row:
        lp, ap = self._lp or {}, self._ap or {}
        ls = lp.get("event_type_sensitivity", {})
        bs = ap.get("behavior_sensitivity", {})
        lm = 0.5 + 0.5 * ls[event_type] if event_type in ls else 1.0
        am = 0.5 + 0.5 * bs[event_type] if event_type in bs else 1.0
        modifier = min((lm + am) / 2.0, _MAX_MODIFIER)
        threshold = ap.get("behavior_thresholds", {}).get(
            event_type, lp.get("significance_thresholds", {}).get(event_type, BASE_THRESHOLD))
        row = (TYPE_WEIGHTS.get(event_type, FREE_FORM_WEIGHT) * modifier, float(threshold),
               BASE_IMPACTS.get(event_type, _NO_IMPACT))
        self._rows[event_type] = row
        return row

    def process(self, event_type: str, intensity: float, stability: float, integrity: float,
                learning_params: Mapping[str, Any], adaptation_params: Mapping[str, Any]
                ) -> Meaning:
        """The meaning of an event of `event_type` and `intensity` (see the module doc)."""
        if learning_params is not self._lp or adaptation_params is not self._ap:
            self._configure(learning_params, adaptation_params)
        row = self._rows.get(event_type) or self._row(event_type)
        weight, threshold, (de, ds, di) = row
        a = -intensity if intensity < 0 else intensity
        sig = a * weight
        if integrity < 0.3:
            sig *= 1.5
        if stability < 0.5:
            sig *= 1.2
        sig = 0.0 if sig < 0.0 else 1.0 if sig > 1.0 else sig
        if sig < threshold:
            return Meaning(sig, "ignore", 0.0, 0.0, 0.0)
        pattern = "dampen" if stability > 0.8 else "amplify" if stability < 0.3 else "absorb"
        k = a * sig * self._coef[pattern]
        return Meaning(sig, pattern, de * k, ds * k, di * k)
