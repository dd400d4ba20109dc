"""Checked by mypy in tests/test_typing.py: the stubs must give these types."""

from typing import Any, assert_type

import csnapshot
from csnapshot import Field, Vitals
from csnapshot.testing import StressResult, stress

v = Vitals([Field("energy", kind=float, min=0.0, max=100.0), Field("ticks", kind=int)])
assert_type(v.read(), dict[str, float | int])
assert_type(v.read_tuple(), tuple[float | int, ...])
assert_type(v.read_versioned(), tuple[int, tuple[float | int, ...]])
assert_type(v.get("energy"), float | int)
assert_type(v["ticks"], float | int)
assert_type(v.version, int)
assert_type(v.fields, tuple[Field, ...])
assert_type(v.index("ticks"), int)
v.write(energy=1.0, ticks=2)
v.apply_delta({"energy": -1.0})
v.write_tuple([1.0, 2])
w = v.writer("energy")
w(3.0)
assert_type(csnapshot.get_include(), str)
assert_type(stress(readers=1, seconds=0.1), StressResult)
assert_type(csnapshot.PyVitals([Field("a")]).read_tuple(), tuple[Any, ...])


def shared_memory() -> None:
    from csnapshot import SharedBytes, SharedVitals

    v = SharedVitals.create("typing-example", [Field("a")])
    values: tuple[float | int, ...] = v.read_tuple()
    alive: bool = SharedVitals.open("typing-example").writer_alive
    newer: bool = v.wait_newer(v.version, 0.1)
    b = SharedBytes.create("typing-example-b", 1024)
    version: int = b.publish(b"x")
    got: tuple[int, bytes] = b.read()
    print(values, alive, newer, version, got)
