"""Helpers for the emulator core's tests: configs over the fixture handlers, process probes."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from connstorm.local_stack.lambda_.config import EmulatorConfig
from connstorm.scenario import FunctionConfig, LambdaConfig

FIXTURES = Path(__file__).resolve().parent / "fixture_handlers"

#: A scenario with one function, ``counter`` (``fixture_handlers/counter_handler.py``),
#: for tests that run the emulator server as the stack does.
COUNTER_SCENARIO = f"""
name = "emulator-process"
[[functions]]
name = "counter"
handler = "counter_handler.lambda_handler"
code_dir = "{FIXTURES}"
database = "none"
preload = []
env = {{FIXTURE_VAR = "scenario"}}
"""


def function(name: str, module: str, **kw: Any) -> FunctionConfig:
    """A function over ``fixture_handlers/<module>.py``; no preloads (fast zygote)."""
    kw.setdefault("preload", ())
    return FunctionConfig(name=name, handler=f"{module}.lambda_handler", code_dir=str(FIXTURES),
                          **kw)


def emulator_config(run_dir: Path, *functions: FunctionConfig, **account: Any) -> EmulatorConfig:
    """An EmulatorConfig for ``functions`` writing into ``run_dir``."""
    return EmulatorConfig(account=LambdaConfig(**account), functions=functions,
                          run_dir=str(run_dir))


def proc_state(pid: int) -> str | None:
    """The state letter of ``/proc/<pid>/stat`` (``T`` = stopped), None if gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    state = proc_state(pid)
    return state is not None and state != "Z"


def wait_until(check: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    """Poll ``check`` until true or ``timeout_s`` passes (bounds, not timings)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


def children_of(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid == pid:
                out.append(int(entry))
    return out


async def settled_state(pid: int, want: str = "T", timeout_s: float = 5.0) -> str | None:
    """The process state once it is ``want``, or the last seen after ``timeout_s``.

    SIGSTOP is delivered asynchronously: the target stops when next scheduled.
    """
    state = proc_state(pid)
    deadline = time.monotonic() + timeout_s
    while state != want and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
        state = proc_state(pid)
    return state
