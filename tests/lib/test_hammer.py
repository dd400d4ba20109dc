"""The threaded hammer (tests/lib/hammer.py) in a child process, on this build and free-threaded.

A crash of the child (a signal, a fatal error, a sanitizer abort) fails the
test with the child's output; so does a broken invariant.  The count per
thread is fixed (``CSNAPSHOT_HAMMER_CALLS``, default 2000), never a deadline.

The free-threaded run uses this interpreter when it is free-threaded (the
free-threaded stage of .ci/run), else ``CSNAPSHOT_FT_PYTHON`` or the
interpreter scripts/build-freethreaded-python.sh caches, when csnapshot's
compiled extension imports there; otherwise it is skipped with the reason.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import pytest

HAMMER = Path(__file__).with_name("hammer.py")
CALLS = os.environ.get("CSNAPSHOT_HAMMER_CALLS", "2000")
FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
FT_CACHE = Path.home() / ".cache/csnapshot/python-ft/3.13/bin/python3.13t"


def run_hammer(python: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "PYTHON_GIL"}
    # Outside the checkout, so the child imports the installed csnapshot.
    with tempfile.TemporaryDirectory() as cwd:
        r = subprocess.run([python, "-X", "faulthandler", str(HAMMER), CALLS], cwd=cwd, env=env,
                           capture_output=True, text=True, timeout=600)
    out = r.stdout + r.stderr
    assert r.returncode == 0 and r.stdout.rstrip().endswith("hammer: ok"), (
        f"hammer exited {r.returncode} (negative: killed by that signal)\n{out[-6000:]}")
    return out


def free_threaded_python() -> tuple[str | None, str]:
    """(interpreter, "") or (None, why there is none)."""
    if FREE_THREADED:
        return sys.executable, ""
    candidate = os.environ.get("CSNAPSHOT_FT_PYTHON") or str(FT_CACHE)
    if not os.access(candidate, os.X_OK):
        return None, (f"no free-threaded interpreter at {candidate} (set CSNAPSHOT_FT_PYTHON, "
                      "or run scripts/build-freethreaded-python.sh)")
    probe = subprocess.run(
        [candidate, "-c", "import sys, csnapshot._vitals; print(sys._is_gil_enabled())"],
        capture_output=True, text=True, cwd=tempfile.gettempdir())
    if probe.returncode != 0 or probe.stdout.strip() != "False":
        return None, (f"{candidate} cannot import csnapshot's compiled extension with the GIL "
                      f"disabled (install this tree into it): "
                      f"{(probe.stderr.strip().splitlines() or [''])[-1][:300]}")
    return candidate, ""


@pytest.mark.skipif(FREE_THREADED, reason="this interpreter is free-threaded: see the test below")
def test_hammer_with_the_gil():
    out = run_hammer(sys.executable)
    assert "GIL enabled" in out


def test_hammer_free_threaded():
    python, why = free_threaded_python()
    if python is None:
        pytest.skip(why)
    out = run_hammer(python)
    assert "GIL disabled" in out, out[-2000:]
