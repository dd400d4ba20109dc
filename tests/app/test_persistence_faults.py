"""Persistence under faults (issue 11, items 1-5).

Disk faults are injected through the writer's ``fault(step, path)`` hook: no
root, no real mount, no real full disk.
"""

import errno
import json
import logging
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import src.state.data_dir as data_dir_mod
from src.state.data_dir import DataDirError, DataDirLocked, open_data_dir
from src.state.persistence import (FinalSaveError, SnapshotPersistence, encode_snapshot,
                                   list_snapshots, load_latest, read_snapshot_file,
                                   snapshot_dir, snapshot_path)
from src.state.self_state import SelfState
from src.state.snapshot_manager import StateSnapshotManager

ROOT = Path(__file__).resolve().parents[2]
LOG = "src.state.persistence"


def publish_ticks(p, ticks, state=None, manager=None):
    """Submit a snapshot at each tick number of `ticks` and wait for it to be handled."""
    s = state or SelfState()
    m = manager or StateSnapshotManager()
    for t in ticks:
        s.set_vitals(ticks=t)
        p.submit(m.update_snapshot(s))
        assert p.flush(5)
    return s


def bad_files(folder, ticks):
    folder.mkdir(parents=True, exist_ok=True)
    full = encode_snapshot(StateSnapshotManager().update_snapshot(SelfState()))
    kinds = [b"\x00\xff garbage", full[:len(full) // 2], b'{"schema_version": 99}']
    for i, t in enumerate(ticks):
        (folder / f"snapshot_{t:06d}.json").write_bytes(kinds[i % len(kinds)])


# ---- item 1: retention never deletes the new snapshot ---------------------------------


def test_files_that_do_not_load_never_cost_a_new_snapshot_its_place(tmp_path, caplog):
    folder = snapshot_dir(tmp_path)
    bad_files(folder, range(100, 106))  # more than `keep`, all above the new ticks
    with caplog.at_level(logging.WARNING, logger=LOG):
        with SnapshotPersistence(tmp_path, keep=3, min_interval=0) as p:
            publish_ticks(p, range(1, 6))
    assert [t for t, _ in list_snapshots(tmp_path)] == [3, 4, 5]
    assert p.stats.last_path.exists() and p.stats.last_path == snapshot_path(tmp_path, 5)
    # moved aside, each named in a warning with the reason
    rejected = sorted(os.listdir(folder / "rejected"))
    assert rejected == [f"snapshot_{t:06d}.json" for t in range(100, 106)]
    for t in range(100, 106):
        assert any(f"snapshot_{t:06d}.json" in r.getMessage() and "does not load" in
                   r.getMessage() for r in caplog.records), t
    assert load_latest(tmp_path)[0].ticks == 5


def test_the_file_just_written_is_never_pruned(tmp_path):
    # valid files with higher ticks (e.g. an operator restored an older snapshot)
    s, m = SelfState(), StateSnapshotManager()
    with SnapshotPersistence(tmp_path, keep=3, min_interval=0) as p:
        publish_ticks(p, [100, 101, 102], s, m)
    with SnapshotPersistence(tmp_path, keep=3, min_interval=0) as p:
        publish_ticks(p, [7], s, m)
        assert p.stats.last_path == snapshot_path(tmp_path, 7) and p.stats.last_path.exists()
    assert [t for t, _ in list_snapshots(tmp_path)] == [7, 101, 102]


def test_a_bad_file_that_cannot_be_moved_aside_is_left_out_of_retention(tmp_path, caplog):
    folder = snapshot_dir(tmp_path)
    bad_files(folder, [50])
    (folder / "rejected").write_text("a file where the rejected folder should be")
    with caplog.at_level(logging.WARNING, logger=LOG):
        with SnapshotPersistence(tmp_path, keep=2, min_interval=0) as p:
            publish_ticks(p, range(1, 5))
    assert [t for t, _ in list_snapshots(tmp_path)] == [3, 4, 50]  # 50 kept, never counted
    warned = [r.getMessage() for r in caplog.records if "snapshot_000050.json" in r.getMessage()]
    assert len(warned) == 1 and "left out of retention" in warned[0]  # warned once, not per save


# ---- item 2: ENOSPC makes room and retries; a failed final save is an error ------------


class Disk:
    """A fake disk of `capacity` snapshot files: writing one more raises ENOSPC."""

    def __init__(self, folder, capacity):
        self.folder, self.capacity, self.full_hits = folder, capacity, 0

    def __call__(self, step, path):
        if step == "write" and len(list(self.folder.glob("snapshot_*.json"))) >= self.capacity:
            self.full_hits += 1
            raise OSError(errno.ENOSPC, "No space left on device")


def test_a_disk_filled_by_retention_recovers(tmp_path, caplog):
    disk = Disk(snapshot_dir(tmp_path), capacity=3)
    with caplog.at_level(logging.WARNING, logger=LOG):
        p = SnapshotPersistence(tmp_path, keep=20, min_interval=0, fault=disk).start()
        publish_ticks(p, range(1, 11))
        assert p.finish(5) == snapshot_path(tmp_path, 10)
    assert disk.full_hits > 0 and p.stats.failed == 0 and p.stats.written == 10
    ticks = [t for t, _ in list_snapshots(tmp_path)]
    assert ticks[-1] == 10 and len(ticks) <= 3
    assert "no space left" in caplog.text and "retrying once" in caplog.text


def test_make_room_always_keeps_the_newest_valid_snapshot(tmp_path):
    s, m = SelfState(), StateSnapshotManager()
    with SnapshotPersistence(tmp_path, min_interval=0) as p:
        publish_ticks(p, [1, 2, 3], s, m)
    bad_files(snapshot_dir(tmp_path), [9])  # newest tick, but does not load
    failing = {"n": 0}

    def always_full(step, path):
        if step == "write":
            failing["n"] += 1
            raise OSError(errno.ENOSPC, "No space left on device")

    p = SnapshotPersistence(tmp_path, min_interval=0, fault=always_full).start()
    publish_ticks(p, [4], s, m)
    assert failing["n"] == 2  # the first try and one retry, no more
    assert [t for t, _ in list_snapshots(tmp_path)] == [3]  # newest valid kept, 9 moved aside
    assert read_snapshot_file(snapshot_path(tmp_path, 3)).ticks == 3
    with pytest.raises(FinalSaveError, match=r"not saved.*snapshot_000004\.json.*No space"):
        p.finish(5)


def test_finish_reports_success_or_nothing_submitted(tmp_path):
    p = SnapshotPersistence(tmp_path, min_interval=0).start()
    assert p.finish(5) is None
    p = SnapshotPersistence(tmp_path, min_interval=0).start()
    publish_ticks(p, [4])
    assert p.finish(5) == snapshot_path(tmp_path, 4)


# ---- item 3: health and rate-limited errors -------------------------------------------


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_health_reports_failing_saves_and_recovery(tmp_path):
    clock, broken = FakeClock(), {"on": False}

    def fault(step, path):
        if broken["on"] and step == "fsync":
            raise OSError(errno.EIO, "Input/output error")

    p = SnapshotPersistence(tmp_path, min_interval=0, fault=fault, clock=clock).start()
    h = p.health()
    assert h["status"] == "ok" and h["last_save_tick"] is None and h["last_error"] is None
    s = publish_ticks(p, [5])
    clock.now += 2.5
    h = p.health()
    assert h["status"] == "ok" and h["last_save_tick"] == 5 and h["last_save_age_s"] == 2.5
    broken["on"] = True
    publish_ticks(p, [6, 7], s)
    h = p.health()
    assert h["status"] == "failing" and h["consecutive_failures"] == 2
    assert "snapshot_000007.json" in h["last_error"] and "Input/output" in h["last_error"]
    assert h["last_save_tick"] == 5 and h["last_save_age_s"] == 2.5
    json.dumps(h)  # plain, JSON-ready
    broken["on"] = False
    publish_ticks(p, [8], s)
    h = p.health()
    assert h["status"] == "ok" and h["last_save_tick"] == 8 and h["last_error"] is None
    p.close(5)


def test_save_errors_are_logged_once_then_summarised_with_a_count(tmp_path, caplog):
    clock = FakeClock()

    def fault(step, path):
        if step == "write":
            clock.now += 0.1  # 10 failures a second, the clock drives the summary interval
            raise OSError(errno.EACCES, "Permission denied")

    with caplog.at_level(logging.INFO, logger=LOG):
        p = SnapshotPersistence(tmp_path, min_interval=0, fault=fault, clock=clock,
                                error_log_interval=10.0).start()
        publish_ticks(p, range(1, 251))  # 25 s of failures
        p.close(5)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert p.stats.failed == 250
    assert 2 <= len(errors) <= 4, errors  # one line, then one summary per 10 s
    assert "could not save snapshot_000001.json" in errors[0]
    assert "more failure(s)" in errors[1] and "Permission denied" in errors[1]
    counted = sum(int(e.split(": ")[1].split()[0]) for e in errors[1:])
    assert counted <= 249


# ---- item 4: a bad data dir, two processes on one data dir -----------------------------


def test_a_regular_file_or_dev_null_as_data_dir_is_a_one_line_error(tmp_path):
    f = tmp_path / "data"
    f.write_text("not a folder")
    with pytest.raises(DataDirError, match="data.*is a regular file, not a folder") as e:
        open_data_dir(f)
    assert "\n" not in str(e.value) and str(f) in str(e.value)
    with pytest.raises(DataDirError, match="/dev/null.*character device, not a folder"):
        open_data_dir("/dev/null")
    with pytest.raises(DataDirError, match="below-a-file.*Not a directory"):
        open_data_dir(f / "below-a-file")


def test_an_unreadable_data_dir_is_a_one_line_error(tmp_path, monkeypatch):
    # We may run as root (chmod 000 would not stop us): fake the kernel's answer.
    real = os.scandir

    def scandir(path="."):
        if Path(path) == tmp_path / "data":
            raise PermissionError(errno.EACCES, "Permission denied")
        return real(path)

    (tmp_path / "data").mkdir()
    monkeypatch.setattr(data_dir_mod.os, "scandir", scandir)
    with pytest.raises(DataDirError, match=r"data'?: cannot read it: Permission denied"):
        open_data_dir(tmp_path / "data")


def test_a_second_owner_of_a_data_dir_is_refused_until_the_first_closes(tmp_path):
    first = open_data_dir(tmp_path / "data")
    assert first.locked and (tmp_path / "data" / "snapshots").is_dir()
    with pytest.raises(DataDirLocked, match=f"in use by another Life process \\(pid {os.getpid()}"):
        open_data_dir(tmp_path / "data")
    first.close()
    open_data_dir(tmp_path / "data").close()


def run_main(tmp_path, *args, timeout=30):
    code = (f"import sys; sys.path.append({str(ROOT)!r}); "
            "from src.main_server_api import main; sys.exit(main())")
    return subprocess.run([sys.executable, "-c", code, "--port", "0", *args],
                          cwd=tmp_path, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_the_command_exits_2_on_a_bad_data_dir_without_a_traceback(tmp_path):
    f = tmp_path / "data"
    f.write_text("not a folder")
    for bad in (str(f), "/dev/null"):
        out = run_main(tmp_path, "--data-dir", bad)
        assert out.returncode == 2, out
        lines = [line for line in out.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and bad in lines[0] and "not a folder" in lines[0], out.stderr
        assert "Traceback" not in out.stderr + out.stdout


@pytest.mark.slow
def test_a_second_server_on_the_same_data_dir_refuses_to_start(tmp_path):
    code = (f"import sys; sys.path.append({str(ROOT)!r}); "
            "from src.main_server_api import main; sys.exit(main())")
    data = tmp_path / "data"
    first = subprocess.Popen([sys.executable, "-c", code, "--port", "0", "--data-dir",
                              str(data), "--tick-interval", "0.01"], cwd=tmp_path,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        for line in first.stderr:  # wait until it holds the lock and serves
            if "listening" in line:
                break
        else:
            pytest.fail(f"the first server did not start (exit {first.wait(10)})")
        second = run_main(tmp_path, "--data-dir", str(data))
        assert second.returncode == 2, second
        assert f"pid {first.pid}" in second.stderr and "in use" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        first.terminate()
        first.wait(20)
        first.stderr.close()
    assert first.returncode == 0


# ---- item 5: the loader reads only regular files, up to a cap ---------------------------


def write_valid(data_dir, tick):
    s = SelfState()
    s.set_vitals(ticks=tick)
    with SnapshotPersistence(data_dir, min_interval=0) as p:
        p.submit(StateSnapshotManager().update_snapshot(s))
        assert p.flush(5)
    return snapshot_path(data_dir, tick)


def test_a_fifo_never_hangs_the_loader(tmp_path, caplog):
    good = write_valid(tmp_path, 1)
    fifo = snapshot_path(tmp_path, 9)
    os.mkfifo(fifo)
    result = {}
    with caplog.at_level(logging.WARNING, logger=LOG):
        t = threading.Thread(target=lambda: result.update(r=load_latest(tmp_path)), daemon=True)
        t.start()
        t.join(10)
    if t.is_alive():  # old behaviour: blocked in open(); give it a writer to let it go
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        t.join(10)
        pytest.fail("load_latest hung on a FIFO")
    assert result["r"][1] == good
    assert "snapshot_000009.json" in caplog.text and "FIFO" in caplog.text


def test_symlinks_are_never_followed(tmp_path, caplog):
    good = write_valid(tmp_path, 1)
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_bytes(good.read_bytes().replace(b'"ticks":1', b'"ticks":5'))
    os.symlink(elsewhere, snapshot_path(tmp_path, 5))
    with caplog.at_level(logging.WARNING, logger=LOG):
        state, path = load_latest(tmp_path)
    assert path == good and state.ticks == 1
    assert "snapshot_000005.json" in caplog.text and "symbolic link" in caplog.text


@pytest.mark.slow
def test_a_symlink_to_dev_zero_is_skipped_in_bounded_memory(tmp_path):
    """In a child with a 1 GB address-space limit: the old loader died of MemoryError."""
    write_valid(tmp_path, 1)
    os.symlink("/dev/zero", snapshot_path(tmp_path, 9))
    code = (f"import sys; sys.path.append({str(ROOT)!r}); "
            "from src.state.persistence import load_latest; "
            f"print(load_latest({str(tmp_path)!r})[0].ticks)")

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (2**30, 2**30))

    # cwd: not the checkout, whose csnapshot/ (unbuilt in a non-editable install)
    # would shadow the installed one on the child's sys.path.
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, preexec_fn=limit, cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.strip() == "1", out.stderr[-2000:]
    assert "symbolic link" in out.stderr


def test_the_size_cap_is_configurable_and_skips_larger_files(tmp_path, caplog):
    small = write_valid(tmp_path, 1)
    big = write_valid(tmp_path, 2)
    padded = big.read_bytes()[:-1] + b',"pad":"' + b"x" * 5000 + b'"}'
    big.write_bytes(padded)
    cap = len(padded) - 1
    with caplog.at_level(logging.WARNING, logger=LOG):
        state, path = load_latest(tmp_path, max_bytes=cap)
    assert path == small and "snapshot_000002.json" in caplog.text and f"{cap}-byte cap" in \
        caplog.text
    with pytest.raises(ValueError, match="max_bytes"):
        load_latest(tmp_path, max_bytes=0)


def test_the_writer_moves_non_regular_files_aside(tmp_path):
    write_valid(tmp_path, 1)
    os.mkfifo(snapshot_path(tmp_path, 50))
    os.symlink("/dev/zero", snapshot_path(tmp_path, 51))
    with SnapshotPersistence(tmp_path, keep=2, min_interval=0) as p:
        publish_ticks(p, [2, 3])
    assert [t for t, _ in list_snapshots(tmp_path)] == [2, 3]
    aside = snapshot_dir(tmp_path) / "rejected"
    assert sorted(os.listdir(aside)) == ["snapshot_000050.json", "snapshot_000051.json"]
    assert os.path.islink(aside / "snapshot_000051.json")  # the link moved, not its target


def test_health_reports_persistence_and_degrades_while_saves_fail(tmp_path):
    import http.client

    from src.main_server_api import start_api_server

    broken = {"on": True}

    def fault(step, path):
        if broken["on"] and step == "open":
            raise OSError(errno.EROFS, "Read-only file system")

    manager, s = StateSnapshotManager(), SelfState()
    p = SnapshotPersistence(tmp_path, min_interval=0, fault=fault).start()
    srv = start_api_server(manager, "127.0.0.1", 0, None)
    srv.persistence_health = p.health

    def health():
        conn = http.client.HTTPConnection(*srv.server_address[:2], timeout=5)
        try:
            conn.request("GET", "/health")
            r = conn.getresponse()
            return r.status, json.loads(r.read())
        finally:
            conn.close()

    try:
        publish_ticks(p, [3], s, manager)
        status, body = health()
        assert status == 200 and body["status"] == "degraded"
        assert body["persistence"]["status"] == "failing"
        assert "Read-only" in body["persistence"]["last_error"]
        broken["on"] = False
        publish_ticks(p, [4], s, manager)
        status, body = health()
        assert status == 200 and body["status"] == "ok"
        assert body["persistence"]["last_save_tick"] == 4
    finally:
        srv.shutdown()
        p.close(5)


@pytest.mark.slow
def test_a_failed_final_save_is_a_non_zero_exit(tmp_path):
    """The snapshots folder is replaced by a file while the server runs (no root needed)."""
    code = (f"import sys; sys.path.append({str(ROOT)!r}); "
            "from src.main_server_api import main; sys.exit(main())")
    data = tmp_path / "data"
    proc = subprocess.Popen([sys.executable, "-c", code, "--port", "0", "--data-dir", str(data),
                             "--tick-interval", "0.01", "--snapshot-period", "1"], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stderr:
            if "listening" in line:
                break
        else:
            pytest.fail(f"the server did not start (exit {proc.wait(10)})")
        deadline = time.monotonic() + 20  # bounded poll: a first snapshot was saved
        while not list((data / "snapshots").glob("snapshot_*.json")):
            assert time.monotonic() < deadline and proc.poll() is None, "no snapshot saved"
            threading.Event().wait(0.05)
        # A file takes the folder's place.  The writer re-creates a missing
        # folder before each save, so the swap is two renames, retried
        # (bounded) while a save slips a fresh folder in between them.
        blocker = tmp_path / "blocker"
        blocker.write_text("in the way")
        for attempt in range(100):
            (data / "snapshots").rename(data / f"moved-{attempt}")
            try:
                blocker.rename(data / "snapshots")
                break
            except OSError:  # a save re-created the folder between the renames
                continue
        else:
            pytest.fail("a save re-created the snapshots folder 100 times in a row")
        proc.terminate()
        err = proc.stderr.read()
        proc.wait(20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        proc.stderr.close()
    assert proc.returncode == 1, err
    assert "the final snapshot was not saved" in err and "Traceback" not in err
