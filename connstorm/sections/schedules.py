"""``[[schedules]]``: scheduled invocations, as an EventBridge rule sends them (keep-warm pings)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import Field
from pydantic.dataclasses import dataclass

from connstorm.sections.base import SECTION, Float, Str


@dataclass(frozen=True, kw_only=True, config=SECTION)
class ScheduleConfig:
    """One ``[[schedules]]`` entry: invoke ``function`` every ``every_s`` seconds."""

    function: Str
    """Name of the [[functions]] entry to invoke."""
    every_s: Annotated[Float, Field(gt=0, le=86_400)]
    """Interval between invocations (EventBridge's smallest rate is one minute; shorter ones are for tests)."""
    name: Str | None = None
    """Rule name in the event's resources ARN; defaults to the function's name with "-schedule"."""
    payload: Mapping[str, Any] | None = None
    """The event sent; unset sends EventBridge's "Scheduled Event" shape."""
