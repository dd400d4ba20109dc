"""docs/c-api.md is executable: build its example against the installed csnapshot."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "c-api.md"

pytest.importorskip("Cython", reason="the C API test needs Cython (the [test] extra)")


def doc_files():
    """{filename: source} for every code block of the doc that starts with '# file: NAME'."""
    blocks = re.findall(r"```(?:cython|python)\n(.*?)```", DOC.read_text(), re.S)
    files = {}
    for block in blocks:
        first, _, rest = block.partition("\n")
        m = re.fullmatch(r"# file: (\S+)( \(continued\))?", first)
        if m:
            files[m.group(1)] = files.get(m.group(1), "") + rest if m.group(2) else rest
    return files


@pytest.mark.slow
def test_documented_example_builds_and_runs(tmp_path):
    files = doc_files()
    assert set(files) == {"vitals_sum.pyx", "setup.py"}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    build = subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
                           cwd=tmp_path, capture_output=True, text=True)
    assert build.returncode == 0, build.stdout + build.stderr
    code = """
import csnapshot, vitals_sum
v = csnapshot.Vitals([csnapshot.Field('a', default=1.5), csnapshot.Field('b', max=10.0)])
vitals_sum.set_field(v, 'b', 99.0)            # clamped to 10.0
print(vitals_sum.consistent_sum(v, 1000), v.version)
"""
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["11.5", "1"]
    # The documented output is what the example prints.
    assert "11.5 1" in DOC.read_text()
    # The reader in another process (the second console example, as documented).
    demo = re.search(r'\$ python -c "\n(import csnapshot, subprocess.*?)"\n3\.75', DOC.read_text(),
                     re.S)
    assert demo, "the cross-process example is missing from docs/c-api.md"
    code = demo.group(1).replace("demo-vitals", f"csnaptest-capi-{os.getpid()}")
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["3.75"]
    # The in-process latch record (the third console example).
    demo = re.search(r'\$ python -c "\n(import csnapshot, vitals_sum\n'
                     r'v = csnapshot\.Vitals\([^\n]*layout=\'latch\'\)\n[^"]*)"\n4\.5',
                     DOC.read_text())
    assert demo, "the latch example is missing from docs/c-api.md"
    run = subprocess.run([sys.executable, "-c", demo.group(1)], cwd=tmp_path, env=env,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["4.5"]
    code = ("import csnapshot, vitals_sum\n"
            "try:\n    vitals_sum.latch_vitals_sum(csnapshot.Vitals([csnapshot.Field('a')]))\n"
            "except TypeError as e:\n    print(e)\n")
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                         capture_output=True, text=True)
    assert run.stdout.strip() == "not a latch record: layout='classic'", run.stderr
