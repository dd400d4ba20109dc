"""`LifeHandler`: the ``BaseHTTPRequestHandler`` that carries `LifeApi` over HTTP/1.1.

It only moves bytes: routing, auth and every endpoint's logic are
`src.api.routes.LifeApi`'s.  What is here is what the stdlib server needs:
keep-alive with ``TCP_NODELAY`` (without it Nagle + delayed ACK cost ~40 ms
per response), the status line and headers sent only once the body is
complete, a JSON 500 (logged with its traceback) for unexpected errors, JSON
for the errors the stdlib answers itself, and the per-connection read timeout.
"""

from __future__ import annotations

import http.client
import io
import logging
import socket
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

from .deadlines import BODY, BUSY, HEAD, IDLE
from .errors import BadRequest, Response, json_bytes
from .routes import GET_ROUTES, POST_ROUTES

if TYPE_CHECKING:
    from .server import LifeServer

__all__ = ["LifeHandler", "MAX_HEADER_BYTES"]

log = logging.getLogger(__name__)

# All header lines of one request together.  The stdlib alone takes 100 lines
# of 64 KB each (6.4 MB per request); with this cap a connection holds at most
# a 64 KB request line plus this, so memory is bounded by the connection cap.
MAX_HEADER_BYTES = 16 * 1024


class _HeaderBudget:
    """The connection's reader while headers are parsed: ``readline`` within a byte budget.

    Past the budget it raises ``http.client.LineTooLong``, which the stdlib's
    ``parse_request`` answers with 431 - before it has read the excess.
    """

    __slots__ = ("_raw", "_left")

    def __init__(self, raw: Any, budget: int) -> None:
        self._raw = raw
        self._left = budget

    def readline(self, limit: int = -1) -> bytes:
        if self._left <= 0:
            raise http.client.LineTooLong(f"request headers over {MAX_HEADER_BYTES} bytes")
        want = self._left + 1 if limit is None or limit < 0 else min(limit, self._left + 1)
        line = self._raw.readline(want)
        self._left -= len(line)
        if self._left < 0:
            raise http.client.LineTooLong(f"request headers over {MAX_HEADER_BYTES} bytes")
        return line

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


