"""The Life application's suite (`pytest tests/app`)."""

import os
import sys
from pathlib import Path

os.environ.setdefault("CSNAPSHOT_REQUIRE_NATIVE", "1")

import csnapshot  # noqa: E402,F401  (the installed package, imported before the checkout is on sys.path)

# The application (`src`) runs from the checkout and is not installed.  Append
# the repository root - never prepend it: the checkout's csnapshot/ must not
# shadow the installed package imported above.
sys.path.append(str(Path(__file__).resolve().parents[2]))


# ---- a real redis-server for the Redis bridge's tests ----

import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

import pytest  # noqa: E402


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A throwaway ``redis-server`` on a free loopback port, no persistence, stopped by pid."""

    def __init__(self, folder, password=None):
        self.folder = folder
        self.password = password
        self.port = _free_port()
        self.proc = None

    @property
    def url(self):
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def client(self):
        import redis
        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password,
                           socket_timeout=2.0, socket_connect_timeout=1.0)

    def start(self, timeout=10.0):
        self.folder.mkdir(parents=True, exist_ok=True)
        cmd = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", str(self.folder)]
        if self.password:
            cmd += ["--requirepass", self.password]
        with open(self.folder / "redis.log", "ab") as log:  # the child keeps its own copy
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        client = self.client()
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    if client.ping():
                        return self
                except Exception:
                    if self.proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError("redis-server did not answer PING; see "
                                           f"{self.folder / 'redis.log'}") from None
                    time.sleep(0.05)
        finally:
            client.close()

    def freeze(self):
        """SIGSTOP: the port still accepts connections but nothing answers (a network cut)."""
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self):
        self.proc.send_signal(signal.SIGCONT)

    def stop(self):
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGCONT)  # a frozen server cannot act on SIGTERM
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _redis_or_skip():
    missing = []
    if shutil.which("redis-server") is None:
        missing.append("redis-server (apt-get install -y redis-server)")
    try:
        import redis  # noqa: F401
    except ImportError:
        missing.append("the redis package (pip install -e '.[redis]')")
    if missing:
        pytest.skip("!!! REDIS BRIDGE TESTS SKIPPED: not installed here: " + ", ".join(missing))


@pytest.fixture
def redis_server(tmp_path):
    """A running `RedisServer` (skipped, loudly, where redis-server or redis cannot be found)."""
    _redis_or_skip()
    server = RedisServer(tmp_path / "redis").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def make_redis_server(tmp_path):
    """Start more `RedisServer`s (``make_redis_server(password=...)``); all stopped at the end."""
    _redis_or_skip()
    servers = []

    def make(password=None):
        server = RedisServer(tmp_path / f"redis{len(servers)}", password).start()
        servers.append(server)
        return server
    try:
        yield make
    finally:
        for server in servers:
            server.stop()
