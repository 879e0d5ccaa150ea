"""Asynchronous (Event) invocations: retries of failed runs, with the real emulator."""

from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path
from typing import Any

import pytest
import uvloop

from connstorm.local_stack.lambda_.emulator import Emulator
from connstorm.local_stack.lambda_.event_queue import retry_delay_s
from connstorm.local_stack.lambda_.invocation import InvocationRequest
from connstorm.scenario import FunctionConfig
from tests.local_stack.lambda_.emulator_helpers import emulator_config, function


def test_event_retry_delay_doubles_and_stops_after_the_retries() -> None:
    fn = FunctionConfig(name="f", handler="m.h")
    assert [retry_delay_s(fn, n) for n in (1, 2, 3)] == [60.0, 120.0, None]  # AWS's
    once = FunctionConfig(name="f", handler="m.h", event_retry_attempts=1,
                          event_retry_delay_s=0.5)
    assert [retry_delay_s(once, n) for n in (1, 2)] == [0.5, None]
    never = FunctionConfig(name="f", handler="m.h", event_retry_attempts=0)
    assert retry_delay_s(never, 1) is None


def _rows(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "invocations.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


async def _event_runs(config: Any, fn: str, event: dict[str, Any], want: int,
                      linger_s: float) -> dict[str, Any]:
    """Queue one Event invocation; wait (bounded) for ``want`` runs, then ``linger_s`` more."""
    async with Emulator(config) as emu:
        queued = await emu.invoke(InvocationRequest(fn, json.dumps(event).encode(),
                                                    invocation_type="Event"))
        assert queued.outcome == "success"
        for _ in range(1000):  # bounded: 20 s
            if emu.stats()["invocations"] >= want:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(linger_s)  # room for a retry too many to show up
        return emu.stats()


@pytest.mark.parametrize(("module", "event", "outcome"), [
    ("raise_handler", {}, "function_error"),
    ("crash_handler", {"exit": 1}, "crash"),
], ids=["function-error", "crash"])
def test_event_failure_is_retried_twice_by_default_with_the_same_request_id(
        tmp_path: Path, module: str, event: dict[str, Any], outcome: str) -> None:
    # GIVEN a function that always fails, retries 0.1 s then 0.2 s apart
    config = emulator_config(tmp_path, function("f", module, event_retry_delay_s=0.1))
    # WHEN one Event invocation is queued
    stats = uvloop.run(_event_runs(config, "f", event, want=3, linger_s=0.5))
    # THEN it runs three times (MaximumRetryAttempts 2), each attempt recorded
    rows = _rows(tmp_path)
    assert [r["attempt"] for r in rows] == [1, 2, 3]
    assert {r["outcome"] for r in rows} == {outcome}
    assert len({r["request_id"] for r in rows}) == 1
    assert stats["invocations"] == 3
    assert stats["errors"] == 3
    # AND the retries waited their delays: 0.1 s, then twice that
    gaps = [b["t"] - a["t"] for a, b in itertools.pairwise(rows)]
    assert gaps[0] >= 0.1
    assert gaps[1] >= 0.2


@pytest.mark.parametrize("retries", [0, 1])
def test_event_retry_attempts_are_configurable(tmp_path: Path, retries: int) -> None:
    config = emulator_config(tmp_path, function("f", "raise_handler",
                                                event_retry_attempts=retries,
                                                event_retry_delay_s=0.05))
    uvloop.run(_event_runs(config, "f", {}, want=retries + 1, linger_s=0.6))
    assert [r["attempt"] for r in _rows(tmp_path)] == list(range(1, retries + 2))


def test_event_success_runs_once_and_timeout_is_retried(tmp_path: Path) -> None:
    # GIVEN one function that succeeds and one that times out, one retry each
    config = emulator_config(
        tmp_path, function("ok", "counter_handler", event_retry_delay_s=0.05),
        function("slow", "counter_handler", timeout_s=0.3, event_retry_attempts=1,
                 event_retry_delay_s=0.05))

    async def scenario() -> None:
        async with Emulator(config) as emu:
            for fn, event in (("ok", {}), ("slow", {"sleep_s": 5})):
                await emu.invoke(InvocationRequest(fn, json.dumps(event).encode(),
                                                   invocation_type="Event"))
            for _ in range(1000):  # bounded: 20 s
                if emu.stats()["invocations"] >= 3:
                    break
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.5)  # room for a retry too many to show up

    uvloop.run(scenario())
    rows = _rows(tmp_path)
    # THEN the success runs once; the timeout is retried once (a fresh environment)
    assert [(r["attempt"], r["outcome"]) for r in rows if r["function"] == "ok"] == [
        (1, "success")]
    slow = [r for r in rows if r["function"] == "slow"]
    assert [(r["attempt"], r["outcome"]) for r in slow] == [(1, "timeout"), (2, "timeout")]
    assert slow[0]["env_id"] != slow[1]["env_id"]
