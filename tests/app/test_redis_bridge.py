"""The Redis bridge against a real redis-server: an origin (--redis) and followers (--follow).

Each node is `python -m src.main_server_api` in a subprocess on loopback; the
redis-server is the `redis_server` fixture (tests/app/conftest.py).  Every
wait polls a condition against a deadline.
"""

import collections
import http.client
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAIN = (f"import sys; sys.path.append({str(ROOT)!r}); "
        "from src.main_server_api import main; sys.exit(main())")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(port, path, body=None, timeout=5.0):
    """``(status, headers, body)`` of one request to 127.0.0.1:`port`."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request("POST" if body is not None else "GET", path,
                     None if body is None else json.dumps(body).encode(), headers)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def until(condition, timeout, what):
    """Poll `condition()` until it returns a true value (returned) or `timeout` s pass."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout} s: {what}")
        time.sleep(0.02)


class Node:
    """One command in a subprocess; its log goes to a file (read on failure)."""

    def __init__(self, tmp_path, name, *args):
        self.port = free_port()
        self.log = tmp_path / f"{name}.log"
        with open(self.log, "w") as log:  # the child keeps its own copy
            self.proc = subprocess.Popen([sys.executable, "-c", MAIN, "--port", str(self.port),
                                          *args], cwd=tmp_path, stdout=subprocess.DEVNULL,
                                         stderr=log)
        deadline = time.monotonic() + 20
        while True:
            try:
                request(self.port, "/health", timeout=1.0)
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    pytest.fail(f"{name} did not come up:\n{self.log.read_text()[-2000:]}")
                time.sleep(0.05)

    def get(self, path):
        return request(self.port, path)

    def health(self):
        return json.loads(self.get("/health")[2])

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


@pytest.fixture
def nodes():
    started = []
    yield started
    for node in reversed(started):
        node.stop()


def origin(tmp_path, nodes, url, *extra, tick="0.01"):
    node = Node(tmp_path, f"origin{len(nodes)}", "--data-dir", str(tmp_path / f"data{len(nodes)}"),
                "--tick-interval", tick, "--no-generator", "--redis", url, *extra)
    nodes.append(node)
    return node


def follower(tmp_path, nodes, url, *extra):
    node = Node(tmp_path, f"follower{len(nodes)}", "--follow", url, *extra)
    nodes.append(node)
    return node


def same_as_origin(o, f, path="/status"):
    """True once `f` serves a version `o` served, with the identical body and ETag."""
    seen = {}

    def check():
        status, h, b = o.get(path)
        if status == 200:
            seen[h["etag"]] = b
        status2, h2, b2 = f.get(path)
        return status2 == 200 and seen.get(h2.get("etag")) == b2
    return check


def test_the_follower_serves_the_origins_body_and_etag(tmp_path, redis_server, nodes):
    o = origin(tmp_path, nodes, redis_server.url)
    f = follower(tmp_path, nodes, redis_server.url)
    until(same_as_origin(o, f), 5, "the follower serves an origin ETag with its body")
    # Queries with limits are answered from the mirrored state, byte for byte.
    until(same_as_origin(o, f, "/status?memory_limit=5&events_limit=10&energy_history_limit=3"),
          5, "the same body for a query with limits")
    until(same_as_origin(o, f, "/status?include_optional=false&stability_history_limit=7"),
          5, "the same body without the optional fields")
    status, h, b = f.get("/vitals")
    assert status == 200 and json.loads(b)["vitals"]["ticks"] >= 1
    h = f.health()
    assert h["status"] == "ok" and h["loop_alive"] is None
    assert h["redis"]["role"] == "follower" and h["redis"]["origin_alive"] is True
    assert h["redis"]["lag_s"] < 1.0
    oh = o.health()
    assert oh["redis"]["connected"] is True and oh["redis"]["last_version_mirrored"] >= 1


