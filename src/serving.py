"""`SharedServing`: the loop process's side of serving from other processes.

Used by the command (`src.cli`) with ``--workers N`` and ``--workers 0``
(loop only, for uvicorn/granian): it creates the publication segments
(`src.publication`), publishes every new snapshot on its own thread, binds the
event channel (`src.event_channel`) into the loop's queue, and with N >= 1
starts the worker pool (`src.supervisor`) on one port shared with
``SO_REUSEPORT``.  Stopping is in two steps, as the command needs them:
`stop_workers()` before the loop stops, `close()` after it (the final
snapshot published, the segments unlinked, the channel closed).
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any

from src.environment.event_queue import EventQueue
from src.event_channel import EventReceiver
from src.publication import PublicationWriter, PublisherThread
from src.state.snapshot_manager import StateSnapshotManager
from src.supervisor import WorkerPool, reserve_port

__all__ = ["SharedServing", "default_shm_name"]

log = logging.getLogger(__name__)


def default_shm_name(data_dir: Path) -> str:
    """``life-<hash of the data folder>``: one instance per folder (the folder is locked)."""
    digest = hashlib.sha256(str(Path(data_dir).resolve()).encode()).hexdigest()[:12]
    return f"life-{digest}"


class SharedServing:
    """Publication + event channel (+ the worker pool when `workers` >= 1).

    `queue` None (a follower: its workers push events to Redis themselves):
    no event channel.  `worker_env`: added to the workers' environment.
    """

    def __init__(self, name: str, manager: StateSnapshotManager, queue: EventQueue | None, *,
                 workers: int, host: str, port: int, worker_options: list[str],
                 token: str | None, worker_env: dict[str, str] | None = None) -> None:
        self.name = name
        self.workers = workers
        self.host = host
        self.port = port
        self._reserved: Any = None
        self.pool: WorkerPool | None = None
        self.writer = PublicationWriter(name, workers=workers,
                                        queue_capacity=0 if queue is None else queue.maxsize)
        self.receiver: EventReceiver | None = None
        try:
            if queue is not None:
                self.receiver = EventReceiver(name, queue)
        except OSError as exc:
            self.writer.close()
            raise OSError(exc.errno, f"cannot bind the event channel of {name!r}: "
                                     f"{exc.strerror} (is another instance running?)") from None
        self.publisher = PublisherThread(self.writer, manager, queue)
        if workers:
            try:
                self._reserved = reserve_port(host, port)
            except OSError:
                if self.receiver is not None:
                    self.receiver.close()
                self.writer.close()
                raise
            self.port = self._reserved.getsockname()[1]
            env = dict(os.environ)
            env.pop("LIFE_API_TOKEN", None)
            if token is not None:
                env["LIFE_API_TOKEN"] = token
            env.update(worker_env or {})
            argv = ["--name", name, "--host", host,
                    "--port", str(self.port), *worker_options]
            self.pool = WorkerPool(workers, argv, env=env)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> "SharedServing":
        if self.receiver is not None:
            self.receiver.start()
        self.publisher.start()
        if self.pool is not None:
            self.pool.start()
        return self

    def stop_workers(self) -> None:
        if self.pool is not None:
            self.pool.stop()

    def close(self) -> None:
        """After the loop stopped: publish its final snapshot, then remove everything."""
        self.stop_workers()
        self.publisher.stop()
        if self.receiver is not None:
            self.receiver.close()
        self.writer.close()
        if self._reserved is not None:
            self._reserved.close()
