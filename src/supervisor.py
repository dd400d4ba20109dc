"""`WorkerPool`: the ``--workers N`` API processes, started, watched, restarted, stopped.

Each worker is ``python -m src.worker ...`` (a fresh interpreter: nothing of
the loop's process is inherited but the environment).  A monitor thread
restarts a worker that died, at most `max_restarts` times per `window`
seconds over the pool (then it waits for the window to pass, logging why),
so a worker that crashes at start-up cannot spin the machine.  `stop()` sends
SIGTERM to every worker, waits for them, and SIGKILLs what is left.
"""

from __future__ import annotations

import collections
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["WorkerPool", "reserve_port"]

log = logging.getLogger(__name__)

_ROOT = str(Path(__file__).resolve().parent.parent)  # the folder holding `src`


def reserve_port(host: str, port: int) -> "object":
    """A bound (not listening) ``SO_REUSEPORT`` socket on `host`:`port`; 0 picks a port.

    It holds the port for the workers (which bind it too) and is never accepted on.
    """
    import errno
    import socket
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if port:  # SO_REUSEPORT would let us join another server's port silently: refuse
        probe = socket.socket(family, socket.SOCK_STREAM)
        probe.settimeout(1.0)
        try:
            if probe.connect_ex((host.strip("[]"), port)) == 0:
                raise OSError(errno.EADDRINUSE, "another server already listens on this port")
        finally:
            probe.close()
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host.strip("[]"), port))
    except OSError:
        sock.close()
        raise
    return sock


class WorkerPool:
    """`count` worker processes, each ``src.worker`` with the arguments `argv`.

    The checkout is appended to the worker's ``sys.path`` (never prepended,
    nor its cwd: its ``csnapshot/`` folder must not shadow the installed one).
    """

    def __init__(self, count: int, argv: Sequence[str], *, env: dict[str, str] | None = None,
                 max_restarts: int = 10, window: float = 30.0) -> None:
        self.count = count
        boot = (f"import sys; sys.path.append({_ROOT!r}); from src.worker import main; "
                "sys.exit(main())")
        self.argv = [sys.executable, "-c", boot, *argv]
        self.env = dict(os.environ if env is None else env)
        self.max_restarts = max_restarts
        self.window = window
        self.restarts = 0
        self._procs: list[subprocess.Popen[bytes] | None] = [None] * count
        self._recent: collections.deque[float] = collections.deque()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._watch, name="life-workers", daemon=True)

    @property
    def pids(self) -> list[int]:
        with self._lock:
            return [p.pid for p in self._procs if p is not None and p.poll() is None]

    def _spawn(self, slot: int) -> None:
        proc = subprocess.Popen(self.argv, env=self.env, stdin=subprocess.DEVNULL)
        self._procs[slot] = proc
        log.info("worker %d started (pid %d)", slot, proc.pid)

    def start(self) -> "WorkerPool":
        with self._lock:
            for slot in range(self.count):
                self._spawn(slot)
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(0.2):
            with self._lock:
                if self._stop.is_set():
                    return
                for slot, proc in enumerate(self._procs):
                    if proc is None or proc.poll() is None:
                        continue
                    now = time.monotonic()
                    while self._recent and now - self._recent[0] > self.window:
                        self._recent.popleft()
                    if len(self._recent) >= self.max_restarts:
                        continue  # rate-limited: retried once the window has moved on
                    log.warning("worker %d (pid %d) exited with %s; restarting it", slot,
                                proc.pid, proc.returncode)
                    self._recent.append(now)
                    self.restarts += 1
                    self._spawn(slot)

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM every worker, wait up to `timeout` s, SIGKILL the rest."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2)
        with self._lock:
            procs = [p for p in self._procs if p is not None]
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in procs:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("worker pid %d did not stop in %.3g s: killing it", proc.pid,
                            timeout)
                proc.kill()
                proc.wait()
