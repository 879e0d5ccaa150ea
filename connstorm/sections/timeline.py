"""``[[timeline]]``: actions fired at set times of a run (deploys and faults).

Each entry names an ``action``, when it fires (``at_s``, seconds after the load
starts), its ``target`` where it has one, and its arguments. What each action
does is :mod:`connstorm.local_stack.faults`; :mod:`connstorm.loadtests.orchestrator.timeline` fires them during
``connstorm run``, :mod:`connstorm.loadtests.orchestrator.recovery` measures what followed. Which arguments an
action takes is checked here; that a ``target`` names a function of the scenario
is checked by the scenario as a whole.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator
from pydantic.dataclasses import dataclass

from connstorm.sections.base import SECTION, Float, Int, KeyProblem, Str

Action = Literal["deploy", "restart_postgres", "restart_pgbouncer", "restart_rds_proxy",
                 "terminate_backends", "kill_environments", "freeze_database", "network_latency"]

#: For each action: (arguments it requires, arguments it may take, whether target names a function).
ACTION_ARGUMENTS: dict[str, tuple[frozenset[str], frozenset[str], bool]] = {
    "deploy": (frozenset({"target"}), frozenset(), True),
    "restart_postgres": (frozenset(), frozenset({"mode"}), False),
    "restart_pgbouncer": (frozenset(), frozenset(), False),
    "restart_rds_proxy": (frozenset(), frozenset(), False),
    "terminate_backends": (frozenset(), frozenset(), False),
    "kill_environments": (frozenset({"target", "count"}), frozenset(), True),
    "freeze_database": (frozenset({"seconds"}), frozenset(), False),
    "network_latency": (frozenset({"ms", "seconds"}), frozenset(), False),
}
_ARGUMENTS = ("target", "count", "seconds", "ms", "mode")


@dataclass(frozen=True, kw_only=True, config=SECTION)
class TimelineAction:
    """One ``[[timeline]]`` entry: ``{ at_s = 20, action = "restart_pgbouncer" }``."""

    at_s: Annotated[Float, Field(ge=0)]
    """When the action fires, in seconds after the load starts."""
    action: Action
    """What happens: deploy, restart_postgres, restart_pgbouncer, restart_rds_proxy, terminate_backends, kill_environments, freeze_database or network_latency."""
    target: Str | None = None
    """The function a deploy or kill_environments acts on."""
    count: Int | None = Field(default=None, ge=1, le=100_000)
    """kill_environments: how many environments are SIGKILLed."""
    seconds: Float | None = Field(default=None, gt=0, le=3600)
    """freeze_database, network_latency: how long the fault lasts."""
    ms: Float | None = Field(default=None, ge=0, le=600_000)
    """network_latency: delay added each way between handlers and the database (through a loopback proxy); ms of at least the window (seconds * 1000) is a full stall."""
    mode: Literal["fast", "smart"] | None = None
    """restart_postgres: shutdown mode, "fast" (default; disconnects clients) or "smart" (waits for them, fast after 10 s)."""

    @model_validator(mode="after")
    def _arguments(self) -> TimelineAction:
        required, optional, _ = ACTION_ARGUMENTS[self.action]
        for name in _ARGUMENTS:
            given = getattr(self, name) is not None
            if name in required and not given:
                raise KeyProblem(name, f"missing; {self.action} needs "
                                       f"{', '.join(sorted(required))}")
            if given and name not in required | optional:
                raise KeyProblem(name, f"{self.action} takes no {name}")
        return self

    @property
    def targets_function(self) -> bool:
        """Whether ``target`` names a function of the scenario."""
        return ACTION_ARGUMENTS[self.action][2]
