"""The Redis bridge: every published version mirrored into Redis; follower nodes serve it.

- `connection.py`: the URL (checked, password masked), key names (`Keys`), start-up checks.
- `codec.py`: one version as a stream entry (its ``/status`` body and a delta or keyframe), `Replica`.
- `mirror.py` `MirroredSnapshot`: an origin's version as a follower serves it (the origin's body).
- `publisher.py` `RedisPublisher`: the origin's thread writing the latest version (latest wins).
- `follower.py` `RedisFollower`: a follower's thread following the stream (monotonic versions).
- `events.py`: follower events to the origin through a bounded stream (sink and drain).
- `node.py`: the command's flags, an origin's bridge, a whole follower node.

Reference: docs/components/redis-bridge.md.
"""