@pytest.mark.slow
def test_origin_and_follower_with_two_workers_each(tmp_path, redis_server, nodes):
    o = origin(tmp_path, nodes, redis_server.url, "--workers", "2")
    f = follower(tmp_path, nodes, redis_server.url, "--workers", "2")
    until(same_as_origin(o, f), 10, "the follower's workers serve the origin's ETag and body")
    until(same_as_origin(o, f, "/status?memory_limit=5&events_limit=10"), 10,
          "the same body for a query with limits")
    status, _, body = request(f.port, "/event", {"type": "sound", "intensity": 0.9})
    assert status == 202, body
    until(lambda: b'"sound"' in o.get("/status?events_limit=10")[2], 10,
          "the origin's state holds the event POSTed on a follower worker")
    until(lambda: b'"sound"' in f.get("/status?events_limit=10")[2], 10,
          "the follower's workers serve it")
    # The bridge's state reaches every worker's /health through the shared meta.
    oh = until(lambda: (lambda b: b if b.get("redis", {}).get("last_version_mirrored") else None)(
        o.health()), 10, "the origin's workers report what was mirrored")
    assert oh["redis"]["role"] == "origin" and oh["redis"]["connected"] is True
    fh = until(lambda: (lambda b: b if b.get("redis", {}).get("version") else None)(f.health()),
               10, "the follower's workers report the version followed")
    assert fh["redis"]["role"] == "follower" and fh["redis"]["connected"] is True
    # Redis gone: a follower worker says so, and refuses events it cannot pass on.
    redis_server.stop()
    until(lambda: f.health()["redis"]["connected"] is False, 10,
          "the follower's workers report Redis lost")
    status, h, body = request(f.port, "/event", {"type": "shock"})
    assert status == 503 and h.get("retry-after") and b"unreachable" in body
    assert f.get("/status")[0] == 200  # still serving the last version
    for node in (f, o):
        assert node.stop() == 0, node.log.read_text()[-2000:]


def test_an_event_posted_on_the_follower_reaches_the_origin_then_the_follower(
        tmp_path, redis_server, nodes):
    o = origin(tmp_path, nodes, redis_server.url)
    f = follower(tmp_path, nodes, redis_server.url)
    until(lambda: f.get("/status")[0] == 200, 5, "the follower serves")
    status, _, body = request(f.port, "/event", {"type": "sound", "intensity": 0.9})
    assert status == 202, body
    status, _, body = request(f.port, "/event", {"type": "bogus type!"})
    assert status == 400  # validated on the follower: never reaches Redis
    until(lambda: b'"sound"' in o.get("/status?events_limit=10")[2], 5,
          "the origin's state holds the follower's event")
    until(lambda: b'"sound"' in f.get("/status?events_limit=10")[2], 5,
          "the follower serves the state holding its event")
    assert o.health()["redis"]["events_received"] == 1


def test_a_full_or_unreachable_event_stream_is_a_503(tmp_path, redis_server, nodes):
    f = follower(tmp_path, nodes, redis_server.url, "--redis-events-max", "2",
                 "--redis-prefix", "lonely")  # no origin drains it
    status, _, body = f.get("/health")  # nothing to serve yet, and /health says why
    assert status == 503 and json.loads(body)["status"] == "starting"
    assert json.loads(body)["redis"]["origin_alive"] is False
    for _ in range(2):
        assert request(f.port, "/event", {"type": "shock"})[0] == 202
    status, h, body = request(f.port, "/event", {"type": "shock"})
    assert status == 503 and h.get("retry-after") and b"full" in body
    assert redis_server.client().xlen("lonely:events") == 2
    redis_server.stop()
    status, h, body = request(f.port, "/event", {"type": "shock"})
    assert status == 503 and h.get("retry-after") and b"reached" in body


