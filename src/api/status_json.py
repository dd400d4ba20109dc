"""`StatusEncoder`: ``/status`` bodies, the JSON of the parameter dicts reused between versions.

Byte for byte ``json_bytes(status_view(state, include_optional, limits))``.
Of a plain ``GET /status`` body (~1.5 KB) the four frozen dicts -
``planning``, ``intelligence``, ``learning_params``, ``adaptation_params`` -
are about two thirds of the bytes and of the time (~14 of ~22 us), and they
are the same objects from version to version until the loop writes them
(`csnapshot.FrozenDict`).  So each one's JSON is kept with the object it was
made from and reused while the state holds that same object; the rest (the
vitals, the logs asked for) is encoded at every call, a run of keys at a time.
The body is built at every published version (the Redis bridge mirrors it,
the shared-memory publication stores it), on a thread that shares the GIL
with the loop.

Any number of threads may call `encode` on one encoder: a cached entry is one
``(object, bytes)`` tuple stored in a dict slot, so a reader sees an old pair
or a new one, never a mix, and two threads that miss together build the
same bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from src.state.frozen import FrozenState
from src.state.status import status_view

from .errors import JSON_ENCODER as _ENCODER  # json_bytes's

__all__ = ["StatusEncoder", "REUSED_KEYS"]

# The status keys whose values are frozen dicts, kept by identity until written.
REUSED_KEYS = frozenset({"planning", "intelligence", "learning_params", "adaptation_params"})


class StatusEncoder:
    """``/status`` bodies of the versions of one state (module doc)."""

    def __init__(self) -> None:
        self._reused: dict[str, tuple[object, str]] = {}  # key -> (its value, '"key":json')

    def encode(self, state: FrozenState, include_optional: bool,
               limits: Mapping[str, int]) -> bytes:
        """The body of ``GET /status`` with these options; `limits` already checked."""
        view = status_view(state, include_optional, limits)
        parts: list[str] = []
        run: dict[str, Any] = {}  # consecutive keys encoded anew, as one object
        for key, value in view.items():
            if key not in REUSED_KEYS:
                run[key] = value
                continue
            if run:
                parts.append(_ENCODER.encode(run)[1:-1])
                run = {}
            parts.append(self._member(key, value))
        if run:
            parts.append(_ENCODER.encode(run)[1:-1])
        return ("{" + ",".join(parts) + "}").encode()

    def _member(self, key: str, value: object) -> str:
        cached = self._reused.get(key)
        if cached is None or cached[0] is not value:
            cached = self._reused[key] = (value, _ENCODER.encode({key: value})[1:-1])
        return cached[1]
