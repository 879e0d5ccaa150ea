"""Lambda's memory limit with the real awslambdaric: over ``memory_mb``, the sandbox dies."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import uvloop

from connstorm.local_stack.lambda_.emulator import Emulator
from connstorm.local_stack.lambda_.environment import Environment
from connstorm.local_stack.lambda_.invocation import InvocationRequest, InvocationResult
from tests.local_stack.lambda_.emulator_helpers import alive, emulator_config, function, wait_until


async def _invoke(emu: Emulator, event: dict[str, Any]) -> InvocationResult:
    return await emu.invoke(InvocationRequest("mem", json.dumps(event).encode()))


def _report_memory(run_dir: Path, result: InvocationResult) -> tuple[int, int]:
    text = (run_dir / "logs" / "lambda" / "mem" / f"{result.env_id}.log").read_text()
    line = next(ln for ln in text.splitlines()
                if ln.startswith(f"REPORT RequestId: {result.request_id}"))
    m = re.search(r"Memory Size: (\d+) MB\tMax Memory Used: (\d+) MB", line)
    assert m is not None, line
    return int(m.group(1)), int(m.group(2))


def test_over_its_memory_size_the_environment_is_killed_as_on_lambda(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = emulator_config(tmp_path, function("mem", "memory_handler", memory_mb=128,
                                                timeout_s=60))

    async def scenario() -> tuple[InvocationResult, InvocationResult, int | None]:
        async with Emulator(config) as emu:
            # 200 MB held for 30 s: only the limit can end this invocation early.
            over = await _invoke(emu, {"mb": 200, "hold_s": 30})
            env = None if over.env_id is None else emu.by_id.get(over.env_id)
            pid = env.pid if env is not None else None
            after = await _invoke(emu, {"mb": 1})
            return over, after, pid

    over, after, pid = uvloop.run(scenario())
    assert over.outcome == "crash"
    assert over.error_type == "Runtime.ExitError"
    assert json.loads(over.payload) == {
        "errorType": "Runtime.ExitError",
        "errorMessage": f"RequestId: {over.request_id} Error: Runtime exited with error: "
                        "signal: killed"}
    assert over.duration_ms is not None
    assert over.duration_ms < 30_000
    size, used = _report_memory(tmp_path, over)
    assert size == 128
    assert used > 128
    # The sandbox is gone; the next request gets a new one, which works.
    assert pid is None or wait_until(lambda: not alive(pid), 5)
    assert after.outcome == "success"
    assert after.env_id != over.env_id
    assert json.loads(after.payload) == {"held_mb": 1, "memory_mb": "128"}
    assert any(f"environment {over.env_id} of mem uses" in r.message
               and "over its memory size of 128 MB: killed" in r.message
               for r in caplog.records)


def test_a_kill_a_fraction_of_a_megabyte_over_reports_a_peak_over_the_limit() -> None:
    # The kill reads 128.3 MB for a 128 MB limit; the REPORT must not say 128.
    env = Environment("e", "mem", os.devnull, -1)
    env.note_peak_mb(128.3)
    assert env.max_memory_mb() == 129
    # ... nor 0 when it is written more than a second later, the process gone
    env._hwm_read_at -= 2.0
    assert env.max_memory_mb() == 129


def test_within_its_memory_size_the_environment_stays_warm(tmp_path: Path) -> None:
    config = emulator_config(tmp_path, function("mem", "memory_handler", memory_mb=128))

    async def scenario() -> list[InvocationResult]:
        async with Emulator(config) as emu:
            return [await _invoke(emu, {"mb": 20, "hold_s": 0.3}) for _ in range(2)]

    first, second = uvloop.run(scenario())
    assert (first.outcome, second.outcome) == ("success", "success")
    assert second.env_id == first.env_id
    assert not second.cold
    size, used = _report_memory(tmp_path, second)
    assert size == 128
    assert 20 < used < 128


def test_enforce_memory_false_lets_an_environment_grow(tmp_path: Path) -> None:
    config = emulator_config(tmp_path, function("mem", "memory_handler", memory_mb=128),
                             enforce_memory=False)

    async def scenario() -> InvocationResult:
        async with Emulator(config) as emu:
            return await _invoke(emu, {"mb": 200, "hold_s": 0.5})

    result = uvloop.run(scenario())
    assert result.outcome == "success"
    assert json.loads(result.payload)["held_mb"] == 200
    assert _report_memory(tmp_path, result)[1] > 200
