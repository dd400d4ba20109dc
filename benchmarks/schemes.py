"""The vitals schemes of scenarios 1 and 2: what a user might pick instead of csnapshot.

Every scheme holds the 8 float "vitals" of the Life application and offers:
  read_tuple()            all 8 values, consistent (except `plain`), schema order
  read_dict()             the same as a {name: value} dict
  write3(a, b, c)         set energy/integrity/stability, clamped, as one update
  delta3(d)               add d to the same three fields, clamped, as one update
  thread_reader()         a read_tuple callable for the calling thread alone (a
                          readerwriterlock reader object must not be shared
                          between threads; elsewhere it avoids sharing one
                          bound-method object between threads)
"""

from __future__ import annotations

import threading

import csnapshot
from csnapshot import Field

NAMES = ("energy", "integrity", "stability", "fatigue", "tension", "age",
         "subjective_time", "last_significance")
BOUNDS = {"energy": (0.0, 100.0), "integrity": (0.0, 1.0), "stability": (0.0, 1.0)}


def schema() -> list[Field]:
    return [Field(n, min=BOUNDS.get(n, (None, None))[0], max=BOUNDS.get(n, (None, None))[1],
                  default=BOUNDS.get(n, (0.0, 0.0))[1] if n in BOUNDS else 0.0)
            for n in NAMES]


def clamp(x: float, lo: float, hi: float) -> float:
    return lo if x < lo else hi if x > hi else x


class Plain:
    """Attributes, no synchronisation: the floor, and it tears under contention."""

    name = "plain object (no sync)"

    def __init__(self) -> None:
        for f in schema():
            setattr(self, f.name, f.default)

    def read_tuple(self):
        return (self.energy, self.integrity, self.stability, self.fatigue, self.tension,
                self.age, self.subjective_time, self.last_significance)

    def read_dict(self):
        return {"energy": self.energy, "integrity": self.integrity,
                "stability": self.stability, "fatigue": self.fatigue,
                "tension": self.tension, "age": self.age,
                "subjective_time": self.subjective_time,
                "last_significance": self.last_significance}

    def write3(self, a, b, c):
        self.energy = clamp(a, 0.0, 100.0)
        self.integrity = clamp(b, 0.0, 1.0)
        self.stability = clamp(c, 0.0, 1.0)

    def delta3(self, d):
        self.energy = clamp(self.energy + d, 0.0, 100.0)
        self.integrity = clamp(self.integrity + d, 0.0, 1.0)
        self.stability = clamp(self.stability + d, 0.0, 1.0)

    def thread_reader(self):
        return self.read_tuple


class Locked(Plain):
    """The same under `threading.Lock` (readers and writer exclude each other)."""

    name = "threading.Lock"
    lock_type = threading.Lock

    def __init__(self) -> None:
        super().__init__()
        self.lock = self.lock_type()

    def read_tuple(self):
        with self.lock:
            return Plain.read_tuple(self)

    def read_dict(self):
        with self.lock:
            return Plain.read_dict(self)

    def write3(self, a, b, c):
        with self.lock:
            Plain.write3(self, a, b, c)

    def delta3(self, d):
        with self.lock:
            Plain.delta3(self, d)


class RLocked(Locked):
    name = "threading.RLock"
    lock_type = threading.RLock


class TupleSwap:
    """An immutable tuple swapped by reference: readers never lock."""

    name = "immutable tuple swap"

    def __init__(self) -> None:
        self.values = tuple(f.default for f in schema())
        self.lock = threading.Lock()  # serialises writers only

    def read_tuple(self):
        return self.values

    def read_dict(self):
        return dict(zip(NAMES, self.values))

    def write3(self, a, b, c):
        with self.lock:
            v = self.values
            self.values = (clamp(a, 0.0, 100.0), clamp(b, 0.0, 1.0), clamp(c, 0.0, 1.0)) + v[3:]

    def delta3(self, d):
        with self.lock:
            v = self.values
            self.values = (clamp(v[0] + d, 0.0, 100.0), clamp(v[1] + d, 0.0, 1.0),
                           clamp(v[2] + d, 0.0, 1.0)) + v[3:]

    def thread_reader(self):
        return self.read_tuple


