"""`StatusCache`: each ``/status`` body serialised at most once per snapshot version and query."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from src.state.snapshot_manager import StateSnapshot

__all__ = ["StatusCache", "MAX_CACHED_QUERIES"]

MAX_CACHED_QUERIES = 64  # distinct /status queries cached per snapshot version


class _Pending:
    """A cache slot being filled by one thread; the others wait for it."""

    __slots__ = ("done", "body", "error")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.body: bytes | None = None
        self.error: BaseException | None = None


class StatusCache:
    """``(snapshot version, query) -> JSON bytes``, shared by all handler threads.

    One dict per snapshot version, held in a one-item list cell and replaced
    when a newer version is asked for.  A miss claims its slot with
    ``dict.setdefault`` (atomic), so exactly one thread serialises a given
    query of a given version and concurrent askers wait for its bytes.
    Readers never take a lock; the cost of a hit is two dict lookups.
    """

    def __init__(self, max_queries: int = MAX_CACHED_QUERIES) -> None:
        self._cell: list[tuple[int, dict[tuple[Any, ...], Any]]] = [(0, {})]
        self._swap = threading.Lock()  # taken once per new version, never on a hit
        self._max = max_queries
        self.serialisations = 0  # bodies built (a statistic for tests and /health)

    def get(self, snapshot: StateSnapshot, key: tuple[Any, ...],
            build: Callable[[], bytes]) -> bytes:
        """The body for `key` of `snapshot`'s version, built by `build()` on the first ask."""
        version, entries = self._cell[0]
        if version != snapshot.version:
            with self._swap:
                version, entries = self._cell[0]
                if version > snapshot.version:  # older than the cache's: don't cache it
                    return build()
                if version < snapshot.version:
                    entries = {}
                    self._cell[0] = (snapshot.version, entries)
        found = entries.get(key)
        if isinstance(found, bytes):
            return found
        if found is None:
            if len(entries) >= self._max:
                return build()
            mine = _Pending()
            found = entries.setdefault(key, mine)
            if found is mine:
                try:
                    mine.body = build()
                    self.serialisations += 1
                except BaseException as exc:
                    mine.error = exc
                    entries.pop(key, None)
                    raise
                finally:
                    mine.done.set()
                entries[key] = mine.body
                return mine.body
            if isinstance(found, bytes):
                return found
        found.done.wait()
        if found.body is None:
            return build()  # the builder failed; try for ourselves
        return found.body
