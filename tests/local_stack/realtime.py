"""What the real-time priority tests of the emulator and the stand-in share."""

from __future__ import annotations

import os
import subprocess
import sys

#: Exits 1 when this process may not take SCHED_FIFO.
TRY_FIFO = """
import os, sys
try:
    os.sched_setscheduler(0, os.SCHED_FIFO | os.SCHED_RESET_ON_FORK, os.sched_param(1))
except OSError:
    sys.exit(1)
"""


def fifo_permitted() -> bool:
    """Whether real-time priority may be had here: 2+ CPUs, and the right to ask (root has it)."""
    if len(os.sched_getaffinity(0)) < 2:
        return False
    return subprocess.run([sys.executable, "-c", TRY_FIFO], check=False).returncode == 0


def policy(pid: int) -> int:
    """A thread's or process's scheduling policy, without the reset-on-fork flag."""
    return os.sched_getscheduler(pid) & ~os.SCHED_RESET_ON_FORK
