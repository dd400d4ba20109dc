"""The Vitals contract, held against the native `Vitals` (both layouts), its pure-Python twin
and `SharedVitals`.

`SharedVitals` runs wherever the API overlaps: a test it cannot take (copying,
pickling and the repr of an in-process record) is listed in SHARED_SKIPS.
"""

import copy
import math
import pickle
import weakref
from fractions import Fraction

import pytest

from csnapshot import Field, StalledWriterError

import csnapshot



class LatchVitals(csnapshot._native_vitals.Vitals if csnapshot._native_vitals else object):
    """The native `Vitals`, latch layout by default (as tests/lib/conftest.py's)."""

    def __init__(self, fields, *, timeout=1.0, layout="latch"):
        super().__init__(fields, timeout=timeout, layout=layout)


IMPLEMENTATIONS = {"native": csnapshot._native_vitals.Vitals if csnapshot._native_vitals else None,
                   "native-latch": LatchVitals if csnapshot._native_vitals else None,
                   "python": csnapshot.PyVitals}

SHARED_SKIPS = {
    "test_copy_and_pickle_make_independent_records":
        "a segment handle is not copied or pickled: open the segment by name instead",
    "test_repr_shows_values": "a SharedVitals repr also names its file and role",
}


@pytest.fixture(params=sorted(IMPLEMENTATIONS) + ["shared"])
def Vitals(request):
    """The type under test: native Vitals (classic, latch), its twin, SharedVitals (a writer's handle)."""
    if request.param == "shared":
        reason = SHARED_SKIPS.get(request.node.originalname)
        if reason:
            pytest.skip(reason)
        return request.getfixturevalue("SharedVitalsType")
    cls = IMPLEMENTATIONS[request.param]
    if cls is None:
        pytest.fail("the compiled extension is not importable")
    return cls


def schema():
    return [Field("energy", kind=float, default=100.0, min=0.0, max=100.0),
            Field("stability", kind=float, default=1.0, min=0.0, max=1.0),
            Field("ticks", kind=int, default=0, min=0),
            Field("tension")]


# ---- schema ---------------------------------------------------------------

def test_field_defaults_and_repr():
    f = Field("x", kind=int, min=5, max=9)
    assert (f.name, f.kind, f.default, f.min, f.max) == ("x", int, 5, 5, 9)
    assert repr(f) == "Field('x', kind=int, default=5, min=5, max=9)"
    assert Field("y").default == 0.0 and Field("y", max=-1.0).default == -1.0
    assert Field("x", kind=int, min=5, max=9) == f and hash(Field("x", kind=int, min=5, max=9)) == hash(f)
    assert pickle.loads(pickle.dumps(f)) == f
    with pytest.raises(AttributeError):
        f.name = "z"


@pytest.mark.parametrize("kwargs, match", [
    (dict(name="a", min=1.0, max=0.0), "min 1.0 is greater than max 0.0"),
    (dict(name="a", default=5.0, max=1.0), "default 5.0 is outside"),
    (dict(name="a", default=-1, kind=int, min=0), "default -1 is outside"),
    (dict(name="a", kind=str), "kind must be float or int"),
    (dict(name="not an identifier"), "identifier"),
    (dict(name="a", min=float("nan")), "NaN"),
    (dict(name="a", kind=int, max=1.5), "not an integer"),
    (dict(name="a", kind=int, max=2**64), "int64 range"),
    (dict(name="a", default="1"), "must be a number"),
    (dict(name="a", default=float("inf")), "finite"),
])
def test_bad_field_raises_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Field(**kwargs)


def test_bad_schema(Vitals):
    with pytest.raises(ValueError, match="at least one Field"):
        Vitals([])
    with pytest.raises(ValueError, match="duplicate field name 'a'"):
        Vitals([Field("a"), Field("b"), Field("a")])
    with pytest.raises(TypeError, match="Field objects"):
        Vitals(["a"])
    with pytest.raises(TypeError):
        Vitals(Field("a"))
    with pytest.raises(ValueError, match="timeout"):
        Vitals([Field("a")], timeout=0)


# ---- reads ----------------------------------------------------------------

