"""Locust users generated from a scenario's ``[[routes]]``: one task per route, nothing else.

``connstorm run`` / ``ui`` / ``live`` load this file instead of the workload's
``locustfile.py`` when the scenario's routes are not the workload's (a
function of one's own, say). The routes come as JSON in ``CONNSTORM_ROUTES``
(:mod:`connstorm.loadtests.locust_plugin.route_load`), which connstorm sets:
each route is one task of its ``weight``, its path parameters filled from its
``params``, with its ``body`` (as JSON) and ``headers``. No other path is ever
requested, so a route the scenario lacks cannot turn into a flood of 404s.

A response of 400 or more is a failure, described with its status and the
error its body (or the emulator's ``X-Connstorm-Error-Kind``) names, as the
workload's user does.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from typing import Any

from locust import TaskSet

from connstorm.loadtests.locust_plugin import plugin  # noqa: F401  - registers connstorm's options, collectors and UI
from connstorm.loadtests.locust_plugin.route_load import (
    ENV_ROUTES,
    Rounds,
    RouteLoad,
    decode,
    round_of,
)
from connstorm.loadtests.locust_plugin.shape_class import ConnstormShape
from connstorm.loadtests.locust_plugin.users import ConnstormUser, check_response

__all__ = ["ConnstormShape", "RouteRounds", "RoutesUser"]


def _routes() -> tuple[RouteLoad, ...]:
    text = os.environ.get(ENV_ROUTES, "")
    if not text:
        raise RuntimeError(f"{ENV_ROUTES} is not set: connstorm run / ui / live set it from the "
                           "scenario's [[routes]]; run this file through connstorm")
    return decode(text)


ROUTES = _routes()


def _route_task(route: RouteLoad, rng: random.Random) -> Callable[[Any], None]:
    extra: dict[str, Any] = {}
    if route.has_body:
        extra["json"] = route.body
    if route.headers:
        extra["headers"] = dict(route.headers)

    def call(taskset: Any) -> None:
        with taskset.client.request(route.request_method, route.url(rng), name=route.name,
                                    catch_response=True, **extra) as response:
            check_response(response)

    call.__name__ = call.__qualname__ = f"{route.method} {route.path}"
    return call


_RNG = random.Random()
#: One task per route, in the routes' order (weight-0 routes included, never picked).
TASKS = tuple(_route_task(route, _RNG) for route in ROUTES)
#: Locust's own form of the weights (each task weight/gcd times): the UI's task ratios.
WEIGHTED: list[TaskSet | Callable[..., Any]] = [
    TASKS[index] for index in sorted(round_of([route.weight for route in ROUTES], _RNG))]


class RouteRounds(TaskSet):
    """The routes' tasks, picked round by round so that the weights hold exactly."""

    # Locust's own weighted view (the UI's task ratios); the picking is get_next_task's.
    tasks = WEIGHTED

    def on_start(self) -> None:
        """Each user its own rounds, so users do not call the routes in step."""
        self._rounds = Rounds([route.weight for route in ROUTES])

    def get_next_task(self) -> Callable[[Any], None]:
        """The next route of this user's current round."""
        return TASKS[self._rounds.next()]


class RoutesUser(ConnstormUser):
    """A client of the scenario's routes, pausing between requests like the workload's user."""

    tasks = [RouteRounds]  # noqa: RUF012  - Locust reads it at class creation
