"""The *Life* application built on csnapshot.

A runtime loop (the single writer) evolves a `src.state.self_state.SelfState`
and publishes immutable snapshots of it through a
`src.state.snapshot_manager.StateSnapshotManager`; HTTP handlers and
persistence (the readers) only ever see those snapshots.  Run from the
checkout; this package is not installed.  It imports csnapshot's public names
only.
"""