class _VitalsScheme:
    cls: type
    layout = "classic"

    def __init__(self) -> None:
        self.v = self.cls(schema(), layout=self.layout)
        self.read_tuple = self.v.read_tuple
        self.read_dict = self.v.read
        w = self.v.writer("energy", "integrity", "stability")
        self.write3 = w
        v = self.v

        def delta3(d):
            v.apply_delta({"energy": d, "integrity": d, "stability": d})

        self.delta3 = delta3

    def thread_reader(self):
        return self.v.read_tuple

    def write3_kw_op(self):
        """A zero-argument call of write() with keywords: one frame, like the others."""
        v = self.v
        return lambda: v.write(energy=50.0, integrity=0.5, stability=0.5)


class CSnapshot(_VitalsScheme):
    name = "csnapshot.Vitals"
    cls = csnapshot.Vitals


class CSnapshotLatch(_VitalsScheme):
    name = "csnapshot.Vitals (layout=\"latch\")"
    cls = csnapshot.Vitals
    layout = "latch"


class PyTwin(_VitalsScheme):
    name = "csnapshot.PyVitals (pure-Python twin)"
    cls = csnapshot.PyVitals


def optional_schemes() -> tuple[list[type], list[str]]:
    """Peers that may not be installed: (available classes, missing names)."""
    found, missing = [], []
    try:
        from readerwriterlock import rwlock
    except ImportError:
        missing.append("readerwriterlock")
    else:
        for label, factory in (("fair", rwlock.RWLockFair), ("reader-priority", rwlock.RWLockRead)):
            found.append(_rw_scheme(label, factory))
    try:
        import cereggii
    except ImportError:
        missing.append("cereggii")
    else:
        found.append(_atomicref_scheme(cereggii.AtomicRef))
    return found, missing


def _atomicref_scheme(AtomicRef):
    class AtomicRefTuple:
        """An immutable tuple in a `cereggii.AtomicRef`: one atomic load per read.

        Readers call the reference's bound `get` directly (no Python frame), as
        a user of AtomicRef would.  Writers retry a compare-and-set, so several
        writers would be safe without a lock.
        """

        name = "cereggii.AtomicRef + tuple"

        def __init__(self) -> None:
            self.ref = ref = AtomicRef(tuple(f.default for f in schema()))
            self.read_tuple = ref.get

        def read_dict(self):
            return dict(zip(NAMES, self.ref.get()))

        def write3(self, a, b, c):
            ref = self.ref
            new = (clamp(a, 0.0, 100.0), clamp(b, 0.0, 1.0), clamp(c, 0.0, 1.0))
            while True:
                old = ref.get()
                if ref.compare_and_set(old, new + old[3:]):
                    return

        def delta3(self, d):
            ref = self.ref
            while True:
                v = ref.get()
                new = (clamp(v[0] + d, 0.0, 100.0), clamp(v[1] + d, 0.0, 1.0),
                       clamp(v[2] + d, 0.0, 1.0)) + v[3:]
                if ref.compare_and_set(v, new):
                    return

        def thread_reader(self):
            return self.ref.get

    return AtomicRefTuple


def _rw_scheme(label, factory):
    class RW(Plain):
        name = f"readerwriterlock ({label})"

        def __init__(self) -> None:
            super().__init__()
            self._lock = lock = factory()
            self._r = lock.gen_rlock()  # for the single-thread benchmarks only
            self._w = lock.gen_wlock()

        def read_tuple(self):
            with self._r:
                return Plain.read_tuple(self)

        def read_dict(self):
            with self._r:
                return Plain.read_dict(self)

        def write3(self, a, b, c):
            with self._w:
                Plain.write3(self, a, b, c)

        def delta3(self, d):
            with self._w:
                Plain.delta3(self, d)

        def thread_reader(self):
            # One reader object per thread: readerwriterlock's reader keeps a
            # per-object "locked" flag, and sharing one between threads makes
            # release() raise "release unlocked lock" (basilisp-lang/basilisp#722).
            r = self._lock.gen_rlock()

            def read_tuple():
                with r:
                    return Plain.read_tuple(self)
            return read_tuple

    return RW


BASE_SCHEMES = [Plain, Locked, RLocked, TupleSwap, PyTwin, CSnapshot, CSnapshotLatch]
