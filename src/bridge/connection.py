"""Redis connections for the bridge: the URL checked and masked, the keys named, start-up checks.

Every client the bridge makes comes from `connect` (timeouts on connect and
on every reply, so no thread can hang on a dead peer) and every key name from
`Keys` (one prefix, so several Life instances can share one Redis).  Nothing
here logs or raises a message holding the URL's password: `mask_url` replaces
it, and `check_connection` scrubs it from the client's own error text too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

__all__ = ["BridgeError", "Keys", "mask_url", "connect", "check_connection", "import_redis",
           "DEFAULT_PREFIX"]

DEFAULT_PREFIX = "life"
_SCHEMES = ("redis", "rediss", "unix")
_PREFIX = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
CONNECT_TIMEOUT = 2.0  # seconds to open a connection


class BridgeError(Exception):
    """A start-up problem an operator fixes (bad URL, wrong password, no redis package)."""


def import_redis() -> Any:
    """The `redis` client package, or BridgeError saying how to install it."""
    try:
        import redis
    except ImportError:
        raise BridgeError("the Redis bridge needs the `redis` package: "
                          "pip install -e '.[redis]'") from None
    return redis


def mask_url(url: str) -> str:
    """`url` with its password (if any) replaced by ``***``; safe to log."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _scrub(text: str, url: str) -> str:
    password = None
    try:
        password = urlsplit(url).password
    except ValueError:
        pass
    return text.replace(password, "***") if password else text


@dataclass(frozen=True, slots=True)
class Keys:
    """The Redis key names of one Life instance: ``<prefix>:<name>``."""

    prefix: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        if not isinstance(self.prefix, str) or not _PREFIX.fullmatch(self.prefix):
            raise BridgeError(f"--redis-prefix: expected 1-64 letters, digits, '_', '-' or '.', "
                              f"got {self.prefix!r}")

    @property
    def versions(self) -> str:
        """The stream of published versions (one entry per mirrored version)."""
        return f"{self.prefix}:versions"

    @property
    def events(self) -> str:
        """The stream of events POSTed on followers, drained by the origin."""
        return f"{self.prefix}:events"

    @property
    def origin(self) -> str:
        """The origin's heartbeat: its run tag, with a short expiry it keeps renewing."""
        return f"{self.prefix}:origin"


def connect(url: str, *, reply_timeout: float) -> Any:
    """A client for `url` (nothing is sent yet); BridgeError for a URL that cannot be one.

    `reply_timeout`: seconds any reply may take (a blocking read's block time
    must be shorter).
    """
    redis = import_redis()
    if not isinstance(url, str) or urlsplit(url).scheme not in _SCHEMES:
        raise BridgeError(f"{mask_url(str(url))!r} is not a Redis URL: expected "
                          "redis://[:password@]host[:port][/db], rediss://... or unix://path")
    try:
        return redis.Redis.from_url(url, socket_connect_timeout=CONNECT_TIMEOUT,
                                    socket_timeout=reply_timeout, decode_responses=False)
    except ValueError as exc:
        raise BridgeError(f"bad Redis URL {mask_url(url)!r}: {_scrub(str(exc), url)}") from None


def check_connection(client: Any, url: str) -> None:
    """PING `client`; BridgeError naming the masked URL and the reason (never the password)."""
    redis = import_redis()
    try:
        client.ping()
    except redis.AuthenticationError as exc:
        raise BridgeError(f"Redis at {mask_url(url)} refused the credentials: "
                          f"{_scrub(str(exc), url)}") from None
    except redis.RedisError as exc:
        text = _scrub(str(exc), url)
        if "NOAUTH" in text or "WRONGPASS" in text or "AUTH" in text:
            raise BridgeError(f"Redis at {mask_url(url)} refused the credentials: "
                              f"{text}") from None
        raise BridgeError(f"cannot reach Redis at {mask_url(url)}: {text}") from None
