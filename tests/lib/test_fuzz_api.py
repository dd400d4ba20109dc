"""Fuzz of the public Vitals API: the native type and its pure-Python twin must agree.

A stateful hypothesis test drives one native record and one twin record (same
schema) with the same random sequence of calls -- writes, deltas, positional
writers, held write sections with an exception inside, every read form, copy
and pickle, construction and subclassing -- with hostile arguments: wrong
types, NaN and inf, integers far beyond int64, unknown and unhashable names,
float/int subclasses, objects whose ``__index__``/``__float__``/``__hash__``/
``__eq__`` raise, lie or re-enter the record.  After every call both must have
returned the same value or raised the same exception type, and both records
must hold the same values and version.

The main property is that no call crashes the process: the whole run happens
inside pytest, so a crash is a dead test run; the ASan stage of .ci/run runs
this file on the sanitizer build (scripts/sanitize.sh address).

``CSNAPSHOT_FUZZ_EXAMPLES`` (default 40) sets the number of call sequences.
"""

from __future__ import annotations

import copy
import math
import os
import pickle
from collections.abc import Mapping
from decimal import Decimal
from fractions import Fraction
from typing import Any, Callable

import pytest

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is in the test extra")
from hypothesis import HealthCheck, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.stateful import (  # noqa: E402
    Bundle, RuleBasedStateMachine, initialize, invariant, multiple, rule,
)

import csnapshot  # noqa: E402
from csnapshot import Field  # noqa: E402
from csnapshot import _native_vitals  # noqa: E402

NATIVE = _native_vitals.Vitals
TWIN = csnapshot.PyVitals
EXAMPLES = int(os.environ.get("CSNAPSHOT_FUZZ_EXAMPLES", "40"))
NAMES = ("a", "b", "c", "d")
# Short, so a write that meets a held section gives up quickly.
TIMEOUT = 0.01


class Boom(Exception):
    """Raised by the hostile objects below; must reach the caller unchanged."""


# ---- hostile objects ---------------------------------------------------------
#
# A value is described by a plain tuple (readable in hypothesis' report) and
# built once per implementation, because the re-entrant ones call back into
# the record they are being written to.

class FloatSub(float):
    def __float__(self) -> float:  # must be ignored: the value is the float itself
        return 99.0


class IntSub(int):
    def __index__(self) -> int:  # must be ignored: the value is the int itself
        return 7

    def __float__(self) -> float:
        return 7.0


class HasIndex:
    def __init__(self, result: Any) -> None:
        self.result = result

    def __index__(self) -> Any:
        if isinstance(self.result, BaseException):
            raise self.result
        return self.result


class HasFloat:
    def __init__(self, result: Any) -> None:
        self.result = result

    def __float__(self) -> Any:
        if isinstance(self.result, BaseException):
            raise self.result
        return self.result


class Reenter:
    """``__float__`` calls the record it is being written to, then returns 1.0."""

    def __init__(self, target: Any, action: str, name: str) -> None:
        self.target, self.action, self.name = target, action, name

    def __float__(self) -> float:
        t = self.target
        if self.action == "write":
            t.write(**{self.name: 2.0})
        elif self.action == "delta":
            t.apply_delta({self.name: 1})
        elif self.action == "read":
            t.read_tuple()
        elif self.action == "writer":
            t.writer(self.name)(3)
        return 1.0


class BadName(str):
    """A str subclass whose hash raises: never a field name, never a crash."""

    def __hash__(self) -> int:
        raise Boom("hash")


class AliasName(str):
    """Equal to a field name, with the same hash, but its __eq__ runs Python code."""

    def __eq__(self, other: object) -> bool:
        return str.__eq__(self, other)

    __hash__ = str.__hash__


class LyingName(str):
    """Hashes like a field name but compares unequal to everything."""

    def __eq__(self, other: object) -> bool:
        return False

    __hash__ = str.__hash__


class RaisingEqName(str):
    def __eq__(self, other: object) -> bool:
        raise Boom("eq")

    __hash__ = str.__hash__


class PlainMapping(Mapping):
    def __init__(self, d: dict) -> None:
        self._d = d

    def __getitem__(self, k: Any) -> Any:
        return self._d[k]

    def __iter__(self):
        return iter(self._d)

    def __len__(self) -> int:
        return len(self._d)


class DictSub(dict):
    pass


PLAIN_VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-1e6, max_value=1e6),
    st.integers(min_value=-100, max_value=100),
    st.integers(min_value=-2**70, max_value=2**70),
    st.sampled_from([2**63, 2**63 - 1, -2**63, -2**63 - 1, 10**400, -10**400, 2**1024,
                     1e308, -1e308, 2.0**63, -2.0**63, 0.5, -0.0, 5e-324]),
    st.sampled_from([True, False, None, "1.0", b"1", [], {}, (), object()]),
)

