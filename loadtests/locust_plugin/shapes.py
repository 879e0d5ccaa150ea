"""Load shapes, picked at run time with ``--shape`` (also in the web UI's start form).

This module is pure (it does not import Locust, whose import monkey-patches the
standard library): :func:`target` says what a shape wants at a given second.
One ``ConnstormShape`` class (``shape_class.py``, in every connstorm locustfile) serves
every shape, because Locust uses the first shape class a locustfile defines for every run; the
shape it plays is read from the options at each tick, so a choice made in the web
UI's form applies to the next swarm. ``use_common_options`` keeps ``-u``, ``-r`` and ``-t`` (and the
form's user count, spawn rate and run time) meaningful: they are the target
users, the spawn rate and the duration of every shape.

Shapes (``U`` target users, ``R`` spawn rate, ``T`` run time):

* ``constant``: go to ``U`` at ``R`` and hold until ``T``;
* ``ramp``: grow linearly from 0 to ``U`` over the first 80 % of ``T``, then hold;
* ``steps``: add ``--step-users`` every ``--step-duration-s`` until ``U``, then hold;
* ``spike``: ``U/10`` for the first third of ``T``, all ``U`` at once in the middle
  third, back to ``U/10`` for the last (a burst of cold starts);
* ``soak``: like constant, meant for long ``T``; the shape that checks leaks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

SHAPES = ("constant", "ramp", "steps", "spike", "soak")
#: Without a run time, shapes that need one assume this many seconds.
DEFAULT_RUN_TIME_S = 60.0


@dataclass(frozen=True)
class ShapeParams:
    """What a shape needs to know, read from Locust's parsed options."""

    shape: str = "constant"
    users: int = 1
    spawn_rate: float = 1.0
    run_time_s: float | None = None
    step_users: int = 10
    step_duration_s: float = 5.0

    @classmethod
    def from_options(cls, options: Any) -> ShapeParams:
        """Read ``shape``, ``num_users``, ``spawn_rate``, ``run_time``, ``step_*``."""
        def get(name: str, default: Any) -> Any:
            value = getattr(options, name, None) if options is not None else None
            return default if value in (None, "") else value
        run_time = get("run_time", None)
        return cls(shape=str(get("shape", "constant")),
                   users=max(0, int(get("num_users", 1))),
                   spawn_rate=max(0.01, float(get("spawn_rate", 1.0))),
                   run_time_s=float(run_time) if run_time else None,
                   step_users=max(1, int(get("step_users", 10))),
                   step_duration_s=max(0.1, float(get("step_duration_s", 5.0))))


def target(params: ShapeParams, elapsed_s: float) -> tuple[int, float] | None:
    """The (users, spawn rate) a shape asks for at ``elapsed_s``; None once it is over.

    Pure, so every shape is tested without running Locust.
    """
    users, rate, run_time = params.users, params.spawn_rate, params.run_time_s
    if run_time is not None and elapsed_s >= run_time:
        return None
    span = run_time or DEFAULT_RUN_TIME_S
    if params.shape in ("constant", "soak"):
        return users, rate
    if params.shape == "ramp":
        ramp_s = 0.8 * span
        now = users if elapsed_s >= ramp_s else math.ceil(users * elapsed_s / ramp_s)
        return max(1, now), max(rate, users / ramp_s)
    if params.shape == "steps":
        step = int(elapsed_s // params.step_duration_s) + 1
        return min(users, step * params.step_users), max(rate, float(params.step_users))
    if params.shape == "spike":
        base = max(1, users // 10)
        third = span / 3
        if third <= elapsed_s < 2 * third:
            return users, float(max(users, 1))  # everyone at once: the burst is the point
        return base, float(max(users, 1))
    raise ValueError(f"unknown shape {params.shape!r}; choose one of {', '.join(SHAPES)}")
