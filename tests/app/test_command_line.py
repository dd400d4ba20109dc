"""The main command as an operator meets it: bad flags, bad tokens, the fallback, a burst of signals.

Each case runs `python -m src.main_server_api` in a subprocess (from a temp dir,
with the repository root appended to sys.path so the installed csnapshot is
the one imported) and checks the exit code and what the operator reads.
"""

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAIN = (f"import sys; sys.path.append({str(ROOT)!r}); "
        "from src.main_server_api import main; sys.exit(main())")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_main(tmp_path, *args, env=None, timeout=30):
    return subprocess.run([sys.executable, "-c", MAIN, "--port", str(free_port()),
                           "--data-dir", str(tmp_path / "data"), *args],
                          cwd=tmp_path, capture_output=True, text=True, timeout=timeout,
                          env=env)


def one_line_error(out):
    """The operator's mistake is a message, never a traceback."""
    assert "Traceback" not in out.stderr, out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert lines, "no message at all"
    return lines[-1]


@pytest.mark.parametrize("token, problem", [
    ("", "non-empty"),
    ("s\u00e9cret", "printable ASCII"),
    (" secret ", "printable ASCII"),
])
def test_a_token_that_could_never_match_is_refused_at_start(tmp_path, token, problem):
    out = run_main(tmp_path, "--api-token", token)
    assert out.returncode == 2, out.stderr
    line = one_line_error(out)
    assert "--api-token" in line and problem in line, line


def test_a_bad_token_in_the_environment_names_the_variable(tmp_path):
    env = dict(os.environ, LIFE_API_TOKEN="two words")
    out = run_main(tmp_path, env=env)
    assert out.returncode == 2, out.stderr
    assert "$LIFE_API_TOKEN" in one_line_error(out)


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf"])
def test_read_timeout_must_be_positive_and_finite(tmp_path, value):
    out = run_main(tmp_path, f"--read-timeout={value}")
    assert out.returncode == 2  # argparse's usage error, naming the flag and the value
    line = one_line_error(out)
    assert "--read-timeout" in line and value in line, line


def test_log_level_is_case_insensitive():
    from src.cli import build_parser
    assert build_parser().parse_args(["--log-level", "debug"]).log_level == "DEBUG"
    assert build_parser().parse_args(["--log-level", "Warning"]).log_level == "WARNING"


def test_the_command_refuses_to_run_on_the_pure_python_fallback(tmp_path):
    # A copy of the package without its compiled modules, first on sys.path.
    import csnapshot
    pkg = tmp_path / "csnapshot"
    pkg.mkdir()
    src = Path(csnapshot.__file__).parent
    for f in src.iterdir():
        if f.suffix == ".py":
            (pkg / f.name).write_bytes(f.read_bytes())
    code = (f"import sys; sys.path.insert(0, {str(tmp_path)!r}); sys.path.append({str(ROOT)!r}); "
            "from src.main_server_api import main; sys.exit(main())")
    env = {k: v for k, v in os.environ.items() if k != "CSNAPSHOT_REQUIRE_NATIVE"}
    # -S: no site-packages, so an installed (or editable) csnapshot cannot win.
    out = subprocess.run([sys.executable, "-S", "-W", "ignore", "-c", code, "--port", str(free_port()),
                          "--data-dir", str(tmp_path / "data")], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2, out.stderr
    line = one_line_error(out)
    assert "pip install -e ." in line, line
    assert not (tmp_path / "data").exists()  # refused before touching anything


def _wait_healthy(port, proc, seconds=20.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        try:
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return True
        except OSError:
            threading.Event().wait(0.05)
        finally:
            conn.close()
    return False


@pytest.mark.slow
def test_a_burst_of_sigints_still_ends_in_exit_0_with_a_final_snapshot(tmp_path):
    # The handler used to call Event.set(), which takes a lock: a second signal
    # landing inside the first handler deadlocked the main thread.
    port = free_port()
    data = tmp_path / "data"
    proc = subprocess.Popen([sys.executable, "-c", MAIN, "--port", str(port), "--data-dir",
                             str(data), "--tick-interval", "0.01", "--snapshot-period", "1000"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        assert _wait_healthy(port, proc), proc.communicate(timeout=10)[0]
        for _ in range(10):
            proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, out
    assert "received SIGINT" in out and "Traceback" not in out, out
    files = sorted((data / "snapshots").glob("snapshot_*.json"))
    assert files, out  # period 1000 at 100 ticks/s: only the final save can have written it
    last = json.loads(files[-1].read_text())
    assert last["ticks"] == int(files[-1].stem.split("_")[1]) > 0


def test_a_non_loopback_address_without_a_token_is_refused(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "LIFE_API_TOKEN"}
    out = run_main(tmp_path, "--host", "0.0.0.0", env=env)
    assert out.returncode == 2, out.stderr
    line = one_line_error(out)
    assert "without an API token" in line and "--allow-no-token" in line, line
    assert not (tmp_path / "data").exists()


@pytest.mark.slow
def test_the_default_command_serves_loopback_host_names_only(tmp_path):
    # DNS rebinding: a page on evil.example resolves its name to 127.0.0.1 and
    # reaches the server with "Host: evil.example"; the server must refuse it.
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", MAIN, "--port", str(port), "--data-dir",
                             str(tmp_path / "data"), "--tick-interval", "0.01"],
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert _wait_healthy(port, proc)
        seen = {}
        for host in ("evil.example", f"localhost:{port}", f"127.0.0.1:{port}"):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            try:
                conn.request("GET", "/health", headers={"Host": host})
                seen[host] = conn.getresponse().status
            finally:
                conn.close()
        assert seen == {"evil.example": 400, f"localhost:{port}": 200,
                        f"127.0.0.1:{port}": 200}, seen
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
