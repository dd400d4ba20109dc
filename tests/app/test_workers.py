"""``python -m src.main_server_api --workers 2``: worker processes serving one port from shared memory.

Each test runs the real command in a subprocess (loopback only) and polls on a
condition with a bounded deadline; nothing sleeps as synchronisation.
"""

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAIN = (f"import sys; sys.path.append({str(ROOT)!r}); "
        "from src.main_server_api import main; sys.exit(main())")
pytestmark = pytest.mark.slow


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(port, method, path, body=None, headers=None, timeout=5):
    """One request on a new connection: (status, headers, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def poll(condition, seconds=20.0, what="condition"):
    deadline = time.monotonic() + seconds
    last = None
    while time.monotonic() < deadline:
        try:
            last = condition()
            if last:
                return last
        except OSError as exc:
            last = exc
        time.sleep(0.02)
    raise AssertionError(f"{what} did not hold within {seconds} s (last: {last!r})")


def worker_pids(port, want, tries=200):
    pids = set()
    for _ in range(tries):
        st, _, b = request(port, "GET", "/health")
        pids.add(json.loads(b)["pid"])
        if len(pids) >= want:
            break
    return pids


class Instance:
    def __init__(self, tmp_path, *extra, workers=2, name=None, env=None):
        tmp_path.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.data = tmp_path / "data"
        self.name = name or f"life-test-{os.getpid()}-{self.port}"
        self.shm_before = set(os.listdir("/dev/shm"))
        self.proc = subprocess.Popen(
            [sys.executable, "-c", MAIN, "--workers", str(workers), "--port", str(self.port),
             "--data-dir", str(self.data), "--tick-interval", "0.02", "--no-generator",
             "--shm-name", self.name, *extra],
            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        try:
            poll(lambda: self.proc.poll() is None
                 and request(self.port, "GET", "/health")[0] in (200, 401),
                 what="the workers answering /health")
        except AssertionError:
            self.close()
            raise

    def close(self):
        """Stop it as an operator would (its workers and segments go with it)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stderr.close()
        assert self.segments() == [], "segments left behind"

    def segments(self):
        return sorted(f for f in os.listdir("/dev/shm") if f.startswith(self.name))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        return rc, self.proc.stderr.read()


@pytest.fixture
def life(tmp_path):
    inst = Instance(tmp_path)
    yield inst
    inst.close()


def test_distinct_pids_one_etag_per_version_and_304_from_either(life):
    pids = worker_pids(life.port, 2)
    assert len(pids) == 2 and life.proc.pid not in pids
    seen = {}
    for _ in range(60):
        st, h, b = request(life.port, "GET", "/status")
        assert st == 200 and h["content-type"] == "application/json"
        version = h["x-snapshot-version"]
        assert h["etag"].endswith(f'-{version}"')
        seen.setdefault(version, set()).add((h["etag"], b))
    assert all(len(v) == 1 for v in seen.values()), "two bodies or ETags for one version"
    etag = request(life.port, "GET", "/status")[1]["etag"]
    # Freeze nothing: a 304 needs the same version; retry over new connections.
    codes = set()
    for _ in range(200):
        st, h, _ = request(life.port, "GET", "/status", headers={"If-None-Match": h["etag"]})
        codes.add(st)
        if 304 in codes:
            break
    assert 304 in codes
    assert etag.startswith('"')


def test_every_endpoint_and_error_case(life):
    p = life.port
    st, h, b = request(p, "GET", "/vitals")
    assert st == 200 and set(json.loads(b)) == {"version", "vitals", "active"}
    st, h, b = request(p, "GET", "/health")
    doc = json.loads(b)
    assert st == 200 and doc["status"] == "ok" and doc["workers"] == 2 and doc["loop_alive"]
    st, h, b = request(p, "GET", "/status?memory_limit=2&events_limit=3")
    assert st == 200 and "memory" in json.loads(b)
    st, h, b = request(p, "GET", "/status?include_optional=false")
    assert st == 200 and "life_id" not in json.loads(b)
    for path, code in (("/status?memory_limit=x", 400), ("/status?bogus=1", 400),
                       ("/vitals?x=1", 400), ("/health?x=1", 400), ("/nope", 404)):
        st, h, b = request(p, "GET", path)
        assert st == code and "error" in json.loads(b), (path, st, b)
    assert request(p, "POST", "/status", b"{}", {"Content-Type": "application/json"})[0] == 405
    assert request(p, "GET", "/event")[0] == 405
    assert request(p, "POST", "/event", b"{}", {"Content-Type": "text/plain"})[0] == 415
    assert request(p, "POST", "/event", b"x" * 20000,
                   {"Content-Type": "application/json"})[0] == 413
    assert request(p, "POST", "/event", b"{", {"Content-Type": "application/json"})[0] == 400
    deep = b"[" * 100 + b"]" * 100
    assert request(p, "POST", "/event", deep, {"Content-Type": "application/json"})[0] == 400
    assert request(p, "POST", "/event", b'{"type": "shock", "intensity": "x"}',
                   {"Content-Type": "application/json"})[0] == 400
    assert request(p, "GET", "/status", headers={"Host": "evil.example"})[0] == 400
    st, h, b = request(p, "HEAD", "/status")
    assert st == 200 and b == b""


