"""Hostile and malformed requests: every answer is an HTTP/1.1 status line and a JSON error.

Raw sockets, so the bytes sent are exactly the bytes under test (http.client
would fix up a malformed request before sending it).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from src.environment.event_queue import EventQueue
from src.main_server_api import start_api_server
from src.state.self_state import SelfState
from src.state.snapshot_manager import StateSnapshotManager


ROOT = Path(__file__).resolve().parents[2]
MAIN = (f"import sys; sys.path.append({str(ROOT)!r}); "
        "from src.main_server_api import main; sys.exit(main())")


class WorkerProcesses:
    """`python -m src.main_server_api --workers 2`: the same attacks, against worker processes."""

    def __init__(self, folder: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.server_address = ("127.0.0.1", port)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", MAIN, "--workers", "2", "--port", str(port), "--data-dir",
             str(folder / "data"), "--tick-interval", "0.02", "--no-generator", "--queue-size",
             "8", "--shm-name", f"life-hostile-{os.getpid()}-{port}",
             "--allowed-hosts", "x,127.0.0.1"],  # the attacks say "Host: x"
            cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while True:  # bounded poll: the workers give no other sign of being ready
            assert self.proc.poll() is None, self.proc.stderr.read()
            try:
                if parse(exchange(self, b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                        b"Connection: close\r\n\r\n"))[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the workers did not answer /health in 30 s"
            time.sleep(0.05)

    def close(self) -> None:
        self.proc.terminate()
        try:
            rc = self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        err = self.proc.stderr.read()
        self.proc.stderr.close()
        assert rc == 0, err


@pytest.fixture(scope="module")
def worker_processes(tmp_path_factory):
    inst = WorkerProcesses(tmp_path_factory.mktemp("hostile-workers"))
    yield inst
    inst.close()


@pytest.fixture(params=["one process", "2 workers"])
def server(request):
    """Each attack against the single-process server and against `--workers 2`."""
    if request.param == "2 workers":
        yield request.getfixturevalue("worker_processes")
        return
    state = SelfState()
    manager = StateSnapshotManager()
    manager.update_snapshot(state)
    srv = start_api_server(manager, "127.0.0.1", 0, EventQueue(8), vitals=state.vitals)
    yield srv
    srv.shutdown()


# Tests that count what reached the event queue look inside the one process.
one_process_only = pytest.mark.parametrize("server", ["one process"], indirect=True)


def exchange(server, raw: bytes, *, half_close: bool = True) -> bytes:
    """Send `raw`, read until the server closes (or 5 s of silence)."""
    with socket.create_connection(server.server_address[:2], timeout=5) as sock:
        sock.sendall(raw)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            try:
                data = sock.recv(65536)
            except socket.timeout:
                break
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks)


def parse(response: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    version, status, *_ = lines[0].split(" ", 2)
    assert version == "HTTP/1.1", lines[0]
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
    return int(status), headers, body


def post(body: bytes, content_type: str | None = "application/json", length: int | None = None):
    head = [b"POST /event HTTP/1.1", b"Host: 127.0.0.1"]
    if content_type is not None:
        head.append(b"Content-Type: " + content_type.encode())
    head.append(b"Content-Length: %d" % (len(body) if length is None else length))
    return b"\r\n".join(head) + b"\r\n\r\n" + body


@pytest.mark.parametrize("raw, status", [
    (b"GARBAGE\r\n\r\n", 400),
    (b"GET / HTTP/2.0\r\n\r\n", 505),
    (b"GET /status HTTP/9\r\n\r\n", 400),
])
def test_unparseable_request_lines_get_a_status_line_and_json(server, raw, status):
    got, headers, body = parse(exchange(server, raw))
    assert got == status
    assert headers["content-type"] == "application/json" and "error" in json.loads(body)


@one_process_only
def test_a_deeply_nested_body_is_a_400_naming_the_depth_limit(server):
    body = b"[" * 5000 + b"]" * 5000  # under the 16 KB body limit
    status, _, data = parse(exchange(server, post(body)))
    assert status == 400 and "deeper than 32" in json.loads(data)["error"]


@one_process_only
@pytest.mark.parametrize("metadata", ["0", "false", '""', "[]", "1.5", '"x"'])
def test_metadata_that_is_not_an_object_is_a_400_naming_it(server, metadata):
    body = b'{"type": "shock", "metadata": ' + metadata.encode() + b"}"
    status, _, data = parse(exchange(server, post(body)))
    assert status == 400 and "'metadata'" in json.loads(data)["error"]
    assert len(server.event_queue) == 0


@one_process_only
def test_null_or_absent_metadata_is_no_metadata(server):
    for body in (b'{"type": "shock", "metadata": null}', b'{"type": "shock"}'):
        status, _, _ = parse(exchange(server, post(body)))
        assert status == 202
    assert len(server.event_queue) == 2


@one_process_only
def test_a_truncated_body_is_refused_not_accepted(server):
    body = b'{"type": "shock"}'
    raw = post(body + b"   ", length=len(body) + 40)  # promises 40 more bytes, then closes
    status, headers, data = parse(exchange(server, raw))
    assert status == 400 and "ended after" in json.loads(data)["error"]
    assert headers.get("connection") == "close"
    assert len(server.event_queue) == 0


@one_process_only
@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_post_event_needs_a_json_content_type(server, content_type):
    status, headers, data = parse(exchange(server, post(b'{"type": "shock"}', content_type)))
    assert status == 415 and "application/json" in json.loads(data)["error"]
    assert len(server.event_queue) == 0


def test_json_content_type_with_parameters_is_accepted(server):
    status, _, _ = parse(exchange(server, post(b'{"type": "shock"}',
                                               "Application/JSON; charset=utf-8")))
    assert status == 202


@pytest.mark.parametrize("path", ["/status", "/vitals", "/health"])
def test_head_gives_the_get_headers_without_a_body(server, path):
    got_head = exchange(server, b"HEAD " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n"
                        b"Connection: close\r\n\r\n")
    status, headers, body = parse(got_head)
    assert status == 200 and body == b""
    assert int(headers["content-length"]) > 0 and headers["content-type"] == "application/json"


def test_head_on_post_routes_is_405(server):
    status, headers, _ = parse(exchange(server, b"HEAD /event HTTP/1.1\r\nHost: x\r\n"
                                        b"Connection: close\r\n\r\n"))
    assert status == 405 and headers["allow"] == "POST"


def responses(data: bytes) -> list[int]:
    """The status codes of every response in `data` (read until the server closed)."""
    # A status line may follow the previous body directly (no CRLF after a body).
    return [int(code) for code in re.findall(rb"HTTP/1\.1 (\d{3}) ", data)]


def test_an_unread_body_after_401_is_never_parsed_as_the_next_request():
    state = SelfState()
    manager = StateSnapshotManager()
    manager.update_snapshot(state)
    srv = start_api_server(manager, "127.0.0.1", 0, EventQueue(8), api_token="s3cret")
    try:
        # A stale token: the body is not read, and the pipelined GET after it must
        # not be answered from inside that body ("GET /x" in it used to get a 501).
        smuggled = b"PATCH /status HTTP/1.1\r\nHost: x\r\n\r\n"
        raw = post(smuggled, length=len(smuggled)) + b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
        got = responses(exchange(srv, raw))
        assert got[0] == 401 and 405 not in got and 501 not in got, got
        assert len(got) == 1  # the connection was closed after the 401
    finally:
        srv.shutdown()


@pytest.mark.parametrize("first", [
    b"GET /status HTTP/1.1\r\nHost: x\r\nContent-Length: 38\r\n\r\n"
    b"DELETE /status HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /nope HTTP/1.1\r\nHost: x\r\nContent-Length: 38\r\n\r\n"
    b"DELETE /status HTTP/1.1\r\nHost: x\r\n\r\n",
])
def test_a_body_on_a_get_or_404_is_not_a_second_request(server, first):
    got = responses(exchange(server, first))
    assert len(got) == 1 and 405 not in got, got


@one_process_only
@pytest.mark.parametrize("lengths", [[b"16", b"16"], [b"16", b"3"], [b"+16"], [b"1_6"], [b"0x10"],
                                     [b"-1"]])
def test_ambiguous_content_lengths_are_a_400_and_close(server, lengths):
    head = b"POST /event HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    head += b"".join(b"Content-Length: " + v + b"\r\n" for v in lengths)
    raw = head + b"\r\n" + b'{"type": "shock"}' + b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    data = exchange(server, raw)
    assert responses(data) == [400], data
    assert "Content-Length" in json.loads(parse(data)[2])["error"]
    assert len(server.event_queue) == 0


@one_process_only
def test_chunked_bodies_are_refused_with_501_and_close(server):
    raw = (b"POST /event HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           b"Transfer-Encoding: chunked\r\n\r\n11\r\n{\"type\": \"shock\"}\r\n0\r\n\r\n"
           b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    data = exchange(server, raw)
    assert responses(data) == [501], data
    assert len(server.event_queue) == 0


def test_an_honest_keep_alive_client_is_unaffected(server):
    raw = (post(b'{"type": "shock"}') + b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
           + b"GET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert responses(exchange(server, raw)) == [202, 200, 200]


def test_a_stalled_body_is_a_408_not_a_500(caplog):
    state = SelfState()
    manager = StateSnapshotManager()
    manager.update_snapshot(state)
    srv = start_api_server(manager, "127.0.0.1", 0, EventQueue(8), read_timeout=0.3)
    try:
        raw = post(b'{"type":', length=100)  # 8 of 100 bytes, then silence (not closed)
        with caplog.at_level("DEBUG"):
            data = exchange(srv, raw, half_close=False)
        status, headers, body = parse(data)
        assert status == 408 and "did not arrive" in json.loads(body)["error"]
        assert headers.get("connection") == "close"
        assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]
        assert len(srv.event_queue) == 0
    finally:
        srv.shutdown()


@pytest.mark.parametrize("host, served", [
    ("127.0.0.1:8000", True), ("localhost", True), ("LOCALHOST:1", True), ("[::1]:8000", True),
    ("evil.example:8000", False), ("localhost.evil.example", False), ("", False),
])
def test_only_allowed_host_names_are_served(host, served):
    state = SelfState()
    manager = StateSnapshotManager()
    manager.update_snapshot(state)
    srv = start_api_server(manager, "127.0.0.1", 0, None,
                           allowed_hosts=["localhost", "127.0.0.1", "[::1]"])
    try:
        line = b"Host: " + host.encode() + b"\r\n" if host else b""
        status, _, body = parse(exchange(srv, b"GET /health HTTP/1.1\r\n" + line +
                                         b"Connection: close\r\n\r\n"))
        if served:
            assert status == 200
        else:
            assert status == 400 and "not served here" in json.loads(body)["error"]
    finally:
        srv.shutdown()


@pytest.mark.parametrize("headers", [
    [b"X-Pad-%d: %s" % (i, b"a" * 8000) for i in range(3)],   # a few big ones
    [b"X-Pad-%d: %s" % (i, b"a" * 200) for i in range(99)],   # many small ones, under 100
])
def test_oversized_headers_are_a_431_before_they_are_read(server, headers):
    raw = b"GET /status HTTP/1.1\r\nHost: x\r\n" + b"\r\n".join(headers) + b"\r\n\r\n"
    status, _, body = parse(exchange(server, raw))
    assert status == 431 and "error" in json.loads(body)


def test_headers_under_the_cap_are_served(server):
    raw = (b"GET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
           + b"X-Pad: " + b"a" * 8000 + b"\r\n\r\n")
    assert parse(exchange(server, raw))[0] == 200
