"""The library's suite: runs without the application (`pytest tests/lib`).

Every contract test runs on every implementation through the `Vitals` fixture.
"""

import os

import pytest

# The suite tests the compiled extension: refuse the silent pure-Python fallback
# (also set by tests/conftest.py; repeated so this folder stands on its own).
os.environ.setdefault("CSNAPSHOT_REQUIRE_NATIVE", "1")

import csnapshot  # noqa: E402
from csnapshot import _native_vitals  # noqa: E402



class LatchVitals(_native_vitals.Vitals if _native_vitals else object):
    """The native `Vitals` with the latch layout by default (a subclass, so
    tests that subclass or pickle the type under test take it too)."""

    def __init__(self, fields, *, timeout=1.0, layout="latch"):
        super().__init__(fields, timeout=timeout, layout=layout)


IMPLEMENTATIONS = {"native": _native_vitals.Vitals if _native_vitals else None,
                   "native-latch": LatchVitals if _native_vitals else None,
                   "python": csnapshot.PyVitals}


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
def Vitals(request):
    """The Vitals type under test: the native one (each layout) and its pure-Python twin."""
    cls = IMPLEMENTATIONS[request.param]
    if cls is None:
        pytest.fail("the compiled extension is not importable")
    return cls


# ---- shared-memory segments ------------------------------------------------

import uuid  # noqa: E402


@pytest.fixture
def shm_name(request):
    """A fresh segment name for this test; every /dev/shm file made from it is removed after."""
    base = f"csnaptest-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    yield base
    folder = os.path.dirname(csnapshot.segment_path(base))
    for entry in os.listdir(folder):
        if entry.startswith(base) or entry.startswith("." + base):
            try:
                os.unlink(os.path.join(folder, entry))
            except OSError:
                pass


@pytest.fixture
def SharedVitalsType(shm_name):
    """`SharedVitals` shaped like the `Vitals` constructor: ``make(fields, timeout=...)``.

    Each call creates a new segment (the writer's handle), so the contract
    suite can run on SharedVitals as a third implementation.
    """
    counter = iter(range(10**6))

    def make(fields, *, timeout=1.0):
        return csnapshot.SharedVitals.create(f"{shm_name}-{next(counter)}", fields,
                                             timeout=timeout)
    return make


@pytest.fixture
def spawn(tmp_path):
    """Start ``python -c CODE ARGS...`` (stdin/stdout pipes, text); killed at teardown.

    Children run in tmp_path, off the checkout, so they import the installed
    csnapshot exactly as the tests do.
    """
    import subprocess
    import sys
    import textwrap

    procs = []

    def start(code, *args):
        p = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, cwd=tmp_path)
        procs.append(p)
        return p

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.communicate()
