"""The ``[load]`` section: what Locust does to the stack."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator
from pydantic.dataclasses import dataclass

from connstorm.sections.base import SECTION, Float, Int, KeyProblem, Str

LOAD_SHAPES = ("constant", "ramp", "steps", "spike", "soak")


@dataclass(frozen=True, config=SECTION)
class LoadConfig:
    """The ``[load]`` section: users, their pace and the shape of the load over time."""

    users: Int = Field(default=100, ge=1, le=1_000_000)
    """Concurrent Locust users at the peak."""
    spawn_rate: Float = Field(default=20.0, ge=0.01)
    """Users started per second."""
    duration_s: Float = Field(default=60.0, ge=1)
    """Length of the run."""
    shape: Literal["constant", "ramp", "steps", "spike", "soak"] = "constant"
    """How the user count moves over the run."""
    step_users: Int = Field(default=20, ge=1)
    """Users added per step ("steps" shape)."""
    step_duration_s: Float = Field(default=5.0, ge=0.5)
    """Length of a step ("steps" shape)."""
    think_time_min_ms: Float = Field(default=0.0, ge=0)
    """Shortest pause of a user between requests."""
    think_time_max_ms: Float = Field(default=50.0, ge=0)
    """Longest pause of a user between requests."""
    sample_interval_s: Float = Field(default=1.0, ge=0.05, le=60)
    """How often collectors sample connections, pools and the emulator."""
    processes: Int = Field(default=0, ge=0, le=64)
    """Locust worker processes on this machine (0: one process)."""
    locustfile: Str | None = Field(default=None, min_length=1)
    """Your own locustfile (relative to the scenario file): its User classes send the load, connstorm's collectors, Connections tab, thresholds and report stay."""

    @model_validator(mode="after")
    def _think_times(self) -> LoadConfig:
        if self.think_time_min_ms > self.think_time_max_ms:
            raise KeyProblem("think_time_min_ms", f"must not exceed think_time_max_ms "
                                                  f"({self.think_time_max_ms})")
        return self

    def peak_users(self, given: int | None = None) -> int:
        """The run's peak users: ``given`` (``--users``) when set, else ``users``.

        The one place this is decided: Locust's ``-u``, ``connstorm live --dry-run``'s
        plan and the summary's connection budget all ask here, so none can disagree.
        """
        return self.users if given is None else given

    def peak_spawn_rate(self, given: float | None = None) -> float:
        """Users started per second: ``given`` (``--spawn-rate``) when set, else ``spawn_rate``."""
        return self.spawn_rate if given is None else given

    def run_time_s(self, given: float | None = None) -> float:
        """The load's length: ``given`` (``--duration``) when set, else ``duration_s``."""
        return self.duration_s if given is None else given
