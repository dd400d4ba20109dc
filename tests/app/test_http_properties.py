"""Property: whatever bytes a client sends, the server answers like an HTTP/1.1 server and keeps serving.

Hypothesis builds request lines, headers and bodies - well-formed, odd and
hostile - and sends each on a fresh connection.  Every answer must start
with an ``HTTP/1.1 NNN`` status line; every error body must be JSON; and
after each example a plain ``GET /health`` on a new connection still gets a
200.  A few hundred examples by default; ``CSNAPSHOT_HTTP_EXAMPLES=N`` runs N.
"""

from __future__ import annotations

import json
import os
import re
import socket

import pytest

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is in the test extra")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from src.environment.event_queue import EventQueue  # noqa: E402
from src.main_server_api import start_api_server  # noqa: E402
from src.state.self_state import SelfState  # noqa: E402
from src.state.snapshot_manager import StateSnapshotManager  # noqa: E402

EXAMPLES = int(os.environ.get("CSNAPSHOT_HTTP_EXAMPLES", "300"))
STATUS_LINE = re.compile(rb"HTTP/1\.1 (\d{3}) ")

# Text without CR and LF: a request line or a header cannot contain them.
line_text = st.binary(max_size=60).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))
methods = st.one_of(st.sampled_from([b"GET", b"POST", b"HEAD", b"PUT", b"DELETE", b"OPTIONS",
                                     b"get", b"PATCH"]), line_text)
paths = st.one_of(st.sampled_from([b"/status", b"/vitals", b"/health", b"/event", b"/",
                                   b"/status?memory_limit=3", b"/status?memory_limit=-1",
                                   b"/status?x=%00", b"//status", b"/status?" + b"a=1&" * 50,
                                   b"*", b"http://evil/status"]), line_text)
versions = st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1.1 extra", b"",
                            b"HTTP/x", b"HTTP/1.10", b"http/1.1"])
header_names = st.one_of(st.sampled_from([b"Host", b"Content-Length", b"Content-Type",
                                          b"Transfer-Encoding", b"Connection", b"Expect",
                                          b"If-None-Match", b"Authorization", b"X-API-Key"]),
                         line_text)
header_values = st.one_of(st.sampled_from([b"0", b"5", b"16", b"+16", b"-1", b"1_6", b"99999999",
                                           b"application/json", b"chunked", b"close",
                                           b"100-continue", b"*", b'"x"', b"keep-alive"]),
                          line_text)
headers = st.lists(st.tuples(header_names, header_values), max_size=8)
bodies = st.one_of(st.just(b""), st.sampled_from([b'{"type": "shock", "intensity": 0.5}',
                                                  b"[" * 3000, b'{"type": 1}', b"null",
                                                  b'{"type": "shock", "metadata": 0}']),
                   st.binary(max_size=300))


@pytest.fixture(scope="module")
def server():
    state = SelfState()
    manager = StateSnapshotManager()
    manager.update_snapshot(state)
    srv = start_api_server(manager, "127.0.0.1", 0, EventQueue(4), vitals=state.vitals,
                           read_timeout=2.0, stall_after=1e9)  # no loop: never "stalled"
    yield srv
    srv.shutdown()


def send(address, raw: bytes) -> bytes:
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(raw)
        sock.shutdown(socket.SHUT_WR)  # then the server sees the end of what was sent
        chunks = []
        while data := sock.recv(65536):
            chunks.append(data)
    return b"".join(chunks)


def check_response(response: bytes, method: bytes) -> None:
    assert STATUS_LINE.match(response), response[:120]
    head, _, rest = response.partition(b"\r\n\r\n")
    status = int(STATUS_LINE.match(response).group(1))
    length = re.search(rb"\r\nContent-Length: (\d+)", head)
    if status >= 400 and length and rest and method != b"HEAD":  # HEAD: headers only  # errors are JSON objects (/health's 503 has "status")
        doc = json.loads(rest[:int(length.group(1))])
        assert isinstance(doc, dict) and ("error" in doc or "status" in doc), doc


@settings(max_examples=EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(method=methods, path=paths, version=versions, header_list=headers, body=bodies)
def test_every_request_gets_a_status_line_and_the_server_keeps_serving(
        server, method, path, version, header_list, body):
    line = b" ".join(part for part in (method, path, version) if part)
    raw = line + b"\r\n" + b"".join(n + b": " + v + b"\r\n" for n, v in header_list) + b"\r\n" + body
    response = send(server.server_address[:2], raw)
    if response:  # nothing at all only when the client closed before a request line
        check_response(response, method)
    else:
        assert not line.strip(), raw[:120]
    health = send(server.server_address[:2], b"GET /health HTTP/1.1\r\nHost: x\r\n"
                                             b"Connection: close\r\n\r\n")
    assert health.startswith(b"HTTP/1.1 200 "), health[:120]
