"""Fault injection for the tests (not library code): a task wrapper whose worker dies once."""
from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Callable


def crash_once(marker: str | None, fn: Callable, *args):
    """When ``marker`` names a file that does not exist yet, create it and kill this process with
    SIGKILL (a worker dying midway); otherwise ``fn(*args)``."""
    if marker is not None and not Path(marker).exists():
        Path(marker).write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return fn(*args)


def crash_always(marker: str, fn: Callable, *args):
    """Kill this process with SIGKILL every time (a worker that cannot finish its task)."""
    Path(marker).write_text(str(os.getpid()))
    os.kill(os.getpid(), signal.SIGKILL)
    return fn(*args)


def report_pid_and_wait(marker: str, seconds: float) -> None:
    """Write this process's pid to ``marker`` and sleep (a long task whose caller may die)."""
    import time

    Path(marker).write_text(str(os.getpid()))
    time.sleep(seconds)
