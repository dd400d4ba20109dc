"""No Python code can crash the interpreter: one case per defect found so far.

Each crash case runs in a fresh interpreter, so a segfault or a fatal error
fails the test instead of killing pytest; the child prints "ok" when every
step behaved.  The rules and the audit of every site: docs/development/memory-safety.md.
"""

import copy
import math
import pickle
import subprocess
import sys
import tempfile
import textwrap
import threading
from pathlib import Path

import pytest

import csnapshot
from csnapshot import Field, StalledWriterError
from csnapshot import _native_vitals

NATIVE = _native_vitals.Vitals


def run_child(code: str) -> None:
    # Outside the checkout, so the child imports the installed csnapshot.
    with tempfile.TemporaryDirectory() as cwd:
        r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd,
                           capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), (
        f"child exited {r.returncode} (negative: killed by that signal)\n"
        f"stdout: {r.stdout[-2000:]}\nstderr: {r.stderr[-2000:]}")


# ---- 1: apply_delta(dict) iterates strong references -----------------------

@pytest.mark.parametrize("impl", ["native", "python"])
def test_key_hash_that_clears_the_dict_is_an_error_not_a_use_after_free(impl):
    run_child(f"""
        import csnapshot
        from csnapshot import Field
        V = csnapshot._native_vitals.Vitals if {impl!r} == "native" else csnapshot.PyVitals
        v = V([Field("a")])
        armed = False
        class K:
            def __hash__(self):
                if armed:
                    d.clear()
                return hash("a")
            def __eq__(self, other):
                return other == "a"
        errors = 0
        for i in range(300):
            armed = False; d = {{K(): 1.0}}; armed = True
            try:
                v.apply_delta(d)
            except RuntimeError:
                errors += 1
            junk = [bytearray(64) for _ in range(50)]
        assert errors == 300, errors      # "dictionary changed size", every time
        assert v.get("a") == 0.0 and v.version == 0
        print("ok")""")


# ---- 2: FieldWriter -----------------------------------------------------------

def test_field_writer_cannot_be_built_by_hand_or_unpickled():
    run_child("""
        import copy, pickle
        from csnapshot import Field, Vitals
        v = Vitals([Field("a", min=0.0, max=1.0)])
        w = v.writer("a")
        W = type(w)
        for make in (lambda: W(v, (100000,)), lambda: W.__new__(W), lambda: W()):
            try:
                make()
            except TypeError:
                pass
            else:
                raise AssertionError("a FieldWriter was constructed by hand")
        assert not hasattr(w, "__setstate_cython__") and not hasattr(w, "__init__") or \
            W.__init__ is object.__init__
        for f in (copy.copy, pickle.dumps):
            try:
                f(w)
            except TypeError:
                pass
            else:
                raise AssertionError(f"{f} accepted a FieldWriter")
        w(5.0)
        assert v.get("a") == 1.0   # bounds table intact
        print("ok")""")


def test_twin_field_writer_is_sealed_too():
    v = csnapshot.PyVitals([Field("a")])
    w = v.writer("a")
    with pytest.raises(TypeError):
        type(w)(v, (100000,))
    with pytest.raises(AttributeError):
        w._slots = (5,)
    with pytest.raises(TypeError):
        pickle.dumps(w)


def test_writer_field_limit_agrees(Vitals):
    v = Vitals([Field(f"f{i}") for i in range(40)])
    with pytest.raises(ValueError, match="at most 32"):
        v.writer(*[f"f{i}" for i in range(33)])


# ---- 3: uninitialised instances ----------------------------------------------

@pytest.mark.parametrize("impl", ["native", "python"])
def test_uninitialised_instances_raise_runtime_error(impl):
    run_child(f"""
        import copy
        import csnapshot
        V = csnapshot._native_vitals.Vitals if {impl!r} == "native" else csnapshot.PyVitals
        class Sub(V):
            def __init__(self, x):
                self_x = x
        calls = [lambda o: o.read_tuple(), lambda o: o.version, lambda o: o.read(),
                 lambda o: o.get("a"), lambda o: o.write(a=1.0), lambda o: o.apply_delta({{"a": 1}}),
                 lambda o: o.write_tuple((1.0,)), lambda o: o.writer("a"), lambda o: o.index("a"),
                 lambda o: o.read_versioned(), lambda o: o.fields, lambda o: len(o),
                 lambda o: list(o), lambda o: copy.copy(o), lambda o: o._hold_write_section().__enter__()]
        for obj in (V.__new__(V), Sub(1)):
            for f in calls:
                try:
                    f(obj)
                except RuntimeError as e:
                    assert "not initialised" in str(e), e
                else:
                    raise AssertionError("no error")
            assert "not initialised" in repr(obj)
        print("ok")""")


