"""Stop signals (SIGINT, SIGTERM) turned into a flag the main thread waits on.

A signal handler may only record the signal: `threading.Event.set()` takes the
Event's lock, and a second signal arriving while the first handler holds it
would block the main thread on its own lock for ever.  So the handlers append
to a list, and a wake-up fd (`signal.set_wakeup_fd`) makes the main thread's
`select()` return at once; the main thread then does the stopping.  Install it
before anything starts: a signal during start-up still ends in an orderly stop.
"""

from __future__ import annotations

import os
import select
import signal
import threading
from typing import Callable

__all__ = ["StopSignals"]

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """Record SIGINT/SIGTERM from now on (main thread only; elsewhere it records nothing)."""

    def __init__(self) -> None:
        self.received: list[int] = []
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._installed = threading.current_thread() is threading.main_thread()
        if self._installed:
            signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
            for sig in STOP_SIGNALS:
                signal.signal(sig, lambda signum, frame: self.received.append(signum))

    def wait(self, until: Callable[[], bool] = lambda: False, poll: float = 0.5) -> str | None:
        """Block until a stop signal arrives (its name) or `until()` holds (None)."""
        while not self.received and not until():
            select.select([self._wake_r], [], [], poll)
        return signal.Signals(self.received[0]).name if self.received else None

    def close(self) -> None:
        """Stop the wake-ups (the recorded list stays; the handlers stay recording)."""
        if self._installed:
            signal.set_wakeup_fd(-1)
            self._installed = False
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