VALUE_DESCS = st.one_of(
    PLAIN_VALUES.map(lambda v: ("plain", v)),
    st.sampled_from([
        ("fraction",), ("decimal", "1.5"), ("decimal", "nan"), ("decimal", "1e999"),
        ("complex",), ("floatsub", 2.5), ("floatsub", math.inf), ("floatsub", 3.0),
        ("intsub", 5), ("intsub", 2**80),
        ("index", 4), ("index", 2**90), ("index", -2**90), ("index", "x"), ("index", 1.5),
        ("index", True), ("index", Boom("index")), ("index", OverflowError("o")),
        ("float", 2.5), ("float", math.nan), ("float", math.inf), ("float", "x"), ("float", 3),
        ("float", Boom("float")), ("float", FloatSub(1.0)),
        ("reenter", "write"), ("reenter", "delta"), ("reenter", "read"),
        ("reenter", "writer"),
    ]),
)

# Values that every field takes (ints and floats in and far out of range,
# integral float and int subclasses): weighted in, so that most calls get past
# validation and the sections themselves -- clamping, int64 saturation, float
# overflow of a delta -- are exercised.
SMALL_DESCS = st.one_of(
    st.floats(min_value=-1e12, max_value=1e12).map(lambda v: ("plain", float(int(v)))),
    st.integers(min_value=-1000, max_value=1000).map(lambda v: ("plain", v)),
)
EXTREME_DESCS = st.one_of(
    st.integers(min_value=-2**66, max_value=2**66).map(lambda v: ("plain", v)),
    st.sampled_from([("plain", 2**63), ("plain", -2**63 - 1), ("plain", -2**64), ("plain", 2**64),
                     ("plain", 10**400), ("plain", -10**400), ("plain", 2**63 - 1),
                     ("plain", -2**63), ("intsub", 5), ("intsub", 2**70), ("index", 4),
                     ("index", -2**70), ("floatsub", 3.0), ("plain", 1e300), ("plain", -1e300),
                     ("plain", 2.0**63), ("plain", -2.0**64)]),
)
SOME_DESCS = st.one_of(SMALL_DESCS, EXTREME_DESCS, EXTREME_DESCS, VALUE_DESCS)

NAME_DESCS = st.one_of(
    st.sampled_from(NAMES).map(lambda n: ("name", n)),
    st.sampled_from([
        ("name", "nope"), ("name", ""), ("plain", 1), ("plain", None), ("plain", 1.5),
        ("plain", b"a"), ("plain", ("a",)), ("unhashable", []), ("unhashable", {}),
        ("unhashable", bytearray(b"a")), ("badname", "a"), ("alias", "a"), ("alias", "b"),
        ("lying", "a"), ("raisingeq", "a"),
    ]),
)
# Names that can be dict keys (apply_delta's mapping).
KEY_DESCS = NAME_DESCS.filter(lambda d: d[0] != "unhashable")
SOME_KEYS = st.one_of(*[st.sampled_from(NAMES).map(lambda n: ("name", n))] * 4, KEY_DESCS)


def build_value(desc: tuple, target: Any) -> Any:
    kind = desc[0]
    if kind == "plain":
        return desc[1]
    if kind == "fraction":
        return Fraction(1, 3)
    if kind == "decimal":
        return Decimal(desc[1])
    if kind == "complex":
        return complex(1, 0)
    if kind == "floatsub":
        return FloatSub(desc[1])
    if kind == "intsub":
        return IntSub(desc[1])
    if kind == "index":
        return HasIndex(desc[1])
    if kind == "float":
        return HasFloat(desc[1])
    if kind == "reenter":
        return Reenter(target, desc[1], target.fields[0].name)
    raise AssertionError(desc)


def build_name(desc: tuple) -> Any:
    kind = desc[0]
    if kind in ("name", "plain"):
        return desc[1]
    if kind == "unhashable":
        return copy.copy(desc[1])
    return {"badname": BadName, "alias": AliasName, "lying": LyingName,
            "raisingeq": RaisingEqName}[kind](desc[1])


def normal(result: Any) -> Any:
    """A comparable form of a result: repr keeps -0.0 apart from 0.0 and int from float."""
    if isinstance(result, (type(None), bool, str)):
        return result
    if isinstance(result, (NATIVE, TWIN)):
        return ("Vitals", normal(result.read_versioned()))
    if callable(result):
        return ("callable", type(result).__name__)
    return repr(result)


