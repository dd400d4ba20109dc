"""What every layer of the API shares: the client-error exception and the JSON encoding."""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from csnapshot import json_default

__all__ = ["BadRequest", "json_bytes", "Response"]

# (status, body, extra headers): what request logic returns to a transport.
Response = tuple[HTTPStatus, bytes, dict[str, str]]


class BadRequest(Exception):
    """A client error: becomes a JSON response with `status`."""

    def __init__(self, status: HTTPStatus, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


def json_bytes(obj: Any) -> bytes:
    """Compact JSON; log views and named tuples go through `csnapshot.json_default`."""
    return json.dumps(obj, separators=(",", ":"), allow_nan=False,
                      default=json_default).encode()