@pytest.mark.slow
def test_a_follower_workers_full_event_stream_is_a_503_until_it_drains(
        tmp_path, redis_server, nodes):
    f = follower(tmp_path, nodes, redis_server.url, "--workers", "2", "--redis-events-max", "2",
                 "--redis-prefix", "lonely")  # no origin drains it: the test does
    seen = set()

    def both_workers_up():
        h = f.health()
        if h.get("redis", {}).get("connected"):
            seen.add(h["pid"])
        return len(seen) == 2
    until(both_workers_up, 20, "both workers answer and see Redis")
    client = redis_server.client()
    # A burst from many clients at once, spread over both workers: each worker
    # pushes through its own atomic script, so exactly `max` are accepted and
    # every other event is a 503 at once - none accepted here and dropped later.
    posts = 24
    answers = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def client_thread():
        start.wait()
        for _ in range(posts // 8):
            status, h, body = request(f.port, "/event", {"type": "shock"})
            with lock:
                answers.append((status, h.get("retry-after"), body))
    threads = [threading.Thread(target=client_thread) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(answers) == posts, f"{len(answers)} of {posts} requests answered"
    accepted = [a for a in answers if a[0] == 202]
    refused = [a for a in answers if a[0] != 202]
    assert len(accepted) == 2, f"{len(accepted)} accepted of {posts}: {answers}"
    assert all(st == 503 and ra and b"full" in b for st, ra, b in refused), refused
    assert client.xlen("lonely:events") == 2
    drops = {}

    def both_counted():
        h = f.health()
        drops[h["pid"]] = h["events_dropped"]
        return len(drops) == 2
    until(both_counted, 10, "both workers report their refusals")
    assert sum(drops.values()) == len(refused), drops  # each counts its own
    client.delete("lonely:events")  # the origin's drain, by hand
    until(lambda: request(f.port, "/event", {"type": "shock"})[0] == 202, 10,
          "the workers accept events again once the stream drained")
    assert client.xlen("lonely:events") == 1
    assert f.stop() == 0, f.log.read_text()[-2000:]


@pytest.mark.slow
def test_a_follower_workers_get_the_password_from_the_environment_not_argv(
        tmp_path, make_redis_server, nodes):
    secured = make_redis_server(password="s3cret-pw")
    o = origin(tmp_path, nodes, secured.url)
    f = follower(tmp_path, nodes, secured.url, "--workers", "2")
    until(same_as_origin(o, f), 10, "the follower's workers serve the origin")
    children = Path(f"/proc/{f.proc.pid}/task/{f.proc.pid}/children").read_text().split()
    assert len(children) == 2, children
    for pid in children:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes()
        assert b"src.worker" in argv and b"s3cret-pw" not in argv, argv
    status, _, body = request(f.port, "/event", {"type": "sound", "intensity": 0.9})
    assert status == 202, body  # the worker reached the stream with the password
    until(lambda: b'"sound"' in o.get("/status?events_limit=10")[2], 10,
          "the origin's state holds the event")
    for node in (f, o):
        assert node.stop() == 0
        assert "s3cret-pw" not in node.log.read_text()


def _tick_rate(node, seconds):
    t0, k0 = time.monotonic(), int(node.get("/status")[1]["x-life-tick"])
    time.sleep(seconds)  # a measuring window, not a synchronisation
    t1, k1 = time.monotonic(), int(node.get("/status")[1]["x-life-tick"])
    return (k1 - k0) / (t1 - t0)


@pytest.mark.slow
def test_redis_down_for_5_s_and_back(tmp_path, redis_server, nodes):
    o = origin(tmp_path, nodes, redis_server.url)
    f = follower(tmp_path, nodes, redis_server.url)
    until(same_as_origin(o, f), 5, "the follower follows")
    versions, problems, done = [], [], threading.Event()

    def watch():  # every version the follower serves, in order
        while not done.is_set():
            try:
                status, h, _ = f.get("/status")
            except OSError as exc:
                problems.append(repr(exc))
                continue
            if status != 200:
                problems.append(status)
            else:
                versions.append(int(h["x-snapshot-version"]))
            time.sleep(0.01)
    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        before = _tick_rate(o, 1.5)
        redis_server.stop()
        down_at = time.monotonic()
        during = _tick_rate(o, 2.0)
        assert o.get("/status")[0] == 200
        h = until(lambda: (lambda b: b if b["redis"]["connected"] is False else None)(f.health()),
                  5, "the follower reports Redis lost")
        assert h["status"] == "degraded"
        assert o.health()["redis"]["status"] == "disconnected"
        time.sleep(max(0.0, 5.0 - (time.monotonic() - down_at)))  # Redis stays down 5 s
        redis_server.start()
        until(same_as_origin(o, f), 10, "the follower catches up after the restart")
    finally:
        done.set()
        watcher.join()
    assert not problems, problems[:5]
    assert versions == sorted(versions), "a version went backwards on the follower"
    assert during >= 0.6 * before, (before, during)
    assert f.health()["redis"]["reconnects"] >= 1


@pytest.mark.slow
def test_a_frozen_redis_is_a_network_cut_both_nodes_ride_out(tmp_path, redis_server, nodes):
    o = origin(tmp_path, nodes, redis_server.url)
    f = follower(tmp_path, nodes, redis_server.url)
    until(same_as_origin(o, f), 5, "the follower follows")
    before = _tick_rate(o, 1.0)
    redis_server.freeze()  # connections hang instead of failing: only timeouts tell
    try:
        during = _tick_rate(o, 2.0)
        assert f.get("/status")[0] == 200
        until(lambda: f.health()["redis"]["connected"] is False, 8,
              "the follower notices the silence")
        until(lambda: o.health()["redis"]["connected"] is False, 8,
              "the origin notices the silence")
        status, h, _ = request(f.port, "/event", {"type": "shock"})
        assert status == 503 and h.get("retry-after")
    finally:
        redis_server.thaw()
    until(same_as_origin(o, f), 15, "the follower catches up after the cut")
    assert during >= 0.6 * before, (before, during)


def test_a_follower_started_late_loads_the_latest_version(tmp_path, redis_server, nodes):
    # Ticks every 60 s: after the first, no new version comes to rescue a follower that
    # would only wait for the next one.
    o = origin(tmp_path, nodes, redis_server.url, tick="60")
    until(lambda: o.health().get("redis", {}).get("last_version_mirrored", 0) >= 2, 5,
          "the origin mirrored its first versions")
    f = follower(tmp_path, nodes, redis_server.url)
    until(same_as_origin(o, f), 5, "the late follower serves the origin's version")


def test_a_follower_joining_a_short_stream_of_a_busy_origin_rebuilds_every_part(
        tmp_path, redis_server, nodes):
    """Retention 6 (a keyframe every 3 entries), events on, 200 ticks/s: a late follower
    starts from a keyframe and follows by deltas; its answers with every log, at the
    origin's version, are the origin's bytes."""
    o = Node(tmp_path, "busy", "--data-dir", str(tmp_path / "busy"), "--tick-interval", "0.005",
             "--redis", redis_server.url, "--redis-retention", "6", "--redis-max-rate", "1000")
    nodes.append(o)
    until(lambda: o.health().get("redis", {}).get("last_version_mirrored", 0) >= 50, 10,
          "the origin mirrored 50 versions")
    f = follower(tmp_path, nodes, redis_server.url)
    query = ("/status?memory_limit=50&events_limit=50&energy_history_limit=30"
             "&stability_history_limit=30&adaptation_history_limit=10")
    until(same_as_origin(o, f), 10, "the late follower serves the origin's version")
    until(same_as_origin(o, f, query), 10, "every log, as the origin serves it")
    h = f.health()["redis"]
    assert h["keyframes_loaded"] == 1 and h["gaps"] == 0 and h["bad_entries"] == 0, h
    assert h["versions_served"] >= 2, h  # the keyframe, then versions by their deltas
    oh = o.health()["redis"]
    assert oh["keyframes"] >= oh["versions_mirrored"] // 3 - 2, oh


def _start_error(tmp_path, *args):
    out = subprocess.run([sys.executable, "-c", MAIN, "--port", str(free_port()), *args],
                         cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr, out.stderr
    return out.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("flag", ["--redis", "--follow"])
def test_bad_urls_and_wrong_passwords_are_clear_start_up_errors(tmp_path, make_redis_server,
                                                                flag):
    data = ["--data-dir", str(tmp_path / "data")] if flag == "--redis" else []
    line = _start_error(tmp_path, *data, flag, "http://127.0.0.1:1/")
    assert "not a Redis URL" in line, line
    line = _start_error(tmp_path, *data, flag, f"redis://127.0.0.1:{free_port()}/0")
    assert "cannot reach Redis" in line, line
    secured = make_redis_server(password="s3cret-pw")
    wrong = secured.url.replace("s3cret-pw", "not-the-pw")
    out_line = _start_error(tmp_path, *data, flag, wrong)
    assert "credentials" in out_line and "not-the-pw" not in out_line, out_line
    assert "***" in out_line, out_line
    line = _start_error(tmp_path, *data, flag, secured.url, "--redis-prefix", "bad prefix")
    assert "--redis-prefix" in line, line


def test_a_password_in_the_url_works_and_is_never_logged(tmp_path, make_redis_server, nodes):
    secured = make_redis_server(password="s3cret-pw")
    o = origin(tmp_path, nodes, secured.url)
    f = follower(tmp_path, nodes, secured.url)
    until(same_as_origin(o, f), 5, "origin and follower work through a password")
    assert "***" in f.health()["redis"]["url"]
    for node in (o, f):
        assert node.stop() == 0
        assert "s3cret-pw" not in node.log.read_text()
    assert not secured.client().exists("life:origin")  # a clean stop frees the prefix


@pytest.mark.slow
def test_retention_is_bounded_over_a_long_run(tmp_path, redis_server, nodes):
    o = origin(tmp_path, nodes, redis_server.url, "--redis-retention", "50",
               "--redis-max-rate", "10000", tick="0.001")
    client = redis_server.client()
    lengths, seen = [], []

    def enough():
        seen[:] = [o.health()]
        lengths.append(client.xlen("life:versions"))
        return seen[0].get("redis", {}).get("versions_mirrored", 0) >= 1000
    try:
        until(enough, 60, "1000 versions mirrored")
    except BaseException:
        print("last /health:", seen, "stream lengths:", lengths[-5:])  # shown on failure
        raise
    lengths.append(client.xlen("life:versions"))
    # MAXLEN ~ trims whole stream nodes (100 entries each by default): about 50, never 1000.
    assert max(lengths) <= 50 + 100, max(lengths)
    assert sorted(k.decode() for k in client.keys("*")) == ["life:origin", "life:versions"]
    assert client.info("memory")["used_memory"] < 64 * 2**20


def test_a_steady_stream_of_versions_carries_the_heartbeat_twice_a_second_not_per_write(
        tmp_path, redis_server, nodes):
    o = origin(tmp_path, nodes, redis_server.url, "--redis-max-rate", "10000", tick="0.001")
    client = redis_server.client()
    until(lambda: o.health()["redis"]["versions_mirrored"] >= 600, 60, "600 versions mirrored")
    stats = client.info("commandstats")
    xadds, sets = stats["cmdstat_xadd"]["calls"], stats.get("cmdstat_set", {}).get("calls", 0)
    print(f"XADD {xadds}, SET {sets}")  # what it saw, on failure
    # One SET per HEARTBEAT (0.5 s) at most, plus the start: far fewer than the writes.
    assert xadds >= 600 and 1 <= sets <= xadds // 20, (xadds, sets)
    assert client.get("life:origin") is not None and client.pttl("life:origin") > 0


# ---- in-process pieces (no redis-server needed) ----

def _entry(run="run1"):
    from src.bridge.codec import encode_entry
    from src.runtime.loop import run_loop
    from src.state.self_state import SelfState
    from src.state.snapshot_manager import StateSnapshotManager
    state, manager = SelfState(memory_cap=7), StateSnapshotManager()
    run_loop(state, tick_interval=0.0, max_ticks=120, snapshot_manager=manager)
    snapshot = manager.get_snapshot()
    return snapshot, encode_entry(snapshot, run, b"{}", state.caps)


def _versions(steps, *, memory_cap=7, seed=0):
    """(state caps, every published snapshot) of a live loop with events, `steps` times a few ticks."""
    from src.environment.generator import EventGenerator
    from src.runtime.loop import run_loop
    from src.state.self_state import SelfState
    from src.state.snapshot_manager import StateSnapshotManager
    state, manager = SelfState(memory_cap=memory_cap), StateSnapshotManager()
    snapshots = []
    for i in range(steps):  # decay every 10 ticks, prune every 50, adaptation every 100
        run_loop(state, tick_interval=0.0, max_ticks=1 + i % 3, snapshot_manager=manager,
                 generator=EventGenerator(seed=seed + i, rate=0.67))
        snapshots.append(manager.get_snapshot())
    return state.caps, snapshots


def _same_state(frozen, snapshot):
    from src.state.status import STATUS_LIMIT_KEYS
    limits = {k: 1000 for k in STATUS_LIMIT_KEYS}
    assert frozen.to_dict() == snapshot.to_dict()
    assert frozen.vitals_version == snapshot.state.vitals_version
    from src.state.status import status_view
    assert status_view(frozen, True, limits) == snapshot.status_dict(True, limits)


def _entries(encoder, snapshot, run="run1"):
    """The entries the publisher writes for `snapshot`: its own, then a keyframe when due."""
    fields = encoder.encode(snapshot, run, b"{}")
    return [fields] + ([encoder.keyframe(run, b"{}")] if encoder.keyframe_due else [])


def _feed(replica, fields):
    """What the follower does with an entry: skipped unless newer, else applied."""
    from src.bridge.codec import decode_header
    header = decode_header(fields)
    at = replica.at
    if at is not None and at.run == header.run and header.version <= at.version:
        return "skipped"
    return replica.advance(header, fields)


@pytest.mark.parametrize("memory_cap", [7, 200])
def test_a_replica_follows_every_version_by_its_deltas_exactly(memory_cap):
    from src.bridge.codec import EntryEncoder, Replica, decode_header
    caps, snapshots = _versions(160, memory_cap=memory_cap)
    encoder = EntryEncoder(caps, keyframe_every=8)
    replica, late = Replica(), Replica()
    kinds = collections.Counter()
    for i, snapshot in enumerate(snapshots):
        own, *keyframe = _entries(encoder, snapshot)
        assert (b"state" in own) == (i == 0) and (b"delta" in own) == (i > 0)
        kinds.update(["delta" if i else "first"] + ["keyframe"] * len(keyframe))
        header = decode_header(own)
        assert header == (snapshot.version, "run1", snapshot.published_at, snapshot.tick)
        _same_state(_feed(replica, own), snapshot)
        for fields in keyframe:  # the same version again: a follower in the chain skips it
            assert decode_header(fields) == header and len(fields[b"state"]) > len(own[b"delta"])
            assert _feed(replica, fields) == "skipped"
        if i >= 50:  # a follower joining at entry 50: nothing until a keyframe, then exact
            for fields in (own, *keyframe):
                frozen = _feed(late, fields)
                if frozen is None:
                    assert late.at is None and b"state" not in fields
                elif frozen != "skipped":
                    _same_state(frozen, snapshot)
    assert late.at == replica.at and replica.keyframes == 1 and late.keyframes == 1
    assert kinds == {"first": 1, "delta": 159, "keyframe": 19}, kinds


def test_a_lost_entry_is_a_gap_until_the_next_keyframe():
    from src.bridge.codec import EntryEncoder, Replica
    caps, snapshots = _versions(30)
    encoder = EntryEncoder(caps, keyframe_every=8)
    replica = Replica()
    served = []
    for i, snapshot in enumerate(snapshots):
        for fields in _entries(encoder, snapshot):
            if i == 3:
                continue  # lost on the way
            frozen = _feed(replica, fields)
            if frozen not in (None, "skipped"):
                _same_state(frozen, snapshot)
                served.append(i)
    # 0-2 applied; 4-7 are deltas from a lost base; after the delta of 8 comes a keyframe
    # of 8: from it on every version again
    assert served == [0, 1, 2] + list(range(8, 30)), served
    assert replica.keyframes == 2


def test_a_restarted_chain_begins_with_a_keyframe_and_a_new_run_is_loaded_not_applied():
    from src.bridge.codec import EntryEncoder, Replica, decode_header
    caps, snapshots = _versions(12)
    encoder = EntryEncoder(caps)
    replica = Replica()
    for snapshot in snapshots[:5]:
        fields = encoder.encode(snapshot, "run1", b"{}")
        replica.advance(decode_header(fields), fields)
    assert not encoder.keyframe_due
    encoder.restart()  # a failed write
    fields = encoder.encode(snapshots[5], "run1", b"{}")
    assert b"state" in fields and b"base" not in fields
    with pytest.raises(RuntimeError):
        EntryEncoder(caps).keyframe("run1", b"{}")  # no chain yet
    _same_state(replica.advance(decode_header(fields), fields), snapshots[5])
    # Another origin run's delta never applies to this one's state.
    other = EntryEncoder(caps)
    other.encode(snapshots[5], "run2", b"{}")
    fields = other.encode(snapshots[6], "run2", b"{}")
    assert b"state" not in fields
    assert replica.advance(decode_header(fields), fields) is None


def test_a_decay_goes_as_the_memory_logs_new_weights_not_as_the_whole_log():
    from src.bridge.codec import FORMAT, REWEIGHTED_FORMAT, EntryEncoder, Replica
    caps, snapshots = _versions(160, memory_cap=50)
    encoder = EntryEncoder(caps, keyframe_every=10**6)
    replica = Replica()
    formats = collections.Counter()
    for snapshot in snapshots:
        fields = encoder.encode(snapshot, "run1", b"{}")
        _same_state(_feed(replica, fields), snapshot)
        if b"delta" not in fields:
            continue
        delta = json.loads(fields[b"delta"])
        reweighted = delta.get("reweighted_memory")
        formats[delta["format"]] += 1
        assert (delta["format"] == REWEIGHTED_FORMAT) == (reweighted is not None)
        if reweighted is not None:  # the weights of the entries kept, the new ones whole
            skip, weights = reweighted
            assert len(weights) + len(delta["state"].get("memory", [])) == len(snapshot.state.memory)
            assert ("memory" in delta["state"]) == ("memory" in delta["appended"])
    print(formats)
    # A decay every 10 ticks, 1-3 ticks a version: about one version in five.
    assert formats[REWEIGHTED_FORMAT] >= 20 and formats[FORMAT] >= 100, formats


@pytest.mark.parametrize("damage", ["truncated", "bad value", "not a log", "bad appended",
                                    "bad weights", "format 3"])
def test_a_corrupted_delta_is_refused_and_the_replica_waits_for_a_keyframe(damage):
    from src.bridge.codec import EntryEncoder, Replica, decode_header
    caps, snapshots = _versions(6)
    encoder = EntryEncoder(caps)
    replica = Replica()
    fields = encoder.encode(snapshots[0], "run1", b"{}")
    replica.advance(decode_header(fields), fields)
    fields = dict(encoder.encode(snapshots[1], "run1", b"{}"))
    delta = json.loads(fields[b"delta"])
    if damage == "truncated":
        fields[b"delta"] = fields[b"delta"][:-9]
    else:
        if damage == "bad value":
            delta["state"]["energy"] = "x"
        elif damage == "not a log":
            delta["appended"] = ["energy"]
        elif damage == "bad weights":
            delta["format"], delta["reweighted_memory"] = 2, [0, [-1.0]]
        elif damage == "format 3":
            delta["format"] = 3
        else:
            delta["appended"] = "memory"
        fields[b"delta"] = json.dumps(delta).encode()
    with pytest.raises(ValueError):
        replica.advance(decode_header(fields), fields)
    assert replica.at is None  # emptied: the next delta is a gap, a keyframe starts it again
    fields = encoder.encode(snapshots[2], "run1", b"{}")
    assert replica.advance(decode_header(fields), fields) is None
    encoder.restart()
    fields = encoder.encode(snapshots[3], "run1", b"{}")
    _same_state(replica.advance(decode_header(fields), fields), snapshots[3])


def test_a_mirrored_snapshot_carries_the_origins_numbers_and_body():
    from src.bridge.codec import decode_frozen, decode_header, encode_entry
    from src.bridge.mirror import MirroredSnapshot
    caps, snapshots = _versions(5)
    fields = encode_entry(snapshots[-1], "run1", b'{"x": 1}', caps)
    header = decode_header(fields)
    mirror = MirroredSnapshot(header, decode_frozen(header, fields[b"state"]), fields[b"body"])
    assert (mirror.version, mirror.tick, mirror.published_at, mirror.origin,
            mirror.plain_status_body) == (snapshots[-1].version, snapshots[-1].tick,
                                          snapshots[-1].published_at, "run1", b'{"x": 1}')
    _same_state(mirror.state, snapshots[-1])
    with pytest.raises(ValueError, match="malformed state in version entry"):
        decode_frozen(header, fields[b"state"][:-9])


def test_versions_only_move_forward_within_a_run_and_to_a_later_run():
    from src.bridge.codec import Header
    from src.bridge.follower import _newer
    served = Header(10, "a", 100.0, 9)
    assert _newer(Header(11, "a", 100.1, 10), served)
    assert not _newer(Header(10, "a", 100.0, 9), served)
    assert not _newer(Header(9, "a", 99.0, 8), served)
    assert _newer(Header(1, "b", 200.0, 0), served)      # a restarted origin
    assert not _newer(Header(50, "b", 50.0, 49), served)  # an older run's leftovers


def test_a_follower_process_finds_its_event_stream_in_the_environment():
    from src.bridge.connection import BridgeError
    from src.bridge.events import sink_from_env
    assert sink_from_env({}) is None  # an origin's worker: the channel to the loop instead
    env = {"LIFE_REDIS_EVENTS_URL": "redis://:pw@127.0.0.1:1/0", "LIFE_REDIS_PREFIX": "blue",
           "LIFE_REDIS_EVENTS_MAX": "7"}
    sink = sink_from_env(env)  # nothing is sent yet: Redis being down is a 503 per event
    try:
        assert sink.maxsize == 7 and sink._keys.events == "blue:events"
    finally:
        sink.close()
    with pytest.raises(BridgeError, match=r"LIFE_REDIS_EVENTS_MAX.*'0'"):
        sink_from_env({**env, "LIFE_REDIS_EVENTS_MAX": "0"})
    with pytest.raises(BridgeError, match=r"LIFE_REDIS_PREFIX.*'no spaces'"):
        sink_from_env({**env, "LIFE_REDIS_PREFIX": "no spaces"})
    with pytest.raises(BridgeError, match="not a Redis URL") as err:
        sink_from_env({**env, "LIFE_REDIS_EVENTS_URL": "http://:pw@h/"})
    assert "pw@" not in str(err.value)


def test_a_worker_given_a_bad_event_stream_says_so_and_exits_2(tmp_path):
    import os
    env = dict(os.environ, LIFE_REDIS_EVENTS_URL="redis://127.0.0.1:1/0",
               LIFE_REDIS_EVENTS_MAX="lots")
    worker = MAIN.replace("src.main_server_api", "src.worker")  # `src` after the installed packages
    out = subprocess.run([sys.executable, "-c", worker, "--name", "life-nothing-here",
                          "--port", str(free_port())], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr and "LIFE_REDIS_EVENTS_MAX" in out.stderr, out.stderr
    assert "'lots'" in out.stderr, out.stderr


def test_a_follower_process_without_its_event_stream_says_what_to_set():
    from types import SimpleNamespace
    from src.api.errors import BadRequest
    from src.api.shared_api import SharedLifeApi
    from src.environment.event import Event
    meta = SimpleNamespace(bridge_role=2, bridge_connected=1, queue_capacity=0, queue_depth=0)
    reader = SimpleNamespace(state=lambda: meta)
    api = SharedLifeApi(reader, None, role="asgi")  # an ASGI worker started without the env
    with pytest.raises(BadRequest) as err:
        api.enqueue(Event(type="sound"))
    assert err.value.status == 503 and "LIFE_REDIS_EVENTS_URL" in str(err.value)
    meta.bridge_connected = 0
    with pytest.raises(BadRequest, match="unreachable"):
        api.enqueue(Event(type="sound"))


def test_passwords_are_masked():
    from src.bridge.connection import mask_url
    assert mask_url("redis://:pw@127.0.0.1:6379/0") == "redis://:***@127.0.0.1:6379/0"
    assert mask_url("redis://user:pw@h/1") == "redis://user:***@h/1"
    assert mask_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_keyframes_reuse_unchanged_parts_and_stay_exact():
    from src.api.errors import json_bytes
    from src.bridge.codec import EntryEncoder, decode_snapshot
    from src.environment.generator import EventGenerator
    from src.runtime.loop import run_loop
    from src.state.self_state import SelfState
    from src.state.snapshot_manager import StateSnapshotManager
    state, manager = SelfState(), StateSnapshotManager()
    encoder = EntryEncoder(state.caps, keyframe_every=1)  # a keyframe after every delta
    limits = {"memory_limit": 50, "events_limit": 50, "adaptation_history_limit": 50,
              "energy_history_limit": 5}
    for i in range(40):  # adaptation every 100 ticks, events most ticks
        run_loop(state, tick_interval=0.0, max_ticks=9, snapshot_manager=manager,
                 generator=EventGenerator(seed=i, rate=0.67))
        snapshot = manager.get_snapshot()
        fields = encoder.encode(snapshot, "run", b"{}")
        if i:
            assert encoder.keyframe_due
            fields = encoder.keyframe("run", b"{}")
        assert json.loads(fields[b"state"])["state"] == json.loads(json_bytes(snapshot.to_dict()))
        mirror, _ = decode_snapshot(fields)
        assert mirror.status_dict(True, limits) == snapshot.status_dict(True, limits)
