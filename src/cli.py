"""The command that runs the whole Life application: ``python -m src.main_server_api``.

It wires the parts, each built here and nowhere else: the state (resumed from
the newest valid snapshot), the snapshot manager, the event queue and
generator, the snapshot persistence (its own thread), the runtime loop (its
own thread, the one writer) and the API server; then it waits for
SIGINT/SIGTERM and stops them in order, closing persistence last so the
final snapshot reaches the disk.  Flags: ``python -m src.main_server_api --help``.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import math
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import csnapshot
from src.api.routes import check_api_token
from src.api.server import HOST, PORT, start_api_server
from src.bridge.connection import BridgeError
from src.bridge.publisher import MAX_BATCH
from src.bridge.node import (LateHealth, OriginBridge, add_arguments, check_redis,
                             plain_status_body, run_follower)
from src.environment.event_queue import EventQueue
from src.environment.generator import EventGenerator
from src.runtime.loop import LoopConfig, run_loop
from src.state.data_dir import DataDirError, open_data_dir
from src.state.persistence import (MAX_SNAPSHOT_BYTES_DEFAULT, FinalSaveError,
                                   SnapshotPersistence, load_latest)
from src.publication import SHM_NAME_ENV, PublicationBusy
from src.serving import SharedServing, default_shm_name
from src.signals import StopSignals
from src.state.snapshot_manager import StateSnapshotManager

__all__ = ["main", "build_parser", "TOKEN_ENV"]

log = logging.getLogger("src.api")  # the name the application has always logged under

TOKEN_ENV = "LIFE_API_TOKEN"
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")  # the Host names a loopback server answers


def is_loopback(host: str) -> bool:
    """Whether binding `host` keeps the API on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
FLUSH_TIMEOUT = 3.0  # seconds the stop waits for the final snapshot to be written


def _argument(convert: Callable[[str], Any], ok: Callable[[Any], bool], kind: str,
              expected: str) -> Callable[[str], Any]:
    """An argparse ``type=``: `convert` the text, then `ok` must hold, else a message."""
    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"{expected}, got {text!r}")
        return value
    return parse


_positive_float = _argument(float, lambda x: math.isfinite(x) and x >= 0, "a number",
                            "expected a finite number >= 0")
_seconds = _argument(float, lambda x: math.isfinite(x) and x > 0, "a number",
                     "expected a finite number of seconds > 0")
_positive_int = _argument(int, lambda n: n >= 1, "an integer", "expected an integer >= 1")
_workers = _argument(int, lambda n: 0 <= n <= 64, "an integer",
                     "expected 0 to 64 worker processes")
_port = _argument(int, lambda n: 0 <= n <= 65535, "a port number",
                  "a port is 0-65535 (0 = any free port)")