def test_defaults_and_read_forms(Vitals):
    v = Vitals(schema())
    assert v.read() == {"energy": 100.0, "stability": 1.0, "ticks": 0, "tension": 0.0}
    assert v.read_tuple() == (100.0, 1.0, 0, 0.0)
    assert v.read_versioned() == (0, (100.0, 1.0, 0, 0.0))
    assert type(v.read_tuple()[2]) is int and type(v.read_tuple()[0]) is float
    assert v.get("ticks") == 0 and v["energy"] == 100.0
    assert [f.name for f in v.fields] == ["energy", "stability", "ticks", "tension"]
    assert list(v) == ["energy", "stability", "ticks", "tension"] and len(v) == 4
    assert "energy" in v and "nope" not in v and 3 not in v
    assert v.version == 0


def test_read_returns_fresh_dict(Vitals):
    v = Vitals(schema())
    d = v.read()
    d["energy"] = -1
    assert v.read()["energy"] == 100.0


def test_unknown_name_on_read(Vitals):
    v = Vitals(schema())
    with pytest.raises(KeyError, match="unknown field 'nope'; valid fields: energy, stability, ticks, tension"):
        v.get("nope")
    with pytest.raises(KeyError, match="unknown field"):
        v["nope"]
    with pytest.raises(KeyError, match="unknown field"):
        v[["unhashable"]]


def test_membership_is_false_for_anything_but_a_field_name(Vitals):
    v = Vitals(schema())
    assert "energy" in v and "nope" not in v
    # Unhashable or odd names are simply not fields: never an error.
    for name in ([], {}, set(), ["energy"], bytearray(b"energy"), None, 1, 1.5):
        assert (name in v) is False, name
    assert v.version == 0


# ---- writes ---------------------------------------------------------------

def test_write_clamps_and_counts_versions(Vitals):
    v = Vitals(schema())
    v.write(energy=150.0)
    assert v["energy"] == 100.0 and v.version == 1
    v.write(energy=-3, stability=0.5, ticks=7)
    assert v.read() == {"energy": 0.0, "stability": 0.5, "ticks": 7, "tension": 0.0}
    assert v.version == 2
    assert type(v["energy"]) is float
    v.write()  # nothing to write: no section
    assert v.version == 2


def test_apply_delta_is_one_section(Vitals):
    v = Vitals(schema())
    v.apply_delta({"energy": -30.5, "ticks": 3, "stability": 5})
    assert v.read() == {"energy": 69.5, "stability": 1.0, "ticks": 3, "tension": 0.0}
    assert v.version == 1
    v.apply_delta({"ticks": -10})
    assert v["ticks"] == 0
    v.apply_delta({})
    assert v.version == 2


def test_int_delta_beyond_int64_saturates_before_it_is_added(Vitals):
    # The slot holds an int64: a delta is saturated to that range, then added
    # (saturating), then clamped.  Found by tests/lib/test_fuzz_api.py.
    v = Vitals([Field("n", kind=int)])
    v.write(n=5)
    v.apply_delta({"n": -2**64})
    assert v["n"] == -2**63 + 5
    v.apply_delta({"n": 10**400})        # far beyond a float, too: no OverflowError
    assert v["n"] == (-2**63 + 5) + (2**63 - 1) == 4
    v.apply_delta({"n": -10**400})
    assert v["n"] == 4 - 2**63
    assert v.version == 4


def test_writer_of_no_fields_writes_nothing(Vitals):
    v = Vitals(schema())
    w = v.writer()
    w()
    assert v.version == 0
    with pytest.raises(TypeError, match="takes 0 values"):
        w(1.0)


def test_int_field_saturates(Vitals):
    v = Vitals([Field("n", kind=int)])
    v.write(n=2**70)
    assert v["n"] == 2**63 - 1
    v.apply_delta({"n": 5})
    assert v["n"] == 2**63 - 1
    v.write(n=-(2**70))
    assert v["n"] == -(2**63)
    v.write(n=4.0)
    assert v["n"] == 4 and type(v["n"]) is int


