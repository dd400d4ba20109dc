"""`respond`: one request to one response through `LifeApi`, for any front end.

The parts of a request a server has already framed (method, path, query,
headers, the body bytes) go in; ``(status, headers, body)`` comes out, with
the same rules as the built-in server: Host check, routing (404/405), the API
token, ``Content-Type: application/json`` and the body cap for ``POST
/event``, JSON errors, no body for HEAD and 304.  The ASGI application uses
it; the built-in handler (`src.api.handler`) applies the same rules while it
reads the body from its socket, through the same `LifeApi` methods.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus

from .errors import BadRequest, json_bytes
from .routes import LifeApi

__all__ = ["respond", "Reply"]

log = logging.getLogger(__name__)

# (status, headers in order, body): what a front end writes out.
Reply = tuple[int, list[tuple[str, str]], bytes]


def check_post_headers(api: LifeApi, headers: Mapping[str, str], length: int | None) -> None:
    """415/411/413 for a ``POST /event`` whose headers rule it out (before its body is read)."""
    media_type = (headers.get("content-type") or "").partition(";")[0].strip().lower()
    if media_type != "application/json":
        raise BadRequest(HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                         "POST /event takes Content-Type: application/json, got "
                         f"{media_type or 'none'}")
    if length is None:
        raise BadRequest(HTTPStatus.LENGTH_REQUIRED, "Content-Length is required")
    if length > api.max_body:
        raise BadRequest(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                         f"event body is {length} bytes; the limit is {api.max_body}")


def respond(api: LifeApi, method: str, path: str, query: str, headers: Mapping[str, str],
            body: bytes) -> Reply:
    """The response to one framed request; `headers` has lower-case names."""
    try:
        api.check_host(headers.get("host"))
        name = api.route(method, path or "/")
        if name == "event" or api.protect_get:
            api.check_token(headers.get("x-api-key"), headers.get("authorization"))
        if name == "event":
            raw = headers.get("content-length")
            length = int(raw) if raw is not None and raw.strip().isdigit() else (
                len(body) if raw is None and body else None)
            check_post_headers(api, headers, length)
            status, data, extra = api.post_event(body)
        elif name == "status":
            status, data, extra = api.status(query, headers.get("if-none-match"))
        elif name == "vitals":
            status, data, extra = api.vitals(query)
        else:
            status, data, extra = api.health(query)
    except BadRequest as exc:
        status, data, extra = exc.status, json_bytes({"error": str(exc)}), exc.headers
    except Exception:
        log.exception("error handling %s %s", method, path)
        status, data, extra = (HTTPStatus.INTERNAL_SERVER_ERROR,
                               json_bytes({"error": "internal server error"}), {})
    out: list[tuple[str, str]] = []
    if status != HTTPStatus.NOT_MODIFIED:
        out.append(("content-type", "application/json"))
        out.append(("content-length", str(len(data))))
    else:
        data = b""
    out.extend((k.lower(), v) for k, v in extra.items())
    if method == "HEAD":
        data = b""
    return int(status), out, data
