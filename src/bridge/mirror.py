"""`MirroredSnapshot`: an origin's version as a follower serves it.

A `StateSnapshot` with the origin's version, publish time and run tag, its
state the follower's `codec.Replica` at that version, and the origin's bytes
of a plain ``GET /status`` (`plain_status_body`), which the API and the
shared-memory publication serve as that version's body: a follower's body
and ETag are the origin's, not a re-encoding of them.
"""

from __future__ import annotations

from src.state.frozen import FrozenState
from src.state.snapshot_manager import StateSnapshot

from .codec import Header

__all__ = ["MirroredSnapshot"]


class MirroredSnapshot(StateSnapshot):
    """The origin's version `header`: its `state` rebuilt here, its plain ``/status`` `body`."""

    __slots__ = ("plain_status_body",)
    plain_status_body: bytes

    def __init__(self, header: Header, state: FrozenState, body: bytes) -> None:
        super().__init__(header.version, header.published_at, state, header.run)
        object.__setattr__(self, "plain_status_body", body)  # frozen: set once, here

    def __repr__(self) -> str:
        return f"<MirroredSnapshot version={self.version} tick={self.tick} origin={self.origin}>"
