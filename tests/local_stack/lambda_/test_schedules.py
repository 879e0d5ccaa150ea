"""``[[schedules]]``: EventBridge's scheduled event, and keep-warm pings on real environments."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvloop

from connstorm.local_stack.lambda_.config import EmulatorConfig
from connstorm.local_stack.lambda_.emulator import Emulator
from connstorm.local_stack.lambda_.invocation import InvocationRequest
from connstorm.local_stack.lambda_.schedules import scheduled_event
from connstorm.scenario import ScheduleConfig
from tests.local_stack.lambda_.emulator_helpers import emulator_config, function


def test_schedules_event_is_eventbridge_scheduled_event() -> None:
    when = datetime(2026, 12, 3, 7, 0, 5, tzinfo=UTC)
    event = scheduled_event(ScheduleConfig(function="api", every_s=60), "eu-west-1", when)
    assert set(event) == {"version", "id", "detail-type", "source", "account", "time",
                          "region", "resources", "detail"}
    assert event["version"] == "0"
    assert event["detail-type"] == "Scheduled Event"
    assert event["source"] == "aws.events"
    assert event["account"] == "123456789012"
    assert event["time"] == "2026-12-03T07:00:05Z"
    assert event["region"] == "eu-west-1"
    assert event["resources"] == ["arn:aws:events:eu-west-1:123456789012:rule/api-schedule"]
    assert event["detail"] == {}
    assert len(event["id"]) == 36
    named = scheduled_event(ScheduleConfig(function="api", every_s=60, name="warmer"), "us-east-1")
    assert named["resources"] == ["arn:aws:events:us-east-1:123456789012:rule/warmer"]
    own = ScheduleConfig(function="api", every_s=60, payload={"warmer": True})
    assert scheduled_event(own, "us-east-1") == {"warmer": True}


def test_schedules_keep_warm_keeps_exactly_one_environment_and_a_burst_cold_starts(
        tmp_path: Path) -> None:
    base = emulator_config(tmp_path, function("warm", "counter_handler", idle_lifetime_s=1.0),
                           function("unpinged", "counter_handler", idle_lifetime_s=1.0))
    config = EmulatorConfig(account=base.account, functions=base.functions,
                            schedules=(ScheduleConfig(function="warm", every_s=0.25),),
                            run_dir=base.run_dir)

    async def scenario() -> tuple[dict[str, Any], list[bool]]:
        async with Emulator(config) as emu:
            await emu.invoke(InvocationRequest("unpinged", b"{}"))
            # GIVEN no load at all for three idle lifetimes
            await asyncio.sleep(3.0)
            stats = emu.stats()
            # WHEN a burst of five arrives at the pinged function
            burst = await asyncio.gather(*(emu.invoke(InvocationRequest(
                "warm", json.dumps({"sleep_s": 0.3}).encode())) for _ in range(5)))
            return stats, [r.cold for r in burst]

    stats, cold = uvloop.run(scenario())
    warm, unpinged = stats["functions"]["warm"], stats["functions"]["unpinged"]
    # THEN the pings kept one environment warm, and only one
    assert warm["scheduled_invocations"] >= 6
    assert warm["invocations"] >= 6
    assert warm["cold_starts"] == 1
    assert warm["env_total"] == 1
    assert warm["env_reaped"] == 0
    # while the function nobody pinged went cold
    assert unpinged["env_total"] == 0
    assert unpinged["env_reaped"] == 1
    # AND the burst cold-starts all but (at most) the one warm environment
    assert cold.count(True) >= 4
