"""The zygote watches its environments' exits on pidfds: freezing and thawing never wake it.

A SIGCHLD handler is called for a child that stops or continues too (unless
``SA_NOCLDSTOP``, which Python's ``signal`` cannot set), so with one the zygote
woke twice per warm invocation. These count its wake-ups (voluntary context
switches, from ``/proc``), not times.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

import uvloop

from connstorm.local_stack.lambda_.emulator import Emulator
from connstorm.local_stack.lambda_.invocation import InvocationRequest
from tests.local_stack.lambda_.emulator_helpers import (
    emulator_config,
    function,
    settled_state,
    wait_until,
)

ROUNDS = 20


def _wakeups(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("voluntary_ctxt_switches:"):
                return int(line.split()[1])
    raise AssertionError(f"no voluntary_ctxt_switches for {pid}")


def _pidfds(pid: int) -> list[str]:
    fd_dir = f"/proc/{pid}/fd"
    links = [os.readlink(os.path.join(fd_dir, fd)) for fd in os.listdir(fd_dir)]
    return [link for link in links if "pidfd" in link]


async def _pid(emu: Emulator, event: dict[str, float] | None = None) -> int:
    result = await emu.invoke(InvocationRequest("counter", json.dumps(event or {}).encode()))
    assert result.outcome == "success", result
    return int(json.loads(result.payload)["pid"])


def test_freeze_and_thaw_do_not_wake_the_zygote_and_exits_are_still_reported(
        tmp_path: Path) -> None:
    config = emulator_config(tmp_path, function("counter", "counter_handler"))

    async def scenario() -> tuple[int, list[str], list[str], int]:
        async with Emulator(config) as emu:
            # Two environments, the second forked while the first's pidfd was open.
            first, second = await asyncio.gather(_pid(emu, {"sleep_s": 0.3}),
                                                 _pid(emu, {"sleep_s": 0.3}))
            assert first != second
            zygote = emu.pools["counter"].zygote
            assert zygote is not None
            assert zygote.pid is not None
            for pid in (first, second):
                assert await settled_state(pid) == "T"
            before = _wakeups(zygote.pid)
            for _ in range(ROUNDS):
                pid = await _pid(emu)  # thawed for it, frozen after it
                assert await settled_state(pid) == "T"
            woken = _wakeups(zygote.pid) - before
            leaked = _pidfds(first) + _pidfds(second)
            held = _pidfds(zygote.pid)
            # An environment that dies is still reported: the emulator forgets it.
            os.kill(first, signal.SIGKILL)
            assert await asyncio.to_thread(
                wait_until, lambda: emu.stats()["functions"]["counter"]["env_total"] == 1)
            return woken, leaked, held, emu.stats()["functions"]["counter"]["env_total"]

    woken, leaked, held, left = uvloop.run(scenario())
    # Before pidfds: at least one wake-up per freeze (2 x ROUNDS in all).
    assert woken < ROUNDS // 2
    assert leaked == []
    assert len(held) == 2
    assert left == 1
