"""Wiring the bridge into the command: the flags, an origin's two threads, a follower node.

- `add_arguments`: ``--redis URL`` (origin), ``--follow URL`` (follower),
  ``--redis-prefix``, ``--redis-retention``, ``--redis-events-max``.
- `check_redis`: the start-up check (URL, reachability, credentials, one
  origin per prefix) whose `BridgeError` the command reports as exit 2.
- `OriginBridge`: the publisher and the event drain of an origin.
- `run_follower`: the whole follower node - an API server over a local
  snapshot manager fed by a `RedisFollower`, with a `RedisEventSink` as its
  event queue; no loop, no data folder.  With ``--workers`` each worker
  process pushes through a sink of its own (`follower_worker_env`).
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable
from typing import Any

from src.api.cache import StatusCache
from src.api.errors import json_bytes
from src.api.routes import LifeApi
from src.api.server import start_api_server
from src.environment.event_queue import EventQueue
from src.publication import SHM_NAME_ENV
from src.signals import StopSignals
from src.state.snapshot_manager import StateSnapshot, StateSnapshotManager
from src.state.status import status_view

from .connection import DEFAULT_PREFIX, BridgeError, Keys, check_connection, connect, mask_url
from .events import (DEFAULT_EVENTS_MAX, EVENTS_MAX_ENV, EVENTS_PREFIX_ENV, EVENTS_URL_ENV,
                     RedisEventDrain, RedisEventSink)
from .follower import RedisFollower
from .publisher import DEFAULT_MAX_RATE, DEFAULT_RETENTION, HEARTBEAT_TTL, RedisPublisher

__all__ = ["add_arguments", "check_redis", "OriginBridge", "LateHealth", "run_follower",
           "follower_worker_env", "plain_status_body"]

log = logging.getLogger("src.bridge")


def _count(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if not 1 <= n <= 10_000_000:
        raise argparse.ArgumentTypeError(f"expected an integer from 1 to 10000000, got {text!r}")
    return n


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("Redis bridge (several machines; needs the `redis` extra)")
    roles = g.add_mutually_exclusive_group()
    roles.add_argument("--redis", metavar="URL", default=None,
                       help="origin: mirror every published version into Redis at URL "
                            "(redis://[:password@]host[:port][/db]; off the loop's thread)")
    roles.add_argument("--follow", metavar="URL", default=None,
                       help="follower: run no loop, serve what the origin mirrors into Redis at "
                            "URL (same version, body and ETag); POST /event goes to the origin")
    g.add_argument("--redis-prefix", default=DEFAULT_PREFIX, metavar="NAME",
                   help=f"prefix of the Redis keys (default {DEFAULT_PREFIX!r}); one per Life "
                        "instance sharing a Redis")
    g.add_argument("--redis-retention", type=_count, default=DEFAULT_RETENTION, metavar="N",
                   help=f"entries kept in the Redis stream, about (default {DEFAULT_RETENTION}): "
                        "deltas, and a whole-state keyframe every 32 or every N/2")
    g.add_argument("--redis-max-rate", type=_count, default=DEFAULT_MAX_RATE, metavar="N",
                   help=f"versions mirrored per second, at most (default {DEFAULT_MAX_RATE}); "
                        "the latest wins, each costs the origin an encoding of what changed")
    g.add_argument("--redis-events-max", type=_count, default=DEFAULT_EVENTS_MAX, metavar="N",
                   help="follower events waiting for the origin, at most (default "
                        f"{DEFAULT_EVENTS_MAX}; more get 503)")


def check_redis(url: str, prefix: str, *, origin: bool) -> Keys:
    """The keys for `prefix` once Redis at `url` answered; BridgeError for the operator.

    An origin also waits (up to the heartbeat's lifetime) for another
    origin's heartbeat under the same prefix to lapse: two origins would
    interleave their versions.
    """
    keys = Keys(prefix)
    client = connect(url, reply_timeout=2.0)
    try:
        check_connection(client, url)
        if origin:
            deadline = time.monotonic() + HEARTBEAT_TTL + 0.5
            while client.exists(keys.origin):
                if time.monotonic() > deadline:
                    raise BridgeError(f"another origin is publishing under the prefix "
                                      f"{prefix!r} at {mask_url(url)}; stop it or choose "
                                      "another --redis-prefix")
                time.sleep(0.1)
    finally:
        client.close()
    return keys


def plain_status_body(snapshot: StateSnapshot) -> bytes:
    """The plain ``GET /status`` body of `snapshot` (where no `LifeApi` builds it: --workers)."""
    return json_bytes(status_view(snapshot.state, True, {}))


class LateHealth:
    """``/health``'s ``redis`` block before the bridge exists (it needs the running server).

    Passed to the server when it is built, so no request ever sees a node
    without the block; `attach` hands it the bridge's own ``health``.
    """

    def __init__(self, role: str) -> None:
        self._role = role
        self._health: list[Callable[[], dict[str, Any]]] = []

    def attach(self, health: Callable[[], dict[str, Any]]) -> None:
        self._health.append(health)

    def __call__(self) -> dict[str, Any]:
        if self._health:
            return self._health[0]()
        return {"role": self._role, "status": "starting", "connected": False}


class OriginBridge:
    """An origin's publisher and event drain (see `src.bridge.publisher`, `.events`)."""

    def __init__(self, url: str, keys: Keys, manager: StateSnapshotManager, run: str,
                 body: Callable[[StateSnapshot], bytes], caps: dict[str, int],
                 queue: EventQueue, retention: int, max_rate: int) -> None:
        self.publisher = RedisPublisher(manager, url, keys, run=run, body=body, caps=caps,
                                        retention=retention, max_rate=max_rate)
        self.drain = RedisEventDrain(url, keys, queue)

    def start(self) -> OriginBridge:
        self.publisher.start()
        self.drain.start()
        return self

    def close(self) -> None:
        self.drain.close()
        self.publisher.close()

    def health(self) -> dict[str, Any]:
        body = self.publisher.health()
        body.update(self.drain.health())
        return body


def _republisher(manager: StateSnapshotManager,
                 api: LifeApi) -> Callable[[StateSnapshot], None]:
    """The follower's local publication: the snapshot into the manager the API reads."""
    runs: list[str | None] = [None]

    def republish(snapshot: StateSnapshot) -> None:
        if snapshot.origin != runs[0]:  # a new origin run numbers its versions from 1 again
            api.status_cache = StatusCache()
            runs[0] = snapshot.origin
        manager.publish_mirrored(snapshot)
    return republish


def run_follower(args: argparse.Namespace, token: str | None,
                 allowed_hosts: list[str] | None,
                 start_shared: Callable[[StateSnapshotManager, Any], Any] | None = None) -> int:
    """Run a follower node until SIGINT/SIGTERM; the exit status.

    `start_shared(manager, worker_env)`: with ``--workers``, the shared-memory
    publication and worker pool over the follower's manager (`src.serving`),
    the workers started with `worker_env` added to their environment.
    """
    url = args.follow
    try:
        keys = check_redis(url, args.redis_prefix, origin=False)
    except BridgeError as exc:
        log.error("%s", exc)
        return 2
    manager = StateSnapshotManager()
    if start_shared is not None:
        return _follow_with_workers(args, url, keys, manager, start_shared)
    sink = RedisEventSink(url, keys, args.redis_events_max)
    try:
        server = start_api_server(manager, args.host, args.port, sink,  # type: ignore[arg-type]
                                  api_token=token, protect_get=args.protect_get,
                                  max_connections=args.max_connections,
                                  read_timeout=args.read_timeout,
                                  request_timeout=args.request_timeout,
                                  keepalive_timeout=args.keepalive_timeout,
                                  stall_after=5.0, allowed_hosts=allowed_hosts,
                                  bridge_health=(health := LateHealth("follower")))
    except OSError as exc:
        log.error("cannot listen on %s:%s: %s", args.host, args.port, exc)
        sink.close()
        return 2
    follower = RedisFollower(url, keys, _republisher(manager, server.api))
    health.attach(follower.health)
    follower.start()
    log.info("Life follower listening on %s, following %s (prefix %r)", server.url,
             mask_url(url), keys.prefix)
    try:
        _wait_for_signal()
    finally:
        server.shutdown()
        follower.close()
        sink.close()
    return 0


def follower_worker_env(url: str, keys: Keys, events_max: int) -> dict[str, str]:
    """What a follower's API process needs to push events itself (`events.sink_from_env`)."""
    return {EVENTS_URL_ENV: url, EVENTS_PREFIX_ENV: keys.prefix,
            EVENTS_MAX_ENV: str(events_max)}


def _follow_with_workers(args: argparse.Namespace, url: str, keys: Keys,
                         manager: StateSnapshotManager,
                         start_shared: Callable[[StateSnapshotManager, dict[str, str]], Any]
                         ) -> int:
    """A follower whose workers serve from shared memory what it republishes there.

    This process only follows: each worker sends its POSTed events to the
    stream through its own `RedisEventSink`, so a full stream is that
    request's 503 (one atomic script per event), never an event accepted
    here and dropped later.
    """
    try:
        shared = start_shared(manager, follower_worker_env(url, keys, args.redis_events_max))
    except (OSError, RuntimeError) as exc:  # RuntimeError: PublicationBusy
        log.error("cannot serve on %s:%s: %s", args.host, args.port, exc)
        return 2
    follower = RedisFollower(url, keys, manager.publish_mirrored)
    # Its state reaches the workers (their /health; POST /event is a 503 while
    # Redis is unreachable) through the publication's meta fields.
    shared.writer.bridge_health = follower.health
    follower.start()
    if args.workers:
        log.info("Life follower: %d worker processes on %s, following %s (prefix %r)",
                 args.workers, shared.url, mask_url(url), keys.prefix)
    else:
        log.info("Life follower: following %s (prefix %r) for ASGI workers; give them "
                 "%s=%s, %s (the --follow URL), %s=%s and %s=%d", mask_url(url), keys.prefix,
                 SHM_NAME_ENV, shared.name, EVENTS_URL_ENV, EVENTS_PREFIX_ENV, keys.prefix,
                 EVENTS_MAX_ENV, args.redis_events_max)
    try:
        _wait_for_signal()
    finally:
        shared.stop_workers()
        follower.close()
        shared.close()
    return 0


def _wait_for_signal() -> None:
    """Until SIGINT/SIGTERM (src.signals: the handler only records it)."""
    stop_signals = StopSignals()
    try:
        log.info("received %s: stopping", stop_signals.wait())
    finally:
        stop_signals.close()
