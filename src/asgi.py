"""`app`: the Life API as an ASGI 3 application (http + lifespan), for uvicorn and granian.

It serves what a running loop publishes in shared memory: start the loop with
``python -m src.main_server_api --workers 0`` (it logs
``LIFE_SHM_NAME=<name>``), then, with that variable set::

    LIFE_SHM_NAME=<name> uvicorn --workers 2 src.asgi:app
    LIFE_SHM_NAME=<name> granian --interface asgi --workers 2 src.asgi:app

Each server process imports this module and attaches to the segments at the
lifespan startup (or at its first request, if the server sends no lifespan
events).  The routes, query rules, status codes, headers, ETag/304 and JSON
errors are `LifeApi`'s (`src.api.dispatch.respond`); the limits too: the body
cap, ``application/json`` for POST, the JSON depth limit, and the allowed
Host names (``$LIFE_ALLOWED_HOSTS``, comma-separated; default: the loopback
names).  ``$LIFE_API_TOKEN`` protects POST.  Serving a follower (``--follow URL
--workers 0``), each server process pushes ``POST /event`` to the origin's
Redis stream itself: give it ``$LIFE_REDIS_EVENTS_URL`` (the ``--follow`` URL),
``$LIFE_REDIS_PREFIX`` and ``$LIFE_REDIS_EVENTS_MAX``, as the follower logs.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

from src.api.dispatch import respond
from src.api.errors import json_bytes
from src.api.shared_api import SharedLifeApi
from src.event_channel import EventSender
from src.publication import SHM_NAME_ENV, PublicationReader
from src.bridge.events import sink_from_env

__all__ = ["app", "LifeAsgi"]

log = logging.getLogger("src.asgi")

_LOOPBACK = ("localhost", "127.0.0.1", "[::1]")
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class LifeAsgi:
    """The ASGI application; the API is built on first use in each process."""

    def __init__(self) -> None:
        self.api: SharedLifeApi | None = None

    def _build(self) -> SharedLifeApi:
        name = os.environ.get(SHM_NAME_ENV)
        if not name:
            raise RuntimeError(f"${SHM_NAME_ENV} is not set: start the loop with "
                               "`python -m src.main_server_api --workers 0` and export the "
                               "name it logs")
        reader = PublicationReader(name)
        hosts = os.environ.get("LIFE_ALLOWED_HOSTS")
        allowed = list(_LOOPBACK) if hosts is None else (
            None if hosts.strip() == "*" else [h.strip() for h in hosts.split(",") if h.strip()])
        # A follower's own route to the origin's event stream, kept across rebuilds.
        sink = self.api.event_queue if self.api is not None else sink_from_env(os.environ)
        return SharedLifeApi(reader, None if sink else EventSender(name), role="asgi",
                             event_queue=sink,
                             api_token=os.environ.get("LIFE_API_TOKEN"),
                             protect_get=os.environ.get("LIFE_PROTECT_GET") == "1",
                             allowed_hosts=allowed)

    def _get_api(self) -> SharedLifeApi:
        api = self.api
        if api is None or api.reader.replaced:  # first use, or a new run re-created the segments
            api = self.api = self._build()
        return api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "http":
            await self._http(scope, receive, send)
        else:
            raise RuntimeError(f"unsupported ASGI scope type {kind!r}")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    self._get_api()
                except Exception as exc:  # a clear reason, not a traceback per worker
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", ())}
        method = scope["method"]
        try:
            api = self._get_api()
        except Exception as exc:
            log.error("%s", exc)
            await _reply(send, 503, [("content-type", "application/json")],
                         json_bytes({"error": "the Life state is not available"}))
            return
        body = b""
        if method == "POST":
            limit = api.max_body
            declared = headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                body = b""  # not read: respond() answers 413 from the header
            else:
                chunks, size = [], 0
                more = True
                while more:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > limit:
                        await _reply(send, 413, [("content-type", "application/json")],
                                     json_bytes({"error": f"event body is over {limit} bytes; "
                                                          f"the limit is {limit}"}))
                        return
                    chunks.append(chunk)
                    more = message.get("more_body", False)
                body = b"".join(chunks)
                if "content-length" not in headers:
                    headers["content-length"] = str(len(body))
        query = scope.get("query_string", b"").decode("latin-1")
        status, out, data = respond(api, method, scope.get("path", "/"), query, headers, body)
        await _reply(send, status, out, data)


async def _reply(send: Send, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]})
    await send({"type": "http.response.body", "body": body})


app = LifeAsgi()