def outcome(call: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return ("ok", normal(call()))
    except (Exception, Boom) as exc:  # every type counts, compared below
        return ("raised", type(exc).__name__)


def agree(label: str, native_call: Callable[[], Any], twin_call: Callable[[], Any]) -> tuple:
    n, t = outcome(native_call), outcome(twin_call)
    assert n == t, f"{label}: native {n} != twin {t}"
    return n


@st.composite
def fields(draw: Any) -> list[Field]:
    names = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=4, unique=True))
    out = []
    for name in names:
        kind = draw(st.sampled_from([float, int]))
        if kind is float:
            bound = st.none() | st.floats(min_value=-1e9, max_value=1e9)
        else:
            bound = st.none() | st.integers(min_value=-2**63, max_value=2**63 - 1)
        lo, hi = draw(bound), draw(bound)
        if lo is not None and hi is not None and lo > hi:
            lo, hi = hi, lo
        out.append(Field(name, kind=kind, min=lo, max=hi))
    return out


class NativeSub(NATIVE):
    pass


class TwinSub(TWIN):
    __slots__ = ()


class NativeNoInit(NATIVE):
    def __init__(self, *args: Any, **kwargs: Any) -> None:  # never calls super().__init__
        pass


class TwinNoInit(TWIN):
    __slots__ = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass


