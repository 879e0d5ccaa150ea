"""``[[schedules]]``: an EventBridge rule invoking a function at a fixed rate (keep-warm pings).

EventBridge invokes its target asynchronously (``Event``), so a scheduled
invocation goes through the function's event queue like any other ``Event``
one: it takes the most recently used environment when one is idle, and a cold
start otherwise. That is why a keep-warm ping every few minutes keeps exactly
one environment warm and leaves a burst of fifty to cold-start the other
forty-nine. The runner lives in the emulator, which owns the functions, so the
pings keep running whatever drives the load.

The event is EventBridge's "Scheduled Event" (Amazon EventBridge User Guide,
"Creating a rule that runs on a schedule"; AWS Lambda Developer Guide, "Invoke a
Lambda function on a schedule")::

    {"version": "0", "id": "<uuid>", "detail-type": "Scheduled Event",
     "source": "aws.events", "account": "123456789012", "time": "2026-01-01T00:00:00Z",
     "region": "us-east-1", "resources": ["arn:aws:events:us-east-1:123456789012:rule/NAME"],
     "detail": {}}

unless the schedule gives its own ``payload`` (a rule's constant input). The
first ping fires ``every_s`` after the emulator starts, as a new rate rule's does.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from connstorm.local_stack.lambda_.config import ACCOUNT_ID
from connstorm.local_stack.lambda_.ids import uuid4
from connstorm.local_stack.lambda_.invocation import InvocationRequest, InvocationResult
from connstorm.scenario import ScheduleConfig

log = logging.getLogger(__name__)

Submit = Callable[[InvocationRequest], "asyncio.Future[InvocationResult]"]


def rule_name(schedule: ScheduleConfig) -> str:
    """The rule's name: the schedule's own, else ``<function>-schedule``."""
    return schedule.name or f"{schedule.function}-schedule"


def scheduled_event(schedule: ScheduleConfig, region: str,
                    now: datetime | None = None) -> dict[str, Any]:
    """The event one firing of ``schedule`` sends (its ``payload`` if it has one)."""
    if schedule.payload is not None:
        return dict(schedule.payload)
    when = now or datetime.now(UTC)
    return {
        "version": "0",
        "id": uuid4(),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT_ID,
        "time": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [f"arn:aws:events:{region}:{ACCOUNT_ID}:rule/{rule_name(schedule)}"],
        "detail": {},
    }


async def run_schedule(schedule: ScheduleConfig, region: str, submit: Submit,
                       on_fired: Callable[[], None] | None = None) -> None:
    """Fire ``schedule`` every ``every_s`` seconds until cancelled.

    Ticks are kept on a fixed grid (a slow submit does not drift the rate), as
    a rate rule's are.
    """
    loop = asyncio.get_running_loop()
    next_at = loop.time() + schedule.every_s
    while True:
        await asyncio.sleep(max(0.0, next_at - loop.time()))
        next_at += schedule.every_s
        payload = json.dumps(scheduled_event(schedule, region)).encode()
        try:
            submit(InvocationRequest(schedule.function, payload, invocation_type="Event"))
        except Exception:
            log.exception("schedule %s: cannot invoke %s", rule_name(schedule),
                          schedule.function)
            continue
        if on_fired is not None:
            on_fired()