def test_init_runs_once(Vitals):
    v = Vitals([Field("a")])
    with pytest.raises(RuntimeError, match="only be called once"):
        v.__init__([Field("b")])
    assert v.fields == (Field("a"),)


# ---- 4: "forever" timeouts ---------------------------------------------------

@pytest.mark.parametrize("timeout", [math.inf, 1e10, 10**30])
def test_forever_timeout_waits_for_a_held_section(Vitals, timeout):
    v = Vitals([Field("a")], timeout=timeout)
    held, release, done, errors = threading.Event(), threading.Event(), [], []

    def holder():
        try:
            with v._hold_write_section():
                held.set()
                release.wait()
        except BaseException as e:  # the old twin: OverflowError
            errors.append(e)
            held.set()

    def writer():
        try:
            v.write(a=1.0)      # must wait, not raise StalledWriterError at once
            done.append(v.get("a"))
        except BaseException as e:
            errors.append(e)

    t = threading.Thread(target=holder)
    t.start()
    assert held.wait(60) and not errors, errors
    w = threading.Thread(target=writer)
    w.start()
    # A writer that waits forever is still waiting after any time; the bug
    # gave up after ~0.1 ms.  (A slow start can only make this pass, never
    # fail, a correct implementation.)
    w.join(0.5)
    still_waiting = w.is_alive()
    release.set()
    w.join()
    t.join()
    assert still_waiting and not errors and done == [1.0], (still_waiting, errors, done)


@pytest.mark.parametrize("bad", [0, -1.0, math.nan, "1", True, None])
def test_bad_timeouts_rejected_alike(Vitals, bad):
    with pytest.raises(ValueError, match="timeout must be a positive number"):
        Vitals([Field("a")], timeout=bad)


def test_stress_harness_validates_and_saturates_its_conversions():
    from csnapshot import _harness
    v = NATIVE([Field("a")])
    for kw in (dict(write_rate=math.nan), dict(write_rate=-1.0), dict(read_timeout=0.0),
               dict(read_timeout=math.nan)):
        args = dict(write_rate=0.0, read_timeout=1.0) | kw
        with pytest.raises(ValueError):
            _harness.run(v, 0, 0.01, "none", 1, args["write_rate"], args["read_timeout"])
    # inf / tiny rates: saturated, a short run still ends (run to its deadline)
    totals, writes = _harness.run(v, 1, 0.01, "native", 1, 1e-300, math.inf, min_reads=10)
    assert totals["reads"] >= 10 and totals["torn"] == 0 and writes[0] <= 1
    with pytest.raises(IndexError):
        _harness._run_reader(v, 5, _harness._Stop(1, 1, 0.01, 0.01, 0), 1, _harness._Counts(1))
    with pytest.raises(ValueError):
        _harness._Counts(1 << 58)


# ---- 5: copy/pickle invalidate memos taken during construction ---------------

def test_copy_of_subclass_that_reads_in_init_shows_the_copied_values(Vitals):
    class Reading(Vitals):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            self.first = self.read_tuple()   # takes the (per-thread) memo

    v = Reading([Field("a"), Field("b", int)])
    v.write(a=2.5, b=7)
    restore, args = v.__reduce__()   # what pickle.loads calls
    for clone in (copy.copy(v), copy.deepcopy(v), restore(*args)):
        assert clone.first == (0.0, 0)
        assert clone.read_tuple() == (2.5, 7) == (clone.get("a"), clone.get("b"))
        assert clone.read_versioned() == (0, (2.5, 7))


# ---- 6: _HeldSection ----------------------------------------------------------

def test_held_section_is_not_constructible_or_picklable():
    v = NATIVE([Field("a")])
    h = v._hold_write_section()
    with pytest.raises(TypeError):
        type(h)(v)
    for f in (copy.copy, pickle.dumps):
        with pytest.raises(TypeError):
            f(h)