_worker_nice = _argument(int, lambda n: 0 <= n <= 19, "an integer",
                         "a niceness is 0-19")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m src.main_server_api",
        description="Run Life: the runtime loop (the one writer of the state), snapshot "
                    "persistence and the HTTP API (the readers).  Stops gracefully on "
                    "SIGINT/SIGTERM, saving a final snapshot.")
    p.add_argument("--host", default=HOST, help=f"address to bind (default {HOST}; use 0.0.0.0 "
                   "to expose the API beyond this machine - then set an API token)")
    p.add_argument("--port", type=_port, default=PORT, help=f"port (default {PORT}; 0 = any free)")
    p.add_argument("--tick-interval", type=_positive_float, default=1.0,
                   help="seconds per tick (default 1.0; 0 runs flat out)")
    p.add_argument("--snapshot-period", type=_positive_int, default=10,
                   help="save a snapshot to disk every N ticks (default 10)")
    p.add_argument("--data-dir", default="data",
                   help="folder for snapshots (<data-dir>/snapshots; default ./data)")
    p.add_argument("--keep-snapshots", type=_positive_int, default=20,
                   help="snapshot files to keep (default 20)")
    p.add_argument("--max-snapshot-bytes", type=_positive_int, default=MAX_SNAPSHOT_BYTES_DEFAULT,
                   help="larger snapshot files are not loaded "
                        f"(default {MAX_SNAPSHOT_BYTES_DEFAULT // 2**20} MiB)")
    p.add_argument("--memory-cap", type=_positive_int, default=50,
                   help="memory entries kept (default 50)")
    p.add_argument("--seed", type=int, default=None, help="seed of the event generator")
    p.add_argument("--no-generator", action="store_true",
                   help="no random environment events: only POSTed ones")
    p.add_argument("--event-rate", type=_positive_float, default=0.67,
                   help="mean generated events per tick (default 0.67, as the original)")
    p.add_argument("--queue-size", type=_positive_int, default=100,
                   help="event queue capacity (default 100; a full queue drops events)")
    p.add_argument("--api-token", default=None,
                   help=f"token required for POST (default: ${TOKEN_ENV}, else none); "
                        "prefer the environment variable, command lines are visible to "
                        "other users")
    p.add_argument("--allowed-hosts", default=None, metavar="NAMES",
                   help="comma-separated Host names served (default: on loopback, only "
                        f"{', '.join(LOOPBACK_NAMES)} and the bound address - a defence "
                        "against DNS rebinding; elsewhere, any)")
    p.add_argument("--allow-no-token", action="store_true",
                   help="serve a non-loopback address without an API token (anyone who "
                        "can reach it can then POST events)")
    p.add_argument("--protect-get", action="store_true",
                   help="require the API token for GET endpoints too")
    p.add_argument("--max-connections", type=_positive_int, default=64,
                   help="concurrent connections served (default 64; more get 503)")
    p.add_argument("--read-timeout", type=_seconds, default=10.0,
                   help="seconds a connection may stay idle mid-request (default 10)")
    p.add_argument("--request-timeout", type=_seconds, default=10.0,
                   help="seconds for a request's line and headers to arrive, and again for "
                        "its body, however slowly the bytes come (default 10; then 408)")
    p.add_argument("--keepalive-timeout", type=_seconds, default=5.0,
                   help="seconds an idle keep-alive connection is kept (default 5)")
    p.add_argument("--workers", type=_workers, default=None, metavar="N",
                   help="serve the API from N worker processes on one port (SO_REUSEPORT), "
                        "reading the state from shared memory; 0 = loop only: publish to "
                        f"shared memory and serve nothing (for `uvicorn src.asgi:app` with "
                        f"${SHM_NAME_ENV}); default: one process serves everything")
    p.add_argument("--worker-nice", type=_worker_nice, default=5, metavar="N",
                   help="niceness added to each worker process (0-19, default 5): under "
                        "load the loop, the one writer, keeps its ticks ahead of the readers")
    p.add_argument("--shm-name", default=None, metavar="NAME",
                   help="shared-memory instance name with --workers (default: "
                        "life-<hash of the data folder>)")
    p.add_argument("--log-level", default="INFO", type=str.upper,
                   choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                   help="default INFO (any case)")
    add_arguments(p)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the application until SIGINT/SIGTERM; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if csnapshot.IMPLEMENTATION != "native":  # the twin is a reference, not a server's core
        log.error("csnapshot's compiled extension is not importable here, only its pure-Python "
                  "fallback; build it into this checkout with `pip install -e .`")
        return 2
    token = args.api_token if args.api_token is not None else os.environ.get(TOKEN_ENV)
    if token is not None:
        try:
            check_api_token(token)
        except ValueError as exc:
            where = "--api-token" if args.api_token is not None else f"${TOKEN_ENV}"
            log.error("%s: %s", where, exc)
            return 2
    if token is None and not is_loopback(args.host) and not args.allow_no_token:
        log.error("refusing to serve %s without an API token: anyone who can reach it could "
                  "drive the loop. Set $%s (or --api-token), or pass --allow-no-token",
                  args.host, TOKEN_ENV)
        return 2
    if args.allowed_hosts is not None:
        allowed_hosts: list[str] | None = [h.strip() for h in args.allowed_hosts.split(",")
                                           if h.strip()]
    elif is_loopback(args.host):
        bound = f"[{args.host}]" if ":" in args.host else args.host
        allowed_hosts = [*LOOPBACK_NAMES, bound]
    else:
        allowed_hosts = None
    if args.follow is not None:  # a follower: no state, no loop, no data folder
        def start_shared(manager: StateSnapshotManager,
                         worker_env: dict[str, str]) -> SharedServing:
            name = args.shm_name or f"life-follow-{args.redis_prefix}-{args.port}"
            return _start_shared(args, manager, None, token, allowed_hosts, 5.0, name,
                                 worker_env)
        return run_follower(args, token, allowed_hosts,
                            None if args.workers is None else start_shared)
    keys = None
    if args.redis is not None:
        try:
            keys = check_redis(args.redis, args.redis_prefix, origin=True)
        except BridgeError as exc:
            log.error("%s", exc)
            return 2
    data_dir = Path(args.data_dir)
    try:  # checked, and locked for as long as this process runs (the kernel drops it at exit)
        data_lock = open_data_dir(data_dir)
    except DataDirError as exc:
        log.error("%s", exc)
        return 2

    state, path = load_latest(data_dir, memory_cap=args.memory_cap,
                              max_bytes=args.max_snapshot_bytes)
    if path is None:
        log.info("starting a fresh state (life_id %s)", state.life_id)
    else:
        log.info("resumed from %s at tick %d", path, state.ticks)
    # The Redis bridge's encoder takes every version since its last (the loop publishes
    # many per thread switch): the manager keeps as many as it sends in one write.
    manager = StateSnapshotManager(history=0 if args.redis is None else MAX_BATCH)
    manager.update_snapshot(state)  # /status answers before the first tick
    queue = EventQueue(args.queue_size)
    stop = threading.Event()
    generator = None if args.no_generator else EventGenerator(seed=args.seed,
                                                              rate=args.event_rate)
    # Built here, not by the loop: the command owns it and closes it after the loop.
    persistence = SnapshotPersistence(data_dir, keep=args.keep_snapshots,
                                      max_bytes=args.max_snapshot_bytes)
    outcome: dict[str, Any] = {}

    def loop_body() -> None:
        try:
            outcome["summary"] = run_loop(
                state, LoopConfig(tick_interval=args.tick_interval,
                                  snapshot_period=args.snapshot_period),
                stop_event=stop, event_queue=queue, snapshot_manager=manager,
                persistence=persistence, generator=generator)
        except BaseException as exc:  # reported by main(); the server keeps answering /health
            outcome["error"] = exc
            log.exception("the runtime loop stopped with an error")
            stop.set()

    loop_thread = threading.Thread(target=loop_body, name="life-loop")
    stall_after = max(5.0, 5 * args.tick_interval)
    shared: SharedServing | None = None
    stop_signals = StopSignals()  # first: a signal during start-up is an orderly stop
    late_health = None if keys is None else LateHealth("origin")  # the bridge needs the server
    try:
        if args.workers is not None:
            shared = _start_shared(args, manager, queue, token, allowed_hosts, stall_after,
                                   args.shm_name or default_shm_name(data_dir))
            url = (f"{shared.url} ({args.workers} worker processes)" if args.workers else
                   "nothing here: --workers 0 (serve src.asgi:app with uvicorn or granian)")
        else:
            server = start_api_server(manager, args.host, args.port, queue, vitals=state.vitals,
                                      api_token=token,
                                      protect_get=args.protect_get,
                                      max_connections=args.max_connections,
                                      read_timeout=args.read_timeout,
                                      request_timeout=args.request_timeout,
                                      keepalive_timeout=args.keepalive_timeout,
                                      stall_after=stall_after,
                                      loop_thread=loop_thread,
                                      persistence_health=persistence.health,
                                      bridge_health=late_health,
                                      allowed_hosts=allowed_hosts)
            url = server.url
    except (OSError, PublicationBusy) as exc:
        log.error("cannot listen on %s:%s: %s", args.host, args.port, exc)
        stop_signals.close()
        persistence.close(FLUSH_TIMEOUT)
        data_lock.close()
        return 2

    bridge = None
    if keys is not None and late_health is not None:
        # The run tag is what this origin's readers put in their ETags.
        run, body = ((f"{shared.writer.run_id:08x}", plain_status_body) if shared is not None
                     else (server.api.etag_prefix, server.api.default_status_body))
        bridge = OriginBridge(args.redis, keys, manager, run, body, state.caps, queue,
                              args.redis_retention, args.redis_max_rate).start()
        late_health.attach(bridge.health)  # /health of the one-process server
        if shared is not None:
            shared.writer.bridge_health = bridge.health  # the workers' /health, via the meta
    loop_thread.start()
    log.info("Life API listening on %s (tick %.3g s, snapshots every %d ticks in %s%s)",
             url, args.tick_interval, args.snapshot_period, data_dir / "snapshots",
             ", POST needs a token" if token else "")
    try:
        received = stop_signals.wait(until=stop.is_set)  # the loop sets `stop` if it dies
        if received:
            log.info("received %s: stopping", received)
    finally:
        stop_signals.close()
        if shared is not None:
            shared.stop_workers()  # the workers first: then the loop, then the final snapshot
        stop.set()
        loop_thread.join()
        if shared is not None:
            shared.close()
        else:
            server.shutdown()
        if bridge is not None:
            bridge.close()
    try:
        final_path = persistence.finish(FLUSH_TIMEOUT)
    except FinalSaveError as exc:  # the final state is not on disk: not a clean stop
        log.error("%s", exc)
        outcome.setdefault("error", exc)
        final_path = None
    finally:
        data_lock.close()
    summary = outcome.get("summary")
    if summary is not None:
        log.info("stopped at tick %d after %d ticks (%d with errors); last snapshot on disk: %s",
                 summary.last_tick, summary.ticks, summary.errors, final_path or "none")
    return 1 if "error" in outcome else 0


def _start_shared(args: argparse.Namespace, manager: StateSnapshotManager,
                  queue: EventQueue | None, token: str | None, allowed_hosts: list[str] | None,
                  stall_after: float, name: str,
                  worker_env: dict[str, str] | None = None) -> SharedServing:
    """The publication, event channel and (N >= 1) worker pool of ``--workers N``."""
    options = ["--max-connections", str(args.max_connections),
               "--read-timeout", str(args.read_timeout),
               "--request-timeout", str(args.request_timeout),
               "--keepalive-timeout", str(args.keepalive_timeout),
               "--stall-after", str(stall_after), "--log-level", args.log_level,
               "--nice", str(args.worker_nice)]
    if allowed_hosts is not None:
        options += ["--allowed-hosts", ",".join(allowed_hosts)]
    if args.protect_get:
        options.append("--protect-get")
    shared = SharedServing(name, manager, queue, workers=args.workers, host=args.host,
                           port=args.port, worker_options=options, token=token,
                           worker_env=worker_env)
    log.info("shared memory: %s=%s (segments /dev/shm/%s-*, %d worker process(es))",
             SHM_NAME_ENV, name, name, args.workers)
    return shared.start()
