"""Snapshot persistence (issue #5): atomic files, retention, latest-wins, recovery."""

import json
import logging
import os
import threading
import time

import pytest

import src.state.persistence as persistence_mod
from src.state.persistence import (SnapshotPersistence, encode_snapshot, list_snapshots,
                                   load_latest, load_snapshot, read_snapshot_file,
                                   snapshot_dir, snapshot_path, write_snapshot_file)
from src.state.self_state import MemoryEntry, SelfState
from src.state.snapshot_manager import StateSnapshotManager


def make_state(ticks=0, **caps):
    s = SelfState(**caps)
    for i in range(ticks):
        s.apply_delta({"ticks": 1, "age": 0.5, "energy": -0.1})
        s.add_memory(MemoryEntry("noise", 0.3, 1000.0 + i))
        s.add_event("noise")
        s.record_history()
    s.set_planning_and_intelligence({"tick": ticks}, {"tick": ticks})
    return s


def published(state, manager=None):
    return (manager or StateSnapshotManager()).update_snapshot(state)


def write_valid(data_dir, tick, state=None):
    s = state or make_state(tick)
    assert s.ticks == tick
    folder = snapshot_dir(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    return write_snapshot_file(folder, tick, encode_snapshot(published(s)))


def folder_names(data_dir):
    return sorted(os.listdir(snapshot_dir(data_dir)))


def test_round_trip(tmp_path):
    s = make_state(5)
    with SnapshotPersistence(tmp_path) as p:
        p.submit(published(s))
        assert p.flush(5)
    assert folder_names(tmp_path) == ["snapshot_000005.json"]  # no temporary file left
    data = json.loads(snapshot_path(tmp_path, 5).read_text())
    assert data["schema_version"] == 1 and data["ticks"] == 5
    loaded, path = load_latest(tmp_path)
    assert path == snapshot_path(tmp_path, 5)
    assert loaded.to_dict() == s.to_dict()
    assert load_snapshot(tmp_path, 5).to_dict() == s.to_dict()
    assert p.stats.written == 1 and p.stats.last_tick == 5 and p.stats.last_path == path


def test_loading_takes_caps(tmp_path):
    write_valid(tmp_path, 30)
    loaded, _ = load_latest(tmp_path, memory_cap=10)
    assert len(loaded.memory) == 10 and loaded.caps["memory_cap"] == 10
    fresh, path = load_latest(tmp_path / "nothing-here", memory_cap=7)
    assert path is None and fresh.ticks == 0 and fresh.caps["memory_cap"] == 7


def test_write_snapshot_file_is_atomic_and_replaces(tmp_path):
    write_snapshot_file(tmp_path, 3, b'{"a":1}')
    path = write_snapshot_file(tmp_path, 3, b'{"a":2}')
    assert path.read_bytes() == b'{"a":2}' and os.listdir(tmp_path) == ["snapshot_000003.json"]
    with pytest.raises(FileNotFoundError):  # the folder must exist; nothing is left behind
        write_snapshot_file(tmp_path / "missing", 1, b"{}")


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    write_snapshot_file(tmp_path, 4, b"old")

    def no_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(persistence_mod.os, "replace", no_replace)
    with pytest.raises(OSError, match="No space"):
        write_snapshot_file(tmp_path, 4, b"new")
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["snapshot_000004.json"]
    assert (tmp_path / "snapshot_000004.json").read_bytes() == b"old"


def test_retention_keeps_the_newest(tmp_path):
    m = StateSnapshotManager()
    s = SelfState()
    with SnapshotPersistence(tmp_path, keep=3, min_interval=0) as p:
        for _ in range(10):
            s.apply_delta({"ticks": 1})
            p.submit(m.update_snapshot(s))
            assert p.flush(5)
    assert [t for t, _ in list_snapshots(tmp_path)] == [8, 9, 10]
    assert p.stats.written == 10 and p.stats.superseded == 0


def test_retention_is_by_tick_number_not_by_age(tmp_path):
    write_valid(tmp_path, 100)
    write_valid(tmp_path, 7)   # written last, but the oldest tick
    write_valid(tmp_path, 50)
    persistence_mod.prune_snapshots(tmp_path, 2)
    assert [t for t, _ in list_snapshots(tmp_path)] == [50, 100]


def test_latest_wins_when_the_writer_is_busy(tmp_path):
    """A slow writer skips intermediate snapshots; nothing queues up."""
    m, s = StateSnapshotManager(), SelfState()
    with SnapshotPersistence(tmp_path, min_interval=0.2) as p:
        for _ in range(200):
            s.apply_delta({"ticks": 1})
            p.submit(m.update_snapshot(s))
        assert p.flush(5)
        stats = p.stats
    assert stats.submitted == 200
    assert stats.written + stats.superseded == 200 and stats.written <= 5
    assert stats.last_tick == 200
    assert list_snapshots(tmp_path)[-1][0] == 200


def test_the_rate_limit_spaces_writes(tmp_path, monkeypatch):
    starts = []
    real = persistence_mod.write_snapshot_file

    def timed(*args, **kw):
        starts.append(time.monotonic())
        return real(*args, **kw)

    monkeypatch.setattr(persistence_mod, "write_snapshot_file", timed)
    m, s = StateSnapshotManager(), SelfState()
    with SnapshotPersistence(tmp_path, min_interval=0.05) as p:
        deadline = time.monotonic() + 0.4
        while time.monotonic() < deadline:
            s.apply_delta({"ticks": 1})
            p.submit(m.update_snapshot(s))
            time.sleep(0.001)
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert len(starts) >= 3
    # close() skips the wait for the last one only
    assert all(g >= 0.045 for g in gaps[:-1]), gaps


def test_submit_is_a_hand_over(tmp_path, monkeypatch):
    """submit() stores a reference: no serialisation on the caller's thread."""
    s = make_state(3)
    snap = published(s)
    calls = []
    real = persistence_mod.encode_snapshot
    monkeypatch.setattr(persistence_mod, "encode_snapshot",
                        lambda x, *more: (calls.append(threading.get_ident()), real(x, *more))[1])
    p = SnapshotPersistence(tmp_path)
    p.submit(snap)  # not started: nothing is written yet
    assert calls == [] and not snapshot_dir(tmp_path).exists()
    assert p.close(5)  # a never-started writer still writes what was submitted
    assert calls and threading.get_ident() not in calls
    assert list_snapshots(tmp_path)[0][0] == 3
    with pytest.raises(RuntimeError, match="closed"):
        p.submit(snap)
    with pytest.raises(TypeError, match="StateSnapshot"):
        SnapshotPersistence(tmp_path).submit(s)  # type: ignore[arg-type]


def test_close_writes_the_pending_snapshot_at_once(tmp_path):
    m, s = StateSnapshotManager(), SelfState()
    p = SnapshotPersistence(tmp_path, min_interval=30).start()
    p.submit(m.update_snapshot(s))
    assert p.flush(5)
    s.apply_delta({"ticks": 1})
    p.submit(m.update_snapshot(s))  # inside the 30 s rate-limit window
    started = time.monotonic()
    assert p.close(5)
    assert time.monotonic() - started < 2
    assert [t for t, _ in list_snapshots(tmp_path)] == [0, 1]


def test_disk_errors_are_logged_and_retried_with_the_next_snapshot(tmp_path, caplog,
                                                                     monkeypatch):
    real = persistence_mod.write_snapshot_file
    failures = {"left": 2}

    def flaky(*args, **kw):
        if failures["left"]:
            failures["left"] -= 1
            raise OSError(5, "Input/output error")
        return real(*args, **kw)

    monkeypatch.setattr(persistence_mod, "write_snapshot_file", flaky)
    m, s = StateSnapshotManager(), SelfState()
    with caplog.at_level(logging.INFO, logger="src.state.persistence"):
        with SnapshotPersistence(tmp_path, min_interval=0) as p:
            for _ in range(3):
                s.apply_delta({"ticks": 1})
                p.submit(m.update_snapshot(s))
                assert p.flush(5)
    assert p.stats.failed == 2 and p.stats.written == 1 and p.thread is not None
    assert [t for t, _ in list_snapshots(tmp_path)] == [3]
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    # Rate-limited (issue 11 item 3): one line for the run of failures, not one per failure.
    assert len(errors) == 1 and "snapshot_000001.json" in errors[0] and "Input/output" in errors[0]
    assert any("again" in r.getMessage() and "2 failed" in r.getMessage()
               for r in caplog.records if r.levelno == logging.INFO)


def test_an_unwritable_folder_never_stops_the_writer(tmp_path, caplog):
    blocker = tmp_path / "data"
    blocker.write_text("a file where the folder should be")
    m, s = StateSnapshotManager(), SelfState()
    with caplog.at_level(logging.ERROR, logger="src.state.persistence"):
        with SnapshotPersistence(blocker, min_interval=0) as p:
            p.submit(m.update_snapshot(s))
            assert p.flush(5)
            assert p.thread.is_alive()
    assert p.stats.failed == 1
    assert caplog.records


def test_corrupt_truncated_and_foreign_files_are_skipped(tmp_path, caplog):
    write_valid(tmp_path, 1)
    good = write_valid(tmp_path, 2)
    folder = snapshot_dir(tmp_path)
    full = encode_snapshot(published(make_state(6)))
    (folder / "snapshot_000003.json").write_bytes(b"\x00\xff garbage")
    (folder / "snapshot_000004.json").write_bytes(full[:len(full) // 2])        # truncated
    (folder / "snapshot_000005.json").write_text('{"hello": "world"}')          # foreign
    (folder / "snapshot_000006.json").write_bytes(b"")                          # empty
    (folder / "snapshot_000007.json").write_bytes(full)       # tick 6 inside: renamed/foreign
    (folder / "snapshot_000008.json").write_text('{"schema_version": 99}')      # future schema
    (folder / "snapshot_000009.json.tmp-1-1").write_bytes(encode_snapshot(published(make_state(9))))
    (folder / "snapshot_000010.json").mkdir()                                   # unreadable
    (folder / "notes.txt").write_text("ignored")
    with caplog.at_level(logging.WARNING, logger="src.state.persistence"):
        state, path = load_latest(tmp_path)
    assert path == good and state.ticks == 2
    warned = " ".join(r.getMessage() for r in caplog.records)
    for tick in (3, 4, 5, 6, 7, 8, 10):
        assert f"snapshot_{tick:06d}.json" in warned, tick
    assert ".tmp-1-1" not in warned and "notes" not in warned


def test_no_valid_snapshot_gives_a_fresh_state(tmp_path, caplog):
    folder = snapshot_dir(tmp_path)
    folder.mkdir(parents=True)
    (folder / "snapshot_000001.json").write_text("{")
    with caplog.at_level(logging.WARNING, logger="src.state.persistence"):
        state, path = load_latest(tmp_path)
    assert path is None and state.ticks == 0 and "snapshot_000001.json" in caplog.text
    assert load_latest(tmp_path / "absent")[1] is None


def test_read_snapshot_file_errors(tmp_path):
    p = tmp_path / "snapshot_000001.json"
    p.write_text("[1, 2]")
    with pytest.raises(ValueError):
        read_snapshot_file(p)
    p.write_text("[" * 100_000)
    with pytest.raises(ValueError):
        read_snapshot_file(p)
    with pytest.raises(FileNotFoundError):
        load_snapshot(tmp_path, 42)


def test_leftover_temporary_files_are_removed_when_a_writer_starts(tmp_path):
    folder = snapshot_dir(tmp_path)
    folder.mkdir(parents=True)
    (folder / "snapshot_000001.json.tmp-999-0").write_bytes(b'{"partial')
    write_valid(tmp_path, 2)
    with SnapshotPersistence(tmp_path) as p:
        p.submit(published(make_state(3)))
        assert p.flush(5)
    assert folder_names(tmp_path) == ["snapshot_000002.json", "snapshot_000003.json"]


def test_constructor_validation(tmp_path):
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="keep"):
            SnapshotPersistence(tmp_path, keep=bad)  # type: ignore[arg-type]
    for bad in (-0.1, float("inf"), float("nan"), "0"):
        with pytest.raises(ValueError, match="min_interval"):
            SnapshotPersistence(tmp_path, min_interval=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("memory_cap", [7, 50])
def test_a_state_encoder_writes_the_plain_encodings_bytes_version_after_version(memory_cap):
    """The persistence thread's `StateEncoder` reuses the JSON of unchanged parts: over a live
    run (events, decay every 10 ticks, pruning, adaptation), each save is byte for byte the
    plain encoding of that version."""
    from src.environment.generator import EventGenerator
    from src.runtime.loop import run_loop
    from src.state.snapshot_manager import StateSnapshotManager
    from src.state.state_format import StateEncoder
    state, manager = SelfState(memory_cap=memory_cap), StateSnapshotManager()
    encoder = StateEncoder()
    for i in range(250):
        run_loop(state, tick_interval=0.0, max_ticks=1 + i % 7, snapshot_manager=manager,
                 generator=EventGenerator(seed=i, rate=0.67))
        snapshot = manager.get_snapshot()
        assert encode_snapshot(snapshot, encoder) == encode_snapshot(snapshot), i
    assert SelfState.from_dict(json.loads(encode_snapshot(snapshot, encoder))).to_dict() == \
        snapshot.to_dict()


def test_a_state_encoder_stays_exact_once_every_log_is_full_and_sliding():
    """Small caps fill every log within the run; from then on each append moves the window,
    so the first and last chunk of each log are new slices at every save - recognised by
    their entries (the adaptation history entry by entry).  Each save is still the plain
    encoding's bytes, and the state decodes back whole."""
    from src.environment.generator import EventGenerator
    from src.runtime.loop import run_loop
    from src.state.state_format import StateEncoder
    state = SelfState(memory_cap=7, recent_events_cap=40, history_cap=45,
                      adaptation_history_cap=5)
    manager, encoder = StateSnapshotManager(), StateEncoder()
    saves = 0
    for i in range(400):
        run_loop(state, tick_interval=0.0, max_ticks=1 + i % 23, snapshot_manager=manager,
                 generator=EventGenerator(seed=i, rate=0.8))
        snapshot = manager.get_snapshot()
        assert encode_snapshot(snapshot, encoder) == encode_snapshot(snapshot), i
        saves += 1
    frozen = snapshot.state
    # Every log was full and had slid (the run is ~4,800 ticks; adaptation every 100).
    assert len(frozen.adaptation_history) == 5 and frozen.adaptation_history[0]["tick"] > 500
    assert len(frozen.energy_history) == 45 and len(frozen.recent_events) == 40
    assert SelfState.from_dict(json.loads(encode_snapshot(snapshot, encoder)),
                               **state.caps).to_dict() == snapshot.to_dict()
    assert saves == 400


def test_a_state_encoder_reuses_only_chunks_of_the_same_entries():
    """Chunks are known by their entries' identity: two logs whose slices share the first
    and the last entry (interned strings) and the length but differ in between are each
    encoded as they are; an unchanged state re-encodes no log entry at all."""
    import src.state.state_format as state_format
    from src.state.state_format import StateEncoder
    first, second = SelfState(), SelfState()
    for kind in ("noise", "shock", "noise"):
        first.add_event(kind)
    for kind in ("noise", "decay", "noise"):
        second.add_event(kind)
    encoder = StateEncoder()
    for state in (first, second, first):
        frozen = state.freeze()
        assert encoder.encode(frozen) == encode_snapshot(frozen), state.recent_events
    encoded: list[object] = []
    plain_json = state_format._json

    def counting(value):
        encoded.append(value)
        return plain_json(value)
    frozen = first.freeze()
    try:
        state_format._json = counting
        again = encoder.encode(frozen)
    finally:
        state_format._json = plain_json
    assert again == encode_snapshot(frozen)
    logs = [v for v in encoded if isinstance(v, (list, tuple))]
    assert logs == [], f"re-encoded log chunks of an unchanged state: {logs}"
