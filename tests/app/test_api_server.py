"""HTTP contract of the Life API, against a real server on an ephemeral port."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from src.environment.event_queue import EventQueue
from src.main_server_api import LIMIT_KEYS, MAX_LIMIT, LifeApi, start_api_server
from src.runtime.loop import run_loop
from src.state.persistence import SnapshotPersistence
from src.state.self_state import MemoryEntry, SelfState
from src.state.snapshot_manager import StateSnapshotManager

ROOT = Path(__file__).resolve().parents[2]

DEFAULT_KEYS = {"life_id", "birth_timestamp", "age", "subjective_time", "ticks", "energy",
                "integrity", "stability", "fatigue", "tension", "active", "last_significance",
                "planning", "intelligence", "subjective_time_base_rate",
                "subjective_time_rate_min", "subjective_time_rate_max",
                "subjective_time_intensity_coeff", "subjective_time_stability_coeff",
                "last_event_intensity", "learning_params", "adaptation_params"}


def request(server, method, path, body=None, headers=None):
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=10)
    headers = dict(headers or {})
    if method == "POST" and body is not None:  # what a JSON client sends (415 without it)
        headers.setdefault("Content-Type", "application/json")
    try:
        conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        conn.close()


def get_json(server, path, **kw):
    status, headers, data = request(server, "GET", path, **kw)
    return status, headers, (json.loads(data) if data else None)


@pytest.fixture
def published():
    """A state with some memory, published once; no loop (tests drive it)."""
    state = SelfState(memory_cap=100)
    state.energy = 75.0
    state.ticks = 100
    for i in range(20):
        state.add_memory(MemoryEntry("noise", 0.5, float(i), 1.0, None))
        state.add_event("noise")
    manager = StateSnapshotManager()
    manager.update_snapshot(state)
    return state, manager


@pytest.fixture
def server(published):
    state, manager = published
    queue = EventQueue(3)
    srv = start_api_server(manager, "127.0.0.1", 0, queue, vitals=state.vitals, api_token=None)
    yield srv
    srv.shutdown()


def test_status_keys_and_exclusions(server, published):
    status, headers, body = get_json(server, "/status")
    assert status == 200 and headers["content-type"] == "application/json"
    assert set(body) == DEFAULT_KEYS
    assert body["energy"] == 75.0 and body["ticks"] == 100
    assert headers["x-life-tick"] == "100"
    for internal in ("memory", "recent_events", "archive_memory", "activated_memory",
                     "last_pattern", "energy_history"):
        assert internal not in body
    status, _, body = get_json(server, "/status?include_optional=false")
    assert status == 200
    assert not {"life_id", "birth_timestamp", "learning_params", "adaptation_params",
                "planning", "intelligence", "subjective_time_base_rate"} & set(body)


def test_limit_semantics(server):
    _, _, body = get_json(server, "/status?memory_limit=5&events_limit=3")
    assert [m["timestamp"] for m in body["memory"]] == [15.0, 16.0, 17.0, 18.0, 19.0]
    assert set(body["memory"][0]) == {"event_type", "meaning_significance", "timestamp",
                                      "weight", "feedback_data"}
    assert body["recent_events"] == ["noise"] * 3
    _, _, body = get_json(server, "/status?memory_limit=0")
    assert body["memory"] == []  # asked for: present, and empty
    _, _, body = get_json(server, f"/status?memory_limit={MAX_LIMIT}")
    assert len(body["memory"]) == 20


@pytest.mark.parametrize("query", ["memory_limit=-1", "memory_limit=abc", "events_limit=1e9",
                                   "energy_history_limit=%00", f"memory_limit={MAX_LIMIT + 1}",
                                   "memory_limit=1&memory_limit=2", "nope=1",
                                   "include_optional=maybe", "stability_history_limit="])
def test_bad_query_is_400_naming_the_parameter(server, query):
    status, _, body = get_json(server, "/status?" + query)
    assert status == 400
    name = query.split("=")[0]
    assert name in body["error"]


def test_etag_and_304(server, published):
    state, manager = published
    status, headers, _ = get_json(server, "/status")
    etag = headers["etag"]
    status, headers2, data = request(server, "GET", "/status", headers={"If-None-Match": etag})
    assert status == 304 and data == b"" and headers2["etag"] == etag
    state.apply_delta({"ticks": 1})
    manager.update_snapshot(state)
    status, headers3, body = get_json(server, "/status", headers={"If-None-Match": etag})
    assert status == 200 and headers3["etag"] != etag and body["ticks"] == 101


def test_status_bytes_built_once_per_version_and_query(server, published):
    state, manager = published
    cache = server.status_cache
    before = cache.serialisations
    results = []

    def client():
        results.append(get_json(server, "/status?memory_limit=3")[2])

    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 8 and all(r == results[0] for r in results)
    assert cache.serialisations - before == 1
    get_json(server, "/status?memory_limit=4")
    assert cache.serialisations - before == 2
    state.apply_delta({"ticks": 1})
    manager.update_snapshot(state)
    get_json(server, "/status?memory_limit=3")
    assert cache.serialisations - before == 3


def test_vitals_is_live(server, published):
    state, manager = published
    status, _, body = get_json(server, "/vitals")
    assert status == 200 and body["vitals"]["energy"] == 75.0 and body["active"] is True
    version = body["version"]
    state.energy = 10.0  # written to the record: visible at once, no publish needed
    _, _, body = get_json(server, "/vitals")
    assert body["vitals"]["energy"] == 10.0 and body["version"] == version + 1
    _, _, status_body = get_json(server, "/status")
    assert status_body["energy"] == 75.0  # the published snapshot is unchanged
    assert get_json(server, "/vitals?x=1")[0] == 400


def test_health_without_a_loop(server):
    status, _, body = get_json(server, "/health")
    assert status == 200 and body["status"] == "ok" and body["queue_depth"] == 0
    assert body["loop_alive"] is None and body["tick"] == 100


def test_health_reports_a_stalled_loop(published):
    state, manager = published
    srv = start_api_server(manager, "127.0.0.1", 0, None, stall_after=0.05)
    try:
        deadline = time.monotonic() + 5
        while True:  # the last publish ages past the threshold
            status, _, body = get_json(srv, "/health")
            if status == 503 or time.monotonic() > deadline:
                break
            threading.Event().wait(0.05)
        assert status == 503 and body["status"] == "stalled"
    finally:
        srv.shutdown()


def test_unknown_path_and_wrong_method(server):
    status, _, body = get_json(server, "/nope")
    assert status == 404 and "nope" in body["error"]
    status, headers, data = request(server, "DELETE", "/status")
    assert status == 405 and headers["allow"] == "GET, HEAD" and "error" in json.loads(data)
    status, headers, data = request(server, "GET", "/event")
    assert status == 405 and headers["allow"] == "POST"


EVENT = json.dumps({"type": "shock", "intensity": 0.8}).encode()


@pytest.mark.parametrize("body, status, fragment", [
    (b"{not json", 400, "malformed JSON"),
    (b"[1, 2]", 400, "JSON object"),
    (b'{"intensity": 0.5}', 400, "'type' is required"),
    (b'{"type": "shock", "intensity": "x"}', 400, "intensity"),
    (b'{"type": "shock", "intensity": NaN}', 400, "intensity"),
    (b'{"type": "action"}', 400, "reserved"),
    (b'{"type": "shock", "color": 1}', 400, "unknown event field"),
    (b'{"type": "shock", "metadata": [1]}', 400, "metadata"),
])
def test_bad_events_are_400(server, body, status, fragment):
    got, _, data = request(server, "POST", "/event", body=body,
                           headers={"Content-Type": "application/json"})
    assert got == status and fragment in json.loads(data)["error"]
    assert len(server.event_queue) == 0


def test_event_too_large_is_413(server):
    body = json.dumps({"type": "shock", "metadata": {"x": "y" * 20000}}).encode()
    status, _, data = request(server, "POST", "/event", body=body)
    assert status == 413 and "limit" in json.loads(data)["error"]


def test_event_queue_full_is_503(server):
    for _ in range(3):
        assert request(server, "POST", "/event", body=EVENT)[0] == 202
    status, headers, data = request(server, "POST", "/event", body=EVENT)
    assert status == 503 and "full" in json.loads(data)["error"]
    assert server.event_queue.dropped == 1


def test_token_protects_post_and_optionally_get(published):
    _, manager = published
    srv = start_api_server(manager, "127.0.0.1", 0, EventQueue(), api_token="s3cret")
    try:
        assert request(srv, "POST", "/event", body=EVENT)[0] == 401
        assert request(srv, "POST", "/event", body=EVENT,
                       headers={"Authorization": "Bearer wrong"})[0] == 401
        assert request(srv, "POST", "/event", body=EVENT,
                       headers={"Authorization": "Bearer s3cret"})[0] == 202
        assert request(srv, "POST", "/event", body=EVENT,
                       headers={"X-API-Key": "s3cret"})[0] == 202
        assert request(srv, "GET", "/status")[0] == 200
    finally:
        srv.shutdown()
    srv = start_api_server(manager, "127.0.0.1", 0, None, api_token="s3cret", protect_get=True)
    try:
        assert request(srv, "GET", "/status")[0] == 401
        assert request(srv, "GET", "/status", headers={"X-API-Key": "s3cret"})[0] == 200
    finally:
        srv.shutdown()


def test_bad_server_options(published):
    _, manager = published
    with pytest.raises(ValueError, match="port"):
        start_api_server(manager, "127.0.0.1", 70000)
    with pytest.raises(ValueError, match="max_connections"):
        start_api_server(manager, "127.0.0.1", 0, max_connections=0)
    with pytest.raises(TypeError, match="StateSnapshotManager"):
        start_api_server(object(), "127.0.0.1", 0)


def test_read_timeout_drops_a_silent_connection(published):
    _, manager = published
    srv = start_api_server(manager, "127.0.0.1", 0, None, read_timeout=0.3)
    try:
        with socket.create_connection(srv.server_address[:2]) as idle:  # sends nothing
            idle.settimeout(5)
            assert idle.recv(1024) == b""  # closed without an answer: nothing was asked
    finally:
        srv.shutdown()


def test_at_the_cap_a_silent_connection_gives_way_to_a_new_one(published):
    # The cap used to 503 every newcomer while silent (or dripping) sockets held
    # the slots; now the one waiting longest on its client is closed instead.
    _, manager = published
    srv = start_api_server(manager, "127.0.0.1", 0, None, max_connections=1, read_timeout=30)
    try:
        with socket.create_connection(srv.server_address[:2]) as silent:
            silent.settimeout(10)
            deadline = time.monotonic() + 10
            while srv.deadlines.evicted == 0 and time.monotonic() < deadline:
                assert request(srv, "GET", "/health")[0] == 200
            assert srv.deadlines.evicted >= 1  # the silent one was accepted, then evicted
            assert silent.recv(4096).startswith(b"HTTP/1.1 408 ")
    finally:
        srv.shutdown()


def test_a_connection_being_served_is_never_evicted_the_newcomer_gets_503(published, monkeypatch):
    _, manager = published
    srv = start_api_server(manager, "127.0.0.1", 0, None, max_connections=1)
    entered, release = threading.Event(), threading.Event()
    real_health = srv.api.health

    def slow_health(query):
        entered.set()
        release.wait(10)
        return real_health(query)

    monkeypatch.setattr(srv.api, "health", slow_health)
    results = []
    busy = threading.Thread(target=lambda: results.append(request(srv, "GET", "/health")[0]))
    try:
        busy.start()
        assert entered.wait(10)
        status, headers, _ = request(srv, "GET", "/status")
        assert status == 503 and headers["retry-after"] == "1"
    finally:
        release.set()
        busy.join(10)
        srv.shutdown()
    assert results == [200]
    assert srv.deadlines.evicted == 0


@pytest.mark.parametrize("phase", ["head", "body"])
def test_a_drip_fed_request_is_cut_at_its_deadline_and_frees_its_slot(published, phase):
    # Slowloris: each byte arrives well within read_timeout, so only a deadline
    # for the whole head (or body) ends it.
    _, manager = published
    srv = start_api_server(manager, "127.0.0.1", 0, EventQueue(), max_connections=1,
                           read_timeout=5, request_timeout=0.5)
    head = (b"POST /event HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n")
    try:
        with socket.create_connection(srv.server_address[:2]) as drip:
            drip.settimeout(0.1)
            if phase == "body":
                drip.sendall(head)  # the head at once; the body dripped
            got = b""
            sent = 0
            for byte in (head if phase == "head" else b"x" * 100) * 2:
                try:
                    drip.sendall(bytes([byte]))
                    sent += 1
                    got += drip.recv(4096)  # times out (0.1 s) until the server answers
                except socket.timeout:
                    continue
                except OSError:
                    break
                if got:
                    break
            assert got.startswith(b"HTTP/1.1 408 "), (sent, got)
            assert sent < len(head)  # cut before it completed, at ~0.5 s of ~0.1 s/byte
        deadline = time.monotonic() + 5
        status = None
        while status != 200 and time.monotonic() < deadline:
            status = request(srv, "GET", "/health")[0]
        assert status == 200
        assert srv.deadlines.expired >= 1
    finally:
        srv.shutdown()


def test_unexpected_error_is_a_json_500_and_server_keeps_serving(server, monkeypatch, caplog):
    def boom(*a, **k):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(LifeApi, "read_vitals", boom)
    with caplog.at_level("ERROR", logger="src.api"):
        status, _, data = request(server, "GET", "/vitals")
    assert status == 500 and json.loads(data) == {"error": "internal server error"}
    assert "kaboom" in caplog.text
    assert request(server, "GET", "/status")[0] == 200


# ---- with the runtime loop ---------------------------------------------------

@pytest.fixture
def running(tmp_path):
    state = SelfState()
    manager = StateSnapshotManager()
    manager.update_snapshot(state)
    queue = EventQueue()
    stop = threading.Event()
    persistence = SnapshotPersistence(tmp_path)
    loop = threading.Thread(target=run_loop, args=(state,), kwargs=dict(
        tick_interval=0.0, snapshot_period=50, stop_event=stop, event_queue=queue,
        snapshot_manager=manager, persistence=persistence))
    srv = start_api_server(manager, "127.0.0.1", 0, queue, vitals=state.vitals,
                           loop_thread=loop)
    loop.start()
    yield srv, manager, state
    stop.set()
    loop.join(10)
    srv.shutdown()
    persistence.close(5)


def test_posted_event_shows_in_a_later_status(running):
    srv, manager, _ = running
    status, _, _ = request(srv, "POST", "/event",
                           body=json.dumps({"type": "shock", "intensity": 1.0}).encode())
    assert status == 202
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        _, _, body = get_json(srv, "/status?events_limit=1000")
        if "shock" in body["recent_events"]:
            break
    assert "shock" in body["recent_events"]
    assert body["energy"] < 100.0


@pytest.mark.slow
def test_concurrent_clients_see_consistent_monotonic_state(running):
    srv, manager, state = running
    stop = threading.Event()
    results = []
    lock = threading.Lock()
    idle_start = manager.get_snapshot().tick
    stop.wait(1.0)  # one second without clients: the loop's unloaded rate
    start_tick = manager.get_snapshot().tick
    idle_rate = start_tick - idle_start

    def client(i):
        ok = bad = regress = 0
        last_tick = -1
        conn = http.client.HTTPConnection(*srv.server_address[:2], timeout=10)
        while not stop.is_set():
            path = "/status?events_limit=5" if i % 2 else "/vitals"
            conn.request("GET", path)
            r = conn.getresponse()
            data = r.read()
            if r.status != 200:
                bad += 1
                continue
            body = json.loads(data)
            if path == "/vitals":
                tick = body["vitals"]["ticks"]
                consistent = 0.0 <= body["vitals"]["energy"] <= 100.0
            else:
                tick = body["ticks"]
                # planning and intelligence come from the same tick
                planning = body["planning"].get("sources_used", {})
                intelligence = body["intelligence"].get("processed_sources", {})
                consistent = (planning.get("memory_proxy")
                              == intelligence.get("memory_proxy_size"))
            if not consistent:
                bad += 1
            if tick < last_tick:
                regress += 1
            last_tick = tick
            ok += 1
        conn.close()
        with lock:
            results.append((ok, bad, regress))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    stop.wait(2.0)  # the run's duration
    stop.set()
    for t in threads:
        t.join()
    end_tick = manager.get_snapshot().tick
    ok = sum(r[0] for r in results)
    print(f"\n16 clients: {ok} responses in 2 s, {sum(r[1] for r in results)} bad, "
          f"{sum(r[2] for r in results)} tick regressions; loop {idle_rate} ticks/s without "
          f"clients, {(end_tick - start_tick) / 2:.0f} ticks/s with them")
    assert ok > 100
    assert sum(r[1] for r in results) == 0
    assert sum(r[2] for r in results) == 0
    assert end_tick > start_tick + 10


# ---- the main command --------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_main_command_serves_and_stops_gracefully_on_sigterm(tmp_path):
    port = free_port()
    data = tmp_path / "data"
    # Run from a temp dir with the repo root appended to sys.path, so the
    # installed csnapshot (not the checkout's sources) is imported.
    code = (f"import sys; sys.path.append({str(ROOT)!r}); "
            "from src.main_server_api import main; sys.exit(main())")
    proc = subprocess.Popen([sys.executable, "-c", code, "--port", str(port), "--data-dir",
                             str(data), "--tick-interval", "0.01", "--snapshot-period", "5"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            try:
                conn.request("GET", "/health")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                if proc.poll() is not None:
                    break
                threading.Event().wait(0.1)
            finally:
                conn.close()
        else:
            pytest.fail("the server did not answer /health within 20 s")
        assert proc.poll() is None, proc.stdout.read()
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert "received SIGTERM" in out
    files = sorted((data / "snapshots").glob("snapshot_*.json"))
    assert files, out
    last = json.loads(files[-1].read_text())
    final_tick = int(files[-1].stem.split("_")[1])
    assert last["ticks"] == final_tick  # the file named after a tick holds that tick
    assert not list((data / "snapshots").glob("*.tmp*"))


def test_main_help_lists_the_flags():
    code = (f"import sys; sys.path.append({str(ROOT)!r}); "
            "from src.main_server_api import main; main(['--help'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=os.path.dirname(ROOT))
    assert out.returncode == 0
    for flag in ("--host", "--port", "--tick-interval", "--snapshot-period", "--data-dir",
                 "--log-level", "--seed", "--no-generator", "--api-token"):
        assert flag in out.stdout


def test_every_limit_key_selects_its_log(server):
    # The original's five limits, each accepted by /status and naming the log it bounds.
    logs = {"memory_limit": "memory", "events_limit": "recent_events",
            "energy_history_limit": "energy_history",
            "stability_history_limit": "stability_history",
            "adaptation_history_limit": "adaptation_history"}
    assert set(LIMIT_KEYS) == set(logs)
    _, _, plain = get_json(server, "/status")
    for key, log in logs.items():
        status, _, body = get_json(server, f"/status?{key}=1")
        assert status == 200 and log in body and log not in plain, key


def test_status_bodies_reuse_the_unchanged_dicts_json_and_equal_the_plain_encoding():
    from src.api.errors import json_bytes
    from src.api.status_json import REUSED_KEYS, StatusEncoder
    from src.environment.generator import EventGenerator
    from src.state.status import status_view
    state, manager = SelfState(memory_cap=9), StateSnapshotManager()
    encoder = StatusEncoder()
    queries = [(True, {}), (False, {}), (True, {k: 3 for k in LIMIT_KEYS}),
               (False, {k: MAX_LIMIT for k in LIMIT_KEYS}), (True, {"memory_limit": 0})]
    reused = built = 0
    for i in range(150):  # learning every 75 ticks, adaptation every 100: dicts change
        run_loop(state, tick_interval=0.0, max_ticks=1 + i % 3, snapshot_manager=manager,
                 generator=EventGenerator(seed=i, rate=0.67))
        frozen = manager.get_snapshot().state
        for include_optional, limits in queries:
            before = dict(encoder._reused)
            body = encoder.encode(frozen, include_optional, limits)
            assert body == json_bytes(status_view(frozen, include_optional, limits))
            for key in REUSED_KEYS & set(before):
                same = before[key][0] is getattr(frozen, key)
                assert (encoder._reused[key] is before[key]) == same, key
                reused, built = reused + same, built + (not same)
    print(f"dict JSON reused {reused} times, built {built}")
    assert reused > 10 * built > 0  # mostly reused, and rebuilt when the loop wrote one