def test_float_overflow_is_clamped(Vitals):
    v = Vitals([Field("x", max=10.0)])
    v.write(x=1e308)
    v.apply_delta({"x": 1e308})
    assert v["x"] == 10.0
    v.write(x=10**400 // 10**390)  # big-but-representable int
    assert v["x"] == 10.0


def test_numeric_like_values(Vitals):
    v = Vitals([Field("x"), Field("n", kind=int)])
    v.write(x=Fraction(1, 4), n=Fraction(8, 2))
    assert v.read() == {"x": 0.25, "n": 4}


BAD_VALUES = [
    ({"nope": 1.0}, KeyError, "unknown field 'nope'"),
    ({"energy": "x"}, TypeError, "must be a number"),
    ({"energy": None}, TypeError, "must be a number"),
    ({"energy": True}, TypeError, "must be a number"),
    ({"ticks": False}, TypeError, "must be a number"),
    ({"energy": float("nan")}, ValueError, "finite"),
    ({"energy": float("inf")}, ValueError, "finite"),
    ({"ticks": 2.5}, ValueError, "integral"),
    ({"ticks": float("nan")}, ValueError, "finite"),
    ({"tension": 10**400}, ValueError, "too large"),
    ({"energy": 1.0, "nope": 2.0}, KeyError, "unknown field 'nope'"),
    ({"energy": 1.0, "ticks": 0.5}, ValueError, "integral"),
]


@pytest.mark.parametrize("bad, exc, match", BAD_VALUES)
@pytest.mark.parametrize("method", ["write", "apply_delta"])
def test_bad_input_changes_nothing(Vitals, method, bad, exc, match):
    v = Vitals(schema())
    v.write(energy=50.0, ticks=3)
    before = (v.version, v.read_tuple())
    with pytest.raises(exc, match=match):
        if method == "write":
            v.write(**bad)
        else:
            v.apply_delta(bad)
    assert (v.version, v.read_tuple()) == before


def test_apply_delta_needs_mapping(Vitals):
    v = Vitals(schema())
    with pytest.raises(TypeError, match="mapping"):
        v.apply_delta([("energy", 1.0)])


def test_write_tuple(Vitals):
    v = Vitals(schema())
    v.write_tuple((5.0, 2.0, 9, -1.0))
    assert v.read_tuple() == (5.0, 1.0, 9, -1.0)
    with pytest.raises(ValueError, match="needs 4 values"):
        v.write_tuple((1.0,))
    with pytest.raises(TypeError):
        v.write_tuple((1.0, 1.0, "x", 1.0))
    assert v.version == 1


def test_positional_writer(Vitals):
    v = Vitals(schema())
    w = v.writer("ticks", "energy")
    w(4, 500.0)
    assert v.read_tuple() == (100.0, 1.0, 4, 0.0)
    with pytest.raises(TypeError, match="takes 2 values"):
        w(1)
    with pytest.raises(ValueError, match="integral"):
        w(1.5, 2.0)
    with pytest.raises(KeyError, match="unknown field 'x'"):
        v.writer("x")
    with pytest.raises(ValueError, match="twice"):
        v.writer("ticks", "ticks")
    assert v.version == 1


# ---- copying, pickling, repr ---------------------------------------------

def test_copy_and_pickle_make_independent_records(Vitals):
    v = Vitals(schema(), timeout=2.5)
    v.write(energy=42.0, ticks=9)
    for clone in (copy.copy(v), copy.deepcopy(v), pickle.loads(pickle.dumps(v))):
        assert type(clone) is type(v)
        assert clone.read() == v.read() and clone.fields == v.fields
        assert clone.version == 0  # a new record starts its own history
        clone.write(energy=1.0)
        assert v["energy"] == 42.0


def test_repr_shows_values(Vitals):
    v = Vitals([Field("a", default=1.5), Field("n", kind=int, default=2)])
    v.write(n=3)
    assert repr(v) == "<Vitals a=1.5, n=3 version=1>"


def test_weakref(Vitals):
    v = Vitals(schema())
    assert weakref.ref(v)() is v


# ---- the writers' lock ----------------------------------------------------

def test_stalled_writer_blocks_second_writer_with_clear_error(Vitals):
    v = Vitals(schema(), timeout=0.05)
    with v._hold_write_section():
        with pytest.raises(StalledWriterError, match="write"):
            v.write(energy=1.0)
    v.write(energy=1.0)
    assert v["energy"] == 1.0


def test_held_section_changes_nothing(Vitals):
    v = Vitals(schema())
    before = (v.version, v.read_tuple())
    with v._hold_write_section():
        pass
    assert (v.version, v.read_tuple()) == before
    assert math.isclose(v["energy"], 100.0)