def test_a_post_to_one_worker_is_seen_by_every_worker(life):
    st, h, b = request(life.port, "POST", "/event",
                       json.dumps({"type": "shock", "intensity": 0.6}).encode(),
                       {"Content-Type": "application/json"})
    assert st == 202, b

    def seen_by_both():
        pids = set()
        for _ in range(40):
            st, h, b = request(life.port, "GET", "/status?events_limit=10")
            if "shock" not in json.loads(b).get("recent_events", []):
                return False
            st, h, b = request(life.port, "GET", "/health")
            pids.add(json.loads(b)["pid"])
        return len(pids) >= 2
    poll(seen_by_both, what="the event in every worker's /status")


def test_a_killed_worker_is_replaced_and_the_others_keep_answering(life):
    pids = worker_pids(life.port, 2)
    victim = min(pids)
    os.kill(victim, signal.SIGKILL)
    failures = 0
    new = set()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            st, h, b = request(life.port, "GET", "/health")
            new.add(json.loads(b)["pid"])
        except OSError:  # only a connection the kernel had queued on the dead socket
            failures += 1
        if len(new - {victim}) >= 2:
            break
    assert len(new - {victim}) >= 2, new
    assert failures <= 2


def test_sigterm_exits_0_with_a_final_snapshot_and_no_segment_left(life):
    assert life.segments()
    rc, err = life.stop()
    assert rc == 0, err
    assert "Traceback" not in err, err
    assert sorted((life.data / "snapshots").glob("snapshot_*.json"))
    assert life.segments() == []


def test_a_killed_loop_leaves_workers_serving_a_stale_snapshot(life):
    pids = worker_pids(life.port, 2)
    life.proc.kill()
    life.proc.wait()
    try:
        def stalled():
            st, h, b = request(life.port, "GET", "/health")
            return st == 503 and json.loads(b)["status"] == "stalled"
        poll(stalled, seconds=10, what="/health saying stalled")
        st, h, b = request(life.port, "GET", "/status")
        assert st == 200 and h.get("x-life-stale") == "true" and json.loads(b)["ticks"] >= 0
        st, h, b = request(life.port, "POST", "/event", b'{"type": "shock"}',
                           {"Content-Type": "application/json"})
        assert st == 503 and h.get("retry-after")
    finally:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for seg in life.segments():  # the loop was killed: nobody removed them
            os.unlink(os.path.join("/dev/shm", seg))


def test_a_stale_segment_is_replaced_but_a_live_one_is_not(tmp_path):
    first = Instance(tmp_path / "a")
    try:
        out = subprocess.run([sys.executable, "-c", MAIN, "--workers", "1", "--port",
                              str(free_port()), "--data-dir", str(tmp_path / "b"),
                              "--shm-name", first.name], cwd=tmp_path, capture_output=True,
                             text=True, timeout=30)
        assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
        assert "owned by a running process" in out.stderr or "another instance" in out.stderr
    finally:
        first.proc.kill()
        first.proc.wait()
        first.proc.stderr.close()
    for pid in worker_pids(first.port, 2):
        os.kill(pid, signal.SIGKILL)
    assert first.segments()  # left behind by the killed run
    second = Instance(tmp_path / "a", name=first.name)
    st, h, b = request(second.port, "GET", "/health")
    assert st == 200 and json.loads(b)["loop_alive"]
    rc, err = second.stop()
    second.close()
    assert rc == 0, err
    assert "replacing the stale shared-memory segment" in err
    assert second.segments() == []


def test_the_token_and_protect_get_hold_in_every_worker(tmp_path):
    inst = Instance(tmp_path, "--protect-get", env=dict(os.environ, LIFE_API_TOKEN="s3cret"))
    try:
        for _ in range(10):  # over new connections: both workers
            assert request(inst.port, "GET", "/status")[0] == 401
            assert request(inst.port, "GET", "/status",
                           headers={"Authorization": "Bearer s3cret"})[0] == 200
        st, h, b = request(inst.port, "POST", "/event", b'{"type": "idle"}',
                           {"Content-Type": "application/json", "X-API-Key": "s3cret"})
        assert st == 202, b
    finally:
        inst.close()


def test_a_port_already_served_is_refused(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        out = subprocess.run([sys.executable, "-c", MAIN, "--workers", "2", "--port",
                              str(busy.getsockname()[1]), "--data-dir", str(tmp_path / "d")],
                             cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert "already listens" in out.stderr or "in use" in out.stderr
