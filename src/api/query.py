"""Parsing of the ``/status`` query string: the one place its parameters are validated."""

from __future__ import annotations

from http import HTTPStatus
from urllib.parse import parse_qsl

from src.state.status import STATUS_LIMIT_KEYS

from .errors import BadRequest

__all__ = ["parse_status_query", "LIMIT_KEYS", "MAX_LIMIT"]

LIMIT_KEYS = STATUS_LIMIT_KEYS  # the state's list: the API accepts exactly these
MAX_LIMIT = 100_000  # largest accepted *_limit (the state's caps bound the output anyway)


def parse_status_query(query: str) -> tuple[bool, dict[str, int]]:
    """``(include_optional, limits)`` from a /status query string, or BadRequest naming the parameter.

    The limits are valid for `src.state.status.status_view` as they are
    (known keys, ints), so nothing checks them again on the way to the body.
    """
    include_optional = True
    limits: dict[str, int] = {}
    seen: set[str] = set()
    for name, raw in parse_qsl(query, keep_blank_values=True, strict_parsing=False):
        if name in seen:
            raise BadRequest(HTTPStatus.BAD_REQUEST, f"query parameter {name!r} given twice")
        seen.add(name)
        if name == "include_optional":
            value = raw.strip().lower()
            if value in ("1", "true", "yes"):
                include_optional = True
            elif value in ("0", "false", "no"):
                include_optional = False
            else:
                raise BadRequest(HTTPStatus.BAD_REQUEST,
                                 f"include_optional must be true or false, got {raw!r}")
        elif name in LIMIT_KEYS:
            if not (raw.isascii() and raw.isdigit()) or len(raw) > 7 or int(raw) > MAX_LIMIT:
                raise BadRequest(HTTPStatus.BAD_REQUEST,
                                 f"{name} must be an integer from 0 to {MAX_LIMIT}, got {raw!r}")
            limits[name] = int(raw)
        else:
            allowed = ", ".join(("include_optional",) + LIMIT_KEYS)
            raise BadRequest(HTTPStatus.BAD_REQUEST,
                             f"unknown query parameter {name!r}; allowed: {allowed}")
    return include_optional, limits
