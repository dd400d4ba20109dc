"""`RateLimitedLog`: a failure that repeats (a tick error, Redis down) logged once per period, the rest counted."""

from __future__ import annotations

import logging
import time

__all__ = ["RateLimitedLog"]


class RateLimitedLog:
    """Logs a kind of message at most once per `period` seconds; the repeats are counted.

    One owner thread per instance (the loop, each bridge thread), so no lock.
    """

    __slots__ = ("_logger", "_period", "_next", "_muted")

    def __init__(self, logger: logging.Logger, period: float = 5.0) -> None:
        self._logger = logger
        self._period = period
        self._next: dict[str, float] = {}
        self._muted: dict[str, int] = {}

    def log(self, level: int, kind: str, msg: str, *args: object,
            exc_info: bool = False) -> None:
        now = time.monotonic()
        if now < self._next.get(kind, 0.0):
            self._muted[kind] = self._muted.get(kind, 0) + 1
            return
        muted = self._muted.pop(kind, 0)
        if muted:
            msg += " (%d more since the last report)"
            args += (muted,)
        self._logger.log(level, msg, *args, exc_info=exc_info)
        self._next[kind] = now + self._period

    def reset(self, kind: str) -> None:
        """Forget `kind` (it recovered): its next failure is logged at once."""
        self._next.pop(kind, None)
        self._muted.pop(kind, None)
