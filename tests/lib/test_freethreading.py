"""On a free-threaded CPython, importing csnapshot must leave the GIL disabled."""

import os
import subprocess
import sys
import sysconfig

import pytest

FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


@pytest.mark.skipif(not FREE_THREADED, reason="needs a free-threaded (3.13t/3.14t) build")
def test_import_keeps_gil_disabled(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHON_GIL"}  # no forcing
    code = ("import sys, csnapshot, csnapshot.testing, csnapshot._harness; "
            "print(csnapshot.IMPLEMENTATION, sys._is_gil_enabled())")
    out = subprocess.run([sys.executable, "-W", "error", "-c", code], env=env, cwd=tmp_path,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["native", "False"], out.stdout + out.stderr


def test_every_pyx_declares_freethreading_compatible():
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir, "csnapshot")
    pyx = [f for f in os.listdir(src) if f.endswith(".pyx")]
    assert len(pyx) >= 2
    for name in pyx:
        with open(os.path.join(src, name)) as f:
            head = f.readline()
        assert "freethreading_compatible=True" in head, name
