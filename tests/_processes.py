"""Killing a child process at a chosen moment, for the crash-and-resume tests."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable

import pytest


def kill_when(proc: subprocess.Popen, ready: Callable[[], bool], name: str, what: str, timeout: float = 240.0) -> None:
    """SIGKILL ``proc`` as soon as ``ready()`` holds (polled every 20 ms) and reap it. The test fails when
    ``name`` exits first or ``what`` has not appeared within ``timeout`` seconds; the process is killed
    whatever happens."""
    deadline = time.monotonic() + timeout
    try:
        while not ready():
            if proc.poll() is not None:
                pytest.fail(f"{name} exited (code {proc.returncode}) before it could be interrupted")
            if time.monotonic() > deadline:
                pytest.fail(f"no {what} within {timeout:.0f} s")
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
