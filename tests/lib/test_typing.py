"""The shipped stubs are tested: mypy must accept tests/typing/examples.py."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mypy", reason="the typing test needs mypy (the [test] extra)")

EXAMPLES = Path(__file__).resolve().parent / "typing" / "examples.py"


def mypy(tmp_path, *args):
    import csnapshot

    env = dict(os.environ)
    parent = os.path.dirname(csnapshot.get_include())
    if os.path.basename(parent) not in ("site-packages", "dist-packages"):
        # An editable install is found through an import hook mypy cannot see.
        env["MYPYPATH"] = parent
    return subprocess.run([sys.executable, "-m", "mypy", "--no-incremental",
                           "--cache-dir", str(tmp_path / "cache"), *args],
                          capture_output=True, text=True, cwd=tmp_path, env=env)


@pytest.mark.slow
def test_stubs_type_check(tmp_path):
    out = mypy(tmp_path, "--strict", str(EXAMPLES))
    assert out.returncode == 0, out.stdout + out.stderr


def test_bad_call_is_rejected_by_the_stubs(tmp_path):
    # The check can fail: a wrong type must be reported.
    bad = tmp_path / "bad.py"
    bad.write_text("from csnapshot import Vitals, Field\n"
                   "v = Vitals([Field('a')])\n"
                   "x: str = v.read_tuple()\n")
    out = mypy(tmp_path, str(bad))
    assert out.returncode == 1 and "incompatible types" in out.stdout.lower(), out.stdout
