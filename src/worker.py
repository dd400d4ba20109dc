"""One API worker process: ``python -m src.worker --name N --port P`` (started by ``--workers``).

It serves the built-in HTTP server (`src.api.server.LifeServer`, with
``SO_REUSEPORT`` so every worker listens on the same port) over
`SharedLifeApi`: what the loop's process publishes in the shared-memory
segments of instance `N`.  The API token comes from ``$LIFE_API_TOKEN``.
A follower's workers push ``POST /event`` to the origin's Redis stream
themselves, through the stream named by ``$LIFE_REDIS_EVENTS_URL`` (and
``$LIFE_REDIS_PREFIX``, ``$LIFE_REDIS_EVENTS_MAX``; `src.bridge.events`).
It stops on SIGTERM/SIGINT; if the loop's process is gone it keeps serving
the last snapshot (marked stale) and exits after ``--orphan-exit`` seconds
without a parent.
"""

from __future__ import annotations

import argparse
import logging
import os
import select
import signal
import sys
import time

from src.api.server import LifeServer
from src.api.shared_api import SharedLifeApi
from src.bridge.connection import BridgeError
from src.bridge.events import sink_from_env
from src.event_channel import EventSender
from src.publication import PublicationReader

__all__ = ["main", "build_parser", "open_reader"]

log = logging.getLogger("src.worker")
TOKEN_ENV = "LIFE_API_TOKEN"


def open_reader(name: str, timeout: float) -> PublicationReader:
    """The publication of `name`, waiting up to `timeout` s for the loop to create it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return PublicationReader(name)
        except FileNotFoundError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m src.worker",
                                description="One Life API worker: serves what the loop's "
                                            "process publishes in shared memory.",
                                epilog="Environment: $LIFE_API_TOKEN (protects POST); on a "
                                       "follower, $LIFE_REDIS_EVENTS_URL, $LIFE_REDIS_PREFIX "
                                       "and $LIFE_REDIS_EVENTS_MAX (where POST /event goes: "
                                       "the origin's Redis stream). Set by --workers.")
    p.add_argument("--name", required=True, help="the instance's shared-memory name")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--allowed-hosts", default=None, help="comma-separated Host names served")
    p.add_argument("--protect-get", action="store_true")
    p.add_argument("--max-connections", type=int, default=64)
    p.add_argument("--read-timeout", type=float, default=10.0)
    p.add_argument("--request-timeout", type=float, default=10.0)
    p.add_argument("--keepalive-timeout", type=float, default=5.0)
    p.add_argument("--stall-after", type=float, default=5.0)
    p.add_argument("--orphan-exit", type=float, default=300.0,
                   help="seconds to keep serving once the parent process is gone")
    p.add_argument("--nice", type=int, default=0,
                   help="niceness to add at start (the loop's process keeps priority)")
    p.add_argument("--log-level", default="INFO", type=str.upper)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level,
                        format="%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s")
    parent = os.getppid()
    if args.nice:
        os.nice(args.nice)  # readers yield the cores to the one writer under load
    try:
        sink = sink_from_env(os.environ)  # a follower's: its own route to the origin
    except BridgeError as exc:  # what the operator set is wrong: said before any wait
        log.error("%s", exc)
        return 2
    try:
        reader = open_reader(args.name, 10.0)
    except (OSError, ValueError) as exc:
        log.error("cannot open the publication %r: %s", args.name, exc)
        if sink is not None:
            sink.close()
        return 2
    allowed = None if args.allowed_hosts is None else [
        h for h in args.allowed_hosts.split(",") if h]
    api = SharedLifeApi(reader, None if sink else EventSender(args.name), event_queue=sink,
                        api_token=os.environ.get(TOKEN_ENV), protect_get=args.protect_get,
                        stall_after=args.stall_after, allowed_hosts=allowed)
    try:
        server = LifeServer((args.host, args.port), api.snapshot_manager, api=api,
                            reuse_port=True, max_connections=args.max_connections,
                            read_timeout=args.read_timeout,
                            request_timeout=args.request_timeout,
                            keepalive_timeout=args.keepalive_timeout)
    except OSError as exc:
        log.error("cannot listen on %s:%s: %s", args.host, args.port, exc)
        return 2
    signals: list[int] = []
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: signals.append(signum))
    server.start()
    log.debug("worker serving %s", server.url)
    orphaned_at: float | None = None
    try:
        while not signals:
            select.select([wake_r], [], [], 0.5)
            if os.getppid() != parent:
                orphaned_at = orphaned_at or time.monotonic()
                if time.monotonic() - orphaned_at > args.orphan_exit:
                    log.warning("the parent process is gone: exiting")
                    break
    finally:
        server.shutdown()
        reader.close()
        if sink is not None:
            sink.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
