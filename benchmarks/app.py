"""Every use of the Life application (`src`) by the benchmarks is built here.

Scenario 4 publishes a Life state, scenario 5 serves one over HTTP and
scenario 6 runs the loop; they construct the application's pieces only through
this module, so a change to the application's constructors, `run_loop`'s
parameters or the server's handler hooks is adapted in one place.  The
scenarios then call the public methods of the objects returned here
(`SelfState.memory`, `.vitals`, `StateSnapshotManager.update_snapshot`,
`.get_snapshot`, `.status_dict`).

`src` runs from the checkout and is not installed: `python -m benchmarks` is
started from the repository root, which puts it on `sys.path`.
"""

from __future__ import annotations

import copy
import json
import logging
import sys
import threading
from typing import Any, Callable, NamedTuple, Sequence

from src.environment.event_queue import EventQueue
from src.environment.generator import EventGenerator
from src.main_server_api import LifeHandler, LifeServer, start_api_server
from src.runtime.loop import run_loop
from src.state.persistence import SnapshotPersistence
from src.state.self_state import MemoryEntry, SelfState
from src.state.snapshot_manager import StateSnapshotManager

# The application logs its lifecycle at INFO; in a benchmark run that is noise.
logging.getLogger("src").setLevel(logging.WARNING)

# The event rate of the original project's own measurement (0.67 events per tick),
# so the loop's figures can be set beside its ~780 ticks/s.
EVENTS_PER_TICK = 0.67


def server_command(port: int, data_dir: str, *options: str) -> list[str]:
    """The operator's command line (scenario 9 runs the real thing in its own process)."""
    return [sys.executable, "-m", "src.main_server_api", "--port", str(port),
            "--data-dir", data_dir, *options]


def follower_command(port: int, url: str, *options: str) -> list[str]:
    """A Redis-bridge follower node's command line (scenario 8): no loop, no data folder."""
    return [sys.executable, "-m", "src.main_server_api", "--port", str(port), "--follow", url,
            *options]


# ---- states (scenario 4) -----------------------------------------------------

def memory_entry(timestamp: float) -> MemoryEntry:
    return MemoryEntry("noise", 0.5, timestamp)


def full_state(memory: Sequence[MemoryEntry]) -> SelfState:
    """A state whose memory holds `memory` (at its cap: every append evicts) and
    something in every other part: events, histories, adaptations, planning."""
    s = SelfState(memory_cap=len(memory))
    s.memory.extend(memory)
    for i in range(1000):
        s.add_event("noise")
        s.record_history(energy=float(i), stability=1.0)
    for i in range(50):
        s.add_adaptation_record({"tick": i, "changes": {"noise": 0.01}})
    s.set_planning_and_intelligence({"potential_sequences": [["noise", "decay"]]},
                                    {"processed_sources": {"memory_proxy_size": 1000}})
    return s


def plain_parts(s: SelfState, memory: Sequence[MemoryEntry]) -> dict[str, Any]:
    """The state's complex parts as plain lists and dicts: what a copying design copies."""
    return {"memory": list(memory), "recent_events": list(s.recent_events),
            "energy_history": list(s.energy_history),
            "stability_history": list(s.stability_history),
            "adaptation_history": [dict(r) for r in s.adaptation_history],
            "learning_params": {k: dict(v) for k, v in s.learning_params.items()},
            "adaptation_params": {k: dict(v) for k, v in s.adaptation_params.items()},
            "planning": {"potential_sequences": [["noise", "decay"]]},
            "intelligence": {"processed_sources": {"memory_proxy_size": 1000}}}


def snapshot_manager(state: SelfState | None = None) -> StateSnapshotManager:
    """A manager, with `state` already published when given."""
    m = StateSnapshotManager()
    if state is not None:
        m.update_snapshot(state)
    return m


# ---- the loop flat out (scenario 6) --------------------------------------------

class LoopRun(NamedTuple):
    ticks: int
    files_written: int
    superseded: int   # snapshots the persistence thread dropped for a newer one


def run_loop_flat_out(stop: threading.Event, monitor: Callable[[Any], None], *,
                      data_dir: str | None, snapshot_period: int, events_per_tick: float,
                      seed: int) -> LoopRun:
    """`run_loop` at tick_interval=0 on this thread until `stop` is set; `data_dir`
    None turns persistence off, `events_per_tick` 0 runs without events."""
    state = SelfState()
    persistence = SnapshotPersistence(data_dir) if data_dir is not None else None
    try:
        summary = run_loop(state, monitor=monitor, tick_interval=0.0,
                           snapshot_period=snapshot_period, stop_event=stop,
                           snapshot_manager=StateSnapshotManager(), persistence=persistence,
                           generator=EventGenerator(seed=seed, rate=events_per_tick)
                           if events_per_tick else None)
    finally:
        if persistence is not None:
            persistence.close()
    stats = summary.persistence
    return LoopRun(summary.ticks, stats.written if stats else 0, stats.superseded if stats else 0)


