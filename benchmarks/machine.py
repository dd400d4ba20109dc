"""What a run measures on: the machine, the interpreter, csnapshot's build, the peers.

`machine_info` and `peers` open every report; `require_native` refuses to time
csnapshot's pure-Python fallback; `interpreter_label` names the build in
scenario 2's tables, which differ most between GIL and free-threaded builds.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

# The peers of the bench extra, and what each is for.
PEERS = {
    "readerwriterlock": "scenarios 1-2: RW locks (fair, reader-priority)",
    "cereggii": "scenarios 1-2: AtomicRef + tuple",
    "immutables": "scenario 4: HAMT Map",
    "pyrsistent": "scenario 4: pvector",
    "pytest-benchmark": "scenario 1: pytest-benchmark JSON",
    "matplotlib": "charts",
}
MISSING_HINT = "missing: not installed (pip install -e '.[bench]')"
MISSING_HINT_CEREGGII = ("missing: not installed (it is in the bench extra on CPython; "
                         "where pip cannot install it, it is not installable here)")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("model name", "Model", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git(root: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def gil_state() -> tuple[str, bool]:
    """("GIL build" | "free-threaded build", GIL enabled right now)."""
    ft = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
    enabled = sys._is_gil_enabled() if hasattr(sys, "_is_gil_enabled") else True
    return ("free-threaded build" if ft else "GIL build"), enabled


def machine_info(root: Path) -> dict[str, Any]:
    import csnapshot

    build, gil = gil_state()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    commit = _git(root, "rev-parse", "--short", "HEAD")
    dirty = _git(root, "status", "--porcelain", "--untracked-files=no")
    return {
        "cpu_model": _cpu_model(),
        "cpus": os.cpu_count(),
        "cpus_usable": usable,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "python_full": sys.version.replace("\n", " "),
        "implementation": platform.python_implementation(),
        "build": build,
        "gil_enabled": gil,
        "executable": sys.executable,
        "csnapshot": f"{csnapshot.__version__} ({csnapshot.IMPLEMENTATION})",
        "commit": (commit + (" + local changes" if dirty else "")) if commit else None,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "loadavg_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def caption(m: dict[str, Any], quick: bool) -> str:
    gil = "GIL enabled" if m["gil_enabled"] else "GIL disabled"
    return (f"{m['cpu_model']}, {m['cpus']} CPUs; {m['implementation']} {m['python']} "
            f"({m['build']}, {gil}); {m['platform']}; {m['date']}"
            + ("; quick mode (short runs, indicative only)" if quick else ""))


def peers() -> dict[str, dict[str, Any]]:
    """{distribution: {"version": str | None, "status": str, "used_for": str}}."""
    out = {}
    for dist, used_for in PEERS.items():
        try:
            version = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            version = None
        status = (f"found {version}" if version else
                  MISSING_HINT_CEREGGII if dist == "cereggii" else MISSING_HINT)
        out[dist] = {"version": version, "status": status, "used_for": used_for}
    return out


def interpreter_label() -> str:
    """E.g. "CPython 3.13.5 (free-threaded, GIL disabled), 2 CPUs"."""
    build, enabled = gil_state()
    kind = ("free-threaded, GIL disabled" if build == "free-threaded build" and not enabled else
            "free-threaded build, GIL re-enabled" if build == "free-threaded build" else
            "GIL build")
    return f"CPython {sys.version.split()[0]} ({kind}), {os.cpu_count()} CPUs"


def require_native() -> None:
    """Benchmarks measure the compiled extension; refuse to time the fallback."""
    import csnapshot

    if csnapshot.IMPLEMENTATION != "native":
        raise SystemExit(
            "csnapshot's compiled extension is not importable here, so the benchmarks would "
            "time the pure-Python fallback.  Build it in place (pip install -e '.[bench]') "
            "and run python -m benchmarks from the repository root.")
