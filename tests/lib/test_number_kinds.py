"""Which numbers a record takes, identically in both implementations (the `Vitals` fixture).

Accepted: int and float and their subclasses (``numpy.float64`` is a float
subclass), and any other object with ``__index__`` (``numpy.int64``) or
``__float__`` (a real number such as ``decimal.Decimal`` or
``fractions.Fraction``); bools, strings and bytes never.  Stored values are
always exact ``float``/``int``.  Non-finite values, bounds and defaults are a
``ValueError`` naming the field.
"""

import decimal
import fractions
import math

import pytest

from csnapshot import Field


class F(float):
    """Like numpy.float64: a float subclass."""


class I(int):
    pass


class Index:
    """Like numpy.int64: not an int, but has __index__."""

    def __init__(self, n):
        self.n = n

    def __index__(self):
        return self.n


@pytest.mark.parametrize("value, stored", [
    (F(1.5), 1.5), (I(2), 2.0), (Index(3), 3.0), (decimal.Decimal("0.25"), 0.25),
    (fractions.Fraction(1, 4), 0.25),
])
def test_float_fields_take_real_numbers(Vitals, value, stored):
    v = Vitals([Field("u"), Field("n", kind=int)])
    v.write(u=value)
    assert v.get("u") == stored and type(v.get("u")) is float
    assert type(v.read_tuple()[0]) is float
    v.apply_delta({"u": value})
    assert v.get("u") == 2 * stored
    w = v.writer("u")
    w(value)
    assert v.get("u") == stored


@pytest.mark.parametrize("value, stored", [(I(2), 2), (Index(3), 3), (F(4.0), 4)])
def test_int_fields_take_integral_numbers(Vitals, value, stored):
    v = Vitals([Field("n", kind=int)])
    v.write(n=value)
    assert v.get("n") == stored and type(v.get("n")) is int


@pytest.mark.parametrize("value", [True, "1", b"1", None, [1]])
def test_non_numbers_are_refused(Vitals, value):
    v = Vitals([Field("u")])
    with pytest.raises(TypeError, match="'u'"):
        v.write(u=value)
    assert v.version == 0


@pytest.mark.parametrize("kw", [dict(min=-math.inf), dict(max=math.inf), dict(default=10**400),
                                dict(max=10**400), dict(default=math.nan)])
def test_bad_field_numbers_are_a_value_error_naming_the_field(kw):
    with pytest.raises(ValueError, match="'x'"):
        Field("x", **kw)


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan, F(math.inf)])
def test_non_finite_values_are_refused_and_change_nothing(Vitals, value):
    v = Vitals([Field("u")])
    v.write(u=1.0)
    with pytest.raises(ValueError, match="'u'"):
        v.write(u=value)
    with pytest.raises(ValueError, match="'u'"):
        v.apply_delta({"u": value})
    assert v.get("u") == 1.0 and v.version == 1  # one successful write


@pytest.mark.parametrize("fields, deltas", [
    ([Field("u")], {"u": 1e308}),
    ([Field("a"), Field("u")], {"a": 1.0, "u": 1e308}),      # one bad sum: nothing changes
    ([Field("u"), Field("n", kind=int)], {"n": 5, "u": 1e308}),
])
def test_a_delta_that_overflows_to_inf_is_refused_and_changes_nothing(Vitals, fields, deltas):
    v = Vitals(fields)
    v.write(u=1e308)
    before = v.read_versioned()
    with pytest.raises(ValueError, match="'u'"):
        v.apply_delta(deltas)
    assert v.read_versioned() == before
    v.apply_delta({"u": -1e308})  # the record still writes
    assert v.get("u") == 0.0
    import pickle
    assert pickle.loads(pickle.dumps(v)).read_tuple() == v.read_tuple()