def test_held_section_exits_once_from_many_threads():
    # Exit is one atomic exchange: however many threads exit one held
    # section, exactly one closes it; the others must not close the section
    # a real writer opened since.
    v = NATIVE([Field("a")], timeout=5.0)
    for _ in range(50):
        h = v._hold_write_section()
        h.__enter__()
        barrier = threading.Barrier(4)

        def leave():
            barrier.wait()
            h.__exit__(None, None, None)

        ts = [threading.Thread(target=leave) for _ in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        before = v.version
        v.write(a=1.0)
        assert v.version == before + 1    # the counter is even and sane
    assert v.version == 50


# ---- 7: the stress harness re-raises when a thread fails to start ------------

def test_stress_harness_reraises_when_a_thread_fails_to_start():
    run_child("""
        import threading
        from csnapshot import Field, Vitals, _harness
        real = threading.Thread.start
        started = []
        def flaky(self):
            if len(started) == 1:
                raise RuntimeError("can't start new thread")
            started.append(self)
            real(self)
        threading.Thread.start = flaky
        try:
            _harness.run(Vitals([Field("a")]), 3, 0.01, "native", 1, 0.0, 1.0)
        except RuntimeError as e:
            assert "can't start" in str(e)
        else:
            raise AssertionError("no error")
        print("ok")""")


# ---- 8: _box_current never boxes a copy csnap_read gave up on ----------------

def test_restore_with_a_stalled_section_raises_instead_of_boxing(Vitals):
    class Stalls(Vitals):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            self.h = self._hold_write_section()
            self.h.__enter__()

    v = Vitals([Field("a")], timeout=0.05)
    v.write(a=3.0)
    restore, args = v.__reduce__()
    # _restore builds the new record with Stalls(...), whose section stays
    # open: the copy must not be boxed from a read that gave up.  A latch
    # record's readers never wait for an open section: its copy is whole.
    if v.layout == "latch" and isinstance(v, csnapshot._native_vitals.Vitals):
        assert restore(Stalls, *args[1:]).read_tuple() == (3.0,)
        return
    with pytest.raises(StalledWriterError):
        restore(Stalls, *args[1:])


# ---- 9: writer-only C functions are named so --------------------------------

def test_writer_only_c_functions_have_writer_names_and_rules():
    root = Path(csnapshot.get_include())
    pxd = (root / "_seqlock.pxd").read_text()
    header = (root / "csnap_seqlock.h").read_text()
    for old in ("csnap_peek_bits", "csnap_write_abort("):
        assert old not in pxd and old not in header
    assert "csnap_write_peek_bits" in pxd and "csnap_write_abort_unchanged" in pxd
    doc = (Path(__file__).resolve().parents[2] / "docs" / "c-api.md").read_text()
    assert "csnap_write_peek_bits" in doc and "nothing was" in doc


# ---- 10: FrozenDict __class__ -------------------------------------------------

def test_frozen_dict_class_cannot_be_reassigned():
    from csnapshot.cow import FrozenDict

    class Mutable(dict):
        __slots__ = ()

    fd = FrozenDict(a=1)
    with pytest.raises(TypeError, match="read-only"):
        fd.__class__ = Mutable
    assert type(fd) is FrozenDict
    with pytest.raises(TypeError):
        fd["b"] = 2


# ---- found by the audit of index sites (docs/development/memory-safety.md) ----

def test_stress_harness_uses_the_records_own_slot_count_not_len():
    # A subclass's __len__ used to size the copy the nogil readers take:
    # reading far past the end of the record (SIGSEGV).
    run_child("""
        import csnapshot
        from csnapshot import Field, _harness
        class Liar(csnapshot.Vitals):
            def __len__(self):
                return 1 << 22
        totals, writes = _harness.run(Liar([Field("a"), Field("b")]), 1, 0.01, "native", 1,
                                      0.0, 1.0)
        assert totals["torn"] == 0 and totals["reads"] > 0, totals
        print("ok")""")


def test_locked_baseline_copies_a_sequence_that_shrinks_while_it_converts():
    # _LockedData indexes its values unchecked; an item's __float__ that
    # empties the list used to turn that into reads of freed memory.
    run_child("""
        from csnapshot import _harness
        class Shrinker:
            def __float__(self):
                values.clear()
                return 1.0
        values = [Shrinker()] + [2.0] * 1000
        data = _harness._LockedData(1, values)
        assert data.first() == 1.0
        print("ok")""")