class VitalsPair(RuleBasedStateMachine):
    """One native and one twin record, called alike; they must stay equal."""

    records = Bundle("records")
    writers = Bundle("writers")

    def __init__(self) -> None:
        super().__init__()
        self.pairs: list[tuple] = []

    def track(self, pair: tuple) -> tuple:
        self.pairs.append(pair)
        return pair

    @initialize(target=records, schema=fields(), sub=st.booleans())
    def make(self, schema: list[Field], sub: bool) -> tuple:
        n_cls, t_cls = (NativeSub, TwinSub) if sub else (NATIVE, TWIN)
        return self.track((n_cls(schema, timeout=TIMEOUT), t_cls(schema, timeout=TIMEOUT)))

    @rule(target=records, schema=fields(),
          timeout=st.sampled_from([TIMEOUT, 0, -1, math.nan, math.inf, 1e300, 10**400, True,
                                   "1", None, 2.0]))
    def construct(self, schema: list[Field], timeout: Any) -> Any:
        res = agree("Vitals()", lambda: NATIVE(schema, timeout=timeout),
                    lambda: TWIN(schema, timeout=timeout))
        if res[0] != "ok" or timeout != 2.0:
            return multiple()
        return self.track((NATIVE(schema, timeout=TIMEOUT), TWIN(schema, timeout=TIMEOUT)))

    @rule(schema=st.sampled_from([[], "a", [Field("a"), Field("a")], [1], None, 5,
                                  [Field("a"), "b"], (Field(n) for n in "ab")]))
    def bad_schema(self, schema: Any) -> None:
        if not isinstance(schema, list) and not isinstance(schema, (str, int, type(None))):
            schema = list(schema)  # a generator: one per implementation
        agree("Vitals(bad)", lambda: NATIVE(schema), lambda: TWIN(schema))

    @rule(method=st.sampled_from(["read", "read_tuple", "read_versioned", "version", "fields",
                                  "get", "len", "iter", "write", "apply_delta", "writer",
                                  "copy", "pickle", "index", "contains", "init_again"]))
    def uninitialised(self, method: str) -> None:
        def call(cls: type) -> Callable[[], Any]:
            v = cls.__new__(cls) if method != "init_again" else cls([Field("a")])
            return {
                "read": lambda: v.read(), "read_tuple": lambda: v.read_tuple(),
                "read_versioned": lambda: v.read_versioned(), "version": lambda: v.version,
                "fields": lambda: v.fields, "get": lambda: v.get("a"), "len": lambda: len(v),
                "iter": lambda: list(v), "write": lambda: v.write(a=1.0),
                "apply_delta": lambda: v.apply_delta({"a": 1.0}),
                "writer": lambda: v.writer("a"), "copy": lambda: copy.copy(v),
                "pickle": lambda: pickle.dumps(v), "index": lambda: v.index("a"),
                "contains": lambda: "a" in v,
                "init_again": lambda: v.__init__([Field("b")]),
            }[method]
        agree(f"uninitialised {method}", call(NATIVE), call(TWIN))
        agree(f"no-super-init {method}", call(NativeNoInit), call(TwinNoInit))

    # ---- writes ----

    @rule(rec=records, data=st.data())
    def write(self, rec: tuple, data: Any) -> None:
        n, t = rec
        names = st.sampled_from(list(n) + ["nope"]) if data.draw(st.booleans()) else st.sampled_from(list(n))
        items = data.draw(st.lists(st.tuples(names, SOME_DESCS), max_size=5))
        agree("write", lambda: n.write(**{k: build_value(d, n) for k, d in items}),
              lambda: t.write(**{k: build_value(d, t) for k, d in items}))

    @rule(rec=records, data=st.data())
    def apply_delta(self, rec: tuple, data: Any) -> None:
        self.check_apply_delta(rec, data, "dict")

    @rule(rec=records, data=st.data())
    def apply_delta_again(self, rec: tuple, data: Any) -> None:
        # A second rule of the same call: deltas are where the two
        # implementations compute differently (int64 saturation, float sums).
        self.check_apply_delta(rec, data, "dict")

    @rule(rec=records, data=st.data(),
          shape=st.sampled_from(["mapping", "dictsub", "pairs", "none"]))
    def apply_delta_other_shapes(self, rec: tuple, data: Any, shape: str) -> None:
        self.check_apply_delta(rec, data, shape)

    def check_apply_delta(self, rec: tuple, data: Any, shape: str) -> None:
        own = st.sampled_from(list(rec[0])).map(lambda k: ("name", k))
        items = data.draw(st.lists(st.tuples(st.one_of(*[own] * 12, KEY_DESCS), SOME_DESCS),
                                   max_size=5))

        def call(v: Any) -> Callable[[], Any]:
            d = {}
            for kd, vd in items:
                try:
                    d[build_name(kd)] = build_value(vd, v)
                except Boom:  # a BadName key cannot even go into the dict
                    pass
            arg = {"dict": d, "mapping": PlainMapping(d), "dictsub": DictSub(d),
                   "pairs": list(d.items()), "none": None}[shape]
            return lambda: v.apply_delta(arg)
        agree(f"apply_delta({shape})", call(rec[0]), call(rec[1]))

    @rule(rec=records, data=st.data(), shape=st.sampled_from(["list", "tuple", "gen", "none"]))
    def write_tuple(self, rec: tuple, data: Any, shape: str) -> None:
        size = len(rec[0]) if data.draw(st.integers(0, 3)) else data.draw(st.integers(0, 6))
        values = data.draw(st.lists(SOME_DESCS, min_size=size, max_size=size))

        def call(v: Any) -> Callable[[], Any]:
            vals = [build_value(d, v) for d in values]
            arg = {"list": vals, "tuple": tuple(vals), "gen": (x for x in vals),
                   "none": None}[shape]
            return lambda: v.write_tuple(arg)
        agree("write_tuple", call(rec[0]), call(rec[1]))

    @rule(target=writers, rec=records, data=st.data())
    def writer(self, rec: tuple, data: Any) -> Any:
        n, t = rec
        own = st.sampled_from(list(n)).map(lambda k: ("name", k))
        if data.draw(st.integers(0, 3)):
            names = data.draw(st.lists(own, max_size=4, unique=True))
        else:
            names = data.draw(st.lists(st.one_of(own, NAME_DESCS), max_size=4))
        res = agree("writer", lambda: n.writer(*[build_name(d) for d in names]),
                    lambda: t.writer(*[build_name(d) for d in names]))
        if res[0] != "ok":
            return multiple()
        return (n.writer(*[build_name(d) for d in names]),
                t.writer(*[build_name(d) for d in names]), rec)

    @rule(target=writers, rec=records, count=st.integers(min_value=30, max_value=40))
    def too_many_fields(self, rec: tuple, count: int) -> Any:
        names = [f"f{i}" for i in range(count)]
        schema = [Field(name) for name in names]
        n, t = NATIVE(schema), TWIN(schema)
        agree("writer(many)", lambda: n.writer(*names), lambda: t.writer(*names))
        return multiple()

    @rule(w=writers, data=st.data())
    def call_writer(self, w: tuple, data: Any) -> None:
        nw, tw, (n, t) = w
        size = data.draw(st.integers(0, 5))
        if data.draw(st.integers(0, 3)):
            size = nw.__repr__().count(",") + (0 if repr(nw) == "<FieldWriter ()>" else 1)
        values = data.draw(st.lists(SOME_DESCS, min_size=size, max_size=size))
        agree("writer()()", lambda: nw(*[build_value(d, n) for d in values]),
              lambda: tw(*[build_value(d, t) for d in values]))
        agree("repr(writer)", lambda: repr(nw), lambda: repr(tw))

    @rule(w=writers)
    def writer_internals(self, w: tuple) -> None:
        nw, tw, _ = w
        agree("FieldWriter()", lambda: type(nw)(), lambda: type(tw)())
        agree("FieldWriter(forged)", lambda: type(nw)(None, None, (100000,)),
              lambda: type(tw)(None, None, (100000,)))
        agree("pickle(writer)", lambda: pickle.dumps(nw), lambda: pickle.dumps(tw))
        agree("copy(writer)", lambda: copy.copy(nw), lambda: copy.copy(tw))

    @rule(rec=records, write_inside=st.sampled_from([None, "write", "delta", "writer"]),
          get_inside=st.sampled_from(NAMES), raise_inside=st.booleans())
    def held_section(self, rec: tuple, write_inside: Any, get_inside: str,
                     raise_inside: bool) -> None:
        # A held section (the stalled-writer test hook) with, inside it, a
        # single-load read, a write that must give up, and an exception.
        def call(v: Any) -> Callable[[], Any]:
            def run() -> Any:
                seen = []
                with v._hold_write_section():
                    seen.append(outcome(lambda: v.get(get_inside)))
                    seen.append(outcome(lambda: v.version))
                    if write_inside == "write":
                        seen.append(outcome(lambda: v.write(**{v.fields[0].name: 1})))
                    elif write_inside == "delta":
                        seen.append(outcome(lambda: v.apply_delta({v.fields[0].name: 1})))
                    elif write_inside == "writer":
                        seen.append(outcome(lambda: v.writer(v.fields[0].name)(1)))
                    if raise_inside:
                        raise Boom(repr(seen))
                return seen
            return run
        agree("held section", call(rec[0]), call(rec[1]))

    # ---- reads ----

    @rule(rec=records, name=NAME_DESCS,
          form=st.sampled_from(["get", "getitem", "in", "index"]))
    def lookup(self, rec: tuple, name: tuple, form: str) -> None:
        def call(v: Any) -> Callable[[], Any]:
            key = build_name(name)
            return {"get": lambda: v.get(key), "getitem": lambda: v[key],
                    "in": lambda: key in v, "index": lambda: v.index(key)}[form]
        agree(form, call(rec[0]), call(rec[1]))

    @rule(rec=records)
    def read_forms(self, rec: tuple) -> None:
        n, t = rec
        for label, f in (("read", lambda v: v.read()), ("read_tuple", lambda v: v.read_tuple()),
                         ("read_versioned", lambda v: v.read_versioned()),
                         ("version", lambda v: v.version), ("fields", lambda v: v.fields),
                         ("len", len), ("iter", list), ("repr", repr)):
            agree(label, lambda: f(n), lambda: f(t))

    @rule(target=records, rec=records,
          how=st.sampled_from(["copy", "deepcopy", "pickle", "reduce-bad"]))
    def copy_or_pickle(self, rec: tuple, how: str) -> Any:
        def call(v: Any) -> Callable[[], Any]:
            if how == "copy":
                return lambda: copy.copy(v)
            if how == "deepcopy":
                return lambda: copy.deepcopy(v)
            if how == "pickle":
                return lambda: pickle.loads(pickle.dumps(v))
            # The restore function with arguments pickle data could carry.
            fn, args = v.__reduce__()
            return lambda: fn(int, *args[1:])
        res = agree(how, call(rec[0]), call(rec[1]))
        if res[0] != "ok":
            return multiple()
        return self.track((call(rec[0])(), call(rec[1])()))

    @rule(rec=records, data=st.data())
    def restore(self, rec: tuple, data: Any) -> None:
        # The unpickle function with values pickle data could carry: the
        # wrong count, NaN, hostile numbers; validated like any write.
        size = len(rec[0]) if data.draw(st.booleans()) else data.draw(st.integers(0, 6))
        values = data.draw(st.lists(SOME_DESCS, min_size=size, max_size=size))

        def call(v: Any) -> Callable[[], Any]:
            fn, (cls, schema, _, timeout) = v.__reduce__()
            vals = tuple(build_value(d, v) for d in values)
            return lambda: fn(cls, schema, vals, timeout)
        agree("_restore", call(rec[0]), call(rec[1]))

    @invariant()
    def same_state(self) -> None:
        # Every pair ever made, after every step: same values, same version.
        for n, t in self.pairs:
            assert repr(n.read_versioned()) == repr(t.read_versioned()), (n, t)


VitalsPair.TestCase.settings = settings(
    max_examples=EXAMPLES, stateful_step_count=30, deadline=None, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                           HealthCheck.data_too_large])
test_native_and_twin_agree = VitalsPair.TestCase