# ---- the application over HTTP (scenario 5) ----------------------------------------

class _DeepCopyHandler(LifeHandler):
    """The original design: deep-copy the live state under the RLock the loop also takes."""

    def _get_status(self, query):
        server = self.server
        with server.state_lock:
            data = copy.deepcopy(server.live_state.to_dict())
        for key in ("memory", "recent_events", "energy_history", "stability_history",
                    "adaptation_history", "schema_version"):
            data.pop(key, None)
        return 200, json.dumps(data, default=str).encode(), {}

    def _get_vitals(self, query):
        server = self.server
        with server.state_lock:
            vitals = server.live_state.read_vitals()._asdict()
        return 200, json.dumps({"vitals": vitals}).encode(), {}


class _FixedBytesHandler(LifeHandler):
    """A constant body of the size of a real `/status`: the HTTP stack's ceiling."""

    def _get_status(self, query):
        return 200, self.server.fixed_body, {}

    _get_vitals = _get_status


DESIGNS = ("csnapshot", "rlock+deepcopy", "fixed bytes")


class RunningDesign:
    """One of `DESIGNS` serving on 127.0.0.1 (a free port), its loop running.

    - csnapshot: the application as shipped (the published snapshot, cached bytes
      per version, live seqlock reads);
    - rlock+deepcopy: the same loop, but every request deep-copies the live state
      under an RLock that the loop takes once per tick;
    - fixed bytes: no loop; `/status` and `/vitals` return a constant body.
    """

    def __init__(self, design: str, tick_interval: float, events_per_tick: float = EVENTS_PER_TICK,
                 seed: int = 1) -> None:
        if design not in DESIGNS:
            raise ValueError(f"unknown design {design!r}; known: {', '.join(DESIGNS)}")
        self.design = design
        self.state = SelfState()
        self.manager = snapshot_manager(self.state)
        self.stop = threading.Event()
        self.loop: threading.Thread | None = None
        if design == "fixed bytes":
            self.server = LifeServer(("127.0.0.1", 0), self.manager, max_connections=64)
            self.server.RequestHandlerClass = _FixedBytesHandler
            self.server.fixed_body = json.dumps(self.manager.status_dict()).encode()
            self.server.start()
            return
        lock = threading.RLock()
        monitor = None
        if design == "rlock+deepcopy":
            def monitor(state):  # the writer takes the readers' lock once per tick
                with lock:
                    pass
        queue = EventQueue()
        self.loop = threading.Thread(target=run_loop, args=(self.state,), kwargs=dict(
            monitor=monitor, tick_interval=tick_interval, stop_event=self.stop, event_queue=queue,
            snapshot_manager=self.manager,
            generator=EventGenerator(seed=seed, rate=events_per_tick)), daemon=True)
        self.server = start_api_server(self.manager, "127.0.0.1", 0, queue, loop_thread=self.loop,
                                       vitals=self.state.vitals)
        if design == "rlock+deepcopy":
            self.server.RequestHandlerClass = _DeepCopyHandler
            self.server.state_lock = lock
            self.server.live_state = self.state
        self.loop.start()

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def ticks(self) -> int:
        """Ticks published so far (0 for the fixed-bytes server, which has no loop)."""
        snap = self.manager.get_snapshot()
        return snap.tick if snap is not None else 0

    def close(self) -> None:
        self.stop.set()
        if self.loop is not None:
            self.loop.join(10)
        self.server.shutdown()


# ---- serving from several processes (scenario 8) -----------------------------------

SHM_NAME_ENV = "LIFE_SHM_NAME"  # the variable `src.asgi:app` reads (src.publication)


def asgi_command(server: str, port: int, workers: int = 2) -> list[str]:
    """uvicorn or granian serving `src.asgi:app` with `workers` processes."""
    if server == "uvicorn":
        return [sys.executable, "-m", "uvicorn", "--workers", str(workers), "--port", str(port),
                "--log-level", "warning", "src.asgi:app"]
    return [sys.executable, "-m", "granian", "--interface", "asgi", "--workers", str(workers),
            "--port", str(port), "--log-level", "warning", "src.asgi:app"]


def fixed_bytes_command(port: int) -> list[str]:
    """One process of the fixed-bytes ceiling on `port` (SO_REUSEPORT: start several)."""
    return [sys.executable, "-c", "import sys; from benchmarks.app import serve_fixed_bytes; "
            "serve_fixed_bytes(int(sys.argv[1]))", str(port)]


def serve_fixed_bytes(port: int) -> None:
    """Serve a constant `/status`-sized body on `port` with SO_REUSEPORT until SIGTERM."""
    import signal
    manager = snapshot_manager(SelfState())
    server = LifeServer(("127.0.0.1", port), manager, max_connections=64, reuse_port=True)
    server.RequestHandlerClass = _FixedBytesHandler
    server.fixed_body = json.dumps(manager.status_dict()).encode()  # type: ignore[attr-defined]
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    server.start()
    while not stop.wait(0.5):
        pass
    server.shutdown()