class LifeHandler(BaseHTTPRequestHandler):
    """Routes: GET /status, /vitals, /health; POST /event.  JSON everywhere."""

    server: LifeServer  # the server this handler serves (its `api`)
    protocol_version = "HTTP/1.1"
    server_version = "Life/1.0"
    _length = 0          # this request's Content-Length (checked by _framing)
    _body_read = False   # whether the body was read: an unread one closes the connection
    _requests_served = 0  # on this connection: the first request has no idle phase

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # The stdlib calls this for requests it cannot parse: answer in JSON too.
        try:
            status = HTTPStatus(code)
        except ValueError:
            status = HTTPStatus.BAD_REQUEST
        self.close_connection = True
        body = json_bytes({"error": message or status.phrase})
        if self.request_version == "HTTP/0.9":
            # The stdlib leaves the version at its HTTP/0.9 default when the request
            # line does not parse (or names HTTP/2), and then sends no status line
            # at all.  This server speaks HTTP/1.x only: always answer with one.
            self.request_version = "HTTP/1.1"
        self.send_response(status, message)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and code >= 200 and code not in (204, 304):
            self.wfile.write(body)

    GET_ROUTES = GET_ROUTES
    POST_ROUTES = POST_ROUTES

    def parse_request(self) -> bool:
        raw = self.rfile
        self.rfile = _HeaderBudget(raw, MAX_HEADER_BYTES)  # type: ignore[assignment]
        try:
            ok = super().parse_request()
        finally:
            self.rfile = raw
        if ok and self.request_version == "HTTP/0.9":
            # "GET /status" with no version: HTTP/0.9 has no status line or headers,
            # so nothing could tell the client what it got.
            self.send_error(HTTPStatus.HTTP_VERSION_NOT_SUPPORTED,
                            "HTTP/0.9 is not supported; send HTTP/1.0 or HTTP/1.1")
            return False
        return ok

    def setup(self) -> None:
        # A slow client cannot hold a thread forever.  (Per connection: typeshed declares
        # the attribute a class variable, socketserver reads it from the instance.)
        self.timeout = self.server.read_timeout  # type: ignore[misc]
        super().setup()
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    def handle(self) -> None:
        try:
            super().handle()
        except (ConnectionError, TimeoutError, socket.timeout) as exc:
            log.debug("client %s: %r", self.client_address, exc)
        finally:
            self.server.deadlines.leave(self.connection)

    def handle_one_request(self) -> None:
        # Phases with deadlines (src/api/deadlines.py): a keep-alive connection is
        # idle until its next request's first byte, then that request's head
        # must arrive within the head timeout, whatever the pace of its bytes.
        deadlines = self.server.deadlines
        if self._requests_served:
            deadlines.enter(self.connection, IDLE)
            # rfile is buffered (rbufsize -1): peek waits for a byte without taking it.
            if not cast(io.BufferedReader, self.rfile).peek(1):  # closed (client, deadline)
                self.close_connection = True
                return
        deadlines.enter(self.connection, HEAD)
        self._requests_served += 1
        super().handle_one_request()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("%s %s", self.address_string(), format % args)

    # ---- dispatch ----

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def _dispatch(self, method: str) -> None:
        path, _, query = self.path.partition("?")
        api = self.server.api
        self._body_read = False
        deadlines = self.server.deadlines
        deadlines.enter(self.connection, BUSY)  # the head is in: no client deadline now
        try:
            self._length = self._framing()
            api.check_host(self.headers.get("Host"))
            name = api.route(method, urlsplit(path).path or "/")
            if name == "event":
                self._check_token()
                status, body, headers = self._post_event()
            else:
                if api.protect_get:
                    self._check_token()
                # By name, so a subclass can replace one endpoint (the benchmarks do).
                status, body, headers = getattr(self, "_get_" + name)(query)
        except BadRequest as exc:
            status, body, headers = exc.status, json_bytes({"error": str(exc)}), exc.headers
        except ConnectionError:
            raise  # the client went away: nothing to answer (handle() logs it at debug)
        except Exception:
            log.exception("error handling %s %s", method, self.path)
            status, body, headers = (HTTPStatus.INTERNAL_SERVER_ERROR,
                                     json_bytes({"error": "internal server error"}), {})
        if self._length and not self._body_read:
            # A body nobody read (a 401/404/405 first, or a GET with a body) would
            # be parsed as the next request on this connection: close it instead.
            self.close_connection = True
        self._send(status, body, headers)

    def _framing(self) -> int:
        """The body's length from Content-Length; 400/501 (and close) for anything ambiguous.

        Two lengths, a length that is not plain digits (``+16``, ``1_6``: ``int()``
        takes both), or Transfer-Encoding (not supported here) would let this
        server and a proxy in front of it disagree on where a request ends.
        """
        if self.headers.get_all("Transfer-Encoding"):
            self._length = 0
            self.close_connection = True
            raise BadRequest(HTTPStatus.NOT_IMPLEMENTED,
                             "Transfer-Encoding is not supported; send Content-Length")
        values = self.headers.get_all("Content-Length") or []
        if not values:
            return 0
        if len(values) > 1 or not values[0].strip().isdigit() \
                or not values[0].strip().isascii() or len(values[0].strip()) > 12:
            self._length = 0
            self.close_connection = True
            raise BadRequest(HTTPStatus.BAD_REQUEST,
                             f"bad Content-Length {', '.join(values)!r}: one decimal "
                             "number of bytes is required")
        return int(values[0])

    def _send(self, status: HTTPStatus, body: bytes, headers: dict[str, str]) -> None:
        # The whole response is ready before the status line goes out.
        self.send_response(status)
        if status != HTTPStatus.NOT_MODIFIED:
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if status != HTTPStatus.NOT_MODIFIED and self.command != "HEAD":
            self.wfile.write(body)

    def _check_token(self) -> None:
        self.server.api.check_token(self.headers.get("X-API-Key"),
                                    self.headers.get("Authorization"))

    # ---- endpoints: the request logic is LifeApi's; these move the bytes ----

    def _get_status(self, query: str) -> Response:
        return self.server.api.status(query, self.headers.get("If-None-Match"))

    def _get_vitals(self, query: str) -> Response:
        return self.server.api.vitals(query)

    def _get_health(self, query: str) -> Response:
        return self.server.api.health(query)

    def _post_event(self) -> Response:
        # A browser can send a cross-origin text/plain POST without a preflight;
        # it cannot send application/json without one (CORS), so require it.
        media_type = (self.headers.get("Content-Type") or "").partition(";")[0].strip().lower()
        if media_type != "application/json":
            self.close_connection = True  # the body is not read: it must not become a request
            raise BadRequest(HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                             "POST /event takes Content-Type: application/json, got "
                             f"{media_type or 'none'}")
        if self.headers.get("Content-Length") is None:
            self.close_connection = True
            raise BadRequest(HTTPStatus.LENGTH_REQUIRED, "Content-Length is required")
        length = self._length  # checked by _framing()
        limit = self.server.api.max_body
        if length > limit:
            self.close_connection = True  # the unread body must not be parsed as a request
            raise BadRequest(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                             f"event body is {length} bytes; the limit is {limit}")
        deadlines = self.server.deadlines
        deadlines.enter(self.connection, BODY)
        try:
            data = self.rfile.read(length)
            deadlines.enter(self.connection, BUSY)
        except TimeoutError:  # socket.timeout: the client stopped sending mid-body
            self.close_connection = True
            log.debug("client %s: body stalled after the read timeout", self.client_address)
            raise BadRequest(HTTPStatus.REQUEST_TIMEOUT,
                             f"the body did not arrive within {self.timeout:g} s") from None
        self._body_read = True
        if len(data) < length:  # the client closed the connection mid-body
            self.close_connection = True
            raise BadRequest(HTTPStatus.BAD_REQUEST,
                             f"the body ended after {len(data)} of {length} bytes")
        return self.server.api.post_event(data)
