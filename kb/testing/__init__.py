"""Stand-in servers for tests and benchmarks (E-utilities, OpenAI-compatible chat completions)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType


def serve_until_signalled(stop: Callable[[], None]) -> int:
    """Wait for Ctrl-C or SIGTERM (a supervisor's terminate()), then ``stop()`` the server."""
    done = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        done.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, on_signal)
    try:
        done.wait()
    finally:
        stop()
    return 0
