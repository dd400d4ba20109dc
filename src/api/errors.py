"""What every layer of the API shares: the client-error exception and the JSON encoding."""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from csnapshot import json_default

__all__ = ["BadRequest", "json_bytes", "JSON_ENCODER", "Response"]

# (status, body, extra headers): what request logic returns to a transport.
Response = tuple[HTTPStatus, bytes, dict[str, str]]


class BadRequest(Exception):
    """A client error: becomes a JSON response with `status`."""

    def __init__(self, status: HTTPStatus, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


# json_bytes's encoder, built once: json.dumps with options builds one per call (~1-2 us).
JSON_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False, default=json_default)


def json_bytes(obj: Any) -> bytes:
    """Compact JSON; log views and named tuples go through `csnapshot.json_default`."""
    return JSON_ENCODER.encode(obj).encode()
