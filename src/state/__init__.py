"""The application's state layer: the live state and its published snapshots.

- `SelfState` (`self_state.py`): the state the runtime loop writes: vitals in a
  `csnapshot.Vitals` seqlock record (live to readers), memory and histories in
  bounded copy-on-write logs, parameters in copy-on-write dicts.
- `StateSnapshotManager` (`snapshot_manager.py`): publishes `StateSnapshot`s
  of a `SelfState` in O(1); readers take the latest one without a lock.

The data model and what is live versus published: docs/components/self-state.md.
"""

from .self_state import FrozenState, MemoryEntry, SelfState, SubjectiveTimeParams, VitalValues
from .snapshot_manager import NoSnapshotError, StateSnapshot, StateSnapshotManager

__all__ = ["SelfState", "MemoryEntry", "FrozenState", "VitalValues", "SubjectiveTimeParams",
           "StateSnapshotManager", "StateSnapshot", "NoSnapshotError"]
