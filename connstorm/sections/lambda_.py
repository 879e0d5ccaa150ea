"""The ``[lambda]`` section: the emulator as a whole, that is the AWS account's Lambda."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic.dataclasses import dataclass

from connstorm.sections.base import SECTION, Bool, Float, Int, Str

SCALING_MODELS = ("current", "legacy")


@dataclass(frozen=True, config=SECTION)
class LambdaConfig:
    """The ``[lambda]`` section: the account's limits and how the emulator behaves."""

    concurrency_limit: Int = Field(default=1000, ge=1, le=100_000)
    """The account's concurrent executions (AWS's default is 1,000)."""
    freeze: Bool = True
    """Freeze environments between invocations (SIGSTOP), as Lambda does."""
    scaling: Literal["current", "legacy"] = "current"
    """Scaling model: "current" (1,000 environments per function per 10 s, since 2023) or "legacy" (a burst, then +500 a minute)."""
    scaling_per_10s: Int = Field(default=1000, ge=1, le=1_000_000)
    """New environments per function per 10 s ("current" model, refilled continuously)."""
    legacy_burst: Int = Field(default=1000, ge=1, le=1_000_000)
    """Initial burst of the "legacy" model."""
    legacy_per_minute: Int = Field(default=500, ge=1, le=1_000_000)
    """Growth per minute of the "legacy" model after the burst."""
    init_timeout_s: Float = Field(default=10.0, ge=0.1, le=600)
    """Limit of an on-demand environment's Init phase (Lambda's is 10 s); provisioned ones get the function timeout, at least 130 s."""
    shutdown_timeout_s: Float = Field(default=2.0, ge=0, le=60)
    """Time an environment gets to exit after SIGTERM when the emulator stops (Lambda's Shutdown phase is at most 2 s, and 0 ms without extensions)."""
    vanished_linger_s: Float | None = Field(default=None, ge=0, le=86_400)
    """How long a reaped environment's connections stay open at the server; unset is the server's TCP keepalive time (RDS for PostgreSQL: 300 + 30 x 2 = 360 s); 0 closes them at once."""
    region: Str = "us-east-1"
    """The region in ARNs and AWS_REGION."""
    request_rate_limit: Bool = True
    """Lambda's request-rate limit: 10 x concurrency invocations per second (a function may override it)."""
    realtime_priority: Bool = True
    """Run the emulator's event loop at real-time priority over its environments (needs CAP_SYS_NICE)."""
    enforce_memory: Bool = True
    """Kill an environment whose resident memory passes its function's memory_mb, as Lambda does."""
    memory_check_interval_s: Float = Field(default=0.1, ge=0.01, le=10)
    """How often memory is checked (a fast allocation can overshoot in between)."""
    cpu_shares: Bool = False
    """Give each environment memory_mb / 1769 of a CPU, as Lambda does (needs a writable cgroup v2; off elsewhere with a notice)."""
