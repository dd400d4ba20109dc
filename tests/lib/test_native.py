"""What only the compiled implementation has: the shared library, the memo, the fallback."""

import importlib.machinery
import os
import shutil
import subprocess
import sys
import threading
import time

import pytest

import csnapshot
from csnapshot import Field, StalledWriterError, _harness, _native_vitals


def test_core_is_a_compiled_shared_library():
    # pytest must never test a source tree without its extension: the core
    # module has to be the compiled one, and csnapshot must be using it.
    assert csnapshot.IMPLEMENTATION == "native"
    path = _native_vitals.__file__
    assert path.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)), path
    from csnapshot import _harness
    assert _harness.__file__.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))
    assert csnapshot.Vitals is _native_vitals.Vitals


def test_get_include_has_header_and_pxd():
    inc = csnapshot.get_include()
    for name in ("csnap_seqlock.h", "_seqlock.pxd", "_vitals.pxd", "__init__.pxd"):
        assert os.path.isfile(os.path.join(inc, name)), name


def test_fallback_to_python_twin_warns(tmp_path):
    # A package directory without the compiled modules: importing it must
    # fall back to the twin with a RuntimeWarning, or fail when told to.
    pkg = tmp_path / "csnapshot"
    pkg.mkdir()
    src = os.path.dirname(csnapshot.__file__)
    for name in ("__init__.py", "_schema.py", "_segment.py", "_pyvitals.py", "cow.py"):
        shutil.copy(os.path.join(src, name), pkg / name)
    code = ("import warnings, csnapshot; "
            "print(csnapshot.IMPLEMENTATION, csnapshot.Vitals is csnapshot.PyVitals)")
    env = {k: v for k, v in os.environ.items() if k != "CSNAPSHOT_REQUIRE_NATIVE"}
    # -S: no site-packages, so an installed (or editable) csnapshot cannot win.
    out = subprocess.run([sys.executable, "-S", "-W", "always", "-c", code], cwd=tmp_path,
                         env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["python", "True"]
    assert "RuntimeWarning" in out.stderr and "pure-Python" in out.stderr
    # It says what happened (nothing compiled there), not Python's "circular import" guess.
    assert "not built in" in out.stderr and "pip install -e ." in out.stderr, out.stderr
    assert "circular" not in out.stderr, out.stderr
    env["CSNAPSHOT_REQUIRE_NATIVE"] = "1"
    out = subprocess.run([sys.executable, "-S", "-c", code], cwd=tmp_path, env=env,
                         capture_output=True, text=True)
    assert out.returncode != 0 and "ImportError" in out.stderr


def test_memo_returns_the_same_tuple_until_a_write():
    v = csnapshot.Vitals([Field("a"), Field("b")])
    t1 = v.read_tuple()
    assert v.read_tuple() is t1
    v.write(a=1.0)
    t2 = v.read_tuple()
    assert t2 == (1.0, 0.0) and t2 is not t1
    assert v.read_tuple() is t2
    assert v.read_versioned() == (1, t2)


def test_reader_during_open_section_gets_the_state_before_it():
    # A read that overlaps a write may return the state the write started
    # from; with a current memo the reader does not wait at all.
    v = csnapshot.Vitals([Field("a"), Field("b")], timeout=30.0)
    v.write(a=1.0, b=2.0)
    assert v.read_tuple() == (1.0, 2.0)  # memo now current
    with v._hold_write_section():
        start = time.monotonic()
        assert v.read_tuple() == (1.0, 2.0)
        assert v.read_versioned() == (1, (1.0, 2.0))
        assert time.monotonic() - start < 1.0


def test_reader_of_stale_memo_raises_after_timeout_when_writer_stalls():
    v = csnapshot.Vitals([Field("a")], timeout=0.1)
    v.write(a=1.0)   # a Python write leaves readers its memo ...
    # ... a native writer's do not: after these, the memo is stale.
    _harness.run(v, 0, 0.001, "native", 1, 0.0, 1.0)
    assert v.version > 1
    current = v.get("a")  # one atomic load: the memo stays stale
    with v._hold_write_section():
        start = time.monotonic()
        with pytest.raises(StalledWriterError, match="stayed open for over 0.1 s"):
            v.read_tuple()
        waited = time.monotonic() - start
    assert 0.1 <= waited < 5.0
    assert v.read_tuple() == (current,)


@pytest.mark.skipif(not getattr(sys, "_is_gil_enabled", lambda: True)(),
                    reason="free-threaded: each reader thread keeps its own memo")
def test_a_python_write_leaves_readers_its_values_ready_made():
    # GIL builds: the writer boxes the tuple of the version it closes, so the
    # first read after it is a memo hit - even while the next section is open
    # (it would otherwise retry, then wait for the stalled section and raise).
    v = csnapshot.Vitals([Field("a"), Field("b", int)], timeout=0.1)
    for write in (lambda: v.write(a=2.0, b=3), lambda: v.apply_delta({"b": 1}),
                  lambda: v.writer("a")(5.0), lambda: v.write_tuple((6.0, 7))):
        v.read_tuple()   # a reader is reading: the writer leaves its values
        write()
        expected = (v.get("a"), v.get("b"))
        with v._hold_write_section():
            first = v.read_tuple()
            assert v.read_versioned() == (v.version, first)
        assert first == expected
        assert v.read_tuple() is first
    # With nobody reading, a write boxes nothing: the memo is the last one read.
    quiet = csnapshot.Vitals([Field("a")], timeout=0.1)
    quiet.write(a=1.0)
    with quiet._hold_write_section(), pytest.raises(StalledWriterError):
        quiet.read_tuple()


def test_reader_comes_back_through_fallback_when_writer_resumes():
    # The stalled section is closed by another thread while the reader waits
    # in the fallback (GIL released); the reader then returns the values.
    v = csnapshot.Vitals([Field("a")], timeout=10.0)
    v.write(a=7.0)
    held = threading.Event()
    release = threading.Event()

    def stalled_writer():
        with v._hold_write_section():
            held.set()
            release.wait()

    t = threading.Thread(target=stalled_writer)
    t.start()
    held.wait()
    # Releasing from a timer keeps the reader inside its wait when it starts;
    # if it started late the read is simply uncontended: same result.
    timer = threading.Timer(0.05, release.set)
    timer.start()
    start = time.monotonic()
    assert v.read_tuple() == (7.0,)
    elapsed = time.monotonic() - start
    t.join()
    timer.join()
    assert elapsed < 10.0


@pytest.mark.parametrize("layout", ["classic", "latch"])
def test_second_writer_waits_for_first_then_proceeds(layout):
    v = csnapshot.Vitals([Field("n", kind=int)], timeout=10.0, layout=layout)
    held = threading.Event()
    release = threading.Event()
    done = []

    def first():
        with v._hold_write_section():
            held.set()
            release.wait()

    def second():
        v.apply_delta({"n": 1})
        done.append(v.version)

    t1 = threading.Thread(target=first)
    t1.start()
    held.wait()
    t2 = threading.Thread(target=second)
    t2.start()
    release.set()
    t1.join()
    t2.join()
    assert v["n"] == 1 and done == [1]


@pytest.mark.parametrize("layout", ["classic", "latch"])
def test_many_fields_use_heap_buffers(layout):
    fields = [Field(f"f{i}", kind=int if i % 2 else float) for i in range(100)]
    v = csnapshot.Vitals(fields, layout=layout)
    v.write(**{f"f{i}": i for i in range(100)})
    assert v.read_tuple() == tuple(range(100))
    v.apply_delta({f"f{i}": 1 for i in range(100)})
    assert v.read_tuple() == tuple(range(1, 101))
    v.write_tuple(range(100))
    assert list(v.read().values()) == list(range(100))
    assert v.read_tuple() is v.read_tuple()


# ---- the latch layout ------------------------------------------------------

@pytest.mark.parametrize("cls", [csnapshot.Vitals, csnapshot.PyVitals], ids=["native", "python"])
def test_layout_is_checked_and_reported(cls):
    assert cls([Field("a")]).layout == "classic"
    assert cls([Field("a")], layout="latch").layout == "latch"
    for bad in ("Latch", "", None, 1, b"latch"):
        with pytest.raises(ValueError, match=r"layout must be 'classic' or 'latch', got "):
            cls([Field("a")], layout=bad)
    with pytest.raises(ValueError, match="got 'seqlock'"):
        cls([Field("a")], layout="seqlock")


def test_a_latch_reader_never_waits_for_an_open_section():
    # The classic record's stale-memo reader waits for a held section and
    # raises (test above); the latch's reads the other copy at once.
    v = csnapshot.Vitals([Field("a"), Field("b")], timeout=0.1, layout="latch")
    v.write(a=1.0, b=2.0)
    _harness.run(v, 0, 0.001, "native", 1, 0.0, 1.0)   # native writes: the memo is stale
    assert v.version > 1
    current = (v.get("a"), v.get("b"))
    assert current[1] == 2 * current[0]                 # the harness's invariant
    with v._hold_write_section():
        start = time.monotonic()
        assert v.read_tuple() == current
        assert v.read_versioned() == (v.version, current)
        assert v["a"] == current[0]
        assert time.monotonic() - start < 0.1           # well inside the timeout: no wait
        with pytest.raises(StalledWriterError, match="kept its write section open"):
            v.write(a=5.0)                              # writers do wait for each other
    assert v.read_tuple() == current


def test_a_native_writer_of_a_latch_record_takes_at_most_32_fields():
    v = csnapshot.Vitals([Field(f"f{i}") for i in range(33)], layout="latch")
    with pytest.raises(ValueError, match="at most 32 fields, got 33"):
        _harness.run(v, 1, 0.01, "native", 1, 0.0, 1.0)


def test_pickle_keeps_the_layout_and_old_pickles_load_as_classic():
    import pickle
    v = csnapshot.Vitals([Field("a", default=1.0)], layout="latch")
    v.write(a=4.0)
    clone = pickle.loads(pickle.dumps(v))
    assert (clone.layout, clone.read_tuple(), clone.version) == ("latch", (4.0,), 0)
    # The classic form's reduce tuple has no layout: what earlier releases wrote.
    restore, args = csnapshot.Vitals([Field("a")]).__reduce__()
    assert len(args) == 4 and restore(*args).layout == "classic"
    with pytest.raises(ValueError, match="layout must be"):
        restore(*args, "double")
