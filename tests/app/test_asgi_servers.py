"""``src.asgi:app`` under real uvicorn and real granian (2 workers each), fed by ``--workers 0``.

Skipped, with the reason, where the server package cannot be imported (the
``serve`` extra did not install on that interpreter).
"""

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.app.test_workers import MAIN, free_port, poll
from tests.app.test_workers import request as http

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

SERVERS = {
    "uvicorn": lambda port: [sys.executable, "-m", "uvicorn", "--workers", "2", "--port",
                             str(port), "--log-level", "warning", "src.asgi:app"],
    "granian": lambda port: [sys.executable, "-m", "granian", "--interface", "asgi",
                             "--workers", "2", "--port", str(port), "--log-level", "warning",
                             "--respawn-failed-workers", "src.asgi:app"],
}


@pytest.fixture
def loop(tmp_path):
    name = f"life-asgi-{os.getpid()}-{free_port()}"
    proc = subprocess.Popen([sys.executable, "-c", MAIN, "--workers", "0", "--data-dir",
                             str(tmp_path / "data"), "--tick-interval", "0.02",
                             "--no-generator", "--shm-name", name],
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    poll(lambda: os.path.exists(f"/dev/shm/{name}-vitals") or proc.poll() is not None,
         what="the loop's segments")
    assert proc.poll() is None, proc.stderr.read()
    yield name, proc
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    proc.stderr.close()
    assert not [f for f in os.listdir("/dev/shm") if f.startswith(name)]


def _start_server(server, tmp_path, **env_vars):
    """`server` on a free port serving ``src.asgi:app`` with `env_vars`: ``(port, proc)``."""
    if importlib.util.find_spec(server) is None:
        pytest.skip(f"{server} is not installed for this interpreter (the `serve` extra "
                    "could not install here)")
    port = free_port()
    env = dict(os.environ, **env_vars,
               PYTHONPATH=os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH")])))
    # The server imports `src.asgi` from its cwd; run it from a folder holding only `src`.
    app_dir = tmp_path / f"app-{port}"
    app_dir.mkdir()
    (app_dir / "src").symlink_to(ROOT / "src")
    # Its own process group, so `_stop_server` can leave none of its workers behind.
    proc = subprocess.Popen(SERVERS[server](port), cwd=app_dir, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        poll(lambda: proc.poll() is None and http(port, "GET", "/health")[0] == 200,
             seconds=30, what=f"{server} answering /health")
    except AssertionError:
        _kill_group(proc)
        raise AssertionError(proc.communicate()[1][-2000:]) from None
    return port, proc


def _kill_group(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _stop_server(proc):
    """SIGTERM, up to 15 s for a clean exit, then nothing of its group left running."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            pass
    _kill_group(proc)  # a worker outliving a killed or hurried main
    proc.stderr.close()


@pytest.fixture(params=sorted(SERVERS))
def served(request, tmp_path):
    server = request.param
    if importlib.util.find_spec(server) is None:  # before the loop starts
        pytest.skip(f"{server} is not installed for this interpreter (the `serve` extra "
                    "could not install here)")
    name, _ = request.getfixturevalue("loop")
    port, proc = _start_server(server, tmp_path, LIFE_SHM_NAME=name)
    yield server, port, proc
    _stop_server(proc)


def _pids(port, want):
    """The worker pids seen answering, until `want` of them (at most 3,000 requests / 30 s).

    The server is ready once one worker answers; under load (CI runs suites side by
    side) the second may still be importing the app for a second or two.
    """
    pids, deadline = set(), time.monotonic() + 30
    for _ in range(3000):
        pids.add(json.loads(http(port, "GET", "/health")[2])["pid"])
        if len(pids) >= want or time.monotonic() > deadline:
            break
    return pids


def test_same_api_from_both_workers(served):
    server, port, proc = served
    assert len(_pids(port, 2)) >= 2
    seen = {}
    for _ in range(40):
        st, h, b = http(port, "GET", "/status")
        assert st == 200 and h["content-type"] == "application/json"
        seen.setdefault(h["x-snapshot-version"], set()).add((h["etag"], b))
    assert all(len(v) == 1 for v in seen.values())
    etag = h["etag"]
    codes = {http(port, "GET", "/status", headers={"If-None-Match": etag})[0]
             for _ in range(1)}
    assert codes <= {200, 304}
    st, h, b = http(port, "GET", "/status", headers={"If-None-Match": "*"})
    assert st == 304 and b == b""
    for path, code in (("/status?memory_limit=x", 400), ("/nope", 404),
                       ("/vitals?x=1", 400)):
        st, h, b = http(port, "GET", path)
        assert st == code and "error" in json.loads(b)
    assert http(port, "GET", "/status?memory_limit=3")[0] == 200
    assert http(port, "POST", "/status", b"{}", {"Content-Type": "application/json"})[0] == 405
    assert http(port, "POST", "/event", b"{}", {"Content-Type": "text/plain"})[0] == 415
    assert http(port, "POST", "/event", b"x" * 20000,
                   {"Content-Type": "application/json"})[0] == 413
    deep = b"[" * 100 + b"]" * 100
    assert http(port, "POST", "/event", deep, {"Content-Type": "application/json"})[0] == 400
    assert http(port, "GET", "/status", headers={"Host": "evil.example"})[0] == 400
    st, h, b = http(port, "POST", "/event", b'{"type": "shock", "intensity": 0.5}',
                       {"Content-Type": "application/json"})
    assert st == 202, b
    poll(lambda: "shock" in json.loads(http(port, "GET", "/status?events_limit=5")[2])
         .get("recent_events", []), what="the event in /status")


def test_a_killed_worker_is_replaced(served):
    server, port, proc = served
    pids = _pids(port, 2)
    victim = min(pids)
    os.kill(victim, signal.SIGKILL)

    def replaced():
        now = _pids(port, 2)
        return len(now - {victim}) >= 2
    poll(replaced, seconds=30, what=f"{server} replacing a killed worker")


def test_a_killed_loop_is_reported_stalled(served, loop):
    server, port, proc = served
    name, loop_proc = loop
    loop_proc.kill()
    loop_proc.wait()
    try:
        poll(lambda: http(port, "GET", "/health")[0] == 503, seconds=10,
             what="/health 503 stalled")
        st, h, b = http(port, "GET", "/status")
        assert st == 200 and h.get("x-life-stale") == "true"
    finally:
        for seg in [f for f in os.listdir("/dev/shm") if f.startswith(name)]:
            os.unlink(os.path.join("/dev/shm", seg))


@pytest.mark.parametrize("server", sorted(SERVERS))
def test_a_follower_served_by_an_asgi_server(server, tmp_path, redis_server):
    """``--follow URL --workers 0`` under a real ASGI server: the origin's ETag and body,
    and each server process pushes POSTed events to the origin's Redis stream itself."""
    from tests.app.test_redis_bridge import origin, request, same_as_origin
    if importlib.util.find_spec(server) is None:
        pytest.skip(f"{server} is not installed for this interpreter")
    nodes = []
    name = f"life-asgi-follow-{os.getpid()}-{free_port()}"
    follower = subprocess.Popen([sys.executable, "-c", MAIN, "--follow", redis_server.url,
                                 "--workers", "0", "--shm-name", name,
                                 "--redis-events-max", "5"],
                                cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True)
    proc = None
    try:
        o = origin(tmp_path, nodes, redis_server.url)
        poll(lambda: os.path.exists(f"/dev/shm/{name}-vitals") or follower.poll() is not None,
             what="the follower's segments")
        assert follower.poll() is None, follower.stderr.read()
        port, proc = _start_server(server, tmp_path, LIFE_SHM_NAME=name,
                                   LIFE_REDIS_EVENTS_URL=redis_server.url,
                                   LIFE_REDIS_EVENTS_MAX="5")
        served = type("Served", (), {"get": lambda self, path: request(port, path)})()
        poll(same_as_origin(o, served), seconds=15, what=f"{server} serving the origin's ETag")
        st, _, body = request(port, "/event", {"type": "sound", "intensity": 0.9})
        assert st == 202, body
        poll(lambda: b'"sound"' in o.get("/status?events_limit=10")[2], seconds=10,
             what="the origin's state holds the event POSTed on the ASGI follower")
        poll(lambda: b'"sound"' in served.get("/status?events_limit=10")[2], seconds=10,
             what=f"{server} serving the state holding it")
    finally:
        if proc is not None:
            _stop_server(proc)
        for node in reversed(nodes):
            node.stop()
        follower.send_signal(signal.SIGTERM)
        assert follower.wait(15) == 0
        log = follower.stderr.read()
        follower.stderr.close()
    assert "LIFE_REDIS_EVENTS_URL" in log, log[-2000:]  # it said what the servers need
