"""Crash safety of snapshot persistence (issue #5): SIGKILL at random moments.

A child process resumes from the newest snapshot in one data folder and runs
the loop flat out (``tick_interval=0.001``, ``snapshot_period=1``, no rate
limit on the writer, so it is nearly always in the middle of a write); the
test kills it with SIGKILL after a random delay, then checks that the newest
snapshot file loads, that the loader picks it (never a temporary file), and
that the next child resumes from it.  The seed is printed; set CRASH_SEED to
replay a run.
"""

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from src.state.persistence import list_snapshots, load_latest, read_snapshot_file, snapshot_dir

REPO = Path(__file__).resolve().parents[2]
ROUNDS = 24

CHILD = textwrap.dedent("""
    import sys
    sys.path.append({repo!r})  # appended: the installed csnapshot must win
    from src.environment import EventGenerator
    from src.runtime.loop import run_loop
    from src.state.persistence import SnapshotPersistence, load_latest
    state, path = load_latest({data!r})
    print("ready", state.ticks, state.life_id, flush=True)
    run_loop(state, tick_interval=0.001, snapshot_period=1,
             persistence=SnapshotPersistence({data!r}, min_interval=0.0),
             generator=EventGenerator(seed={seed}))
""")

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")


@pytest.mark.slow
def test_sigkill_never_leaves_a_bad_newest_snapshot(tmp_path):
    seed = int(os.environ.get("CRASH_SEED") or random.randrange(2**32))
    print(f"CRASH_SEED={seed}")
    rng = random.Random(seed)
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    expected_ticks, life_id, temp_left, started = 0, None, 0, time.monotonic()
    for round_ in range(ROUNDS):
        code = CHILD.format(repo=str(REPO), data=str(data), seed=rng.randrange(2**31))
        child = subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            line = child.stdout.readline().split()
            assert line[:1] == ["ready"], child.stderr.read()
            # It resumed from the newest snapshot the last round left.
            assert int(line[1]) == expected_ticks, (round_, line)
            if life_id is not None:
                assert line[2] == life_id
            time.sleep(rng.uniform(0.0, 0.3))
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(10)
            child.stdout.close()
            child.stderr.close()
        assert child.returncode == -signal.SIGKILL

        files = list_snapshots(data)
        names = os.listdir(snapshot_dir(data)) if snapshot_dir(data).exists() else []
        temp_left += any(".tmp-" in n for n in names)
        state, path = load_latest(data)
        if not files:
            assert path is None
            continue
        newest_tick, newest = files[-1]
        assert read_snapshot_file(newest).ticks == newest_tick  # the newest file is whole
        assert path == newest and ".tmp" not in path.name
        assert state.ticks == newest_tick >= expected_ticks
        life_id = life_id or state.life_id
        assert state.life_id == life_id
        expected_ticks = newest_tick
    print(f"{ROUNDS} kills in {time.monotonic() - started:.1f} s, final tick {expected_ticks}, "
          f"{temp_left} kill(s) left a temporary file behind")
    assert expected_ticks > 0
